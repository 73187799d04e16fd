//! A load generator's HTTP/1.1 connection, as `wrk` keeps one per connection: no pool, no
//! redirects, no header maps of a general-purpose client, whose CPU the machine under test
//! would pay for.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// A keep-alive connection to `addr` (Nagle off), its connection task spawned.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}
