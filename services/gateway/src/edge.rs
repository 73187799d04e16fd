//! The gateway's HTTP/1.1 server. hyper's server and client around a forwarded request
//! (two codecs, a header map each way, a task per upstream connection and a channel to
//! it) cost the gateway more CPU than nginx spends on the same forwarding
//! (docs/benchmarks.md, "The gateway's own HTTP/1.1"). So the edge reads each request
//! head with httparse, judges its framing strictly ([`wire`]), writes the request to the
//! upstream as one message with a length of its own, reads the whole answer and writes
//! it to the client in one write. Requests for the gateway's own endpoints (and unknown
//! paths) go to its router with the shared layers.
//!
//! Per forwarded request it does what `http::layers` does for a service's: the request
//! id (a client's plain token kept, else a new one), the `request` span and the access
//! log line, the timeout (503; 408 while the client's body is still coming), a panic
//! turned into a 500, the body read within the limit (413), the metrics by upstream, and
//! the id on the answer.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use axum::response::IntoResponse;
use bytes::{Buf, BytesMut};
use futures::FutureExt;
use tix_common::error::{ApiError, error_response};
use tix_common::http::{self, EdgeConn, Limits, X_REQUEST_ID};
use tix_common::metrics::{HttpMethod, Route, observe_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::Instrument;

use crate::upstream::{self, Answer};
use crate::wire::{self, ChunkError, Chunked, Framing, HeadError, RequestHead, no_body};
use crate::{Gateway, Upstream};

/// A head this short is parsed again on every read (so garbage is refused at once); a
/// longer one only when an empty line may have come ([`wire::head_may_end`]), or a head
/// sent a byte at a time would cost its length squared.
const PARSE_EVERY_READ: usize = 1024;
/// After refusing a request, what the client still sends is read and dropped for this
/// long (at most [`LINGER_BYTES`]) before the connection closes: closed with unread data,
/// the kernel resets it, and the client may lose the answer (nginx's `lingering_close`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

pub(crate) fn edge(gw: Arc<Gateway>, limits: Limits) -> http::Edge {
    Arc::new(move |conn| Box::pin(serve(gw.clone(), limits, conn)))
}

/// One client connection.
struct Client {
    stream: TcpStream,
    /// Read and not used yet: the start of the next request, or of a body.
    buf: BytesMut,
    /// How much of `buf` has been looked at for the end of a head.
    scanned: usize,
    /// The request for the upstream, then the answer for the client.
    out: Vec<u8>,
    /// The client's address as stated upstream (`X-Forwarded-For`): the peer's, or for a
    /// trusted proxy (whose connection carries many clients' requests) none, and each
    /// request's is read from what the proxy says.
    forwarded_for: Option<HeaderValue>,
    peer: SocketAddr,
    gw: Arc<Gateway>,
    limits: Limits,
    stopping: watch::Receiver<bool>,
}

/// What became of a request, for the connection: whether it can carry another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepOpen,
    Close,
}

/// How an answer is written.
#[derive(Debug, Clone, Copy)]
struct Manner {
    /// The request was a HEAD: the fields as for a GET, no body.
    to_head: bool,
    http10: bool,
    /// The connection carries another request after this answer.
    keep: bool,
}

impl Manner {
    fn of(head: &RequestHead) -> Manner {
        Manner {
            to_head: head.method == Method::HEAD,
            http10: head.http10,
            keep: head.keep_alive,
        }
    }

    fn closing(self) -> Manner {
        Manner {
            keep: false,
            ..self
        }
    }
}

async fn serve(gw: Arc<Gateway>, limits: Limits, conn: EdgeConn) {
    let EdgeConn {
        stream,
        peer,
        app,
        stopping,
    } = conn;
    let mut client = Client {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        scanned: 0,
        out: Vec::with_capacity(4 * 1024),
        forwarded_for: (!gw.trusted_proxies.contains(peer.ip()))
            .then(|| tix_common::net::header(peer.ip())),
        peer,
        gw: gw.clone(),
        limits,
        stopping,
    };
    loop {
        let mut stopping = client.stopping.clone();
        let head = tokio::select! {
            biased;
            head = tokio::time::timeout(gw.head_within, client.read_head()) => head,
            // Stopping: a connection between requests closes (one in the middle of a
            // head would only be cut short a little later).
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let head = match head {
            Ok(Ok(Some(head))) => head,
            // The client closed between requests, or the socket failed.
            Ok(Ok(None) | Err(Refusal::Gone)) => return,
            // An idle keep-alive connection is closed without a word; a head begun and not
            // finished in time (slowloris, or a client stuck) is answered, logged and
            // counted, as nginx's `client_header_timeout` logs a 408.
            Err(_) if client.buf.is_empty() => return,
            Err(_) => {
                let late = "The request head did not arrive in time";
                refuse_head(&mut client, StatusCode::REQUEST_TIMEOUT, late).await;
                return;
            }
            Ok(Err(Refusal::Head(e))) => {
                let status = match e {
                    HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    HeadError::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
                    HeadError::Bad(_) => StatusCode::BAD_REQUEST,
                };
                refuse_head(&mut client, status, &e.to_string()).await;
                return;
            }
        };
        let next = match forwardable(&gw, &head) {
            Some((prefix, up)) => forwarded(up, prefix, &mut client, head).await,
            None => local(&app, peer, &mut client, head).await,
        };
        if next == Next::Close {
            client.linger().await;
            return;
        }
    }
}

/// Answers a request whose head was refused or never finished, and closes. Refused
/// before routing, its method and target untrusted: logged and counted all the same (route
/// "unparsed"), so that a flood of them shows. Its latency is the answer's; the wait for
/// the head is the client's.
async fn refuse_head(client: &mut Client, status: StatusCode, message: &str) {
    let manner = Manner {
        to_head: false,
        http10: false,
        keep: false,
    };
    let resp = with_id(error_response(status, message), None);
    let span = http::request_span("-", "-", &resp.headers()[X_REQUEST_ID]);
    span.in_scope(|| tracing::debug!(error = %message, "request refused"));
    let answering = Instant::now();
    client.answer_local(resp, manner).await;
    let (status, took) = (status.as_u16(), answering.elapsed());
    observe_request(
        HttpMethod::OTHER,
        Route::Named(Cow::Borrowed("unparsed")),
        status,
        took,
    );
    http::log_access(&span, status, took);
    client.linger().await;
}

/// Why no request could be read.
enum Refusal {
    Head(HeadError),
    /// The connection failed or closed in the middle of a head.
    Gone,
}

/// Why a request body was not read.
enum BodyRefusal {
    TooLarge,
    Malformed,
    Gone,
}

impl BodyRefusal {
    /// The answer to give, if the client is still there.
    fn answer(self) -> Option<Response<Body>> {
        match self {
            BodyRefusal::TooLarge => Some(ApiError::PayloadTooLarge.into_response()),
            BodyRefusal::Malformed => Some(error_response(
                StatusCode::BAD_REQUEST,
                "Malformed chunked body",
            )),
            BodyRefusal::Gone => None,
        }
    }
}

impl Client {
    /// The client's address to state upstream for a request from a trusted proxy.
    fn named_by_proxy(&self, head: &RequestHead) -> HeaderValue {
        let listed = head
            .head
            .fields
            .iter()
            .filter(|f| head.head.name(f).eq_ignore_ascii_case(b"x-forwarded-for"))
            .map(|f| head.head.value(f));
        tix_common::net::header(self.gw.trusted_proxies.client(self.peer.ip(), listed))
    }

    /// The next request's head: `None` when the client closed the connection between
    /// requests. A pipelined request may already be in the buffer.
    async fn read_head(&mut self) -> Result<Option<RequestHead>, Refusal> {
        loop {
            if self.worth_parsing()
                && let Some(head) = wire::parse_request(&mut self.buf).map_err(Refusal::Head)?
            {
                self.scanned = 0;
                return Ok(Some(head));
            }
            match self.read_more().await {
                Ok(0) if self.buf.is_empty() => return Ok(None),
                Ok(0) | Err(_) => return Err(Refusal::Gone),
                Ok(_) => {}
            }
        }
    }

    fn worth_parsing(&mut self) -> bool {
        // Empty lines before a request line are ignored (RFC 9112 §2.2), here rather than
        // by httparse: a stream of them would otherwise look like a head's end on every
        // read and be parsed again whole each time.
        let blank = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if blank > 0 {
            self.buf.advance(blank);
            self.scanned = self.scanned.saturating_sub(blank);
        }
        if self.buf.is_empty() {
            return false;
        }
        // A new head is parsed at once, however long (garbage is refused on arrival).
        if self.scanned == 0
            || self.buf.len() <= PARSE_EVERY_READ
            || self.buf.len() >= wire::MAX_HEAD
        {
            self.scanned = self.buf.len();
            return true;
        }
        // The last bytes looked at again: an empty line may straddle two reads.
        let from = self.scanned.saturating_sub(3);
        self.scanned = self.buf.len();
        wire::head_may_end(&self.buf[from..])
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8 * 1024);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads the request's body within the body limit.
    async fn read_body(&mut self, head: &RequestHead) -> Result<BytesMut, BodyRefusal> {
        let limit = self.limits.body_bytes;
        match head.body {
            Framing::None | Framing::Close => Ok(BytesMut::new()),
            Framing::Length(n) => {
                // Refused from the head alone, unread, before any `100 Continue`.
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= limit)
                    .ok_or(BodyRefusal::TooLarge)?;
                self.continue_if_asked(head).await?;
                while self.buf.len() < n {
                    self.buf.reserve(n - self.buf.len());
                    match self.stream.read_buf(&mut self.buf).await {
                        Ok(0) | Err(_) => return Err(BodyRefusal::Gone),
                        Ok(_) => {}
                    }
                }
                Ok(self.buf.split_to(n))
            }
            Framing::Chunked => {
                self.continue_if_asked(head).await?;
                let mut chunked = Chunked::default();
                let mut body = BytesMut::new();
                loop {
                    match chunked.feed(&mut self.buf, &mut body, limit) {
                        Ok(true) => return Ok(body),
                        Ok(false) => match self.read_more().await {
                            Ok(0) | Err(_) => return Err(BodyRefusal::Gone),
                            Ok(_) => {}
                        },
                        Err(ChunkError::TooLarge) => return Err(BodyRefusal::TooLarge),
                        Err(ChunkError::Malformed) => return Err(BodyRefusal::Malformed),
                    }
                }
            }
        }
    }

    /// A client that sent `Expect: 100-continue` waits for a word before its body
    /// (unless it has begun sending it anyway).
    async fn continue_if_asked(&mut self, head: &RequestHead) -> Result<(), BodyRefusal> {
        if head.expect_continue && !head.http10 && self.buf.is_empty() {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| BodyRefusal::Gone)?;
        }
        Ok(())
    }

    /// Ends the answer in `out` whose status line and fields are written: its length
    /// (unless it has no body), `Connection` when needed, the body; then writes it all.
    async fn finish(&mut self, status: u16, body: &[u8], m: Manner) -> Next {
        // A stopping gateway says so on the answer it is writing.
        let m = if *self.stopping.borrow() {
            m.closing()
        } else {
            m
        };
        let out = &mut self.out;
        if !m.to_head && !no_body(status) {
            let _ = write!(out, "content-length: {}\r\n", body.len());
        }
        // HTTP/1.1 keeps a connection by default, 1.0 closes it.
        match (m.keep, m.http10) {
            (false, _) => out.extend_from_slice(b"connection: close\r\n"),
            (true, true) => out.extend_from_slice(b"connection: keep-alive\r\n"),
            (true, false) => {}
        }
        out.extend_from_slice(b"\r\n");
        if !m.to_head && !no_body(status) {
            out.extend_from_slice(body);
        }
        // Within the request timeout: a client that stops reading holds its connection
        // no longer.
        let written = tokio::time::timeout(self.limits.timeout, self.stream.write_all(&self.out));
        match written.await {
            Ok(Ok(())) if m.keep => Next::KeepOpen,
            _ => Next::Close,
        }
    }

    /// Writes an answer the gateway made itself (an error, or its router's), its body
    /// read whole first.
    async fn answer_local(&mut self, resp: Response<Body>, m: Manner) -> Next {
        let (parts, body) = resp.into_parts();
        let Ok(body) = axum::body::to_bytes(body, upstream::MAX_ANSWER).await else {
            return Next::Close;
        };
        // A router answer that says the connection ends is obeyed.
        let m = if parts
            .headers
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            m.closing()
        } else {
            m
        };
        let out = &mut self.out;
        out.clear();
        let reason = parts.status.canonical_reason().unwrap_or("");
        let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", parts.status.as_u16());
        for (name, value) in &parts.headers {
            if wire::is_hop_by_hop(name.as_str().as_bytes())
                && !length_of_head(name.as_str().as_bytes(), m)
            {
                continue;
            }
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
        if !parts.headers.contains_key(header::DATE) {
            date(out);
        }
        self.finish(parts.status.as_u16(), &body, m).await
    }

    /// Closes after a refusal: what the client still sends is read and dropped for a
    /// moment, so that the kernel does not reset the connection under the answer.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut left = LINGER_BYTES;
        let drain = async {
            while left > 0 {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// Whether `name` is the length of a HEAD answer: passed on as it is (the body a GET
/// would get), where every other answer's length is the gateway's to write.
fn length_of_head(name: &[u8], m: Manner) -> bool {
    m.to_head && name.eq_ignore_ascii_case(b"content-length")
}

/// The upstream that serves the request's path, with the prefix that matched: only for
/// a target of plain visible characters, which is what the gateway sends on as it came.
fn forwardable<'g>(
    gw: &'g Gateway,
    head: &RequestHead,
) -> Option<(&'static str, &'g Arc<Upstream>)> {
    let target = head.origin()?;
    if !target.iter().all(|b| (0x21..0x7f).contains(b)) {
        return None;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    gw.route(std::str::from_utf8(path).ok()?)
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The `Date` field an origin server's answer carries (RFC 9110 §6.6.1).
fn date(out: &mut Vec<u8>) {
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    field(out, b"date", now.as_bytes());
}

/// `resp` with a request id: the client's (when usable) or a new one.
fn with_id(mut resp: Response<Body>, given: Option<&[u8]>) -> Response<Body> {
    resp.headers_mut()
        .insert(X_REQUEST_ID, http::request_id(given));
    resp
}

/// Why a forwarded request got no upstream answer.
enum Failed {
    /// The gateway's own answer instead.
    Answer(Response<Body>),
    /// The client is gone.
    Gone,
}

/// A forwarded request, from its head to its answer written.
async fn forwarded(
    up: &Arc<Upstream>,
    prefix: &'static str,
    client: &mut Client,
    head: RequestHead,
) -> Next {
    let started = Instant::now();
    let limits = client.limits;
    let id = http::request_id(head.head.get("x-request-id"));
    let method = HttpMethod::from(&head.method);
    let m = Manner::of(&head);
    let span = http::request_span(&head.method, String::from_utf8_lossy(head.target()), &id);
    // Whether the request's body was read to its end: if not, the connection cannot
    // carry another request.
    let mut body_read = head.body == Framing::None;
    let work = async {
        let body = client
            .read_body(&head)
            .await
            .map_err(|refusal| refusal.answer().map_or(Failed::Gone, Failed::Answer))?;
        body_read = true;
        // The peer's address is kept per connection; a proxy's clients differ per request.
        let forwarded_for = match &client.forwarded_for {
            Some(peer) => Cow::Borrowed(peer),
            None => Cow::Owned(client.named_by_proxy(&head)),
        };
        upstream_request(&mut client.out, up, &head, &forwarded_for, &id, &body);
        let again = head.method.is_idempotent();
        up.conns
            .exchange(&client.out, again, m.to_head)
            .await
            .map_err(|e| {
                tracing::warn!(upstream = up.name, error = %e, "upstream unreachable");
                Failed::Answer(error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("The {} service is unavailable", up.name),
                ))
            })
    };
    let outcome = tokio::time::timeout(limits.timeout, AssertUnwindSafe(work).catch_unwind())
        .instrument(span.clone())
        .await;
    let (status, next) = match outcome {
        Ok(Ok(Ok(answer))) => {
            let status = answer.head.status;
            (status, write_answer(client, &answer, &id, m).await)
        }
        // The client went away in the middle of its body: nobody to answer (nginx's 499).
        Ok(Ok(Err(Failed::Gone))) => (499, Next::Close),
        Ok(Ok(Err(Failed::Answer(mut resp)))) => {
            resp.headers_mut().insert(X_REQUEST_ID, id.clone());
            let m = if body_read { m } else { m.closing() };
            (resp.status().as_u16(), client.answer_local(resp, m).await)
        }
        failed => {
            let mut resp = match failed {
                // The client's body was still coming: its delay, not the upstream's.
                Err(_) if !body_read => ApiError::SlowBody.into_response(),
                Err(_) => ApiError::Timeout.into_response(),
                _ => error_response(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
            };
            resp.headers_mut().insert(X_REQUEST_ID, id.clone());
            let status = resp.status().as_u16();
            // Where the request stood is unknown: the connection ends with the answer.
            client.answer_local(resp, m.closing()).await;
            (status, Next::Close)
        }
    };
    let took = started.elapsed();
    http::answered(
        &span,
        method,
        Route::Named(Cow::Borrowed(prefix)),
        status,
        took,
    );
    next
}

/// The request as the upstream gets it, whole: the target (in origin form) after the
/// upstream's base path; the client's fields but the hop-by-hop ones and those the
/// gateway states itself (`Host`, `X-Forwarded-*`, the request id); the body with its
/// length.
fn upstream_request(
    out: &mut Vec<u8>,
    up: &Upstream,
    head: &RequestHead,
    forwarded_for: &HeaderValue,
    id: &HeaderValue,
    body: &[u8],
) {
    out.clear();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(up.base_path.as_bytes());
    out.extend_from_slice(head.origin().unwrap_or(b"/"));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    field(out, b"host", up.conns.host.as_bytes());
    // The host the client asked for: an absolute-form target's, which wins over `Host`
    // (RFC 9112 §3.2.2), else the `Host` field's.
    let mut host = head.authority();
    for f in &head.head.fields {
        let name = head.head.name(f);
        if name.eq_ignore_ascii_case(b"host") {
            host = host.or(Some(head.head.value(f)));
            continue;
        }
        if head.head.hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"x-forwarded-for")
            || name.eq_ignore_ascii_case(b"x-forwarded-host")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"x-request-id")
        {
            continue;
        }
        field(out, name, head.head.value(f));
    }
    // The gateway is the edge: it states the client's address and the host the client
    // asked for (auth's cookies follow it), it does not relay what a client claims.
    field(out, b"x-forwarded-for", forwarded_for.as_bytes());
    if let Some(host) = host {
        field(out, b"x-forwarded-host", host);
    }
    out.extend_from_slice(b"x-forwarded-proto: http\r\n");
    field(out, b"x-request-id", id.as_bytes());
    if head.body != Framing::None || !body.is_empty() {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Writes an upstream's answer to the client: its status and fields but the hop-by-hop
/// ones, the request id and `Date` when the upstream gave none, and the body with its
/// length.
async fn write_answer(client: &mut Client, answer: &Answer, id: &HeaderValue, m: Manner) -> Next {
    let head = &answer.head;
    let out = &mut client.out;
    out.clear();
    let reason = match head.reason() {
        b"" => StatusCode::from_u16(head.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
            .as_bytes(),
        given => given,
    };
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    let (mut has_id, mut has_date) = (false, false);
    for f in &head.head.fields {
        let name = head.head.name(f);
        if head.head.hop_by_hop(name) && !length_of_head(name, m) {
            continue;
        }
        has_id |= name.eq_ignore_ascii_case(b"x-request-id");
        has_date |= name.eq_ignore_ascii_case(b"date");
        field(out, name, head.head.value(f));
    }
    if !has_id {
        field(out, b"x-request-id", id.as_bytes());
    }
    if !has_date {
        date(out);
    }
    client.finish(head.status, &answer.body, m).await
}

/// A request for the gateway itself (or for no one): to its router, as hyper would have
/// handed it, with the body read first (within the request timeout).
async fn local(app: &Router, peer: SocketAddr, client: &mut Client, head: RequestHead) -> Next {
    let m = Manner::of(&head);
    let given = head.head.get("x-request-id");
    let started = Instant::now();
    let (resp, manner) =
        match tokio::time::timeout(client.limits.timeout, client.read_body(&head)).await {
            Ok(Ok(body)) => match router_request(&head, peer, body) {
                Some(req) => {
                    let resp = match app.clone().oneshot(req).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    };
                    return client.answer_local(resp, m).await;
                }
                None => (
                    error_response(StatusCode::BAD_REQUEST, "Invalid request path"),
                    m,
                ),
            },
            Ok(Err(refusal)) => match refusal.answer() {
                Some(resp) => (resp, m.closing()),
                None => return Next::Close,
            },
            Err(_) => (ApiError::SlowBody.into_response(), m.closing()),
        };
    // Answered here, before the router and its layer: logged and counted as that layer
    // would have (route "unrouted"), the time from the head on.
    let resp = with_id(resp, given);
    let target = String::from_utf8_lossy(head.target());
    let span = http::request_span(&head.method, target, &resp.headers()[X_REQUEST_ID]);
    let status = resp.status().as_u16();
    let next = client.answer_local(resp, manner).await;
    let took = started.elapsed();
    let route = Route::Named(Cow::Borrowed("unrouted"));
    http::answered(&span, HttpMethod::from(&head.method), route, status, took);
    next
}

/// The request as axum's router takes it (with the client's address, as
/// `into_make_service_with_connect_info` gives it).
fn router_request(head: &RequestHead, peer: SocketAddr, body: BytesMut) -> Option<Request<Body>> {
    let uri = Uri::try_from(head.target()).ok()?;
    let mut req = Request::builder()
        .method(head.method.clone())
        .uri(uri)
        .version(if head.http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        });
    for f in &head.head.fields {
        req = req.header(head.head.name(f), head.head.value(f));
    }
    let mut req = req.body(Body::from(body.freeze())).ok()?;
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    Some(req)
}
