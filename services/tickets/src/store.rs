//! The tickets table and every query on it.

use rusqlite::{Connection, OptionalExtension, Row};
use tix_api::events::{Envelope, Event, TicketCreated, TicketUpdated};
use tix_common::outbox;

use crate::domain::Price;

pub const MIGRATIONS: &[&str] = &[
    tix_common::db::EVENTS_SCHEMA,
    "CREATE TABLE tickets (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        price_cents INTEGER NOT NULL CHECK (price_cents > 0),
        user_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        order_id TEXT,
        created_at INTEGER NOT NULL
     );
     CREATE INDEX tickets_user ON tickets (user_id, id);",
    // Orders known to be cancelled: an order:created overtaken by its own cancellation
    // (after a redelivery) must not reserve the ticket.
    "CREATE TABLE cancelled_orders (order_id TEXT PRIMARY KEY) WITHOUT ROWID;",
    // Signed-out sessions, refused by this service too (docs/security.md).
    tix_common::sessions::SCHEMA,
    // Events the bus refuses for good, out of the way of the others (docs/operations.md).
    tix_common::outbox::OUTBOX_DEAD_SCHEMA,
    // The seller's public display name when the ticket was put on sale (docs/api.md);
    // tickets from before show the seller's id cut to eight characters.
    "ALTER TABLE tickets ADD COLUMN seller_name TEXT NOT NULL DEFAULT '';",
    // Applied-event ids and tombstones are forgotten once no redelivery can bring their
    // event back (tix_common::inbox::Pruning); tombstones from before count from now.
    tix_common::inbox::PRUNE_SCHEMA,
    "ALTER TABLE cancelled_orders ADD COLUMN at INTEGER NOT NULL DEFAULT 0;
     UPDATE cancelled_orders SET at = unixepoch();
     CREATE INDEX cancelled_orders_at ON cancelled_orders (at);",
    // One page per event enqueued and cleared, not three and two (docs/benchmarks.md).
    tix_common::outbox::OUTBOX_REBUILD,
];

pub fn mark_cancelled(c: &Connection, order_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO cancelled_orders (order_id, at) VALUES (?1, unixepoch()) ON CONFLICT DO NOTHING",
    )?
    .execute([order_id])?;
    Ok(())
}

/// Forgets tombstones older than `before` (unix seconds), a batch at a time: an
/// order:created can only overtake its cancellation by a redelivery, which the inbox's
/// pruning rules out past the same age.
pub fn prune_cancelled(c: &Connection, before: i64) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "DELETE FROM cancelled_orders WHERE order_id IN
           (SELECT order_id FROM cancelled_orders WHERE at < ?1 LIMIT 5000)",
    )?
    .execute([before])
}

pub fn is_cancelled(c: &Connection, order_id: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM cancelled_orders WHERE order_id = ?1")?
        .exists([order_id])
}

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub title: String,
    pub price: Price,
    pub user_id: String,
    pub version: i64,
    pub order_id: Option<String>,
    pub seller_name: String,
}

impl Ticket {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Ticket> {
        Ok(Ticket {
            id: r.get(0)?,
            title: r.get(1)?,
            price: Price::from_cents(r.get(2)?),
            user_id: r.get(3)?,
            version: r.get(4)?,
            order_id: r.get(5)?,
            seller_name: r.get(6)?,
        })
    }

    /// The API's view of it.
    pub fn view(&self) -> tix_api::Ticket {
        tix_api::Ticket {
            id: self.id.clone(),
            order_id: self.order_id.clone(),
            price: self.price.money(),
            seller_name: if self.seller_name.is_empty() {
                self.user_id.chars().take(8).collect()
            } else {
                self.seller_name.clone()
            },
            title: self.title.clone(),
            user_id: self.user_id.clone(),
            version: self.version,
        }
    }

    fn updated_event(&self) -> Envelope {
        Envelope::new(
            crate::PRODUCER,
            Event::TicketUpdated(TicketUpdated {
                id: self.id.clone(),
                title: self.title.clone(),
                price_cents: self.price.money(),
                user_id: self.user_id.clone(),
                version: self.version,
                order_id: self.order_id.clone(),
            }),
        )
    }
}

const COLUMNS: &str = "id, title, price_cents, user_id, version, order_id, seller_name";

pub fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<Ticket>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM tickets WHERE id = ?1"))?
        .query_row([id], Ticket::from_row)
        .optional()
}

/// Inserts a ticket and its `ticket:created` event in the caller's transaction.
pub fn insert(c: &Connection, t: &Ticket) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO tickets (id, title, price_cents, user_id, version, order_id, created_at, seller_name)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, unixepoch(), ?6)",
    )?
    .execute((&t.id, &t.title, t.price.cents(), &t.user_id, t.version, &t.seller_name))?;
    outbox::enqueue(
        c,
        &Envelope::new(
            crate::PRODUCER,
            Event::TicketCreated(TicketCreated {
                id: t.id.clone(),
                title: t.title.clone(),
                price_cents: t.price.money(),
                user_id: t.user_id.clone(),
                version: t.version,
            }),
        ),
    )
}

/// Writes a changed ticket (its version already bumped) and its `ticket:updated` event.
pub fn save(c: &Connection, t: &Ticket) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE tickets SET title = ?2, price_cents = ?3, version = ?4, order_id = ?5 WHERE id = ?1",
    )?
    .execute((&t.id, &t.title, t.price.cents(), t.version, &t.order_id))?;
    outbox::enqueue(c, &t.updated_event())
}

/// What `GET /api/tickets` filters on.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub include_reserved: bool,
    pub search: Option<String>,
    pub owner: Option<String>,
    /// Only tickets created before this one: the next page, whatever was put on sale since.
    pub before: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Tickets newest first (ids are time-ordered), so a ticket just put on sale is on the
/// first page however many there are; `before` pages on without skipping or repeating.
pub fn list(c: &Connection, f: &ListFilter) -> rusqlite::Result<Vec<Ticket>> {
    let pattern = f.search.as_ref().map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tickets
         WHERE (?1 OR order_id IS NULL)
           AND (?2 IS NULL OR title LIKE ?2 ESCAPE '\\')
           AND (?3 IS NULL OR user_id = ?3)
           AND (?6 IS NULL OR id < ?6)
         ORDER BY id DESC LIMIT ?4 OFFSET ?5"
    ))?;
    let rows = st.query_map(
        (
            f.include_reserved,
            pattern,
            &f.owner,
            f.limit,
            f.offset,
            &f.before,
        ),
        Ticket::from_row,
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_are_forgotten_by_age_and_old_ones_count_from_the_migration() {
        let mut c = Connection::open_in_memory().unwrap();
        // A database from before tombstones had an age: its tombstones count from the
        // migration, not from 1970.
        let before = MIGRATIONS
            .iter()
            .position(|m| *m == tix_common::inbox::PRUNE_SCHEMA)
            .unwrap();
        tix_common::db::migrate(&mut c, &MIGRATIONS[..before]).unwrap();
        c.execute("INSERT INTO cancelled_orders (order_id) VALUES ('old')", [])
            .unwrap();
        tix_common::db::migrate(&mut c, MIGRATIONS).unwrap();
        mark_cancelled(&c, "new").unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert_eq!(
            prune_cancelled(&c, now - 3600).unwrap(),
            0,
            "nothing is an hour old"
        );
        assert!(is_cancelled(&c, "old").unwrap() && is_cancelled(&c, "new").unwrap());
        c.execute(
            "UPDATE cancelled_orders SET at = at - 7200 WHERE order_id = 'old'",
            [],
        )
        .unwrap();
        assert_eq!(prune_cancelled(&c, now - 3600).unwrap(), 1);
        assert!(!is_cancelled(&c, "old").unwrap());
        assert!(is_cancelled(&c, "new").unwrap());
    }
}
