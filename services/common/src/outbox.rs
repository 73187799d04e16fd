//! The transactional outbox: a handler writes its state change and the events describing it
//! in one transaction ([`enqueue`]); the relay publishes them to the bus and deletes them once
//! the broker has acked (the ack means the event is durable in `bus.db`). While the broker is
//! down, events wait in the table and the relay retries with backoff; requests keep working.

use std::time::Duration;

use bytes::Bytes;
use rusqlite::Connection;
use tix_api::events::Envelope;
use tix_bus_client::Client;

use crate::db::{Db, DbError};

/// Records an event to publish once the surrounding transaction commits.
pub fn enqueue(conn: &Connection, env: &Envelope) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (id, subject, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute((
        &env.id,
        env.subject().as_str(),
        env.to_json(),
        env.occurred_at.unix_timestamp(),
    ))?;
    Ok(())
}

/// Events still waiting to be published.
pub async fn pending(db: &Db) -> Result<u64, DbError> {
    db.read_blocking(|c| {
        c.query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(DbError::from)
    })
    .await
}

struct Row {
    seq: i64,
    id: String,
    subject: String,
    payload: Vec<u8>,
}

const BATCH: usize = 512;

/// Publishes the outbox forever: woken by every commit, and every second regardless.
pub async fn run_relay(db: Db, bus: Client) {
    let mut commits = db.commits();
    let mut backoff = Duration::from_millis(100);
    loop {
        // Mark every commit so far as seen before reading: one landing after this read
        // wakes the wait below.
        commits.borrow_and_update();
        let rows = match db
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT seq, id, subject, payload FROM outbox ORDER BY seq LIMIT ?1",
                )?;
                let rows = st.query_map([BATCH as i64], |r| {
                    Ok(Row {
                        seq: r.get(0)?,
                        id: r.get(1)?,
                        subject: r.get(2)?,
                        payload: r.get(3)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(DbError::from)
            })
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if rows.is_empty() {
            tokio::select! {
                _ = commits.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // Publish the batch pipelined; the broker stores them in this order.
        let results = futures::future::join_all(rows.iter().map(|r| {
            bus.publish(
                Bytes::from(r.id.clone()),
                Bytes::from(r.subject.clone()),
                Bytes::from(r.payload.clone()),
            )
        }))
        .await;
        // Delete the acked prefix; the rest is retried (a retry of an event the broker did
        // store is acked without being stored twice: publishes are idempotent on the id).
        let acked = results.iter().take_while(|r| r.is_ok()).count();
        if acked > 0 {
            let upto = rows[acked - 1].seq;
            if let Err(e) = db
                .write(move |c| -> Result<usize, DbError> {
                    Ok(c.execute("DELETE FROM outbox WHERE seq <= ?1", [upto])?)
                })
                .await
            {
                tracing::error!(error = %e, "clearing the outbox failed");
            }
        }
        if acked < rows.len() {
            let error = results[acked].as_ref().err().map(|e| e.to_string());
            tracing::warn!(
                waiting = rows.len() - acked,
                error = error.as_deref().unwrap_or(""),
                retry_in = ?backoff,
                "the bus did not take every event; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            backoff = Duration::from_millis(100);
        }
    }
}
