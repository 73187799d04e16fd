//! A built service and the `main` every service binary shares: bind, print where it
//! listens (tests and scripts read that line), serve until SIGINT/SIGTERM, then stop its
//! background tasks, say goodbye to the bus and close the database — in that order, so
//! in-flight requests finish and queued writes are committed.

use std::net::SocketAddr;

use axum::Router;
use tix_bus_client::{Client, ClientOptions, SubscribeOptions};
use tokio_util::task::TaskTracker;

use crate::db::Db;
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
}

impl Service {
    /// Binds `host:port` (port 0 picks a free one) for `router`.
    pub async fn bind(addr: SocketAddr, router: Router) -> std::io::Result<Service> {
        Ok(Service {
            listener: Listener::bind(addr).await?,
            router,
            db: None,
            bus: None,
            tasks: Vec::new(),
            finish: None,
        })
    }

    /// The database to close (after its last write) when the service stops.
    pub fn with_db(mut self, db: Db) -> Self {
        self.db = Some(db);
        self
    }

    /// The bus connection to close when the service stops.
    pub fn with_bus(mut self, bus: Client) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The event plumbing every consuming service runs on its database (set by
    /// [`Service::with_db`] first): a bus connection named after the queue group, the
    /// outbox relay, and the inbox consumer applying `handler` to the group's events.
    pub fn with_events(self, bus_url: &str, group: SubscribeOptions, handler: Handler) -> Self {
        let db = self
            .db
            .clone()
            .expect("with_db before with_events: events need the database");
        let bus = Client::connect(ClientOptions::new(bus_url, group.group.clone()));
        let relay = tokio::spawn(crate::outbox::run_relay(db.clone(), bus.clone()));
        let consumer = tokio::spawn(crate::inbox::run_consumer(db, bus.clone(), group, handler));
        self.with_bus(bus).with_task(relay).with_task(consumer)
    }

    /// For a service that publishes but consumes nothing: a bus connection named `name`
    /// and the outbox relay on its database (set by [`Service::with_db`] first).
    pub fn with_outbox(self, bus_url: &str, name: &str) -> Self {
        let db = self
            .db
            .clone()
            .expect("with_db before with_outbox: the outbox is in the database");
        let bus = Client::connect(ClientOptions::new(bus_url, name));
        let relay = tokio::spawn(crate::outbox::run_relay(db, bus.clone()));
        self.with_bus(bus).with_task(relay)
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
        http::serve(self.listener, self.router, shutdown).await?;
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

/// The whole `main` of a service binary: logs, build, announce, serve until a signal.
pub async fn run(
    name: &str,
    log: &str,
    build: impl std::future::Future<Output = anyhow::Result<Service>>,
) -> anyhow::Result<()> {
    crate::config::init_tracing(log);
    let service = build.await?;
    println!("{name} listening on http://{}", service.addr());
    service.run_until_stopped(http::shutdown_signal()).await
}
