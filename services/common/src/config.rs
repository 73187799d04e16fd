//! Configuration every service takes, as flags with `TIX_*` environment twins.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::db::Durability;

/// Flags shared by every service (flattened into each service's own).
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// Address to listen on.
    #[arg(long, env = "TIX_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Directory for the service's SQLite file.
    #[arg(long, env = "TIX_DATA_DIR", default_value = ".tix")]
    pub data_dir: PathBuf,
    /// The event bus endpoint.
    #[arg(long, env = "TIX_BUS_URL", default_value = "tcp://127.0.0.1:5555")]
    pub bus: String,
    /// Secret for signing session tokens (at least 32 characters; there is no default).
    #[arg(long, env = "TIX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// How long a session token is valid.
    #[arg(long, env = "TIX_SESSION_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
    /// Largest request body accepted, in bytes (larger gets 413).
    #[arg(long, env = "TIX_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "TIX_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// `full` fsyncs every commit; `normal` survives a process crash but not power loss.
    #[arg(long, env = "TIX_DB_DURABILITY", value_enum, default_value = "full")]
    pub durability: Durability,
    /// Log filter, e.g. `info`, `warn`, `tix_tickets=debug`.
    #[arg(long, env = "TIX_LOG", default_value = "info")]
    pub log: String,
}

impl ServiceArgs {
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            body_bytes: self.body_limit,
            timeout: self.request_timeout,
        }
    }

    pub fn db_path(&self, file: &str) -> PathBuf {
        self.data_dir.join(file)
    }

    /// Opens (creating) `file` in the data dir with the configured durability and brings
    /// its schema up to date.
    pub fn open_db(
        &self,
        file: &str,
        migrations: &[&str],
    ) -> Result<crate::db::Db, crate::db::DbError> {
        crate::db::Db::open(&self.db_path(file), self.durability, migrations)
    }

    /// The keys that sign and check session tokens.
    pub fn jwt_keys(&self) -> anyhow::Result<crate::auth::JwtKeys> {
        crate::auth::JwtKeys::new(&self.jwt_secret, self.session_ttl)
    }
}

/// Logs to stderr with the given filter.
pub fn init_tracing(filter: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
