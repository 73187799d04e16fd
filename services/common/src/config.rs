//! Configuration every service takes, as flags with `TIX_*` environment twins — except
//! secrets, which come from the environment or a file only (see [`crate::secret`]).

use std::convert::Infallible;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::db::Durability;
use crate::secret::{SecretSource, refuse_flag};

/// Where the secret that signs session tokens comes from.
pub const JWT_SECRET: SecretSource = SecretSource {
    what: "the JWT secret",
    env: "TIX_JWT_SECRET",
    flag: "--jwt-secret",
    file_flag: "--jwt-secret-file",
    file_env: "TIX_JWT_SECRET_FILE",
};

/// Where the service's key for the bus comes from (docs/operations.md, "Bus keys").
pub const BUS_KEY: SecretSource = SecretSource {
    what: "the bus key",
    env: "TIX_BUS_KEY",
    flag: "--bus-key",
    file_flag: "--bus-key-file",
    file_env: "TIX_BUS_KEY_FILE",
};

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
    /// Refused (`ps` shows flags): only here to say so.
    #[arg(long = "bus-key", hide = true, value_parser = refuse_flag(BUS_KEY))]
    refused_bus_key: Option<Infallible>,
    /// File holding this service's key for the bus (hex, as `tix-bus init-policy` writes
    /// it). Or set TIX_BUS_KEY instead. Without a key the service talks only to a broker
    /// run with --insecure-no-auth.
    #[arg(long, env = "TIX_BUS_KEY_FILE", value_name = "PATH")]
    pub bus_key_file: Option<PathBuf>,
    /// The key from TIX_BUS_KEY (never a flag).
    #[arg(skip = BUS_KEY.from_env())]
    pub bus_key: Option<SecretString>,
    /// Refused (`ps` shows flags): only here to say so.
    #[arg(long = "jwt-secret", hide = true, value_parser = refuse_flag(JWT_SECRET))]
    refused_jwt_secret: Option<Infallible>,
    /// File holding the secret that signs session tokens (at least 32 characters; a
    /// trailing newline is ignored). Or set TIX_JWT_SECRET instead; there is no default.
    #[arg(long, env = "TIX_JWT_SECRET_FILE", value_name = "PATH")]
    pub jwt_secret_file: Option<PathBuf>,
    /// The secret from TIX_JWT_SECRET (never a flag).
    #[arg(skip = JWT_SECRET.from_env())]
    pub jwt_secret: Option<SecretString>,
    /// How long a session token is valid.
    #[arg(long, env = "TIX_SESSION_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
    /// Largest request body accepted, in bytes (larger gets 413).
    #[arg(long, env = "TIX_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// Threads serving requests and events. One (the default) runs them all on one thread
    /// beside the database writer, as the gateway does: nothing then wakes another thread
    /// to go on with a request (in the gateway, ~20 % less CPU per request than two;
    /// docs/benchmarks.md). Raise it on a machine with cores to spare for one service.
    #[arg(long, env = "TIX_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Longest a request may take before it is answered 503 (408 when the client has not
    /// sent its whole body by then).
    #[arg(long, env = "TIX_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How long a consumer remembers the ids of events it applied (its inbox), against
    /// redeliveries; pruned only while subscribed (docs/operations.md, "Disk").
    #[arg(long, env = "TIX_INBOX_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub inbox_retention: Duration,
    /// `full` fsyncs every commit a caller waits on (what only saves work again is left to
    /// the next one, and a consumer's batch of replica rows or timers is acked once a later
    /// sync carries it: docs/operations.md); `normal` survives a process crash but not
    /// power loss.
    #[arg(long, env = "TIX_DB_DURABILITY", value_enum, default_value = "full")]
    pub durability: Durability,
    /// Log filter, e.g. `info`, `warn`, `tix_tickets=debug`.
    #[arg(long, env = "TIX_LOG", default_value = "info")]
    pub log: String,
    /// `text`, or `json`: one JSON object per line, for a log shipper or `jq`.
    #[arg(long, env = "TIX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl ServiceArgs {
    /// The threads and logs the process runs with.
    pub fn process(&self) -> crate::service::Process {
        crate::service::Process {
            workers: self.workers,
            log: self.log.clone(),
            log_format: self.log_format,
        }
    }

    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            body_bytes: self.body_limit,
            timeout: self.request_timeout,
        }
    }

    /// What the service's consumer may forget, and when.
    pub fn pruning(&self) -> crate::inbox::Pruning {
        crate::inbox::Pruning::new(self.inbox_retention)
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

    /// The secret that signs session tokens: from TIX_JWT_SECRET or the file.
    pub fn jwt_secret(&self) -> anyhow::Result<SecretString> {
        JWT_SECRET
            .resolve(self.jwt_secret.as_ref(), self.jwt_secret_file.as_deref())?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no JWT secret (at least 32 characters; generate one with `openssl rand -hex 32`): {}",
                    JWT_SECRET.how()
                )
            })
    }

    /// How the service connects to the bus as client `name`, with its key when it has one.
    pub fn bus_options(&self, name: &str) -> anyhow::Result<tix_bus_client::ClientOptions> {
        let mut opts = tix_bus_client::ClientOptions::new(&self.bus, name);
        match BUS_KEY.resolve(self.bus_key.as_ref(), self.bus_key_file.as_deref())? {
            Some(secret) => {
                let key = tix_bus_client::BusKey::from_hex(secret.expose_secret())
                    .map_err(|e| anyhow::anyhow!("the bus key: {e}"))?;
                opts.key = Some(key);
            }
            None => tracing::warn!(
                client = name,
                "no bus key: the bus will refuse this service unless it runs with --insecure-no-auth ({})",
                BUS_KEY.how()
            ),
        }
        Ok(opts)
    }

    /// The keys that check session tokens.
    pub fn jwt_keys(&self) -> anyhow::Result<crate::auth::JwtKeys> {
        self.signing_keys(None)
    }

    /// The keys that sign them too (auth's), ending each session `max_age` after its
    /// sign-in.
    pub fn signing_keys(&self, max_age: Option<Duration>) -> anyhow::Result<crate::auth::JwtKeys> {
        let secret = self.jwt_secret()?;
        crate::auth::JwtKeys::with_max_age(secret.expose_secret(), self.session_ttl, max_age)
    }
}

/// Logs to stderr with the given filter.
pub fn init_tracing(filter: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        // One JSON object per line, the span's fields (request_id…) in it: for a log
        // shipper, or `jq` (docs/operations.md).
        LogFormat::Json => builder
            .fmt_fields(crate::logjson::JsonFields)
            .event_format(crate::logjson::JsonLines)
            .try_init(),
        LogFormat::Text => builder.with_ansi(colour_on_stderr()).try_init(),
    };
}

/// How log lines are written (`--log-format`, `TIX_LOG_FORMAT`): `text` (the default) or
/// `json`. Any other value stops the start with clap's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// As `TIX_LOG_FORMAT` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Colour codes only for a person: stderr is a terminal and `NO_COLOR` is unset or empty
/// (no-color.org). Logs that go to a file stay plain text.
pub fn colour_on_stderr() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::ffi::OsStr;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        common: ServiceArgs,
    }

    const SECRET: &str = "0123456789abcdef-not-in-any-log-0123456789";

    #[test]
    fn the_secret_never_shows_in_debug() {
        let mut cli = Cli::try_parse_from(["x"]).unwrap();
        cli.common.jwt_secret = Some(SecretString::from(SECRET));
        cli.common.jwt_secret_file = None;
        let shown = format!("{cli:?} {cli:#?} {:?}", cli.common.jwt_secret().unwrap());
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        assert!(cli.common.jwt_keys().is_ok());
    }

    #[test]
    fn the_secret_comes_from_a_file_and_sessions_last_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwt-secret");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let args = [
            OsStr::new("x"),
            OsStr::new("--jwt-secret-file"),
            file.as_os_str(),
        ];
        let mut cli = Cli::try_parse_from(args).unwrap();
        // Whatever this test process's environment says, the file alone counts here.
        cli.common.jwt_secret = None;
        assert_eq!(cli.common.jwt_secret().unwrap().expose_secret(), SECRET);
        assert!(!format!("{cli:?}").contains(SECRET));
        assert_eq!(cli.common.session_ttl, Duration::from_secs(24 * 3600));

        cli.common.jwt_secret_file = None;
        let err = cli.common.jwt_secret().unwrap_err().to_string();
        assert!(
            err.contains("TIX_JWT_SECRET") && err.contains("--jwt-secret-file"),
            "{err}"
        );
    }

    #[test]
    fn the_bus_key_comes_from_a_file_never_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("orders.key");
        let key = tix_bus_client::BusKey::generate();
        std::fs::write(&file, format!("{}\n", key.to_hex())).unwrap();
        let args = [
            OsStr::new("x"),
            OsStr::new("--bus-key-file"),
            file.as_os_str(),
        ];
        let mut cli = Cli::try_parse_from(args).unwrap();
        cli.common.bus_key = None;
        let opts = cli.common.bus_options("orders").unwrap();
        assert_eq!(opts.key, Some(key.clone()));
        assert_eq!(opts.name, "orders");
        assert!(!format!("{opts:?} {cli:?}").contains(&key.to_hex()));

        std::fs::write(&file, "not hex\n").unwrap();
        assert!(cli.common.bus_options("orders").is_err());

        let hex = key.to_hex();
        let err = Cli::try_parse_from(["x", "--bus-key", hex.as_str()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--bus-key is refused"), "{text}");
        assert!(!text.contains(&hex), "{text}");
    }

    /// The log format is a flag with its variable, like every setting: text unless asked,
    /// and a value neither `text` nor `json` stops the start with a message naming both
    /// (it used to be read from the environment alone, and a typo meant text).
    #[test]
    fn the_log_format_is_text_json_or_refused() {
        let format = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.common.log_format);
        assert_eq!(format(&["x"]).unwrap(), LogFormat::Text);
        assert_eq!(
            format(&["x", "--log-format", "json"]).unwrap(),
            LogFormat::Json
        );
        let err = format(&["x", "--log-format", "xml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'xml'") && err.contains("text, json"), "{err}");
    }

    #[test]
    fn the_secret_as_a_flag_is_refused() {
        let err = Cli::try_parse_from(["x", "--jwt-secret", SECRET]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--jwt-secret is refused"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
    }
}
