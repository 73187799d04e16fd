//! The HTTP scaffolding every service shares: request ids, access logs, body size limit,
//! timeouts, panics turned into 500s, `GET /healthz`, errors in the tix shape for unknown
//! routes and methods, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use futures::future::BoxFuture;
use tower::ServiceBuilder;

use crate::error::{ApiError, error_response};
use crate::health::Monitor;
use tix_api::health::HealthStatus;

mod around;
pub use around::{answered, log_access, request_span};

/// Limits every service applies to requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub timeout: Duration,
}

/// Wraps a service's routes with the shared layers, `GET /healthz`, `GET /readyz` and
/// `GET /metrics`.
pub fn app(routes: Router, service: &'static str, limits: Limits) -> Router {
    layers(
        routes
            .route(
                "/healthz",
                axum::routing::get(move |monitor: Option<Extension<Monitor>>| async move {
                    // 200 even when degraded: the process runs and serves its API, and the
                    // body says which background part is in trouble; `/readyz` is the one
                    // that fails (docs/operations.md).
                    axum::Json(monitor_of(monitor).report(service).await)
                }),
            )
            .route(
                "/readyz",
                axum::routing::get(move |monitor: Option<Extension<Monitor>>| async move {
                    let ready = monitor_of(monitor).readiness(service).await;
                    let code = if ready.status == HealthStatus::Ok {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, axum::Json(ready))
                }),
            )
            .route(
                "/metrics",
                axum::routing::get(|monitor: Option<Extension<Monitor>>| async move {
                    monitor_of(monitor).refresh_metrics().await;
                    crate::metrics::serve().await
                }),
            )
            .fallback(|| async { ApiError::NotFound }),
        limits,
    )
}

/// The service's monitor, or an empty one (a router built without [`Service`](crate::service::Service)).
fn monitor_of(monitor: Option<Extension<Monitor>>) -> Monitor {
    monitor.map(|Extension(m)| m).unwrap_or_default()
}

/// The shared layers alone, for a router with its own `/healthz` and fallback.
pub fn layers(routes: Router, limits: Limits) -> Router {
    routes
        .method_not_allowed_fallback(|| async {
            error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        // One layer on the router, so one boxed route per request: each `Router::layer`
        // boxes every route again, and tower-http's layers (request id, trace, propagate,
        // catch panic, timeout) and a `from_fn` for the body added a future, a box or a
        // clone each (docs/benchmarks.md, "The shared layers as one").
        .layer(
            ServiceBuilder::new()
                .layer(around::AroundLayer::new(limits))
                .layer(DefaultBodyLimit::max(limits.body_bytes)),
        )
}

/// A client's `x-request-id` goes into every log line and event of its request: only a
/// plain short token is kept.
fn is_usable_id(v: &http::HeaderValue) -> bool {
    v.to_str().is_ok_and(crate::correlation::is_valid)
}

/// A request's id as [`layers`] settles it, for a server of its own (the gateway's
/// [`Edge`]): the client's `x-request-id` (`given`) when it is a plain token, else a new
/// UUID.
pub fn request_id(given: Option<&[u8]>) -> http::HeaderValue {
    if let Some(v) = given
        && let Ok(text) = std::str::from_utf8(v)
        && crate::correlation::is_valid(text)
        && let Ok(v) = http::HeaderValue::from_str(text)
    {
        return v;
    }
    // Written into a buffer, with no String or formatter in between. Version 7: unique,
    // and in time order.
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    http::HeaderValue::from_str(uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text))
        .unwrap_or_else(|_| http::HeaderValue::from_static("-"))
}

/// The header, as a name rather than a string: a lookup by `&str` parses the name first,
/// which on every request was measurable (docs/benchmarks.md).
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// A bound listener with its resolved address, so port 0 can be used in tests.
#[derive(Debug)]
pub struct Listener {
    pub listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
}

impl Listener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Listener { listener, addr })
    }
}

/// A server of whole connections in place of hyper's: the gateway's edge (its proxy
/// path), which reads and writes HTTP/1.1 itself because hyper's server and client around
/// a forwarded request cost more than the forwarding (docs/benchmarks.md). It gets every
/// accepted connection with the service's router, for the requests it does not forward.
pub type Edge = Arc<dyn Fn(EdgeConn) -> BoxFuture<'static, ()> + Send + Sync>;

/// One accepted connection for an [`Edge`].
#[derive(Debug)]
pub struct EdgeConn {
    pub stream: tokio::net::TcpStream,
    pub peer: SocketAddr,
    /// The service's routes (its own endpoints), with the shared layers.
    pub app: Router,
    /// Turns true when the service stops: an idle connection closes, a busy one closes
    /// after the answer it is writing.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Serves until `shutdown` completes, then lets in-flight requests finish. With an `edge`,
/// the edge serves each connection instead of hyper.
pub async fn serve(
    listener: Listener,
    app: Router,
    edge: Option<Edge>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match edge {
        None => {
            axum::serve(
                listener.listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        Some(edge) => {
            serve_edge(listener, app, edge, shutdown).await;
            Ok(())
        }
    }
}

async fn serve_edge(
    listener: Listener,
    app: Router,
    edge: Edge,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let connections = tokio_util::task::TaskTracker::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Answers go out whole, in one write: nothing for Nagle to gather.
                let _ = stream.set_nodelay(true);
                connections.spawn(edge(EdgeConn {
                    stream,
                    peer,
                    app: app.clone(),
                    stopping: stopping.clone(),
                }));
            }
            Err(e) => {
                // Out of descriptors, usually: a pause rather than a spin (as hyper's
                // accept loop does), and the connections already open go on.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    stop.send_replace(true);
    connections.close();
    connections.wait().await;
}

/// Reads a request's whole body within `limit` (what every service's routes get from
/// [`layers`]): the request with its body in memory, or the answer to give instead (413
/// over the limit, 400 when it cannot be read).
pub async fn whole_body(req: Request<Body>, limit: usize) -> Result<Request<Body>, Response> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Err(e) => Err(
            if e.into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::PayloadTooLarge.into_response()
            } else {
                ApiError::BadRequest("The request body could not be read".into()).into_response()
            },
        ),
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// A response for an error status outside a handler (for layers and the gateway).
pub fn status_error(status: StatusCode, message: &str) -> Response {
    error_response(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use futures::StreamExt;
    use tower::ServiceExt;

    fn test_app() -> Router {
        let routes = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/boom",
                get(|| async {
                    if std::env::var_os("NEVER_SET_IN_TESTS").is_none() {
                        panic!("secret internals");
                    }
                    "unreachable"
                }),
            )
            .route("/ok", get(|| async { "ok" }))
            // Answers without looking at its body.
            .route("/ignore", axum::routing::post(|| async { "ignored" }))
            .route("/labelled/{n}", get(|| async { "labelled" }))
            .route(
                "/echo",
                axum::routing::post(|body: String| async move {
                    // What the handler's writes would publish under.
                    let correlation = crate::correlation::current()
                        .and_then(|id| id.to_str().ok().map(str::to_owned))
                        .unwrap_or_default();
                    format!("{correlation} {}", body.len())
                }),
            );
        app(
            routes,
            "test",
            Limits {
                body_bytes: 1024,
                timeout: Duration::from_millis(100),
            },
        )
    }

    async fn call(method: &str, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        send(Request::builder().method(method).uri(path), Body::empty()).await
    }

    async fn send(
        req: axum::http::request::Builder,
        body: Body,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let req = req.body(body).unwrap();
        let r = test_app().oneshot(req).await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_slow_request_times_out_with_the_error_body() {
        let (s, _, body) = call("GET", "/slow").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("took too long"), "{body}");
    }

    #[tokio::test]
    async fn a_panic_is_a_500_that_leaks_nothing() {
        let (s, _, body) = call("GET", "/boom").await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("Something went wrong"));
    }

    #[tokio::test]
    async fn every_response_has_a_request_id_and_errors_keep_their_shape() {
        let (s, h, body) = call("GET", "/ok").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));
        assert!(h.get("x-request-id").is_some());
        let (s, _, body) = call("DELETE", "/ok").await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body.contains("\"errors\""), "{body}");
        let (s, _, body) = call("GET", "/nope").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"errors":[{"message":"Not found"}]}"#);
        let (s, _, body) = call("GET", "/healthz").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("\"service\":\"test\""));
    }

    #[tokio::test]
    async fn a_clients_plain_request_id_is_kept_through_the_handler_and_a_bad_one_replaced() {
        let given = Request::post("/echo").header("x-request-id", "proxy-1.a:b_c");
        let (s, h, body) = send(given, Body::from("four")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["x-request-id"], "proxy-1.a:b_c");
        assert_eq!(
            body, "proxy-1.a:b_c 4",
            "the handler runs under the request's id"
        );

        // A space (log injection), and an id too long to be anyone's.
        for bad in ["two words", &"x".repeat(129)] {
            let (s, h, body) = send(
                Request::post("/echo").header("x-request-id", bad),
                Body::empty(),
            )
            .await;
            assert_eq!(s, StatusCode::OK);
            let id = h["x-request-id"].to_str().unwrap().to_owned();
            assert_ne!(id, bad);
            assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
            assert_eq!(body, format!("{id} 0"));
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_before_the_handler_with_the_id() {
        let (s, h, body) = send(Request::post("/echo"), Body::from(vec![b'a'; 1025])).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(body.contains("\"errors\""), "{body}");
        assert!(h.get("x-request-id").is_some());
        // At the limit it goes through.
        let (s, _, body) = send(Request::post("/echo"), Body::from(vec![b'a'; 1024])).await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.ends_with(" 1024"), "{body}");
    }

    #[tokio::test]
    async fn timeouts_panics_and_unknown_routes_are_answered_with_the_clients_id() {
        for (method, path, status) in [
            ("GET", "/slow", StatusCode::SERVICE_UNAVAILABLE),
            ("GET", "/boom", StatusCode::INTERNAL_SERVER_ERROR),
            ("GET", "/nope", StatusCode::NOT_FOUND),
            ("DELETE", "/ok", StatusCode::METHOD_NOT_ALLOWED),
        ] {
            let (s, h, _) = send(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header("x-request-id", "mine"),
                Body::empty(),
            )
            .await;
            assert_eq!(s, status, "{method} {path}");
            assert_eq!(h["x-request-id"], "mine", "{method} {path}");
        }
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_off_by_the_timeout_with_408() {
        let stalled = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            b"{\"title\":",
        ))])
        .chain(futures::stream::pending());
        let (s, h, body) = send(
            Request::post("/echo").header("x-request-id", "stalled"),
            Body::from_stream(stalled),
        )
        .await;
        // The client's fault, not the service's: 408, where a slow handler is 503.
        assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{body}");
        assert!(
            body.contains("The request body did not arrive in time"),
            "{body}"
        );
        assert_eq!(h["x-request-id"], "stalled");
    }

    #[tokio::test]
    async fn a_handler_that_ignores_its_body_still_has_it_read_and_held_to_the_limit() {
        let (s, _, body) = send(Request::post("/ignore"), Body::from(vec![b'a'; 1024])).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ignored"));
        let (s, _, _) = send(Request::post("/ignore"), Body::from(vec![b'a'; 1025])).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_pattern_and_unknown_paths_as_unmatched() {
        call("GET", "/labelled/12345").await;
        call("GET", "/no/such/path/67890").await;
        let (_, _, metrics) = call("GET", "/metrics").await;
        let lines: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("tix_http_request_duration_seconds_count"))
            .collect();
        let has = |route: &str, status: &str| {
            lines
                .iter()
                .any(|l| l.contains(&format!("route=\"{route}\"")) && l.contains(status))
        };
        assert!(has("/labelled/{n}", "status=\"200\""), "{lines:#?}");
        assert!(has("unmatched", "status=\"404\""), "{lines:#?}");
        assert!(!metrics.contains("12345") && !metrics.contains("67890"));
    }
}
