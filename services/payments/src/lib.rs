//! The payments service: buyers pay for their orders here.
//!
//! Owns `payments.db`: a replica of orders fed by `order:created` and `order:cancelled`
//! (so the amount and the buyer come from orders, never from the client) and the payments
//! made. A payment is claimed in the database before the card is charged, and a partial
//! unique index allows one live claim per order, so an order is never charged twice however
//! many requests race. The outcome goes out through the outbox as `payment:created` or
//! `payment:failed`. A payment orders rejects (its order was cancelled first:
//! `payment:rejected`) is refunded through the provider and announced as
//! `payment:refunded`. Buyers read their receipts at `GET /api/payments[/:id]`. Cards are
//! charged through a [`provider::PaymentProvider`]: the built-in [`provider::Sandbox`] or
//! [`provider::Stripe`].

mod charging;
mod consumer;
mod metrics;
pub mod provider;
mod reconcile;
mod refunds;
mod routes;
mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use tix_api::events::Subject;
use tix_bus_client::SubscribeOptions;
use tix_common::auth::JwtKeys;
use tix_common::config::ServiceArgs;
use tix_common::db::Db;
use tix_common::http;
use tix_common::inbox::Group;
use tix_common::secret::{ExposeSecret, SecretSource, SecretString, refuse_flag};
use tix_common::service::Service;
use tix_common::sessions;
use tokio_util::task::TaskTracker;

use crate::charging::Charger;
use crate::provider::{PaymentProvider, Sandbox, Stripe};

/// The name this service publishes under and its queue group on the bus.
pub const PRODUCER: &str = "payments";

/// Where the Stripe secret key comes from.
pub const STRIPE_SECRET_KEY: SecretSource = SecretSource {
    what: "the Stripe secret key",
    env: "TIX_STRIPE_SECRET_KEY",
    flag: "--stripe-secret-key",
    file_flag: "--stripe-secret-key-file",
    file_env: "TIX_STRIPE_SECRET_KEY_FILE",
};

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
    /// Refused (`ps` shows flags): only here to say so.
    #[arg(long = "stripe-secret-key", hide = true, value_parser = refuse_flag(STRIPE_SECRET_KEY))]
    refused_stripe_secret_key: Option<Infallible>,
    /// File holding the Stripe secret key (`sk_…`; a trailing newline is ignored), or set
    /// TIX_STRIPE_SECRET_KEY instead; one of them is required with `--provider stripe`.
    #[arg(long, env = "TIX_STRIPE_SECRET_KEY_FILE", value_name = "PATH")]
    pub stripe_secret_key_file: Option<PathBuf>,
    /// The key from TIX_STRIPE_SECRET_KEY (never a flag).
    #[arg(skip = STRIPE_SECRET_KEY.from_env())]
    pub stripe_secret_key: Option<SecretString>,
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
    /// How long a call to the provider may take before its outcome counts as unknown
    /// (the attempt stays pending and the reconciler asks again).
    #[arg(long, env = "TIX_PROVIDER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub provider_timeout: Duration,
    /// How often attempts whose outcome is unknown are settled by asking the provider
    /// again (also once at start-up), and refunds not made yet are retried.
    #[arg(long, env = "TIX_RECONCILE_EVERY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconcile_every: Duration,
    /// Test hook: die right after the provider's first successful charge, before it is
    /// recorded (what a kill -9 at the worst moment does).
    #[arg(long, env = "TIX_PAYMENTS_CRASH_AFTER_CHARGE", hide = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub crash_after_charge: bool,
}

impl Config {
    fn provider(&self) -> anyhow::Result<Arc<dyn PaymentProvider>> {
        Ok(match self.provider {
            ProviderKind::Sandbox => {
                Arc::new(Sandbox::open(&self.common.db_path("sandbox-ledger.db"))?)
            }
            ProviderKind::Stripe => {
                let key = STRIPE_SECRET_KEY
                    .resolve(
                        self.stripe_secret_key.as_ref(),
                        self.stripe_secret_key_file.as_deref(),
                    )?
                    .filter(|k| !k.expose_secret().trim().is_empty())
                    .with_context(|| {
                        format!(
                            "--provider stripe needs a secret key: {}",
                            STRIPE_SECRET_KEY.how()
                        )
                    })?;
                Arc::new(
                    Stripe::new(
                        &self.stripe_base_url,
                        key.expose_secret().trim(),
                        self.provider_timeout,
                    )
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
    charger: Charger,
    currency: Arc<str>,
    /// Charges being made: awaited before the service stops.
    settling: TaskTracker,
    /// How long a payment request waits for its charge before answering 202: a little
    /// less than the request timeout, so the buyer hears "pending", not "took too long".
    answer_within: Duration,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}

/// The payments endpoints' part of the OpenAPI document (docs/openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::router().into_openapi()
}

/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    // First, so a misconfigured provider stops the start before anything else is opened.
    tix_common::files::ensure_private_dir(&cfg.common.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            cfg.common.data_dir.display()
        )
    })?;
    let provider = cfg.provider()?;
    let keys = cfg.common.jwt_keys()?;
    let db = cfg.common.open_db("payments.db", store::MIGRATIONS)?;
    let mut group = SubscribeOptions::new(
        PRODUCER,
        &[
            Subject::OrderCreated.as_str(),
            Subject::OrderCancelled.as_str(),
            Subject::PaymentRejected.as_str(),
            Subject::SessionRevoked.as_str(),
        ],
    );
    // A burst is applied in log order. A cancellation that overtakes its creation (only
    // after a redelivery) finds no replica and is retried, so many in flight is safe.
    group.max_in_flight = 256;
    group.ack_wait_ms = Duration::from_secs(30).as_millis() as u64;
    // A new order in the replica; a payment's claim (a synced commit) carries what it read
    // to the disk too. Not `order:cancelled`: a buyer told that the order is cancelled must
    // not be able to pay it after a power cut took that back.
    let group = Group {
        local: vec![Subject::OrderCreated.as_str().to_string()],
        ..Group::from(group)
    };
    let revocations = sessions::watch(&db, &keys).await?;
    let refunder = tokio::spawn(refunds::run(
        db.clone(),
        provider.clone(),
        cfg.reconcile_every,
    ));
    let charger = Charger::new(db.clone(), provider, cfg.crash_after_charge);
    let reconciler = tokio::spawn(reconcile::run(charger.clone(), cfg.reconcile_every));
    let settling = TaskTracker::new();
    let state = AppState {
        db: db.clone(),
        keys: keys.clone(),
        charger,
        currency: Arc::from(cfg.currency.as_str()),
        settling: settling.clone(),
        answer_within: cfg
            .common
            .request_timeout
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_millis(500)),
    };
    metrics::register(&db);
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
        .with_task(refunder)
        .with_task(reconciler)
        .with_finishing(settling);
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const KEY: &str = "sk_test_not_in_any_log_4242424242";

    fn config(args: &[&std::ffi::OsStr]) -> Config {
        let mut cfg = Config::try_parse_from(args).unwrap();
        // Only what the test passes counts, whatever this process's environment says.
        cfg.stripe_secret_key = None;
        cfg.common.jwt_secret = None;
        cfg
    }

    #[test]
    fn the_stripe_key_comes_from_a_file_and_never_shows_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stripe-key");
        std::fs::write(&file, format!("{KEY}\n")).unwrap();
        let cfg = config(&[
            "tix-payments".as_ref(),
            "--provider".as_ref(),
            "stripe".as_ref(),
            "--stripe-secret-key-file".as_ref(),
            file.as_os_str(),
        ]);
        cfg.provider().unwrap();
        let stripe = Stripe::new(&cfg.stripe_base_url, KEY, cfg.provider_timeout).unwrap();
        let shown = format!("{cfg:?} {cfg:#?} {stripe:?}");
        assert!(!shown.contains(KEY), "{shown}");

        let mut cfg = config(&["tix-payments".as_ref()]);
        cfg.provider = ProviderKind::Stripe;
        cfg.stripe_secret_key_file = None;
        cfg.stripe_secret_key = Some(SecretString::from(KEY));
        cfg.provider().unwrap();
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains(KEY) && shown.contains("REDACTED"),
            "{shown}"
        );
    }

    #[test]
    fn the_stripe_key_as_a_flag_is_refused() {
        let err = Config::try_parse_from(["tix-payments", "--stripe-secret-key", KEY]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--stripe-secret-key is refused")
                && text.contains("TIX_STRIPE_SECRET_KEY")
                && text.contains("--stripe-secret-key-file"),
            "{text}"
        );
        assert!(!text.contains(KEY), "{text}");
    }
}
