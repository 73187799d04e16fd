//! What a service's `GET /healthz` reports about the work it does in the background: its
//! link to the bus, its consumer and its outbox relay.
//!
//! Each part tells its [`Part`] handle how it is doing — [`Part::ok`] once it works,
//! [`Part::failing`] while it retries something — and the supervisor
//! ([`crate::service::supervise`]) tells it when its task stopped and is started again.
//! [`Monitor::report`] turns that into the health body: a part is `degraded` once its
//! trouble has lasted longer than its threshold (so a blip is not an alarm), or at once
//! while its task is being restarted. The HTTP status stays 200 either way: the service
//! still serves its API (docs/operations.md says why).
//!
//! Counters ride along: events waiting in the outbox and refused for good
//! (`outbox_dead`), and the consumer group's dead letters on the bus — fetched from the
//! broker's `STATS` at most every [`DEAD_LETTERS_EVERY`], never once per health request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tix_api::UnixMillis;
use tix_api::health::{Check, Health, HealthStatus};
use tix_bus_client::Client;

use crate::db::{Db, DbError};

/// A bus link down this long makes the `bus` check degraded.
pub const BUS_DOWN_AFTER: Duration = Duration::from_secs(2);
/// A consumer retrying one batch (or unable to join its group) this long is degraded.
pub const CONSUMER_STUCK_AFTER: Duration = Duration::from_secs(5);
/// An outbox relay failing to publish this long is degraded, and so is an outbox whose
/// oldest event has waited this long (whatever the relay says about itself).
pub const OUTBOX_STUCK_AFTER: Duration = Duration::from_secs(10);
/// How old the cached count of the group's dead letters may get before a health request
/// asks the broker again.
pub const DEAD_LETTERS_EVERY: Duration = Duration::from_secs(5);

/// The longest a health request waits for the broker's `STATS`; past it, the last count
/// known is reported.
const STATS_WAIT: Duration = Duration::from_secs(1);

/// Which background part a [`Part`] reports on; its name is the check's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PartKind {
    /// The inbox consumer of the service's queue group.
    Consumer,
    /// The outbox relay.
    Outbox,
}

impl PartKind {
    pub const fn name(self) -> &'static str {
        match self {
            PartKind::Consumer => "consumer",
            PartKind::Outbox => "outbox",
        }
    }

    fn stuck_after(self) -> Duration {
        match self {
            PartKind::Consumer => CONSUMER_STUCK_AFTER,
            PartKind::Outbox => OUTBOX_STUCK_AFTER,
        }
    }
}

/// Trouble a part is in.
#[derive(Debug, Clone)]
struct Trouble {
    since: Instant,
    since_wall: UnixMillis,
    reason: String,
    /// Degraded at once, whatever the threshold (its task is being restarted).
    now: bool,
}

#[derive(Debug, Default)]
struct PartState {
    trouble: Option<Trouble>,
    restarts: u64,
}

/// The bus link, followed by a task (see [`Monitor::watch_bus`]).
#[derive(Debug)]
struct Link {
    client: Client,
    /// Since when it has been down (from the start, until it first connects).
    down_since: Option<(Instant, UnixMillis)>,
}

/// What the broker last said about the service's group (its `STATS`).
#[derive(Debug, Default, Clone, Copy)]
struct GroupCounts {
    dead_letters: u64,
    lag: u64,
    pending: u64,
}

#[derive(Debug, Default)]
struct GroupCache {
    counts: Option<GroupCounts>,
    fetched: Option<Instant>,
}

/// The last answer of the database probe of `/readyz`.
#[derive(Debug, Default)]
struct DbProbe {
    at: Option<Instant>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    link: Option<Link>,
    group: Option<String>,
    db: Option<Db>,
    parts: BTreeMap<PartKind, PartState>,
    group_stats: GroupCache,
    db_probe: DbProbe,
}

/// A service's health, shared by its background parts (which report to it) and its
/// `/healthz` route (which reads it). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    state: Arc<Mutex<State>>,
    /// One `STATS` request at a time.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    /// One database probe at a time.
    probing: Arc<tokio::sync::Mutex<()>>,
}

/// The id this process chose at start, in every health answer (`instance`).
pub fn instance() -> &'static str {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| uuid::Uuid::now_v7().to_string())
}

/// The longest `/readyz` waits for its probe write: a database that takes longer is not
/// ready (a lock held elsewhere, a disk that hangs).
pub const DB_PROBE_WAIT: Duration = Duration::from_secs(1);
/// How long a probe's answer is reused, so probes in a burst cost one write.
const DB_PROBE_EVERY: Duration = Duration::from_secs(1);

impl Monitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every
        // update is one assignment), so a poisoned lock is still good to read.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows `client`'s link for the `bus` check; stopped with the service.
    pub fn watch_bus(&self, client: &Client) -> tokio::task::JoinHandle<()> {
        let mut link = client.watch_connected();
        self.lock().link = Some(Link {
            client: client.clone(),
            down_since: (!*link.borrow()).then(|| (Instant::now(), UnixMillis::now())),
        });
        let monitor = self.clone();
        tokio::spawn(async move {
            loop {
                let up = *link.borrow_and_update();
                if let Some(l) = monitor.lock().link.as_mut() {
                    match (up, l.down_since) {
                        (true, _) => l.down_since = None,
                        (false, None) => l.down_since = Some((Instant::now(), UnixMillis::now())),
                        (false, Some(_)) => {}
                    }
                }
                if link.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// The queue group whose dead letters the `consumer` check counts.
    pub fn set_group(&self, group: &str) {
        self.lock().group = Some(group.to_string());
    }

    /// The database whose `outbox` (and `outbox_dead`) the `outbox` check counts.
    pub fn set_db(&self, db: &Db) {
        self.lock().db = Some(db.clone());
    }

    /// A handle for one part to report through; the part shows in the checks from now on.
    pub fn part(&self, kind: PartKind) -> Part {
        self.lock().parts.entry(kind).or_default();
        Part {
            monitor: self.clone(),
            kind,
        }
    }

    /// The health body of `service` as of now.
    pub async fn report(&self, service: &str) -> Health {
        let dead_letters = self.group_counts().await.map(|g| g.dead_letters);
        let outbox = self.outbox_counts().await;
        let now = Instant::now();
        let mut checks = BTreeMap::new();
        {
            let state = self.lock();
            if let Some(link) = &state.link {
                let mut check = Check::ok();
                if let Some((since, wall)) = link.down_since {
                    // A refused handshake says why: a wrong key is for an operator to fix.
                    check.reason = Some(match link.client.refusal() {
                        Some(why) => format!(
                            "not connected to the bus at {}: it refused this service: {why}",
                            link.client.endpoint()
                        ),
                        None => format!("not connected to the bus at {}", link.client.endpoint()),
                    });
                    check.since = Some(wall);
                    if now.duration_since(since) > BUS_DOWN_AFTER {
                        check.status = HealthStatus::Degraded;
                    }
                }
                checks.insert("bus".to_string(), check);
            }
            for (kind, part) in &state.parts {
                let mut check = Check::ok();
                if let Some(t) = &part.trouble {
                    check.reason = Some(t.reason.clone());
                    check.since = Some(t.since_wall);
                    if t.now || now.duration_since(t.since) > kind.stuck_after() {
                        check.status = HealthStatus::Degraded;
                    }
                }
                check.restarts = (part.restarts > 0).then_some(part.restarts);
                match kind {
                    PartKind::Consumer => check.dead_letters = dead_letters,
                    PartKind::Outbox => {
                        if let Some(counts) = &outbox {
                            check.waiting = Some(counts.waiting);
                            check.dead = counts.dead;
                            if let Some(age) = counts.oldest_age
                                && age > OUTBOX_STUCK_AFTER
                            {
                                check.status = HealthStatus::Degraded;
                                let waited = format!(
                                    "{} events waiting, the oldest for {} s",
                                    counts.waiting,
                                    age.as_secs()
                                );
                                check.reason = Some(match check.reason.take() {
                                    Some(r) => format!("{waited}: {r}"),
                                    None => waited,
                                });
                            }
                        }
                    }
                }
                checks.insert(kind.name().to_string(), check);
            }
        }
        summarise(service, checks)
    }

    /// The readiness body of `service`: its health, plus a `database` check — a write
    /// transaction on the service's database answered within [`DB_PROBE_WAIT`].
    pub async fn readiness(&self, service: &str) -> Health {
        let mut health = self.report(service).await;
        if let Some(check) = self.probe_db().await {
            let mut checks = health.checks.take().unwrap_or_default();
            checks.insert("database".to_string(), check);
            health = summarise(service, checks);
        }
        health
    }

    /// Whether the database takes a write now; `None` for a service without one.
    async fn probe_db(&self) -> Option<Check> {
        let db = self.lock().db.clone()?;
        // One probe at a time; a request that waited for another's reuses its answer.
        let _one = self.probing.lock().await;
        let cached = {
            let s = self.lock();
            s.db_probe
                .at
                .filter(|t| t.elapsed() < DB_PROBE_EVERY)
                .map(|_| s.db_probe.error.clone())
        };
        let error = match cached {
            Some(e) => e,
            None => {
                let error = write_probe(&db).await.err();
                self.lock().db_probe = DbProbe {
                    at: Some(Instant::now()),
                    error: error.clone(),
                };
                error
            }
        };
        Some(match error {
            None => Check::ok(),
            Some(reason) => Check {
                status: HealthStatus::Degraded,
                reason: Some(reason),
                since: Some(UnixMillis::now()),
                ..Check::ok()
            },
        })
    }

    /// Sets the gauges `GET /metrics` reports from this monitor's state: the outbox, the
    /// group's counts on the bus, the bus link.
    pub async fn refresh_metrics(&self) {
        let m = crate::metrics::get();
        if let Some(c) = self.group_counts().await {
            m.consumer_lag.set(c.lag as i64);
            m.consumer_pending.set(c.pending as i64);
            m.consumer_dead_letters.set(c.dead_letters as i64);
        }
        if let Some(c) = self.outbox_counts().await {
            m.outbox_waiting.set(c.waiting as i64);
            m.outbox_dead.set(c.dead.unwrap_or(0) as i64);
            m.outbox_oldest_age
                .set(c.oldest_age.map_or(0.0, |a| a.as_secs_f64()));
        }
        let connected = self.lock().link.as_ref().map(|l| l.client.is_connected());
        if let Some(up) = connected {
            m.bus_connected.set(i64::from(up));
        }
    }

    /// The group's counts on the bus: cached, asked of the broker again once the cache is
    /// older than [`DEAD_LETTERS_EVERY`] (by one request at a time; the others read the
    /// cache meanwhile).
    async fn group_counts(&self) -> Option<GroupCounts> {
        let (group, client, fresh, cached) = {
            let s = self.lock();
            let fresh = s
                .group_stats
                .fetched
                .is_some_and(|t| t.elapsed() < DEAD_LETTERS_EVERY);
            (
                s.group.clone(),
                s.link.as_ref().map(|l| l.client.clone()),
                fresh,
                s.group_stats.counts,
            )
        };
        let (Some(group), Some(client)) = (group, client) else {
            return None;
        };
        if fresh || !client.is_connected() {
            return cached;
        }
        let Ok(_one_at_a_time) = self.refreshing.try_lock() else {
            return cached;
        };
        let counts = match tokio::time::timeout(STATS_WAIT, client.stats()).await {
            Ok(Ok(stats)) => {
                Some(
                    stats
                        .group(&group)
                        .map_or_else(GroupCounts::default, |g| GroupCounts {
                            dead_letters: g.dead_letters,
                            lag: g.lag,
                            pending: g.pending,
                        }),
                )
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "reading the group's counts failed");
                None
            }
            Err(_) => None,
        };
        let mut s = self.lock();
        s.group_stats.fetched = Some(Instant::now());
        if counts.is_some() {
            s.group_stats.counts = counts;
        }
        s.group_stats.counts
    }

    async fn outbox_counts(&self) -> Option<OutboxCounts> {
        let db = {
            let s = self.lock();
            if !s.parts.contains_key(&PartKind::Outbox) {
                return None;
            }
            s.db.clone()?
        };
        let counts = db
            .read_blocking(|c| -> Result<OutboxCounts, DbError> {
                let (waiting, oldest): (i64, Option<i64>) =
                    c.query_row("SELECT count(*), min(created_at) FROM outbox", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                // A database without the table yet (a migration not written) counts none.
                let dead = c
                    .query_row("SELECT count(*) FROM outbox_dead", [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .ok();
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                Ok(OutboxCounts {
                    waiting: waiting as u64,
                    dead: dead.map(|n| n as u64),
                    oldest_age: oldest
                        .map(|t| Duration::from_secs(u64::try_from(now - t).unwrap_or(0))),
                })
            })
            .await;
        match counts {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "counting the outbox failed");
                None
            }
        }
    }
}

/// `ok` or `degraded` as a whole, with who answers.
fn summarise(service: &str, checks: BTreeMap<String, Check>) -> Health {
    let degraded = checks.values().any(|c| c.status != HealthStatus::Ok);
    Health {
        service: service.to_string(),
        status: if degraded {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        },
        upstreams: None,
        checks: (!checks.is_empty()).then_some(checks),
        pid: Some(std::process::id()),
        instance: Some(instance().to_string()),
    }
}

/// One write transaction that changes nothing visible: it rewrites the schema version with
/// its own value, which takes the write lock and commits like any write.
async fn write_probe(db: &Db) -> Result<(), String> {
    let wrote = db.write(|c| -> Result<(), DbError> {
        let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        c.execute_batch(&format!("PRAGMA user_version = {v}"))?;
        Ok(())
    });
    match tokio::time::timeout(DB_PROBE_WAIT, wrote).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the database refuses a write: {e}")),
        Err(_) => Err(format!(
            "a write to the database did not finish within {} s",
            DB_PROBE_WAIT.as_secs()
        )),
    }
}

#[derive(Debug)]
struct OutboxCounts {
    waiting: u64,
    dead: Option<u64>,
    oldest_age: Option<Duration>,
}

/// How one background part reports on itself. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Part {
    monitor: Monitor,
    kind: PartKind,
}

impl Part {
    /// Which part this is.
    pub fn kind(&self) -> PartKind {
        self.kind
    }

    /// It works (again).
    pub fn ok(&self) {
        self.update(|p| p.trouble = None);
    }

    /// It is in trouble, retrying: degraded once this has lasted past the part's threshold,
    /// counted from the first call since it was last ok. The reason is kept up to date.
    pub fn failing(&self, reason: impl Into<String>) {
        self.failing_since(Instant::now(), reason);
    }

    /// Like [`Part::failing`], with the trouble counted from `since` (e.g. when the work
    /// that keeps failing began) unless it began earlier.
    pub fn failing_since(&self, since: Instant, reason: impl Into<String>) {
        let reason = reason.into();
        self.update(|p| match &mut p.trouble {
            Some(t) => t.reason = reason,
            None => {
                let ago = i64::try_from(since.elapsed().as_millis()).unwrap_or(0);
                p.trouble = Some(Trouble {
                    since,
                    since_wall: UnixMillis::new(UnixMillis::now().as_i64() - ago),
                    reason,
                    now: false,
                })
            }
        });
    }

    /// Its task stopped and is being started again: degraded until it reports ok.
    pub fn restarting(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.update(|p| {
            p.restarts += 1;
            let (since, since_wall) = match &p.trouble {
                Some(t) => (t.since, t.since_wall),
                None => (Instant::now(), UnixMillis::now()),
            };
            p.trouble = Some(Trouble {
                since,
                since_wall,
                reason,
                now: true,
            });
        });
    }

    fn update(&self, f: impl FnOnce(&mut PartState)) {
        let mut s = self.monitor.lock();
        f(s.parts.entry(self.kind).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_part_is_degraded_only_once_its_trouble_outlasts_the_threshold() {
        let monitor = Monitor::default();
        let consumer = monitor.part(PartKind::Consumer);
        let h = monitor.report("svc").await;
        assert_eq!(h.status, HealthStatus::Ok);
        assert_eq!(h.checks.as_ref().unwrap()["consumer"], Check::ok());

        consumer.failing("database is locked");
        let h = monitor.report("svc").await;
        let c = &h.checks.as_ref().unwrap()["consumer"];
        assert_eq!(
            (h.status, c.status, c.reason.as_deref()),
            (
                HealthStatus::Ok,
                HealthStatus::Ok,
                Some("database is locked")
            ),
            "a blip is not an alarm"
        );

        let long_ago = Instant::now() - CONSUMER_STUCK_AFTER - Duration::from_secs(1);
        consumer.ok();
        consumer.failing_since(long_ago, "database is locked");
        let h = monitor.report("svc").await;
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(
            h.failing().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["consumer"]
        );

        consumer.ok();
        consumer.restarting("the consumer panicked");
        let h = monitor.report("svc").await;
        let c = &h.checks.as_ref().unwrap()["consumer"];
        assert_eq!((c.status, c.restarts), (HealthStatus::Degraded, Some(1)));
        consumer.ok();
        let h = monitor.report("svc").await;
        let c = &h.checks.as_ref().unwrap()["consumer"];
        assert_eq!((h.status, c.restarts), (HealthStatus::Ok, Some(1)));
    }

    #[tokio::test]
    async fn a_service_without_background_parts_reports_no_checks() {
        let h = Monitor::default().report("gateway").await;
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            format!(
                r#"{{"service":"gateway","status":"ok","pid":{},"instance":"{}"}}"#,
                std::process::id(),
                instance()
            )
        );
    }
}
