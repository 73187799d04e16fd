//! HTTP/1.1 messages as the edge reads them: heads parsed by httparse (hyper's own
//! parser), each header kept as a place in the head's bytes rather than copied into a
//! map, and the framing of a body decided strictly (RFC 9112 §6): anything a server and a
//! proxy could read two ways is refused, so no request can be smuggled past the gateway.
//! Bodies are forwarded with a `Content-Length` the gateway writes itself, never with the
//! client's framing.

use std::ops::Range;

use axum::http::Method;
use bytes::{Buf, BytesMut};

/// The largest request or response head read; a longer one is refused (431).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in one head (hyper's limit too).
pub const MAX_HEADERS: usize = 100;
/// The longest chunk-size line or trailer section of a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Why a request head is refused, and so its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// 431.
    #[error("The request's headers are too large")]
    TooLarge,
    /// 501: a transfer coding the gateway does not decode.
    #[error("Transfer-Encoding other than chunked is not supported")]
    UnknownCoding,
    /// 400.
    #[error("{0}")]
    Bad(&'static str),
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (a response only).
    Close,
}

/// One header field: where its name and value lie in the head.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// What every head has: its bytes and its fields.
#[derive(Debug)]
pub struct Head {
    pub raw: BytesMut,
    pub fields: Vec<Field>,
    /// `Connection` names other fields than `close`/`keep-alive`: those are hop-by-hop
    /// too.
    pub connection_names_fields: bool,
}

impl Head {
    pub fn name(&self, f: &Field) -> &[u8] {
        &self.raw[f.name.clone()]
    }

    pub fn value(&self, f: &Field) -> &[u8] {
        &self.raw[f.value.clone()]
    }

    /// Whether the field `name` is for this hop only: one of [`is_hop_by_hop`]'s, or one
    /// this message's `Connection` names.
    pub fn hop_by_hop(&self, name: &[u8]) -> bool {
        is_hop_by_hop(name)
            || (self.connection_names_fields
                && self
                    .fields
                    .iter()
                    .filter(|f| self.name(f).eq_ignore_ascii_case(b"connection"))
                    .flat_map(|f| self.value(f).split(|&b| b == b','))
                    .any(|token| trim(token).eq_ignore_ascii_case(name)))
    }

    /// The first value of the field named `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| self.name(f).eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| self.value(f))
    }
}

/// A request's head, parsed and judged.
#[derive(Debug)]
pub struct RequestHead {
    pub head: Head,
    pub method: Method,
    pub target: Range<usize>,
    /// HTTP/1.0 rather than 1.1.
    pub http10: bool,
    pub body: Framing,
    /// Whether the client wants the connection kept after the answer.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl RequestHead {
    pub fn target(&self) -> &[u8] {
        &self.head.raw[self.target.clone()]
    }

    /// The target in origin form (`/path?query`): itself, or the path and query of an
    /// absolute-form target (`http://host/path?query`, which servers must accept too).
    pub fn origin(&self) -> Option<&[u8]> {
        let target = self.target();
        if target.first() == Some(&b'/') {
            return Some(target);
        }
        let (_, rest) = self.absolute()?;
        (rest.first() == Some(&b'/')).then_some(rest)
    }

    /// The authority of an absolute-form target (`host:port`).
    pub fn authority(&self) -> Option<&[u8]> {
        self.absolute().map(|(authority, _)| authority)
    }

    /// An absolute-form target split after its authority, which ends at the first `/`,
    /// `?` or `#` (or the end).
    fn absolute(&self) -> Option<(&[u8], &[u8])> {
        let target = self.target();
        let scheme_len = [&b"http://"[..], b"https://"]
            .into_iter()
            .find(|s| target.len() > s.len() && target[..s.len()].eq_ignore_ascii_case(s))?
            .len();
        let rest = &target[scheme_len..];
        let end = rest
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        Some(rest.split_at(end))
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is incomplete. On
/// success the head's bytes are split off `buf`, which keeps what follows (a body, or the
/// next pipelined request).
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Bad("Unsupported HTTP version")),
        Err(_) => return Err(HeadError::Bad("Malformed request")),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let whole: &[u8] = buf;
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Bad("Malformed request"))?;
    let target = place(whole, req.path.unwrap_or_default().as_bytes());
    let http10 = req.version == Some(0);
    let mut fields = Vec::with_capacity(req.headers.len());
    let mut length: Option<u64> = None;
    let mut codings = 0;
    let mut hosts = 0;
    let mut blank_host = false;
    let mut connection = ConnectionTokens::default();
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            add_length(&mut length, h.value)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::UnknownCoding);
            }
            codings += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection.add(h.value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = trim(h.value).eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            blank_host |= trim(h.value).is_empty();
        }
        fields.push(Field {
            name: place(whole, name),
            value: place(whole, h.value),
        });
    }
    if hosts > 1 {
        return Err(HeadError::Bad("More than one Host"));
    }
    let body = match (codings, length) {
        (0, Some(0) | None) => Framing::None,
        (0, Some(n)) => Framing::Length(n),
        (_, Some(_)) => {
            return Err(HeadError::Bad("Both Content-Length and Transfer-Encoding"));
        }
        (1, None) if !http10 => Framing::Chunked,
        (_, None) => return Err(HeadError::Bad("Invalid Transfer-Encoding")),
    };
    // RFC 9112 §3.2: a server must refuse an HTTP/1.1 request without one, and any request
    // whose one is invalid (an empty host is, RFC 9110 §4.2.1). It is also what auth
    // reads (as X-Forwarded-Host) to tell a client where it was reached.
    if (hosts == 0 && !http10) || blank_host {
        return Err(HeadError::Bad("Missing Host"));
    }
    let keep_alive = connection.keep_alive(http10);
    let connection_names_fields = connection.names_fields;
    let raw = buf.split_to(len);
    Ok(Some(RequestHead {
        head: Head {
            raw,
            fields,
            connection_names_fields,
        },
        method,
        target,
        http10,
        body,
        keep_alive,
        expect_continue,
    }))
}

/// An upstream's response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub head: Head,
    pub status: u16,
    pub reason: Range<usize>,
    pub body: Framing,
    /// Whether the upstream keeps the connection for another request.
    pub keep_alive: bool,
}

impl ResponseHead {
    pub fn reason(&self) -> &[u8] {
        &self.head.raw[self.reason.clone()]
    }
}

/// Parses the response head at the start of `buf` (the answer to a `HEAD` request when
/// `to_head`), splitting it off as [`parse_request`] does.
pub fn parse_response(
    buf: &mut BytesMut,
    to_head: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HeadError::Bad("Malformed response")),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let whole: &[u8] = buf;
    let status = resp.code.unwrap_or_default();
    let reason = place(whole, resp.reason.unwrap_or_default().as_bytes());
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut connection = ConnectionTokens::default();
    let mut fields = Vec::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            add_length(&mut length, h.value)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::UnknownCoding);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection.add(h.value);
        }
        fields.push(Field {
            name: place(whole, name),
            value: place(whole, h.value),
        });
    }
    let body = if to_head || no_body(status) {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    let raw = buf.split_to(len);
    Ok(Some(ResponseHead {
        head: Head {
            raw,
            fields,
            connection_names_fields: connection.names_fields,
        },
        status,
        reason,
        body,
        keep_alive: connection.keep_alive(http10),
    }))
}

/// Why a chunked body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Its data passed the limit.
    TooLarge,
    Malformed,
}

/// A chunked body being decoded, a piece at a time as its bytes arrive (a client that
/// sends a byte at a time costs no more than one that sends it whole).
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    /// Trailer bytes seen so far (read and dropped).
    trailers: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

impl Chunked {
    /// Moves the data of every whole piece at the start of `input` to `out` (at most
    /// `limit` bytes in all): `Ok(true)` once the body has ended, `Ok(false)` when more
    /// bytes are needed. What follows the body stays in `input`.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<bool, ChunkError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        if input.len() > MAX_CHUNK_LINE {
                            return Err(ChunkError::Malformed);
                        }
                        return Ok(false);
                    };
                    if end > MAX_CHUNK_LINE {
                        return Err(ChunkError::Malformed);
                    }
                    let size = chunk_size(&input[..end]).ok_or(ChunkError::Malformed)?;
                    input.advance(end + 1);
                    if size == 0 {
                        self.state = ChunkState::Trailers;
                    } else if (out.len() as u64).saturating_add(size) > limit as u64 {
                        return Err(ChunkError::TooLarge);
                    } else {
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(left) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    out.extend_from_slice(&input.split_to(take));
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(ChunkError::Malformed);
                    }
                    input.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
                        if self.trailers + input.len() > MAX_CHUNK_LINE {
                            return Err(ChunkError::Malformed);
                        }
                        return Ok(false);
                    };
                    self.trailers += end + 2;
                    let line = &input[..end];
                    // A field line, as in a head: a name, a colon, no stray CR or LF.
                    let field =
                        line.contains(&b':') && !line.iter().any(|b| matches!(b, b'\r' | b'\n'));
                    if self.trailers > MAX_CHUNK_LINE || (end > 0 && !field) {
                        return Err(ChunkError::Malformed);
                    }
                    input.advance(end + 2);
                    if end == 0 {
                        return Ok(true);
                    }
                }
            }
        }
    }
}

/// A chunk-size line without its LF: hex digits (1 to 16), optional blanks, optional
/// extensions after `;`, then CR (RFC 9112 §7.1). Stricter than httparse's, as hyper is:
/// no empty size, no bare LF or CR inside.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r")?;
    if line.contains(&b'\r') {
        return None;
    }
    let digits = line.split(|&b| b == b';').next()?.trim_ascii_end();
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Whether a header field describes one hop rather than the message (RFC 9110 §7.6.1):
/// never forwarded. The framing fields are the gateway's to write.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 10] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether a response with `status` never has a body (RFC 9110 §6.4.1).
pub fn no_body(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

/// What a message's `Connection` fields say.
#[derive(Debug, Default)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
    names_fields: bool,
}

impl ConnectionTokens {
    fn add(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',').map(trim) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty() {
                self.names_fields = true;
            }
        }
    }

    /// HTTP/1.1 keeps a connection unless told to close it; 1.0 closes unless told to
    /// keep it. A `close` anywhere wins.
    fn keep_alive(&self, http10: bool) -> bool {
        !self.close && (!http10 || self.keep_alive)
    }
}

/// Adds one `Content-Length` field's values: every value, in every field, must be the
/// same number. `5, 6`, `+5` or two fields that disagree are how a body is made to mean
/// two things.
fn add_length(length: &mut Option<u64>, value: &[u8]) -> Result<(), HeadError> {
    for v in value.split(|&b| b == b',') {
        let n = decimal(trim(v)).ok_or(HeadError::Bad("Invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(HeadError::Bad("Conflicting Content-Length"));
        }
        *length = Some(n);
    }
    Ok(())
}

/// Where `part` (a slice httparse returned) lies in `whole`; an empty part (httparse
/// gives `""` for a missing reason phrase, not a slice of the head) is `0..0`.
fn place(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if !part.is_empty() && end <= whole.len() => start..end,
        _ => 0..0,
    }
}

/// Whether `bytes` may hold the end of a head (an empty line) or a fault httparse would
/// report at once (a CR not followed by LF): the edge parses a long head again only then.
pub fn head_may_end(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .any(|w| w == b"\n\n" || (w[0] == b'\r' && w[1] != b'\n'))
        || bytes.windows(3).any(|w| w == b"\n\r\n")
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// A decimal number of digits only (no sign, no spaces), as `Content-Length` is.
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text`, naming a host after the request line of an HTTP/1.1 request that
    /// has none, as HTTP/1.1 requires: these tests are about everything else.
    /// `a_request_without_a_host_is_refused` parses without it.
    fn request(text: &str) -> Result<Option<RequestHead>, HeadError> {
        let mut text = text.to_string();
        if let Some(line_end) = text.find("\r\n")
            && text[..line_end].ends_with("HTTP/1.1")
            && !text.to_ascii_lowercase().contains("\r\nhost:")
        {
            text.insert_str(line_end + 2, "Host: h\r\n");
        }
        parse_request(&mut BytesMut::from(text.as_str()))
    }

    /// HTTP/1.1 needs a Host; HTTP/1.0 predates it. An empty one is no host, in either.
    #[test]
    fn a_request_without_a_host_is_refused() {
        let parse = |t: &str| parse_request(&mut BytesMut::from(t));
        assert_eq!(
            parse("GET / HTTP/1.1\r\n\r\n").unwrap_err(),
            HeadError::Bad("Missing Host")
        );
        assert_eq!(
            parse("GET http://gw/ HTTP/1.1\r\nX-A: 1\r\n\r\n").unwrap_err(),
            HeadError::Bad("Missing Host"),
            "an absolute target does not stand in for the field"
        );
        for blank in ["Host:", "Host:  "] {
            for version in ["1.1", "1.0"] {
                let head = format!("GET / HTTP/{version}\r\n{blank}\r\n\r\n");
                assert_eq!(
                    parse(&head).unwrap_err(),
                    HeadError::Bad("Missing Host"),
                    "{head:?}"
                );
            }
        }
        assert!(
            parse("GET / HTTP/1.1\r\nhOsT: gw\r\n\r\n")
                .unwrap()
                .is_some()
        );
        assert!(parse("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    fn body_of(text: &str) -> Framing {
        request(text).unwrap().unwrap().body
    }

    /// A request's body is read one way only: a length, chunks, or nothing.
    #[test]
    fn framing_of_a_request() {
        assert_eq!(body_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Framing::None);
        assert_eq!(
            body_of("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            Framing::Length(12)
        );
        assert_eq!(
            body_of("POST / HTTP/1.1\r\ncontent-length: 7, 7\r\n\r\n"),
            Framing::Length(7)
        );
        assert_eq!(
            body_of("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Framing::None
        );
        assert_eq!(
            body_of("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Framing::Chunked
        );
    }

    /// Everything a server and a proxy could read two ways is refused before anything is
    /// forwarded: that is how requests are smuggled.
    #[test]
    fn ambiguous_framing_is_refused() {
        for (text, want) in [
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                HeadError::Bad("Both Content-Length and Transfer-Encoding"),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                HeadError::Bad("Conflicting Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
                HeadError::Bad("Conflicting Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
                HeadError::Bad("Invalid Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                HeadError::Bad("Invalid Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                HeadError::Bad("Invalid Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                HeadError::UnknownCoding,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
                HeadError::UnknownCoding,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                HeadError::Bad("Invalid Transfer-Encoding"),
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                HeadError::Bad("Invalid Transfer-Encoding"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                HeadError::Bad("More than one Host"),
            ),
            (
                "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
                HeadError::Bad("Malformed request"),
            ),
            (
                "GET / HTTP/9.9\r\n\r\n",
                HeadError::Bad("Unsupported HTTP version"),
            ),
            ("\0\0\0\r\n\r\n", HeadError::Bad("Malformed request")),
        ] {
            assert_eq!(request(text).unwrap_err(), want, "{text:?}");
        }
    }

    /// A head that never ends is refused once it passes the limit, not read forever; so
    /// is one with too many fields.
    #[test]
    fn oversized_heads_are_refused() {
        let long = format!("GET / HTTP/1.1\r\nX-A: {}", "a".repeat(MAX_HEAD));
        assert_eq!(request(&long).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            request(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooLarge
        );
        assert!(request("GET / HTTP/1.1\r\nHost: h\r\n").unwrap().is_none());
    }

    /// Keep-alive follows the version and `Connection`; the head is split off and what
    /// follows it stays for the body or the next request.
    #[test]
    fn keep_alive_and_what_follows_the_head() {
        let ka = |t: &str| request(t).unwrap().unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(
            "GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        let mut buf =
            BytesMut::from("GET /a?b HTTP/1.1\r\nHost: h\r\nX-Request-Id: r1\r\n\r\nGET /next");
        let head = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(head.target(), b"/a?b");
        assert_eq!(head.head.get("x-request-id"), Some(&b"r1"[..]));
        assert_eq!(&buf[..], b"GET /next");
    }

    fn dechunk(pieces: &[&[u8]], limit: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
        let mut c = Chunked::default();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        for p in pieces {
            input.extend_from_slice(p);
            if c.feed(&mut input, &mut out, limit)? {
                return Ok((out.to_vec(), input.to_vec()));
            }
        }
        Err(ChunkError::Malformed)
    }

    /// Chunks decode the same whether they arrive whole or a byte at a time, extensions
    /// and trailers included; what follows the body is left.
    #[test]
    fn chunked_bodies_decode_in_any_pieces() {
        let whole = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (data, rest) = dechunk(&[whole], 100).unwrap();
        assert_eq!((&data[..], &rest[..]), (&b"Wikipedia"[..], &b"NEXT"[..]));
        // A byte at a time: it ends at the blank line, before "NEXT" has come.
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        let (data, rest) = dechunk(&bytes, 100).unwrap();
        assert_eq!((&data[..], &rest[..]), (&b"Wikipedia"[..], &b""[..]));
    }

    /// Too much data, a size that is not hex, data longer than its size, and endless
    /// size lines or trailers are all refused.
    #[test]
    fn bad_chunks_are_refused() {
        assert_eq!(
            dechunk(&[b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"], 8),
            Err(ChunkError::TooLarge)
        );
        assert_eq!(
            dechunk(&[b"ffffffffffffffff\r\n"], 8),
            Err(ChunkError::TooLarge)
        );
        assert_eq!(dechunk(&[b"zz\r\n"], 8), Err(ChunkError::Malformed));
        assert_eq!(dechunk(&[b"2\r\nabc\r\n"], 8), Err(ChunkError::Malformed));
        for bad in [
            &b"\r\n"[..],                // no size at all (httparse takes it as the last)
            b"5;ext\nx\r\nhello\r\n",    // a bare LF inside the size line
            b"5\rx\r\nhello\r\n",        // a bare CR
            b"5\nhello\r\n",             // LF alone ends the line
            b" 5\r\nhello\r\n",          // a blank before the size
            b"0\r\nnot a field\r\n\r\n", // a trailer that is not a field line
        ] {
            assert_eq!(dechunk(&[bad], 8), Err(ChunkError::Malformed), "{bad:?}");
        }
        let endless = vec![b'1'; MAX_CHUNK_LINE + 2];
        assert_eq!(dechunk(&[&endless], 8), Err(ChunkError::Malformed));
        let trailers = format!("0\r\n{}", "X-T: 1\r\n".repeat(MAX_CHUNK_LINE));
        assert_eq!(
            dechunk(&[trailers.as_bytes()], 8),
            Err(ChunkError::Malformed)
        );
    }

    /// A response's body: none for HEAD, 1xx, 204 and 304; else chunks, a length, or
    /// until the connection closes.
    #[test]
    fn framing_of_a_response() {
        let framing = |t: &str, to_head: bool| {
            parse_response(&mut BytesMut::from(t), to_head)
                .unwrap()
                .unwrap()
        };
        let ok = framing("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc", false);
        assert_eq!(
            (ok.body, ok.keep_alive, ok.reason()),
            (Framing::Length(3), true, &b"OK"[..])
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n", true).body,
            Framing::None
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\n\r\n", false).body,
            Framing::None
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .body,
            Framing::Chunked
        );
        let old = framing("HTTP/1.0 200 OK\r\n\r\n", false);
        assert_eq!((old.body, old.keep_alive), (Framing::Close, false));
        assert!(!framing("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false).keep_alive);
    }

    /// A target in absolute form is routed by its path, as an origin-form one is; a
    /// target with no path (or `*`) has no origin form.
    #[test]
    fn origin_form_of_a_target() {
        let origin = |t: &str| {
            request(&format!("GET {t} HTTP/1.1\r\n\r\n"))
                .unwrap()
                .unwrap()
                .origin()
                .map(|o| String::from_utf8(o.to_vec()).unwrap())
        };
        assert_eq!(origin("/a?b").as_deref(), Some("/a?b"));
        assert_eq!(origin("http://h:8080/a?b").as_deref(), Some("/a?b"));
        assert_eq!(origin("HTTPS://h/a").as_deref(), Some("/a"));
        assert_eq!(origin("http://h?x=/a"), None);
        assert_eq!(origin("http://h"), None);
        assert_eq!(origin("*"), None);
        assert_eq!(origin("ftp://h/a"), None);
        let authority = |t: &str| {
            let head = request(&format!("GET {t} HTTP/1.1\r\n\r\n"))
                .unwrap()
                .unwrap();
            head.authority()
                .map(|a| String::from_utf8(a.to_vec()).unwrap())
        };
        assert_eq!(
            authority("http://shop:8080/a").as_deref(),
            Some("shop:8080")
        );
        assert_eq!(authority("http://shop").as_deref(), Some("shop"));
        assert_eq!(authority("/a"), None);
    }

    /// A reason phrase is optional: an answer without one parses (its reason empty).
    #[test]
    fn a_status_line_without_a_reason() {
        let head = parse_response(
            &mut BytesMut::from("HTTP/1.1 200\r\ncontent-length: 0\r\n\r\n"),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((head.status, head.reason()), (200, &b""[..]));
    }

    /// A long head is parsed again only once an empty line (or a stray CR) may be in it.
    #[test]
    fn where_a_head_may_end() {
        assert!(head_may_end(b"x\r\n\r\n"));
        assert!(head_may_end(b"x\n\n"));
        assert!(head_may_end(b"x\ry"));
        assert!(!head_may_end(b"X-A: 1\r\nX-B: 2\r\n"));
        assert!(!head_may_end(b"X-A: 1\r"));
    }

    #[test]
    fn hop_by_hop_fields() {
        for h in [
            "Connection",
            "keep-alive",
            "TE",
            "transfer-encoding",
            "content-length",
        ] {
            assert!(is_hop_by_hop(h.as_bytes()), "{h}");
        }
        for h in ["content-type", "cookie", "x-request-id", "tea"] {
            assert!(!is_hop_by_hop(h.as_bytes()), "{h}");
        }
        let head = request("GET / HTTP/1.1\r\nConnection: keep-alive, X-Secret\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.head.connection_names_fields);
        assert!(head.head.hop_by_hop(b"x-secret"));
        assert!(!head.head.hop_by_hop(b"x-other"));
    }
}
