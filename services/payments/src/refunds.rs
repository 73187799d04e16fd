//! Giving back the charges orders rejected (docs/events.md, "payment:rejected").
//!
//! The consumer only marks a payment `refund_pending` inside its transaction; this task
//! makes the provider calls, outside any transaction, woken by every commit that marked one
//! (`store::REFUNDS`) and every `--reconcile-every`. Each refund carries the payment's own idempotency key (`refund-<payment id>`),
//! so a refund retried after a crash or a timeout is made once. Until the provider
//! answers, the payment stays `refund_pending`: it is never forgotten.

use std::sync::Arc;
use std::time::Duration;

use tix_common::db::{Db, DbError};

use crate::provider::{PaymentProvider, RefundRequest};
use crate::store::{self, PendingRefund};

/// Runs forever; pending refunds are retried every `every` when nothing wakes the task.
pub async fn run(db: Db, provider: Arc<dyn PaymentProvider>, every: Duration) {
    let mut commits = db.changes(store::REFUNDS);
    loop {
        commits.borrow_and_update();
        let pending = db
            .read(|c| -> Result<Vec<PendingRefund>, DbError> {
                Ok(store::pending_refunds(c, 100)?)
            })
            .await;
        match pending {
            Ok(list) => {
                for r in list {
                    refund(&db, provider.as_ref(), r).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading pending refunds failed"),
        }
        let _ = tokio::time::timeout(every, commits.changed()).await;
    }
}

async fn refund(db: &Db, provider: &dyn PaymentProvider, r: PendingRefund) {
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
                Ok(()) => tracing::info!(payment = %r.payment_id, order = %r.order_id,
                    refund = %refund.id, "refunded"),
                // Retried at the next sweep with the same key: the provider answers with
                // the same refund.
                Err(e) => tracing::error!(payment = %r.payment_id, refund = %refund.id,
                    error = %e, "refunded but not recorded yet"),
            }
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(payment = %r.payment_id, error = %e, "refund not made yet; will retry");
        }
        Err(e) => {
            tracing::error!(payment = %r.payment_id, charge = %r.charge_id, error = %e,
                "the provider refuses this refund; an operator must look at it");
        }
    }
}
