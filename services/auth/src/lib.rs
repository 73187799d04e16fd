//! The auth service: sign up, sign in, sign out, and who am I.
//!
//! Passwords are hashed with argon2id; emails are normalised (trimmed, lowercased) and
//! unique; sign-in answers the same for an unknown email and a wrong password. Sign-up and
//! sign-in are limited per client address and globally, failed sign-ins slow down the
//! account they target, and argon2 work is admitted only up to a bounded queue
//! ([`limits`]). Tokens are the JWTs every service checks.

mod domain;
pub mod hashing;
pub mod limits;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::HeaderMap;
use tix_common::auth::JwtKeys;
use tix_common::config::ServiceArgs;
use tix_common::db::Db;
use tix_common::http;
use tix_common::service::Service;

pub use domain::{Email, Password};
use limits::{Limits, Rate};

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
    /// Sign-ups per client address, as BURST/PER_MINUTE.
    #[arg(long, env = "TIX_SIGNUP_PER_ADDRESS", default_value = "5/10")]
    pub signup_per_address: Rate,
    /// Sign-ups from everyone together, as BURST/PER_MINUTE.
    #[arg(long, env = "TIX_SIGNUP_GLOBAL", default_value = "50/600")]
    pub signup_global: Rate,
    /// Sign-in attempts per client address, as BURST/PER_MINUTE.
    #[arg(long, env = "TIX_SIGNIN_PER_ADDRESS", default_value = "20/60")]
    pub signin_per_address: Rate,
    /// Sign-in attempts from everyone together, as BURST/PER_MINUTE.
    #[arg(long, env = "TIX_SIGNIN_GLOBAL", default_value = "100/3000")]
    pub signin_global: Rate,
    /// Failed sign-ins an account takes before its sign-ins are slowed down (1 s, 2 s,
    /// 4 s … between attempts).
    #[arg(long, env = "TIX_SIGNIN_FREE_FAILURES", default_value_t = 5)]
    pub signin_free_failures: u32,
    /// The longest delay failures impose on an account: its owner is slowed, never locked
    /// out.
    #[arg(long, env = "TIX_SIGNIN_MAX_DELAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub signin_max_delay: std::time::Duration,
    /// Password hashes that may wait for a core; beyond, sign-up and sign-in answer 503
    /// with Retry-After at once.
    #[arg(long, env = "TIX_HASH_QUEUE", default_value_t = 16)]
    pub hash_queue: usize,
    /// Whether the session cookie says `Secure` (sent over HTTPS only): `auto` sets it
    /// unless the request's host is this machine (localhost, 127.0.0.1, ::1).
    #[arg(long, env = "TIX_COOKIE_SECURE", value_enum, default_value = "auto")]
    pub cookie_secure: CookieSecure,
    /// The longest a session lasts from its sign-in, however often its token is renewed
    /// (each token lives `--session-ttl`, renewed tokens never past this): then its user
    /// signs in again, so a stolen token cannot be kept alive for ever.
    #[arg(long, env = "TIX_SESSION_MAX_AGE", default_value = "30d", value_parser = humantime::parse_duration)]
    pub session_max_age: std::time::Duration,
    /// Addresses or ranges (`10.0.0.0/8`) whose X-Forwarded-For is believed (the
    /// gateway's), comma-separated. None by default: the peer's address is the client's.
    #[arg(
        long = "trusted-proxy",
        env = "TIX_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = tix_common::net::parse_range
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// When the session cookie is `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CookieSecure {
    Auto,
    Always,
    Never,
}

impl CookieSecure {
    /// For `auto`: secure unless the host the client asked for (`X-Forwarded-Host` from
    /// the gateway, else `Host`) is a loopback name, where plain HTTP is the norm. A
    /// request the gateway forwarded (`X-Forwarded-For`) without a client's host (HTTP/1.0
    /// may name none) carries the gateway's own way to auth as `Host`, which says nothing
    /// of where the client was: secure.
    pub fn applies(self, headers: &HeaderMap) -> bool {
        match self {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => {
                let host = match headers.get("x-forwarded-host") {
                    Some(host) => host,
                    None if headers.contains_key("x-forwarded-for") => return true,
                    None => match headers.get(axum::http::header::HOST) {
                        Some(host) => host,
                        None => return true,
                    },
                };
                !is_loopback_host(host.to_str().unwrap_or(""))
            }
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    fn limits(&self) -> limits::Settings {
        limits::Settings {
            signup_per_address: self.signup_per_address,
            signup_global: self.signup_global,
            signin_per_address: self.signin_per_address,
            signin_global: self.signin_global,
            free_failures: self.signin_free_failures,
            max_failure_delay: self.signin_max_delay,
            hash_queue: self.hash_queue,
            trusted_proxies: tix_common::net::TrustedProxies::new(self.trusted_proxies.clone()),
        }
    }
}

/// What handlers share; extractors take their part of it (the JWT keys) through `FromRef`.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    db: Db,
    keys: JwtKeys,
    /// Rate limits, failure delays, and the argon2 queue: one argon2 computation per core
    /// at a time (each takes 19 MiB), a bounded number waiting.
    limits: Arc<Limits>,
    /// A real hash to verify against for unknown emails, so both cases cost the same.
    dummy_hash: Arc<String>,
    /// The threads that hash and check passwords, each reusing its argon2 memory.
    hashers: hashing::Hashers,
    cookie_secure: CookieSecure,
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );",
    // Signing out revokes the session here and announces it through the outbox.
    tix_common::db::EVENTS_SCHEMA,
    tix_common::sessions::SCHEMA,
    // Events the bus refuses for good, out of the way of the others (docs/operations.md).
    tix_common::outbox::OUTBOX_DEAD_SCHEMA,
    // Public display names (docs/api.md); accounts made before them show their email's
    // local part.
    "ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';",
    // One page per event enqueued and cleared, not three and two (docs/benchmarks.md).
    tix_common::outbox::OUTBOX_REBUILD,
];

/// The name auth publishes under.
pub const PRODUCER: &str = "auth";

/// The auth endpoints' part of the OpenAPI document (docs/openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::router().into_openapi()
}

/// The service, bound and ready to serve.
/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    if cfg.session_max_age.as_secs() == 0 {
        anyhow::bail!("--session-max-age must be at least one second (tokens count whole seconds)");
    }
    let keys = cfg.common.signing_keys(Some(cfg.session_max_age))?;
    let db = cfg.common.open_db("auth.db", MIGRATIONS)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // One hashing thread per hash the limits let run at once (one per core).
    let hashers = hashing::Hashers::start(cores)?;
    let dummy_hash = hashers.hash("not a real password".into()).await?;
    let limits = Arc::new(Limits::new(cfg.limits(), cores));
    let prune = {
        let limits = limits.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                limits.prune();
            }
        })
    };
    let revocations = tix_common::sessions::watch(&db, &keys).await?;
    let state = AppState {
        db: db.clone(),
        keys,
        limits,
        dummy_hash: Arc::new(dummy_hash),
        hashers,
        cookie_secure: cfg.cookie_secure,
    };
    let routes = routes::router().with_state(state).into();
    let router = http::app(routes, "auth", cfg.common.limits());
    let service = Service::bind(SocketAddr::new(cfg.common.host, cfg.port), router)
        .await?
        .with_db(db)
        .with_outbox(cfg.common.bus_options(PRODUCER)?)
        .with_task(prune)
        .with_task(revocations);
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    /// `auto` leaves the cookie plain only where the client asked for a loopback host; a
    /// host it cannot know (forwarded without one, or no `Host` at all) is treated as public.
    #[test]
    fn auto_is_secure_unless_the_client_asked_for_a_loopback_host() {
        let auto =
            |pairs: &[(&'static str, &'static str)]| CookieSecure::Auto.applies(&headers(pairs));
        assert!(!auto(&[("host", "localhost:8080")]));
        assert!(!auto(&[("host", "[::1]:8080")]));
        assert!(auto(&[("host", "tix.example.com")]));
        // Through the gateway: the client's host, not the gateway's way to auth.
        let gw = ("host", "127.0.0.1:4001");
        let from = ("x-forwarded-for", "203.0.113.7");
        assert!(auto(&[gw, from, ("x-forwarded-host", "tix.example.com")]));
        assert!(!auto(&[gw, from, ("x-forwarded-host", "localhost:8080")]));
        // An HTTP/1.0 client that named no host.
        assert!(auto(&[gw, from]));
        assert!(auto(&[]));
        assert!(CookieSecure::Always.applies(&headers(&[("host", "localhost")])));
        assert!(!CookieSecure::Never.applies(&headers(&[("host", "tix.example.com")])));
    }
}
