//! `bus.db`: the durable event log, the queue groups' positions, and the dead letters.
//!
//! One writer thread owns the only write connection and commits whatever has queued up
//! since its last commit in a single transaction (group commit): a publisher is acked only
//! after the transaction holding its event is durable, yet one fsync serves thousands of
//! events. The broker core reads through a second connection (WAL lets reads run beside
//! the writer).

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::Connection;

use tix_bus_client::protocol::WireEvent;
use tix_files as files;

mod reader;
mod writer;

pub use reader::Reader;
pub use writer::{CommitTimes, Done, Effects, Job, Rewind, needs_sync, run_writer};

/// Result type of the store.
pub type Result<T> = std::result::Result<T, rusqlite::Error>;

/// An event as the log holds it: its id, subject and payload one after the other in one
/// buffer of its own.
///
/// What a peer sent arrives as slices of the connection's receive buffer (4 KiB to 1 MiB,
/// shared by every frame read with it); an event kept in the cache or held by a group would
/// keep that whole buffer alive. [`Event::new`] copies, so an event's memory is what its
/// [`Event::weight`] says and the cache's byte budget bounds the broker's memory
/// (docs/bus.md, "Limits").
#[derive(Debug)]
pub struct Event {
    pub seq: u64,
    pub published_at_ms: i64,
    bytes: Bytes,
    id_end: u32,
    subject_end: u32,
}

impl Event {
    pub fn new(seq: u64, id: &[u8], subject: &[u8], payload: &[u8], published_at_ms: i64) -> Self {
        let mut buf = Vec::with_capacity(id.len() + subject.len() + payload.len());
        buf.extend_from_slice(id);
        buf.extend_from_slice(subject);
        buf.extend_from_slice(payload);
        // Ids and subjects are at most 200 bytes (MAX_NAME_LEN) each.
        let id_end = u32::try_from(id.len()).unwrap_or(u32::MAX);
        let subject_end = u32::try_from(id.len() + subject.len()).unwrap_or(u32::MAX);
        Event {
            seq,
            published_at_ms,
            bytes: Bytes::from(buf),
            id_end,
            subject_end,
        }
    }

    pub fn id(&self) -> &[u8] {
        &self.bytes[..self.id_end as usize]
    }

    pub fn subject(&self) -> &[u8] {
        &self.bytes[self.id_end as usize..self.subject_end as usize]
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.subject_end as usize..]
    }

    /// The id, subject and payload frames of a delivery: slices of the event's buffer, no
    /// copy.
    pub fn frames(&self) -> [Bytes; 3] {
        let (a, b) = (self.id_end as usize, self.subject_end as usize);
        [
            self.bytes.slice(..a),
            self.bytes.slice(a..b),
            self.bytes.slice(b..),
        ]
    }

    /// Memory the event holds — its bytes, the event in its `Arc` (72 bytes), the buffer's
    /// shared header once it is sliced, the allocator's headers — for the size-bounded
    /// tail cache.
    pub fn weight(&self) -> usize {
        128 + self.bytes.len()
    }
}

/// How hard commits are pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// fsync every commit someone is answered for (or that stores more than acks nobody
    /// waits for): an acked event survives power loss.
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

/// Opens (creating if needed) `bus.db` with WAL and the schema migrated to the latest
/// version. A missing directory is created 0700, and the file (with its `-wal` and `-shm`)
/// is 0600, whatever the umask; see `tix_files`.
pub fn open(path: &Path, durability: Durability) -> anyhow::Result<Connection> {
    use anyhow::Context;
    if let Some(dir) = path.parent() {
        files::ensure_private_dir(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    files::ensure_private_file(path)
        .with_context(|| format!("cannot make {} private (mode 0600)", path.display()))?;
    connect(path, durability).with_context(|| format!("cannot open {}", path.display()))
}

/// Another connection to a `bus.db` that [`open`] has opened (the reader's).
pub fn connect(path: &Path, durability: Durability) -> Result<Connection> {
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

/// A read-only connection to a `bus.db` that [`open`] has opened: operator requests read
/// through one on a thread of their own, so a long scan never holds up the broker.
pub fn connect_read_only(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
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

fn text(b: &[u8]) -> &str {
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
    /// Forget a durable group: its row, its acks, its dead letters.
    DropGroup {
        group: Arc<str>,
    },
    /// Move a durable group back to the first event stored at or after `since_ms`: its
    /// stored floor goes below that event (if it was above), and its acks of that event
    /// and after go. Events stored before `pruned_before_ms` may have been pruned. What it
    /// found is in `Effects::rewound`.
    Rewind {
        group: Arc<str>,
        since_ms: i64,
        pruned_before_ms: i64,
    },
    /// Forget a group's dead letters (those at `seqs`, or all), but those being replayed
    /// and those at `keep` (replays the core holds whose flag is not stored yet). How many
    /// went is in `Effects::discarded`.
    DiscardDeadLetters {
        group: Arc<str>,
        seqs: Option<Vec<u64>>,
        keep: Vec<u64>,
    },
    /// Delete events up to `upto` published before `before_ms`.
    Prune {
        upto: u64,
        before_ms: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::writer::commit_batch;
    use super::*;

    fn ev(id: &str, subject: &str) -> WireEvent {
        WireEvent {
            id: Bytes::from(id.to_string()),
            subject: Bytes::from(subject.to_string()),
            payload: Bytes::from_static(b"{}"),
        }
    }

    /// A rewind's first position, found by a binary search: the first event stored at or
    /// after the time, over a log with holes (events pruned or never stored under their
    /// numbers) and events stored in the same millisecond; one past the newest for a time
    /// after them all; the oldest held, flagged, for a time before what was pruned.
    #[test]
    fn a_rewind_starts_at_the_first_event_stored_since_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("bus.db"), Durability::Normal).unwrap();
        // Nothing stored since before 1,000 ms can have been pruned.
        let first_since = |conn: &Connection, ms| writer::first_since(conn, ms, 1_000);
        assert_eq!(first_since(&conn, 0).unwrap(), (1, false), "empty");
        // Positions 1..=40 stored 10 ms apart, two to a millisecond from 21 on.
        for seq in 1..=40i64 {
            let at = if seq <= 20 {
                seq * 10
            } else {
                200 + (seq - 19) / 2 * 10
            };
            conn.execute(
                "INSERT INTO events (seq, id, subject, payload, published_at) VALUES (?1, ?2, 's', x'', ?3)",
                rusqlite::params![seq, format!("e{seq}"), at],
            )
            .unwrap();
        }
        let first = |ms| first_since(&conn, ms).unwrap();
        assert_eq!(first(0), (1, false));
        assert_eq!(first(10), (1, false));
        assert_eq!(first(11), (2, false));
        assert_eq!(first(200), (20, false));
        assert_eq!(
            first(201),
            (21, false),
            "the first of two in one millisecond"
        );
        assert_eq!(first(210), (21, false));
        assert_eq!(first(211), (23, false));
        assert_eq!(first(10_000), (41, false), "after them all");
        // Holes: 5..=9 and 30..=34 gone.
        conn.execute(
            "DELETE FROM events WHERE seq BETWEEN 5 AND 9 OR seq BETWEEN 30 AND 34",
            [],
        )
        .unwrap();
        assert_eq!(first(45), (10, false), "the next held after a hole");
        assert_eq!(first(251), (35, false));
        // Pruned from the start: a time before the oldest held cannot be reached.
        conn.execute("DELETE FROM events WHERE seq < 15", [])
            .unwrap();
        assert_eq!(first(0), (15, true));
        assert_eq!(first(149), (15, true));
        assert_eq!(
            first(150),
            (15, true),
            "one pruned in the same millisecond may be gone"
        );
        assert_eq!(first(151), (16, false));
        // Nothing stored since a time the retention still covers was ever pruned.
        assert_eq!(writer::first_since(&conn, 0, 0).unwrap(), (15, false));
        // Everything pruned: the next number SQLite would give, and what may be gone.
        conn.execute("DELETE FROM events", []).unwrap();
        conn.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'events', 40 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')", []).unwrap();
        assert_eq!(first(0), (41, true));
        assert_eq!(first(5_000), (41, false), "after the pruned ones' time");
    }

    /// A batch that fails part-way leaves nothing behind (its event is not stored), and
    /// the writer's next batch begins afresh: had the failed one stayed open, every later
    /// BEGIN would fail ("cannot start a transaction within a transaction").
    #[test]
    fn a_failed_batch_is_rolled_back_and_the_next_one_commits() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("bus.db"), Durability::Normal).unwrap();
        // The ack cannot be written: its table is out of the way.
        conn.execute_batch("ALTER TABLE acked RENAME TO acked_away")
            .unwrap();
        let failed = commit_batch(
            &conn,
            &[Job {
                writes: vec![
                    Write::Publish(vec![ev("a", "s")]),
                    Write::Acked {
                        group: Arc::from("g"),
                        seqs: vec![1],
                    },
                ],
                token: (),
                sync: true,
            }],
        );
        assert!(failed[0].is_err(), "{failed:?}");
        conn.execute_batch("ALTER TABLE acked_away RENAME TO acked")
            .unwrap();
        let ok = commit_batch(
            &conn,
            &[Job {
                writes: vec![Write::Publish(vec![ev("b", "s")])],
                token: (),
                sync: true,
            }],
        );
        assert!(ok[0].is_ok(), "{ok:?}");
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, ["b"]);
    }

    /// With `--durability full`, a batch of nothing but acknowledgements nobody waits for
    /// commits without syncing the WAL (as SQLite reports its setting back), and the next
    /// batch that stores anything else, or that someone waits for, syncs again (and so makes
    /// the acks before it durable too). With `normal` nothing is singled out.
    #[test]
    fn only_batches_of_acknowledgements_skip_the_sync() {
        let acks = || Write::Acked {
            group: Arc::from("g"),
            seqs: vec![7],
        };
        let floor = || Write::Floor {
            group: Arc::from("g"),
            floor: 3,
        };
        let publish = |id: &str| Write::Publish(vec![ev(id, "s")]);
        let run = |durability: Durability, batches: Vec<(Vec<Write>, bool)>| -> Vec<bool> {
            let dir = tempfile::tempdir().unwrap();
            let conn = open(&dir.path().join("bus.db"), durability).unwrap();
            let (jobs, queue) = std::sync::mpsc::channel();
            let (tx, done) = std::sync::mpsc::channel();
            let writer = std::thread::spawn(move || {
                writer::run_writer(
                    conn,
                    queue,
                    move |d: Vec<Done<()>>, times| {
                        assert!(d.iter().all(|d| d.result.is_ok()));
                        tx.send(times.unsynced).unwrap();
                    },
                    1000,
                )
            });
            let mut unsynced = Vec::new();
            for (writes, answered) in batches {
                // One at a time, so each is a batch of its own.
                jobs.send(Job::new(writes, (), answered)).unwrap();
                unsynced.push(done.recv().unwrap());
            }
            drop(jobs);
            writer.join().unwrap();
            let reader = connect_read_only(&dir.path().join("bus.db")).unwrap();
            let acked: i64 = reader
                .query_row("SELECT count(*) FROM acked", [], |r| r.get(0))
                .unwrap();
            assert_eq!(acked, 1, "the unsynced acks are committed all the same");
            unsynced
        };
        // (writes, whether someone is answered once they are committed)
        let batches = || {
            vec![
                (vec![publish("a")], false),
                (vec![floor(), acks()], false),
                (vec![acks(), publish("b")], false),
                (vec![acks()], false),
                // An ack someone waits for (`Delivery::ack`) is synced before its `OK`.
                (vec![acks()], true),
                (vec![acks()], false),
                (vec![publish("c")], false),
            ]
        };
        assert_eq!(
            run(Durability::Full, batches()),
            [false, true, false, true, false, true, false]
        );
        assert_eq!(run(Durability::Normal, batches()), [false; 7]);
    }

    #[test]
    fn bus_db_and_its_wal_and_shm_are_0600_in_a_0700_directory() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = shared.join("a").join("data");
        let path = dir.join("bus.db");
        let conn = open(&path, Durability::Normal).unwrap();
        commit_batch(
            &conn,
            &[Job {
                writes: vec![Write::Publish(vec![ev("a", "s")])],
                token: (),
                sync: true,
            }],
        );
        assert_eq!(mode(&shared), 0o755, "an existing directory is left alone");
        assert_eq!((mode(&shared.join("a")), mode(&dir)), (0o700, 0o700));
        for file in ["bus.db", "bus.db-wal", "bus.db-shm"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        drop(conn);

        // A bus.db made with the umask's 0644 (before this rule) is tightened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let reopened = open(&path, Durability::Normal).unwrap();
        assert_eq!(mode(&path), 0o600);
        drop(reopened);

        let not_a_dir = tmp.path().join("file");
        std::fs::write(&not_a_dir, b"x").unwrap();
        let err = open(&not_a_dir.join("bus.db"), Durability::Normal).unwrap_err();
        assert!(format!("{err:#}").contains("data directory"), "{err:#}");
    }

    #[test]
    fn a_dead_letter_listing_stops_at_its_count_or_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        let conn = open(&path, Durability::Normal).unwrap();
        let writes = (1..=5)
            .map(|seq| Write::DeadLetter {
                group: Arc::from("g"),
                event: Arc::new(Event::new(seq, b"id", b"s", &[b'x'; 100], 0)),
                deliveries: 3,
            })
            .collect();
        commit_batch(&conn, &[Job::new(writes, (), true)]);
        let reader = Reader::new(connect_read_only(&path).unwrap());
        let seqs = |limit, bytes| -> Vec<u64> {
            let list = reader.dead_letters(Some("g"), limit, bytes, false).unwrap();
            list.iter().map(|d| d.seq).collect()
        };
        assert_eq!(seqs(10, 1 << 20), vec![1, 2, 3, 4, 5]);
        assert_eq!(seqs(2, 1 << 20), vec![1, 2], "the oldest first");
        assert_eq!(
            seqs(10, 250),
            vec![1, 2],
            "no more once the payloads reach the budget"
        );
        assert_eq!(seqs(10, 10), vec![1], "one, whatever its size");
    }

    /// A dropped group leaves nothing behind (row, acks, dead letters); another group's
    /// rows are untouched.
    #[test]
    fn a_dropped_group_leaves_no_row_ack_or_dead_letter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        let conn = open(&path, Durability::Normal).unwrap();
        let mut writes = Vec::new();
        for name in ["gone", "kept"] {
            writes.push(Write::UpsertGroup(GroupRow {
                name: name.into(),
                subjects: vec!["s".into()],
                ack_wait_ms: 1000,
                max_in_flight: 8,
                max_deliveries: 3,
                ack_floor: 0,
            }));
            writes.push(Write::Acked {
                group: Arc::from(name),
                seqs: vec![3, 5],
            });
            writes.push(Write::DeadLetter {
                group: Arc::from(name),
                event: Arc::new(Event::new(1, b"id", b"s", b"{}", 0)),
                deliveries: 3,
            });
        }
        writes.push(Write::DropGroup {
            group: Arc::from("gone"),
        });
        let done = commit_batch(&conn, &[Job::new(writes, (), true)]);
        assert!(done[0].is_ok(), "{done:?}");
        let reader = Reader::new(connect_read_only(&path).unwrap());
        let names: Vec<String> = reader
            .groups()
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["kept"]);
        for (name, acks, dead) in [("gone", 0, 0), ("kept", 2, 1)] {
            assert_eq!(
                reader.acked_above_floor(name).unwrap().len(),
                acks,
                "{name}"
            );
            let listed = reader.dead_letters(Some(name), 10, 1 << 20, false).unwrap();
            assert_eq!(listed.len(), dead, "{name}");
        }
    }

    #[test]
    fn an_event_from_the_wire_is_copied_into_a_buffer_of_its_own() {
        let wire = Bytes::from(vec![b'w'; 4096]);
        let e = Event::new(1, b"id", b"subject", &wire[..100], 0);
        drop(wire);
        assert_eq!((e.id(), e.subject()), (&b"id"[..], &b"subject"[..]));
        assert_eq!(e.payload(), &[b'w'; 100][..]);
        // One buffer for the three, of their size (not the 4 KiB they came in), which a
        // delivery's frames share.
        let [id, subject, payload] = e.frames();
        let base = e.id().as_ptr() as usize;
        assert_eq!(id.as_ptr() as usize, base);
        assert_eq!(subject.as_ptr() as usize, base + 2);
        assert_eq!(payload.as_ptr() as usize, base + 9);
        assert_eq!(e.weight(), 128 + 109);
        assert_eq!(std::mem::size_of::<Event>(), 56);
    }

    #[test]
    fn a_duplicate_id_is_stored_once_and_positions_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        let conn = open(&path, Durability::Full).unwrap();
        let job = |w| Job {
            writes: vec![Write::Publish(w)],
            token: (),
            sync: true,
        };
        let r = commit_batch(
            &conn,
            &[job(vec![ev("a", "s"), ev("b", "s"), ev("a", "s")])],
        );
        let inserted = &r[0].as_ref().unwrap().inserted;
        assert_eq!(
            inserted.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // Prune everything, then publish again: positions continue, never restart at 1.
        commit_batch(
            &conn,
            &[Job {
                writes: vec![Write::Prune {
                    upto: 2,
                    before_ms: i64::MAX,
                }],
                token: (),
                sync: true,
            }],
        );
        // Positions only grow; a skipped duplicate may leave a gap, which readers tolerate.
        let r = commit_batch(&conn, &[job(vec![ev("c", "s")])]);
        let seq = r[0].as_ref().unwrap().inserted[0].seq;
        assert!(seq > 2, "{seq}");
        let reader = Reader::new(open(&path, Durability::Full).unwrap());
        assert_eq!(reader.head().unwrap(), seq);
        assert_eq!(reader.events_after(0, 10, 1 << 20).unwrap().len(), 1);
    }
}
