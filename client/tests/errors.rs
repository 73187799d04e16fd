//! Each way a request can fail is told apart: a name that does not resolve, a port where
//! nothing listens, a TLS handshake with a plain-HTTP server, a server that never answers,
//! and an error answer with the server's message and `Retry-After`.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use tix_client::{ApiClient, ClientError, Kind, Network, TicketQuery};

async fn list(base: &str) -> ClientError {
    ApiClient::new(base, None)
        .with_timeout(Duration::from_secs(1))
        .tickets(&TicketQuery::default())
        .await
        .unwrap_err()
}

/// A server that answers every request with `status`, `retry_after` and an error body.
async fn answering(
    status: u16,
    retry_after: Option<&'static str>,
    message: &'static str,
) -> String {
    let app = axum::Router::new().fallback(move || async move {
        let body = serde_json::json!({"errors":[{"message": message}]});
        let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        if let Some(s) = retry_after {
            r.headers_mut().insert("retry-after", s.parse().unwrap());
        }
        r
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_dns_failure() {
    let e = list("http://tix-nowhere.invalid").await;
    assert_eq!(e.network(), Some(Network::Dns), "{e:?}");
    assert!(
        e.to_string().contains("cannot resolve tix-nowhere.invalid"),
        "{e}"
    );
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = list(&url).await;
    assert_eq!(e.network(), Some(Network::Refused), "{e:?}");
    assert_eq!(e.kind(), Kind::Unavailable);
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_failure() {
    let url = answering(200, None, "unused").await;
    let e = list(&url.replace("http://", "https://")).await;
    assert_eq!(e.network(), Some(Network::Tls), "{e:?}");
    assert!(e.to_string().contains("TLS handshake failed"), "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts and holds the connections, never writing a byte.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let e = list(&url).await;
    assert_eq!(e.network(), Some(Network::TimedOut), "{e:?}");
    assert!(e.to_string().contains("no answer within 1 s"), "{e}");
}

#[tokio::test]
async fn a_429_carries_its_retry_after_into_the_message() {
    let url = answering(429, Some("12"), "Too many sign-ups from this address").await;
    let e = list(&url).await;
    assert_eq!(e.retry_after(), Some(12));
    assert_eq!(e.kind(), Kind::Rejected);
    assert_eq!(
        e.to_string(),
        "Too many sign-ups from this address, try again in 12 s"
    );
    let url = answering(503, None, "Orders is unavailable").await;
    let e = list(&url).await;
    assert_eq!((e.retry_after(), e.kind()), (None, Kind::Unavailable));
    assert_eq!(e.to_string(), "Orders is unavailable");
}

/// A listener whose accept queue is full and never drained: the kernel drops further
/// SYNs, so a connection to it never opens (as with a firewall that drops packets). The
/// queue is filled before returning; the sockets are kept open by the spawned task.
async fn never_connecting() -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filling = Vec::new();
    // Backlog 0 still queues one or two; connect until one hangs.
    loop {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => filling.push(s),
            Ok(Err(e)) => panic!("filling the queue: {e}"),
            Err(_) => break,
        }
        assert!(filling.len() < 64, "the accept queue never filled");
    }
    tokio::spawn(async move {
        let _held = (listener, filling);
        std::future::pending::<()>().await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_connection_that_never_opens_says_so_with_the_connect_limit() {
    let url = never_connecting().await;
    // The request may take 30 s, but opening the connection only 3: it is the 3 s that
    // ran out, and the message says so rather than "no answer within 30 s".
    let started = std::time::Instant::now();
    let e = ApiClient::new(&url, None)
        .tickets(&TicketQuery::default())
        .await
        .unwrap_err();
    assert_eq!(e.network(), Some(Network::TimedOut), "{e:?}");
    assert_eq!(e.kind(), Kind::Unavailable);
    assert_eq!(
        e.to_string(),
        format!("cannot reach {url}: could not connect within 3 s")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
