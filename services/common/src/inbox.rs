//! The inbox: a consumer applies an event and records its id in the same transaction, so a
//! redelivered event finds its id and changes nothing. Events are acked only after that
//! transaction commits.
//!
//! Two kinds of failure are told apart (docs/events.md):
//! - **The event's**: it cannot be parsed, or its handler fails on it (a bug, bad data). It
//!   is left unacked, so the bus delivers it again after the group's ack wait and, after
//!   the group's max deliveries, moves it to its dead-letter list for an operator.
//! - **The database's**: the consumer's transaction fails (busy, locked, an I/O error, a
//!   full disk — in the handler or around it). Nothing is wrong with the events, so the
//!   consumer keeps them and applies the same batch again with backoff (50 ms doubling to
//!   5 s), touching them (`TOUCH`) every third of the ack wait so the bus neither hands
//!   them to another member nor counts a delivery. However long the outage, no event is
//!   dead-lettered for it; the `consumer` health check says it is stuck meanwhile.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tix_api::events::Envelope;
use tix_bus_client::{Client, Delivery, SubscribeOptions, Subscription};
use tokio::time::Instant;

use crate::db::{CommitNo, Db, DbError, SyncWhen, is_transient_cause};
use crate::health::Part;

/// What a handler did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is written; record the event as seen.
    Applied,
    /// Not applicable yet (e.g. a version from the future): leave it unacked so the bus
    /// delivers it again after the group's ack wait.
    Retry(String),
}

/// Applies one event inside the consumer's transaction. What it changes must go through
/// INSERT, UPDATE or DELETE statements (no DDL, pragma or blob writes): whether it changed
/// anything is read from SQLite's count of changed rows (see `apply_events`).
pub type Handler = Arc<dyn Fn(&Connection, &Envelope) -> anyhow::Result<Outcome> + Send + Sync>;

/// How many already-delivered events are applied in one transaction.
const MAX_BATCH: usize = 128;
/// The first pause before a failed batch is applied again; it doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest pause between two tries of a failed batch (or of joining the group).
pub const MAX_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Applied,
    Duplicate,
    Retry,
    Failed,
}

/// Why a batch's transaction failed: nothing to do with the events, so it is tried again.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// A handler failed because of the database, not the event (e.g. `database is
    /// locked`): the whole batch is tried again rather than the event counted as failed.
    #[error("{0:#}")]
    Handler(anyhow::Error),
}

/// Added to a consuming service's migrations: the inbox is pruned by age.
pub const PRUNE_SCHEMA: &str = "CREATE INDEX inbox_received ON inbox (received_at);";

/// How often a subscribed consumer forgets what can no longer come back.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per write transaction, so pruning never holds the writer for long.
const PRUNE_BATCH: usize = 5_000;

/// Forgets rows of a service's own that only guard against redeliveries (e.g. tickets'
/// tombstones of cancelled orders) older than the cutoff (unix seconds); how many it did.
pub type Pruner = Arc<dyn Fn(&Connection, i64) -> rusqlite::Result<usize> + Send + Sync>;

/// What a consumer may forget, and when (docs/operations.md, "Disk").
///
/// The inbox holds the ids of applied events so that a redelivery changes nothing. An
/// applied event comes back only if its ack was lost — the consumer stopped between its
/// commit and its ack, or the broker stopped before storing the ack — and then the broker
/// delivers it again within the group's ack wait of the consumer joining the group. So
/// the consumer prunes only while it is subscribed, starting twice the ack wait after it
/// joined (whatever could come back has come back by then), and only ids older than
/// `retention`, a margin far beyond that.
#[derive(Clone)]
pub struct Pruning {
    pub retention: Duration,
    /// How often ([`PRUNE_EVERY`] unless a test needs it sooner).
    pub every: Duration,
    pub extra: Option<Pruner>,
}

impl std::fmt::Debug for Pruning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pruning")
            .field("retention", &self.retention)
            .field("every", &self.every)
            .field("extra", &self.extra.is_some())
            .finish()
    }
}

impl Pruning {
    pub fn new(retention: Duration) -> Pruning {
        Pruning {
            retention,
            every: PRUNE_EVERY,
            extra: None,
        }
    }

    pub fn every(mut self, every: Duration) -> Pruning {
        self.every = every;
        self
    }

    pub fn with(mut self, extra: Pruner) -> Pruning {
        self.extra = Some(extra);
        self
    }
}

/// `LIMIT +?2`: a bare parameter would have the cached statement planned again on every
/// run (the outbox relay's query says why).
const PRUNE: &str = "DELETE FROM inbox WHERE event_id IN
    (SELECT event_id FROM inbox WHERE received_at < ?1 LIMIT +?2)";

/// Deletes up to `limit` inbox rows received before `before` (unix seconds).
pub fn prune(conn: &Connection, before: i64, limit: usize) -> rusqlite::Result<usize> {
    conn.prepare_cached(PRUNE)?.execute((before, limit as i64))
}

/// Prunes every `pruning.every` while the subscription that started it lasts (the caller
/// aborts it when the subscription ends).
async fn prune_while_subscribed(db: Db, pruning: Pruning, ack_wait: Duration) {
    tokio::time::sleep(ack_wait * 2).await;
    loop {
        let cutoff = time::OffsetDateTime::now_utc().unix_timestamp()
            - i64::try_from(pruning.retention.as_secs()).unwrap_or(i64::MAX);
        let mut forgotten = 0;
        loop {
            let extra = pruning.extra.clone();
            let done = db
                .write(move |c| -> Result<usize, DbError> {
                    let mut n = prune(c, cutoff, PRUNE_BATCH)?;
                    if let Some(extra) = &extra {
                        n += extra(c, cutoff)?;
                    }
                    Ok(n)
                })
                .await;
            match done {
                Ok(n) => {
                    forgotten += n;
                    if n < PRUNE_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning the inbox failed; trying again later");
                    break;
                }
            }
        }
        if forgotten > 0 {
            tracing::info!(
                rows = forgotten,
                "pruned applied-event ids past their retention"
            );
        }
        tokio::time::sleep(pruning.every).await;
    }
}

/// Whether the inbox already holds this event id.
pub fn seen(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM inbox WHERE event_id = ?1")?
        .exists([id])
}

/// A consumer's queue group: the options it joins with, and which of its subjects it can
/// do without.
#[derive(Debug, Clone)]
pub struct Group {
    pub opts: SubscribeOptions,
    /// Subjects left out of the subscription, with a warning, when the broker's policy does
    /// not let this client consume them (a policy written by an older `tix-bus
    /// init-policy`, before the service asked for them), instead of keeping the whole
    /// group out. Each must be one the service only saves work with.
    ///
    /// For the same reason a batch of nothing but these is committed unsynced
    /// ([`Db::write_unsynced`]): what a power cut takes of it only costs that work again.
    /// So a subject listed here must be one whose single events may be lost, not only one
    /// the service can do without altogether.
    pub optional: Vec<String>,
    /// Subjects whose handlers change only the service's own state and publish nothing (a
    /// replica, a timer). A batch of nothing but these (and optional ones) is committed
    /// without waiting for the disk ([`SyncWhen::Soon`]) and acked once a sync has carried
    /// it there: one fsync for what came meanwhile. A batch whose handler adds to the
    /// outbox anyway is run again and committed synced (the outbox's rows are never seen
    /// from a commit a power cut could take back).
    pub local: Vec<String>,
}

impl From<SubscribeOptions> for Group {
    fn from(opts: SubscribeOptions) -> Group {
        Group {
            opts,
            optional: Vec::new(),
            local: Vec::new(),
        }
    }
}

/// Consumes a queue group forever, applying each event exactly once to `db`, reporting to
/// `health` how it goes. If the subscription ends (the bus refused it again after a
/// reconnection), it joins the group again.
pub async fn run_consumer(
    db: Db,
    bus: Client,
    group: Group,
    handler: Handler,
    health: Part,
    pruning: Pruning,
) {
    let ack_wait = Duration::from_millis(group.opts.ack_wait_ms);
    loop {
        let (mut sub, whole) = subscribe(&bus, &group, &health).await;
        health.ok();
        let pruner = tokio::spawn(prune_while_subscribed(
            db.clone(),
            pruning.clone(),
            ack_wait,
        ));
        // Joined without a subject the policy refused: the client would join again with the
        // same subjects after a reconnection, but the broker may have a new policy by then
        // (restarted, or upgraded before this service), so the whole group is asked for
        // again instead. Leaving mid-batch loses nothing: what was not acked comes back,
        // and the inbox skips what was applied.
        let mut link = bus.watch_connected();
        let rejoin = tokio::select! {
            () = consume(&db, &handler, &group, &mut sub, ack_wait, &health) => false,
            () = reconnected(&mut link), if !whole => true,
        };
        pruner.abort();
        if rejoin {
            tracing::info!(group = %group.opts.group, "reconnected: asking for every subject again");
            continue;
        }
        tracing::warn!(group = %group.opts.group, "the subscription ended; joining the group again");
        health.failing("the subscription ended; joining the group again");
    }
}

/// Returns once the link has gone down and come back.
async fn reconnected(link: &mut tokio::sync::watch::Receiver<bool>) {
    for wanted in [false, true] {
        if link.wait_for(|up| *up == wanted).await.is_err() {
            // The client is gone: nothing to come back.
            std::future::pending::<()>().await;
        }
    }
}

/// Joins the group, retrying with backoff while the bus refuses; an optional subject the
/// policy refuses is left out at once. Says whether it joined with every subject.
async fn subscribe(bus: &Client, group: &Group, health: &Part) -> (Subscription, bool) {
    let mut opts = group.opts.clone();
    let name = &group.opts.group;
    let started = std::time::Instant::now();
    let mut backoff = FIRST_RETRY;
    loop {
        match bus.subscribe(opts.clone()).await {
            Ok(s) => return (s, opts.subjects.len() == group.opts.subjects.len()),
            Err(e) => {
                if let Some(subject) = refused_optional(&e, &opts, &group.optional) {
                    tracing::warn!(
                        group = %name,
                        %subject,
                        "the bus's policy does not let this service consume {subject}: joining without it, \
                         which only costs work (add it to the client's `consume` list and restart the broker, \
                         or SIGHUP it and restart this service; docs/bus.md)"
                    );
                    opts.subjects.retain(|s| *s != subject);
                    continue;
                }
                tracing::warn!(group = %name, error = %e, retry_in = ?backoff, "subscribing failed; retrying");
                health.failing_since(started, format!("cannot join group {name}: {e}"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY);
            }
        }
    }
}

/// The optional subject still in `opts` that the broker's refusal `e` names, if any (the
/// policy's words, docs/bus.md: "not allowed: client … may not consume <subject>").
fn refused_optional(
    e: &tix_bus_client::Error,
    opts: &SubscribeOptions,
    optional: &[String],
) -> Option<String> {
    let tix_bus_client::Error::Refused(why) = e else {
        return None;
    };
    let subject = why.rsplit_once(" may not consume ")?.1.trim();
    (optional.iter().any(|s| s == subject) && opts.subjects.iter().any(|s| s == subject))
        .then(|| subject.to_string())
}

/// Applies deliveries in batches until the subscription ends.
async fn consume(
    db: &Db,
    handler: &Handler,
    group: &Group,
    sub: &mut Subscription,
    ack_wait: Duration,
    health: &Part,
) {
    // Deliveries received and not yet applied, oldest first.
    let mut held: VecDeque<Delivery> = VecDeque::new();
    loop {
        if held.is_empty() {
            match sub.next().await {
                Some(d) => held.push_back(d),
                None => return,
            }
        }
        while held.len() < MAX_BATCH {
            match sub.try_next() {
                Some(d) => held.push_back(d),
                None => break,
            }
        }
        let n = held.len().min(MAX_BATCH);
        let batch: Vec<Delivery> = held.drain(..n).collect();
        let batch = Batch {
            deliveries: batch,
            group,
        };
        apply_until_done(db, handler, batch, &mut held, sub, ack_wait, health).await;
    }
}

/// Deliveries to apply in one transaction, and the group they came to.
struct Batch<'a> {
    deliveries: Vec<Delivery>,
    group: &'a Group,
}

impl Group {
    /// How a batch of `events` is committed, from their subjects: synced before the acks
    /// (any subject but the two lists'), acked once a later sync has carried it (local and
    /// optional subjects only), or unsynced and acked at once (optional subjects only).
    fn sync_when(&self, events: &[Envelope]) -> SyncWhen {
        let is =
            |list: &[String], e: &Envelope| list.iter().any(|s| s == e.event.subject().as_str());
        if events.iter().all(|e| is(&self.optional, e)) {
            SyncWhen::Whenever
        } else if events
            .iter()
            .all(|e| is(&self.optional, e) || is(&self.local, e))
        {
            SyncWhen::Soon
        } else {
            SyncWhen::Now
        }
    }
}

/// Applies one batch, trying again with backoff for as long as its transaction fails, and
/// keeps every delivery it holds (the batch, and what arrives meanwhile) touched.
async fn apply_until_done(
    db: &Db,
    handler: &Handler,
    batch: Batch<'_>,
    held: &mut VecDeque<Delivery>,
    sub: &mut Subscription,
    ack_wait: Duration,
    health: &Part,
) {
    let Some((events, deliveries)) = parse(batch.deliveries) else {
        return;
    };
    let when = batch.group.sync_when(&events);
    let started = std::time::Instant::now();
    let every = (ack_wait / 3).max(Duration::from_millis(10));
    // Nothing is sent while a batch is applied within a third of the ack wait: the usual case.
    let mut keepalive = tokio::time::interval_at(Instant::now() + every, every);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = FIRST_RETRY;
    let mut attempt = 1u32;
    loop {
        let write = apply_batch(db, handler, events.clone(), when);
        tokio::pin!(write);
        let result = loop {
            tokio::select! {
                r = &mut write => break r,
                _ = keepalive.tick() => {
                    touch(&deliveries, held, sub);
                    // A first try that hangs is trouble too (after a failure, the
                    // failure's error says more).
                    if attempt == 1 && started.elapsed() > crate::health::CONSUMER_STUCK_AFTER {
                        health.failing_since(started, format!(
                            "applying {} has taken {} s so far",
                            events_text(deliveries.len()), started.elapsed().as_secs()
                        ));
                    }
                }
            }
        };
        match result {
            Ok((verdicts, number)) => {
                let metrics = crate::metrics::get();
                let mut settled = Vec::with_capacity(deliveries.len());
                for ((d, v), env) in deliveries.into_iter().zip(verdicts).zip(events.iter()) {
                    match v {
                        Verdict::Applied | Verdict::Duplicate => {
                            if v == Verdict::Duplicate {
                                tracing::debug!(id = %d.id, "already applied; acking again");
                            } else {
                                // The line that ties this service to the request that
                                // caused the event (docs/operations.md, "Following a purchase").
                                tracing::info!(
                                    subject = %d.subject,
                                    event = %env.id,
                                    producer = %env.producer,
                                    correlation_id = env.correlation_id.as_deref().unwrap_or("-"),
                                    "applied an event"
                                );
                                metrics
                                    .consumer_applied
                                    .get_or_create(&crate::metrics::SubjectLabels {
                                        subject: d.subject.clone(),
                                    })
                                    .inc();
                            }
                            settled.push(d);
                        }
                        Verdict::Retry | Verdict::Failed => {
                            metrics.consumer_failures.inc();
                        }
                    }
                }
                if attempt > 1 {
                    tracing::info!(
                        events = events.len(), tries = attempt, after = ?started.elapsed(),
                        "applied events after the database recovered"
                    );
                }
                ack(db, number, settled);
                health.ok();
                return;
            }
            Err(e) => {
                crate::metrics::get().consumer_retries.inc();
                tracing::warn!(
                    events = deliveries.len(), attempt, error = %e, retry_in = ?backoff,
                    "applying events failed; keeping them and trying again"
                );
                health.failing_since(
                    started,
                    format!(
                        "applying {} failed (try {attempt}): {e}",
                        events_text(deliveries.len())
                    ),
                );
                let until = Instant::now() + backoff;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => break,
                        _ = keepalive.tick() => touch(&deliveries, held, sub),
                    }
                }
                backoff = (backoff * 2).min(MAX_RETRY);
                attempt += 1;
            }
        }
    }
}

fn events_text(n: usize) -> String {
    if n == 1 {
        "1 event".to_string()
    } else {
        format!("{n} events")
    }
}

/// The events of a batch, and the deliveries they came in; events that cannot be read are
/// left unacked (and untouched) for the dead-letter list.
fn parse(batch: Vec<Delivery>) -> Option<(Arc<Vec<Envelope>>, Vec<Delivery>)> {
    let mut events = Vec::with_capacity(batch.len());
    let mut deliveries = Vec::with_capacity(batch.len());
    for d in batch {
        match Envelope::from_bus(&d.subject, &d.payload) {
            Ok(env) => {
                events.push(env);
                deliveries.push(d);
            }
            Err(e) => tracing::error!(
                subject = %d.subject, id = %d.id, deliveries = d.deliveries, error = %e,
                "cannot read this event; leaving it for the dead-letter list"
            ),
        }
    }
    (!events.is_empty()).then(|| (Arc::new(events), deliveries))
}

/// Tells the bus this member still works on everything it holds — the batch being applied
/// and the deliveries that arrived meanwhile (taken off the subscription to be touched).
fn touch(batch: &[Delivery], held: &mut VecDeque<Delivery>, sub: &mut Subscription) {
    while let Some(d) = sub.try_next() {
        held.push_back(d);
    }
    for d in batch.iter().chain(held.iter()) {
        // A touch lost with the link changes nothing: the bus gives the event back after
        // its ack wait, and the inbox absorbs the extra delivery.
        let _ = d.touch();
    }
}

async fn apply_batch(
    db: &Db,
    handler: &Handler,
    events: Arc<Vec<Envelope>>,
    when: SyncWhen,
) -> Result<(Vec<Verdict>, Option<CommitNo>), BatchError> {
    let handler = handler.clone();
    let apply = move |conn: &Connection| apply_events(conn, &handler, &events);
    let (verdicts, n) = db.write_as(when, apply).await?;
    // An unsynced commit's number promises nothing: its acks go at once.
    Ok((verdicts, (when != SyncWhen::Whenever).then_some(n)))
}

/// Acks what a batch applied (or found applied) once its commit, and every one before it,
/// is on the disk: a synced batch's at once, a lazy batch's when a sync has carried it
/// there (meanwhile the consumer goes on). An event found applied waits the same way: the
/// commit that applied it came before. An unsynced batch's (`None`: optional subjects
/// only) go at once.
fn ack(db: &Db, commit: Option<CommitNo>, settled: Vec<Delivery>) {
    // A lost ack only means one more delivery, which the inbox absorbs.
    let send = |settled: Vec<Delivery>| {
        for d in settled {
            let _ = d.ack_nowait();
        }
    };
    if settled.is_empty() {
        return;
    }
    let commit = match commit {
        Some(n) if !db.is_durable(n) => n,
        _ => return send(settled),
    };
    let durable = db.durable(commit);
    tokio::spawn(async move {
        // A writer that stopped first leaves them unacked: they come back.
        if durable.await {
            send(settled);
        }
    });
}

/// Applies a batch in the writer's transaction. Each event has to be undone alone when it
/// does not apply, which a savepoint per event allows — at the price of SQLite copying,
/// for every event, each page it is about to change (a few percent of a consumer's CPU
/// under load, docs/benchmarks.md). Events nearly always apply, and one that does not
/// nearly always decides so before writing anything; so the batch first runs without
/// them, and only an event that wrote and then did not apply sends the whole batch back
/// to be applied again with a savepoint per event.
fn apply_events(
    conn: &Connection,
    handler: &Handler,
    events: &[Envelope],
) -> Result<Vec<Verdict>, BatchError> {
    let run = |sql: &str| crate::db::execute_cached(conn, sql).map_err(DbError::from);
    run("SAVEPOINT batch")?;
    let mut verdicts = Vec::with_capacity(events.len());
    // Logged once the batch stands: applied again with a savepoint per event, it would
    // say so a second time. (The writer may still run this whole job twice, when another
    // job of its database batch fails after writing: then these lines are written twice.)
    let mut refused: Vec<(&Envelope, Refusal)> = Vec::new();
    for env in events {
        if seen(conn, &env.id).map_err(DbError::from)? {
            verdicts.push(Verdict::Duplicate);
            continue;
        }
        // Every row a statement inserts, changes or deletes counts here once the statement
        // has completed (a failed statement undoes its own rows): an unchanged count means
        // the handler left the database as it found it.
        let before = conn.total_changes();
        let outcome = run_handler(conn, handler, env);
        still_in_transaction(conn)?;
        let wrote = conn.total_changes() != before;
        match outcome {
            Ok(Outcome::Applied) => {
                record(conn, env)?;
                verdicts.push(Verdict::Applied);
            }
            Err(e) if is_transient_cause(e.as_ref()) => {
                // The database's trouble, not the event's: the whole batch is tried again.
                run("ROLLBACK TO batch")?;
                run("RELEASE batch")?;
                crate::db::undid_own_changes();
                return Err(BatchError::Handler(e));
            }
            _ if wrote => {
                run("ROLLBACK TO batch")?;
                run("RELEASE batch")?;
                return events
                    .iter()
                    .map(|env| apply_one(conn, handler, env))
                    .collect();
            }
            Ok(Outcome::Retry(why)) => {
                verdicts.push(Verdict::Retry);
                refused.push((env, Refusal::NotYet(why)));
            }
            Err(e) => {
                verdicts.push(Verdict::Failed);
                refused.push((env, Refusal::Failed(e)));
            }
        }
    }
    run("RELEASE batch")?;
    for (env, refusal) in refused {
        match refusal {
            Refusal::NotYet(why) => not_yet(env, &why),
            Refusal::Failed(e) => failed(env, &e),
        };
    }
    Ok(verdicts)
}

/// Why an event of a batch did not apply, to be logged once the batch stands.
enum Refusal {
    NotYet(String),
    Failed(anyhow::Error),
}

/// Runs the handler; one that panics fails on this event alone, like one that returns an
/// error. What the handler publishes carries on the event's correlation id.
fn run_handler(conn: &Connection, handler: &Handler, env: &Envelope) -> anyhow::Result<Outcome> {
    let correlation = env
        .correlation_id
        .as_deref()
        .and_then(crate::correlation::from_text);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::correlation::on_this_thread(correlation, || handler(conn, env))
    }))
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the handler panicked")))
}

/// Some errors (I/O, a full disk, an interrupt) make SQLite roll the whole transaction back
/// itself, whatever a handler made of the error: then nothing of the batch is left to go
/// on with, and what came next would commit statement by statement.
fn still_in_transaction(conn: &Connection) -> Result<(), BatchError> {
    if conn.is_autocommit() {
        return Err(BatchError::Db(DbError::Commit(
            "the transaction was rolled back while applying an event".into(),
        )));
    }
    Ok(())
}

/// Records an applied event as seen.
fn record(conn: &Connection, env: &Envelope) -> Result<(), BatchError> {
    conn.prepare_cached("INSERT INTO inbox (event_id, subject, received_at) VALUES (?1, ?2, ?3)")
        .and_then(|mut st| {
            st.execute((
                &env.id,
                env.subject().as_str(),
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ))
        })
        .map_err(DbError::from)?;
    Ok(())
}

fn not_yet(env: &Envelope, why: &str) {
    tracing::debug!(id = %env.id, subject = %env.subject(), %why, "not yet; will retry");
}

fn failed(env: &Envelope, e: &anyhow::Error) {
    tracing::error!(id = %env.id, subject = %env.subject(), error = ?e, "handler failed; will retry");
}

/// Applies one event under a savepoint of its own, undone if the event does not apply.
fn apply_one(conn: &Connection, handler: &Handler, env: &Envelope) -> Result<Verdict, BatchError> {
    if seen(conn, &env.id).map_err(DbError::from)? {
        return Ok(Verdict::Duplicate);
    }
    let run = |sql: &str| crate::db::execute_cached(conn, sql).map_err(DbError::from);
    run("SAVEPOINT event")?;
    let outcome = run_handler(conn, handler, env);
    still_in_transaction(conn)?;
    let rollback = || -> Result<(), BatchError> {
        run("ROLLBACK TO event")?;
        run("RELEASE event")?;
        Ok(())
    };
    match outcome {
        Ok(Outcome::Applied) => {
            record(conn, env)?;
            run("RELEASE event")?;
            Ok(Verdict::Applied)
        }
        Ok(Outcome::Retry(why)) => {
            rollback()?;
            not_yet(env, &why);
            Ok(Verdict::Retry)
        }
        Err(e) if is_transient_cause(e.as_ref()) => {
            rollback()?;
            Err(BatchError::Handler(e))
        }
        Err(e) => {
            rollback()?;
            failed(env, &e);
            Ok(Verdict::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tix_api::events::{Event, ExpirationComplete};

    /// Only a policy refusal naming an optional subject the group still asks for drops a
    /// subject; any other refusal (another subject, a group in use, a dead link) is retried.
    #[test]
    fn only_the_policys_refusal_of_an_optional_subject_drops_it() {
        use tix_bus_client::Error;
        let opts = SubscribeOptions::new("expiration", &["order:created", "payment:created"]);
        let optional = ["payment:created".to_string()];
        let refused = |why: &str| Error::Refused(why.into());
        assert_eq!(
            refused_optional(
                &refused("not allowed: client expiration may not consume payment:created"),
                &opts,
                &optional
            )
            .as_deref(),
            Some("payment:created")
        );
        for other in [
            refused("not allowed: client expiration may not consume order:created"),
            refused("not allowed: client expiration may not use group expiration"),
            refused("group expiration in use with other options"),
            Error::Disconnected("tcp://127.0.0.1:1".into()),
        ] {
            assert_eq!(refused_optional(&other, &opts, &optional), None, "{other}");
        }
        let without = SubscribeOptions::new("expiration", &["order:created"]);
        assert_eq!(
            refused_optional(
                &refused("not allowed: client expiration may not consume payment:created"),
                &without,
                &optional
            ),
            None,
            "already left out"
        );
    }

    /// A batch is committed as its strictest event asks: one subject of neither list makes
    /// the whole batch synced before its acks, and a local one among optional ones makes
    /// it wait for a later sync. (That each level reaches SQLite is `tests/events.rs`'s.)
    #[test]
    fn a_batch_is_synced_as_its_strictest_subject_asks() {
        use tix_api::events::{PaymentCreated, PaymentFailed};
        let group = Group {
            opts: SubscribeOptions::new("svc", &["expiration:complete"]),
            optional: vec!["payment:created".into()],
            local: vec!["payment:failed".into()],
        };
        let (optional, local, other) = (
            Envelope::new(
                "payments",
                Event::PaymentCreated(PaymentCreated {
                    id: "p".into(),
                    order_id: "o".into(),
                    charge_id: "c".into(),
                }),
            ),
            Envelope::new(
                "payments",
                Event::PaymentFailed(PaymentFailed {
                    order_id: "o".into(),
                    reason: "declined".into(),
                }),
            ),
            event("o"),
        );
        let cases = [
            (vec![&optional], SyncWhen::Whenever),
            (vec![&optional, &optional], SyncWhen::Whenever),
            (vec![&local], SyncWhen::Soon),
            (vec![&optional, &local], SyncWhen::Soon),
            (vec![&other], SyncWhen::Now),
            (vec![&optional, &other], SyncWhen::Now),
            (vec![&local, &other, &optional], SyncWhen::Now),
        ];
        for (batch, expected) in cases {
            let events: Vec<Envelope> = batch.into_iter().cloned().collect();
            let subjects: Vec<&str> = events.iter().map(|e| e.event.subject().as_str()).collect();
            assert_eq!(group.sync_when(&events), expected, "{subjects:?}");
        }
    }

    /// A database with the inbox and a table handlers write to, in a transaction as the
    /// writer runs a job.
    fn store() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::db::EVENTS_SCHEMA).unwrap();
        c.execute_batch("CREATE TABLE done (order_id TEXT PRIMARY KEY); BEGIN")
            .unwrap();
        c
    }

    fn event(order: &str) -> Envelope {
        Envelope::new(
            "expiration",
            Event::ExpirationComplete(ExpirationComplete {
                order_id: order.into(),
            }),
        )
    }

    /// Writes the order's row, then decides by the order's name: `retry-*` is not yet
    /// applicable and `bad-*` fails (both after writing when the name ends in `-late`,
    /// before when it ends in `-early`), `panic-late` panics after writing; `lost` rolls
    /// the whole transaction back, as SQLite does on an I/O error.
    fn handler() -> Handler {
        Arc::new(|conn: &Connection, env: &Envelope| {
            let Event::ExpirationComplete(e) = &env.event else {
                anyhow::bail!("unexpected event");
            };
            let id = e.order_id.as_str();
            if id == "lost" {
                // As SQLite does on an I/O error or a full disk; the handler's own error no
                // longer says why.
                conn.execute_batch("ROLLBACK")?;
                anyhow::bail!("something went wrong");
            }
            if id.ends_with("-early") {
                if id.starts_with("retry") {
                    return Ok(Outcome::Retry("later".into()));
                }
                anyhow::bail!("refused before writing");
            }
            conn.execute("INSERT INTO done (order_id) VALUES (?1)", [id])?;
            match id {
                "retry-late" => Ok(Outcome::Retry("later".into())),
                "bad-late" => anyhow::bail!("refused after writing"),
                "panic-late" => panic!("the handler broke after writing"),
                _ => Ok(Outcome::Applied),
            }
        })
    }

    fn done(c: &Connection) -> Vec<String> {
        c.prepare("SELECT order_id FROM done ORDER BY order_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn seen_count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM inbox", [], |r| r.get(0))
            .unwrap()
    }

    /// How often the per-event savepoint ran on this connection.
    fn event_savepoints(c: &Connection) -> i32 {
        c.prepare_cached("SAVEPOINT event")
            .unwrap()
            .get_status(rusqlite::StatementStatus::Run)
    }

    #[test]
    fn a_batch_that_applies_runs_without_a_savepoint_per_event() {
        let c = store();
        let batch = [event("a"), event("b"), event("c")];
        let verdicts = apply_events(&c, &handler(), &batch).unwrap();
        assert_eq!(verdicts, [Verdict::Applied; 3]);
        assert_eq!(done(&c), ["a", "b", "c"]);
        assert_eq!(seen_count(&c), 3);
        assert_eq!(event_savepoints(&c), 0);
        // The same events again are duplicates, and change nothing.
        let verdicts = apply_events(&c, &handler(), &batch).unwrap();
        assert_eq!(verdicts, [Verdict::Duplicate; 3]);
        assert_eq!(seen_count(&c), 3);
    }

    #[test]
    fn an_event_refused_before_writing_leaves_the_others_applied() {
        let c = store();
        let batch = [
            event("a"),
            event("retry-early"),
            event("bad-early"),
            event("b"),
        ];
        let verdicts = apply_events(&c, &handler(), &batch).unwrap();
        assert_eq!(
            verdicts,
            [
                Verdict::Applied,
                Verdict::Retry,
                Verdict::Failed,
                Verdict::Applied
            ]
        );
        assert_eq!(done(&c), ["a", "b"]);
        // Only the applied events are recorded as seen: the others come back.
        assert_eq!(seen_count(&c), 2);
        assert_eq!(event_savepoints(&c), 0);
    }

    #[test]
    fn an_event_refused_after_writing_is_undone_alone() {
        for refused in ["retry-late", "bad-late", "panic-late"] {
            let c = store();
            let batch = [event("a"), event(refused), event("b")];
            let verdicts = apply_events(&c, &handler(), &batch).unwrap();
            let expected = if refused.starts_with("retry") {
                Verdict::Retry
            } else {
                Verdict::Failed
            };
            assert_eq!(
                verdicts,
                [Verdict::Applied, expected, Verdict::Applied],
                "{refused}"
            );
            // Its row is gone, the others' rows are there once each.
            assert_eq!(done(&c), ["a", "b"], "{refused}");
            assert_eq!(seen_count(&c), 2, "{refused}");
            // Applied again with a savepoint per event.
            assert_eq!(event_savepoints(&c), 3, "{refused}");
        }
    }

    #[test]
    fn the_databases_trouble_fails_the_batch_and_undoes_it() {
        let c = store();
        let busy: Handler = Arc::new(|conn: &Connection, env: &Envelope| {
            conn.execute("INSERT INTO done (order_id) VALUES (?1)", [&env.id])?;
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("database is locked".into()),
            )
            .into())
        });
        let batch = [event("a"), event("b")];
        assert!(matches!(
            apply_events(&c, &busy, &batch),
            Err(BatchError::Handler(_))
        ));
        assert!(done(&c).is_empty());
        assert_eq!(seen_count(&c), 0);
    }

    #[test]
    fn a_transaction_sqlite_threw_away_fails_the_batch() {
        // In the first run, and in the run with a savepoint per event.
        for first in ["a", "bad-late"] {
            let c = store();
            let batch = [event(first), event("lost"), event("b")];
            assert!(
                matches!(apply_events(&c, &handler(), &batch), Err(BatchError::Db(_))),
                "{first}"
            );
            // Nothing was committed statement by statement after the loss.
            assert!(done(&c).is_empty(), "{first}");
            assert_eq!(seen_count(&c), 0, "{first}");
        }
    }

    /// Pruning runs again and again: its statement comes from the cache as it is.
    #[test]
    fn pruning_again_does_not_prepare_its_statement_again() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::db::EVENTS_SCHEMA).unwrap();
        c.execute(
            "INSERT INTO inbox (event_id, subject, received_at) VALUES ('a', 's', 1), ('b', 's', 9)",
            [],
        )
        .unwrap();
        assert_eq!(prune(&c, 5, 100).unwrap(), 1);
        assert_eq!(prune(&c, 5, 100).unwrap(), 0);
        assert_eq!(prune(&c, 10, 100).unwrap(), 1);
        let st = c.prepare_cached(PRUNE).unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
