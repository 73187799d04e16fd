//! Giving back the charges orders rejected (docs/events.md, "payment:rejected").
//!
//! The consumer only marks a payment `refund_pending` inside its transaction; this task
//! makes the provider calls, outside any transaction, woken by every commit that marked one
//! (`store::REFUNDS`) and every `--reconcile-every`. Each refund carries the payment's own
//! idempotency key (`refund-<payment id>`), so a refund retried after a crash or a timeout
//! is made once. Until the provider
//! answers, the payment stays `refund_pending`: it is never forgotten.

use std::sync::Arc;
use std::time::Duration;

use tix_common::db::{Db, DbError};

use crate::provider::{PaymentProvider, RefundRequest};
use crate::store::{self, PendingRefund};

/// Refunds tried per read of the pending ones, least recently tried first: one the provider
/// refuses goes to the back, so refunds it refuses for good (left to an operator) never
/// hold back the others, however many.
const BATCH: i64 = 100;

/// Runs forever; pending refunds are retried every `every` when nothing wakes the task.
pub async fn run(db: Db, provider: Arc<dyn PaymentProvider>, every: Duration) {
    let mut changes = db.changes(store::REFUNDS);
    loop {
        changes.borrow_and_update();
        let pending = db
            .read(|c| -> Result<Vec<PendingRefund>, DbError> {
                Ok(store::pending_refunds(c, BATCH)?)
            })
            .await;
        match pending {
            Ok(list) => {
                let full = list.len() as i64 == BATCH;
                let mut recorded = false;
                for r in list {
                    recorded |= refund(&db, provider.as_ref(), r).await;
                }
                // A backlog (after the provider was down, at start-up) is worked through
                // at once, as long as refunds go through: recording one wakes nobody.
                if full && recorded {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading pending refunds failed"),
        }
        let _ = tokio::time::timeout(every, changes.changed()).await;
    }
}

/// Makes one refund and records it; whether it is recorded.
async fn refund(db: &Db, provider: &dyn PaymentProvider, r: PendingRefund) -> bool {
    let req = RefundRequest {
        charge_id: r.charge_id.clone(),
        amount_cents: r.amount.cents(),
        idempotency_key: format!("refund-{}", r.payment_id),
    };
    match provider.refund(&req).await {
        Ok(refund) => {
            let id = refund.id.clone();
            let pending = r.clone();
            match db
                .write(move |c| -> Result<(), DbError> { Ok(store::refunded(c, &pending, &id)?) })
                .await
            {
                Ok(()) => {
                    tracing::info!(payment = %r.payment_id, order = %r.order_id,
                        refund = %refund.id, "refunded");
                    true
                }
                // Retried at the next sweep with the same key: the provider answers with
                // the same refund.
                Err(e) => {
                    tracing::error!(payment = %r.payment_id, refund = %refund.id,
                        error = %e, "refunded but not recorded yet");
                    false
                }
            }
        }
        Err(e) => {
            if e.is_retryable() {
                tracing::warn!(payment = %r.payment_id, error = %e, "refund not made yet; will retry");
            } else {
                tracing::error!(payment = %r.payment_id, charge = %r.charge_id, error = %e,
                    "the provider refuses this refund; an operator must look at it");
            }
            if let Err(e) = store::record_tried(db, &r.payment_id).await {
                tracing::warn!(payment = %r.payment_id, error = %e, "recording a refund's try failed");
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use tix_common::db::Durability;

    use super::*;
    use crate::provider::{ChargeRequest, Sandbox};
    use crate::store::Claim;

    /// A payments database and a sandbox with `n` charges orders rejected (payments
    /// `p-0000`, `p-0001` …), each `refund_pending`. Those `unknown` says are charged under
    /// an id the sandbox never made, so it refuses their refunds for good.
    async fn rejected(
        dir: &std::path::Path,
        n: i64,
        unknown: impl Fn(i64) -> bool,
    ) -> (Db, Arc<Sandbox>) {
        let db = Db::open(&dir.join("p.db"), Durability::Normal, store::MIGRATIONS).unwrap();
        let sandbox = Arc::new(Sandbox::open(&dir.join("ledger.db")).unwrap());
        let mut rows = Vec::new();
        for i in 0..n {
            let claim = Claim::sample(&format!("p-{i:04}"));
            let charge_id = if unknown(i) {
                format!("ch_unknown_{i}")
            } else {
                sandbox
                    .charge(&ChargeRequest {
                        amount_cents: 100,
                        currency: "usd".into(),
                        source: "tok_visa".into(),
                        idempotency_key: claim.provider_key(),
                        description: claim.description(),
                    })
                    .await
                    .unwrap()
                    .id
            };
            rows.push((claim, charge_id));
        }
        db.write(move |c| -> Result<(), DbError> {
            for (claim, charge_id) in &rows {
                claim.claim_in(c);
                store::succeed(c, claim, charge_id)?;
                assert!(store::reject(c, &claim.id, "the order was cancelled")?);
            }
            Ok(())
        })
        .await
        .unwrap();
        (db, sandbox)
    }

    /// The payments still waiting for their refund.
    async fn waiting(db: &Db) -> Vec<String> {
        db.read(|c| -> Result<Vec<String>, DbError> {
            Ok(store::pending_refunds(c, 1000)?
                .into_iter()
                .map(|r| r.payment_id)
                .collect())
        })
        .await
        .unwrap()
    }

    /// More charges to give back than one read takes (after the provider was down, or at
    /// start-up): all are refunded at once, not a read's worth per `--reconcile-every`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_of_refunds_is_worked_through_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, sandbox) = rejected(dir.path(), 2 * BATCH + 10, |_| false).await;
        assert_eq!(waiting(&db).await.len(), 2 * BATCH as usize + 10);
        let task = tokio::spawn(run(db.clone(), sandbox, Duration::from_secs(3600)));
        tix_testkit::eventually(
            "every pending refund made",
            Duration::from_secs(20),
            || async { waiting(&db).await.is_empty() },
        )
        .await;
        task.abort();
    }

    /// More refunds the provider refuses for good than one read takes, ahead of good ones
    /// (by id): the good ones are still made, at the next sweeps, and the refused ones stay
    /// pending for an operator.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refunds_refused_for_good_do_not_hold_back_the_others() {
        let dir = tempfile::tempdir().unwrap();
        // The first BATCH by id name charges the provider does not know: refused.
        let (db, sandbox) = rejected(dir.path(), BATCH + 20, |i| i < BATCH).await;
        // Sweeps every 100 ms, as `--reconcile-every` would every 30 s.
        let task = tokio::spawn(run(db.clone(), sandbox, Duration::from_millis(100)));
        tix_testkit::eventually(
            "the refunds the provider makes are made",
            Duration::from_secs(20),
            || async { waiting(&db).await.len() == BATCH as usize },
        )
        .await;
        task.abort();
        let left = waiting(&db).await;
        assert!(
            left.iter().all(|id| id.as_str() < "p-0100"),
            "only the refused ones are left: {left:?}"
        );
    }
}
