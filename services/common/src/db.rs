//! SQLite for services: WAL, busy timeout, foreign keys, versioned migrations, and a way
//! to run queries from async handlers without blocking the runtime.
//!
//! Writes go to one writer thread that commits whatever queued up while it was busy in a
//! single transaction (group commit): a caller whose closure fails is rolled back alone
//! (its batch is run again with a savepoint per closure when that is the only way, see
//! [`commit_batch`]), and every caller hears back only after the commit is durable (but
//! for [`Db::write_unsynced`] and [`SyncWhen::Soon`] writes, which say otherwise). Reads
//! run on pooled read connections (WAL lets them run beside the writer) on a
//! blocking-capable thread.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::files::sync::CommitSync;
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

/// What can go wrong below the SQL a caller runs.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make {path} private (mode 0600): {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the database writer has stopped")]
    Closed,
}

/// Whether a SQLite error is about the database's circumstances rather than the SQL or the
/// data — busy or locked by another connection, an I/O error, a full disk, a file that
/// cannot be opened or written now — so the same work can succeed later. A constraint
/// violation, a type mismatch or SQL that does not fit the schema is not: it fails the
/// same way every time.
pub fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(
            DatabaseBusy
                | DatabaseLocked
                | SystemIoFailure
                | DiskFull
                | CannotOpen
                | ReadOnly
                | OutOfMemory
                | FileLockingProtocolFailed
        )
    )
}

/// Whether anything in an error's cause chain is a transient SQLite error
/// ([`is_transient`]): how a consumer tells a handler that failed because the database is
/// busy from one that failed on the event.
pub fn is_transient_cause(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(sqlite) = e.downcast_ref::<rusqlite::Error>()
            && is_transient(sqlite)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// How hard commits are pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// fsync every commit a caller waits on (all but batches of [`Db::write_unsynced`] and
    /// [`SyncWhen::Soon`] writes, which a later sync carries): a 2xx answer survives power
    /// loss, and so does an event a consumer has acked.
    Full,
    /// fsync at checkpoints: survives a crash of the process, not of the machine.
    Normal,
}

/// The outbox and inbox tables every service has (see [`crate::outbox`], [`crate::inbox`]).
/// Put it first in a service's migrations, and [`crate::outbox::OUTBOX_DEAD_SCHEMA`] then
/// [`crate::outbox::OUTBOX_REBUILD`] after it: this first outbox is the one that shipped
/// (migrations are never edited), the rebuild is the one services run with.
pub const EVENTS_SCHEMA: &str = "
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE inbox (
        event_id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        received_at INTEGER NOT NULL
    ) WITHOUT ROWID;";

/// Something a transaction changed that a task of the service waits for: the outbox's
/// new rows (the relay), a service's own (payments' refunds to make and its order replica,
/// orders' ticket replica, expiration's timers).
/// The job that changes it says so with [`touched`]; the tasks waiting on it through
/// [`Db::changes`] are woken once that transaction has committed, and not by the commits
/// that did not touch it (each wake-up is a read, and most commits are someone else's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic(u8);

const TOPICS: usize = 8;

impl Topic {
    /// Rows added to the outbox.
    pub const OUTBOX: Topic = Topic(0);

    /// A topic of the service's own, `1..=7`.
    pub const fn own(n: u8) -> Topic {
        assert!(
            n >= 1 && (n as usize) < TOPICS,
            "a service's own topics are 1..=7"
        );
        Topic(n)
    }
}

thread_local! {
    /// The topics the writer thread's current batch touched.
    static TOUCHED: Cell<u8> = const { Cell::new(0) };
    /// Set by a job that failed and rolled back what it had changed itself.
    static UNDONE: Cell<bool> = const { Cell::new(false) };
    /// SQLite's count of changed rows when the writer's transaction last began.
    static BEGUN_AT: Cell<u64> = const { Cell::new(0) };
}

/// Says, from inside a [`Db::write`] job about to fail, that it has rolled back every
/// change it made itself (to a savepoint of its own): the rest of the batch can go on
/// without being run again (SQLite's count of changed rows, which the writer reads to
/// know, does not go down with a rollback).
pub fn undid_own_changes() {
    UNDONE.with(|u| u.set(true));
}

/// Says, from inside a [`Db::write`] job, that its transaction changes `topic`. A job that
/// is rolled back afterwards only causes a wake-up that finds nothing; outside a writer job
/// (a test's bare connection) it does nothing.
pub fn touched(topic: Topic) {
    TOUCHED.with(|t| t.set(t.get() | 1 << topic.0));
}

/// Tells a job's caller how its batch ended: the commit's error, or its number.
type Completion = Box<dyn FnOnce(Result<CommitNo, String>) + Send>;

/// The number of a commit of the writer, for [`Db::durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitNo(u64);

/// A write, as the writer thread holds it. `run` may be called again: a batch in which a
/// job failed after changing rows is rolled back whole and run anew, each job in a
/// savepoint of its own ([`commit_batch`]); its caller gets the last run's result.
trait Job: Send {
    /// Runs the write in the batch's transaction: whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// What tells its caller, once the batch has committed or failed to.
    fn into_completion(self: Box<Self>) -> Completion;
    /// How its commit must reach the disk.
    fn sync(&self) -> SyncWhen;
}

/// How a write's commit must reach the disk (with `--durability full`), strictest first
/// ([`Db::write_as`]). A batch is committed as its strictest job asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncWhen {
    /// Before its caller hears of it ([`Db::write`]).
    Now,
    /// Its caller hears of the commit before it is on the disk and waits with
    /// [`Db::durable`] before telling anyone else (a consumer's ack). The next synced
    /// commit that writes carries it to the disk, or the writer syncs one of its own within
    /// [`SYNC_LATER_WITHIN`]: one fsync for what came meanwhile rather than one for each.
    ///
    /// What the service reads from it meanwhile, a power cut can take back until the same
    /// work is done again (the event comes back, unacked): only what nobody is told of
    /// belongs here. A batch that adds rows to the outbox is always committed synced (its
    /// jobs run again if it was about to be committed otherwise): no reader ever sees an
    /// outbox row a power cut could take back.
    Soon,
    /// Whenever a later commit is synced ([`Db::write_unsynced`]): for a change whose loss
    /// costs only work done again. [`Db::durable`] of its number says nothing about it.
    Whenever,
}

/// How long a [`SyncWhen::Soon`] commit may wait for a synced commit to carry it to the
/// disk before the writer syncs one of its own. Under load a request's commit carries it
/// much sooner; at rest this bounds how long its caller holds what it waits to tell.
pub const SYNC_LATER_WITHIN: Duration = Duration::from_millis(10);

type WriteJob = Box<dyn Job>;

/// A [`Db::write`] job: the caller's closure, the request's correlation id, the result
/// of its last run and where to send it.
struct Write<F, T, E> {
    f: F,
    correlation: Option<crate::correlation::Id>,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<(T, CommitNo), E>>,
    sync: SyncWhen,
}

impl<F, T, E> Job for Write<F, T, E>
where
    F: FnMut(&Connection) -> Result<T, E> + Send,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let f = &mut self.f;
        let result = crate::correlation::on_this_thread(self.correlation.clone(), || f(conn));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn sync(&self) -> SyncWhen {
        self.sync
    }

    fn into_completion(self: Box<Self>) -> Completion {
        let Write { result, reply, .. } = *self;
        Box::new(move |commit| {
            let out = match (commit, result) {
                (Err(e), _) => Err(E::from(DbError::Commit(e))),
                (Ok(n), Some(result)) => result.map(|t| (t, n)),
                // Never ran to its end: the caller hears the channel close.
                (Ok(_), None) => return,
            };
            let _ = reply.send(out);
        })
    }
}

/// A service's database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// [`Db::sync_lazy_within`], in microseconds.
    sync_within: Arc<AtomicU64>,
    /// [`Db::own_syncs`].
    own_syncs: Arc<AtomicU64>,
    durability: Durability,
    jobs: Mutex<Option<mpsc::Sender<WriteJob>>>,
    readers: Mutex<Vec<Connection>>,
    signals: Arc<Signals>,
    handback: Arc<OnceLock<HandBack>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What a commit wakes: the callers whose jobs it held, then the tasks waiting on the
/// topics it touched.
struct Signals {
    topics: [watch::Sender<u64>; TOPICS],
    /// The number up to which every commit someone waits for ([`Db::write`]'s and
    /// [`SyncWhen::Soon`]'s, not [`Db::write_unsynced`]'s) is on the disk: each synced
    /// commit that writes carries every one before it. With `--durability normal`, every
    /// commit.
    durable: watch::Sender<u64>,
}

impl Signals {
    fn committed(
        &self,
        done: Vec<Completion>,
        commit: Result<CommitNo, String>,
        touched: u8,
        durable: u64,
    ) {
        // First, so that a caller told of its commit finds [`Db::durable`] up to date.
        self.durable.send_if_modified(|d| {
            let newer = durable > *d;
            *d = (*d).max(durable);
            newer
        });
        for d in done {
            d(commit.clone());
        }
        for (i, topic) in self.topics.iter().enumerate() {
            if touched & 1 << i != 0 {
                topic.send_modify(|n| *n += 1);
            }
        }
    }
}

/// One commit's wake-ups, handed from the writer thread to a task on the callers' runtime.
///
/// Waking a task of a tokio runtime from another thread writes the runtime's `eventfd`
/// once per task woken; a commit ends many jobs and wakes the tasks waiting on it. Sent as
/// one message, they cost one such wake-up per commit, and the rest are wake-ups from the
/// runtime's own thread (docs/benchmarks.md).
type HandBack = tokio::sync::mpsc::UnboundedSender<Committed>;

/// A commit's completions, its number or error, the topics it touched, and up to which
/// number commits are durable.
///
/// With no completions (the writer's own sync, its stop) only the last counts, and
/// [`NO_COMMIT`] stands in for the second.
type Committed = (Vec<Completion>, Result<CommitNo, String>, u8, u64);

/// What a hand-back without completions says of its commit: nobody hears it.
const NO_COMMIT: Result<CommitNo, String> = Err(String::new());

/// The runtime's end of the hand-back. Dropped with its task when the runtime goes away,
/// it wakes whatever commits were still queued to it: a committed write must never be
/// answered as failed, nor a commit go unannounced, because a runtime stopped.
struct Waker {
    rx: tokio::sync::mpsc::UnboundedReceiver<Committed>,
    signals: Arc<Signals>,
}

impl Drop for Waker {
    fn drop(&mut self) {
        // Closed first, so the writer falls back to waking by itself from now on.
        self.rx.close();
        while let Ok((done, commit, touched, durable)) = self.rx.try_recv() {
            self.signals.committed(done, commit, touched, durable);
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Runs a statement without parameters (BEGIN, COMMIT, a savepoint) from the connection's
/// statement cache: `execute_batch` would parse it again on every call.
pub(crate) fn execute_cached(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql).and_then(|mut st| st.execute([]))
}

fn open_conn(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // rusqlite keeps 16 prepared statements by default; the writer's BEGIN and COMMIT (and
    // its savepoint statements, when a batch is run again) take some, and a service's
    // write path (inbox, outbox, idempotency and its own store) uses more than the rest,
    // which would then be prepared again and again.
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Applies the migrations the database has not seen yet, each in its own transaction.
/// `migrations[i]` brings the schema to version `i + 1`; never edit one that shipped.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl Db {
    /// Opens (creating) the database file and brings its schema up to date.
    ///
    /// A missing directory is created 0700 and the file (with its `-wal` and `-shm`) is
    /// 0600, whatever the umask; see [`crate::files`].
    pub fn open(path: &Path, durability: Durability, migrations: &[&str]) -> Result<Db, DbError> {
        if let Some(dir) = path.parent() {
            crate::files::ensure_private_dir(dir).map_err(|source| DbError::DataDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        crate::files::ensure_private_file(path).map_err(|source| DbError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let opened = open_conn(path, durability).and_then(|mut conn| {
            migrate(&mut conn, migrations)?;
            Ok(conn)
        });
        let conn = opened.map_err(|source| DbError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (tx, rx) = mpsc::channel::<WriteJob>();
        let signals = Arc::new(Signals {
            topics: std::array::from_fn(|_| watch::channel(0u64).0),
            durable: watch::channel(0u64).0,
        });
        let sync_within = Arc::new(AtomicU64::new(SYNC_LATER_WITHIN.as_micros() as u64));
        let own_syncs = Arc::new(AtomicU64::new(0));
        let handback: Arc<OnceLock<HandBack>> = Arc::default();
        let (writer_signals, writer_handback) = (signals.clone(), handback.clone());
        let (writer_within, writer_syncs) = (sync_within.clone(), own_syncs.clone());
        let name = format!(
            "db-writer-{}",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("db")
        );
        let writer = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut w = Writer::new(conn, &writer_within, &writer_syncs);
                w.run(rx, &writer_signals, &writer_handback);
            })
            .map_err(|e| DbError::Commit(e.to_string()))?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                sync_within,
                own_syncs,
                durability,
                jobs: Mutex::new(Some(tx)),
                readers: Mutex::new(Vec::new()),
                signals,
                handback,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A counter of the commits that [`touched`] `topic`, for a task that waits for that
    /// alone. Each waiter holds its own receiver, so that none misses a commit another one
    /// saw: mark it seen before reading.
    pub fn changes(&self, topic: Topic) -> watch::Receiver<u64> {
        self.inner.signals.topics[topic.0 as usize].subscribe()
    }

    /// Runs `f` in the next group commit and returns its result once the commit is durable.
    /// When `f` fails, its changes are rolled back and nothing else is affected.
    ///
    /// `f` may run more than once: when another closure of its batch fails after changing
    /// rows, the batch is rolled back and run again ([`commit_batch`]), and so it is when a
    /// batch about to be committed unsynced added rows to the outbox ([`SyncWhen::Soon`]);
    /// the caller gets the last run's result. So `f` should change nothing outside the database that a
    /// second run would harm, and change the database through INSERT, UPDATE and DELETE
    /// when it may fail afterwards (that it changed something is read from SQLite's count
    /// of changed rows).
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.submit(f, SyncWhen::Now).await.map(|(t, _)| t)
    }

    /// [`Db::write`] for a change whose loss to a power cut costs only work done again: its
    /// commit is not fsynced when it is alone in its batch (with `--durability full`; any
    /// other job in the batch syncs it). The outbox relay's clearing of what the bus has
    /// stored is one: a row that comes back is published again, and the bus keeps one copy
    /// of an event id.
    ///
    /// A crash of the process loses nothing SQLite has committed, synced or not; and the
    /// WAL is written in order, so the next synced commit makes this one durable too, and
    /// whatever survives a power cut is a prefix of the commits: no synced change is ever
    /// behind an unsynced one that was lost.
    pub async fn write_unsynced<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.submit(f, SyncWhen::Whenever).await.map(|(t, _)| t)
    }

    /// [`Db::write`] committed as `when` says, with the number of its commit for
    /// [`Db::durable`]. With [`SyncWhen::Now`], `durable` of it resolves at once, unless the
    /// commit wrote nothing while lazy commits before it waited for a sync and the writer's
    /// own sync of them then failed.
    pub async fn write_as<T, E, F>(&self, when: SyncWhen, f: F) -> Result<(T, CommitNo), E>
    where
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.submit(f, when).await
    }

    /// How long a [`SyncWhen::Soon`] commit waits at most for a synced commit to carry it
    /// before the writer syncs one of its own ([`SYNC_LATER_WITHIN`] unless changed; from
    /// the next lazy commit on). A test sets an hour to see what waits for it.
    pub fn sync_lazy_within(&self, within: Duration) {
        self.inner
            .sync_within
            .store(within.as_micros() as u64, Ordering::Relaxed);
    }

    /// How many commits the writer has made only to sync lazy ones before them.
    pub fn own_syncs(&self) -> u64 {
        self.inner.own_syncs.load(Ordering::Relaxed)
    }

    /// Resolves once `commit`, and every synced or lazy commit before it, is on the disk (at
    /// once with `--durability normal`); `false` if the database is gone first.
    pub fn durable(
        &self,
        commit: CommitNo,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        let mut durable = self.inner.signals.durable.subscribe();
        async move { durable.wait_for(|d| *d >= commit.0).await.is_ok() }
    }

    /// Whether [`Db::durable`] of `commit` would resolve at once.
    pub fn is_durable(&self, commit: CommitNo) -> bool {
        *self.inner.signals.durable.borrow() >= commit.0
    }

    async fn submit<T, E, F>(&self, f: F, sync: SyncWhen) -> Result<(T, CommitNo), E>
    where
        F: FnMut(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.hand_back_here();
        let (reply, rx) = oneshot::channel::<Result<(T, CommitNo), E>>();
        // The job runs on the writer thread: the request's correlation id goes with it, for
        // the events it enqueues.
        let job: WriteJob = Box::new(Write {
            f,
            correlation: crate::correlation::current(),
            result: None,
            reply,
            sync,
        });
        let sent = self
            .inner
            .jobs
            .lock()
            .expect("jobs lock")
            .as_ref()
            .map(|jobs| jobs.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(E::from(DbError::Closed));
        }
        rx.await.unwrap_or_else(|_| Err(E::from(DbError::Closed)))
    }

    /// Has the writer hand each commit's wake-ups to a task on the runtime this is called
    /// from, once: the first write from a tokio runtime chooses it. Without one (a caller
    /// on another executor), or once that runtime is gone, the writer wakes everyone
    /// itself, as it always may.
    ///
    /// That runtime must keep running its tasks while the Db is written from elsewhere: a
    /// current-thread runtime left idle outside `block_on`, or blocked in synchronous code
    /// waiting for a write, would hold every other caller's answer. A service runs one
    /// runtime for its whole life, which is what this is for.
    fn hand_back_here(&self) {
        if self.inner.handback.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let signals = self.inner.signals.clone();
        self.inner.handback.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let mut waker = Waker { rx, signals };
            runtime.spawn(async move {
                while let Some((done, commit, touched, durable)) = waker.rx.recv().await {
                    waker.signals.committed(done, commit, touched, durable);
                }
            });
            tx
        });
    }

    fn with_reader<T, E: From<DbError>>(
        inner: &Inner,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = match inner.readers.lock().expect("readers lock").pop() {
            Some(c) => c,
            None => open_conn(&inner.path, inner.durability).map_err(DbError::from)?,
        };
        let out = f(&conn);
        inner.readers.lock().expect("readers lock").push(conn);
        out
    }

    /// Runs a short read (an indexed lookup: microseconds) right here on the async worker.
    ///
    /// Measured: handing such a read to another thread (`block_in_place` or the blocking
    /// pool) costs more than the read itself and halved `GET /api/tickets/:id` throughput
    /// (docs/benchmarks.md). Anything that may scan uses [`Db::read_blocking`].
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        Self::with_reader(&self.inner, f)
    }

    /// Reads until `f` finds something or `within` has passed, and returns what it found.
    ///
    /// For a replica that may not have applied an event yet (a buyer reserves a ticket a
    /// moment after it was created, or pays a moment after reserving): each try is woken
    /// by a commit that [`touched`] `topic` — the consumer's, which writes what `f` looks
    /// for — rather than by a polling timer or by every commit. Under load most commits
    /// are other requests' and each wake-up is a read.
    pub async fn read_eventually<T, E, F>(
        &self,
        topic: Topic,
        within: Duration,
        f: F,
    ) -> Result<Option<T>, E>
    where
        F: Fn(&Connection) -> Result<Option<T>, E> + Clone + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + within;
        let mut commits = self.changes(topic);
        loop {
            commits.borrow_and_update();
            let found = self.read(f.clone()).await?;
            if found.is_some() || tokio::time::Instant::now() >= deadline {
                return Ok(found);
            }
            let _ = tokio::time::timeout_at(deadline, commits.changed()).await;
        }
    }

    /// Runs a read that may take a while (a scan, a search) on the blocking pool, so the
    /// async workers keep serving other requests meanwhile.
    pub async fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || Self::with_reader(&inner, f))
            .await
            .unwrap_or_else(|_| Err(E::from(DbError::Closed)))
    }

    /// Stops the writer after it has committed everything queued.
    pub fn close(&self) {
        self.inner.jobs.lock().expect("jobs lock").take();
        if let Some(h) = self.inner.writer.lock().expect("writer lock").take() {
            let _ = h.join();
        }
    }
}

const MAX_BATCH: usize = 1024;

/// The writer thread's connection and what it knows of its commits.
///
/// With [`Durability::Full`], a batch is synced when any job in it was made with
/// [`Db::write`]. A batch of [`SyncWhen::Soon`] jobs (and unsynced ones) is synced by the
/// next synced commit that writes or, if none comes within [`SYNC_LATER_WITHIN`], by a
/// commit the writer makes for it. A batch that adds rows to the outbox is always committed
/// synced: no reader ever sees an outbox row a power cut could take back.
struct Writer<'a> {
    conn: Connection,
    sync: CommitSync,
    /// Commits made (the last one's number).
    commits: u64,
    /// The number up to which every synced and lazy commit is on the disk ([`Signals`]).
    durable: u64,
    /// The last lazy commit's number.
    lazy: u64,
    /// How long a lazy commit may wait for a sync, in microseconds ([`Db::sync_lazy_within`]).
    within: &'a AtomicU64,
    /// Its own syncs made ([`Db::own_syncs`]).
    own_syncs: &'a AtomicU64,
    /// When the oldest lazy commit not on the disk must be synced at the latest.
    due: Option<Instant>,
    /// The last sync of the writer's own failed (logged once until one succeeds).
    failing: bool,
    /// A write that changes nothing but commits like any write (the schema version set to
    /// its own value): what the writer commits to sync the ones before it.
    probe: String,
}

/// What [`commit_batch`] did with a batch.
enum Outcome {
    /// Committed (or failed to): what to tell its callers, the error, and whether the
    /// transaction changed any row (a commit that changed none writes nothing, and so
    /// syncs nothing either).
    Done(Vec<Completion>, Option<String>, bool),
    /// Rolled back before its commit: it added to the outbox, and it was about to be
    /// committed unsynced. Run it again synced (the jobs that panicked are left out).
    SyncFirst(Vec<WriteJob>),
}

impl<'a> Writer<'a> {
    fn new(conn: Connection, within: &'a AtomicU64, own_syncs: &'a AtomicU64) -> Writer<'a> {
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap_or(0);
        let sync = CommitSync::of(&conn);
        // What an earlier process left in the WAL may be lazy commits it never synced (it
        // was killed): counted as one, so that a first synced commit that writes nothing
        // syncs them before anything found applied in them is acked.
        let earlier = u64::from(sync.full());
        Writer {
            sync,
            conn,
            commits: earlier,
            durable: 0,
            lazy: earlier,
            within,
            own_syncs,
            due: None,
            failing: false,
            probe: format!("PRAGMA user_version = {version}"),
        }
    }

    fn run(
        &mut self,
        jobs: mpsc::Receiver<WriteJob>,
        signals: &Signals,
        handback: &OnceLock<HandBack>,
    ) {
        loop {
            let first = match self.due {
                None => match jobs.recv() {
                    Ok(j) => j,
                    Err(_) => break,
                },
                Some(due) => match jobs.recv_timeout(due.saturating_duration_since(Instant::now()))
                {
                    Ok(j) => j,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if self.sync_now() {
                            self.hand_back(
                                (Vec::new(), NO_COMMIT, 0, self.durable),
                                signals,
                                handback,
                            );
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            // A lazy commit past its time is synced with this batch, however busy the
            // writer is with batches that would not be.
            let overdue = self.due.is_some_and(|due| Instant::now() >= due);
            let own = batch
                .iter()
                .map(|j| j.sync())
                .min()
                .unwrap_or(SyncWhen::Now);
            let mut when = if overdue { SyncWhen::Now } else { own };
            let mut sent_back = false;
            let (done, error, wrote) = loop {
                if !self.sync.prepare(&self.conn, when == SyncWhen::Now) {
                    if when != own && !sent_back {
                        // Synced only for an overdue lazy commit, which waits for the next
                        // try: this batch itself does not need it.
                        when = own;
                        continue;
                    }
                    let refused = "the database could not be set to sync this commit".to_string();
                    let done = batch.into_iter().map(|j| j.into_completion()).collect();
                    break (done, Some(refused), false);
                }
                match commit_batch(&self.conn, batch, self.sync.skipped()) {
                    Outcome::Done(done, error, wrote) => break (done, error, wrote),
                    Outcome::SyncFirst(again) => {
                        batch = again;
                        when = SyncWhen::Now;
                        sent_back = true;
                    }
                }
            };
            let touched = TOUCHED.with(|t| t.replace(0));
            let commit = match error {
                Some(e) => Err(e),
                None => Ok(self.committed(when, wrote)),
            };
            self.hand_back((done, commit, touched, self.durable), signals, handback);
        }
        if self.durable < self.commits {
            self.sync_now();
        }
        self.sync.finish(&self.conn);
        signals.committed(Vec::new(), NO_COMMIT, 0, self.durable);
    }

    /// Counts a commit and what it leaves to sync; its number.
    fn committed(&mut self, when: SyncWhen, wrote: bool) -> CommitNo {
        self.commits += 1;
        let n = self.commits;
        if self.sync.skipped() {
            if when == SyncWhen::Soon {
                self.lazy = n;
                if self.due.is_none() {
                    let within = Duration::from_micros(self.within.load(Ordering::Relaxed));
                    self.due = Some(Instant::now() + within);
                }
            }
        } else if wrote || self.durable >= self.lazy {
            // Synced (or the database never syncs): it carried every commit before it.
            self.durable = n;
            self.due = None;
        } else {
            // Synced in name only: SQLite wrote nothing, so it fsynced nothing, and lazy
            // commits before it are still waiting. Callers hear of this one after.
            self.sync_now();
        }
        CommitNo(n)
    }

    /// Commits the probe synced, which carries every commit before it to the disk: whether
    /// it did. On failure, it is tried again after [`SYNC_LATER_WITHIN`].
    fn sync_now(&mut self) -> bool {
        // Never inside a transaction a failed ROLLBACK left open: its COMMIT is not ours.
        let synced = self.conn.is_autocommit()
            && self.sync.prepare(&self.conn, true)
            && match execute_cached(&self.conn, &self.probe) {
                Ok(_) => true,
                Err(e) => {
                    if !self.failing {
                        tracing::error!(error = %e, "could not sync the commits before this one; trying again");
                    }
                    false
                }
            };
        if synced {
            if self.failing {
                tracing::info!("synced the commits that were waiting");
            }
            self.commits += 1;
            self.own_syncs.fetch_add(1, Ordering::Relaxed);
            self.durable = self.commits;
            self.due = None;
        } else {
            let within = Duration::from_micros(self.within.load(Ordering::Relaxed));
            self.due = Some(Instant::now() + within);
        }
        self.failing = !synced;
        synced
    }

    fn hand_back(&self, committed: Committed, signals: &Signals, handback: &OnceLock<HandBack>) {
        let woken = match handback.get() {
            Some(to_runtime) => to_runtime.send(committed).map_err(|e| e.0),
            None => Err(committed),
        };
        if let Err((done, commit, touched, durable)) = woken {
            signals.committed(done, commit, touched, durable);
        }
    }
}

/// How a job of a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Succeeded,
    Failed,
    Panicked,
}

/// Runs one job, a panic caught: a panicking job must not take the writer thread (and
/// every later write of the service) with it.
fn run_job(conn: &Connection, job: &mut WriteJob) -> Ran {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn))) {
        Ok(true) => Ran::Succeeded,
        Ok(false) => Ran::Failed,
        Err(_) => {
            tracing::error!("a database job panicked; its changes are rolled back");
            Ran::Panicked
        }
    }
}

/// Runs a batch in one transaction; what to tell its jobs' callers, and the commit's error.
///
/// Jobs first run without savepoints. A savepoint makes SQLite copy each page a job is
/// about to change into its sub-journal (so that `ROLLBACK TO` can put it back) and costs
/// two statements; most jobs succeed, and most that fail do so before changing anything
/// (a failed statement undoes itself), which needs no undoing. Only a job that fails or
/// panics after it changed rows (read from SQLite's count of changed rows: jobs change the
/// database through INSERT, UPDATE and DELETE only) makes the whole batch roll back and
/// run again, each job in a savepoint of its own, so that the failing one is undone alone.
fn commit_batch(conn: &Connection, mut batch: Vec<WriteJob>, unsynced: bool) -> Outcome {
    let mut ran: Vec<Ran> = Vec::with_capacity(batch.len());
    let result = (|| -> rusqlite::Result<bool> {
        begin(conn)?;
        if !run_without_savepoints(conn, &mut batch, &mut ran)? {
            execute_cached(conn, "ROLLBACK")?;
            begin(conn)?;
            let first = std::mem::take(&mut ran);
            run_with_savepoints(conn, &mut batch, &first, &mut ran)?;
        }
        if unsynced && TOUCHED.with(|t| t.get()) & 1 << Topic::OUTBOX.0 != 0 {
            execute_cached(conn, "ROLLBACK")?;
            return Ok(false);
        }
        execute_cached(conn, "COMMIT").map(|_| true)
    })();
    if result.is_err() && !conn.is_autocommit() {
        // What dropping a failed `Transaction` did: nothing of the batch stays.
        let _ = conn.execute_batch("ROLLBACK");
    }
    // A job that panicked, or that the batch never got to, is dropped: its caller hears
    // its reply channel close. (A batch sent back to be synced ran every job.)
    let survivors = batch
        .into_iter()
        .zip(ran)
        .filter(|(_, ran)| *ran != Ran::Panicked)
        .map(|(job, _)| job);
    match result {
        Ok(false) => {
            TOUCHED.with(|t| t.set(0));
            Outcome::SyncFirst(survivors.collect())
        }
        Ok(true) => {
            // Counted from the transaction that committed: a whole one rolled back before
            // it (ROLLBACK, BEGIN) wrote nothing that COMMIT writes, though SQLite counted
            // its rows.
            let wrote = conn.total_changes() != BEGUN_AT.with(Cell::get);
            Outcome::Done(
                survivors.map(|j| j.into_completion()).collect(),
                None,
                wrote,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "database commit failed");
            let done = survivors.map(|j| j.into_completion()).collect();
            Outcome::Done(done, Some(e.to_string()), false)
        }
    }
}

/// BEGIN (from the statement cache: `Connection::transaction` parses it again every time),
/// noting SQLite's count of changed rows at that moment.
fn begin(conn: &Connection) -> rusqlite::Result<()> {
    execute_cached(conn, "BEGIN")?;
    BEGUN_AT.with(|b| b.set(conn.total_changes()));
    Ok(())
}

/// The batch without savepoints: `false` when a job failed or panicked after changing
/// rows, which only rolling back the whole transaction can undo (that job's outcome is the
/// last one in `ran`).
fn run_without_savepoints(
    conn: &Connection,
    batch: &mut [WriteJob],
    ran: &mut Vec<Ran>,
) -> rusqlite::Result<bool> {
    let run = |sql: &str| execute_cached(conn, sql);
    let start = conn.total_changes();
    for job in batch.iter_mut() {
        let before = conn.total_changes();
        UNDONE.with(|u| u.set(false));
        let outcome = run_job(conn, job);
        ran.push(outcome);
        if conn.is_autocommit() {
            return Err(transaction_lost());
        }
        if outcome == Ran::Succeeded {
            continue;
        }
        if conn.total_changes() != before && !UNDONE.with(Cell::take) {
            return Ok(false);
        }
        if conn.total_changes() == start {
            // Nothing is written yet: the transaction begins again, so that a job that
            // met a busy database (another process writing) leaves no stale snapshot, on
            // which every later job's write would fail too.
            run("ROLLBACK")?;
            begin(conn)?;
        }
    }
    Ok(true)
}

/// SQLite rolled the transaction back itself (an I/O error, a full disk) under a job that
/// went on: what the jobs before it wrote is gone, and what it ran afterwards committed on
/// its own. The batch fails, and every caller hears so.
fn transaction_lost() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("the transaction was rolled back during a write".into()),
    )
}

/// The batch again, each job that fails undone alone: in a savepoint of its own, but the
/// first ones while nothing in the transaction has succeeded (rolling the whole
/// transaction back undoes such a job alone). A job that panicked in the `first` pass is a
/// bug: it is not run a second time.
fn run_with_savepoints(
    conn: &Connection,
    batch: &mut [WriteJob],
    first: &[Ran],
    ran: &mut Vec<Ran>,
) -> rusqlite::Result<()> {
    let run = |sql: &str| execute_cached(conn, sql);
    let mut empty = true;
    for (i, job) in batch.iter_mut().enumerate() {
        if first.get(i) == Some(&Ran::Panicked) {
            ran.push(Ran::Panicked);
            continue;
        }
        if !empty {
            run("SAVEPOINT job")?;
        }
        let outcome = run_job(conn, job);
        if outcome == Ran::Succeeded {
            if empty && conn.is_autocommit() {
                ran.push(outcome);
                // With no savepoint to release, nothing else would notice, and later jobs
                // would commit on their own.
                return Err(transaction_lost());
            }
            if !empty {
                run("RELEASE job")?;
            }
            empty = false;
        } else if empty {
            run("ROLLBACK")?;
            begin(conn)?;
        } else {
            run("ROLLBACK TO job")?;
            run("RELEASE job")?;
        }
        ran.push(outcome);
    }
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.jobs.lock().map(|mut j| j.take()).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &dir.path().join("t.db"),
            Durability::Normal,
            &["CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"],
        )
        .unwrap();
        (dir, db)
    }

    #[test]
    fn a_failure_to_open_says_what_could_not_be_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Db::open(&file.join("t.db"), Durability::Normal, &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, DbError::DataDir { .. }) && text.contains("not-a-dir"),
            "{text}"
        );
        std::fs::write(dir.path().join("garbage.db"), vec![7u8; 8192]).unwrap();
        let err = Db::open(
            &dir.path().join("garbage.db"),
            Durability::Normal,
            &["CREATE TABLE t (k TEXT);"],
        )
        .unwrap_err();
        assert!(
            matches!(err, DbError::Open { .. }) && err.to_string().contains("garbage.db"),
            "{err}"
        );
    }

    /// SQLite creates `-wal` and `-shm` with the main file's mode (not the umask's): the
    /// reason creating the main file 0600 is enough.
    #[tokio::test]
    async fn the_database_and_the_files_sqlite_adds_beside_it_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let path = dir.join("t.db");
        let db = Db::open(&path, Durability::Normal, &["CREATE TABLE t (k);"]).unwrap();
        db.write(|c| -> Result<usize, DbError> { Ok(c.execute("INSERT INTO t VALUES (1)", [])?) })
            .await
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        for file in ["t.db", "t.db-wal", "t.db-shm"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        db.close();

        // A database made before (or by something else) with the umask's 0644 is tightened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let db = Db::open(&path, Durability::Normal, &["CREATE TABLE t (k);"]).unwrap();
        assert_eq!(mode(&path), 0o600);
        db.close();
    }

    /// With `Durability::Full`, a batch of nothing but [`Db::write_unsynced`] jobs commits
    /// with `synchronous=NORMAL` (no fsync), and any batch holding a [`Db::write`] job, or
    /// the next one, with `FULL` again. Each job reads the setting its batch commits with.
    /// With `Normal` nothing changes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_batches_of_unsynced_writes_commit_without_a_sync() {
        const FULL: i64 = 2;
        const NORMAL: i64 = 1;
        let level = |c: &Connection| -> Result<i64, DbError> {
            Ok(c.pragma_query_value(None, "synchronous", |r| r.get(0))?)
        };
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(&tmp.path().join("t.db"), Durability::Full, &[]).unwrap();
        assert_eq!(db.write(level).await.unwrap(), FULL);
        assert_eq!(db.write_unsynced(level).await.unwrap(), NORMAL);
        assert_eq!(db.write_unsynced(level).await.unwrap(), NORMAL);
        assert_eq!(db.write(level).await.unwrap(), FULL);

        // Both queued while the writer is held by a job that waits for them to be, so they
        // share a batch (or join the held job's, which is synced): the synced one decides.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Mutex::new(held);
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let mut started = Some(started);
        let slow = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(move |_c| -> Result<(), DbError> {
                    if let Some(s) = started.take() {
                        let _ = s.send(());
                    }
                    let _ = held.lock().unwrap().recv();
                    Ok(())
                })
                .await
            }
        });
        running.await.unwrap();
        let mut unsynced = std::pin::pin!(db.write_unsynced(level));
        let mut synced = std::pin::pin!(db.write(level));
        // A first poll hands each job to the writer.
        assert!(futures::poll!(&mut unsynced).is_pending());
        assert!(futures::poll!(&mut synced).is_pending());
        release.send(()).unwrap();
        slow.await.unwrap().unwrap();
        assert_eq!(
            (unsynced.await.unwrap(), synced.await.unwrap()),
            (FULL, FULL)
        );
        db.close();

        let db = Db::open(&tmp.path().join("n.db"), Durability::Normal, &[]).unwrap();
        assert_eq!(db.write_unsynced(level).await.unwrap(), NORMAL);
        assert_eq!(db.write(level).await.unwrap(), NORMAL);
        db.close();
    }

    /// A lazy write commits without a sync, and [`Db::durable`] of its commit resolves once
    /// one has carried it to the disk: the writer's own, made for it when no synced commit
    /// comes in time; a synced commit that writes (none of the writer's own is needed
    /// then); or one that writes nothing — none at all, or rows it rolled back whole — which
    /// syncs nothing, so the writer adds its own. An unsynced commit after them holds
    /// nobody up. A lazy write that adds to the outbox is committed synced (its job runs
    /// again). Closing syncs what is left; with `Normal` every commit counts as durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lazy_write_is_synced_by_the_next_commit_that_writes_or_by_the_writer() {
        const FULL: i64 = 2;
        const NORMAL: i64 = 1;
        let level = |c: &Connection| -> Result<i64, DbError> {
            Ok(c.pragma_query_value(None, "synchronous", |r| r.get(0))?)
        };
        let insert = |c: &Connection| -> Result<i64, DbError> {
            c.execute("INSERT INTO t (k) VALUES ('x')", [])?;
            Ok(c.pragma_query_value(None, "synchronous", |r| r.get(0))?)
        };
        let durable_now =
            async |db: &Db, n: CommitNo| futures::poll!(std::pin::pin!(db.durable(n)));
        let tmp = tempfile::tempdir().unwrap();
        let migrations = ["CREATE TABLE t (k TEXT)"];
        let db = Db::open(&tmp.path().join("t.db"), Durability::Full, &migrations).unwrap();

        let (level_seen, n) = db.write_as(SyncWhen::Soon, insert).await.unwrap();
        assert_eq!(level_seen, NORMAL);
        let durable = tokio::time::timeout(Duration::from_secs(10), db.durable(n)).await;
        assert_eq!(durable, Ok(true), "the writer synced it by itself");
        assert_eq!(db.own_syncs(), 1);

        // From here on the writer would wait an hour: only other commits sync.
        db.sync_lazy_within(Duration::from_secs(3600));
        let (_, n) = db.write_as(SyncWhen::Soon, insert).await.unwrap();
        assert!(durable_now(&db, n).await.is_pending(), "waits for a sync");
        assert_eq!(db.write(insert).await.unwrap(), FULL);
        assert_eq!(
            durable_now(&db, n).await,
            Poll::Ready(true),
            "carried by a synced commit"
        );
        assert_eq!(db.own_syncs(), 1, "that needed none of the writer's own");
        assert_eq!(db.write(level).await.unwrap(), FULL);
        assert_eq!(
            db.own_syncs(),
            1,
            "nothing waited: writing nothing needs no sync"
        );

        // Then a synced commit that writes nothing, after an unsynced one.
        let (_, n) = db.write_as(SyncWhen::Soon, insert).await.unwrap();
        db.write_unsynced(insert).await.unwrap();
        assert!(durable_now(&db, n).await.is_pending());
        assert_eq!(
            db.write(level).await.unwrap(),
            FULL,
            "synced, writing nothing"
        );
        assert_eq!(
            durable_now(&db, n).await,
            Poll::Ready(true),
            "the writer synced it"
        );
        assert_eq!(db.own_syncs(), 2);

        // A synced job that wrote, then failed: its whole transaction is rolled back and
        // begun again, so the commit writes nothing, though SQLite counted its row.
        let (_, n) = db.write_as(SyncWhen::Soon, insert).await.unwrap();
        let failed = db
            .write(|c| -> Result<(), DbError> {
                c.execute("INSERT INTO t (k) VALUES ('undone')", [])?;
                Err(DbError::Closed)
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(
            durable_now(&db, n).await,
            Poll::Ready(true),
            "the writer synced it"
        );
        assert_eq!(db.own_syncs(), 3);

        let mut relay = db.changes(Topic::OUTBOX);
        relay.borrow_and_update();
        let wrote = db
            .write_as(SyncWhen::Soon, move |c| {
                c.execute("INSERT INTO t (k) VALUES ('event')", [])?;
                touched(Topic::OUTBOX);
                level(c)
            })
            .await;
        let (level_seen, n) = wrote.unwrap();
        assert_eq!(level_seen, FULL, "run again and committed synced");
        relay.changed().await.unwrap();
        assert_eq!(durable_now(&db, n).await, Poll::Ready(true));

        // Left to the writer's stop.
        let (_, n) = db.write_as(SyncWhen::Soon, insert).await.unwrap();
        assert!(durable_now(&db, n).await.is_pending());
        db.close();
        assert_eq!(durable_now(&db, n).await, Poll::Ready(true));
        let rows = Connection::open(tmp.path().join("t.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        assert_eq!(rows, 8);

        // Another process on the same file (this one was closed, but it might have been
        // killed with lazy commits not synced): its first synced commit that writes
        // nothing syncs what it found, once.
        let db = Db::open(&tmp.path().join("t.db"), Durability::Full, &migrations).unwrap();
        db.write(level).await.unwrap();
        db.write(level).await.unwrap();
        assert_eq!(db.own_syncs(), 1);
        db.close();

        let db = Db::open(&tmp.path().join("n.db"), Durability::Normal, &migrations).unwrap();
        let (level_seen, n) = db.write_as(SyncWhen::Soon, insert).await.unwrap();
        assert_eq!(level_seen, NORMAL);
        assert_eq!(
            durable_now(&db, n).await,
            Poll::Ready(true),
            "nothing is ever synced with normal: no one waits"
        );
        assert_eq!(db.own_syncs(), 0);
        db.close();
    }

    /// A lazy commit past its time is synced with the next batch, however busy the writer
    /// is: here a write that holds the writer past the lazy commit's time (unsynced, so it
    /// carries nothing), with another unsynced write queued behind it, which is then
    /// committed synced instead of leaving the lazy one waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lazy_commit_past_its_time_is_synced_with_the_next_batch() {
        const FULL: i64 = 2;
        const NORMAL: i64 = 1;
        let level = |c: &Connection| -> Result<i64, DbError> {
            Ok(c.pragma_query_value(None, "synchronous", |r| r.get(0))?)
        };
        let tmp = tempfile::tempdir().unwrap();
        let migrations = ["CREATE TABLE t (k TEXT)"];
        let db = Db::open(&tmp.path().join("t.db"), Durability::Full, &migrations).unwrap();
        // Long enough for the busy write to be taken before it, even on a loaded machine.
        let within = Duration::from_secs(1);
        db.sync_lazy_within(within);
        let (_, lazy) = db
            .write_as(SyncWhen::Soon, |c| -> Result<usize, DbError> {
                Ok(c.execute("INSERT INTO t (k) VALUES ('lazy')", [])?)
            })
            .await
            .unwrap();

        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Mutex::new(held);
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let mut started = Some(started);
        let busy = tokio::spawn({
            let db = db.clone();
            async move {
                db.write_unsynced(move |c| {
                    if let Some(s) = started.take() {
                        let _ = s.send(());
                    }
                    let _ = held.lock().unwrap().recv();
                    // Past the lazy commit's time, whenever it began.
                    std::thread::sleep(within + Duration::from_millis(100));
                    level(c)
                })
                .await
            }
        });
        running.await.unwrap();
        let mut queued = std::pin::pin!(db.write_unsynced(move |c| {
            c.execute("INSERT INTO t (k) VALUES ('queued')", [])?;
            level(c)
        }));
        assert!(
            futures::poll!(&mut queued).is_pending(),
            "handed to the writer"
        );
        release.send(()).unwrap();
        assert_eq!(
            busy.await.unwrap().unwrap(),
            NORMAL,
            "taken before the time"
        );
        assert_eq!(queued.await.unwrap(), FULL, "synced for the lazy commit");
        assert_eq!(
            futures::poll!(std::pin::pin!(db.durable(lazy))),
            Poll::Ready(true)
        );
        assert_eq!(db.own_syncs(), 0, "no sync of the writer's own was needed");
        db.close();
    }

    /// A commit's wake-ups go through a task on the runtime that wrote first. A write whose
    /// answer was queued to that runtime when it went away is still answered; once it is
    /// gone, writes from another runtime or from no runtime at all still get their
    /// answers, and a task waiting on a topic is still woken.
    #[test]
    fn writes_are_answered_after_the_runtime_that_wrote_first_is_gone() {
        let (_dir, db) = db();
        let insert = |k: &'static str| {
            let db = db.clone();
            async move {
                db.write(move |c| -> Result<usize, DbError> {
                    touched(Topic::OUTBOX);
                    Ok(c.execute("INSERT INTO t (k, v) VALUES (?1, 1)", [k])?)
                })
                .await
            }
        };
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let answers = first.block_on(async {
            futures::future::join_all(["a", "b", "c"].map(|k| tokio::spawn(insert(k)))).await
        });
        assert!(answers.into_iter().all(|a| a.unwrap().unwrap() == 1));
        // The first runtime idles (nothing drives it) while another thread writes: that
        // write's answer waits in the hand-back until the runtime is dropped.
        let queued = insert("queued");
        let elsewhere = std::thread::spawn(move || futures::executor::block_on(queued));
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !elsewhere.is_finished(),
            "answered through the idle runtime"
        );
        drop(first);
        assert_eq!(elsewhere.join().unwrap().unwrap(), 1);

        let second = runtime();
        second.block_on(async {
            let mut outbox = db.changes(Topic::OUTBOX);
            outbox.borrow_and_update();
            assert_eq!(insert("d").await.unwrap(), 1);
            tokio::time::timeout(Duration::from_secs(5), outbox.changed())
                .await
                .expect("the waiter is woken")
                .unwrap();
        });
        assert_eq!(futures::executor::block_on(insert("e")).unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_a_failing_one_is_rolled_back_alone() {
        let (_dir, db) = db();
        db.write(|c| -> Result<usize, DbError> {
            Ok(c.execute("INSERT INTO t (k, v) VALUES ('seed', 0)", [])?)
        })
        .await
        .unwrap();
        let mut calls = Vec::new();
        for i in 0..200 {
            let db = db.clone();
            calls.push(tokio::spawn(async move {
                db.write(move |c| -> Result<(), DbError> {
                    c.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (format!("k{i}"), i))?;
                    if i % 10 == 0 {
                        // Writes, then fails: its insert must vanish, not the others'.
                        c.execute("INSERT INTO t (k, v) VALUES ('seed', 0)", [])?;
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut failed = 0;
        for c in calls {
            if c.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        let n: i64 = db
            .read(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .await
            .unwrap();
        assert_eq!(n, 1 + 180);
    }

    type Answer = oneshot::Receiver<Result<(usize, CommitNo), DbError>>;

    /// What a batch's callers hear, from what [`commit`] returned.
    fn ended(error: &Option<String>) -> Result<CommitNo, String> {
        error.clone().map_or(Ok(CommitNo(1)), Err)
    }
    type Runs = std::sync::Arc<std::sync::atomic::AtomicUsize>;

    fn runs(r: &Runs) -> usize {
        r.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A job as [`Db::write`] makes it, the receiver of its answer, and how often it ran.
    fn write_job(
        f: impl FnMut(&Connection) -> Result<usize, DbError> + Send + 'static,
    ) -> (WriteJob, Answer, Runs) {
        let count = Runs::default();
        let counted = count.clone();
        let mut f = f;
        let (reply, rx) = oneshot::channel();
        let job = Write {
            f: move |c: &Connection| {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                f(c)
            },
            correlation: None,
            result: None,
            reply,
            sync: SyncWhen::Now,
        };
        (Box::new(job), rx, count)
    }

    /// Inserts `key`, then fails if told to.
    /// [`commit_batch`] of a batch that is synced (as every batch is where this is used).
    fn commit(conn: &Connection, batch: Vec<WriteJob>) -> (Vec<Completion>, Option<String>) {
        match commit_batch(conn, batch, false) {
            Outcome::Done(done, error, _) => (done, error),
            Outcome::SyncFirst(_) => unreachable!("only an unsynced batch is sent back"),
        }
    }

    fn insert(key: &'static str, fails: bool) -> (WriteJob, Answer, Runs) {
        write_job(move |c| {
            c.execute("INSERT INTO t (k, v) VALUES (?1, 1)", [key])?;
            if fails {
                return Err(DbError::Closed);
            }
            Ok(1)
        })
    }

    fn keys(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT k FROM t ORDER BY k")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn answer(rx: &mut Answer) -> Option<Result<usize, String>> {
        rx.try_recv()
            .ok()
            .map(|r| r.map(|(n, _)| n).map_err(|e| e.to_string()))
    }

    /// One batch, failures first, in the middle and last, and a panic, each after it
    /// wrote: each failing job's writes vanish and nothing else's, and each caller hears
    /// its own outcome.
    #[test]
    fn a_batch_rolls_back_each_job_that_fails_after_writing_alone() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        let (panics, mut panicked, _) = write_job(|c| {
            c.execute("INSERT INTO t (k, v) VALUES ('panicked', 1)", [])?;
            panic!("a bug in a handler");
        });
        let (first, mut first_rx, _) = insert("first-fails", true);
        let (a, mut a_rx, _) = insert("a", false);
        let (middle, mut middle_rx, _) = insert("middle-fails", true);
        let (b, mut b_rx, _) = insert("b", false);
        let (last, mut last_rx, _) = insert("last-fails", true);
        let (done, error) = commit(&conn, vec![first, panics, a, middle, b, last]);
        assert_eq!(
            (done.len(), &error),
            (5, &None),
            "every job but the panic is answered"
        );
        for d in done {
            d(ended(&error));
        }
        assert_eq!(keys(&conn), ["a", "b"]);
        assert!(conn.is_autocommit(), "the batch's transaction is closed");
        assert_eq!(answer(&mut a_rx), Some(Ok(1)));
        assert_eq!(answer(&mut b_rx), Some(Ok(1)));
        for rx in [&mut first_rx, &mut middle_rx, &mut last_rx] {
            assert!(matches!(answer(rx), Some(Err(_))));
        }
        assert!(
            matches!(
                panicked.try_recv(),
                Err(oneshot::error::TryRecvError::Closed)
            ),
            "a panicked job's caller hears its channel close"
        );
    }

    /// Jobs that fail before writing anything need no undoing: the batch runs once,
    /// without savepoints. One that fails after writing makes every job run again.
    #[test]
    fn a_batch_runs_again_only_when_a_job_failed_after_writing() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        // A duplicate key fails in its statement: nothing of it stays to undo.
        let (seed, _, _) = insert("taken", false);
        let (done, error) = commit(&conn, vec![seed]);
        assert_eq!((done.len(), error), (1, None));

        let (a, mut a_rx, a_runs) = insert("a", false);
        let (refuses, mut refuses_rx, refuses_runs) = write_job(|_| Err(DbError::Closed));
        let (duplicate, mut duplicate_rx, _) = insert("taken", false);
        let (b, mut b_rx, b_runs) = insert("b", false);
        let (done, error) = commit(&conn, vec![a, refuses, duplicate, b]);
        assert_eq!((done.len(), &error), (4, &None));
        for d in done {
            d(ended(&error));
        }
        assert_eq!(keys(&conn), ["a", "b", "taken"]);
        assert_eq!(
            (runs(&a_runs), runs(&refuses_runs), runs(&b_runs)),
            (1, 1, 1),
            "no job ran twice"
        );
        assert_eq!(answer(&mut a_rx), Some(Ok(1)));
        assert_eq!(answer(&mut b_rx), Some(Ok(1)));
        assert!(matches!(answer(&mut refuses_rx), Some(Err(_))));
        assert!(matches!(answer(&mut duplicate_rx), Some(Err(_))));

        let (c, mut c_rx, c_runs) = insert("c", false);
        let (fails, _, _) = insert("fails-after-writing", true);
        let (done, error) = commit(&conn, vec![c, fails]);
        for d in done {
            d(ended(&error));
        }
        assert_eq!(keys(&conn), ["a", "b", "c", "taken"]);
        assert_eq!(
            runs(&c_runs),
            2,
            "rolled back with the failing job, then run again"
        );
        assert_eq!(answer(&mut c_rx), Some(Ok(1)));
    }

    /// A job that panics after writing is undone alone; it is not run again, the others
    /// are (rolled back with it). One that panics before writing costs nothing more.
    #[test]
    fn a_panicking_job_is_undone_alone_and_never_run_twice() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        let (a, mut a_rx, a_runs) = insert("a", false);
        let (panics, mut panicked, panic_runs) = write_job(|c| {
            c.execute("INSERT INTO t (k, v) VALUES ('panicked', 1)", [])?;
            panic!("a bug in a handler");
        });
        let (b, mut b_rx, b_runs) = insert("b", false);
        let (done, error) = commit(&conn, vec![a, panics, b]);
        assert_eq!((done.len(), &error), (2, &None));
        for d in done {
            d(ended(&error));
        }
        assert_eq!(keys(&conn), ["a", "b"]);
        assert_eq!((runs(&a_runs), runs(&panic_runs), runs(&b_runs)), (2, 1, 1));
        assert_eq!(answer(&mut a_rx), Some(Ok(1)));
        assert_eq!(answer(&mut b_rx), Some(Ok(1)));
        assert!(matches!(
            panicked.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));

        let (c, mut c_rx, c_runs) = insert("c", false);
        let (panics, mut panicked, _) = write_job(|_| panic!("before writing"));
        let (d, _, d_runs) = insert("d", false);
        let (done, error) = commit(&conn, vec![c, panics, d]);
        for done in done {
            done(ended(&error));
        }
        assert_eq!(keys(&conn), ["a", "b", "c", "d"]);
        assert_eq!((runs(&c_runs), runs(&d_runs)), (1, 1));
        assert_eq!(answer(&mut c_rx), Some(Ok(1)));
        assert!(matches!(
            panicked.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }

    /// A job that undid its own changes before failing (the inbox does, to a savepoint of
    /// its own) says so, and its batch is not run again.
    #[test]
    fn a_job_that_undid_its_own_changes_does_not_make_the_batch_run_again() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        let (a, _, a_runs) = insert("a", false);
        let (undoes, mut undoes_rx, _) = write_job(|c| {
            c.execute_batch("SAVEPOINT own")?;
            c.execute("INSERT INTO t (k, v) VALUES ('undone', 1)", [])?;
            c.execute_batch("ROLLBACK TO own; RELEASE own")?;
            undid_own_changes();
            Err(DbError::Closed)
        });
        let (b, _, b_runs) = insert("b", false);
        let (done, error) = commit(&conn, vec![a, undoes, b]);
        for d in done {
            d(ended(&error));
        }
        assert_eq!(keys(&conn), ["a", "b"]);
        assert_eq!((runs(&a_runs), runs(&b_runs)), (1, 1));
        assert!(matches!(answer(&mut undoes_rx), Some(Err(_))));
    }

    /// Another process holding the write lock makes a job fail on a busy database; the
    /// snapshot that job read is not left to the next one, whose write then goes through
    /// once the other process is done.
    #[test]
    fn a_job_that_met_a_busy_database_leaves_no_stale_snapshot_to_the_next() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        conn.busy_timeout(Duration::ZERO).unwrap();
        let neighbour = Connection::open(&db.inner.path).unwrap();
        neighbour
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (k, v) VALUES ('neighbour', 1);")
            .unwrap();
        let mut neighbour = Some(neighbour);
        let (busy, mut busy_rx, _) = write_job(move |c| {
            let n: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
            let wrote = c.execute("INSERT INTO t (k, v) VALUES ('busy', ?1)", [n]);
            // The neighbour finishes while this transaction still holds its snapshot.
            if let Some(other) = neighbour.take() {
                other.execute_batch("COMMIT").unwrap();
            }
            Ok(wrote?)
        });
        let (after, mut after_rx, _) = insert("after", false);
        let (done, error) = commit(&conn, vec![busy, after]);
        assert_eq!(error, None);
        for d in done {
            d(ended(&error));
        }
        assert!(matches!(answer(&mut busy_rx), Some(Err(_))));
        assert_eq!(answer(&mut after_rx), Some(Ok(1)));
        assert_eq!(keys(&conn), ["after", "neighbour"]);
    }

    /// SQLite giving the transaction up under a later job fails the batch too: the jobs
    /// before it are told of the failure, not of a success their rows did not survive.
    #[test]
    fn a_transaction_lost_under_a_later_job_fails_the_batch() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        let (a, mut a_rx, _) = insert("a", false);
        let (loses, _, _) = write_job(|c| {
            c.execute_batch("ROLLBACK")?;
            Ok(0)
        });
        let (done, error) = commit(&conn, vec![a, loses]);
        assert!(error.is_some());
        for d in done {
            d(ended(&error));
        }
        assert!(matches!(answer(&mut a_rx), Some(Err(_))));
        assert!(keys(&conn).is_empty());
    }

    /// A transaction SQLite gave up under a job that went on (simulated: the job rolls
    /// it back itself) fails the whole batch: the later job's row is not committed on its
    /// own, and every caller hears of the failure.
    #[test]
    fn a_transaction_lost_under_the_first_job_fails_the_batch() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        let (loses, mut loses_rx, _) = write_job(|c| {
            c.execute_batch("ROLLBACK")?;
            Ok(0)
        });
        let (inserts, mut inserts_rx, _) = insert("alone", false);
        let (done, error) = commit(&conn, vec![loses, inserts]);
        assert!(error.is_some());
        for d in done {
            d(ended(&error));
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        assert!(matches!(answer(&mut loses_rx), Some(Err(_))));
        assert!(matches!(
            inserts_rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let (_dir, db) = db();
        let boom = db
            .write(|c| -> Result<(), DbError> {
                c.execute("INSERT INTO t (k, v) VALUES ('lost', 1)", [])?;
                if c.is_autocommit() {
                    return Ok(());
                }
                panic!("a bug in a handler");
            })
            .await;
        assert!(boom.is_err());
        db.write(|c| -> Result<usize, DbError> {
            Ok(c.execute("INSERT INTO t (k, v) VALUES ('kept', 2)", [])?)
        })
        .await
        .expect("the writer survived");
        let keys: Vec<String> = db
            .read(|c| -> Result<Vec<String>, DbError> {
                let mut st = c.prepare("SELECT k FROM t")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(keys, ["kept"], "the panicking job's insert was rolled back");
    }

    #[tokio::test]
    async fn migrations_run_once_and_reads_work_inline_and_on_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let m = ["CREATE TABLE a (x);", "CREATE TABLE b (y);"];
        let db = Db::open(&path, Durability::Normal, &m[..1]).unwrap();
        db.close();
        let db = Db::open(&path, Durability::Normal, &m).unwrap();
        let v: i64 = db
            .read(|c| {
                c.pragma_query_value(None, "user_version", |r| r.get(0))
                    .map_err(DbError::from)
            })
            .await
            .unwrap();
        assert_eq!(v, 2);
        let n: i64 = db
            .read_blocking(|c| {
                c.query_row("SELECT count(*) FROM b", [], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    /// A consumer's batch applied again with a savepoint per event (after an event wrote and
    /// then refused) takes them one after another inside its job's savepoint, so the
    /// sub-journal of pages they may restore grows with the batch. Past
    /// SQLite's spill size (64 KiB unless built with `SQLITE_STMTJRNL_SPILL`, which
    /// `.cargo/config.toml` sets to 8 MiB) it goes to a temporary file (an unnamed
    /// `/var/tmp/#<inode>` here, `etilqs_…` where `O_TMPFILE` is missing) created, written
    /// and dropped for every batch. Here a job journals ~800 KiB under 200 savepoints and
    /// looks at its own open files while it still holds them.
    #[tokio::test]
    async fn a_batchs_savepoints_keep_their_journal_in_memory() {
        let (_dir, db) = db();
        let spilled = db
            .write(|c| -> Result<Vec<String>, DbError> {
                let big = "x".repeat(5000);
                for i in 0..200 {
                    c.execute_batch("SAVEPOINT event")?;
                    c.execute("INSERT INTO t VALUES (?1, ?2)", (format!("{i}{big}"), i))?;
                    c.execute_batch("RELEASE event")?;
                }
                Ok(std::fs::read_dir("/proc/self/fd")
                    .unwrap()
                    .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|p| p.display().to_string())
                    .filter(|p| {
                        let name = p.rsplit('/').next().unwrap_or_default();
                        name.starts_with("etilqs")
                            || (name.starts_with('#') && p.ends_with("(deleted)"))
                    })
                    .collect())
            })
            .await
            .unwrap();
        assert_eq!(
            spilled,
            Vec::<String>::new(),
            "a sub-journal went to a file"
        );
        let n: i64 = db
            .read(|c| Ok::<_, DbError>(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_topic_wakes_only_for_the_commits_that_touched_it() {
        let (_dir, db) = db();
        let mut outbox = db.changes(Topic::OUTBOX);
        let mut own = db.changes(Topic::own(3));
        let put = |k: &'static str, topic: Option<Topic>| {
            let db = db.clone();
            async move {
                db.write(move |c| -> Result<(), DbError> {
                    c.execute("INSERT INTO t (k, v) VALUES (?1, 1)", [k])?;
                    if let Some(t) = topic {
                        touched(t);
                    }
                    Ok(())
                })
                .await
                .unwrap()
            }
        };
        let soon = Duration::from_secs(5);
        put("a", None).await;
        put("b", Some(Topic::own(3))).await;
        // The writer announces batches in order: once the second is announced, the first
        // one's announcements have all been made.
        tokio::time::timeout(soon, own.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !outbox.has_changed().unwrap(),
            "commits that touched no outbox row do not wake the relay"
        );
        put("c", Some(Topic::OUTBOX)).await;
        tokio::time::timeout(soon, outbox.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(!own.has_changed().unwrap(), "topics are apart");
    }

    /// A read waiting for a row is woken by the commit that touched its topic, and not by
    /// the others: commits that touch nothing leave it asleep (under load they are most
    /// commits, and each wake-up is a read), and the one that adds the row ends the wait
    /// at once, though it could last an hour.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_read_is_woken_by_the_commit_that_touched_its_topic() {
        use rusqlite::OptionalExtension;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (_dir, db) = db();
        let topic = Topic::own(2);
        let reads = Arc::new(AtomicUsize::new(0));
        let waiting = tokio::spawn({
            let (db, reads) = (db.clone(), reads.clone());
            async move {
                db.read_eventually(topic, Duration::from_secs(3600), move |c| {
                    reads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, DbError>(
                        c.query_row("SELECT v FROM t WHERE k = 'late'", [], |r| {
                            r.get::<_, i64>(0)
                        })
                        .optional()?,
                    )
                })
                .await
            }
        });
        let soon = Duration::from_secs(20);
        let deadline = tokio::time::Instant::now() + soon;
        while reads.load(Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the first read");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for k in ["other-1", "other-2", "other-3"] {
            db.write(move |c| -> Result<(), DbError> {
                c.execute("INSERT INTO t (k, v) VALUES (?1, 1)", [k])?;
                Ok(())
            })
            .await
            .unwrap();
        }
        // Time for a wake-up the untouched commits would have caused.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "untouched commits wake nobody"
        );
        db.write(move |c| -> Result<(), DbError> {
            c.execute("INSERT INTO t (k, v) VALUES ('late', 7)", [])?;
            touched(topic);
            Ok(())
        })
        .await
        .unwrap();
        let found = tokio::time::timeout(soon, waiting)
            .await
            .expect("woken by the commit that touched the topic")
            .unwrap()
            .unwrap();
        assert_eq!(found, Some(7));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    /// A batch whose COMMIT fails (here a deferred foreign key) leaves nothing behind, and
    /// the writer goes on: the next batch begins afresh instead of finding the failed one
    /// still open ("cannot start a transaction within a transaction", forever).
    #[tokio::test]
    async fn a_failed_commit_rolls_the_batch_back_and_the_next_one_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &dir.path().join("fk.db"),
            Durability::Normal,
            &["CREATE TABLE p (id INTEGER PRIMARY KEY);
               CREATE TABLE c (pid INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);"],
        )
        .unwrap();
        let err = db
            .write(|c| -> Result<usize, DbError> {
                Ok(c.execute("INSERT INTO c VALUES (42)", [])?)
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Commit(e) if e.contains("FOREIGN KEY")),
            "{err}"
        );
        db.write(|c| -> Result<usize, DbError> {
            Ok(c.execute("INSERT INTO p VALUES (1)", [])?
                + c.execute("INSERT INTO c VALUES (1)", [])?)
        })
        .await
        .unwrap();
        let rows: Vec<i64> = db
            .read(|c| -> Result<Vec<i64>, DbError> {
                let mut st = c.prepare("SELECT pid FROM c")?;
                Ok(st
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            [1],
            "the failed batch's row is gone, the next one's is there"
        );
    }
}
