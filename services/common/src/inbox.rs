//! The inbox: a consumer applies an event and records its id in the same transaction, so a
//! redelivered event finds its id and changes nothing. Events are acked only after that
//! transaction commits; one the service cannot parse is left unacked, so the bus retries it
//! and finally moves it to its dead-letter list for an operator to look at.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tix_api::events::Envelope;
use tix_bus_client::{Client, Delivery, SubscribeOptions};

use crate::db::{Db, DbError};

/// What a handler did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is written; record the event as seen.
    Applied,
    /// Not applicable yet (e.g. a version from the future): leave it unacked so the bus
    /// delivers it again after the group's ack wait.
    Retry(String),
}

/// Applies one event inside the consumer's transaction.
pub type Handler = Arc<dyn Fn(&Connection, &Envelope) -> anyhow::Result<Outcome> + Send + Sync>;

/// How many already-delivered events are applied in one transaction.
const MAX_BATCH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Applied,
    Duplicate,
    Retry,
    Failed,
}

/// Whether the inbox already holds this event id.
pub fn seen(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM inbox WHERE event_id = ?1")?
        .exists([id])
}

/// Consumes a queue group forever, applying each event exactly once to `db`.
pub async fn run_consumer(db: Db, bus: Client, opts: SubscribeOptions, handler: Handler) {
    let group = opts.group.clone();
    let mut sub = loop {
        match bus.subscribe(opts.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(%group, error = %e, "subscribing failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    while let Some(first) = sub.next().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match sub.try_next() {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        apply_batch(&db, &handler, batch).await;
    }
}

async fn apply_batch(db: &Db, handler: &Handler, batch: Vec<Delivery>) {
    let mut parsed = Vec::with_capacity(batch.len());
    let mut deliveries = Vec::with_capacity(batch.len());
    for d in batch {
        match Envelope::from_bus(&d.subject, &d.payload) {
            Ok(env) => {
                parsed.push(env);
                deliveries.push(d);
            }
            Err(e) => tracing::error!(
                subject = %d.subject, id = %d.id, deliveries = d.deliveries, error = %e,
                "cannot read this event; leaving it for the dead-letter list"
            ),
        }
    }
    if parsed.is_empty() {
        return;
    }
    let handler = handler.clone();
    let result = db
        .write(move |conn| -> Result<Vec<Verdict>, DbError> {
            let mut verdicts = Vec::with_capacity(parsed.len());
            for env in &parsed {
                verdicts.push(apply_one(conn, &handler, env)?);
            }
            Ok(verdicts)
        })
        .await;
    match result {
        Ok(verdicts) => {
            for (d, v) in deliveries.iter().zip(verdicts) {
                match v {
                    Verdict::Applied | Verdict::Duplicate => {
                        if v == Verdict::Duplicate {
                            tracing::debug!(id = %d.id, "already applied; acking again");
                        }
                        // A lost ack only means one more delivery, which the inbox absorbs.
                        let _ = d.ack_nowait();
                    }
                    Verdict::Retry | Verdict::Failed => {}
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "applying events failed; they will be redelivered"),
    }
}

fn apply_one(conn: &Connection, handler: &Handler, env: &Envelope) -> Result<Verdict, DbError> {
    if seen(conn, &env.id)? {
        return Ok(Verdict::Duplicate);
    }
    conn.execute_batch("SAVEPOINT event")?;
    match handler(conn, env) {
        Ok(Outcome::Applied) => {
            conn.prepare_cached(
                "INSERT INTO inbox (event_id, subject, received_at) VALUES (?1, ?2, ?3)",
            )?
            .execute((
                &env.id,
                env.subject().as_str(),
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ))?;
            conn.execute_batch("RELEASE event")?;
            Ok(Verdict::Applied)
        }
        Ok(Outcome::Retry(why)) => {
            conn.execute_batch("ROLLBACK TO event; RELEASE event")?;
            tracing::debug!(id = %env.id, subject = %env.subject(), %why, "not yet; will retry");
            Ok(Verdict::Retry)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO event; RELEASE event")?;
            tracing::error!(id = %env.id, subject = %env.subject(), error = ?e, "handler failed; will retry");
            Ok(Verdict::Failed)
        }
    }
}
