//! The orders service: buyers reserve tickets here.
//!
//! Owns `orders.db`: orders and a replica of tickets kept from `ticket:*` events (applied
//! strictly in version order). An order holds its ticket until it is paid, cancelled, or
//! expires (`TIX_ORDER_TTL`, 15 minutes by default); at most one active order per ticket,
//! enforced by a partial unique index. A buyer holds at most `TIX_MAX_ACTIVE_ORDERS` unpaid
//! reservations and makes new ones at a bounded rate, so nobody can hoard the tickets on
//! sale. An order keeps the ticket's title and price as reserved, and when it was paid.
//! Publishes `order:created` / `order:cancelled` / `payment:rejected` through the outbox;
//! consumes `expiration:complete`, `payment:created` and `payment:failed`. Orders settles
//! "cancelled or paid": whichever it applies first wins, and a payment that comes second
//! is rejected for payments to refund (see `consumer`).

mod consumer;
mod routes;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use tix_api::events::Subject;
use tix_bus_client::SubscribeOptions;
use tix_common::auth::JwtKeys;
use tix_common::config::ServiceArgs;
use tix_common::db::Db;
use tix_common::http;
use tix_common::inbox::Group;
use tix_common::rate::Rate;
use tix_common::service::Service;
use tix_common::sessions;

pub const PRODUCER: &str = "orders";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tix-orders",
    version,
    about = "tix orders service: reserve, list, show and cancel orders"
)]
pub struct Config {
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "TIX_ORDERS_PORT", default_value_t = 4003)]
    pub port: u16,
    /// How long an order holds its ticket before it expires unpaid.
    #[arg(long, env = "TIX_ORDER_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub order_ttl: Duration,
    /// Unpaid reservations one buyer may hold at once, so nobody can hoard tickets.
    #[arg(long, env = "TIX_MAX_ACTIVE_ORDERS", default_value_t = 5)]
    pub max_active_orders: u32,
    /// New orders per buyer, as BURST/PER_MINUTE.
    #[arg(long, env = "TIX_ORDERS_PER_USER", default_value = "10/30")]
    pub orders_per_user: Rate,
}

/// What handlers share; extractors take their part of it (the JWT keys) through `FromRef`.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    db: Db,
    keys: JwtKeys,
    order_ttl: Duration,
    max_active_orders: u32,
    /// New orders per buyer.
    order_rate: Arc<governor::DefaultKeyedRateLimiter<String>>,
}

/// The orders endpoints' part of the OpenAPI document (docs/openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::router().into_openapi()
}

/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    let keys = cfg.common.jwt_keys()?;
    let db = cfg.common.open_db("orders.db", store::MIGRATIONS)?;
    let mut group = SubscribeOptions::new(
        PRODUCER,
        &[
            Subject::TicketCreated.as_str(),
            Subject::TicketUpdated.as_str(),
            Subject::ExpirationComplete.as_str(),
            Subject::PaymentCreated.as_str(),
            Subject::PaymentFailed.as_str(),
            Subject::SessionRevoked.as_str(),
        ],
    );
    // Events arrive in log order and a burst is applied in that order; a ticket version
    // from the future is left unacked and comes back after the ack wait.
    group.max_in_flight = 64;
    group.ack_wait_ms = 5_000;
    // The ticket replica: a reservation that reads it commits synced, which carries it to
    // the disk too. Not `payment:created`: a buyer told that the order is complete must not
    // see it cancelled after a power cut, should an expiry reach orders before the payment
    // comes back.
    let group = Group {
        local: [Subject::TicketCreated, Subject::TicketUpdated]
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        ..Group::from(group)
    };
    let order_rate = Arc::new(governor::RateLimiter::keyed(cfg.orders_per_user.quota()));
    // Forget buyers whose quota is whole again, so the table does not grow forever.
    let prune = {
        let order_rate = order_rate.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                order_rate.retain_recent();
                order_rate.shrink_to_fit();
            }
        })
    };
    let revocations = sessions::watch(&db, &keys).await?;
    let state = AppState {
        db: db.clone(),
        keys: keys.clone(),
        order_ttl: cfg.order_ttl,
        max_active_orders: cfg.max_active_orders,
        order_rate,
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
            cfg.common.pruning(),
        )
        .with_task(revocations)
        .with_task(prune);
    Ok(service)
}
