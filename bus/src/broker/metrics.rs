//! Prometheus metrics and a health check on an HTTP port of their own (`--metrics-addr`).
//!
//! Two kinds of numbers, kept apart so that a scrape costs the broker's loop next to
//! nothing:
//! - counters and histograms updated where the work happens: the store's writer thread
//!   counts the events each group commit stored and times the commit (atomics, and a cache
//!   of per-subject counters owned by that thread, so the family's lock is only taken for a
//!   subject seen for the first time);
//! - gauges of the broker's state (groups, sessions, connections, the log's size), which only
//!   the core knows and which need the log for each group's lag. A scrape asks for them the
//!   way `STATS` does: the core snapshots its counters (O(groups)) and hands the counting to
//!   the `bus-ops` thread, which answers the scrape directly. At most one such request is
//!   under way at a time; a scrape that cannot get an answer in time leaves those gauges out
//!   rather than serve numbers of unknown age.
//!
//! The HTTP server runs on a thread and runtime of its own, so parsing requests and
//! encoding the text never take the core's thread; it serves a bounded number of
//! connections, each for a bounded time, so the port cannot be used to starve the broker
//! of file descriptors or to pin memory.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tix_bus_client::protocol::Stats;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::core::{Input, Token};
use crate::store::{CommitTimes, Done, Effects};

/// The content type of OpenMetrics text, which `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Subjects counted under their own label at most; later ones share [`OTHER_SUBJECT`], so a
/// client allowed to publish anywhere cannot grow the metrics without bound.
const MAX_SUBJECTS: usize = 1024;
const OTHER_SUBJECT: &str = "_other";
/// Seconds, from a fast fsync on an SSD to a disk in trouble.
const DURATION_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];
/// HTTP connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// A connection is closed after this long whatever it does, so idle or slow clients
/// cannot keep the connection slots (Prometheus simply reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// How long a scrape waits for the broker's state (below Prometheus's default 10 s
/// scrape timeout).
const STATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker's state at a scrape: the `STATS` counters, completed on the ops thread.
#[derive(Debug)]
pub(super) struct BrokerState {
    pub(super) stats: Stats,
    /// Connections open (ZMTP handshake done), with or without a session.
    pub(super) connections: u64,
}

/// Where the ops thread sends a scrape's state.
pub(super) type StateReply = oneshot::Sender<Result<BrokerState, String>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubjectLabels {
    subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

/// The metrics updated where the work happens.
#[derive(Debug)]
pub(super) struct Metrics {
    registry: Registry,
    published: Family<SubjectLabels, Counter>,
    commit: Histogram,
    fsync: Histogram,
}

impl Metrics {
    pub(super) fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("tix_bus");
        let published = Family::<SubjectLabels, Counter>::default();
        let commit = Histogram::new(DURATION_BUCKETS);
        let fsync = Histogram::new(DURATION_BUCKETS);
        registry.register(
            "published_events",
            "Events stored in the log since the broker started, per subject (a duplicate id is not stored, so not counted; subjects beyond the first 1024 count as _other)",
            published.clone(),
        );
        registry.register(
            "commit_duration_seconds",
            "Time of one group commit of the store's writer: the whole SQLite transaction, from BEGIN through every write of the batch to the end of COMMIT",
            commit.clone(),
        );
        registry.register(
            "fsync_duration_seconds",
            "Time of the COMMIT statement of a group commit: SQLite appending the WAL frames and, with --durability full, fsyncing the WAL (SQLite does not expose the fsync alone; with normal there is no fsync per commit); batches of nothing but acks, which are not synced, are left out",
            fsync.clone(),
        );
        Arc::new(Metrics {
            registry,
            published,
            commit,
            fsync,
        })
    }

    /// What the writer thread calls after each group commit; it owns the returned value.
    pub(super) fn commit_observer(self: &Arc<Self>) -> CommitObserver {
        CommitObserver {
            metrics: self.clone(),
            by_subject: HashMap::new(),
            other: None,
        }
    }

    /// The whole text: these metrics, then the state gauges when there is a state.
    fn encode(&self, state: Option<&BrokerState>) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        if let Some(state) = state {
            encode_registry(&mut out, &state_registry(state))?;
        }
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Counts stored events per subject and times commits, on the writer thread.
#[derive(Debug)]
pub(super) struct CommitObserver {
    metrics: Arc<Metrics>,
    /// The family's counters by subject bytes, so counting an event neither allocates
    /// nor takes the family's lock.
    by_subject: HashMap<Box<[u8]>, Counter>,
    other: Option<Counter>,
}

impl CommitObserver {
    pub(super) fn observe(&mut self, done: &[Done<Token>], times: CommitTimes) {
        self.metrics.commit.observe(times.total.as_secs_f64());
        if !times.unsynced {
            self.metrics.fsync.observe(times.commit.as_secs_f64());
        }
        for d in done {
            if let Ok(Effects { inserted, .. }) = &d.result {
                for e in inserted {
                    self.count(e.subject());
                }
            }
        }
    }

    fn count(&mut self, subject: &[u8]) {
        if let Some(c) = self.by_subject.get(subject) {
            c.inc();
            return;
        }
        if self.by_subject.len() >= MAX_SUBJECTS {
            let family = &self.metrics.published;
            self.other
                .get_or_insert_with(|| {
                    family
                        .get_or_create(&SubjectLabels {
                            subject: OTHER_SUBJECT.into(),
                        })
                        .clone()
                })
                .inc();
            return;
        }
        let c = self
            .metrics
            .published
            .get_or_create(&SubjectLabels {
                subject: String::from_utf8_lossy(subject).into_owned(),
            })
            .clone();
        c.inc();
        self.by_subject.insert(subject.into(), c);
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(to_i64(v));
    g
}

/// The state gauges, in a registry made for one scrape: groups that went away since the
/// last one are not reported any more.
fn state_registry(state: &BrokerState) -> Registry {
    let mut r = Registry::with_prefix("tix_bus");
    let lag = Family::<GroupLabels, Gauge>::default();
    let pending = Family::<GroupLabels, Gauge>::default();
    let redelivered = Family::<GroupLabels, Counter>::default();
    let dead = Family::<GroupLabels, Gauge>::default();
    for g in &state.stats.groups {
        let l = GroupLabels {
            group: g.name.clone(),
        };
        lag.get_or_create(&l).set(to_i64(g.lag));
        pending.get_or_create(&l).set(to_i64(g.pending));
        redelivered.get_or_create(&l).inc_by(g.redelivered);
        dead.get_or_create(&l).set(to_i64(g.dead_letters));
    }
    r.register(
        "group_lag_events",
        "Events of the group's subjects after its position that it has still to receive",
        lag,
    );
    r.register(
        "group_pending_events",
        "Events delivered to the group and not acked yet, in flight or waiting for redelivery",
        pending,
    );
    r.register(
        "group_redelivered_events",
        "Deliveries of an event the group had been given before (ack wait over, NAK, member gone), since the broker started",
        redelivered,
    );
    r.register(
        "group_dead_letters",
        "Dead letters of the group in the log now (delivered maxDeliveries times, not replayed)",
        dead,
    );
    r.register(
        "connected_clients",
        "Client sessions open now (past HELLO, and AUTH unless the broker runs with --insecure-no-auth)",
        gauge(state.stats.sessions),
    );
    r.register(
        "connections",
        "TCP connections open now that finished the ZMTP handshake, with or without a session",
        gauge(state.connections),
    );
    r.register(
        "log_events",
        "Events in the log now (all subjects, after pruning)",
        gauge(state.stats.events),
    );
    r
}

/// The metrics port, bound at start so that a port in use is a start error.
#[derive(Debug)]
pub(super) struct Bound {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl Bound {
    pub(super) fn bind(addr: &str) -> anyhow::Result<Bound> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding the metrics address {addr}"))?;
        listener
            .set_nonblocking(true)
            .with_context(|| format!("setting up the metrics address {addr}"))?;
        let addr = listener
            .local_addr()
            .with_context(|| format!("reading the bound metrics address {addr}"))?;
        Ok(Bound { listener, addr })
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving on a thread of its own; the server stops when the handle drops.
    pub(super) fn serve(
        self,
        metrics: Arc<Metrics>,
        core: mpsc::UnboundedSender<Input>,
    ) -> anyhow::Result<Server> {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Arc::new(App {
            metrics,
            core,
            pending: Mutex::new(None),
            health: Health {
                service: "bus",
                status: "ok",
                pid: std::process::id(),
                instance: uuid::Uuid::now_v7().to_string(),
            },
        });
        let Bound { listener, addr } = self;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the metrics server's runtime")?;
        std::thread::Builder::new()
            .name("bus-metrics".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(%addr, error = %e, "the metrics server could not start");
                            return;
                        }
                    };
                    let listener = Capped {
                        inner: listener,
                        slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
                    };
                    let router = Router::new()
                        .route("/metrics", get(scrape).fallback(not_found))
                        .route("/healthz", get(healthz).fallback(not_found))
                        .fallback(not_found)
                        .with_state(app);
                    tokio::select! {
                        r = axum::serve(listener, router) => {
                            if let Err(e) = r {
                                tracing::error!(%addr, error = %e, "the metrics server stopped");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })
            .context("starting the metrics thread")?;
        Ok(Server { _stop: stop })
    }
}

/// The running metrics server; dropping it stops the server.
#[derive(Debug)]
pub(super) struct Server {
    _stop: oneshot::Sender<()>,
}

#[derive(Debug, serde::Serialize)]
struct Health {
    service: &'static str,
    status: &'static str,
    pid: u32,
    instance: String,
}

#[derive(Debug)]
struct App {
    metrics: Arc<Metrics>,
    core: mpsc::UnboundedSender<Input>,
    /// The state request under way, if a scrape gave up waiting for it: the next scrape
    /// waits for the same one instead of queueing another on the ops thread.
    pending: Mutex<Option<oneshot::Receiver<Result<BrokerState, String>>>>,
    health: Health,
}

impl App {
    async fn state(&self) -> Option<BrokerState> {
        let answer = tokio::time::timeout(STATE_TIMEOUT, async {
            // Scrapes take turns, so at most one state request is ever queued; one that
            // times out leaves its request here for the next scrape to wait on.
            let mut pending = self.pending.lock().await;
            let rx = match pending.as_mut() {
                Some(rx) => rx,
                None => {
                    let (tx, rx) = oneshot::channel();
                    self.core.send(Input::Metrics(tx)).ok()?;
                    pending.insert(rx)
                }
            };
            let answer = rx.await;
            *pending = None;
            Some(answer)
        })
        .await;
        match answer {
            Ok(Some(Ok(Ok(state)))) => Some(state),
            Ok(Some(Ok(Err(e)))) => {
                tracing::warn!(error = %e, "metrics: reading the broker's state failed");
                None
            }
            // The ops thread was busy (the request was dropped), or the broker is stopping.
            Ok(Some(Err(_)) | None) => {
                tracing::debug!("metrics: the broker did not answer; state gauges left out");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "metrics: the broker's state took over {STATE_TIMEOUT:?}; state gauges left out"
                );
                None
            }
        }
    }
}

async fn scrape(State(app): State<Arc<App>>) -> Response {
    let state = app.state().await;
    match app.metrics.encode(state.as_ref()) {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({ "error": "encoding the metrics failed" })),
        )
            .into_response(),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    axum::Json(&app.health).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "error": "Not found" })),
    )
        .into_response()
}

/// A listener that serves at most [`MAX_CONNECTIONS`] connections at once.
#[derive(Debug)]
struct Capped {
    inner: tokio::net::TcpListener,
    slots: Arc<Semaphore>,
}

impl axum::serve::Listener for Capped {
    type Io = Held;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Held, SocketAddr) {
        // Never closed: the semaphore lives as long as the listener.
        let permit = loop {
            if let Ok(p) = self.slots.clone().acquire_owned().await {
                break p;
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    return (
                        Held {
                            stream,
                            _permit: permit,
                            deadline: Box::pin(tokio::time::sleep(CONNECTION_LIFETIME)),
                        },
                        addr,
                    );
                }
                // Out of file descriptors, say: wait instead of spinning.
                Err(e) => {
                    tracing::debug!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection holding its slot, closed once its lifetime is over.
#[derive(Debug)]
struct Held {
    stream: tokio::net::TcpStream,
    _permit: OwnedSemaphorePermit,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Held {
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn lifetime_over() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "metrics connection lifetime over")
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
