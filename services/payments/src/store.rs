//! The replica of orders, the payments table, and every query on them.

use rusqlite::{Connection, OptionalExtension, Row};
use tix_api::events::{Envelope, Event, PaymentCreated, PaymentFailed};
use tix_api::{Money, OrderStatus, Payment, PaymentStatus, UnixMillis};
use tix_common::outbox;

pub const MIGRATIONS: &[&str] = &[
    tix_common::db::EVENTS_SCHEMA,
    "CREATE TABLE orders (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('created', 'cancelled', 'complete')),
        version INTEGER NOT NULL
     );
     CREATE TABLE payments (
        id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL REFERENCES orders (id),
        status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
        charge_id TEXT,
        amount_cents INTEGER NOT NULL,
        created_at INTEGER NOT NULL
     );
     -- At most one live payment per order: a second claim, however concurrent, finds this
     -- index and is refused before any card is charged. Failed attempts do not count.
     CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
        WHERE status IN ('pending', 'succeeded');",
    // When the order expires (unix ms; 0 = unknown): a card is not charged for an order
    // about to expire, since orders would cancel it while the charge runs.
    "ALTER TABLE orders ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;",
    // Signed-out sessions, refused by this service too (docs/security.md).
    tix_common::sessions::SCHEMA,
];

/// An order as replicated from `order:*` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub price: Money,
    /// Created, cancelled or complete: payments never sees the other statuses.
    pub status: OrderStatus,
    pub version: i64,
    /// Unknown for orders replicated before expiry times were.
    pub expires_at: Option<UnixMillis>,
}

impl Order {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Order> {
        Ok(Order {
            id: r.get(0)?,
            user_id: r.get(1)?,
            price: Money::from_cents(r.get(2)?),
            status: r.get::<_, String>(3)?.parse().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            version: r.get(4)?,
            expires_at: Some(r.get(5)?).filter(|ms| *ms != 0).map(UnixMillis::new),
        })
    }
}

pub fn get_order(c: &Connection, id: &str) -> rusqlite::Result<Option<Order>> {
    c.prepare_cached(
        "SELECT id, user_id, price_cents, status, version, expires_at FROM orders WHERE id = ?1",
    )?
    .query_row([id], Order::from_row)
    .optional()
}

/// Inserts the replica of a new order; a replayed `order:created` changes nothing.
pub fn insert_order(
    c: &Connection,
    id: &str,
    user_id: &str,
    price: Money,
    version: i64,
    expires_at: UnixMillis,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO orders (id, user_id, price_cents, status, version, expires_at)
         VALUES (?1, ?2, ?3, 'created', ?4, ?5)
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute((id, user_id, price.cents(), version, expires_at.as_i64()))?;
    Ok(())
}

/// Marks the replica cancelled; false when there is no replica to mark.
pub fn cancel_order(c: &Connection, id: &str, version: i64) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached("UPDATE orders SET status = 'cancelled', version = ?2 WHERE id = ?1")?
        .execute((id, version))?;
    Ok(n == 1)
}

/// A payment attempt that holds its order until the charge is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: String,
    pub order_id: String,
    pub amount: Money,
}

/// Records a pending payment for an order; `false` when the order already has a pending or
/// succeeded one (the partial unique index decides, so concurrent claims cannot both win).
pub fn claim(c: &Connection, p: &Claim) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO payments (id, order_id, status, charge_id, amount_cents, created_at)
             VALUES (?1, ?2, 'pending', NULL, ?3, unixepoch())
             ON CONFLICT DO NOTHING",
        )?
        .execute((&p.id, &p.order_id, p.amount.cents()))?;
    Ok(n == 1)
}

/// The charge went through: the payment, the order and `payment:created`, together.
pub fn succeed(c: &Connection, p: &Claim, charge_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE payments SET status = 'succeeded', charge_id = ?2 WHERE id = ?1 AND status = 'pending'",
    )?
    .execute((&p.id, charge_id))?;
    let completed = c
        .prepare_cached(
            "UPDATE orders SET status = 'complete' WHERE id = ?1 AND status = 'created'",
        )?
        .execute([&p.order_id])?;
    if completed == 0 {
        // The order expired while the card was being charged; orders decides what happens
        // to a paid, cancelled order, and payment:created is what tells it.
        tracing::warn!(order = %p.order_id, payment = %p.id, charge = %charge_id, "charged an order that is no longer open");
    }
    outbox::enqueue(
        c,
        &Envelope::new(
            crate::PRODUCER,
            Event::PaymentCreated(PaymentCreated {
                id: p.id.clone(),
                order_id: p.order_id.clone(),
                charge_id: charge_id.to_string(),
            }),
        ),
    )
}

/// The card was declined: the attempt is kept as failed and `payment:failed` tells orders
/// to cancel. The replica is closed now, so no one pays for an order about to be cancelled.
pub fn fail(c: &Connection, p: &Claim, reason: &str) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE payments SET status = 'failed' WHERE id = ?1 AND status = 'pending'")?
        .execute([&p.id])?;
    c.prepare_cached(
        "UPDATE orders SET status = 'cancelled' WHERE id = ?1 AND status = 'created'",
    )?
    .execute([&p.order_id])?;
    outbox::enqueue(
        c,
        &Envelope::new(
            crate::PRODUCER,
            Event::PaymentFailed(PaymentFailed {
                order_id: p.order_id.clone(),
                reason: reason.to_string(),
            }),
        ),
    )
}

/// No money moved: forget the attempt so the buyer can try again.
pub fn release(c: &Connection, p: &Claim) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM payments WHERE id = ?1 AND status = 'pending'")?
        .execute([&p.id])?;
    Ok(())
}

impl Claim {
    /// The API's view of the claim once its charge succeeded.
    pub fn succeeded(&self) -> Payment {
        Payment {
            id: self.id.clone(),
            order_id: self.order_id.clone(),
            status: PaymentStatus::Succeeded,
        }
    }
}
