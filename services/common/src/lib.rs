//! What every tix service shares, written once.
//!
//! - [`http`]: the axum app scaffolding (request ids, access logs, limits, `/healthz`,
//!   graceful shutdown);
//! - [`error`]: the one error type, mapped once to `{"errors":[{message,field}]}`;
//! - [`json`]: a JSON extractor whose rejections use that shape;
//! - [`auth`]: JWTs from the bearer header or the `session` cookie, and the current user;
//! - [`db`]: SQLite with migrations, group-committed writes and pooled reads;
//! - [`files`]: data directories 0700 and database files 0600, whatever the umask;
//! - [`outbox`] / [`inbox`]: events published exactly when the state changed, and consumed
//!   exactly once;
//! - [`health`]: what `/healthz` says about the bus link, the consumer and the outbox;
//! - [`correlation`]: the request id that follows a purchase through its events;
//! - [`metrics`]: the Prometheus metrics of `GET /metrics`;
//! - [`logjson`]: the JSON log lines of `TIX_LOG_FORMAT=json`;
//! - [`config`]: the flags every service takes;
//! - [`secret`]: secrets from the environment or a file, never a flag, never in a log;
//! - [`service`]: a built service and the `main` every service binary shares.

pub mod auth;
pub mod config;
pub mod correlation;
pub mod db;
pub mod error;
pub mod extract;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod inbox;
pub mod json;
pub mod logjson;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod rate;
pub mod secret;
pub mod service;
pub mod sessions;
pub mod text;

pub use error::{ApiError, FieldError};
pub use extract::{Path, Query};
pub use json::Json;
/// Private data directories and database files, shared with the broker.
pub use tix_files as files;
