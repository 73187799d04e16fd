//! `Idempotency-Key` on requests that create something (as Stripe's API has it): a client
//! that retries with the same key — after a timeout, a dropped connection, a 502 — gets
//! the first request's result instead of a second order or charge, or an error saying the
//! first one happened ("Ticket is already reserved", "Order already paid").
//!
//! Keys are per user, remembered for a day, and bound to what the first request asked
//! for: the same key with another request is refused.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rusqlite::{Connection, OptionalExtension};

use crate::error::ApiError;

/// The migration a service that honours keys adds to its list.
pub const SCHEMA: &str = "CREATE TABLE idempotency_keys (
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        request TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (user_id, key)
     ) WITHOUT ROWID;
     CREATE INDEX idempotency_keys_age ON idempotency_keys (created_ms);";

/// How long a key is remembered.
pub const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

/// The request's `Idempotency-Key`, if it sent one: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(IdempotencyKey(Some(k.to_string())))
            }
            _ => Err(ApiError::BadRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            )),
        }
    }
}

/// What an earlier request of `user` with this key created, loaded by `load` from its id:
/// what a handler answers a retry with, before doing anything else. `None` without a key.
pub async fn earlier<T: Send + 'static>(
    db: &crate::db::Db,
    user: &str,
    key: Option<&str>,
    request: &str,
    load: fn(&Connection, &str) -> rusqlite::Result<Option<T>>,
) -> Result<Option<T>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let (user, key, request) = (user.to_string(), key.to_string(), request.to_string());
    db.read(move |c| -> Result<Option<T>, ApiError> {
        match find(c, &user, &key, &request)? {
            Some(id) => Ok(load(c, &id)?),
            None => Ok(None),
        }
    })
    .await
}

/// What an earlier request with this key created, if any. `request` describes what is
/// being asked now; a key first used for something else is refused.
pub fn find(
    c: &Connection,
    user: &str,
    key: &str,
    request: &str,
) -> Result<Option<String>, ApiError> {
    let found: Option<(String, String)> = c
        .prepare_cached(
            "SELECT request, resource_id FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
        )?
        .query_row((user, key), |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match found {
        Some((asked, id)) if asked == request => Ok(Some(id)),
        Some(_) => Err(ApiError::BadRequest(
            "This Idempotency-Key was used for another request".into(),
        )),
        None => Ok(None),
    }
}

/// Remembers what this key created (in the caller's transaction, with the thing itself),
/// and forgets keys older than a day.
pub fn record(
    c: &Connection,
    user: &str,
    key: &str,
    request: &str,
    resource_id: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM idempotency_keys WHERE created_ms < ?1")?
        .execute([now_ms - KEEP_MS])?;
    c.prepare_cached(
        "INSERT INTO idempotency_keys (user_id, key, request, resource_id, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute((user, key, request, resource_id, now_ms))?;
    Ok(())
}

/// Forgets the key that made `resource_id` (when the thing itself is undone, e.g. a
/// payment claim released because no money moved): a retry then starts afresh.
pub fn forget(c: &Connection, resource_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM idempotency_keys WHERE resource_id = ?1")?
        .execute([resource_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_finds_what_it_made_once_and_only_for_the_same_request() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        assert_eq!(find(&c, "u", "k1", "ticket:t1").unwrap(), None);
        record(&c, "u", "k1", "ticket:t1", "o1", 1_000).unwrap();
        assert_eq!(find(&c, "u", "k1", "ticket:t1").unwrap(), Some("o1".into()));
        assert!(
            find(&c, "u", "k1", "ticket:t2").is_err(),
            "reused for another"
        );
        assert_eq!(find(&c, "v", "k1", "ticket:t1").unwrap(), None, "per user");
        record(&c, "u", "k2", "ticket:t2", "o2", 1_000 + KEEP_MS + 1).unwrap();
        assert_eq!(find(&c, "u", "k1", "ticket:t1").unwrap(), None, "forgotten");
    }
}
