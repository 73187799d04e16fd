//! Keep-alive HTTP/1.1 connections to one upstream, driven from the request's own task.
//!
//! The edge writes a forwarded request's bytes on an idle connection (or a new one) and
//! reads the whole answer back before it writes anything to the client: no task per
//! connection, no channel between tasks, no header map (docs/benchmarks.md, "The gateway's
//! own HTTP/1.1"). Answers are read whole, within [`MAX_ANSWER`], so the connection goes
//! back on its stack at once, whatever the client's speed.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{self, Chunked, Framing, ResponseHead};

/// Idle connections kept per upstream; more than this many at once are closed when done.
const MAX_IDLE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle connection older than this is closed rather than used: something between the
/// gateway and the upstream may have dropped it meanwhile without a word.
const IDLE_AT_MOST: Duration = Duration::from_secs(30);
/// The largest answer body read from an upstream (the services' largest, a page of 200
/// tickets, is ~60 KB); a larger one is a 502.
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// Why a request got no answer from an upstream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connecting timed out")]
    ConnectTimeout,
    /// Not a byte of the request went out: the connection was closed already.
    #[error("sending the request: {0}")]
    Unsent(std::io::Error),
    #[error("sending the request: {0}")]
    Send(std::io::Error),
    #[error("the connection closed before an answer")]
    NoAnswer,
    #[error("reading the answer: {0}")]
    Read(std::io::Error),
    #[error("the connection closed in the middle of the answer")]
    Cut,
    #[error("invalid answer: {0}")]
    Invalid(&'static str),
}

/// One upstream's address and its idle connections.
#[derive(Debug)]
pub struct Upstream {
    /// `host:port`, as `TcpStream::connect` takes it.
    addr: String,
    /// The `Host` every request to it carries.
    pub host: String,
    /// Most recently used last, each with when it went idle.
    idle: Mutex<VecDeque<(Conn, Instant)>>,
}

/// A connection to an upstream, with what has been read from it and not used yet.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// An upstream's answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub head: ResponseHead,
    pub body: BytesMut,
}

impl Upstream {
    /// An upstream at `authority` (`host:port`; port 80 when it has none).
    pub fn new(authority: &axum::http::uri::Authority) -> Upstream {
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        Upstream {
            addr: format!("{host}:{port}"),
            // As a client writes it: no user info, and no port when it is the default.
            host: match authority.port_u16() {
                Some(p) if p != 80 => format!("{host}:{p}"),
                _ => host.to_string(),
            },
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// Sends `request` (a whole message) and reads the answer. An idle connection the
    /// upstream closed meanwhile is passed over (one that took no byte of the request
    /// too). A request that went out on a kept connection and got nothing back goes
    /// again, once, on a fresh one when `again` (it is idempotent): the upstream may have
    /// closed the connection just as it was written — or crashed on the request, which
    /// is why a POST is not sent twice.
    pub async fn exchange(
        &self,
        request: &[u8],
        again: bool,
        to_head: bool,
    ) -> Result<Answer, Error> {
        while let Some(mut conn) = self.take_idle() {
            match conn.exchange(request, to_head).await {
                Ok(answer) => return Ok(self.done(conn, answer)),
                Err(Error::Unsent(_)) => {}
                Err(Error::NoAnswer) if again => break,
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.connect().await?;
        let answer = conn.exchange(request, to_head).await?;
        Ok(self.done(conn, answer))
    }

    /// Puts `conn` back when the answer leaves it ready for another request.
    fn done(&self, conn: Conn, answer: Answer) -> Answer {
        let reusable =
            answer.head.keep_alive && answer.head.body != Framing::Close && conn.buf.is_empty();
        if reusable {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() >= MAX_IDLE {
                // Full: the one idle longest is closed to make room.
                idle.pop_front();
            }
            idle.push_back((conn, Instant::now()));
        }
        answer
    }

    fn take_idle(&self) -> Option<Conn> {
        let now = Instant::now();
        let fresh = |since: Instant| now.duration_since(since) < IDLE_AT_MOST;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest wait at the front: those idle too long go, whichever is taken.
        while idle.front().is_some_and(|(_, since)| !fresh(*since)) {
            idle.pop_front();
        }
        while let Some((mut conn, _)) = idle.pop_back() {
            if conn.still_open() {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, Error> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| Error::ConnectTimeout)?
            .map_err(Error::Connect)?;
        stream.set_nodelay(true).map_err(Error::Connect)?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
        })
    }
}

impl Conn {
    /// Whether an idle connection can take a request: nothing has arrived on it since its
    /// last answer was read. The reactor's readiness says so without a system call; only
    /// when it reports something (the upstream's FIN, usually) is the socket read.
    fn still_open(&mut self) -> bool {
        if self.stream.readable().now_or_never().is_none() {
            return true;
        }
        let mut byte = [0u8; 1];
        matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    async fn exchange(&mut self, request: &[u8], to_head: bool) -> Result<Answer, Error> {
        let mut sent = 0;
        while sent < request.len() {
            match self.stream.write(&request[sent..]).await {
                Ok(0) if sent == 0 => {
                    return Err(Error::Unsent(std::io::ErrorKind::WriteZero.into()));
                }
                Ok(0) => return Err(Error::Send(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => sent += n,
                Err(e) if sent == 0 => return Err(Error::Unsent(e)),
                Err(e) => return Err(Error::Send(e)),
            }
        }
        let head = loop {
            match wire::parse_response(&mut self.buf, to_head) {
                Ok(Some(head)) if head.status == 101 => {
                    return Err(Error::Invalid("an upgrade nobody asked for"));
                }
                // An interim answer (100 Continue): the real one follows.
                Ok(Some(head)) if head.status < 200 => continue,
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(e) => return Err(Error::Invalid(head_error(e))),
            }
            let empty = self.buf.is_empty();
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if empty => return Err(Error::NoAnswer),
                Ok(0) => return Err(Error::Cut),
                Ok(_) => {}
                Err(e) if empty && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(Error::NoAnswer);
                }
                Err(e) => return Err(Error::Read(e)),
            }
        };
        let body = match head.body {
            Framing::None => BytesMut::new(),
            Framing::Length(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_ANSWER)
                    .ok_or(Error::Invalid("an answer too large"))?;
                while self.buf.len() < n {
                    self.buf.reserve(n - self.buf.len());
                    self.read_some().await?;
                }
                self.buf.split_to(n)
            }
            Framing::Chunked => {
                let mut chunked = Chunked::default();
                let mut body = BytesMut::new();
                loop {
                    match chunked.feed(&mut self.buf, &mut body, MAX_ANSWER) {
                        Ok(true) => break body,
                        Ok(false) => self.read_some().await?,
                        Err(wire::ChunkError::TooLarge) => {
                            return Err(Error::Invalid("an answer too large"));
                        }
                        Err(wire::ChunkError::Malformed) => {
                            return Err(Error::Invalid("malformed chunks"));
                        }
                    }
                }
            }
            Framing::Close => loop {
                if self.buf.len() > MAX_ANSWER {
                    return Err(Error::Invalid("an answer too large"));
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => break self.buf.split(),
                    Ok(_) => {}
                    Err(e) => return Err(Error::Read(e)),
                }
            },
        };
        Ok(Answer { head, body })
    }

    async fn read_some(&mut self) -> Result<(), Error> {
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Error::Cut),
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Read(e)),
        }
    }
}

fn head_error(e: wire::HeadError) -> &'static str {
    match e {
        wire::HeadError::TooLarge => "a head too large",
        wire::HeadError::UnknownCoding => "an unknown transfer coding",
        wire::HeadError::Bad(why) => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Host` a request carries is the upstream's as a client would write it; the
    /// address connected to always has its port.
    #[test]
    fn host_and_address_of_an_upstream() {
        for (authority, host, addr) in [
            ("127.0.0.1:4002", "127.0.0.1:4002", "127.0.0.1:4002"),
            ("tickets:80", "tickets", "tickets:80"),
            ("tickets", "tickets", "tickets:80"),
            ("user:pw@tickets:4002", "tickets:4002", "tickets:4002"),
        ] {
            let u = Upstream::new(&authority.parse().unwrap());
            assert_eq!(
                (u.host.as_str(), u.addr.as_str()),
                (host, addr),
                "{authority}"
            );
        }
    }
}
