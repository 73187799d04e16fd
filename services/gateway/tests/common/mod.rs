//! A gateway started alone, and a client that writes HTTP/1.1 by hand and reads the answers
//! back with a minimal parser, for the gateway's tests.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use tix_testkit::{Proc, bin, free_port};

/// Only keeps a broken gateway from hanging a test; nothing here measures time.
pub const WAIT: Duration = Duration::from_secs(10);
pub const NOT_FOUND: &str = r#"{"errors":[{"message":"Not found"}]}"#;

/// One client connection to the gateway, with bytes read but not yet parsed.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

/// An answer off the wire; header names in lower case.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut named = self.headers.iter().filter(|(n, _)| n == name);
        named.next().map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// The status and the ticket title in the body.
    pub fn titled(&self) -> (u16, Value) {
        (self.status, self.json()["title"].clone())
    }
}

/// How a connection ended: the status of the answer if one came, then closed (EOF or a
/// reset) with nothing more, still open after [`WAIT`], or other bytes (and what).
#[derive(Debug, PartialEq)]
pub enum End {
    Closed(Option<u16>),
    Open(Option<u16>),
    Junk(Option<u16>, String),
}

impl Conn {
    /// `gw` is the gateway's base URL, `http://127.0.0.1:<port>`.
    pub fn open(gw: &str) -> Conn {
        let stream = TcpStream::connect(gw.trim_start_matches("http://")).expect("connecting");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let buf = Vec::new();
        Conn { stream, buf }
    }

    /// Writes what it can: the gateway may close before taking it all, which the reads
    /// that follow find out.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let _ = self.stream.write_all(bytes.as_ref());
    }

    /// Reads until the buffer holds `n` bytes: `Err("closed")` at EOF or a reset,
    /// `Err("open")` when nothing comes within [`WAIT`].
    pub fn want(&mut self, n: usize) -> Result<(), String> {
        let mut chunk = [0u8; 16 * 1024];
        while self.buf.len() < n {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("closed".into()),
                Ok(got) => self.buf.extend_from_slice(&chunk[..got]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err("open".into());
                }
                Err(_) => return Err("closed".into()),
            }
        }
        Ok(())
    }

    /// The next answer (to a `HEAD` when `head`: no body), or why there is none.
    pub fn try_response(&mut self, head: bool) -> Result<Resp, String> {
        let end = loop {
            match self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(end) => break end,
                None => self.want(self.buf.len() + 1)?,
            }
        };
        let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let status = (first.starts_with("HTTP/1.") && first.get(8..9) == Some(" "))
            .then(|| first.get(9..12)?.parse().ok())
            .flatten()
            .ok_or_else(|| format!("not a status line: {first:?}"))?;
        let headers = (lines.filter_map(|l| l.split_once(':')))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        // Chunked answers would need decoding; the services send none.
        let len = match resp.header("content-length") {
            Some(len) => len.parse().map_err(|e| format!("length {len:?}: {e}"))?,
            None if resp.header("transfer-encoding").is_some() => return Err("chunked".into()),
            // Delimited by the close (RFC 9112 §6.3); `closes` then says if it came.
            None => self.want(usize::MAX).map_or(self.buf.len(), |()| 0),
        };
        self.want(len)?;
        resp.body = self.buf.drain(..len).collect();
        Ok(resp)
    }

    /// The next answer; fails the test when there is none.
    pub fn response(&mut self) -> Resp {
        (self.try_response(false)).unwrap_or_else(|e| panic!("expected an answer: {e}"))
    }

    /// `"closed"` when the connection closes (EOF or a reset) with nothing more sent,
    /// `"open"` when it is still open after [`WAIT`], else the bytes that came.
    pub fn closes(&mut self) -> String {
        match self.want(self.buf.len() + 1) {
            Err(e) if self.buf.is_empty() => e,
            _ => format!("more: {:?}", String::from_utf8_lossy(&self.buf)),
        }
    }

    /// What became of the connection: an answer or not, closed or not.
    pub fn end(&mut self) -> End {
        let (status, then) = match self.try_response(false) {
            Ok(r) => (Some(r.status), self.closes()),
            Err(e) => (None, e),
        };
        match then.as_str() {
            "closed" => End::Closed(status),
            "open" => End::Open(status),
            _ => End::Junk(status, then),
        }
    }
}

/// `raw` on a connection of its own; how that connection ended.
pub fn refusal(gw: &str, raw: impl AsRef<[u8]>) -> End {
    let mut c = Conn::open(gw);
    c.send(raw);
    c.end()
}

/// One request on a connection of its own; the answer.
pub fn once(gw: &str, raw: impl AsRef<[u8]>) -> Resp {
    let mut c = Conn::open(gw);
    c.send(raw);
    c.response()
}

/// A GET of `path` with `headers` (lines, each ending in CRLF).
pub fn get_raw(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{headers}\r\n")
}

pub fn get(gw: &str, path: &str) -> Resp {
    once(gw, get_raw(path, ""))
}

/// A gateway whose tickets upstream is `tickets` (the others are addresses where nothing
/// listens), with `--request-timeout 1s`; its URL.
pub fn gateway(tickets: &str, logs: &std::path::Path) -> (Proc, String) {
    gateway_with(tickets, logs, &[])
}

/// The same, with more arguments.
pub fn gateway_with(tickets: &str, logs: &std::path::Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "--port".to_string(),
        "0".into(),
        "--request-timeout".into(),
        "1s".into(),
        "--tickets-url".into(),
        format!("http://{tickets}"),
    ];
    for other in ["auth", "orders", "payments", "expiration"] {
        args.push(format!("--{other}-url"));
        args.push(format!("http://127.0.0.1:{}", free_port()));
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut gateway = Proc::spawn_env("tix-gateway", &bin("tix-gateway"), &argv, &[], logs);
    let line = gateway.wait_for_line("listening on", Duration::from_secs(30));
    let url = line.rsplit(' ').next().unwrap().to_string();
    (gateway, url)
}

/// Waits until the gateway has counted a request in `/metrics` and logged it (both happen a
/// moment after the client has its answer); fails the test with the log's tail after
/// [`WAIT`].
pub fn until_counted_and_logged(
    gateway: &Proc,
    counted: impl Fn() -> bool,
    logged: impl Fn() -> bool,
) {
    let deadline = std::time::Instant::now() + WAIT;
    while !(counted() && logged()) {
        assert!(
            std::time::Instant::now() < deadline,
            "counted {}, logged {}: {}",
            counted(),
            logged(),
            gateway.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
