//! The forwarded requests' own path. `http::layers` wraps every route in boxed tower
//! layers (request id, access log, metrics, timeout, panics, body limit) behind axum's
//! router; for a request the gateway only forwards, that machinery cost more than the
//! forwarding itself (docs/benchmarks.md, "The gateway's own path"). The front does the
//! same things for those requests in one function, and hands every other request (its own
//! endpoints, unknown paths) to the router as before.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tix_common::error::{ApiError, error_response};
use tix_common::http::{self, Front, Limits, X_REQUEST_ID};
use tix_common::metrics::{HttpMethod, Route, observe_request};
use tracing::Instrument;

use crate::{Gateway, Upstream, carries_body, client_address, forward};

// Handing a request back moves it (a few hundred bytes), as the router's own call would;
// boxing it instead would allocate for every request the router serves.
#[allow(clippy::result_large_err)]
pub(crate) fn front(gw: Arc<Gateway>, limits: Limits) -> Front {
    Arc::new(move |peer: SocketAddr| {
        // Once per connection: the address it states upstream.
        let client = client_address(peer);
        let gw = gw.clone();
        Arc::new(move |req: Request| {
            let Some((prefix, up)) = gw.route(req.uri().path()) else {
                return Err(req);
            };
            let up = up.clone();
            Ok(Box::pin(forwarded(
                gw.clone(),
                up,
                limits,
                prefix,
                client.clone(),
                req,
            )))
        })
    })
}

/// What `http::layers` would do around [`forward`] for a forwarded request, in order:
/// its id, its span (the access log's), the timeout around everything, a panic turned
/// into a 500, the body read within the limit, the forwarding; then the id on the
/// answer, the metrics (labelled by upstream) and the access log line.
async fn forwarded(
    gw: Arc<Gateway>,
    up: Arc<Upstream>,
    limits: Limits,
    prefix: &'static str,
    client: HeaderValue,
    mut req: Request,
) -> Response {
    let started = Instant::now();
    let id = http::settle_request_id(&mut req);
    let method = HttpMethod::from(req.method());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        uri = %req.uri(),
        request_id = %id.to_str().unwrap_or("-"),
    );
    let work = async {
        // Without a length or chunks an HTTP/1.1 request has no body: nothing to read.
        let req = if carries_body(req.headers()) {
            match http::whole_body(req, limits.body_bytes).await {
                Ok(req) => req,
                Err(refused) => return refused,
            }
        } else {
            req
        };
        forward(&gw, &up, &client, req).await
    };
    let answer = tokio::time::timeout(limits.timeout, AssertUnwindSafe(work).catch_unwind())
        .instrument(span.clone())
        .await;
    let mut resp = match answer {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        Err(_) => ApiError::Timeout.into_response(),
    };
    resp.headers_mut().entry(X_REQUEST_ID).or_insert(id);
    let took = started.elapsed();
    let status = resp.status().as_u16();
    observe_request(method, Route::Named(Cow::Borrowed(prefix)), status, took);
    span.in_scope(|| {
        tracing::info!(
            target: "tower_http::trace::on_response",
            latency = %Micros(took),
            status,
            "finished processing request"
        );
        if resp.status().is_server_error() {
            // tower-http's failure line, in its default unit (ms).
            tracing::error!(
                target: "tower_http::trace::on_failure",
                classification = %format_args!("Status code: {}", resp.status()),
                latency = %format_args!("{} ms", took.as_millis()),
                "response failed"
            );
        }
    });
    resp
}

/// A latency as the other services' access log writes it (tower-http's, in µs).
struct Micros(Duration);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} μs", self.0.as_micros())
    }
}
