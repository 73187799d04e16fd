//! The core's read connection: what the log, the groups and the dead letters hold.

use std::collections::BTreeSet;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use tix_bus_client::protocol::DeadLetter;

use super::{Event, GroupRow, Result};

/// Read queries of the broker core.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

/// `LIMIT +?2`: SQLite plans with a bare LIMIT parameter's value, so binding it would
/// have the cached statement parsed and planned again on every read.
const EVENTS_AFTER: &str = "SELECT seq, id, subject, payload, published_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT +?2";

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
        let mut st = self.conn.prepare_cached(EVENTS_AFTER)?;
        let rows = st.query_map(params![after as i64, limit as i64], |r| {
            Ok(Arc::new(Event::new(
                r.get::<_, i64>(0)? as u64,
                r.get_ref(1)?.as_bytes()?,
                r.get_ref(2)?.as_bytes()?,
                r.get_ref(3)?.as_bytes()?,
                r.get(4)?,
            )))
        })?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for row in rows {
            let e = row?;
            bytes += e.payload().len();
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

    /// Dead letters in group and log order: at most `limit`, and no more once their
    /// payloads add up to `max_bytes` (a payload may be up to the event limit).
    pub fn dead_letters(
        &self,
        group: Option<&str>,
        limit: u32,
        max_bytes: usize,
        only_dead: bool,
    ) -> Result<Vec<DeadLetter>> {
        let mut st = self.conn.prepare_cached(
            "SELECT grp, seq, event_id, subject, payload, deliveries, dead_at, replaying FROM dead_letters
             WHERE (?1 IS NULL OR grp = ?1) AND (?2 = 0 OR replaying = 0)
             ORDER BY grp, seq LIMIT +?3",
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
        let mut out = Vec::new();
        let mut bytes = 0;
        for row in rows {
            let d = row?;
            bytes += d.payload.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(d);
        }
        Ok(out)
    }

    pub fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut st = self
            .conn
            .prepare("SELECT grp, count(*) FROM dead_letters WHERE replaying = 0 GROUP BY grp")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        rows.collect()
    }

    /// A group's dead letters (not being replayed) as events, payloads byte for byte.
    /// At most `limit` of them, oldest first; only the positions in `seqs` when given.
    pub fn dead_letter_events(
        &self,
        group: &str,
        seqs: Option<&[u64]>,
        limit: usize,
    ) -> Result<Vec<Arc<Event>>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, event_id, subject, payload FROM dead_letters
             WHERE grp = ?1 AND replaying = 0
               AND (?2 IS NULL OR seq IN (SELECT value FROM json_each(?2)))
             ORDER BY seq LIMIT +?3",
        )?;
        let only = seqs.map(|s| serde_json::to_string(s).unwrap_or_default());
        let rows = st.query_map(params![group, only, limit as i64], |r| {
            Ok(Arc::new(Event::new(
                r.get::<_, i64>(0)? as u64,
                r.get_ref(1)?.as_bytes()?,
                r.get_ref(2)?.as_bytes()?,
                r.get_ref(3)?.as_bytes()?,
                0,
            )))
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
                Arc::new(Event::new(
                    r.get::<_, i64>(1)? as u64,
                    r.get_ref(2)?.as_bytes()?,
                    r.get_ref(3)?.as_bytes()?,
                    r.get_ref(4)?.as_bytes()?,
                    0,
                )),
            ))
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker reads the log back again and again (a consumer behind the cache): the
    /// query comes from the statement cache as it is.
    #[test]
    fn reading_the_log_again_does_not_prepare_the_query_again() {
        let dir = tempfile::tempdir().unwrap();
        let reader = Reader::new(
            super::super::open(&dir.path().join("bus.db"), super::super::Durability::Normal)
                .unwrap(),
        );
        for after in [0, 5, 9] {
            assert!(reader.events_after(after, 100, 1 << 20).unwrap().is_empty());
        }
        let st = reader.conn.prepare_cached(EVENTS_AFTER).unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
