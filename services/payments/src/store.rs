//! The replica of orders, the payments table, and every query on them.

use rusqlite::{Connection, OptionalExtension, Row};
use tix_api::events::{Envelope, Event, PaymentCreated, PaymentFailed, PaymentRefunded};
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
    // Receipts and refunds: when (ms), why, and the refund states. SQLite cannot change a
    // CHECK constraint in place, so the table is rebuilt.
    "CREATE TABLE payments_v2 (
        id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL REFERENCES orders (id),
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'succeeded', 'failed', 'refund_pending', 'refunded')),
        charge_id TEXT,
        amount_cents INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        reason TEXT,
        refund_id TEXT,
        refunded_ms INTEGER
     );
     INSERT INTO payments_v2 (id, order_id, status, charge_id, amount_cents, created_ms)
        SELECT id, order_id, status, charge_id, amount_cents, created_at * 1000 FROM payments;
     DROP TABLE payments;
     ALTER TABLE payments_v2 RENAME TO payments;
     -- A refunded charge is still the order's payment: no second one is taken for it.
     CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
        WHERE status IN ('pending', 'succeeded', 'refund_pending', 'refunded');
     CREATE INDEX payments_refund_pending ON payments (id) WHERE status = 'refund_pending';",
    // Idempotency-Key on POST /api/payments: a retried payment answers with the first.
    tix_common::idempotency::SCHEMA,
    // Payment attempts (docs/payments.md): each payment row is one attempt with its own
    // provider key, written before the provider is called, with what is needed to ask the
    // provider again (the card token only while the outcome is unknown). Attempts made
    // before this used the order id as their key.
    "ALTER TABLE payments ADD COLUMN provider_key TEXT;
     ALTER TABLE payments ADD COLUMN currency TEXT;
     ALTER TABLE payments ADD COLUMN source TEXT;
     ALTER TABLE payments ADD COLUMN failure TEXT
        CHECK (failure IN ('declined', 'invalid', 'unreachable'));
     ALTER TABLE payments ADD COLUMN checked_ms INTEGER;
     UPDATE payments SET provider_key = order_id;
     CREATE INDEX payments_pending ON payments (id) WHERE status = 'pending';",
    // Events the bus refuses for good are set aside here instead of blocking the outbox.
    tix_common::outbox::OUTBOX_DEAD_SCHEMA,
    // Applied-event ids are forgotten once no redelivery can bring their event back.
    tix_common::inbox::PRUNE_SCHEMA,
    // One page per event enqueued and cleared, not three and two (docs/benchmarks.md).
    tix_common::outbox::OUTBOX_REBUILD,
    // Pending attempts and refunds are taken least recently tried first (`checked_ms`,
    // NULL for never): by id alone, a full read of ones the provider never settles (or
    // refuses for good) would be read again on every sweep, and the ones after them never.
    "DROP INDEX payments_pending;
     CREATE INDEX payments_pending ON payments (checked_ms, id) WHERE status = 'pending';
     DROP INDEX payments_refund_pending;
     CREATE INDEX payments_refund_pending ON payments (checked_ms, id)
        WHERE status = 'refund_pending';",
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
    let n = c
        .prepare_cached(
            "INSERT INTO orders (id, user_id, price_cents, status, version, expires_at)
             VALUES (?1, ?2, ?3, 'created', ?4, ?5)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute((id, user_id, price.cents(), version, expires_at.as_i64()))?;
    if n == 1 {
        tix_common::db::touched(ORDERS);
    }
    Ok(())
}

/// Commits that added an order to the replica: what a payment waiting for its order
/// (`routes::wait_for_order`) is woken by.
pub const ORDERS: tix_common::db::Topic = tix_common::db::Topic::own(2);

/// Marks the replica cancelled; false when there is no replica to mark.
pub fn cancel_order(c: &Connection, id: &str, version: i64) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached("UPDATE orders SET status = 'cancelled', version = ?2 WHERE id = ?1")?
        .execute((id, version))?;
    Ok(n == 1)
}

/// A payment attempt that holds its order until the charge is settled, and everything
/// needed to ask the provider about it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: String,
    pub order_id: String,
    pub amount: Money,
    pub created_at: UnixMillis,
    pub currency: String,
    /// The card token, kept only until the outcome is known.
    pub source: String,
}

impl Claim {
    /// The attempt's own key at the provider: never shared with another attempt, so a
    /// new card after a refusal is a new charge, and the same attempt asked again is not.
    pub fn provider_key(&self) -> String {
        format!("charge-{}", self.id)
    }

    pub fn description(&self) -> String {
        format!("tix order {}", self.order_id)
    }
}

/// Records a pending attempt for an order; `false` when the order already has one that is
/// pending or succeeded (the partial unique index decides, so concurrent claims cannot both
/// win). Only an attempt settled as failed lets another one in.
// The request asking the provider is the attempt's first ask (`checked_ms`): the reconciler
// takes attempts it asked about least recently first, and one still in flight goes after
// those waiting longer.
pub fn claim(c: &Connection, p: &Claim) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO payments (id, order_id, status, charge_id, amount_cents, created_ms,
                provider_key, currency, source, checked_ms)
             VALUES (?1, ?2, 'pending', NULL, ?3, ?4, ?5, ?6, ?7, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute((
            &p.id,
            &p.order_id,
            p.amount.cents(),
            p.created_at.as_i64(),
            p.provider_key(),
            &p.currency,
            &p.source,
        ))?;
    Ok(n == 1)
}

/// Whether an attempt on this order is still waiting for its outcome.
pub fn has_pending_attempt(c: &Connection, order_id: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM payments WHERE order_id = ?1 AND status = 'pending'")?
        .exists([order_id])
}

// `LIMIT +?1` in both sweeps keeps the cached statements from being planned again on
// every run (tix_common's outbox says why).
const PENDING_ATTEMPTS: &str =
    "SELECT id, order_id, amount_cents, created_ms, coalesce(currency, ''), coalesce(source, '')
     FROM payments WHERE status = 'pending' ORDER BY checked_ms, id LIMIT +?1";
const PENDING_REFUNDS: &str = "SELECT id, order_id, charge_id, amount_cents FROM payments
     WHERE status = 'refund_pending' ORDER BY checked_ms, id LIMIT +?1";

/// Attempts whose outcome is not known yet, least recently asked about first (never asked
/// first, oldest first among equals), with what asking again needs.
/// An attempt from before attempts kept their card token cannot be asked about again; it
/// is listed with an empty source and left to an operator.
pub fn pending_attempts(c: &Connection, limit: i64) -> rusqlite::Result<Vec<Claim>> {
    let mut st = c.prepare_cached(PENDING_ATTEMPTS)?;
    let rows = st.query_map([limit], |r| {
        Ok(Claim {
            id: r.get(0)?,
            order_id: r.get(1)?,
            amount: Money::from_cents(r.get(2)?),
            created_at: UnixMillis::new(r.get(3)?),
            currency: r.get(4)?,
            source: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The provider was asked about a pending attempt and could not say yet, or refused or
/// could not make a pending refund: the sweeps take the others first next time.
pub fn checked(c: &Connection, payment_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE payments SET checked_ms = ?2 WHERE id = ?1")?
        .execute((payment_id, UnixMillis::now().as_i64()))?;
    Ok(())
}

/// [`checked`] in a write of its own.
pub async fn record_tried(
    db: &tix_common::db::Db,
    payment_id: &str,
) -> Result<(), tix_common::db::DbError> {
    let id = payment_id.to_string();
    db.write(move |c| -> Result<(), tix_common::db::DbError> { Ok(checked(c, &id)?) })
        .await
}

/// The charge went through: the payment, the order and `payment:created`, together. An
/// attempt already settled (the request and the reconciler both asked) changes nothing.
pub fn succeed(c: &Connection, p: &Claim, charge_id: &str) -> rusqlite::Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE payments SET status = 'succeeded', charge_id = ?2, source = NULL,
                checked_ms = ?3
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute((&p.id, charge_id, UnixMillis::now().as_i64()))?;
    if n == 0 {
        return Ok(());
    }
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

/// Why an attempt failed; each leaves the order in a different state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The card was refused: the order is cancelled (`payment:failed`).
    Declined,
    /// The card is not usable: the order stays open for another card.
    Invalid,
    /// The provider could not be reached and nothing was charged: the order stays open and
    /// the same request may be retried.
    Unreachable,
}

impl Failure {
    pub const fn as_str(self) -> &'static str {
        match self {
            Failure::Declined => "declined",
            Failure::Invalid => "invalid",
            Failure::Unreachable => "unreachable",
        }
    }

    fn parse(s: &str) -> Option<Failure> {
        [Failure::Declined, Failure::Invalid, Failure::Unreachable]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// The attempt is settled as failed: the order is free for another attempt. A declined
/// card also closes the replica and tells orders to cancel (`payment:failed`), so no one
/// pays for an order about to be cancelled. `false` when the attempt was settled already.
pub fn fail(c: &Connection, p: &Claim, failure: Failure, reason: &str) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE payments SET status = 'failed', reason = ?2, failure = ?3, source = NULL,
                checked_ms = ?4
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute((&p.id, reason, failure.as_str(), UnixMillis::now().as_i64()))?;
    if n == 0 {
        return Ok(false);
    }
    match failure {
        Failure::Declined => {}
        // Nothing happened that a retry of the same request should be told about.
        Failure::Unreachable => {
            tix_common::idempotency::forget(c, &p.id)?;
            return Ok(true);
        }
        Failure::Invalid => return Ok(true),
    }
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
    )?;
    Ok(true)
}

impl Claim {
    /// The receipt while the charge is under way.
    pub fn pending(&self) -> Payment {
        Payment {
            status: PaymentStatus::Pending,
            ..self.succeeded()
        }
    }

    /// The receipt of the claim once its charge succeeded.
    pub fn succeeded(&self) -> Payment {
        Payment {
            amount: self.amount,
            created_at: self.created_at,
            id: self.id.clone(),
            order_id: self.order_id.clone(),
            reason: None,
            refunded_at: None,
            status: PaymentStatus::Succeeded,
        }
    }
}

const RECEIPT: &str = "SELECT p.id, p.order_id, p.status, p.amount_cents, p.created_ms, p.reason,
        p.refunded_ms, o.user_id, p.failure
    FROM payments p JOIN orders o ON o.id = p.order_id";

/// A receipt, whose it is, and why it failed if it did.
pub struct Receipt {
    pub payment: Payment,
    pub buyer: String,
    pub failure: Option<Failure>,
}

fn receipt_row(r: &Row<'_>) -> rusqlite::Result<Receipt> {
    let status: String = r.get(2)?;
    let status = match status.as_str() {
        // Being given back: still the buyer's money until the refund is through.
        "refund_pending" => PaymentStatus::Succeeded,
        other => other.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
    };
    Ok((
        Payment {
            amount: Money::from_cents(r.get(3)?),
            created_at: UnixMillis::new(r.get(4)?),
            id: r.get(0)?,
            order_id: r.get(1)?,
            reason: r.get(5)?,
            refunded_at: r.get::<_, Option<i64>>(6)?.map(UnixMillis::new),
            status,
        },
        r.get(7)?,
        r.get::<_, Option<String>>(8)?
            .as_deref()
            .and_then(Failure::parse),
    ))
    .map(|(payment, buyer, failure)| Receipt {
        payment,
        buyer,
        failure,
    })
}

/// A buyer's payments, newest first (ids are time-ordered).
pub fn receipts_of(c: &Connection, user: &str) -> rusqlite::Result<Vec<Payment>> {
    let mut st = c.prepare_cached(&format!(
        "{RECEIPT} WHERE o.user_id = ?1 ORDER BY p.id DESC LIMIT 500"
    ))?;
    let rows = st.query_map([user], receipt_row)?;
    rows.map(|r| r.map(|r| r.payment)).collect()
}

/// One payment and its buyer.
pub fn receipt(c: &Connection, id: &str) -> rusqlite::Result<Option<Receipt>> {
    c.prepare_cached(&format!("{RECEIPT} WHERE p.id = ?1"))?
        .query_row([id], receipt_row)
        .optional()
}

/// What orders said when it rejected a payment: the charge is to be given back. `false`
/// when the payment is not one that succeeded (unknown, or already being refunded).
// A refund not tried yet comes before every one tried (`checked_ms` NULL): the refunder
// takes the least recently tried first.
pub fn reject(c: &Connection, payment_id: &str, reason: &str) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE payments SET status = 'refund_pending', reason = ?2, checked_ms = NULL
             WHERE id = ?1 AND status = 'succeeded'",
        )?
        .execute((payment_id, reason))?;
    if n == 1 {
        tix_common::db::touched(REFUNDS);
    }
    Ok(n == 1)
}

/// The refunder's wake-up: a commit that left a charge to give back.
pub const REFUNDS: tix_common::db::Topic = tix_common::db::Topic::own(1);

/// Whether a payment exists, with its status as stored.
pub fn stored_status(c: &Connection, payment_id: &str) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT status FROM payments WHERE id = ?1")?
        .query_row([payment_id], |r| r.get(0))
        .optional()
}

/// A charge to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRefund {
    pub payment_id: String,
    pub order_id: String,
    pub charge_id: String,
    pub amount: Money,
}

pub fn pending_refunds(c: &Connection, limit: i64) -> rusqlite::Result<Vec<PendingRefund>> {
    let mut st = c.prepare_cached(PENDING_REFUNDS)?;
    let rows = st.query_map([limit], |r| {
        Ok(PendingRefund {
            payment_id: r.get(0)?,
            order_id: r.get(1)?,
            charge_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            amount: Money::from_cents(r.get(3)?),
        })
    })?;
    rows.collect()
}

/// The provider gave the charge back: recorded, and `payment:refunded` announced.
pub fn refunded(c: &Connection, r: &PendingRefund, refund_id: &str) -> rusqlite::Result<()> {
    let n = c
        .prepare_cached(
            "UPDATE payments SET status = 'refunded', refund_id = ?2, refunded_ms = ?3
             WHERE id = ?1 AND status = 'refund_pending'",
        )?
        .execute((&r.payment_id, refund_id, UnixMillis::now().as_i64()))?;
    if n == 0 {
        return Ok(()); // recorded already
    }
    outbox::enqueue(
        c,
        &Envelope::new(
            crate::PRODUCER,
            Event::PaymentRefunded(PaymentRefunded {
                payment_id: r.payment_id.clone(),
                order_id: r.order_id.clone(),
                refund_id: refund_id.to_string(),
            }),
        ),
    )
}

#[cfg(test)]
impl Claim {
    /// A 1.00 usd attempt, payment `id` on order `o-<id>`, for tests.
    pub(crate) fn sample(id: &str) -> Claim {
        Claim {
            id: id.into(),
            order_id: format!("o-{id}"),
            amount: Money::from_cents(100),
            created_at: UnixMillis::now(),
            currency: "usd".into(),
            source: "tok_visa".into(),
        }
    }

    /// Its order in the replica (never expiring) and the attempt claimed, for tests.
    pub(crate) fn claim_in(&self, c: &Connection) {
        let never = UnixMillis::new(i64::MAX);
        insert_order(c, &self.order_id, "bob", self.amount, 1, never).unwrap();
        assert!(claim(c, self).unwrap());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconciler and the refunder sweep after commits: their queries must come from
    /// the statement cache as they are, not be parsed and planned again on every sweep.
    #[test]
    fn the_sweeps_do_not_prepare_their_queries_again() {
        let mut c = Connection::open_in_memory().unwrap();
        tix_common::db::migrate(&mut c, MIGRATIONS).unwrap();
        for _ in 0..3 {
            assert_eq!(pending_attempts(&c, 100).unwrap(), vec![]);
            assert_eq!(pending_refunds(&c, 100).unwrap(), vec![]);
        }
        for sql in [PENDING_ATTEMPTS, PENDING_REFUNDS] {
            let st = c.prepare_cached(sql).unwrap();
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    /// A refund not tried yet comes before every one tried, however recently its charge
    /// went through (which counted as an ask of the provider for the attempt).
    #[test]
    fn a_new_refund_comes_before_those_tried() {
        let mut c = Connection::open_in_memory().unwrap();
        tix_common::db::migrate(&mut c, MIGRATIONS).unwrap();
        let refund = |c: &Connection, id: &str| {
            let claim = Claim::sample(id);
            claim.claim_in(c);
            succeed(c, &claim, &format!("ch-{id}")).unwrap();
            assert!(reject(c, id, "the order was cancelled").unwrap());
        };
        refund(&c, "p-a");
        checked(&c, "p-a").unwrap(); // tried, refused
        std::thread::sleep(std::time::Duration::from_millis(2));
        refund(&c, "p-b");
        let order: Vec<String> = pending_refunds(&c, 100)
            .unwrap()
            .into_iter()
            .map(|r| r.payment_id)
            .collect();
        assert_eq!(order, ["p-b", "p-a"]);
    }

    /// The sweeps take what they tried least recently first, never-tried first, each from
    /// its index (no sort of every pending row): one the provider never settles goes to
    /// the back once tried, whatever its id.
    #[test]
    fn the_sweeps_take_the_least_recently_tried_first() {
        let mut c = Connection::open_in_memory().unwrap();
        tix_common::db::migrate(&mut c, MIGRATIONS).unwrap();
        for (sql, index) in [
            (PENDING_ATTEMPTS, "payments_pending"),
            (PENDING_REFUNDS, "payments_refund_pending"),
        ] {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = st
                .query_map([100], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(
                plan.contains(index) && !plan.contains("TEMP B-TREE"),
                "{plan}"
            );
        }
        for i in 0..4 {
            Claim::sample(&format!("p-{i}")).claim_in(&c);
        }
        let order = |c: &Connection| -> Vec<String> {
            pending_attempts(c, 100)
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect()
        };
        // A new attempt counts as asked when it was made (its request asks the provider).
        assert_eq!(order(&c), ["p-0", "p-1", "p-2", "p-3"]);
        std::thread::sleep(std::time::Duration::from_millis(2));
        checked(&c, "p-0").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        checked(&c, "p-2").unwrap();
        assert_eq!(order(&c), ["p-1", "p-3", "p-0", "p-2"]);
        assert_eq!(
            pending_attempts(&c, 2).unwrap().len(),
            2,
            "the limit still holds"
        );
    }
}
