//! Which commits of a write connection are fsynced, switched batch by batch.
//!
//! A database opened with `synchronous=FULL` may commit a batch that nobody's answer
//! depends on with `NORMAL` (no fsync): the WAL is one file written in order, so the next
//! synced commit makes the unsynced ones before it durable too, and whatever survives a
//! power cut is a prefix of the commits. A process crash loses nothing SQLite committed.
//! A database opened with `NORMAL` never syncs a commit, and nothing here changes that.

use rusqlite::Connection;

/// The sync state of one writer's connection.
#[derive(Debug)]
pub struct CommitSync {
    /// Opened with `FULL`: commits are synced unless a batch says it need not be.
    full: bool,
    /// What SQLite last reported for the connection.
    syncing: bool,
}

impl CommitSync {
    /// The state of `conn` as opened.
    pub fn of(conn: &Connection) -> CommitSync {
        let full = syncs(conn);
        CommitSync {
            full,
            syncing: full,
        }
    }

    /// Sets up the next commit, between transactions: synced when `needed` and the
    /// database syncs at all. `false` when a sync was needed and SQLite does not report one
    /// (the switch failed, and is logged): the caller must not commit what it promised.
    pub fn prepare(&mut self, conn: &Connection, needed: bool) -> bool {
        let sync = self.full && needed;
        if sync != self.syncing {
            let wanted = if sync { "FULL" } else { "NORMAL" };
            if let Err(e) = conn.pragma_update(None, "synchronous", wanted) {
                tracing::error!(error = %e, wanted, "could not change the synchronous setting");
            }
            // Read back, so that what is reported (and refused) is what SQLite will do.
            self.syncing = syncs(conn);
        }
        !sync || self.syncing
    }

    /// Whether the database syncs commits at all (opened with `FULL`).
    pub fn full(&self) -> bool {
        self.full
    }

    /// The commit just prepared will not be synced, though the database syncs commits.
    pub fn skipped(&self) -> bool {
        self.full && !self.syncing
    }

    /// For a writer that stops: if its last commits were not synced, a checkpoint syncs the
    /// WAL first.
    pub fn finish(&self, conn: &Connection) {
        if self.skipped() {
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
        }
    }
}

/// Whether `conn` fsyncs each commit (`synchronous` is `FULL` or `EXTRA`).
fn syncs(conn: &Connection) -> bool {
    conn.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0))
        .is_ok_and(|level| level >= 2)
}
