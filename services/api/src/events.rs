//! The event catalog (docs/events.md).
//!
//! Every event travels as an envelope `{v, id, subject, occurredAt, producer, data}`. The
//! `id` (a UUIDv7, so ids sort by time) is what the bus deduplicates publishes on and what
//! consumers record in their inbox. Ticket and order payloads carry the entity's `version`
//! so consumers can apply updates in order. Money is integer cents (`priceCents`): floats
//! never cross a service boundary.
//!
//! # Compatibility
//!
//! Services are upgraded one at a time, so a consumer may read events from a newer producer.
//! The rule that makes that safe:
//!
//! - **Additive changes keep `v`.** A new optional field in a payload, or a new key in the
//!   envelope, is ignored by a consumer that does not know it: no type here denies unknown
//!   fields. A field a newer consumer adds must be optional (`Option`, or a serde default),
//!   because events written before it exist in the logs and outboxes.
//! - **Breaking changes bump [`ENVELOPE_VERSION`].** Removing or renaming a field, changing
//!   its type or meaning, or making an optional field required.
//! - **A consumer refuses a `v` it does not know** with [`EventError::UnsupportedVersion`]:
//!   the event is left unacked, the bus ends it as a dead letter, and an operator replays it
//!   once the consumer is upgraded. Never a guess, never a panic.
//!
//! An envelope without `v` (written before it existed) is version 1.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Money, UnixMillis};

/// A bus subject. The names are the course app's, plus `payment:failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    #[serde(rename = "ticket:created")]
    TicketCreated,
    #[serde(rename = "ticket:updated")]
    TicketUpdated,
    #[serde(rename = "order:created")]
    OrderCreated,
    #[serde(rename = "order:cancelled")]
    OrderCancelled,
    #[serde(rename = "expiration:complete")]
    ExpirationComplete,
    #[serde(rename = "payment:created")]
    PaymentCreated,
    #[serde(rename = "payment:failed")]
    PaymentFailed,
    #[serde(rename = "session:revoked")]
    SessionRevoked,
    #[serde(rename = "payment:rejected")]
    PaymentRejected,
    #[serde(rename = "payment:refunded")]
    PaymentRefunded,
}

impl Subject {
    pub const ALL: [Subject; 10] = [
        Subject::TicketCreated,
        Subject::TicketUpdated,
        Subject::OrderCreated,
        Subject::OrderCancelled,
        Subject::ExpirationComplete,
        Subject::PaymentCreated,
        Subject::PaymentFailed,
        Subject::SessionRevoked,
        Subject::PaymentRejected,
        Subject::PaymentRefunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Subject::TicketCreated => "ticket:created",
            Subject::TicketUpdated => "ticket:updated",
            Subject::OrderCreated => "order:created",
            Subject::OrderCancelled => "order:cancelled",
            Subject::ExpirationComplete => "expiration:complete",
            Subject::PaymentCreated => "payment:created",
            Subject::PaymentFailed => "payment:failed",
            Subject::SessionRevoked => "session:revoked",
            Subject::PaymentRejected => "payment:rejected",
            Subject::PaymentRefunded => "payment:refunded",
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Subject {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Subject::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| EventError::UnknownSubject(s.to_string()))
    }
}

pub use crate::order::OrderStatus;

/// `ticket:created` — tickets → orders (insert the replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketCreated {
    pub id: String,
    pub title: String,
    #[serde(with = "crate::money::cents")]
    pub price_cents: Money,
    pub user_id: String,
    pub version: i64,
}

/// `ticket:updated` — tickets → orders (the whole ticket: the newest version wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketUpdated {
    pub id: String,
    pub title: String,
    #[serde(with = "crate::money::cents")]
    pub price_cents: Money,
    pub user_id: String,
    pub version: i64,
    /// The order holding the ticket, if it is reserved.
    pub order_id: Option<String>,
}

/// The ticket as an order event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderTicket {
    pub id: String,
    #[serde(with = "crate::money::cents")]
    pub price_cents: Money,
}

/// `order:created` — orders → tickets (reserve), expiration (schedule), payments (replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    pub id: String,
    pub status: OrderStatus,
    pub user_id: String,
    pub expires_at: UnixMillis,
    pub version: i64,
    pub ticket: OrderTicket,
}

/// The ticket reference in `order:cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketRef {
    pub id: String,
}

/// `order:cancelled` — orders → tickets (release), payments (mark cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    pub id: String,
    pub version: i64,
    pub ticket: TicketRef,
}

/// `expiration:complete` — expiration → orders (cancel unless complete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirationComplete {
    pub order_id: String,
}

/// `payment:created` — payments → orders (complete the order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCreated {
    pub id: String,
    pub order_id: String,
    /// The provider's charge id.
    pub charge_id: String,
}

/// `payment:failed` — payments → orders (cancel the order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed {
    pub order_id: String,
    pub reason: String,
}

/// `session:revoked` — auth → every service that checks tokens (tickets, orders,
/// payments): tokens of this session are refused from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRevoked {
    /// The session's id (the tokens' `jti`).
    pub jti: String,
    pub user_id: String,
    /// Unix seconds after which no token of the session is valid anyway, so the
    /// revocation can be forgotten.
    pub until: i64,
}

/// `payment:rejected` — orders → payments: a successful charge arrived for an order that
/// can no longer be completed (cancelled or expired first). Orders is the single
/// authority on that race: whichever it applies first — the cancellation or the payment —
/// wins, and a rejected payment is refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRejected {
    pub payment_id: String,
    pub order_id: String,
    pub reason: String,
}

/// `payment:refunded` — payments → anyone listening (orders, receipts): the charge of a
/// rejected payment was given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub payment_id: String,
    pub order_id: String,
    /// The provider's refund id.
    pub refund_id: String,
}

/// Every event, tagged by its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "subject", content = "data")]
pub enum Event {
    #[serde(rename = "ticket:created")]
    TicketCreated(TicketCreated),
    #[serde(rename = "ticket:updated")]
    TicketUpdated(TicketUpdated),
    #[serde(rename = "order:created")]
    OrderCreated(OrderCreated),
    #[serde(rename = "order:cancelled")]
    OrderCancelled(OrderCancelled),
    #[serde(rename = "expiration:complete")]
    ExpirationComplete(ExpirationComplete),
    #[serde(rename = "payment:created")]
    PaymentCreated(PaymentCreated),
    #[serde(rename = "payment:failed")]
    PaymentFailed(PaymentFailed),
    #[serde(rename = "session:revoked")]
    SessionRevoked(SessionRevoked),
    #[serde(rename = "payment:rejected")]
    PaymentRejected(PaymentRejected),
    #[serde(rename = "payment:refunded")]
    PaymentRefunded(PaymentRefunded),
}

impl Event {
    pub fn subject(&self) -> Subject {
        match self {
            Event::TicketCreated(_) => Subject::TicketCreated,
            Event::TicketUpdated(_) => Subject::TicketUpdated,
            Event::OrderCreated(_) => Subject::OrderCreated,
            Event::OrderCancelled(_) => Subject::OrderCancelled,
            Event::ExpirationComplete(_) => Subject::ExpirationComplete,
            Event::PaymentCreated(_) => Subject::PaymentCreated,
            Event::PaymentFailed(_) => Subject::PaymentFailed,
            Event::SessionRevoked(_) => Subject::SessionRevoked,
            Event::PaymentRejected(_) => Subject::PaymentRejected,
            Event::PaymentRefunded(_) => Subject::PaymentRefunded,
        }
    }
}

/// The envelope schema version this build writes, and the newest it reads. Bump it only
/// for a breaking change (see the module docs); additive changes keep it.
pub const ENVELOPE_VERSION: u32 = 1;

/// The envelope every event travels in. Keys it does not know are ignored, here and in
/// every payload, so a newer producer's additions do not stop an older consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The schema version, [`ENVELOPE_VERSION`] when written by this build; 1 when absent
    /// (events written before it existed).
    #[serde(default = "version_one", deserialize_with = "schema_version")]
    pub v: u32,
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The service that published it, e.g. `tickets`.
    pub producer: String,
    /// The id of the HTTP request that caused it (the gateway's `x-request-id`), carried on
    /// by every event a consumer publishes while applying it: one id finds a purchase in
    /// every log. Absent for events no request caused (an expiration timer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

fn version_one() -> u32 {
    1
}

/// A `v` is 1 or more: 0 was never written.
fn schema_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(serde::de::Error::invalid_value(
            serde::de::Unexpected::Unsigned(0),
            &"a schema version, 1 or more",
        )),
        v => Ok(v),
    }
}

/// Why bytes from the bus are not a valid event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("unknown subject {0:?}")]
    UnknownSubject(String),
    #[error("invalid event JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the envelope says {inside} but it was published as {outside}")]
    SubjectMismatch { outside: String, inside: Subject },
    /// Written by a newer producer after a breaking change: this build cannot read it.
    /// Left for the dead-letter list, to replay once the consumer is upgraded.
    #[error(
        "event schema version {v} is newer than this build reads (up to {newest}); \
         upgrade this service, then replay the event"
    )]
    UnsupportedVersion { v: u32, newest: u32 },
}

impl Envelope {
    /// A new event with a fresh time-ordered id, occurring now.
    pub fn new(producer: &str, event: Event) -> Self {
        Envelope {
            v: ENVELOPE_VERSION,
            id: Uuid::now_v7().to_string(),
            occurred_at: OffsetDateTime::now_utc(),
            producer: producer.to_string(),
            correlation_id: None,
            event,
        }
    }

    pub fn subject(&self) -> Subject {
        self.event.subject()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events always serialise")
    }

    /// The JSON of this envelope with `correlation` as its `correlationId` when it has none
    /// of its own: the bytes [`Envelope::to_json`] would give for a copy with it set,
    /// without copying the event.
    pub fn to_json_correlated(&self, correlation: Option<&str>) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Borrowed<'a> {
            v: u32,
            id: &'a str,
            #[serde(with = "time::serde::rfc3339")]
            occurred_at: OffsetDateTime,
            producer: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            correlation_id: Option<&'a str>,
            #[serde(flatten)]
            event: &'a Event,
        }
        serde_json::to_vec(&Borrowed {
            v: self.v,
            id: &self.id,
            occurred_at: self.occurred_at,
            producer: &self.producer,
            correlation_id: self.correlation_id.as_deref().or(correlation),
            event: &self.event,
        })
        .expect("events always serialise")
    }

    /// Parses an event received on `subject`, checking the envelope agrees with it and that
    /// its schema version is one this build reads. Unknown keys are ignored.
    pub fn from_bus(subject: &str, payload: &[u8]) -> Result<Self, EventError> {
        let outside: Subject = subject.parse()?;
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(env) => env,
            // A newer schema may not parse as this one at all: say that, not "invalid JSON".
            Err(e) => return Err(newer_version(payload).unwrap_or(EventError::Json(e))),
        };
        if env.v > ENVELOPE_VERSION {
            return Err(EventError::UnsupportedVersion {
                v: env.v,
                newest: ENVELOPE_VERSION,
            });
        }
        if env.subject() != outside {
            return Err(EventError::SubjectMismatch {
                outside: subject.to_string(),
                inside: env.subject(),
            });
        }
        Ok(env)
    }
}

/// The version error for a payload whose `v` is newer than this build, if it is one.
fn newer_version(payload: &[u8]) -> Option<EventError> {
    #[derive(Deserialize)]
    struct Versioned {
        v: u32,
    }
    let Versioned { v } = serde_json::from_slice(payload).ok()?;
    (v > ENVELOPE_VERSION).then_some(EventError::UnsupportedVersion {
        v,
        newest: ENVELOPE_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn a_correlated_envelope_is_the_envelope_with_the_id_set() {
        let env = ticket_created();
        assert_eq!(env.to_json_correlated(None), env.to_json());
        let with = Envelope {
            correlation_id: Some("req-1".into()),
            ..env.clone()
        };
        assert_eq!(env.to_json_correlated(Some("req-1")), with.to_json());
        // Its own id wins over the one of the work that enqueues it.
        assert_eq!(with.to_json_correlated(Some("req-2")), with.to_json());
        let back = Envelope::from_bus("ticket:created", &with.to_json()).unwrap();
        assert_eq!(back.correlation_id.as_deref(), Some("req-1"));
    }

    fn ticket_created() -> Envelope {
        Envelope::new(
            "tickets",
            Event::TicketCreated(TicketCreated {
                id: "t1".into(),
                title: "Concert".into(),
                price_cents: Money::from_cents(2050),
                user_id: "u1".into(),
                version: 0,
            }),
        )
    }

    /// One event of every subject.
    fn one_of_each() -> Vec<Event> {
        let expires = UnixMillis::new(1_800_000_000_000);
        let events = vec![
            ticket_created().event,
            Event::TicketUpdated(TicketUpdated {
                id: "t1".into(),
                title: "Concert".into(),
                price_cents: Money::from_cents(2050),
                user_id: "u1".into(),
                version: 1,
                order_id: Some("o1".into()),
            }),
            Event::OrderCreated(OrderCreated {
                id: "o1".into(),
                status: OrderStatus::Created,
                user_id: "u2".into(),
                expires_at: expires,
                version: 0,
                ticket: OrderTicket {
                    id: "t1".into(),
                    price_cents: Money::from_cents(2050),
                },
            }),
            Event::OrderCancelled(OrderCancelled {
                id: "o1".into(),
                version: 1,
                ticket: TicketRef { id: "t1".into() },
            }),
            Event::ExpirationComplete(ExpirationComplete {
                order_id: "o1".into(),
            }),
            Event::PaymentCreated(PaymentCreated {
                id: "p1".into(),
                order_id: "o1".into(),
                charge_id: "ch_1".into(),
            }),
            Event::PaymentFailed(PaymentFailed {
                order_id: "o1".into(),
                reason: "card declined".into(),
            }),
            Event::SessionRevoked(SessionRevoked {
                jti: "s1".into(),
                user_id: "u1".into(),
                until: 1_800_000_000,
            }),
            Event::PaymentRejected(PaymentRejected {
                payment_id: "p1".into(),
                order_id: "o1".into(),
                reason: "the order expired".into(),
            }),
            Event::PaymentRefunded(PaymentRefunded {
                payment_id: "p1".into(),
                order_id: "o1".into(),
                refund_id: "re_1".into(),
            }),
        ];
        assert_eq!(events.len(), Subject::ALL.len(), "one sample per subject");
        events
    }

    fn json_of(env: &Envelope) -> Value {
        serde_json::from_slice(&env.to_json()).unwrap()
    }

    fn from_json(subject: &str, v: &Value) -> Result<Envelope, EventError> {
        Envelope::from_bus(subject, v.to_string().as_bytes())
    }

    #[test]
    fn the_envelope_has_the_documented_shape() {
        let env = ticket_created();
        let v = json_of(&env);
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["data", "id", "occurredAt", "producer", "subject", "v"]
        );
        assert_eq!(v["v"], 1);
        assert_eq!(v["subject"], "ticket:created");
        assert_eq!(v["data"]["priceCents"], 2050);
        assert_eq!(v["data"]["userId"], "u1");
        assert!(v["occurredAt"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn every_event_round_trips_through_the_bus_encoding() {
        for event in one_of_each() {
            let env = Envelope::new("test", event);
            assert_eq!(env.v, ENVELOPE_VERSION);
            let back = Envelope::from_bus(env.subject().as_str(), &env.to_json()).unwrap();
            assert_eq!(back, env);
        }
    }

    #[test]
    fn fields_added_by_a_newer_producer_are_ignored() {
        for event in one_of_each() {
            let env = Envelope::new("test", event);
            let mut v = json_of(&env);
            v["traceId"] = "4bf92f3577b34da6".into();
            v["data"]["addedLater"] = json!({"any": ["shape", 1]});
            if v["data"]["ticket"].is_object() {
                v["data"]["ticket"]["currency"] = "EUR".into();
            }
            let back = from_json(env.subject().as_str(), &v)
                .unwrap_or_else(|e| panic!("{}: {e}", env.subject()));
            assert_eq!(back, env, "the known fields read as before");
        }
    }

    #[test]
    fn an_envelope_without_v_is_version_1() {
        let env = ticket_created();
        let mut v = json_of(&env);
        v.as_object_mut().unwrap().remove("v");
        let back = from_json("ticket:created", &v).unwrap();
        assert_eq!(back.v, 1);
        assert_eq!(back, env);
    }

    #[test]
    fn a_newer_schema_version_is_refused_with_its_own_error() {
        let env = ticket_created();
        let mut v = json_of(&env);
        v["v"] = 2.into();
        let err = from_json("ticket:created", &v).unwrap_err();
        assert!(
            matches!(err, EventError::UnsupportedVersion { v: 2, newest: 1 }),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade"), "{err}");
        // Even when the newer shape does not parse as this one.
        v["data"] = json!({"ticketId": "t1", "price": {"amount": 2050, "currency": "EUR"}});
        let err = from_json("ticket:created", &v).unwrap_err();
        assert!(
            matches!(err, EventError::UnsupportedVersion { v: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        let env = ticket_created();
        let err = Envelope::from_bus("order:created", &env.to_json()).unwrap_err();
        assert!(matches!(err, EventError::SubjectMismatch { .. }), "{err}");
        let err = Envelope::from_bus("ticket:deleted", &env.to_json()).unwrap_err();
        assert!(matches!(err, EventError::UnknownSubject(_)));
        let err = Envelope::from_bus("ticket:created", b"{\"id\":1}").unwrap_err();
        assert!(matches!(err, EventError::Json(_)));
        let mut v = json_of(&env);
        v["data"]["priceCents"] = "20.50".into();
        let err = from_json("ticket:created", &v).unwrap_err();
        assert!(
            matches!(err, EventError::Json(_)),
            "a wrongly typed field is refused"
        );
        for bad in [json!(0), json!("1"), json!(-1), json!(1.5)] {
            let mut v = json_of(&env);
            v["v"] = bad.clone();
            let err = from_json("ticket:created", &v).unwrap_err();
            assert!(matches!(err, EventError::Json(_)), "v {bad}: {err}");
        }
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = ticket_created();
        let b = ticket_created();
        assert!(a.id < b.id, "{} then {}", a.id, b.id);
    }
}
