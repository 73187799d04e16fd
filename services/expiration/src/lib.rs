//! The expiration service: an order not paid in time is cancelled.
//!
//! On `order:created` it stores a due timer in `expiration.db`. A scheduler sleeps until
//! the earliest due time — not a loop scanning every second — and woken early by a commit
//! that set a timer (it may be earlier), publishes `expiration:complete` through the outbox and
//! deletes the timer in the same transaction. Timers survive restarts: one that fell due
//! while the service was down fires right after it starts. Firing for an order that was
//! cancelled meanwhile is harmless: orders ignores it. A paid order's timer is dropped
//! when its `payment:created` arrives, so a sale does not come back as one more event,
//! delivery and commits per purchase 15 minutes later (docs/events.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rusqlite::{Connection, OptionalExtension};
use tix_api::UnixMillis;
use tix_api::events::{Envelope, Event, ExpirationComplete, Subject};
use tix_bus_client::SubscribeOptions;
use tix_common::config::ServiceArgs;
use tix_common::db::{self, Db, DbError, Topic};
use tix_common::http;
use tix_common::inbox::{Group, Outcome};
use tix_common::outbox;
use tix_common::service::Service;

pub const PRODUCER: &str = "expiration";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tix-expiration",
    version,
    about = "tix expiration service: cancels orders not paid in time"
)]
pub struct Config {
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Port of /healthz (0 picks a free one).
    #[arg(long, env = "TIX_EXPIRATION_PORT", default_value_t = 4005)]
    pub port: u16,
}

const MIGRATIONS: &[&str] = &[
    tix_common::db::EVENTS_SCHEMA,
    "CREATE TABLE timers (
        order_id TEXT PRIMARY KEY,
        due_at INTEGER NOT NULL
     );
     CREATE INDEX timers_due ON timers (due_at);",
    // Events the bus refuses for good, out of the way of the others (docs/operations.md).
    tix_common::outbox::OUTBOX_DEAD_SCHEMA,
    // The reservation's request id, so the expiry it leads to carries it on
    // (docs/observability.md).
    "ALTER TABLE timers ADD COLUMN correlation_id TEXT;",
    // Applied-event ids are forgotten once no redelivery can bring their event back.
    tix_common::inbox::PRUNE_SCHEMA,
    // One page per event enqueued and cleared, not three and two (docs/benchmarks.md).
    tix_common::outbox::OUTBOX_REBUILD,
];

fn now_ms() -> i64 {
    UnixMillis::now().as_i64()
}

fn on_event(c: &Connection, env: &Envelope) -> anyhow::Result<Outcome> {
    match &env.event {
        Event::OrderCreated(o) => {
            let due = o.expires_at.as_i64();
            set_timer(c, &o.id, due, env.correlation_id.as_deref())?;
            tracing::debug!(order = %o.id, due, "timer set");
        }
        // A successful charge leaves its order complete, or finds it cancelled or paid
        // already: in every case nothing is left to expire. A payment that arrives before
        // its order's `order:created` (the two are different subjects, and a redelivery
        // can come late) drops nothing; that timer fires later and orders ignores it.
        Event::PaymentCreated(p) => {
            let dropped = delete_timer(c, &p.order_id)?;
            tracing::debug!(order = %p.order_id, dropped, "paid: timer dropped");
        }
        _ => {}
    }
    Ok(Outcome::Applied)
}

/// The scheduler's wake-up: a commit that set a timer.
const TIMERS: Topic = Topic::own(1);

/// Sets the order's timer (a second one for the same order is ignored), inside a writer
/// job: the scheduler wakes once it has committed.
fn set_timer(
    c: &Connection,
    order_id: &str,
    due: i64,
    correlation_id: Option<&str>,
) -> rusqlite::Result<()> {
    let n = c.prepare_cached("INSERT INTO timers (order_id, due_at, correlation_id) VALUES (?1, ?2, ?3) ON CONFLICT (order_id) DO NOTHING")?
        .execute((order_id, due, correlation_id))?;
    if n == 1 {
        db::touched(TIMERS);
    }
    Ok(())
}

/// Deletes the order's timer, if it has one; how many were deleted.
fn delete_timer(c: &Connection, order_id: &str) -> rusqlite::Result<usize> {
    c.prepare_cached("DELETE FROM timers WHERE order_id = ?1")?
        .execute([order_id])
}

/// Fires every timer due by `now`: one `expiration:complete` each, timer deleted with it.
fn fire_due(c: &Connection, now: i64) -> rusqlite::Result<Vec<String>> {
    let due: Vec<(String, Option<String>)> = c
        .prepare_cached(
            "SELECT order_id, correlation_id FROM timers WHERE due_at <= ?1 ORDER BY due_at LIMIT 1000",
        )?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (order_id, correlation_id) in &due {
        // The expiry is the reservation's doing: it carries the reservation's request id.
        let env = Envelope {
            correlation_id: correlation_id.clone(),
            ..Envelope::new(
                PRODUCER,
                Event::ExpirationComplete(ExpirationComplete {
                    order_id: order_id.clone(),
                }),
            )
        };
        outbox::enqueue(c, &env)?;
        delete_timer(c, order_id)?;
    }
    Ok(due.into_iter().map(|(order_id, _)| order_id).collect())
}

/// Sleeps until the earliest timer, fires what is due, and starts over.
pub async fn run_scheduler(db: Db) {
    let mut changes = db.changes(TIMERS);
    loop {
        changes.borrow_and_update();
        let next: Result<Option<i64>, DbError> = db
            .read(|c| {
                Ok(c.prepare_cached("SELECT min(due_at) FROM timers")?
                    .query_row([], |r| r.get::<_, Option<i64>>(0))
                    .optional()?
                    .flatten())
            })
            .await;
        let wait = match next {
            Ok(Some(due)) if due <= now_ms() => {
                match db
                    .write(|c| -> Result<Vec<String>, DbError> { Ok(fire_due(c, now_ms())?) })
                    .await
                {
                    Ok(fired) => {
                        for id in fired {
                            tracing::info!(order = %id, "expired");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "firing timers failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                continue;
            }
            Ok(Some(due)) => Some(Duration::from_millis((due - now_ms()).max(0) as u64)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "reading timers failed; retrying");
                Some(Duration::from_millis(500))
            }
        };
        // A commit that set a timer may have set an earlier one: wake for it, or for the
        // earliest one.
        match wait {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = changes.changed() => {}
                }
            }
            None => {
                let _ = changes.changed().await;
            }
        }
    }
}

/// Opens what the service owns, starts its background work and binds its port.
pub async fn build(cfg: Config) -> anyhow::Result<Service> {
    let db = cfg.common.open_db("expiration.db", MIGRATIONS)?;
    let mut opts = SubscribeOptions::new(
        PRODUCER,
        &[
            Subject::OrderCreated.as_str(),
            Subject::PaymentCreated.as_str(),
        ],
    );
    opts.max_in_flight = 256;
    // Only saves work: under a policy from before expiration asked for it, timers of paid
    // orders fire as they used to.
    let group = Group {
        opts,
        optional: vec![Subject::PaymentCreated.as_str().to_string()],
        // A timer: its firing is a commit of its own, synced before it is published.
        local: vec![Subject::OrderCreated.as_str().to_string()],
    };
    let router = http::app(Router::new(), PRODUCER, cfg.common.limits());
    let scheduler = tokio::spawn(run_scheduler(db.clone()));
    let service = Service::bind(SocketAddr::new(cfg.common.host, cfg.port), router)
        .await?
        .with_db(db)
        .with_events(
            cfg.common.bus_options(PRODUCER)?,
            group,
            Arc::new(on_event),
            cfg.common.pruning(),
        )
        .with_task(scheduler);
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scheduler_fires_each_timer_once_when_due_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &dir.path().join("e.db"),
            tix_common::db::Durability::Normal,
            MIGRATIONS,
        )
        .unwrap();
        let now = now_ms();
        db.write(move |c| -> Result<(), DbError> {
            for (id, due) in [
                ("overdue", now - 60_000),
                ("soon", now + 300),
                ("later", now + 60_000),
            ] {
                set_timer(c, id, due, None)?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let task = tokio::spawn(run_scheduler(db.clone()));
        let fired = |db: Db| async move {
            db.read(|c| -> Result<Vec<String>, DbError> {
                let mut st = c.prepare("SELECT payload FROM outbox ORDER BY seq")?;
                let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
                Ok(rows
                    .map(|p| {
                        let env: Envelope = serde_json::from_slice(&p.unwrap()).unwrap();
                        match env.event {
                            Event::ExpirationComplete(e) => e.order_id,
                            other => panic!("unexpected {other:?}"),
                        }
                    })
                    .collect())
            })
            .await
            .unwrap()
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            fired(db.clone()).await,
            ["overdue"],
            "an overdue timer fires at once"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(fired(db.clone()).await, ["overdue", "soon"]);
        // A new, earlier timer wakes the sleeping scheduler.
        let now = now_ms();
        db.write(move |c| -> Result<(), DbError> { Ok(set_timer(c, "new", now + 100, None)?) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            fired(db.clone()).await,
            ["overdue", "soon", "new"],
            "\"later\" is not due"
        );
        task.abort();
    }
}
