//! What every request of every service goes through, as one tower layer: its id (a
//! client's plain token kept, else a new one), its correlation id for what it publishes,
//! the `request` span and the access log line, the body read whole within the limit (413),
//! the timeout (503; 408 while the body is still coming), a panic turned into a 500, the
//! metrics by route, and the id on the answer.
//!
//! tower-http has a layer for most of these, and they were what `layers` stacked. Each
//! `Router::layer` boxes every route again, each layer's future wraps the next, and the
//! body middleware (`from_fn`) cloned the route and boxed a future of its own: on a
//! ticket's POST the stack cost about a tenth of the service's CPU (docs/benchmarks.md,
//! "The shared layers as one"). Here it is one service and one boxed future.

use std::borrow::Cow;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::{Limits, X_REQUEST_ID, is_usable_id, request_id, whole_body};
use crate::error::{ApiError, error_response};
use crate::metrics::{HttpMethod, Route, observe_request};

#[derive(Debug, Clone, Copy)]
pub(super) struct AroundLayer {
    limits: Limits,
}

impl AroundLayer {
    pub(super) fn new(limits: Limits) -> AroundLayer {
        AroundLayer { limits }
    }
}

impl<S> tower::Layer<S> for AroundLayer {
    type Service = Around<S>;

    fn layer(&self, inner: S) -> Around<S> {
        Around {
            inner,
            limits: self.limits,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Around<S> {
    inner: S,
    limits: Limits,
}

impl<S> tower::Service<Request<Body>> for Around<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let id = match req.headers().get(X_REQUEST_ID) {
            Some(given) if is_usable_id(given) => given.clone(),
            _ => {
                let id = request_id(None);
                req.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        let method = HttpMethod::from(req.method());
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .cloned()
            .map_or(Route::Named(Cow::Borrowed("unmatched")), Route::Matched);
        let span = request_span(req.method(), req.uri(), &id);
        // The service made ready is the one to call; a clone stays for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Limits {
            body_bytes,
            timeout,
        } = self.limits;
        Box::pin(async move {
            // Whether the body had all come when the time ran out: if not, the client was
            // slow (408), not the service (503).
            let mut body_read = false;
            let work = async {
                // The whole body is read before any handler or extractor runs. A handler
                // that answers without reading it (a 401 before the JSON is parsed) would
                // otherwise leave the rest on the connection, and hyper closes such a
                // connection without saying so: back in the gateway's pool, it failed the
                // next request sent down it, someone else's, with a 502 (found by
                // scripts/fuzz).
                let whole = whole_body(req, body_bytes).await;
                body_read = true;
                match whole {
                    Ok(req) => match inner.call(req).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    },
                    Err(refused) => refused,
                }
            };
            let work = crate::correlation::scope(Some(id.clone()), work);
            let outcome = tokio::time::timeout(timeout, AssertUnwindSafe(work).catch_unwind())
                .instrument(span.clone())
                .await;
            let mut resp = match outcome {
                Ok(Ok(resp)) => resp,
                Ok(Err(_panic)) => {
                    error_response(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
                }
                Err(_elapsed) if !body_read => ApiError::SlowBody.into_response(),
                Err(_elapsed) => ApiError::Timeout.into_response(),
            };
            if !resp.headers().contains_key(X_REQUEST_ID) {
                resp.headers_mut().insert(X_REQUEST_ID, id);
            }
            let took = started.elapsed();
            let status = resp.status().as_u16();
            answered(&span, method, route, status, took);
            Ok(resp)
        })
    }
}

/// The span every line of a request's work is logged in: its fields are what log
/// queries look for (`span.request_id`, docs/observability.md). A request whose method
/// and target are not trusted (the gateway's edge refused its head) takes `"-"` for both.
pub fn request_span(
    method: impl std::fmt::Display,
    uri: impl std::fmt::Display,
    id: &axum::http::HeaderValue,
) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %method,
        uri = %uri,
        request_id = %id.to_str().unwrap_or("-"),
    )
}

/// One answered request counted in the metrics and written to the access log, in its
/// span, with tower-http's failure line for a 5xx (the names and units its trace layer
/// used, which log queries know).
pub fn answered(
    span: &tracing::Span,
    method: HttpMethod,
    route: Route,
    status: u16,
    took: Duration,
) {
    observe_request(method, route, status, took);
    log_access(span, status, took);
    if status >= 500 {
        span.in_scope(|| {
            tracing::error!(
                target: "tower_http::trace::on_failure",
                classification = %format_args!("Status code: {}", StatusName(status)),
                latency = %format_args!("{} ms", took.as_millis()),
                "response failed"
            );
        });
    }
}

/// The access log line alone: for an answer that is the client's doing whatever its
/// status (the edge's 501 for a transfer coding it does not decode), no failure line.
pub fn log_access(span: &tracing::Span, status: u16, took: Duration) {
    span.in_scope(|| {
        tracing::info!(
            target: "tower_http::trace::on_response",
            latency = %Micros(took),
            status,
            "finished processing request"
        );
    });
}

/// A status as tower-http's failure line wrote it: `500 Internal Server Error`.
struct StatusName(u16);

impl std::fmt::Display for StatusName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match StatusCode::from_u16(self.0) {
            Ok(code) => write!(f, "{code}"),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

/// A latency as the access log writes it (tower-http's format, in µs).
struct Micros(Duration);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} μs", self.0.as_micros())
    }
}
