//! The gateway's HTTP/1.1 server. hyper's server and client around a forwarded request
//! (two codecs, a header map each way, a task per upstream connection and a channel to
//! it) cost the gateway more CPU than nginx spends on the same forwarding
//! (docs/benchmarks.md). So the edge reads each request head with httparse, judges its
//! framing strictly ([`wire`]), writes the request to the upstream as one message with a
//! length of its own, reads the whole answer and writes it to the client in one write.
//! Requests for the gateway's own endpoints (and unknown paths) go to its router with the
//! shared layers, as before.
//!
//! Per forwarded request it does what `http::layers` does for a service's: the request
//! id (a client's plain token kept, else a new one), the `request` span and the access
//! log line, the timeout (503), a panic turned into a 500, the body read within the limit
//! (413), the metrics by upstream, and the id on the answer.

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
use bytes::BytesMut;
use futures::FutureExt;
use tix_common::error::{ApiError, error_response};
use tix_common::http::{self, EdgeConn, Limits, X_REQUEST_ID};
use tix_common::metrics::{HttpMethod, Route, observe_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;
use tracing::Instrument;

use crate::upstream::{self, Answer};
use crate::wire::{self, ChunkError, Chunked, Framing, HeadError, RequestHead};
use crate::{Gateway, Upstream};

/// How long a connection may take to send a request's head, counted from when the
/// gateway starts waiting for it: an idle keep-alive connection is closed after this
/// too, and a client that trickles a head (slowloris) holds its connection no longer.
const HEAD_WITHIN: Duration = Duration::from_secs(30);

pub(crate) fn edge(gw: Arc<Gateway>, limits: Limits) -> http::Edge {
    Arc::new(move |conn| Box::pin(serve(gw.clone(), limits, conn)))
}

/// One client connection.
struct Client {
    stream: TcpStream,
    /// Read and not used yet: the start of the next request, or of a body.
    buf: BytesMut,
    /// The answer being put together.
    out: Vec<u8>,
    /// The client's address as stated upstream (`X-Forwarded-For`).
    forwarded_for: HeaderValue,
}

/// What became of a request, for the connection: whether it can carry another.
enum Next {
    KeepOpen,
    Close,
}

async fn serve(gw: Arc<Gateway>, limits: Limits, conn: EdgeConn) {
    let EdgeConn {
        stream,
        peer,
        app,
        mut stopping,
    } = conn;
    let mut client = Client {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        out: Vec::with_capacity(4 * 1024),
        forwarded_for: crate::client_address(peer),
    };
    loop {
        let head = tokio::select! {
            biased;
            head = tokio::time::timeout(HEAD_WITHIN, client.read_head()) => head,
            // Stopping: a connection between requests closes (one in the middle of a
            // head would only be cut short a little later).
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let head = match head {
            Ok(Ok(Some(head))) => head,
            // The client closed between requests, or timed out, or the socket failed.
            Ok(Ok(None)) | Err(_) | Ok(Err(Refusal::Gone)) => return,
            Ok(Err(Refusal::Head(e))) => {
                let status = match e {
                    HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    HeadError::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
                    HeadError::Bad(_) => StatusCode::BAD_REQUEST,
                };
                let _ = client
                    .answer_local(
                        error_response(status, &e.to_string()),
                        false,
                        limits,
                        false,
                        false,
                    )
                    .await;
                return;
            }
        };
        let next = match forwardable(&gw, &head) {
            Some((prefix, up)) => forwarded(up, prefix, limits, &mut client, head).await,
            None => local(&app, peer, limits, &mut client, head).await,
        };
        if matches!(next, Next::Close) || *stopping.borrow() {
            return;
        }
    }
}

/// Why no request could be read.
enum Refusal {
    Head(HeadError),
    /// The connection failed or closed in the middle of a head.
    Gone,
}

impl Client {
    /// The next request's head: `None` when the client closed the connection between
    /// requests. A pipelined request may already be in the buffer.
    async fn read_head(&mut self) -> Result<Option<RequestHead>, Refusal> {
        loop {
            if !self.buf.is_empty()
                && let Some(head) = wire::parse_request(&mut self.buf).map_err(Refusal::Head)?
            {
                return Ok(Some(head));
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8 * 1024);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() => return Ok(None),
                Ok(0) | Err(_) => return Err(Refusal::Gone),
                Ok(_) => {}
            }
        }
    }

    /// Reads the request's body within `limit`.
    async fn read_body(
        &mut self,
        head: &RequestHead,
        limit: usize,
    ) -> Result<BytesMut, BodyRefusal> {
        if let Framing::Length(n) = head.body
            && n > limit as u64
        {
            // Refused unread, before any `100 Continue`.
            return Err(BodyRefusal::TooLarge);
        }
        if head.expect_continue && head.body != Framing::None && !head.http10 && self.buf.is_empty()
        {
            // The client waits for a word before it sends the body (unless it has begun).
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| BodyRefusal::Gone)?;
        }
        match head.body {
            Framing::None | Framing::Close => Ok(BytesMut::new()),
            Framing::Length(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= limit)
                    .ok_or(BodyRefusal::TooLarge)?;
                while self.buf.len() < n {
                    self.buf.reserve(n - self.buf.len());
                    self.read_some().await?;
                }
                Ok(self.buf.split_to(n))
            }
            Framing::Chunked => {
                let mut chunked = Chunked::default();
                let mut body = BytesMut::new();
                loop {
                    match chunked.feed(&mut self.buf, &mut body, limit) {
                        Ok(true) => return Ok(body),
                        Ok(false) => self.read_some().await?,
                        Err(ChunkError::TooLarge) => return Err(BodyRefusal::TooLarge),
                        Err(ChunkError::Malformed) => return Err(BodyRefusal::Malformed),
                    }
                }
            }
        }
    }

    async fn read_some(&mut self) -> Result<(), BodyRefusal> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8 * 1024);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => Err(BodyRefusal::Gone),
            Ok(_) => Ok(()),
        }
    }

    /// Writes `out` to the client within the request timeout (a client that stops
    /// reading holds its connection no longer).
    async fn flush(&mut self, limits: Limits) -> Next {
        match tokio::time::timeout(limits.timeout, self.stream.write_all(&self.out)).await {
            Ok(Ok(())) => Next::KeepOpen,
            _ => Next::Close,
        }
    }

    /// Writes an answer the gateway made itself (an error, or its router's), its body
    /// whole. `keep` says whether the connection may be kept after it.
    async fn answer_local(
        &mut self,
        resp: Response<Body>,
        to_head: bool,
        limits: Limits,
        http10: bool,
        keep: bool,
    ) -> Next {
        let (parts, body) = resp.into_parts();
        let Ok(body) = axum::body::to_bytes(body, upstream::MAX_ANSWER).await else {
            return Next::Close;
        };
        // A router answer that says the connection ends (its body left unread) is obeyed.
        let keep = keep
            && !parts
                .headers
                .get(header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        self.out.clear();
        let reason = parts.status.canonical_reason().unwrap_or("");
        let _ = write!(self.out, "HTTP/1.1 {} {reason}\r\n", parts.status.as_u16());
        for (name, value) in &parts.headers {
            if wire::is_hop_by_hop(name.as_str().as_bytes()) && name != header::CONTENT_LENGTH {
                continue;
            }
            if name == header::CONTENT_LENGTH && !to_head {
                continue;
            }
            field(&mut self.out, name.as_str().as_bytes(), value.as_bytes());
        }
        if !parts.headers.contains_key(header::DATE) {
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            field(&mut self.out, b"date", date.as_bytes());
        }
        if !to_head && !no_body(parts.status.as_u16()) {
            let _ = write!(self.out, "content-length: {}\r\n", body.len());
        }
        connection_field(&mut self.out, keep, http10);
        self.out.extend_from_slice(b"\r\n");
        if !to_head {
            self.out.extend_from_slice(&body);
        }
        match self.flush(limits).await {
            Next::KeepOpen if keep => Next::KeepOpen,
            _ => Next::Close,
        }
    }
}

/// Why a forwarded request got no upstream answer.
enum Failed {
    /// The gateway's own answer instead.
    Answer(Response<Body>),
    /// The client is gone.
    Gone,
}

/// Why a request body was not read.
enum BodyRefusal {
    TooLarge,
    Malformed,
    Gone,
}

/// The upstream that serves the request's path, with the prefix that matched: only for
/// an origin-form target (`/path?query`) of plain visible characters, which is what the
/// gateway sends on as it came.
fn forwardable<'g>(
    gw: &'g Gateway,
    head: &RequestHead,
) -> Option<(&'static str, &'g Arc<Upstream>)> {
    let target = head.target();
    if target.first() != Some(&b'/') || !target.iter().all(|b| (0x21..0x7f).contains(b)) {
        return None;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    gw.route(std::str::from_utf8(path).ok()?)
}

fn no_body(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The `Connection` field an answer needs, if any: HTTP/1.1 keeps by default, 1.0 closes.
fn connection_field(out: &mut Vec<u8>, keep: bool, http10: bool) {
    match (keep, http10) {
        (false, _) => out.extend_from_slice(b"connection: close\r\n"),
        (true, true) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, false) => {}
    }
}

/// A forwarded request, from its head to its answer written.
async fn forwarded(
    up: &Arc<Upstream>,
    prefix: &'static str,
    limits: Limits,
    client: &mut Client,
    head: RequestHead,
) -> Next {
    let started = Instant::now();
    let id = http::request_id(head.head.get("x-request-id"));
    let method = HttpMethod::from(&head.method);
    let to_head = head.method == Method::HEAD;
    let target = std::str::from_utf8(head.target()).unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        method = %head.method,
        uri = %target,
        request_id = %id.to_str().unwrap_or("-"),
    );
    // Whether the request's body was read to its end: if not, the connection cannot
    // carry another request.
    let mut body_read = head.body == Framing::None;
    let work = async {
        let body = match client.read_body(&head, limits.body_bytes).await {
            Ok(body) => body,
            Err(BodyRefusal::TooLarge) => {
                return Err(Failed::Answer(ApiError::PayloadTooLarge.into_response()));
            }
            Err(BodyRefusal::Malformed) => {
                return Err(Failed::Answer(error_response(
                    StatusCode::BAD_REQUEST,
                    "Malformed chunked body",
                )));
            }
            Err(BodyRefusal::Gone) => return Err(Failed::Gone),
        };
        body_read = true;
        upstream_request(
            &mut client.out,
            up,
            &head,
            &client.forwarded_for,
            &id,
            &body,
        );
        let again = head.method.is_idempotent();
        match up.conns.exchange(&client.out, again, to_head).await {
            Ok(answer) => Ok(answer),
            Err(e) => {
                tracing::warn!(upstream = up.name, error = %e, "upstream unreachable");
                Err(Failed::Answer(error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("The {} service is unavailable", up.name),
                )))
            }
        }
    };
    let outcome = tokio::time::timeout(limits.timeout, AssertUnwindSafe(work).catch_unwind())
        .instrument(span.clone())
        .await;
    let keep = head.keep_alive;
    let (status, next) = match outcome {
        Ok(Ok(Ok(answer))) => {
            let status = answer.head.status;
            let next = write_answer(client, &answer, &id, to_head, keep, head.http10, limits).await;
            (status, next)
        }
        // The client went away in the middle of its body: nobody to answer (nginx's 499).
        Ok(Ok(Err(Failed::Gone))) => (499, Next::Close),
        Ok(Ok(Err(Failed::Answer(mut resp)))) => {
            let status = resp.status().as_u16();
            resp.headers_mut().insert(X_REQUEST_ID, id.clone());
            let keep = keep && body_read;
            let next = client
                .answer_local(resp, to_head, limits, head.http10, keep)
                .await;
            (status, next)
        }
        failed => {
            let mut resp = match failed {
                Err(_) => ApiError::Timeout.into_response(),
                _ => error_response(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
            };
            resp.headers_mut().insert(X_REQUEST_ID, id.clone());
            let status = resp.status().as_u16();
            // Where the request stood is unknown: the connection ends with the answer.
            let _ = client
                .answer_local(resp, to_head, limits, head.http10, false)
                .await;
            (status, Next::Close)
        }
    };
    let took = started.elapsed();
    observe_request(method, Route::Named(Cow::Borrowed(prefix)), status, took);
    span.in_scope(|| {
        tracing::info!(
            target: "tower_http::trace::on_response",
            latency = %Micros(took),
            status,
            "finished processing request"
        );
        if status >= 500 {
            // tower-http's failure line, in its default unit (ms).
            tracing::error!(
                target: "tower_http::trace::on_failure",
                classification = %format_args!("Status code: {status}"),
                latency = %format_args!("{} ms", took.as_millis()),
                "response failed"
            );
        }
    });
    next
}

/// The request as the upstream gets it, whole: the target after the upstream's base
/// path, the client's fields but the hop-by-hop ones and those the gateway states itself
/// (`Host`, `X-Forwarded-*`, the request id), and the body with its length.
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
    out.extend_from_slice(head.target());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    field(out, b"host", up.conns.host.as_bytes());
    for f in &head.head.fields {
        let name = head.head.name(f);
        if wire::is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"host")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"x-forwarded-for")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"x-request-id")
            || (head.connection_names_fields && wire::named_by_connection(&head.head, name))
        {
            continue;
        }
        field(out, name, head.head.value(f));
    }
    // The gateway is the edge: it states the client's address, it does not relay one.
    field(out, b"x-forwarded-for", forwarded_for.as_bytes());
    out.extend_from_slice(b"x-forwarded-proto: http\r\n");
    field(out, b"x-request-id", id.as_bytes());
    if head.body != Framing::None || !body.is_empty() {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Writes an upstream's answer to the client: its status and fields but the hop-by-hop
/// ones, the request id when the upstream did not give one back, and the body with its
/// length.
async fn write_answer(
    client: &mut Client,
    answer: &Answer,
    id: &HeaderValue,
    to_head: bool,
    keep: bool,
    http10: bool,
    limits: Limits,
) -> Next {
    let head = &answer.head;
    let out = &mut client.out;
    out.clear();
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    out.extend_from_slice(head.reason());
    out.extend_from_slice(b"\r\n");
    let mut has_id = false;
    for f in &head.head.fields {
        let name = head.head.name(f);
        // A HEAD answer's length is the body a GET would get: passed on as it is.
        let length_of_head = to_head && name.eq_ignore_ascii_case(b"content-length");
        if wire::is_hop_by_hop(name) && !length_of_head {
            continue;
        }
        has_id |= name.eq_ignore_ascii_case(b"x-request-id");
        field(out, name, head.head.value(f));
    }
    if !has_id {
        field(out, b"x-request-id", id.as_bytes());
    }
    if !to_head && !no_body(head.status) {
        let _ = write!(out, "content-length: {}\r\n", answer.body.len());
    }
    connection_field(out, keep, http10);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&answer.body);
    match client.flush(limits).await {
        Next::KeepOpen if keep => Next::KeepOpen,
        _ => Next::Close,
    }
}

/// A request for the gateway itself (or for no one): to its router, as hyper would have
/// handed it, with the body read first.
async fn local(
    app: &Router,
    peer: SocketAddr,
    limits: Limits,
    client: &mut Client,
    head: RequestHead,
) -> Next {
    let to_head = head.method == Method::HEAD;
    let body = match client.read_body(&head, limits.body_bytes).await {
        Ok(body) => body,
        Err(BodyRefusal::TooLarge) => {
            let resp = ApiError::PayloadTooLarge.into_response();
            return client
                .answer_local(resp, to_head, limits, head.http10, false)
                .await;
        }
        Err(BodyRefusal::Malformed) => {
            let resp = error_response(StatusCode::BAD_REQUEST, "Malformed chunked body");
            return client
                .answer_local(resp, to_head, limits, head.http10, false)
                .await;
        }
        Err(BodyRefusal::Gone) => return Next::Close,
    };
    let Some(req) = router_request(&head, peer, body) else {
        let resp = error_response(StatusCode::BAD_REQUEST, "Invalid request path");
        return client
            .answer_local(resp, to_head, limits, head.http10, false)
            .await;
    };
    let resp = match app.clone().oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    client
        .answer_local(resp, to_head, limits, head.http10, head.keep_alive)
        .await
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

/// A latency as the other services' access log writes it (tower-http's, in µs).
struct Micros(Duration);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} μs", self.0.as_micros())
    }
}
