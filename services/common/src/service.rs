//! A built service and the `main` every service binary shares: bind, print where it
//! listens (tests and scripts read that line), serve until SIGINT/SIGTERM, then stop its
//! background tasks, say goodbye to the bus and close the database — in that order, so
//! in-flight requests finish and queued writes are committed.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use futures::FutureExt;
use tix_bus_client::{Client, ClientOptions};
use tokio_util::task::TaskTracker;

use crate::db::Db;
use crate::health::{Monitor, Part, PartKind};
use crate::http::{self, Listener};
use crate::inbox::Handler;

/// The longest a stopping service waits for tracked work: longer than a payment
/// provider's timeout (30 s), so a charge in flight is always recorded.
pub const FINISH_WITHIN: std::time::Duration = std::time::Duration::from_secs(35);

/// A service ready to serve: its listener, its routes, and what stops with it.
#[derive(Debug)]
pub struct Service {
    listener: Listener,
    router: Router,
    db: Option<Db>,
    bus: Option<Client>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Work that must finish before the database closes (a charge being recorded).
    finish: Option<TaskTracker>,
    /// What `/healthz` reports about the background parts.
    monitor: Monitor,
    /// Serves the connections instead of hyper (the gateway's proxy).
    edge: EdgeSlot,
}

struct EdgeSlot(Option<http::Edge>);

impl std::fmt::Debug for EdgeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(edge)"
        } else {
            "None"
        })
    }
}

impl Service {
    /// Binds `host:port` (port 0 picks a free one) for `router`. The router's `/healthz`
    /// (from [`http::app`]) reports what the service's [`Monitor`] knows.
    pub async fn bind(addr: SocketAddr, router: Router) -> std::io::Result<Service> {
        let monitor = Monitor::default();
        Ok(Service {
            listener: Listener::bind(addr).await.map_err(|e| {
                // Says which address, and what an operator usually does about it.
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    " (another process holds it: stop it, or choose another port)"
                } else {
                    ""
                };
                std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}{hint}"))
            })?,
            router: router.layer(axum::Extension(monitor.clone())),
            db: None,
            bus: None,
            tasks: Vec::new(),
            finish: None,
            monitor,
            edge: EdgeSlot(None),
        })
    }

    /// Lets `edge` serve the connections, with the router for what it does not answer
    /// itself ([`http::Edge`]).
    pub fn with_edge(mut self, edge: http::Edge) -> Self {
        self.edge = EdgeSlot(Some(edge));
        self
    }

    /// What the service's `/healthz` reports on.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The database to close (after its last write) when the service stops.
    pub fn with_db(mut self, db: Db) -> Self {
        // `/readyz` asks it for a write.
        self.monitor.set_db(&db);
        self.db = Some(db);
        self
    }

    /// The bus connection to close when the service stops.
    pub fn with_bus(mut self, bus: Client) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The event plumbing every consuming service runs on its database (set by
    /// [`Service::with_db`] first): a bus connection with `bus` (the service's name and
    /// key: [`ServiceArgs::bus_options`](crate::config::ServiceArgs::bus_options)), the
    /// outbox relay, and the inbox consumer applying `handler` to the group's events —
    /// each restarted if it ends ([`supervise`]), and all three in `/healthz`.
    pub fn with_events(
        self,
        bus: ClientOptions,
        group: impl Into<crate::inbox::Group>,
        handler: Handler,
        pruning: crate::inbox::Pruning,
    ) -> Self {
        let db = self
            .db
            .clone()
            .expect("with_db before with_events: events need the database");
        let bus = Client::connect(bus);
        let group = group.into();
        self.monitor.set_group(&group.opts.group);
        let part = self.monitor.part(PartKind::Consumer);
        let consumer = {
            let (db, bus, part) = (db.clone(), bus.clone(), part.clone());
            supervise("consumer", part.clone(), move || {
                crate::inbox::run_consumer(
                    db.clone(),
                    bus.clone(),
                    group.clone(),
                    handler.clone(),
                    part.clone(),
                    pruning.clone(),
                )
            })
        };
        self.with_outbox_on(db, bus).with_task(consumer)
    }

    /// For a service that publishes but consumes nothing: a bus connection with `bus` and
    /// the outbox relay on its database (set by [`Service::with_db`] first), restarted if
    /// it ends ([`supervise`]), in `/healthz` with the bus link.
    pub fn with_outbox(self, bus: ClientOptions) -> Self {
        let db = self
            .db
            .clone()
            .expect("with_db before with_outbox: the outbox is in the database");
        let bus = Client::connect(bus);
        self.with_outbox_on(db, bus)
    }

    fn with_outbox_on(self, db: Db, bus: Client) -> Self {
        self.monitor.set_db(&db);
        let link = self.monitor.watch_bus(&bus);
        let part = self.monitor.part(PartKind::Outbox);
        let relay = {
            let (bus, part) = (bus.clone(), part.clone());
            supervise("outbox relay", part.clone(), move || {
                crate::outbox::run_relay(db.clone(), bus.clone(), part.clone())
            })
        };
        self.with_bus(bus).with_task(relay).with_task(link)
    }

    /// Work that outlives its request and must end before the service does — a charge
    /// made must be recorded: awaited (up to [`FINISH_WITHIN`]) after the last request,
    /// before the bus and the database close.
    pub fn with_finishing(mut self, tracker: TaskTracker) -> Self {
        self.finish = Some(tracker);
        self
    }

    /// Background work (outbox relay, consumers, schedulers) stopped with the service.
    pub fn with_task(mut self, task: tokio::task::JoinHandle<()>) -> Self {
        self.tasks.push(task);
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        http::serve(self.listener, self.router, self.edge.0, shutdown).await?;
        if let Some(tracker) = &self.finish {
            tracker.close();
            if tokio::time::timeout(FINISH_WITHIN, tracker.wait())
                .await
                .is_err()
            {
                tracing::error!(left = tracker.len(), "stopping with work unfinished");
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        if let Some(bus) = &self.bus {
            bus.close().await;
        }
        if let Some(db) = &self.db {
            db.close();
        }
        Ok(())
    }
}

/// The first pause before a stopped task is started again; it doubles up to 5 s, and starts
/// over once the task has run for a minute.
const FIRST_RESTART: Duration = Duration::from_millis(100);
const MAX_RESTART: Duration = Duration::from_secs(5);

/// Runs the task `make` builds for as long as the returned handle is not aborted: when the
/// task ends — it returns, or it panics — the stop is logged, `part` reports it (degraded
/// until the task says it is ok again) and a new task is started after a pause. So a
/// consumer or relay that dies does not leave the service silently not working.
pub fn supervise<F, Fut>(what: &'static str, part: Part, make: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = FIRST_RESTART;
        loop {
            let started = Instant::now();
            // Run in place, not spawned: aborting this task drops the running one with it.
            let outcome = std::panic::AssertUnwindSafe(make()).catch_unwind().await;
            let why = match outcome {
                Ok(()) => "ended".to_string(),
                Err(panic) => format!("panicked: {}", panic_message(&*panic)),
            };
            if started.elapsed() > Duration::from_secs(60) {
                pause = FIRST_RESTART;
            }
            tracing::error!(task = what, %why, restart_in = ?pause, "a background task stopped; starting it again");
            part.restarting(format!("the {what} {why}; starting it again"));
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RESTART);
        }
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// A runtime of `workers` threads; one runs everything on the thread that blocks on it.
pub fn runtime(workers: u16) -> std::io::Result<tokio::runtime::Runtime> {
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.into())
            .enable_all()
            .build()
    }
}

/// How a service's process runs, from its flags: its threads and its logs.
#[derive(Debug, Clone)]
pub struct Process {
    pub workers: u16,
    pub log: String,
    pub log_format: crate::config::LogFormat,
}

/// A service binary's `main`: its [`runtime`] of `workers` threads, then [`run`].
pub fn main(
    name: &str,
    process: Process,
    build: impl std::future::Future<Output = anyhow::Result<Service>>,
) -> std::process::ExitCode {
    match runtime(process.workers) {
        Ok(runtime) => runtime.block_on(run(name, &process.log, process.log_format, build)),
        Err(e) => {
            eprintln!("{name}: cannot start its runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole `main` of a service binary: logs, build, announce, serve until a signal. A
/// service that cannot start (or fails while running) says so in one line on stderr —
/// `tix-orders: opening …/orders.db: …` — and exits 1, without a backtrace whatever
/// `RUST_BACKTRACE` says: the line is for an operator, the cause chain is in it.
pub async fn run(
    name: &str,
    log: &str,
    format: crate::config::LogFormat,
    build: impl std::future::Future<Output = anyhow::Result<Service>>,
) -> std::process::ExitCode {
    crate::config::init_tracing(log, format);
    let served = async {
        let service = build.await?;
        println!("{name} listening on http://{}", service.addr());
        tracing::info!(
            workers = tokio::runtime::Handle::current().metrics().num_workers(),
            "serving"
        );
        service.run_until_stopped(http::shutdown_signal()).await
    };
    match served.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line (`what: why: deeper why`).
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tix_api::health::HealthStatus;
    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn a_task_that_returns_or_panics_is_started_again_and_health_shows_it() {
        let monitor = Monitor::default();
        let part = monitor.part(PartKind::Consumer);
        let runs = Arc::new(AtomicU32::new(0));
        let recovered = Arc::new(Notify::new());
        let task = {
            let (runs, part, recovered) = (runs.clone(), part.clone(), recovered.clone());
            supervise("consumer", part.clone(), move || {
                let (runs, part, recovered) = (runs.clone(), part.clone(), recovered.clone());
                async move {
                    match runs.fetch_add(1, Ordering::SeqCst) {
                        0 => {} // returns
                        1 => panic!("a bug in a handler"),
                        _ => {
                            recovered.notified().await;
                            part.ok();
                            std::future::pending::<()>().await
                        }
                    }
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "not started a third time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let h = monitor.report("svc").await;
        let c = &h.checks.as_ref().unwrap()["consumer"];
        assert_eq!((c.status, c.restarts), (HealthStatus::Degraded, Some(2)));
        assert!(
            c.reason
                .as_deref()
                .unwrap()
                .contains("panicked: a bug in a handler"),
            "{c:?}"
        );
        // Degraded until the new task says it works.
        recovered.notify_one();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let h = monitor.report("svc").await;
            let c = &h.checks.as_ref().unwrap()["consumer"];
            if c.status == HealthStatus::Ok {
                assert_eq!(c.restarts, Some(2));
                break;
            }
            assert!(Instant::now() < deadline, "never ok again: {c:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
    }
}
