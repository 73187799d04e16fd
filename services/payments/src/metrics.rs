//! Payments' own metric: payment attempts by status (`tix_payments{status}`), counted in
//! `payments.db` when `/metrics` is scraped — the books, not a counter that a restart
//! would reset.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tix_common::db::{Db, DbError};
use tix_common::metrics::StatusLabels;

/// Every status an attempt can have, reported even at zero so a dashboard sees the series.
const STATUSES: [&str; 5] = [
    "pending",
    "succeeded",
    "failed",
    "refund_pending",
    "refunded",
];

/// Registers `tix_payments{status}` and its reader.
pub fn register(db: &Db) {
    let by_status: Family<StatusLabels, Gauge> = Family::default();
    let m = tix_common::metrics::get();
    m.register(
        "payments",
        "Payment attempts by status (pending, succeeded, failed, refund_pending, refunded), read from payments.db when scraped",
        by_status.clone(),
    );
    let db = db.clone();
    m.on_scrape(move || {
        let (db, by_status) = (db.clone(), by_status.clone());
        Box::pin(async move {
            let counts = db
                .read_blocking(|c| -> Result<Vec<(String, i64)>, DbError> {
                    let mut st =
                        c.prepare_cached("SELECT status, count(*) FROM payments GROUP BY status")?;
                    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    Ok(rows.collect::<rusqlite::Result<_>>()?)
                })
                .await;
            match counts {
                Ok(counts) => {
                    for status in STATUSES {
                        let n = counts
                            .iter()
                            .find(|(s, _)| s == status)
                            .map_or(0, |(_, n)| *n);
                        by_status
                            .get_or_create(&StatusLabels {
                                status: status.to_string(),
                            })
                            .set(n);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "counting payments for /metrics failed"),
            }
        })
    });
}
