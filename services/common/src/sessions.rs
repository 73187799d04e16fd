//! Revoked sessions in a service's own database, so a restart keeps refusing them: the
//! table, loading it into [`Revocations`] at start, and applying `session:revoked`.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tix_api::events::{Envelope, Event, SessionRevoked};

use crate::auth::{JwtKeys, Revocations};
use crate::db::{Db, DbError};
use crate::inbox::{Handler, Outcome};

/// The migration every service that checks tokens adds to its list.
pub const SCHEMA: &str = "CREATE TABLE revoked_sessions (
        jti TEXT PRIMARY KEY,
        until INTEGER NOT NULL
     ) WITHOUT ROWID;";

/// Records a revocation (in the caller's transaction) and applies it in memory.
pub fn record(c: &Connection, revoked: &Revocations, r: &SessionRevoked) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO revoked_sessions (jti, until) VALUES (?1, ?2)
         ON CONFLICT (jti) DO UPDATE SET until = max(until, excluded.until)",
    )?
    .execute((&r.jti, r.until))?;
    revoked.revoke(&r.jti, r.until);
    Ok(())
}

/// Loads the revocations still in force, and deletes the others.
pub fn load(c: &Connection, revoked: &Revocations, now: i64) -> rusqlite::Result<usize> {
    c.execute("DELETE FROM revoked_sessions WHERE until < ?1", [now])?;
    let mut st = c.prepare("SELECT jti, until FROM revoked_sessions")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut n = 0;
    for row in rows {
        let (jti, until) = row?;
        revoked.revoke(&jti, until);
        n += 1;
    }
    Ok(n)
}

/// Forgets revocations whose tokens have all expired, in memory and on disk.
pub fn prune(c: &Connection, revoked: &Revocations, now: i64) -> rusqlite::Result<()> {
    revoked.prune(now);
    c.execute("DELETE FROM revoked_sessions WHERE until < ?1", [now])?;
    Ok(())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Loads the revocations in force into `keys` and returns the task that forgets expired
/// ones every minute; the service stops it with its other tasks.
pub async fn watch(db: &Db, keys: &JwtKeys) -> Result<tokio::task::JoinHandle<()>, DbError> {
    let revoked = keys.revocations().clone();
    let r = revoked.clone();
    let n = db
        .write(move |c| -> Result<usize, DbError> { Ok(load(c, &r, now())?) })
        .await?;
    tracing::info!(revoked = n, "revoked sessions loaded");
    let db = db.clone();
    Ok(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.tick().await;
        loop {
            every.tick().await;
            let r = revoked.clone();
            if let Err(e) = db
                .write(move |c| -> Result<(), DbError> { Ok(prune(c, &r, now())?) })
                .await
            {
                tracing::warn!(error = %e, "pruning revoked sessions failed");
            }
        }
    }))
}

/// A service's event handler that also applies `session:revoked` to `keys`.
pub fn with_revocations(
    keys: &JwtKeys,
    apply: impl Fn(&Connection, &Envelope) -> anyhow::Result<Outcome> + Send + Sync + 'static,
) -> Handler {
    let revoked = keys.revocations().clone();
    Arc::new(move |c, env| match &env.event {
        Event::SessionRevoked(r) => {
            record(c, &revoked, r)?;
            tracing::info!(user = %r.user_id, "session revoked");
            Ok(Outcome::Applied)
        }
        _ => apply(c, env),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_survive_a_restart_until_they_expire() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        let live = Revocations::default();
        let r = |jti: &str, until| SessionRevoked {
            jti: jti.into(),
            user_id: "u".into(),
            until,
        };
        record(&c, &live, &r("a", 100)).unwrap();
        record(&c, &live, &r("b", 300)).unwrap();
        record(&c, &live, &r("b", 200)).unwrap();
        assert!(live.is_revoked("a") && live.is_revoked("b"));
        let restarted = Revocations::default();
        assert_eq!(load(&c, &restarted, 150).unwrap(), 1, "a has expired");
        assert!(!restarted.is_revoked("a") && restarted.is_revoked("b"));
        prune(&c, &live, 400).unwrap();
        assert!(live.is_empty());
        assert_eq!(load(&c, &Revocations::default(), 0).unwrap(), 0);
    }
}
