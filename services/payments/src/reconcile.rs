//! The reconciler: settles every attempt left `pending` — its answer was lost to a
//! timeout, a dropped connection, a 5xx, or a crash between charging and recording — by
//! asking the provider again with the attempt's own key and parameters. The provider
//! answers with what it did the first time (or makes the charge now, if the first request
//! never reached it), and the outcome is recorded and announced like any other: an order
//! that has closed meanwhile is then refused by orders and the charge refunded
//! (`payment:rejected`, `refunds.rs`).
//!
//! It runs at start-up (after a crash, before anything else can be asked) and every
//! `--reconcile-every`, skipping attempts a request of this process is still waiting on.
//! While the provider answers, nothing stays pending longer than that interval plus the
//! provider's timeout.

use std::time::Duration;

use tix_common::db::DbError;

use crate::charging::{Charger, Settled};
use crate::store::{self, Claim};

/// Attempts looked at per sweep; the rest wait for the next one.
const PER_SWEEP: i64 = 200;

pub async fn run(charger: Charger, every: Duration) {
    loop {
        sweep(&charger).await;
        tokio::time::sleep(every).await;
    }
}

async fn sweep(charger: &Charger) {
    let pending = charger
        .db
        .read(|c| -> Result<Vec<Claim>, DbError> { Ok(store::pending_attempts(c, PER_SWEEP)?) })
        .await;
    let pending = match pending {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "reading pending payment attempts failed");
            return;
        }
    };
    for claim in pending {
        if claim.source.is_empty() {
            // Made before attempts kept their card token: it cannot be asked about again.
            tracing::error!(payment = %claim.id, order = %claim.order_id, key = %claim.order_id,
                "a pending attempt without its request; look it up at the provider by this key");
            // To the back of the sweep, behind the ones that can be asked about.
            if let Err(e) = store::record_tried(&charger.db, &claim.id).await {
                tracing::warn!(payment = %claim.id, error = %e, "recording a sweep's look failed");
            }
            continue;
        }
        let Some(guard) = charger.enter(&claim.id) else {
            continue; // its request is still waiting on the provider
        };
        let (payment, order) = (claim.id.clone(), claim.order_id.clone());
        match charger.attempt(claim, guard).await {
            Ok(Settled::Unknown(_)) => {}
            Ok(settled) => tracing::info!(%payment, %order, outcome = ?settled, "reconciled"),
            Err(e) => tracing::warn!(%payment, error = %e, "recording a reconciled attempt failed"),
        }
    }
}
