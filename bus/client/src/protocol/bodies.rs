//! The JSON bodies of the protocol's rarer messages: options to join a group, the
//! session's terms, and what operators ask and are told.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MAX_NAME_LEN;

/// Options a consumer gives when it joins a queue group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscribeOptions {
    /// Durable name of the queue group. Every group sees every event of its subjects;
    /// inside a group each event goes to one live member.
    pub group: String,
    /// Exact subjects, or `"*"` for every subject.
    pub subjects: Vec<String>,
    /// Redeliver an event that is not acked within this many milliseconds.
    #[serde(default = "default_ack_wait_ms")]
    pub ack_wait_ms: u64,
    /// Unacked events a member may hold at once. With 1, the whole group holds at most one
    /// event at a time, so it is processed strictly in log order.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// After this many deliveries without an ack the event goes to the dead-letter list.
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: u32,
    /// A throwaway group (for `tail` and demos): not stored, starts at the end of the log
    /// (new events only), vanishes with its last member, never holds back pruning.
    #[serde(default)]
    pub ephemeral: bool,
}

fn default_ack_wait_ms() -> u64 {
    30_000
}
fn default_max_in_flight() -> u32 {
    256
}
fn default_max_deliveries() -> u32 {
    10
}

impl SubscribeOptions {
    /// Options with the defaults for everything but the group and its subjects.
    pub fn new(group: impl Into<String>, subjects: &[&str]) -> Self {
        Self {
            group: group.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ack_wait_ms: default_ack_wait_ms(),
            max_in_flight: default_max_in_flight(),
            max_deliveries: default_max_deliveries(),
            ephemeral: false,
        }
    }

    /// Checks the limits the broker enforces, so clients fail before sending.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.group.is_empty() || self.group.len() > MAX_NAME_LEN {
            return Err("group name must be 1 to 200 bytes");
        }
        if self.subjects.is_empty() {
            return Err("at least one subject is required");
        }
        if self
            .subjects
            .iter()
            .any(|s| s.is_empty() || s.len() > MAX_NAME_LEN)
        {
            return Err("subjects must be 1 to 200 bytes");
        }
        if self.ack_wait_ms < 10 || self.ack_wait_ms > 24 * 3600 * 1000 {
            return Err("ackWaitMs must be between 10 ms and 24 h");
        }
        if self.max_in_flight == 0 || self.max_in_flight > 65_536 {
            return Err("maxInFlight must be between 1 and 65536");
        }
        if self.max_deliveries == 0 {
            return Err("maxDeliveries must be at least 1");
        }
        Ok(())
    }
}

/// The body of `HELLO`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The client's name: with authentication on, the policy entry whose key it holds.
    pub client: String,
    pub heartbeat_ms: u64,
    /// [`auth::PROTOCOL_VERSION`](super::auth::PROTOCOL_VERSION) for a client that
    /// authenticates; 1 (absent) for one that does not.
    #[serde(default = "protocol_one")]
    pub protocol: u32,
}

fn protocol_one() -> u32 {
    1
}

/// The broker's answer to `HELLO`: what the client must keep to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloReply {
    pub heartbeat_ms: u64,
    pub max_event_bytes: usize,
}

/// The broker's answer to `SUB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    pub group: String,
}

/// The broker's answer to `REPLAY`: how many dead letters go out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    pub replayed: u64,
}

/// The broker's answer to `STATS`.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events in the log now.
    pub events: u64,
    pub groups: Vec<GroupStats>,
    /// The last position written.
    pub head: u64,
    pub sessions: u64,
    /// Events in the log per subject.
    pub subjects: BTreeMap<String, u64>,
}

impl Stats {
    pub fn group(&self, name: &str) -> Option<&GroupStats> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// One queue group in [`Stats`].
// Fields in key order, as in `Stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStats {
    pub ack_wait_ms: u64,
    pub dead_letters: u64,
    pub delivered: u64,
    pub ephemeral: bool,
    /// Everything at or below it is acked.
    pub floor: u64,
    pub in_flight: u64,
    /// Events after the group's position that it will still receive.
    pub lag: u64,
    pub max_deliveries: u32,
    pub max_in_flight: u32,
    pub members: u64,
    pub name: String,
    pub pending: u64,
    pub position: u64,
    pub redelivered: u64,
    pub subjects: Vec<String>,
}

/// A dead letter as listed to operators (`DLQ`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub group: String,
    pub seq: u64,
    pub event_id: String,
    pub subject: String,
    /// The payload as text (events are JSON).
    pub payload: String,
    pub deliveries: u32,
    pub dead_at_ms: i64,
    pub replaying: bool,
}

/// The body of `DLQ`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterQuery {
    pub group: Option<String>,
    pub limit: Option<u32>,
}

/// The body of `DROP`: the durable group to forget (its place in the log, its acks and its
/// dead letters), so that it no longer holds back pruning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropGroupRequest {
    pub group: String,
    /// Drop it even though its last member left only a moment ago (it may be a service
    /// reconnecting, which would then start again from the beginning of the log).
    #[serde(default)]
    pub force: bool,
}

/// The body of `DISCARD`: forget dead letters of a group for good (all of them, or only the
/// listed positions), without delivering them again. Those being replayed are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscardRequest {
    pub group: String,
    #[serde(default)]
    pub seqs: Option<Vec<u64>>,
}

/// The answer to `DISCARD`: how many dead letters went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discarded {
    pub discarded: u64,
}

/// The body of `REWIND`: deliver a durable group again every event the broker stored at or
/// after `since_ms` (unix milliseconds, the broker's clock), as after restoring its service
/// from a backup taken then. Refused while the group has members.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewindRequest {
    pub group: String,
    pub since_ms: i64,
}

/// The answer to `REWIND`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewound {
    pub group: String,
    /// The first log position the group gets again.
    pub from: u64,
    /// How many log positions that is, up to the newest (of every subject: the group gets
    /// those of its own).
    pub positions: u64,
    /// The oldest event the log holds was stored after the time asked, and older ones were
    /// pruned (past the retention): events from that time may be gone, and the group
    /// starts from the oldest left.
    pub pruned: bool,
}

/// The body of `REPLAY`: every dead letter of the group, or only the listed positions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRequest {
    pub group: String,
    pub seqs: Option<Vec<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker first wrote these bodies as sorted JSON maps; the structs keep the bytes.
    #[test]
    fn stats_and_hello_keep_their_sorted_keys() {
        let stats = Stats {
            events: 3,
            groups: vec![GroupStats {
                ack_wait_ms: 5000,
                dead_letters: 0,
                delivered: 3,
                ephemeral: false,
                floor: 2,
                in_flight: 1,
                lag: 0,
                max_deliveries: 10,
                max_in_flight: 100,
                members: 1,
                name: "orders".into(),
                pending: 1,
                position: 3,
                redelivered: 0,
                subjects: vec!["ticket:created".into()],
            }],
            head: 3,
            sessions: 1,
            subjects: [("ticket:created".to_string(), 3)].into(),
        };
        // A `Value` holds its keys sorted at every level: the struct's bytes must match it.
        let sorted = serde_json::to_value(&stats).unwrap().to_string();
        assert_eq!(serde_json::to_string(&stats).unwrap(), sorted);
        let hello = HelloReply {
            heartbeat_ms: 500,
            max_event_bytes: 1 << 20,
        };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"heartbeatMs":500,"maxEventBytes":1048576}"#
        );
    }
}
