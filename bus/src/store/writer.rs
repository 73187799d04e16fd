//! The writer thread: the only write connection to `bus.db`, committing whatever queued
//! up since its last commit in one transaction (group commit).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use tix_files::sync::CommitSync;

use super::{Event, Result, Write, now_ms, text};

/// A batch of writes plus what to do once they are durable. `T` is the core's reply token.
#[derive(Debug)]
pub struct Job<T> {
    pub writes: Vec<Write>,
    pub token: T,
    /// Whether its commit must be fsynced (with `--durability full`): see [`Job::new`].
    pub sync: bool,
}

impl<T> Job<T> {
    /// `answered`: someone is told once the job is committed (a `PUBACK`, an `OK`), and
    /// so may count on it surviving a power cut. A job nobody hears of needs a sync only
    /// for what it writes ([`needs_sync`]).
    pub fn new(writes: Vec<Write>, token: T, answered: bool) -> Job<T> {
        let sync = answered || writes.iter().any(needs_sync);
        Job {
            writes,
            token,
            sync,
        }
    }
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
    /// A [`Write::Rewind`]'s outcome.
    pub rewound: Option<Rewind>,
    /// Dead letters a [`Write::DiscardDeadLetters`] deleted.
    pub discarded: u64,
}

/// Where a rewound group starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    /// The first position it gets again.
    pub from: u64,
    /// Events stored after the time asked may have been pruned before `from`.
    pub pruned: bool,
}

/// How long one group commit took, for the broker's metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitTimes {
    /// The whole transaction: BEGIN, every statement of the batch, COMMIT.
    pub total: Duration,
    /// The COMMIT alone: SQLite appends the WAL frames and, with `synchronous=FULL`,
    /// fsyncs the WAL. SQLite gives no hook around the fsync itself, so this is as close
    /// to it as the writer can time.
    pub commit: Duration,
    /// No job of the batch needed a sync, so its commit did not sync the WAL whatever the
    /// broker's durability (as SQLite reported the setting back).
    pub unsynced: bool,
}

/// Whether a write must reach the disk with its commit, even when nobody waits for it.
///
/// Acknowledgements need not (docs/bus.md, "Guarantees"): losing the last ones to a power
/// cut only means those events are delivered again, which consumers absorb (their inbox),
/// and the next synced commit makes them durable too.
pub fn needs_sync(w: &Write) -> bool {
    !matches!(
        w,
        Write::Floor { .. }
            | Write::Acked { .. }
            | Write::DeleteDeadLetter { .. }
            | Write::Prune { .. }
    )
}

/// Runs the writer until `jobs` closes: commits everything queued in one transaction and
/// hands each job's result, with the commit's timings, to `done`.
pub fn run_writer<T: Send + 'static>(
    conn: Connection,
    jobs: mpsc::Receiver<Job<T>>,
    mut done: impl FnMut(Vec<Done<T>>, CommitTimes) + Send + 'static,
    max_batch_writes: usize,
) {
    // `FULL` unless the broker runs with `--durability normal`, which never syncs a commit.
    let mut sync = CommitSync::of(&conn);
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
        let (results, mut times) = if !sync.prepare(&conn, batch.iter().any(|job| job.sync)) {
            // Never answer for a write that was not synced as promised.
            let refused = "bus.db could not be set to sync this commit".to_string();
            let results = batch.iter().map(|_| Err(refused.clone())).collect();
            (results, CommitTimes::default())
        } else {
            commit_batch_timed(&conn, &batch)
        };
        times.unsynced = sync.skipped();
        let out = batch
            .into_iter()
            .zip(results)
            .map(|(job, result)| Done {
                token: job.token,
                result,
            })
            .collect();
        done(out, times);
    }
    // At a stop the last commits (floors and held-back acks) may not have been synced.
    sync.finish(&conn);
}

fn write_weight(w: &Write) -> usize {
    match w {
        Write::Publish(events) => events.len(),
        _ => 1,
    }
}

#[cfg(test)]
pub(super) fn commit_batch<T>(
    conn: &Connection,
    batch: &[Job<T>],
) -> Vec<std::result::Result<Effects, String>> {
    commit_batch_timed(conn, batch).0
}

fn commit_batch_timed<T>(
    conn: &Connection,
    batch: &[Job<T>],
) -> (Vec<std::result::Result<Effects, String>>, CommitTimes) {
    let started = Instant::now();
    let mut commit = Duration::ZERO;
    let mut attempt = || -> Result<Vec<Effects>> {
        // BEGIN and COMMIT from the statement cache: `Connection::transaction` parses both
        // again for every batch.
        conn.prepare_cached("BEGIN")?.execute([])?;
        let now = now_ms();
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut insert = conn.prepare_cached(
                "INSERT OR IGNORE INTO events (id, subject, payload, published_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for job in batch {
                let mut fx = Effects::default();
                for w in &job.writes {
                    apply(conn, &mut insert, w, now, &mut fx)?;
                }
                out.push(fx);
            }
        }
        let committing = Instant::now();
        conn.prepare_cached("COMMIT")?.execute([])?;
        commit = committing.elapsed();
        Ok(out)
    };
    let attempted = attempt();
    if attempted.is_err() && !conn.is_autocommit() {
        // What dropping a failed `Transaction` did: nothing of the batch stays.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let results = match attempted {
        Ok(fx) => fx.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::error!(error = %e, jobs = batch.len(), "bus.db commit failed; the batch is refused");
            batch.iter().map(|_| Err(e.to_string())).collect()
        }
    };
    let total = started.elapsed();
    (
        results,
        CommitTimes {
            total,
            commit,
            unsynced: false,
        },
    )
}

fn apply(
    tx: &Connection,
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
                    // Copied out of the receive buffer: see `Event`.
                    fx.inserted.push(Arc::new(Event::new(
                        tx.last_insert_rowid() as u64,
                        &e.id,
                        &e.subject,
                        &e.payload,
                        now,
                    )));
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
        Write::DropGroup { group } => {
            for sql in [
                "DELETE FROM groups WHERE name = ?1",
                "DELETE FROM acked WHERE grp = ?1",
                "DELETE FROM dead_letters WHERE grp = ?1",
            ] {
                tx.prepare_cached(sql)?.execute(params![&**group])?;
            }
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
                text(event.id()),
                text(event.subject()),
                event.payload(),
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
        Write::Rewind {
            group,
            since_ms,
            pruned_before_ms,
        } => {
            let (from, pruned) = first_since(tx, *since_ms, *pruned_before_ms)?;
            // Positions below `from` stay as they were: done, or still owed to the group.
            tx.prepare_cached("UPDATE groups SET ack_floor = min(ack_floor, ?2) WHERE name = ?1")?
                .execute(params![&**group, (from - 1) as i64])?;
            tx.prepare_cached("DELETE FROM acked WHERE grp = ?1 AND seq >= ?2")?
                .execute(params![&**group, from as i64])?;
            fx.rewound = Some(Rewind { from, pruned });
        }
        Write::DiscardDeadLetters { group, seqs, keep } => {
            // One statement whatever the lists' lengths: they go in as JSON arrays.
            let keep = serde_json::to_string(keep).unwrap_or_default();
            let gone = match seqs {
                Some(seqs) => tx
                    .prepare_cached(
                        "DELETE FROM dead_letters WHERE grp = ?1 AND replaying = 0
                           AND seq IN (SELECT value FROM json_each(?2))
                           AND seq NOT IN (SELECT value FROM json_each(?3))",
                    )?
                    .execute(params![
                        &**group,
                        serde_json::to_string(seqs).unwrap_or_default(),
                        keep
                    ])?,
                None => tx
                    .prepare_cached(
                        "DELETE FROM dead_letters WHERE grp = ?1 AND replaying = 0
                           AND seq NOT IN (SELECT value FROM json_each(?2))",
                    )?
                    .execute(params![&**group, keep])?,
            };
            fx.discarded = gone as u64;
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

/// The first position stored at or after `since_ms` (one past the newest when there is
/// none), and whether events stored since then may have been pruned before it: only
/// events stored before `pruned_before_ms` (now less the retention) ever are, and only
/// those no later than the oldest left. Positions
/// and their times rise together, so a binary search over positions finds it in a few
/// dozen point reads, where a scan for the time would read the whole log.
pub(super) fn first_since(
    tx: &Connection,
    since_ms: i64,
    pruned_before_ms: i64,
) -> Result<(u64, bool)> {
    let prunable = since_ms < pruned_before_ms;
    // The event at `seq` or the first after it (positions have holes once pruned).
    let at = |seq: i64| -> Result<Option<(i64, i64)>> {
        tx.prepare_cached(
            "SELECT seq, published_at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1",
        )?
        .query_row(params![seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
    };
    let head: i64 = tx
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))?;
    let Some((oldest, oldest_at)) = at(0)? else {
        // An empty log: everything from now on is new anyway.
        let next: i64 = tx
            .prepare_cached(
                "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            )?
            .query_row([], |r| r.get(0))?;
        return Ok((next as u64 + 1, prunable && next > 0));
    };
    if oldest_at >= since_ms {
        // Older events were pruned; those were stored no later than the oldest left, so
        // some may have been stored since the time asked only when the oldest left was.
        return Ok((oldest as u64, prunable && oldest > 1));
    }
    // published_at(lo) < since_ms; the answer is in (lo, hi].
    let (mut lo, mut hi) = (oldest, head + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match at(mid)? {
            Some((seq, t)) if t < since_ms => lo = seq.max(mid),
            Some(_) | None => hi = mid,
        }
    }
    let from = at(hi)?.map_or(head + 1, |(seq, _)| seq);
    Ok((from as u64, false))
}
