//! Orders and the replica of tickets, and every query on them.
//!
//! "At most one active order per ticket" is the partial unique index
//! `orders_one_active_per_ticket`: however many buyers race, the database lets one order in.

use rusqlite::{Connection, OptionalExtension, Row};
use tix_api::events::{Envelope, Event, OrderCancelled, OrderCreated, OrderTicket, TicketRef};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub status: OrderStatus,
    pub expires_at: UnixMillis,
    pub version: i64,
    pub ticket: Ticket,
}

/// A status read back from the database, where only [`OrderStatus::as_str`] is written.
fn status_column(r: &Row<'_>, i: usize) -> rusqlite::Result<OrderStatus> {
    let text: String = r.get(i)?;
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Order {
    /// The API's view of it.
    pub fn view(&self) -> tix_api::Order {
        tix_api::Order {
            expires_at: self.expires_at,
            id: self.id.clone(),
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
        Ok(Order {
            id: r.get(0)?,
            user_id: r.get(1)?,
            status: status_column(r, 2)?,
            expires_at: UnixMillis::new(r.get(3)?),
            version: r.get(4)?,
            ticket: Ticket {
                id: r.get(5)?,
                title: r.get(6)?,
                price: Money::from_cents(r.get(7)?),
                user_id: r.get(8)?,
                version: r.get(9)?,
            },
        })
    }
}

const ORDER_SELECT: &str = "SELECT o.id, o.user_id, o.status, o.expires_at, o.version,
    t.id, t.title, t.price_cents, t.user_id, t.version
    FROM orders o JOIN tickets t ON t.id = o.ticket_id";

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
    c.prepare_cached(
        "INSERT INTO tickets (id, title, price_cents, user_id, version) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute((&t.id, &t.title, t.price.cents(), &t.user_id, t.version))
}

pub fn update_ticket(c: &Connection, t: &Ticket) -> rusqlite::Result<usize> {
    c.prepare_cached("UPDATE tickets SET title = ?2, price_cents = ?3, version = ?4 WHERE id = ?1")?
        .execute((&t.id, &t.title, t.price.cents(), t.version))
}

pub fn order(c: &Connection, id: &str) -> rusqlite::Result<Option<Order>> {
    c.prepare_cached(&format!("{ORDER_SELECT} WHERE o.id = ?1"))?
        .query_row([id], Order::from_row)
        .optional()
}

pub fn orders_of(c: &Connection, user: &str) -> rusqlite::Result<Vec<Order>> {
    let mut st = c.prepare_cached(&format!(
        "{ORDER_SELECT} WHERE o.user_id = ?1 ORDER BY o.id DESC"
    ))?;
    let rows = st.query_map([user], Order::from_row)?;
    rows.collect()
}

/// The buyer's orders that hold a ticket unpaid and have not expired.
pub fn unpaid_holds(c: &Connection, user: &str, now: UnixMillis) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "SELECT count(*) FROM orders
         WHERE user_id = ?1 AND status IN (?3, ?4) AND expires_at > ?2",
    )?
    .query_row(
        (
            user,
            now.as_i64(),
            OrderStatus::Created.as_str(),
            OrderStatus::AwaitingPayment.as_str(),
        ),
        |r| r.get(0),
    )
}

/// Whether an insert failed on a unique index (the one-active-order rule).
pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Inserts a new order and its `order:created` event.
pub fn insert_order(c: &Connection, o: &Order) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO orders (id, user_id, ticket_id, status, expires_at, version, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch())",
    )?
    .execute((
        &o.id,
        &o.user_id,
        &o.ticket.id,
        o.status.as_str(),
        o.expires_at.as_i64(),
        o.version,
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

fn set_status(c: &Connection, o: &Order) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE orders SET status = ?2, version = ?3 WHERE id = ?1")?
        .execute((&o.id, o.status.as_str(), o.version))?;
    Ok(())
}

/// Cancels an order (version + 1) and publishes `order:cancelled`, which releases the ticket.
pub fn cancel(c: &Connection, o: &mut Order) -> rusqlite::Result<()> {
    o.status = OrderStatus::Cancelled;
    o.version += 1;
    set_status(c, o)?;
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

/// Marks an order paid (version + 1).
pub fn complete(c: &Connection, o: &mut Order) -> rusqlite::Result<()> {
    o.status = OrderStatus::Complete;
    o.version += 1;
    set_status(c, o)
}
