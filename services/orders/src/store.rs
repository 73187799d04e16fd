//! Orders and the replica of tickets, and every query on them.
//!
//! "At most one active order per ticket" is the partial unique index
//! `orders_one_active_per_ticket`: however many buyers race, the database lets one order in.
//!
//! An order keeps the ticket as it was reserved (title, price, version): the price agreed is
//! the one `order:created` announces, payments charges and the API shows, whatever the
//! seller does to the ticket afterwards.

use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row};
use tix_api::events::{
    Envelope, Event, OrderCancelled, OrderCreated, OrderTicket, PaymentRejected, TicketRef,
};
use tix_api::{Money, OrderStatus, UnixMillis};
use tix_common::outbox;

pub const MIGRATIONS: &[&str] = &[
    tix_common::db::EVENTS_SCHEMA,
    "CREATE TABLE tickets (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        version INTEGER NOT NULL
     );
     CREATE TABLE orders (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        ticket_id TEXT NOT NULL REFERENCES tickets (id),
        status TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL
     );
     CREATE UNIQUE INDEX orders_one_active_per_ticket ON orders (ticket_id) WHERE status != 'cancelled';
     CREATE INDEX orders_user ON orders (user_id, id);",
    // Signed-out sessions, refused by this service too (docs/security.md).
    tix_common::sessions::SCHEMA,
    // The ticket as it was reserved (the price agreed is the price shown), when the order
    // was paid and by which payment, and why it was cancelled (the reason a payment that
    // arrives afterwards is rejected with). Orders made before this migration take their
    // ticket from the replica as it is now (the best there is); paid ones have no paid_at.
    "ALTER TABLE orders ADD COLUMN ticket_title TEXT NOT NULL DEFAULT '';
     ALTER TABLE orders ADD COLUMN price_cents INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE orders ADD COLUMN ticket_version INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE orders ADD COLUMN paid_at INTEGER;
     ALTER TABLE orders ADD COLUMN payment_id TEXT;
     ALTER TABLE orders ADD COLUMN cancelled_because TEXT;
     UPDATE orders SET ticket_title = t.title, price_cents = t.price_cents,
                       ticket_version = t.version
       FROM tickets t WHERE t.id = orders.ticket_id;",
    // Idempotency-Key on POST /api/orders: a retried reservation returns the first one.
    tix_common::idempotency::SCHEMA,
    // Events the bus refuses for good, out of the way of the others (docs/operations.md).
    tix_common::outbox::OUTBOX_DEAD_SCHEMA,
    // A seller's sales (GET /api/orders/sales): the seller's tickets in the replica, then
    // their completed orders through the one-active-order-per-ticket index.
    "CREATE INDEX tickets_seller ON tickets (user_id);",
    // Applied-event ids are forgotten once no redelivery can bring their event back.
    tix_common::inbox::PRUNE_SCHEMA,
    // A reservation counts the buyer's unpaid holds (`unpaid_holds`): through `orders_user`
    // that read every order the buyer ever made, so a reservation grew slower with each
    // purchase (a third of orders' CPU at 190 orders a buyer). This one answers from the
    // index alone, whatever the history.
    "CREATE INDEX orders_user_holds ON orders (user_id, status, expires_at);",
    // One page per event enqueued and cleared, not three and two (docs/benchmarks.md).
    tix_common::outbox::OUTBOX_REBUILD,
    // The holds index kept every order the buyer ever made, so each reservation and each
    // payment changed a page of the buyer's own (one page a buyer, written in every
    // commit that served them). Only open holds are in it now: a few pages for every
    // buyer, shared by a commit's reservations and payments (docs/benchmarks.md).
    "DROP INDEX orders_user_holds;
     CREATE INDEX orders_user_holds ON orders (user_id, status, expires_at)
        WHERE status IN ('created', 'awaiting:payment');",
];

/// The replica of a ticket, as `ticket:*` events describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub title: String,
    pub price: Money,
    pub user_id: String,
    pub version: i64,
}

/// A ticket as an order reserved it: what the buyer agreed to pay, kept with the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub id: String,
    pub title: String,
    pub price: Money,
    pub version: i64,
}

impl From<&Ticket> for Reserved {
    fn from(t: &Ticket) -> Reserved {
        Reserved {
            id: t.id.clone(),
            title: t.title.clone(),
            price: t.price,
            version: t.version,
        }
    }
}

/// Why an order was cancelled: what a payment arriving afterwards is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// `DELETE /api/orders/:id`.
    Buyer,
    /// `expiration:complete`.
    Expired,
    /// `payment:failed`: a declined card.
    PaymentFailed,
}

impl Cancellation {
    /// What `orders.cancelled_because` stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cancellation::Buyer => "buyer",
            Cancellation::Expired => "expired",
            Cancellation::PaymentFailed => "payment failed",
        }
    }

    /// The reason `payment:rejected` gives for a payment that came after this
    /// cancellation (`None`: cancelled before orders recorded why).
    pub fn rejection(why: Option<Cancellation>) -> &'static str {
        match why {
            Some(Cancellation::Expired) => "the order expired before its payment arrived",
            Some(Cancellation::PaymentFailed) => {
                "the order was cancelled after a declined payment, before this payment arrived"
            }
            Some(Cancellation::Buyer) | None => {
                "the order was cancelled before its payment arrived"
            }
        }
    }
}

impl fmt::Display for Cancellation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cancellation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Cancellation::Buyer,
            Cancellation::Expired,
            Cancellation::PaymentFailed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| format!("unknown cancellation {s:?}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub status: OrderStatus,
    pub expires_at: UnixMillis,
    pub version: i64,
    pub ticket: Reserved,
    /// When orders applied the payment that completed it.
    pub paid_at: Option<UnixMillis>,
    /// The payment that completed it (`None` for orders paid before this was recorded).
    pub payment_id: Option<String>,
    pub cancelled_because: Option<Cancellation>,
}

/// A value read back from a text column where only its `as_str` is written.
fn parsed_column<T: FromStr>(r: &Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T::Err: fmt::Display,
{
    let text: String = r.get(i)?;
    text.parse().map_err(|e: T::Err| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            e.to_string().into(),
        )
    })
}

impl Order {
    /// The API's view of it.
    pub fn view(&self) -> tix_api::Order {
        tix_api::Order {
            expires_at: self.expires_at,
            id: self.id.clone(),
            paid_at: self.paid_at,
            status: self.status,
            ticket: tix_api::OrderTicket {
                id: self.ticket.id.clone(),
                price: self.ticket.price,
                title: self.ticket.title.clone(),
                version: self.ticket.version,
            },
            user_id: self.user_id.clone(),
            version: self.version,
        }
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Order> {
        let cancelled_because: Option<String> = r.get(11)?;
        Ok(Order {
            id: r.get(0)?,
            user_id: r.get(1)?,
            status: parsed_column(r, 2)?,
            expires_at: UnixMillis::new(r.get(3)?),
            version: r.get(4)?,
            ticket: Reserved {
                id: r.get(5)?,
                title: r.get(6)?,
                price: Money::from_cents(r.get(7)?),
                version: r.get(8)?,
            },
            paid_at: r.get::<_, Option<i64>>(9)?.map(UnixMillis::new),
            payment_id: r.get(10)?,
            cancelled_because: match cancelled_because {
                Some(_) => Some(parsed_column(r, 11)?),
                None => None,
            },
        })
    }
}

const ORDER_SELECT: &str = "SELECT id, user_id, status, expires_at, version,
    ticket_id, ticket_title, price_cents, ticket_version, paid_at, payment_id, cancelled_because
    FROM orders";

pub fn ticket(c: &Connection, id: &str) -> rusqlite::Result<Option<Ticket>> {
    c.prepare_cached("SELECT id, title, price_cents, user_id, version FROM tickets WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Ticket {
                id: r.get(0)?,
                title: r.get(1)?,
                price: Money::from_cents(r.get(2)?),
                user_id: r.get(3)?,
                version: r.get(4)?,
            })
        })
        .optional()
}

pub fn insert_ticket(c: &Connection, t: &Ticket) -> rusqlite::Result<usize> {
    let n = c
        .prepare_cached(
            "INSERT INTO tickets (id, title, price_cents, user_id, version) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute((&t.id, &t.title, t.price.cents(), &t.user_id, t.version))?;
    if n == 1 {
        tix_common::db::touched(TICKETS);
    }
    Ok(n)
}

/// Commits that added a ticket to the replica: what a reservation waiting for its ticket
/// (`routes::wait_for_replica`) is woken by.
pub const TICKETS: tix_common::db::Topic = tix_common::db::Topic::own(1);

pub fn update_ticket(c: &Connection, t: &Ticket) -> rusqlite::Result<usize> {
    c.prepare_cached("UPDATE tickets SET title = ?2, price_cents = ?3, version = ?4 WHERE id = ?1")?
        .execute((&t.id, &t.title, t.price.cents(), t.version))
}

pub fn order(c: &Connection, id: &str) -> rusqlite::Result<Option<Order>> {
    c.prepare_cached(&format!("{ORDER_SELECT} WHERE id = ?1"))?
        .query_row([id], Order::from_row)
        .optional()
}

pub fn orders_of(c: &Connection, user: &str) -> rusqlite::Result<Vec<Order>> {
    let mut st = c.prepare_cached(&format!(
        "{ORDER_SELECT} WHERE user_id = ?1 ORDER BY id DESC"
    ))?;
    let rows = st.query_map([user], Order::from_row)?;
    rows.collect()
}

/// One page of a seller's sales (completed orders of the seller's tickets, newest
/// payment first) and the count and sum over all of them. Orders paid before `paid_at`
/// was recorded show when they were made.
pub fn sales_of(
    c: &Connection,
    seller: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<tix_api::Sales> {
    // `status != 'cancelled'` lets SQLite use the partial unique index on ticket_id.
    const SOLD: &str = "FROM orders o JOIN tickets t ON t.id = o.ticket_id
        WHERE t.user_id = ?1 AND o.status = 'complete' AND o.status != 'cancelled'";
    let (count, total): (i64, i64) = c
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(o.price_cents), 0) {SOLD}"
        ))?
        .query_row([seller], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut st = c.prepare_cached(&format!(
        "SELECT o.id, o.ticket_id, o.ticket_title, o.price_cents, o.ticket_version,
                coalesce(o.paid_at, o.created_at * 1000) AS paid {SOLD}
         ORDER BY paid DESC, o.id DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let sales = st
        .query_map((seller, limit, offset), |r| {
            let price = Money::from_cents(r.get(3)?);
            Ok(tix_api::Sale {
                amount: price,
                order_id: r.get(0)?,
                paid_at: UnixMillis::new(r.get(5)?),
                ticket: tix_api::OrderTicket {
                    id: r.get(1)?,
                    price,
                    title: r.get(2)?,
                    version: r.get(4)?,
                },
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(tix_api::Sales {
        count: count as u64,
        sales,
        total: Money::from_cents(total),
    })
}

/// The statuses spelled as the partial index `orders_user_holds` spells them: SQLite uses
/// a partial index only for a query that repeats its condition, not one that binds it.
const UNPAID_HOLDS: &str = "SELECT count(*) FROM orders
    WHERE user_id = ?1 AND status IN ('created', 'awaiting:payment') AND expires_at > ?2";

/// The buyer's orders that hold a ticket unpaid and have not expired.
pub fn unpaid_holds(c: &Connection, user: &str, now: UnixMillis) -> rusqlite::Result<i64> {
    c.prepare_cached(UNPAID_HOLDS)?
        .query_row((user, now.as_i64()), |r| r.get(0))
}

/// Whether an insert failed on a unique index (the one-active-order rule).
pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Inserts a new order and its `order:created` event, which carries the price the order
/// keeps.
pub fn insert_order(c: &Connection, o: &Order) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO orders (id, user_id, ticket_id, status, expires_at, version, created_at,
                             ticket_title, price_cents, ticket_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch(), ?7, ?8, ?9)",
    )?
    .execute((
        &o.id,
        &o.user_id,
        &o.ticket.id,
        o.status.as_str(),
        o.expires_at.as_i64(),
        o.version,
        &o.ticket.title,
        o.ticket.price.cents(),
        o.ticket.version,
    ))?;
    outbox::enqueue(
        c,
        &Envelope::new(
            crate::PRODUCER,
            Event::OrderCreated(OrderCreated {
                id: o.id.clone(),
                status: o.status,
                user_id: o.user_id.clone(),
                expires_at: o.expires_at,
                version: o.version,
                ticket: OrderTicket {
                    id: o.ticket.id.clone(),
                    price_cents: o.ticket.price,
                },
            }),
        ),
    )
}

/// Cancels an order (version + 1), noting why, and publishes `order:cancelled`, which
/// releases the ticket.
pub fn cancel(c: &Connection, o: &mut Order, why: Cancellation) -> rusqlite::Result<()> {
    o.status = OrderStatus::Cancelled;
    o.version += 1;
    o.cancelled_because = Some(why);
    c.prepare_cached(
        "UPDATE orders SET status = ?2, version = ?3, cancelled_because = ?4 WHERE id = ?1",
    )?
    .execute((&o.id, o.status.as_str(), o.version, why.as_str()))?;
    outbox::enqueue(
        c,
        &Envelope::new(
            crate::PRODUCER,
            Event::OrderCancelled(OrderCancelled {
                id: o.id.clone(),
                version: o.version,
                ticket: TicketRef {
                    id: o.ticket.id.clone(),
                },
            }),
        ),
    )
}

/// Marks an order paid by `payment` at `at` (version + 1).
pub fn complete(
    c: &Connection,
    o: &mut Order,
    payment: &str,
    at: UnixMillis,
) -> rusqlite::Result<()> {
    o.status = OrderStatus::Complete;
    o.version += 1;
    o.paid_at = Some(at);
    o.payment_id = Some(payment.to_string());
    c.prepare_cached(
        "UPDATE orders SET status = ?2, version = ?3, paid_at = ?4, payment_id = ?5
         WHERE id = ?1",
    )?
    .execute((&o.id, o.status.as_str(), o.version, at.as_i64(), payment))?;
    Ok(())
}

/// Publishes `payment:rejected`: `payment` succeeded for an order that cannot be completed
/// by it, and payments is to refund it. The order itself does not change.
pub fn reject_payment(
    c: &Connection,
    o: &Order,
    payment: &str,
    reason: &str,
) -> rusqlite::Result<()> {
    outbox::enqueue(
        c,
        &Envelope::new(
            crate::PRODUCER,
            Event::PaymentRejected(PaymentRejected {
                payment_id: payment.to_string(),
                order_id: o.id.clone(),
                reason: reason.to_string(),
            }),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counting a buyer's unpaid holds reads only those holds, from an index, not every
    /// order the buyer ever made.
    #[test]
    fn unpaid_holds_are_counted_from_an_index_alone() {
        let mut c = Connection::open_in_memory().unwrap();
        tix_common::db::migrate(&mut c, MIGRATIONS).unwrap();
        let plan: String = c
            .query_row(
                &format!("EXPLAIN QUERY PLAN {UNPAID_HOLDS}"),
                ("u", 0),
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.contains("COVERING INDEX orders_user_holds") && plan.contains("expires_at>?"),
            "{plan}"
        );
        // The query and the index spell the open statuses out; they must be these.
        for open in [OrderStatus::Created, OrderStatus::AwaitingPayment] {
            assert!(UNPAID_HOLDS.contains(&format!("'{}'", open.as_str())));
        }
        // Only open holds are in the index: SQLite refuses it for a question about every
        // order of a buyer, which it could answer if paid and cancelled ones were there.
        let every_order = c.query_row(
            "SELECT count(*) FROM orders INDEXED BY orders_user_holds WHERE user_id = 'u'",
            [],
            |r| r.get::<_, i64>(0),
        );
        assert!(
            every_order
                .as_ref()
                .is_err_and(|e| e.to_string().contains("no query solution")),
            "{every_order:?}"
        );
        c.execute_batch(
            "INSERT INTO tickets VALUES ('t1', 'Jazz', 2550, 'seller', 3);
             INSERT INTO tickets VALUES ('t2', 'Jazz', 2550, 'seller', 3);
             INSERT INTO tickets VALUES ('t3', 'Jazz', 2550, 'seller', 3);
             INSERT INTO tickets VALUES ('t4', 'Jazz', 2550, 'seller', 3);",
        )
        .unwrap();
        let now = UnixMillis::now().as_i64();
        for (id, ticket, status, expires) in [
            ("o1", "t1", "created", now + 60_000),
            ("o2", "t2", "complete", now + 60_000),
            ("o3", "t3", "created", now - 1),
            ("o4", "t4", "awaiting:payment", now + 60_000),
        ] {
            c.execute(
                "INSERT INTO orders (id, user_id, ticket_id, status, expires_at, version, created_at)
                 VALUES (?1, 'buyer', ?2, ?3, ?4, 1, 0)",
                (id, ticket, status, expires),
            )
            .unwrap();
        }
        assert_eq!(unpaid_holds(&c, "buyer", UnixMillis::now()).unwrap(), 2);
        assert_eq!(
            unpaid_holds(&c, "someone else", UnixMillis::now()).unwrap(),
            0
        );
    }

    /// An orders.db from before orders kept the reserved ticket: its orders take the
    /// replica's title, price and version, and stay unpaid as far as `paid_at` knows.
    #[test]
    fn existing_orders_are_backfilled_from_the_replica() {
        let mut c = Connection::open_in_memory().unwrap();
        tix_common::db::migrate(&mut c, &MIGRATIONS[..3]).unwrap();
        c.execute_batch(
            "INSERT INTO tickets VALUES ('t1', 'Jazz', 2550, 'seller', 3);
             INSERT INTO orders VALUES ('o1', 'buyer', 't1', 'complete', 1, 1, 1);",
        )
        .unwrap();
        tix_common::db::migrate(&mut c, MIGRATIONS).unwrap();
        let o = order(&c, "o1").unwrap().unwrap();
        assert_eq!(
            o.ticket,
            Reserved {
                id: "t1".into(),
                title: "Jazz".into(),
                price: Money::from_cents(2550),
                version: 3,
            }
        );
        assert_eq!(
            (o.status, o.paid_at, o.payment_id, o.cancelled_because),
            (OrderStatus::Complete, None, None, None)
        );
    }

    #[test]
    fn cancellations_read_back_as_written() {
        for why in [
            Cancellation::Buyer,
            Cancellation::Expired,
            Cancellation::PaymentFailed,
        ] {
            assert_eq!(why.as_str().parse(), Ok(why));
        }
        assert!("other".parse::<Cancellation>().is_err());
    }
}
