//! The Prometheus metrics of a service's `GET /metrics` (listed in docs/operations.md).
//!
//! Counters and histograms move where the work happens (an atomic add each); gauges that
//! describe state — the outbox's depth, the consumer group's lag on the bus, payments by
//! status — are read when scraped ([`Monitor::refresh_metrics`](crate::health::Monitor)
//! and each service's own [`Metrics::on_scrape`] readers), so nothing polls between
//! scrapes. One set per process: [`get`].

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The HTTP method, as a label (anything unusual is `other`, so a client cannot invent
/// new series).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum HttpMethod {
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
    HEAD,
    OPTIONS,
    OTHER,
}

impl From<&Method> for HttpMethod {
    fn from(m: &Method) -> Self {
        match *m {
            Method::GET => HttpMethod::GET,
            Method::POST => HttpMethod::POST,
            Method::PUT => HttpMethod::PUT,
            Method::PATCH => HttpMethod::PATCH,
            Method::DELETE => HttpMethod::DELETE,
            Method::HEAD => HttpMethod::HEAD,
            Method::OPTIONS => HttpMethod::OPTIONS,
            _ => HttpMethod::OTHER,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: HttpMethod,
    /// The route's pattern (`/api/tickets/{id}`), never the path itself: ids would make a
    /// series per ticket. `unmatched` for paths no route serves.
    pub route: Route,
    pub status: u16,
}

/// A route label: the router's matched pattern (shared, so labelling a request copies no
/// string) or a name.
#[derive(Debug, Clone)]
pub enum Route {
    Matched(MatchedPath),
    Named(Cow<'static, str>),
}

impl Route {
    pub fn as_str(&self) -> &str {
        match self {
            Route::Matched(p) => p.as_str(),
            Route::Named(n) => n,
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl EncodeLabelValue for Route {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubjectLabels {
    pub subject: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

type Reader = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// Every metric of this process.
pub struct Metrics {
    registry: Mutex<Registry>,
    readers: Mutex<Vec<Reader>>,
    pub http_duration: Family<HttpLabels, Histogram>,
    pub outbox_waiting: Gauge,
    pub outbox_oldest_age: Gauge<f64, AtomicU64>,
    pub outbox_dead: Gauge,
    pub outbox_published: Counter,
    pub consumer_applied: Family<SubjectLabels, Counter>,
    pub consumer_retries: Counter,
    pub consumer_failures: Counter,
    pub consumer_lag: Gauge,
    pub consumer_pending: Gauge,
    pub consumer_dead_letters: Gauge,
    pub bus_connected: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// This process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("tix")),
            readers: Mutex::new(Vec::new()),
            // 0.5 ms to ~8 s: a point read is well under a millisecond, a payment can take
            // the provider's seconds.
            http_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 15))
            }),
            outbox_waiting: Gauge::default(),
            outbox_oldest_age: Gauge::default(),
            outbox_dead: Gauge::default(),
            outbox_published: Counter::default(),
            consumer_applied: Family::default(),
            consumer_retries: Counter::default(),
            consumer_failures: Counter::default(),
            consumer_lag: Gauge::default(),
            consumer_pending: Gauge::default(),
            consumer_dead_letters: Gauge::default(),
            bus_connected: Gauge::default(),
        };
        // Its `_count` is the number of requests: no separate counter to look up per request.
        m.register_in_seconds(
            "http_request_duration",
            "HTTP requests by route pattern, method and status: time from arrival to the response's head (_count: how many)",
            m.http_duration.clone(),
        );
        m.register(
            "outbox_events",
            "Events written and not yet published to the bus (read when scraped)",
            m.outbox_waiting.clone(),
        );
        m.register_in_seconds(
            "outbox_oldest_age",
            "How long the oldest unpublished event has waited (0 when none; read when scraped)",
            m.outbox_oldest_age.clone(),
        );
        m.register(
            "outbox_dead_events",
            "Events the bus refused for good, kept in outbox_dead (read when scraped)",
            m.outbox_dead.clone(),
        );
        m.register(
            "outbox_published_events",
            "Events the relay published and the bus acknowledged",
            m.outbox_published.clone(),
        );
        m.register(
            "consumer_applied_events",
            "Events this service's consumer applied, by subject (duplicates not counted)",
            m.consumer_applied.clone(),
        );
        m.register(
            "consumer_batch_retries",
            "Batches of events whose transaction failed (database busy, disk full) and were tried again",
            m.consumer_retries.clone(),
        );
        m.register(
            "consumer_handler_failures",
            "Events a handler refused or failed on; the bus delivers them again, then dead-letters them",
            m.consumer_failures.clone(),
        );
        m.register(
            "consumer_lag_events",
            "Events on the bus for this service's group not yet delivered to it (from the broker's STATS when scraped, cached up to 5 s)",
            m.consumer_lag.clone(),
        );
        m.register(
            "consumer_pending_events",
            "Events delivered to this service's group and not yet acknowledged (from the broker's STATS)",
            m.consumer_pending.clone(),
        );
        m.register(
            "consumer_dead_letters",
            "This service's group's events on the bus's dead-letter list (from the broker's STATS)",
            m.consumer_dead_letters.clone(),
        );
        m.register(
            "bus_connected",
            "1 while this process has an authenticated session with the bus, else 0",
            m.bus_connected.clone(),
        );
        m
    }

    /// Adds a metric of a service's own (payments by status), registered as `tix_<name>`.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .expect("registry lock")
            .register(name, help, metric);
    }

    fn register_in_seconds(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .expect("registry lock")
            .register_with_unit(
                name,
                help,
                prometheus_client::registry::Unit::Seconds,
                metric,
            );
    }

    /// Runs `read` before each scrape, to set gauges from the service's state.
    pub fn on_scrape(&self, read: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static) {
        self.readers
            .lock()
            .expect("readers lock")
            .push(Arc::new(read));
    }

    /// The metrics as Prometheus text (OpenMetrics 1.0), after the scrape readers ran.
    pub async fn render(&self) -> String {
        let readers: Vec<Reader> = self.readers.lock().expect("readers lock").clone();
        futures::future::join_all(readers.iter().map(|r| r())).await;
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(
            &mut out,
            &self.registry.lock().expect("registry lock"),
        )
        .expect("writing to a String cannot fail");
        out
    }
}

/// Counts and times one answered request (the shared HTTP layer, `http::layers`, calls it
/// for the routers' requests; the gateway's edge for the requests it forwards and the
/// heads it refuses).
pub fn observe_request(method: HttpMethod, route: Route, status: u16, took: std::time::Duration) {
    let labels = HttpLabels {
        method,
        route,
        status,
    };
    get()
        .http_duration
        .get_or_create(&labels)
        .observe(took.as_secs_f64());
}

/// `GET /metrics`.
pub async fn serve() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        get().render().await,
    )
        .into_response()
}
