//! The tickets service: people sell tickets here.
//!
//! Owns `tickets.db`. Every change goes out as an event through the outbox
//! (`ticket:created`, `ticket:updated`); `order:created` and `order:cancelled` from the bus
//! reserve and release tickets, exactly once thanks to the inbox.

mod consumer;
mod domain;
mod routes;
mod store;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::FromRef;
use tix_api::events::Subject;
use tix_bus_client::SubscribeOptions;
use tix_common::auth::JwtKeys;
use tix_common::config::ServiceArgs;
use tix_common::db::Db;
use tix_common::http;
use tix_common::service::Service;
use tix_common::sessions;

pub use domain::{Price, Title};

/// The name this service publishes under and its queue group on the bus.
pub const PRODUCER: &str = "tickets";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tix-tickets",
    version,
    about = "tix tickets service: sell, list, show and edit tickets"
)]
pub struct Config {
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "TIX_TICKETS_PORT", default_value_t = 4002)]
    pub port: u16,
}

/// What handlers share; extractors take their part of it (the JWT keys) through `FromRef`.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    db: Db,
    keys: JwtKeys,
}

/// The tickets endpoints' part of the OpenAPI document (docs/openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::router().into_openapi()
}

/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    let keys = cfg.common.jwt_keys()?;
    let db = cfg.common.open_db("tickets.db", store::MIGRATIONS)?;
    let mut group = SubscribeOptions::new(
        PRODUCER,
        &[
            Subject::OrderCreated.as_str(),
            Subject::OrderCancelled.as_str(),
            Subject::SessionRevoked.as_str(),
        ],
    );
    // Handlers are safe in any order (see consumer.rs), so deliveries can be pipelined.
    group.max_in_flight = 256;
    group.ack_wait_ms = Duration::from_secs(30).as_millis() as u64;
    let revocations = sessions::watch(&db, &keys).await?;
    let state = AppState {
        db: db.clone(),
        keys: keys.clone(),
    };
    let routes = routes::router().with_state(state).into();
    let router = http::app(routes, PRODUCER, cfg.common.limits());
    let service = Service::bind(SocketAddr::new(cfg.common.host, cfg.port), router)
        .await?
        .with_db(db)
        .with_events(
            cfg.common.bus_options(PRODUCER)?,
            group,
            sessions::with_revocations(&keys, consumer::apply),
            // Tombstones of cancelled orders guard against the same redeliveries.
            cfg.common
                .pruning()
                .with(std::sync::Arc::new(store::prune_cancelled)),
        )
        .with_task(revocations);
    Ok(service)
}
