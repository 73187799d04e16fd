//! The transactional outbox: a handler writes its state change and the events describing it
//! in one transaction ([`enqueue`]); the relay publishes them to the bus and deletes them once
//! the broker has acked (the ack means the event is durable in `bus.db`). While the broker is
//! down, events wait in the table and the relay retries with backoff; requests keep working.
//!
//! An event the bus refuses for good (larger than the broker takes: see
//! [`tix_bus_client::Error::is_permanent`]) would block every event behind it forever; the
//! relay moves it to `outbox_dead` ([`OUTBOX_DEAD_SCHEMA`]) with the error, logs it, and goes
//! on. docs/operations.md shows how to look at such rows and queue them again.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::Connection;
use tix_api::events::Envelope;
use tix_bus_client::Client;

use crate::db::{Db, DbError, Topic};
use crate::health::Part;

/// Events the bus refused for good, out of the way of the others: each row is the outbox
/// row as it was (`seq` its number there, which a later event may have too since
/// [`OUTBOX_REBUILD`]), the bus's answer and when it was moved.
/// Append it to a service's migrations (after [`crate::db::EVENTS_SCHEMA`]).
pub const OUTBOX_DEAD_SCHEMA: &str = "
    CREATE TABLE outbox_dead (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        subject TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        error TEXT NOT NULL,
        dead_at INTEGER NOT NULL
    );";

/// The outbox rebuilt without what each enqueue paid for and nothing used: `AUTOINCREMENT`
/// (a write to `sqlite_sequence`, one more page per commit) and a unique index on `id`
/// (another page per insert and per delete; ids are fresh UUIDv7s, and the bus and the
/// consumers deduplicate on them anyway). Sequence numbers may now be used again once the
/// rows holding them are gone, so `outbox_dead` keeps `seq` as a plain column.
/// Append it to a service's migrations (after [`OUTBOX_DEAD_SCHEMA`]).
pub const OUTBOX_REBUILD: &str = "
    CREATE TABLE outbox_new (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        subject TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    INSERT INTO outbox_new (seq, id, subject, payload, created_at)
        SELECT seq, id, subject, payload, created_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_new RENAME TO outbox;
    CREATE TABLE outbox_dead_new (
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        subject TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        error TEXT NOT NULL,
        dead_at INTEGER NOT NULL
    );
    INSERT INTO outbox_dead_new SELECT seq, id, subject, payload, created_at, error, dead_at
        FROM outbox_dead;
    DROP TABLE outbox_dead;
    ALTER TABLE outbox_dead_new RENAME TO outbox_dead;";

/// Records an event to publish once the surrounding transaction commits. An event without
/// a correlation id gets the one of the work enqueueing it ([`crate::correlation`]).
pub fn enqueue(conn: &Connection, env: &Envelope) -> rusqlite::Result<()> {
    let work = crate::correlation::current();
    let correlation = env
        .correlation_id
        .as_deref()
        .or_else(|| work.as_ref().and_then(|id| id.to_str().ok()));
    // The line that ties an event to the request that caused it, in the producer's log.
    tracing::info!(
        subject = %env.subject(),
        event = %env.id,
        correlation_id = correlation.unwrap_or("-"),
        "recorded an event"
    );
    conn.prepare_cached(
        "INSERT INTO outbox (id, subject, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute((
        &env.id,
        env.subject().as_str(),
        env.to_json_correlated(correlation),
        env.occurred_at.unix_timestamp(),
    ))?;
    crate::db::touched(Topic::OUTBOX);
    Ok(())
}

/// Events still waiting to be published.
pub async fn pending(db: &Db) -> Result<u64, DbError> {
    db.read_blocking(|c| {
        c.query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(DbError::from)
    })
    .await
}

struct Row {
    seq: i64,
    id: String,
    subject: String,
    payload: Vec<u8>,
}

const BATCH: usize = 512;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// `LIMIT +?1`, not `LIMIT ?1`: SQLite plans with the value of a bare parameter in LIMIT,
/// so binding it (every run) expires the cached statement and every read would parse and
/// plan the query again (docs/benchmarks.md, "SQLite's own build"). The unary plus makes
/// it an expression the planner leaves alone, SQLite's own idiom for that.
const WAITING: &str = "SELECT seq, id, subject, payload FROM outbox ORDER BY seq LIMIT +?1";

/// The oldest events waiting to be published, up to a batch.
fn waiting(c: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut st = c.prepare_cached(WAITING)?;
    let rows = st.query_map([BATCH as i64], |r| {
        Ok(Row {
            seq: r.get(0)?,
            id: r.get(1)?,
            subject: r.get(2)?,
            payload: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Publishes the outbox forever: woken by every commit that added to it, and every second
/// regardless. Reports to `health` while publishing fails.
pub async fn run_relay(db: Db, bus: Client, health: Part) {
    let mut changes = db.changes(Topic::OUTBOX);
    let mut retry = Retry::new(health);
    loop {
        // Mark every change so far as seen before reading: one landing after this read
        // wakes the wait below.
        changes.borrow_and_update();
        let rows = match db.read(|c| waiting(c).map_err(DbError::from)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                let pause = retry.failed(format!("reading the outbox failed: {e}"));
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if rows.is_empty() {
            retry.succeeded();
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // Publish the batch pipelined; the broker stores them in this order.
        let results = futures::future::join_all(rows.iter().map(|r| {
            bus.publish(
                Bytes::from(r.id.clone()),
                Bytes::from(r.subject.clone()),
                Bytes::from(r.payload.clone()),
            )
        }))
        .await;
        // The settled prefix: acked rows, and rows refused for good (moved to
        // outbox_dead). It ends at the first error that may pass; from there on the rows
        // are retried (a retry of an event the broker did store is acked without being
        // stored twice: publishes are idempotent on the id).
        let mut dead = Vec::new();
        let mut settled = 0;
        for (row, result) in rows.iter().zip(&results) {
            match result {
                Ok(()) => {}
                Err(e) if e.is_permanent() => dead.push(Dead {
                    seq: row.seq,
                    id: row.id.clone(),
                    subject: row.subject.clone(),
                    error: e.to_string(),
                }),
                Err(_) => break,
            }
            settled += 1;
        }
        let mut stuck: Option<String> = None;
        if settled > 0 {
            let upto = rows[settled - 1].seq;
            match db
                // Unsynced: rows that come back after a power cut are published again, and
                // the bus stores an event id once.
                .write_unsynced(move |c| -> Result<Settled, DbError> {
                    settle(c, upto, dead.clone())
                })
                .await
            {
                Ok(s) => {
                    crate::metrics::get()
                        .outbox_published
                        .inc_by(settled.saturating_sub(s.moved.len()) as u64);
                    for d in &s.moved {
                        tracing::error!(
                            id = %d.id, subject = %d.subject, error = %d.error,
                            "the bus refuses this event for good; moved it to outbox_dead"
                        );
                    }
                    stuck = s.stuck;
                }
                Err(e) => {
                    tracing::error!(error = %e, "clearing the outbox failed");
                    stuck = Some(format!("clearing the outbox failed: {e}"));
                }
            }
        }
        if stuck.is_none()
            && let Some(Err(e)) = results.get(settled)
        {
            tracing::warn!(
                waiting = rows.len() - settled,
                error = %e,
                retry_in = ?retry.backoff,
                "the bus did not take every event; retrying"
            );
            stuck = Some(format!("publishing failed: {e}"));
        }
        match stuck {
            Some(why) => {
                let pause = retry.failed(why);
                tokio::time::sleep(pause).await;
            }
            None => retry.succeeded(),
        }
    }
}

/// The relay's backoff, and what it tells its health check.
#[derive(Debug)]
struct Retry {
    health: Part,
    since: Option<Instant>,
    backoff: Duration,
}

impl Retry {
    fn new(health: Part) -> Retry {
        Retry {
            health,
            since: None,
            backoff: FIRST_BACKOFF,
        }
    }

    /// How long to pause before trying again.
    fn failed(&mut self, why: String) -> Duration {
        let since = *self.since.get_or_insert_with(Instant::now);
        self.health.failing_since(since, why);
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        pause
    }

    fn succeeded(&mut self) {
        self.since = None;
        self.backoff = FIRST_BACKOFF;
        self.health.ok();
    }
}

/// An outbox row the bus refused for good.
#[derive(Debug, Clone)]
struct Dead {
    seq: i64,
    id: String,
    subject: String,
    error: String,
}

#[derive(Debug)]
struct Settled {
    /// The rows now in `outbox_dead`.
    moved: Vec<Dead>,
    /// Why rows that should have left the outbox are still in it.
    stuck: Option<String>,
}

/// Deletes the outbox up to `upto`, moving the `dead` rows to `outbox_dead` first. A row
/// that cannot be moved (a database without the table) stays, with every row after it.
fn settle(c: &Connection, upto: i64, dead: Vec<Dead>) -> Result<Settled, DbError> {
    let mut upto = upto;
    let mut stuck = None;
    let mut moved = Vec::with_capacity(dead.len());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for d in dead {
        let inserted = c
            .prepare_cached(
                "INSERT INTO outbox_dead (seq, id, subject, payload, created_at, error, dead_at)
                 SELECT seq, id, subject, payload, created_at, ?2, ?3 FROM outbox WHERE seq = ?1",
            )
            .and_then(|mut st| st.execute((d.seq, &d.error, now)));
        match inserted {
            Ok(_) => moved.push(d),
            Err(e) => {
                tracing::error!(
                    id = %d.id, subject = %d.subject, error = %d.error, cause = %e,
                    "the bus refuses this event for good, and moving it to outbox_dead failed; it stays in the outbox"
                );
                stuck = Some(format!(
                    "event {} is refused by the bus ({}) and cannot be moved to outbox_dead: {e}",
                    d.id, d.error
                ));
                upto = d.seq - 1;
                break;
            }
        }
    }
    c.prepare_cached("DELETE FROM outbox WHERE seq <= ?1")?
        .execute([upto])?;
    Ok(Settled { moved, stuck })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus::RePrepare;

    /// The relay waits on the outbox's topic: a commit that enqueued an event wakes it.
    #[tokio::test]
    async fn an_enqueued_event_wakes_the_relay() {
        use tix_api::events::{Event, ExpirationComplete};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &dir.path().join("o.db"),
            crate::db::Durability::Normal,
            &[crate::db::EVENTS_SCHEMA],
        )
        .unwrap();
        let mut changes = db.changes(Topic::OUTBOX);
        db.write(|c| -> Result<(), DbError> {
            let env = Envelope::new(
                "expiration",
                Event::ExpirationComplete(ExpirationComplete {
                    order_id: "o-1".into(),
                }),
            );
            Ok(enqueue(c, &env)?)
        })
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("the relay is woken")
            .unwrap();
    }

    /// The relay reads the outbox after every commit that added to it: its query must come
    /// from the statement cache as it is, not be parsed again each time.
    #[test]
    fn reading_the_outbox_again_does_not_prepare_its_query_again() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::db::EVENTS_SCHEMA).unwrap();
        c.execute(
            "INSERT INTO outbox (id, subject, payload, created_at) VALUES ('e1', 's', x'00', 1)",
            [],
        )
        .unwrap();
        for _ in 0..3 {
            assert_eq!(waiting(&c).unwrap().len(), 1);
        }
        assert_eq!(c.prepare_cached(WAITING).unwrap().get_status(RePrepare), 0);

        // What the unary plus avoids: the same query with a bare parameter.
        let bare = WAITING.replace("+?1", "?1");
        for _ in 0..3 {
            let mut st = c.prepare_cached(&bare).unwrap();
            st.query_map([BATCH as i64], |r| r.get::<_, i64>(0))
                .unwrap()
                .for_each(drop);
        }
        assert_eq!(c.prepare_cached(&bare).unwrap().get_status(RePrepare), 3);
    }

    const MIGRATIONS: [&str; 3] = [crate::db::EVENTS_SCHEMA, OUTBOX_DEAD_SCHEMA, OUTBOX_REBUILD];

    fn insert(c: &Connection, id: &str) {
        c.execute(
            "INSERT INTO outbox (id, subject, payload, created_at) VALUES (?1, 's', x'00', 1)",
            [id],
        )
        .unwrap();
    }

    /// A service upgraded with events still waiting, and some dead: they are all kept.
    #[test]
    fn the_rebuild_keeps_what_was_waiting_and_what_was_dead() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut c, &MIGRATIONS[..2]).unwrap();
        insert(&c, "e1");
        insert(&c, "e2");
        c.execute(
            "INSERT INTO outbox_dead (seq, id, subject, payload, created_at, error, dead_at)
             VALUES (7, 'd7', 's', x'00', 1, 'too large', 2)",
            [],
        )
        .unwrap();
        crate::db::migrate(&mut c, &MIGRATIONS).unwrap();
        let ids: Vec<(i64, String)> = waiting(&c)
            .unwrap()
            .into_iter()
            .map(|r| (r.seq, r.id))
            .collect();
        assert_eq!(ids, [(1, "e1".to_string()), (2, "e2".to_string())]);
        let dead: (i64, String, String) = c
            .query_row("SELECT seq, id, error FROM outbox_dead", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(dead, (7, "d7".into(), "too large".into()));
        insert(&c, "e3");
        assert_eq!(waiting(&c).unwrap()[2].seq, 3);
    }

    /// Without AUTOINCREMENT a sequence number comes back once the outbox has emptied: an
    /// event refused for good at a number an earlier dead one had is still moved aside,
    /// not left blocking the outbox.
    #[test]
    fn an_event_refused_at_a_number_used_before_is_still_moved() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut c, &MIGRATIONS).unwrap();
        for id in ["big-1", "big-2"] {
            insert(&c, id);
            let row = waiting(&c).unwrap().remove(0);
            assert_eq!(row.seq, 1, "the emptied outbox starts again at 1");
            let dead = vec![Dead {
                seq: row.seq,
                id: row.id,
                subject: row.subject,
                error: "too large".into(),
            }];
            let s = settle(&c, row.seq, dead).unwrap();
            assert_eq!((s.moved.len(), s.stuck), (1, None));
        }
        assert!(waiting(&c).unwrap().is_empty());
        let n: i64 = c
            .query_row("SELECT count(*) FROM outbox_dead WHERE seq = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 2);
    }

    /// What an event costs the commit that enqueues it, and the one that clears it: one
    /// page each (the outbox's own), where AUTOINCREMENT and the index on `id` made it three
    /// and two. Counted as WAL frames, one per page a commit writes.
    #[test]
    fn an_event_costs_one_page_to_enqueue_and_one_to_clear() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("o.db")).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        crate::db::migrate(&mut c, &MIGRATIONS).unwrap();
        insert(&c, "warm-up");
        settle(&c, 1, Vec::new()).unwrap();
        // The frames in the log since the last call, which empties it.
        let frames = |c: &Connection| -> i64 {
            let log: i64 = c
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                .unwrap();
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
            log
        };
        frames(&c);
        insert(&c, "e1");
        assert_eq!(frames(&c), 1, "enqueue");
        settle(&c, waiting(&c).unwrap()[0].seq, Vec::new()).unwrap();
        assert_eq!(frames(&c), 1, "clear");
    }
}
