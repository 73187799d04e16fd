//! The payments service: buyers pay for their orders here.
//!
//! Owns `payments.db`: a replica of orders fed by `order:created` and `order:cancelled`
//! (so the amount and the buyer come from orders, never from the client) and the payments
//! made. A payment is claimed in the database before the card is charged, and a partial
//! unique index allows one live claim per order, so an order is never charged twice however
//! many requests race. The outcome goes out through the outbox as `payment:created` or
//! `payment:failed`. Cards are charged through a [`provider::PaymentProvider`]: the built-in
//! [`provider::Sandbox`] or [`provider::Stripe`].

mod consumer;
pub mod provider;
mod routes;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::post;
use tix_api::events::Subject;
use tix_bus_client::SubscribeOptions;
use tix_common::auth::JwtKeys;
use tix_common::config::ServiceArgs;
use tix_common::db::Db;
use tix_common::http;
use tix_common::service::Service;

use crate::provider::{PaymentProvider, Sandbox, Stripe};

/// The name this service publishes under and its queue group on the bus.
pub const PRODUCER: &str = "payments";

/// Who charges the cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Built in, no network: Stripe's test tokens and card numbers.
    Sandbox,
    /// Stripe's HTTP API (needs a secret key).
    Stripe,
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tix-payments",
    version,
    about = "tix payments service: pay for orders"
)]
pub struct Config {
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "TIX_PAYMENTS_PORT", default_value_t = 4004)]
    pub port: u16,
    /// Who charges the cards.
    #[arg(
        long,
        env = "TIX_PAYMENT_PROVIDER",
        value_enum,
        default_value = "sandbox"
    )]
    pub provider: ProviderKind,
    /// Stripe secret key (`sk_…`); required with `--provider stripe`.
    #[arg(long, env = "TIX_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Stripe API base URL (point it at a fake in tests).
    #[arg(
        long,
        env = "TIX_STRIPE_BASE_URL",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_base_url: String,
    /// Currency of every charge (ISO code, lower case).
    #[arg(long, env = "TIX_CURRENCY", default_value = "usd")]
    pub currency: String,
}

impl Config {
    fn provider(&self) -> anyhow::Result<Arc<dyn PaymentProvider>> {
        Ok(match self.provider {
            ProviderKind::Sandbox => Arc::new(Sandbox),
            ProviderKind::Stripe => {
                let key = self
                    .stripe_secret_key
                    .as_deref()
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .context(
                        "--provider stripe needs a secret key: set TIX_STRIPE_SECRET_KEY \
                         (or --stripe-secret-key)",
                    )?;
                Arc::new(
                    Stripe::new(&self.stripe_base_url, key)
                        .context("setting up the Stripe client")?,
                )
            }
        })
    }
}

/// What handlers share; extractors take their part of it (the JWT keys) through `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    db: Db,
    keys: JwtKeys,
    provider: Arc<dyn PaymentProvider>,
    currency: Arc<str>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}

/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    // First, so a misconfigured provider stops the start before anything is opened.
    let provider = cfg.provider()?;
    let keys = cfg.common.jwt_keys()?;
    let db = cfg.common.open_db("payments.db", store::MIGRATIONS)?;
    let mut group = SubscribeOptions::new(
        PRODUCER,
        &[
            Subject::OrderCreated.as_str(),
            Subject::OrderCancelled.as_str(),
        ],
    );
    // A burst is applied in log order. A cancellation that overtakes its creation (only
    // after a redelivery) finds no replica and is retried, so many in flight is safe.
    group.max_in_flight = 256;
    group.ack_wait_ms = Duration::from_secs(30).as_millis() as u64;
    let state = AppState {
        db: db.clone(),
        keys,
        provider,
        currency: Arc::from(cfg.currency.as_str()),
    };
    let routes = Router::new()
        .route("/api/payments", post(routes::create))
        .with_state(state);
    let router = http::app(routes, PRODUCER, cfg.common.limits());
    let service = Service::bind(SocketAddr::new(cfg.common.host, cfg.port), router)
        .await?
        .with_db(db)
        .with_events(&cfg.common.bus, group, Arc::new(consumer::apply));
    Ok(service)
}
