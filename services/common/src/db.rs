//! SQLite for services: WAL, busy timeout, foreign keys, versioned migrations, and a way
//! to run queries from async handlers without blocking the runtime.
//!
//! Writes go to one writer thread that commits whatever queued up while it was busy in a
//! single transaction (group commit), each caller's work inside its own savepoint: a caller
//! whose closure fails is rolled back alone, and every caller hears back only after the
//! commit is durable. Reads run on pooled read connections (WAL lets them run beside the
//! writer) on a blocking-capable thread.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

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
    /// fsync every commit: a 2xx answer survives power loss.
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
}

/// Says, from inside a [`Db::write`] job, that its transaction changes `topic`. A job that
/// is rolled back afterwards only causes a wake-up that finds nothing; outside a writer job
/// (a test's bare connection) it does nothing.
pub fn touched(topic: Topic) {
    TOUCHED.with(|t| t.set(t.get() | 1 << topic.0));
}

type Completion = Box<dyn FnOnce(Option<String>) + Send>;
type WriteJob = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// A service's database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
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
}

impl Signals {
    fn committed(&self, done: Vec<Completion>, error: Option<String>, touched: u8) {
        for d in done {
            d(error.clone());
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

/// A commit's completions, its error, and the topics it touched.
type Committed = (Vec<Completion>, Option<String>, u8);

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
        while let Ok((done, error, touched)) = self.rx.try_recv() {
            self.signals.committed(done, error, touched);
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
    // rusqlite keeps 16 prepared statements by default; the writer's savepoints take three
    // of them on every job, and a service's write path (inbox, outbox, idempotency and its
    // own store) uses more than the rest, which would then be prepared again and again.
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
        });
        let handback: Arc<OnceLock<HandBack>> = Arc::default();
        let (writer_signals, writer_handback) = (signals.clone(), handback.clone());
        let name = format!(
            "db-writer-{}",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("db")
        );
        let writer = std::thread::Builder::new()
            .name(name)
            .spawn(move || run_writer(conn, rx, &writer_signals, &writer_handback))
            .map_err(|e| DbError::Commit(e.to_string()))?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
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
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.hand_back_here();
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        // The job runs on the writer thread: the request's correlation id goes with it, for
        // the events it enqueues.
        let correlation = crate::correlation::current();
        let job: WriteJob = Box::new(move |conn| {
            let result = crate::correlation::on_this_thread(correlation, || f(conn));
            let ok = result.is_ok();
            let done: Completion = Box::new(move |commit_error| {
                let out = match commit_error {
                    None => result,
                    Some(e) => Err(E::from(DbError::Commit(e))),
                };
                let _ = tx.send(out);
            });
            (ok, done)
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
                while let Some((done, error, touched)) = waker.rx.recv().await {
                    waker.signals.committed(done, error, touched);
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

fn run_writer(
    conn: Connection,
    jobs: mpsc::Receiver<WriteJob>,
    signals: &Signals,
    handback: &OnceLock<HandBack>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let (done, error) = commit_batch(&conn, batch);
        let touched = TOUCHED.with(|t| t.replace(0));
        let woken = match handback.get() {
            Some(to_runtime) => to_runtime.send((done, error, touched)).map_err(|e| e.0),
            None => Err((done, error, touched)),
        };
        if let Err((done, error, touched)) = woken {
            signals.committed(done, error, touched);
        }
    }
}

/// Runs a batch in one transaction; what to tell its jobs' callers, and the commit's error.
fn commit_batch(conn: &Connection, batch: Vec<WriteJob>) -> (Vec<Completion>, Option<String>) {
    let mut done: Vec<Completion> = Vec::with_capacity(batch.len());
    let result = (|| -> rusqlite::Result<()> {
        // BEGIN and COMMIT from the statement cache too: `Connection::transaction` parses
        // both again for every batch.
        let run = |sql: &str| execute_cached(conn, sql);
        run("BEGIN")?;
        // While nothing in the transaction has succeeded, a job needs no savepoint: if it
        // fails, rolling back the whole transaction undoes it alone. A savepoint makes
        // SQLite copy each page the job touches first (its sub-journal) and costs two
        // statements; a batch of one job — every write at low load — now skips all that.
        let mut empty = true;
        for job in batch {
            if !empty {
                run("SAVEPOINT job")?;
            }
            let undo = |empty: bool| -> rusqlite::Result<()> {
                if empty {
                    run("ROLLBACK")?;
                    run("BEGIN").map(drop)
                } else {
                    run("ROLLBACK TO job")?;
                    run("RELEASE job").map(drop)
                }
            };
            // A panicking job must not take the writer thread (and every later write of the
            // service) with it: its changes are rolled back and its caller gets an error
            // (the reply channel is dropped with the job).
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))) {
                Ok((true, completion)) => {
                    if empty && conn.is_autocommit() {
                        done.push(completion);
                        // SQLite rolled the transaction back itself (I/O error, full disk)
                        // under a job that went on: with no savepoint to release, nothing
                        // else would notice, and later jobs would commit on their own.
                        return Err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                            Some("the transaction was rolled back during a write".into()),
                        ));
                    }
                    if !empty {
                        run("RELEASE job")?;
                    }
                    empty = false;
                    done.push(completion);
                }
                Ok((false, completion)) => {
                    undo(empty)?;
                    done.push(completion);
                }
                Err(_) => {
                    tracing::error!("a database job panicked; its changes are rolled back");
                    undo(empty)?;
                }
            }
        }
        run("COMMIT").map(drop)
    })();
    if result.is_err() && !conn.is_autocommit() {
        // What dropping a failed `Transaction` did: nothing of the batch stays.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let error = result.err().map(|e| {
        tracing::error!(error = %e, "database commit failed");
        e.to_string()
    });
    (done, error)
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.jobs.lock().map(|mut j| j.take()).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// One batch, failures first, in the middle and last, and a panic: each failing job's
    /// writes vanish and nothing else's, whether it ran with a savepoint (after a job that
    /// succeeded) or without one (nothing in the transaction yet).
    #[test]
    fn a_batch_rolls_back_each_failing_job_alone_with_or_without_a_savepoint() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let job = |key: &'static str, fails: bool| -> WriteJob {
            let answered = answered.clone();
            Box::new(move |c: &Connection| {
                c.execute("INSERT INTO t (k, v) VALUES (?1, 1)", [key])
                    .unwrap();
                let completion: Completion = Box::new(move |_| {
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                });
                (!fails, completion)
            })
        };
        let panics: WriteJob = Box::new(|c: &Connection| {
            c.execute("INSERT INTO t (k, v) VALUES ('panicked', 1)", [])
                .unwrap();
            panic!("a bug in a handler");
        });
        let batch = vec![
            job("first-fails", true),
            panics,
            job("a", false),
            job("middle-fails", true),
            job("b", false),
            job("last-fails", true),
        ];
        let (done, error) = commit_batch(&conn, batch);
        assert_eq!(
            (done.len(), error),
            (5, None),
            "every job but the panic is answered"
        );
        let mut keys: Vec<String> = conn
            .prepare("SELECT k FROM t ORDER BY k")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        keys.sort();
        assert_eq!(keys, ["a", "b"]);
        assert!(conn.is_autocommit(), "the batch's transaction is closed");
    }

    /// A transaction SQLite gave up under a job that went on (simulated: the job rolls
    /// it back itself) fails the whole batch: the later job's row is not committed on its
    /// own, and every caller hears of the failure.
    #[test]
    fn a_transaction_lost_under_the_first_job_fails_the_batch() {
        let (_dir, db) = db();
        let conn = open_conn(&db.inner.path, Durability::Normal).unwrap();
        let answer: Completion = Box::new(|_| {});
        let loses: WriteJob = Box::new(move |c: &Connection| {
            c.execute_batch("ROLLBACK").unwrap();
            (true, answer)
        });
        let answer: Completion = Box::new(|_| {});
        let inserts: WriteJob = Box::new(move |c: &Connection| {
            c.execute("INSERT INTO t (k, v) VALUES ('alone', 1)", [])
                .unwrap();
            (true, answer)
        });
        let (done, error) = commit_batch(&conn, vec![loses, inserts]);
        assert_eq!(done.len(), 1);
        assert!(error.is_some());
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
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
