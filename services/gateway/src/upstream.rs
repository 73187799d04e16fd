//! Keep-alive HTTP/1.1 connections to one upstream, without a general-purpose pool.
//!
//! hyper-util's pool keys its idle connections by scheme and authority (hashed with
//! SipHash byte by byte on every checkout and return) and moves each request's futures
//! through several boxes (docs/benchmarks.md, "Clones, threads and the allocator"). The
//! gateway knows its upstreams up front, so each has a plain stack of idle connections:
//! a request takes the most recently used one (or opens one), and the connection goes back
//! on the stack when the response body has been read to its end.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

/// Idle connections kept per upstream; more than this many at once are closed when done.
const MAX_IDLE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle connection older than this is closed rather than used: something between the
/// gateway and the upstream (or the upstream itself) may have dropped it meanwhile, and a
/// request written on it then fails for good.
const IDLE_AT_MOST: Duration = Duration::from_secs(30);
/// How long a connection taken from the stack may take to be ready for the next request
/// (it is, at once, unless the upstream stopped reading a request body) before another is
/// used instead.
const READY_WITHIN: Duration = Duration::from_millis(50);

/// Why a request did not reach an upstream or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// One upstream's address and its idle connections.
#[derive(Debug)]
pub struct Upstream {
    /// `host:port`, as `TcpStream::connect` takes it.
    addr: String,
    /// The `Host` header every request to it carries.
    host: HeaderValue,
    /// Most recently used last, each with when it went idle.
    idle: Mutex<VecDeque<(SendRequest<Body>, Instant)>>,
}

impl Upstream {
    /// An upstream at `authority` (`host:port`; port 80 when it has none).
    pub fn new(authority: &axum::http::uri::Authority) -> Option<Upstream> {
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        // As a client sends it: no user info, and no port when it is the default.
        let header = match authority.port_u16() {
            Some(p) if p != 80 => format!("{host}:{p}"),
            _ => host.to_string(),
        };
        Some(Upstream {
            addr: format!("{host}:{port}"),
            host: HeaderValue::from_str(&header).ok()?,
            idle: Mutex::new(VecDeque::new()),
        })
    }

    /// Sends `req` (whose URI is the path and query) on an idle connection or a new one.
    pub async fn send(self: &Arc<Self>, mut req: Request<Body>) -> Result<Response<Pooled>, Error> {
        req.headers_mut().insert(header::HOST, self.host.clone());
        // An idle connection may have been closed by the upstream meanwhile: a request it
        // could not take is handed back unsent and goes on a fresh connection.
        while let Some(mut sender) = self.take_idle() {
            if !matches!(
                tokio::time::timeout(READY_WITHIN, sender.ready()).await,
                Ok(Ok(()))
            ) {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.pooled(resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(Error::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await?;
        Ok(self.pooled(resp, sender))
    }

    fn take_idle(&self) -> Option<SendRequest<Body>> {
        let now = Instant::now();
        let fresh = |since: Instant| now.duration_since(since) < IDLE_AT_MOST;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest wait at the front: those idle too long go, whichever is taken.
        while idle.front().is_some_and(|(_, since)| !fresh(*since)) {
            idle.pop_front();
        }
        while let Some((sender, since)) = idle.pop_back() {
            if !sender.is_closed() && fresh(since) {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            // Full: the one idle longest is closed to make room.
            idle.pop_front();
        }
        idle.push_back((sender, Instant::now()));
    }

    async fn connect(&self) -> Result<SendRequest<Body>, Error> {
        let stream =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&self.addr))
                .await
                .map_err(|_| Error::ConnectTimeout)?
                .map_err(Error::Connect)?;
        stream.set_nodelay(true).map_err(Error::Connect)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "an upstream connection ended");
            }
        });
        Ok(sender)
    }

    fn pooled(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        sender: SendRequest<Body>,
    ) -> Response<Pooled> {
        resp.map(|body| Pooled {
            body,
            back: Some((sender, self.clone())),
        })
    }
}

/// A response body that returns its connection to the idle stack once read to its end.
pub struct Pooled {
    body: Incoming,
    back: Option<(SendRequest<Body>, Arc<Upstream>)>,
}

impl Pooled {
    fn release(&mut self) {
        if let Some((sender, upstream)) = self.back.take() {
            upstream.put_back(sender);
        }
    }
}

impl hyper::body::Body for Pooled {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.release(),
            // A body that failed leaves its connection in no state to reuse.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Dropped unread (a client gone mid-response): the connection still has a body
        // on its way, so it is closed rather than reused.
        if hyper::body::Body::is_end_stream(&self.body) {
            self.release();
        }
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
            let u = Upstream::new(&authority.parse().unwrap()).unwrap();
            assert_eq!(
                (u.host.to_str().unwrap(), u.addr.as_str()),
                (host, addr),
                "{authority}"
            );
        }
    }
}
