//! `GET /healthz` of every process.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether a process can do its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    /// The gateway answers, but one of its upstreams does not.
    Degraded,
}

/// Whether the gateway reached an upstream's `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// `{"service":…,"status":"ok"|"degraded","upstreams":{…}?}`; only the gateway has
/// upstreams.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub service: String,
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<BTreeMap<String, UpstreamHealth>>,
}

/// One upstream as the gateway's health check found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamHealth {
    pub latency_ms: u64,
    pub status: UpstreamStatus,
    pub url: String,
}
