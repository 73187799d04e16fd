//! The contract between tix's processes: what the HTTP API answers and accepts, and what
//! travels on the bus. Services serialize these types and clients deserialize the same
//! ones, so a change to the contract is a compile error on both sides.
//!
//! - [`Money`] (integer cents, a decimal on the wire) and [`UnixMillis`] (instants);
//! - the HTTP bodies, one module per resource: [`user`], [`ticket`], [`order`],
//!   [`payment`], plus the [`error`] body and [`health`];
//! - [`events`]: every subject on the bus, its payload and the envelope around it.
//!
//! The prose that a type cannot say is in `docs/api.md` and `docs/events.md`.

pub mod error;
pub mod events;
pub mod health;
mod millis;
mod money;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod order;
pub mod payment;
pub mod ticket;
pub mod user;

pub use error::{ErrorBody, FieldError};
pub use millis::UnixMillis;
pub use money::{Money, MoneyError};
pub use order::{NewOrder, Order, OrderStatus, OrderTicket, Sale, Sales};
pub use payment::{NewPayment, Payment, PaymentStatus};
pub use ticket::{Ticket, TicketDraft};
pub use user::{Credentials, CurrentUser, CurrentUserBody, NewAccount, SignedIn};

#[cfg(test)]
mod wire {
    //! The bodies keep the exact bytes the services answered with before these types
    //! existed (hand-built, sorted JSON maps).

    use super::*;

    #[test]
    fn a_ticket_keeps_its_bytes() {
        let t = Ticket {
            id: "t1".into(),
            order_id: None,
            price: Money::from_cents(2050),
            seller_name: "ana".into(),
            title: "Concert".into(),
            user_id: "u1".into(),
            version: 3,
        };
        // sellerName joined later, in key order like the rest.
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"id":"t1","orderId":null,"price":20.5,"sellerName":"ana","title":"Concert","userId":"u1","version":3}"#
        );
    }

    #[test]
    fn an_order_keeps_its_bytes() {
        let o = Order {
            expires_at: UnixMillis::new(1_800_000_000_250),
            id: "o1".into(),
            paid_at: None,
            status: OrderStatus::AwaitingPayment,
            ticket: OrderTicket {
                id: "t1".into(),
                price: Money::from_cents(2000),
                title: "Concert".into(),
                version: 1,
            },
            user_id: "u2".into(),
            version: 0,
        };
        let s = serde_json::to_string(&o).unwrap();
        assert_eq!(
            s,
            r#"{"expiresAt":"2027-01-15T08:00:00.25Z","id":"o1","paidAt":null,"status":"awaiting:payment","ticket":{"id":"t1","price":20,"title":"Concert","version":1},"userId":"u2","version":0}"#
        );
        assert_eq!(serde_json::from_str::<Order>(&s).unwrap(), o);
    }

    #[test]
    fn payments_users_and_errors_keep_their_bytes() {
        let p = Payment {
            amount: Money::from_cents(2050),
            created_at: UnixMillis::new(1_800_000_000_000),
            id: "p1".into(),
            order_id: "o1".into(),
            reason: None,
            refunded_at: None,
            status: PaymentStatus::Succeeded,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"amount":20.5,"createdAt":"2027-01-15T08:00:00Z","id":"p1","orderId":"o1","status":"succeeded"}"#
        );
        let me = CurrentUserBody {
            current_user: Some(CurrentUser {
                display_name: "a".into(),
                email: "a@b.io".into(),
                exp: 2,
                iat: 1,
                id: "u1".into(),
            }),
        };
        assert_eq!(
            serde_json::to_string(&me).unwrap(),
            r#"{"currentUser":{"displayName":"a","email":"a@b.io","exp":2,"iat":1,"id":"u1"}}"#
        );
        let nobody = CurrentUserBody { current_user: None };
        assert_eq!(
            serde_json::to_string(&nobody).unwrap(),
            r#"{"currentUser":null}"#
        );
        assert_eq!(serde_json::to_string(&user::Empty {}).unwrap(), "{}");
        let e = ErrorBody {
            errors: vec![
                FieldError::new("price", "Price must be greater than 0"),
                FieldError::general("Not found"),
            ],
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"errors":[{"message":"Price must be greater than 0","field":"price"},{"message":"Not found"}]}"#
        );
    }

    #[test]
    fn health_keeps_its_bytes() {
        use health::*;
        let h = Health {
            service: "gateway".into(),
            status: HealthStatus::Degraded,
            upstreams: Some(
                [(
                    "auth".to_string(),
                    UpstreamHealth {
                        latency_ms: 3,
                        status: UpstreamStatus::Down,
                        url: "http://127.0.0.1:4001".into(),
                        health: None,
                        checks: None,
                    },
                )]
                .into(),
            ),
            checks: None,
            pid: None,
            instance: None,
        };
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"service":"gateway","status":"degraded","upstreams":{"auth":{"latencyMs":3,"status":"down","url":"http://127.0.0.1:4001"}}}"#
        );
        let plain = Health {
            service: "tickets".into(),
            status: HealthStatus::Ok,
            upstreams: None,
            checks: None,
            pid: Some(4242),
            instance: Some("0193a5c2-7f7e-7cc0-9a2e-4c1d2b3a4f5e".into()),
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"service":"tickets","status":"ok","pid":4242,"instance":"0193a5c2-7f7e-7cc0-9a2e-4c1d2b3a4f5e"}"#
        );
    }

    /// A service's checks come after the fields the body always had, and only the counters
    /// of each part appear.
    #[test]
    fn a_degraded_service_names_the_part_and_why() {
        use health::*;
        let stuck = Check {
            status: HealthStatus::Degraded,
            reason: Some("database is locked".into()),
            since: Some(UnixMillis::new(1_767_225_600_000)),
            dead_letters: Some(2),
            ..Check::ok()
        };
        let outbox = Check {
            waiting: Some(0),
            dead: Some(1),
            ..Check::ok()
        };
        let h = Health {
            service: "orders".into(),
            status: HealthStatus::Degraded,
            upstreams: None,
            checks: Some(
                [
                    ("bus".to_string(), Check::ok()),
                    ("consumer".to_string(), stuck),
                    ("outbox".to_string(), outbox),
                ]
                .into(),
            ),
            pid: None,
            instance: None,
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"service":"orders","status":"degraded","checks":{"bus":{"status":"ok"},"consumer":{"status":"degraded","reason":"database is locked","since":"2026-01-01T00:00:00Z","deadLetters":2},"outbox":{"status":"ok","waiting":0,"dead":1}}}"#
        );
        assert_eq!(serde_json::from_str::<Health>(&json).unwrap(), h);
        let failing: Vec<&String> = h.failing().map(|(name, _)| name).collect();
        assert_eq!(failing, ["consumer"]);
        // A gateway of before reads it (unknown fields are ignored): older clients too.
        let old = r#"{"service":"gateway","status":"ok","upstreams":{"auth":{"latencyMs":1,"status":"up","url":"u"}}}"#;
        let h: Health = serde_json::from_str(old).unwrap();
        assert_eq!(h.upstreams.unwrap()["auth"].health, None);
    }
}
