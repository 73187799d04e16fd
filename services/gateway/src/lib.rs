//! The gateway: one port for clients. It routes `/api/users` to auth, `/api/tickets` to
//! tickets, `/api/orders` to orders and `/api/payments` to payments, streaming bodies and
//! passing headers, cookies and status codes through untouched. An upstream that cannot be
//! reached gets a 502 with the usual error body; `/healthz` reports every upstream — and
//! expiration, which serves nothing else — with what each says about itself.
//! `/api/openapi.json` is the whole API's OpenAPI document, `docs/openapi.json`, built in:
//! the gateway knows no service crate, and `tix-openapi`'s test keeps the file current.

mod edge;
mod upstream;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::uri::Scheme;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tix_api::health::{Health, HealthStatus, UpstreamHealth, UpstreamStatus};
use tix_common::http::{self, Limits, status_error};
use tix_common::service::Service;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tix-gateway",
    version,
    about = "tix gateway: one port for clients, routing /api/* to the services"
)]
pub struct Config {
    #[arg(long, env = "TIX_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "TIX_GATEWAY_PORT", default_value_t = 8080)]
    pub port: u16,
    #[arg(long, env = "TIX_AUTH_URL", default_value = "http://127.0.0.1:4001")]
    pub auth_url: String,
    #[arg(long, env = "TIX_TICKETS_URL", default_value = "http://127.0.0.1:4002")]
    pub tickets_url: String,
    #[arg(long, env = "TIX_ORDERS_URL", default_value = "http://127.0.0.1:4003")]
    pub orders_url: String,
    #[arg(
        long,
        env = "TIX_PAYMENTS_URL",
        default_value = "http://127.0.0.1:4004"
    )]
    pub payments_url: String,
    /// The expiration service: no routes, only its health in the gateway's `/healthz`
    /// (an empty value leaves it out).
    #[arg(
        long,
        env = "TIX_EXPIRATION_URL",
        default_value = "http://127.0.0.1:4005"
    )]
    pub expiration_url: String,
    /// Longest a request may take end to end (the services have their own limits too).
    #[arg(long, env = "TIX_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How long a connection may take to send a request's head, counted from when the
    /// gateway starts waiting for it (nginx's `client_header_timeout`): an idle keep-alive
    /// connection is closed after this, and a head begun and not finished is answered 408,
    /// so a client that trickles one (slowloris) holds its connection no longer.
    #[arg(long, env = "TIX_GATEWAY_HEADER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Largest request body passed on, in bytes.
    #[arg(long, env = "TIX_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    #[arg(long, env = "TIX_LOG", default_value = "info")]
    pub log: String,
    /// `text`, or `json`: one JSON object per line, for a log shipper or `jq`.
    #[arg(long, env = "TIX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: tix_common::config::LogFormat,
    /// Threads serving requests. One (the default) runs everything on one thread, as one
    /// nginx worker does: a request then never wakes another thread, which measured ~20 %
    /// less CPU per proxied request than two (docs/benchmarks.md). Run more replicas, or
    /// raise this, to use more cores.
    #[arg(long, env = "TIX_GATEWAY_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Proxies in front of the gateway (nginx, an ingress controller) whose
    /// `X-Forwarded-For` is believed: addresses or ranges (`10.0.0.0/8`), comma-separated.
    /// A request from one is stated upstream as coming from the client that proxy saw, so
    /// that auth's per-address limits count clients, not the proxy. None by default: the
    /// address the gateway sees is the client's. (Not auth's `TIX_TRUSTED_PROXIES`: on one
    /// machine that names 127.0.0.1, where any local client would then be believed.)
    #[arg(long = "trusted-proxy", env = "TIX_GATEWAY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = tix_common::net::parse_range)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// One service behind the gateway.
#[derive(Debug)]
struct Upstream {
    name: &'static str,
    /// The paths it serves; `None` for one only checked for health (expiration).
    prefix: Option<&'static str>,
    base: String,
    /// The base URL's own path (empty for a bare origin), put before every request's.
    base_path: String,
    /// Its keep-alive connections.
    conns: upstream::Upstream,
}

impl Upstream {
    /// `None` unless `base` is an `http://` URL.
    fn new(name: &'static str, prefix: Option<&'static str>, base: &str) -> Option<Upstream> {
        let base = base.trim_end_matches('/').to_string();
        let uri = base.parse::<Uri>().ok()?;
        if uri.scheme() != Some(&Scheme::HTTP) || uri.query().is_some() {
            return None;
        }
        let conns = upstream::Upstream::new(uri.authority()?);
        Some(Upstream {
            name,
            prefix,
            base_path: uri.path().trim_end_matches('/').to_string(),
            base,
            conns,
        })
    }
}

struct Gateway {
    upstreams: Vec<Arc<Upstream>>,
    client: Client<HttpConnector, Body>,
    trusted_proxies: tix_common::net::TrustedProxies,
    /// `--header-timeout`.
    head_within: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstreams", &self.upstreams)
            .finish()
    }
}

impl Gateway {
    /// The upstream serving `path`, with the prefix that matched.
    fn route(&self, path: &str) -> Option<(&'static str, &Arc<Upstream>)> {
        self.upstreams.iter().find_map(|u| {
            let prefix = u.prefix?;
            let serves = path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'));
            serves.then_some((prefix, u))
        })
    }
}

/// The router's fallback: the edge forwards every path an upstream serves, so what
/// reaches here is a path none does.
async fn not_found() -> Response {
    status_error(StatusCode::NOT_FOUND, "Not found")
}

/// The OpenAPI 3.1 document of the whole API, generated from every service's handlers by
/// `tix-openapi` (whose test fails when this file is out of date).
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "health",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object),
    ),
    security(()),
)]
async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// `GET /metrics`: the gateway's own Prometheus metrics (each service serves its own on
/// its port; docs/operations.md lists them).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses(
        (status = 200, description = "The gateway's metrics in the Prometheus text format (OpenMetrics 1.0): requests by upstream, method and status, with latency histograms", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
    ),
    security(()),
)]
async fn metrics() -> Response {
    tix_common::metrics::serve().await
}

/// The gateway's own endpoints' part of the OpenAPI document: its health and the document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(health, ready, metrics, openapi_json))]
    struct Own;
    <Own as utoipa::OpenApi>::openapi()
}

/// Every upstream's `/healthz`, asked at once: `degraded` when one is down (no answer
/// within 1 s) or reports itself degraded. 503 only when one is down — some routes then
/// answer 502 — and 200 otherwise, as the services answer: a degraded service still serves
/// its API (docs/operations.md).
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    tag = "health",
    responses(
        (status = 200, description = "Every upstream answered (`status` is `degraded` when one reports itself degraded). Each service also answers `GET /healthz` on its own port, without `upstreams`.", body = Health),
        (status = 503, description = "An upstream did not answer within 1 s: its routes answer 502", body = Health),
    ),
    security(()),
)]
async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    let results = ask_upstreams(&gw, "/healthz").await;
    let all_up = results.iter().all(|(_, u)| u.status == UpstreamStatus::Up);
    aggregate(results, all_up)
}

/// Every upstream's `/readyz`, asked at once: 200 when each one answered that it is ready,
/// else 503 with what each said (a service that is not ready names its failing check).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "ready",
    tag = "health",
    responses(
        (status = 200, description = "Every upstream is ready: its database takes a write, its bus link, consumer and outbox work. Each service also answers `GET /readyz` on its own port, without `upstreams`.", body = Health),
        (status = 503, description = "An upstream is not ready or did not answer within 1 s; `upstreams` says which and why", body = Health),
    ),
    security(()),
)]
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    let results = ask_upstreams(&gw, "/readyz").await;
    let all_ready = results
        .iter()
        .all(|(_, u)| u.status == UpstreamStatus::Up && u.health == Some(HealthStatus::Ok));
    aggregate(results, all_ready)
}

/// The gateway's answer from its upstreams': 200 when `fine`, else 503.
fn aggregate(results: Vec<(&'static str, UpstreamHealth)>, fine: bool) -> Response {
    let all_ok = results
        .iter()
        .all(|(_, u)| u.status == UpstreamStatus::Up && u.health == Some(HealthStatus::Ok));
    let upstreams = results
        .into_iter()
        .map(|(name, v)| (name.to_string(), v))
        .collect();
    let body = Health {
        service: "gateway".into(),
        status: if all_ok {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        },
        upstreams: Some(upstreams),
        checks: None,
        pid: Some(std::process::id()),
        instance: Some(tix_common::health::instance().to_string()),
    };
    let status = if fine {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `path` (`/healthz` or `/readyz`) of every upstream, asked at once, each within 1 s. An
/// upstream is up when it answered at all: a 503 from `/readyz` is an answer (not ready),
/// with its body.
async fn ask_upstreams(gw: &Gateway, path: &'static str) -> Vec<(&'static str, UpstreamHealth)> {
    let asks = gw.upstreams.iter().map(|u| {
        let client = gw.client.clone();
        let u = u.clone();
        async move {
            let started = Instant::now();
            let req = axum::http::Request::get(format!("{}{path}", u.base))
                .body(Body::empty())
                .expect("a valid request");
            let answer = tokio::time::timeout(Duration::from_secs(1), async {
                let r = client.request(req).await.ok()?;
                let code = r.status();
                if !code.is_success() && code != StatusCode::SERVICE_UNAVAILABLE {
                    return None;
                }
                let body = axum::body::to_bytes(Body::new(r.into_body()), 1 << 16)
                    .await
                    .ok()?;
                // An answer without a body the gateway can read (an older service) is up,
                // ready unless it said 503, with nothing more to say.
                let parsed = serde_json::from_slice::<Health>(&body).ok();
                let status = parsed.as_ref().map_or(
                    if code.is_success() {
                        HealthStatus::Ok
                    } else {
                        HealthStatus::Degraded
                    },
                    |h| h.status,
                );
                Some((status, parsed.and_then(|h| h.checks)))
            })
            .await
            .ok()
            .flatten();
            let health = UpstreamHealth {
                latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                status: if answer.is_some() {
                    UpstreamStatus::Up
                } else {
                    UpstreamStatus::Down
                },
                url: u.base.clone(),
                health: answer.as_ref().map(|(status, _)| *status),
                checks: answer.and_then(|(_, checks)| checks),
            };
            (u.name, health)
        }
    });
    futures::future::join_all(asks).await
}

/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    let mut wanted = vec![
        ("auth", Some("/api/users"), &cfg.auth_url),
        ("tickets", Some("/api/tickets"), &cfg.tickets_url),
        ("orders", Some("/api/orders"), &cfg.orders_url),
        ("payments", Some("/api/payments"), &cfg.payments_url),
    ];
    if !cfg.expiration_url.is_empty() {
        wanted.push(("expiration", None, &cfg.expiration_url));
    }
    if cfg.header_timeout.is_zero() {
        anyhow::bail!("--header-timeout must be more than 0");
    }
    let mut upstreams = Vec::new();
    for (name, prefix, url) in wanted {
        let Some(u) = Upstream::new(name, prefix, url) else {
            anyhow::bail!("{name} upstream {url:?} must be an http:// URL");
        };
        upstreams.push(u);
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector);
    let gw = Arc::new(Gateway {
        upstreams: upstreams.into_iter().map(Arc::new).collect(),
        client,
        trusted_proxies: tix_common::net::TrustedProxies::new(cfg.trusted_proxies.clone()),
        head_within: cfg.header_timeout,
    });
    let routes = Router::new()
        .route("/healthz", axum::routing::get(health))
        .route("/readyz", axum::routing::get(ready))
        .route("/metrics", axum::routing::get(metrics))
        .route("/api/openapi.json", axum::routing::get(openapi_json))
        .fallback(not_found)
        // Shared, not cloned per request: axum clones the state for every extraction.
        .with_state(gw.clone());
    let limits = Limits {
        body_bytes: cfg.body_limit,
        timeout: cfg.request_timeout,
    };
    let router = http::layers(routes, limits);
    let service = Service::bind(SocketAddr::new(cfg.host, cfg.port), router)
        .await?
        .with_edge(edge::edge(gw, limits));
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request keeps its path and query on the way to the upstream, after the base
    /// URL's own path when it has one; only `http://` URLs are upstreams.
    #[test]
    fn an_upstreams_base_path_and_scheme() {
        let base = |url: &str| Upstream::new("t", Some("/api/t"), url).map(|u| u.base_path);
        assert_eq!(base("http://127.0.0.1:4002/").as_deref(), Some(""));
        assert_eq!(base("http://tickets.internal:80").as_deref(), Some(""));
        assert_eq!(base("http://10.0.0.7:4002/base/").as_deref(), Some("/base"));
        assert!(base("https://10.0.0.7:4002").is_none());
        assert!(base("10.0.0.7:4002").is_none());
        assert!(base("http://h:1/?q=1").is_none());
    }
}
