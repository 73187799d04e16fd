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

#[derive(Debug, Default)]
struct DeadLetters {
    count: Option<u64>,
    fetched: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    link: Option<Link>,
    group: Option<String>,
    db: Option<Db>,
    parts: BTreeMap<PartKind, PartState>,
    dead_letters: DeadLetters,
}

/// A service's health, shared by its background parts (which report to it) and its
/// `/healthz` route (which reads it). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    state: Arc<Mutex<State>>,
    /// One `STATS` request at a time.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

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
        let dead_letters = self.dead_letters().await;
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
        }
    }

    /// The group's dead letters: cached, asked of the broker again once the cache is
    /// older than [`DEAD_LETTERS_EVERY`] (by one request at a time; the others read the
    /// cache meanwhile).
    async fn dead_letters(&self) -> Option<u64> {
        let (group, client, fresh, cached) = {
            let s = self.lock();
            let fresh = s
                .dead_letters
                .fetched
                .is_some_and(|t| t.elapsed() < DEAD_LETTERS_EVERY);
            (
                s.group.clone(),
                s.link.as_ref().map(|l| l.client.clone()),
                fresh,
                s.dead_letters.count,
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
        let count = match tokio::time::timeout(STATS_WAIT, client.stats()).await {
            Ok(Ok(stats)) => Some(stats.group(&group).map(|g| g.dead_letters).unwrap_or(0)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "counting dead letters failed");
                None
            }
            Err(_) => None,
        };
        let mut s = self.lock();
        s.dead_letters.fetched = Some(Instant::now());
        if count.is_some() {
            s.dead_letters.count = count;
        }
        s.dead_letters.count
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
            r#"{"service":"gateway","status":"ok"}"#
        );
    }
}
