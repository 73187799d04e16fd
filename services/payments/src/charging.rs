//! One attempt at the provider and its outcome recorded: shared by the request that makes
//! an attempt and by the reconciler that asks again about one whose outcome was lost.
//!
//! An attempt is written `pending` before the provider is called and leaves `pending` only
//! on an answer that says what happened: charged (`succeeded`), refused (`failed`:
//! declined or invalid), or never sent (`failed`: unreachable). An answer that does not say
//! — a timeout, a dropped connection, a 5xx — leaves it `pending` for the reconciler, which
//! asks again with the same key; nothing is released on a guess.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tix_api::Payment;
use tix_common::db::{Db, DbError};

use crate::provider::{ChargeError, ChargeRequest, PaymentProvider};
use crate::store::{self, Claim, Failure};

/// What is known about an attempt after asking the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Succeeded(Payment),
    Failed(Failure, String),
    /// Still pending: the provider's answer did not say.
    Unknown(String),
}

/// What charging needs, cloned into every attempt.
#[derive(Clone)]
pub struct Charger {
    pub db: Db,
    pub provider: Arc<dyn PaymentProvider>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Test hook (TIX_PAYMENTS_CRASH_AFTER_CHARGE): the process dies between a charge the
    /// provider made and its record, as a kill -9 or a power cut would.
    crash_after_charge: bool,
}

/// An attempt being asked about; the reconciler leaves it alone until this is dropped.
pub struct InFlight {
    ids: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Charger {
    pub fn new(db: Db, provider: Arc<dyn PaymentProvider>, crash_after_charge: bool) -> Charger {
        if crash_after_charge {
            tracing::warn!(
                "TIX_PAYMENTS_CRASH_AFTER_CHARGE is set: this process dies after its first charge"
            );
        }
        Charger {
            db,
            provider,
            in_flight: Arc::default(),
            crash_after_charge,
        }
    }

    /// Marks an attempt as being asked about; `None` when it already is.
    pub fn enter(&self, id: &str) -> Option<InFlight> {
        let fresh = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        fresh.then(|| InFlight {
            ids: self.in_flight.clone(),
            id: id.to_string(),
        })
    }

    /// Asks the provider about `claim` (a first charge or the same one again: the key makes
    /// them the same) and records what the answer says.
    pub async fn attempt(&self, claim: Claim, _guard: InFlight) -> Result<Settled, DbError> {
        let req = ChargeRequest {
            amount_cents: claim.amount.cents(),
            currency: claim.currency.clone(),
            source: claim.source.clone(),
            idempotency_key: claim.provider_key(),
            description: claim.description(),
        };
        let outcome = self.provider.charge(&req).await;
        if self.crash_after_charge && outcome.is_ok() {
            eprintln!(
                "TIX_PAYMENTS_CRASH_AFTER_CHARGE: dying before payment {} is recorded",
                claim.id
            );
            std::process::abort();
        }
        self.record(claim, outcome.map(|c| c.id)).await
    }

    async fn record(
        &self,
        claim: Claim,
        outcome: Result<String, ChargeError>,
    ) -> Result<Settled, DbError> {
        let (payment, order) = (claim.id.clone(), claim.order_id.clone());
        match outcome {
            Ok(charge_id) => {
                let c = claim.clone();
                let id = charge_id.clone();
                self.db
                    .write(move |conn| -> Result<(), DbError> {
                        Ok(store::succeed(conn, &c, &id)?)
                    })
                    .await
                    .inspect_err(|e| {
                        // Still pending: the reconciler asks again and finds this charge.
                        tracing::error!(%payment, %order, charge = %charge_id, error = %e,
                            "charged but not recorded yet");
                    })?;
                tracing::info!(%payment, %order, charge = %charge_id, "paid");
                Ok(Settled::Succeeded(claim.succeeded()))
            }
            Err(ChargeError::Declined(reason)) => {
                tracing::info!(%payment, %order, %reason, "declined");
                self.fail(claim, Failure::Declined, reason).await
            }
            Err(ChargeError::Invalid(why)) => {
                tracing::info!(%payment, %order, %why, "invalid card");
                self.fail(claim, Failure::Invalid, "Invalid card".into())
                    .await
            }
            Err(ChargeError::Unreachable(why)) => {
                tracing::warn!(%payment, %order, %why, "provider unreachable; nothing charged");
                self.fail(
                    claim,
                    Failure::Unreachable,
                    "The payment provider could not be reached; nothing was charged".into(),
                )
                .await
            }
            Err(ChargeError::Unknown(why)) => {
                tracing::warn!(%payment, %order, %why,
                    "outcome unknown; the attempt stays pending until the provider says");
                store::record_tried(&self.db, &claim.id).await?;
                Ok(Settled::Unknown(why))
            }
        }
    }

    /// Settles `claim` as failed (a settled attempt is left as it is).
    async fn fail(
        &self,
        claim: Claim,
        failure: Failure,
        reason: String,
    ) -> Result<Settled, DbError> {
        let r = reason.clone();
        self.db
            .write(move |conn| -> Result<bool, DbError> {
                Ok(store::fail(conn, &claim, failure, &r)?)
            })
            .await?;
        Ok(Settled::Failed(failure, reason))
    }
}
