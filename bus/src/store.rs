//! `bus.db`: the durable event log, the queue groups' positions, and the dead letters.
//!
//! One writer thread owns the only write connection and commits whatever has queued up
//! since its last commit in a single transaction (group commit): a publisher is acked only
//! after the transaction holding its event is durable, yet one fsync serves thousands of
//! events. The broker core reads through a second connection (WAL lets reads run beside
//! the writer).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use tix_bus_client::protocol::{DeadLetter, WireEvent};

/// Result type of the store.
pub type Result<T> = std::result::Result<T, rusqlite::Error>;

/// An event as the log holds it.
#[derive(Debug)]
pub struct Event {
    pub seq: u64,
    pub id: Bytes,
    pub subject: Bytes,
    pub payload: Bytes,
    pub published_at_ms: i64,
}

impl Event {
    /// Approximate memory the event holds, for the size-bounded tail cache.
    pub fn weight(&self) -> usize {
        64 + self.id.len() + self.subject.len() + self.payload.len()
    }
}

/// How hard commits are pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// fsync on every commit: an acked event survives power loss.
    Full,
    /// fsync at WAL checkpoints: an acked event survives a crash of the broker process,
    /// not of the machine.
    Normal,
}

const MIGRATIONS: &[&str] = &[
    // 1: the log, groups, out-of-order acks and dead letters.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        payload BLOB NOT NULL,
        published_at INTEGER NOT NULL
     );
     CREATE TABLE groups (
        name TEXT PRIMARY KEY,
        subjects TEXT NOT NULL,
        ack_wait_ms INTEGER NOT NULL,
        max_in_flight INTEGER NOT NULL,
        max_deliveries INTEGER NOT NULL,
        ack_floor INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE acked (
        grp TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (grp, seq)
     ) WITHOUT ROWID;
     CREATE TABLE dead_letters (
        grp TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        payload BLOB NOT NULL,
        deliveries INTEGER NOT NULL,
        dead_at INTEGER NOT NULL,
        replaying INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (grp, seq)
     ) WITHOUT ROWID;",
];

/// Opens (creating if needed) `bus.db` with WAL and the schema migrated to the latest version.
pub fn open(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn text(b: &Bytes) -> &str {
    // The protocol layer only lets valid UTF-8 through; an empty string is a safe fallback.
    std::str::from_utf8(b).unwrap_or("")
}

/// A durable group as stored.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub name: String,
    pub subjects: Vec<String>,
    pub ack_wait_ms: u64,
    pub max_in_flight: u32,
    pub max_deliveries: u32,
    pub ack_floor: u64,
}

/// One change to the store. The core queues them; the writer commits them in batches.
#[derive(Debug)]
pub enum Write {
    /// Append events, skipping ids already in the log.
    Publish(Vec<WireEvent>),
    UpsertGroup(GroupRow),
    /// Everything of the group up to `floor` is done; drop the out-of-order acks below it.
    Floor {
        group: Arc<str>,
        floor: u64,
    },
    /// Acks above the floor, kept so a restart does not redeliver them.
    Acked {
        group: Arc<str>,
        seqs: Vec<u64>,
    },
    DeadLetter {
        group: Arc<str>,
        event: Arc<Event>,
        deliveries: u32,
    },
    /// A replayed dead letter was acked: it is gone for good.
    DeleteDeadLetter {
        group: Arc<str>,
        seq: u64,
    },
    /// Mark dead letters as being replayed (or dead again after failing once more).
    SetReplaying {
        group: Arc<str>,
        seqs: Vec<u64>,
        replaying: bool,
        deliveries: u32,
    },
    /// Delete events up to `upto` published before `before_ms`.
    Prune {
        upto: u64,
        before_ms: i64,
    },
}

/// A batch of writes plus what to do once they are durable. `T` is the core's reply token.
#[derive(Debug)]
pub struct Job<T> {
    pub writes: Vec<Write>,
    pub token: T,
}

/// What a job produced once committed.
#[derive(Debug)]
pub struct Done<T> {
    pub token: T,
    /// Outcome of the commit; on error nothing of the job was stored.
    pub result: std::result::Result<Effects, String>,
}

/// Effects of a committed job the core must know about.
#[derive(Debug, Default)]
pub struct Effects {
    /// Newly stored events, in log order (duplicates are not here).
    pub inserted: Vec<Arc<Event>>,
    /// Events pruned, per subject.
    pub pruned: Vec<(String, u64)>,
}

/// Runs the writer until `jobs` closes: commits everything queued in one transaction and
/// hands each job's result to `done`.
pub fn run_writer<T: Send + 'static>(
    conn: Connection,
    jobs: mpsc::Receiver<Job<T>>,
    done: impl Fn(Vec<Done<T>>) + Send + 'static,
    max_batch_writes: usize,
) {
    let mut conn = conn;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut size: usize = batch[0].writes.iter().map(write_weight).sum();
        while size < max_batch_writes {
            match jobs.try_recv() {
                Ok(job) => {
                    size += job.writes.iter().map(write_weight).sum::<usize>();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let results = commit_batch(&mut conn, &batch);
        let out = batch
            .into_iter()
            .zip(results)
            .map(|(job, result)| Done {
                token: job.token,
                result,
            })
            .collect();
        done(out);
    }
}

fn write_weight(w: &Write) -> usize {
    match w {
        Write::Publish(events) => events.len(),
        _ => 1,
    }
}

fn commit_batch<T>(
    conn: &mut Connection,
    batch: &[Job<T>],
) -> Vec<std::result::Result<Effects, String>> {
    let mut attempt = || -> Result<Vec<Effects>> {
        let tx = conn.transaction()?;
        let now = now_ms();
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (id, subject, payload, published_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for job in batch {
                let mut fx = Effects::default();
                for w in &job.writes {
                    apply(&tx, &mut insert, w, now, &mut fx)?;
                }
                out.push(fx);
            }
        }
        tx.commit()?;
        Ok(out)
    };
    match attempt() {
        Ok(fx) => fx.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::error!(error = %e, jobs = batch.len(), "bus.db commit failed; the batch is refused");
            batch.iter().map(|_| Err(e.to_string())).collect()
        }
    }
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    insert: &mut rusqlite::CachedStatement<'_>,
    w: &Write,
    now: i64,
    fx: &mut Effects,
) -> Result<()> {
    match w {
        Write::Publish(events) => {
            for e in events {
                let changed =
                    insert.execute(params![text(&e.id), text(&e.subject), &e.payload[..], now])?;
                if changed == 1 {
                    fx.inserted.push(Arc::new(Event {
                        seq: tx.last_insert_rowid() as u64,
                        id: e.id.clone(),
                        subject: e.subject.clone(),
                        payload: e.payload.clone(),
                        published_at_ms: now,
                    }));
                }
            }
        }
        Write::UpsertGroup(g) => {
            tx.prepare_cached(
                "INSERT INTO groups (name, subjects, ack_wait_ms, max_in_flight, max_deliveries, ack_floor, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET subjects = excluded.subjects,
                    ack_wait_ms = excluded.ack_wait_ms, max_in_flight = excluded.max_in_flight,
                    max_deliveries = excluded.max_deliveries",
            )?
            .execute(params![
                g.name,
                serde_json::to_string(&g.subjects).unwrap_or_default(),
                g.ack_wait_ms as i64,
                g.max_in_flight,
                g.max_deliveries,
                g.ack_floor as i64,
                now
            ])?;
        }
        Write::Floor { group, floor } => {
            tx.prepare_cached("UPDATE groups SET ack_floor = ?2 WHERE name = ?1")?
                .execute(params![&**group, *floor as i64])?;
            tx.prepare_cached("DELETE FROM acked WHERE grp = ?1 AND seq <= ?2")?
                .execute(params![&**group, *floor as i64])?;
        }
        Write::Acked { group, seqs } => {
            let mut st =
                tx.prepare_cached("INSERT OR IGNORE INTO acked (grp, seq) VALUES (?1, ?2)")?;
            for s in seqs {
                st.execute(params![&**group, *s as i64])?;
            }
        }
        Write::DeadLetter {
            group,
            event,
            deliveries,
        } => {
            tx.prepare_cached(
                "INSERT INTO dead_letters (grp, seq, event_id, subject, payload, deliveries, dead_at, replaying)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)
                 ON CONFLICT (grp, seq) DO UPDATE SET deliveries = excluded.deliveries,
                    dead_at = excluded.dead_at, replaying = 0",
            )?
            .execute(params![
                &**group,
                event.seq as i64,
                text(&event.id),
                text(&event.subject),
                &event.payload[..],
                deliveries,
                now
            ])?;
        }
        Write::DeleteDeadLetter { group, seq } => {
            tx.prepare_cached("DELETE FROM dead_letters WHERE grp = ?1 AND seq = ?2")?
                .execute(params![&**group, *seq as i64])?;
        }
        Write::SetReplaying {
            group,
            seqs,
            replaying,
            deliveries,
        } => {
            let mut st = tx.prepare_cached(
                "UPDATE dead_letters SET replaying = ?3, deliveries = ?4, dead_at = ?5 WHERE grp = ?1 AND seq = ?2",
            )?;
            for s in seqs {
                st.execute(params![
                    &**group,
                    *s as i64,
                    *replaying as i64,
                    deliveries,
                    now
                ])?;
            }
        }
        Write::Prune { upto, before_ms } => {
            let mut counts = tx.prepare_cached(
                "SELECT subject, count(*) FROM events WHERE seq <= ?1 AND published_at < ?2 GROUP BY subject",
            )?;
            let rows = counts.query_map(params![*upto as i64, before_ms], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            for row in rows {
                fx.pruned.push(row?);
            }
            tx.prepare_cached("DELETE FROM events WHERE seq <= ?1 AND published_at < ?2")?
                .execute(params![*upto as i64, before_ms])?;
        }
    }
    Ok(())
}

/// Read queries of the broker core.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

impl Reader {
    pub fn new(conn: Connection) -> Self {
        Self { conn }
    }

    pub fn groups(&self) -> Result<Vec<GroupRow>> {
        let mut st = self.conn.prepare(
            "SELECT name, subjects, ack_wait_ms, max_in_flight, max_deliveries, ack_floor FROM groups ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            let subjects: String = r.get(1)?;
            Ok(GroupRow {
                name: r.get(0)?,
                subjects: serde_json::from_str(&subjects).unwrap_or_default(),
                ack_wait_ms: r.get::<_, i64>(2)? as u64,
                max_in_flight: r.get(3)?,
                max_deliveries: r.get(4)?,
                ack_floor: r.get::<_, i64>(5)? as u64,
            })
        })?;
        rows.collect()
    }

    pub fn acked_above_floor(&self, group: &str) -> Result<BTreeSet<u64>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq FROM acked WHERE grp = ?1")?;
        let rows = st.query_map([group], |r| Ok(r.get::<_, i64>(0)? as u64))?;
        rows.collect()
    }

    /// The log position of the newest event ever stored (0 for an empty log).
    pub fn head(&self) -> Result<u64> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seq.unwrap_or(0) as u64)
    }

    pub fn subject_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self
            .conn
            .prepare("SELECT subject, count(*) FROM events GROUP BY subject")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        rows.collect()
    }

    /// Up to `limit` events (and about `max_bytes` of payload) after position `after`, in
    /// log order.
    pub fn events_after(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Arc<Event>>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, id, subject, payload, published_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after as i64, limit as i64], |r| {
            Ok(Arc::new(Event {
                seq: r.get::<_, i64>(0)? as u64,
                id: Bytes::from(r.get::<_, String>(1)?),
                subject: Bytes::from(r.get::<_, String>(2)?),
                payload: Bytes::from(r.get::<_, Vec<u8>>(3)?),
                published_at_ms: r.get(4)?,
            }))
        })?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for row in rows {
            let e = row?;
            bytes += e.payload.len();
            out.push(e);
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Events after `after` whose subject is one of `subjects` (all when `None`).
    pub fn count_after(&self, after: u64, subjects: Option<&[String]>) -> Result<u64> {
        let n: i64 = match subjects {
            None => self.conn.query_row(
                "SELECT count(*) FROM events WHERE seq > ?1",
                [after as i64],
                |r| r.get(0),
            )?,
            Some(list) => self.conn.query_row(
                "SELECT count(*) FROM events WHERE seq > ?1 AND subject IN (SELECT value FROM json_each(?2))",
                params![after as i64, serde_json::to_string(list).unwrap_or_default()],
                |r| r.get(0),
            )?,
        };
        Ok(n as u64)
    }

    pub fn dead_letters(
        &self,
        group: Option<&str>,
        limit: u32,
        only_dead: bool,
    ) -> Result<Vec<DeadLetter>> {
        let mut st = self.conn.prepare_cached(
            "SELECT grp, seq, event_id, subject, payload, deliveries, dead_at, replaying FROM dead_letters
             WHERE (?1 IS NULL OR grp = ?1) AND (?2 = 0 OR replaying = 0)
             ORDER BY grp, seq LIMIT ?3",
        )?;
        let rows = st.query_map(params![group, only_dead as i64, limit], |r| {
            Ok(DeadLetter {
                group: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                event_id: r.get(2)?,
                subject: r.get(3)?,
                payload: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(4)?).into_owned(),
                deliveries: r.get(5)?,
                dead_at_ms: r.get(6)?,
                replaying: r.get::<_, i64>(7)? != 0,
            })
        })?;
        rows.collect()
    }

    pub fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self
            .conn
            .prepare("SELECT grp, count(*) FROM dead_letters WHERE replaying = 0 GROUP BY grp")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        rows.collect()
    }

    /// A group's dead letters (not being replayed) as events, payloads byte for byte.
    pub fn dead_letter_events(&self, group: &str) -> Result<Vec<Arc<Event>>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, event_id, subject, payload FROM dead_letters
             WHERE grp = ?1 AND replaying = 0 ORDER BY seq",
        )?;
        let rows = st.query_map([group], |r| {
            Ok(Arc::new(Event {
                seq: r.get::<_, i64>(0)? as u64,
                id: Bytes::from(r.get::<_, String>(1)?),
                subject: Bytes::from(r.get::<_, String>(2)?),
                payload: Bytes::from(r.get::<_, Vec<u8>>(3)?),
                published_at_ms: 0,
            }))
        })?;
        rows.collect()
    }

    /// Dead letters being replayed, to resume their delivery after a restart.
    pub fn replaying(&self) -> Result<Vec<(String, Arc<Event>)>> {
        let mut st = self.conn.prepare(
            "SELECT grp, seq, event_id, subject, payload FROM dead_letters WHERE replaying = 1 ORDER BY grp, seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Arc::new(Event {
                    seq: r.get::<_, i64>(1)? as u64,
                    id: Bytes::from(r.get::<_, String>(2)?),
                    subject: Bytes::from(r.get::<_, String>(3)?),
                    payload: Bytes::from(r.get::<_, Vec<u8>>(4)?),
                    published_at_ms: 0,
                }),
            ))
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, subject: &str) -> WireEvent {
        WireEvent {
            id: Bytes::from(id.to_string()),
            subject: Bytes::from(subject.to_string()),
            payload: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn a_duplicate_id_is_stored_once_and_positions_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        let mut conn = open(&path, Durability::Full).unwrap();
        let job = |w| Job {
            writes: vec![Write::Publish(w)],
            token: (),
        };
        let r = commit_batch(
            &mut conn,
            &[job(vec![ev("a", "s"), ev("b", "s"), ev("a", "s")])],
        );
        let inserted = &r[0].as_ref().unwrap().inserted;
        assert_eq!(
            inserted.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // Prune everything, then publish again: positions continue, never restart at 1.
        commit_batch(
            &mut conn,
            &[Job {
                writes: vec![Write::Prune {
                    upto: 2,
                    before_ms: i64::MAX,
                }],
                token: (),
            }],
        );
        // Positions only grow; a skipped duplicate may leave a gap, which readers tolerate.
        let r = commit_batch(&mut conn, &[job(vec![ev("c", "s")])]);
        let seq = r[0].as_ref().unwrap().inserted[0].seq;
        assert!(seq > 2, "{seq}");
        let reader = Reader::new(open(&path, Durability::Full).unwrap());
        assert_eq!(reader.head().unwrap(), seq);
        assert_eq!(reader.events_after(0, 10, 1 << 20).unwrap().len(), 1);
    }
}
