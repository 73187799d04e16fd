//! `GET /healthz` of every process.
//!
//! A service answers `{"service","status"}` and, when it has event plumbing, `checks`: one
//! entry per part that works in the background — `bus` (its link to the broker), `consumer`
//! (its queue group), `outbox` (its relay) — each `ok` or `degraded` with why and since
//! when. The gateway adds `upstreams`: whether it reached each service and what that
//! service reported. Every process also says who answers (`pid`, `instance`).
//!
//! `GET /readyz` has the same shape: whether the process can do its job now (its database
//! takes a write, and every check is ok), 503 when not. See docs/api.md and
//! docs/operations.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Whether a process can do its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HealthStatus {
    Ok,
    /// It answers, but part of it does not work: a check of its own (a consumer stuck, an
    /// outbox that cannot publish, the bus unreachable) or, for the gateway, an upstream.
    Degraded,
}

/// Whether the gateway reached an upstream's `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum UpstreamStatus {
    Up,
    Down,
}

impl UpstreamStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            UpstreamStatus::Up => "up",
            UpstreamStatus::Down => "down",
        }
    }
}

/// `{"service":…,"status":"ok"|"degraded","upstreams":{…}?,"checks":{…}?}`; only the
/// gateway has upstreams, only services with events have checks.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same (`checks` came later, and goes last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub service: String,
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub upstreams: Option<BTreeMap<String, UpstreamHealth>>,
    /// The service's background parts by name (`bus`, `consumer`, `outbox`; `/readyz` adds
    /// `database`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub checks: Option<BTreeMap<String, Check>>,
    /// The answering process's id, so a script that started it can tell its own process
    /// from another one holding the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub pid: Option<u32>,
    /// An id the process chose at start (a UUID): changes on every restart, also where
    /// pids do not (one process per container is always pid 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub instance: Option<String>,
}

impl Health {
    /// The checks that are not ok, by name.
    pub fn failing(&self) -> impl Iterator<Item = (&String, &Check)> {
        self.checks
            .iter()
            .flatten()
            .filter(|(_, c)| c.status != HealthStatus::Ok)
    }
}

/// One upstream as the gateway's health check found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpstreamHealth {
    pub latency_ms: u64,
    /// Whether it answered its `/healthz` within the gateway's timeout.
    pub status: UpstreamStatus,
    pub url: String,
    /// What it reported about itself, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub health: Option<HealthStatus>,
    /// Its own checks, as it reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub checks: Option<BTreeMap<String, Check>>,
}

/// One background part of a service: is it working, and if not, since when and why.
/// Counters only appear on the parts they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    pub status: HealthStatus,
    /// Why it is degraded (or the trouble it is in, not yet long enough to count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub reason: Option<String>,
    /// When the trouble began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub since: Option<UnixMillis>,
    /// Outbox: events waiting to be published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub waiting: Option<u64>,
    /// Outbox: events the bus refused for good, kept in `outbox_dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub dead: Option<u64>,
    /// Consumer: the group's events on the bus's dead-letter list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub dead_letters: Option<u64>,
    /// How many times the part's task stopped and was started again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub restarts: Option<u64>,
}

impl Check {
    /// A part that works, with no counters.
    pub fn ok() -> Check {
        Check {
            status: HealthStatus::Ok,
            reason: None,
            since: None,
            waiting: None,
            dead: None,
            dead_letters: None,
            restarts: None,
        }
    }
}
