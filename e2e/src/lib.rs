//! What only the end-to-end tests need: read-only looks into each service's SQLite file to
//! check that the services agree. Processes, users, the API client and waits come from
//! `tix-testkit`, like every other crate's tests.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Rows of a query on one service's database, opened read-only beside the running service.
pub fn rows(data_dir: &Path, db: &str, sql: &str) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join(db),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("opening a service database");
    let mut st = conn.prepare(sql).expect("a valid query");
    let n = st.column_count();
    st.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(x) => Value::from(x),
                    rusqlite::types::ValueRef::Real(x) => Value::from(x),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(b) => {
                        Value::from(String::from_utf8_lossy(b).into_owned())
                    }
                })
            })
            .collect()
    })
    .expect("a query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// The cross-service invariants, once everything has settled:
/// - every complete order has exactly one succeeded payment, and no other order has one;
/// - every reserved ticket is held by an active order of that ticket, and every active
///   order's ticket is reserved by it;
/// - the orders replica of every ticket has caught up with its version.
pub fn check_consistency(data_dir: &Path) -> Result<(), String> {
    let orders = rows(
        data_dir,
        "orders.db",
        "SELECT id, ticket_id, status FROM orders",
    );
    // Every charge ends as the buyer's completed order or as a refund; nothing stays
    // pending or half refunded.
    let payments = rows(
        data_dir,
        "payments.db",
        "SELECT order_id, status FROM payments WHERE status != 'failed'",
    );
    let tickets = rows(
        data_dir,
        "tickets.db",
        "SELECT id, order_id, version FROM tickets",
    );
    let replica = rows(data_dir, "orders.db", "SELECT id, version FROM tickets");
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if let Some(p) = payments
        .iter()
        .find(|p| matches!(s(&p[1]).as_str(), "pending" | "refund_pending"))
    {
        return Err(format!(
            "a payment of order {} is still {}",
            s(&p[0]),
            s(&p[1])
        ));
    }
    for o in &orders {
        let of = |status: &str| {
            payments
                .iter()
                .filter(|p| s(&p[0]) == s(&o[0]) && s(&p[1]) == status)
                .count()
        };
        let (charged, refunded) = (of("succeeded"), of("refunded"));
        let complete = s(&o[2]) == "complete";
        if complete && (charged, refunded) != (1, 0) {
            return Err(format!(
                "complete order {} has {charged} charges and {refunded} refunds",
                s(&o[0])
            ));
        }
        if !complete && charged != 0 {
            return Err(format!(
                "{} order {} has {charged} charges not refunded",
                s(&o[2]),
                s(&o[0])
            ));
        }
    }
    for t in &tickets {
        let active: Vec<&Vec<Value>> = orders
            .iter()
            .filter(|o| s(&o[1]) == s(&t[0]) && s(&o[2]) != "cancelled")
            .collect();
        match (&t[1], active.as_slice()) {
            (Value::Null, []) => {}
            (Value::String(held), [o]) if *held == s(&o[0]) => {}
            (held, active) => {
                return Err(format!(
                    "ticket {} is held by {held} but its active orders are {:?}",
                    s(&t[0]),
                    active.iter().map(|o| s(&o[0])).collect::<Vec<_>>()
                ));
            }
        }
        let replica_version = replica
            .iter()
            .find(|r| s(&r[0]) == s(&t[0]))
            .map(|r| r[1].clone());
        if replica_version != Some(t[2].clone()) {
            return Err(format!(
                "ticket {} is at version {} but the orders replica has {:?}",
                s(&t[0]),
                t[2],
                replica_version
            ));
        }
    }
    Ok(())
}

/// Waits until [`check_consistency`] holds, failing with the last inconsistency seen.
pub async fn assert_consistent_within(data_dir: &Path, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check_consistency(data_dir) {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!("the services still disagree after {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
