//! The auth service: sign up, sign in, sign out, and who am I.
//!
//! Passwords are hashed with argon2id; emails are normalised (trimmed, lowercased) and
//! unique; sign-in answers the same for an unknown email and a wrong password, and is rate
//! limited per email and client address. Tokens are the JWTs every service checks.

mod domain;
mod routes;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use tix_common::auth::JwtKeys;
use tix_common::config::ServiceArgs;
use tix_common::db::Db;
use tix_common::http;
use tix_common::service::Service;

pub use domain::{Email, Password};

/// The auth service's flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tix-auth",
    version,
    about = "tix auth service: sign up, sign in, sign out, current user"
)]
pub struct Config {
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "TIX_AUTH_PORT", default_value_t = 4001)]
    pub port: u16,
    /// Sign-in attempts allowed in a burst per email and client address…
    #[arg(long, env = "TIX_SIGNIN_BURST", default_value_t = 10)]
    pub signin_burst: u32,
    /// …and how many more per minute after it.
    #[arg(long, env = "TIX_SIGNIN_PER_MINUTE", default_value_t = 10)]
    pub signin_per_minute: u32,
}

type Limiter = governor::DefaultKeyedRateLimiter<(String, std::net::IpAddr)>;

/// What handlers share; extractors take their part of it (the JWT keys) through `FromRef`.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    db: Db,
    keys: JwtKeys,
    signin_limiter: Arc<Limiter>,
    /// A real hash to verify against for unknown emails, so both cases cost the same.
    dummy_hash: Arc<String>,
    /// One argon2 computation per core at a time: each takes 19 MiB, and a burst of
    /// sign-ups must queue, not exhaust memory.
    hashing: Arc<tokio::sync::Semaphore>,
}

const MIGRATIONS: &[&str] = &["CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );"];

/// The service, bound and ready to serve.
/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    let keys = cfg.common.jwt_keys()?;
    let db = cfg.common.open_db("auth.db", MIGRATIONS)?;
    let quota =
        governor::Quota::per_minute(NonZeroU32::new(cfg.signin_per_minute.max(1)).expect("max(1)"))
            .allow_burst(NonZeroU32::new(cfg.signin_burst.max(1)).expect("max(1)"));
    let dummy_hash =
        tokio::task::spawn_blocking(|| routes::hash_password("not a real password")).await??;
    let limiter: Arc<Limiter> = Arc::new(governor::RateLimiter::keyed(quota));
    // Forget (email, address) pairs whose quota is whole again, so random emails cannot
    // grow the limiter forever.
    let prune = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        })
    };
    let state = AppState {
        db: db.clone(),
        keys,
        signin_limiter: limiter.clone(),
        dummy_hash: Arc::new(dummy_hash),
        hashing: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )),
    };
    let routes = Router::new()
        .route("/api/users/signup", post(routes::signup))
        .route("/api/users/signin", post(routes::signin))
        .route("/api/users/signout", post(routes::signout))
        .route("/api/users/currentuser", get(routes::current_user))
        .with_state(state);
    let router = http::app(routes, "auth", cfg.common.limits());
    let service = Service::bind(SocketAddr::new(cfg.common.host, cfg.port), router)
        .await?
        .with_db(db);
    Ok(service.with_task(prune))
}
