//! What payments does with order events: keep a replica of each order (who buys, for how
//! much, whether it is still open), so a payment never trusts the client for any of it;
//! and mark for a refund a payment orders rejected (the refunds themselves are made by
//! `refunds.rs`, outside the consumer's transaction).

use rusqlite::Connection;
use tix_api::events::{Envelope, Event};
use tix_common::inbox::Outcome;

use crate::store;

pub fn apply(c: &Connection, env: &Envelope) -> anyhow::Result<Outcome> {
    match &env.event {
        Event::OrderCreated(o) => {
            store::insert_order(
                c,
                &o.id,
                &o.user_id,
                o.ticket.price_cents,
                o.version,
                o.expires_at,
            )?;
            tracing::info!(order = %o.id, price_cents = o.ticket.price_cents.cents(), "order replicated");
        }
        Event::OrderCancelled(o) => {
            if !store::cancel_order(c, &o.id, o.version)? {
                // The group is ordered, so its order:created is still to be applied.
                return Ok(Outcome::Retry(format!(
                    "order {} is not replicated yet",
                    o.id
                )));
            }
            tracing::info!(order = %o.id, version = o.version, "order cancelled");
        }
        Event::PaymentRejected(r) => {
            if store::reject(c, &r.payment_id, &r.reason)? {
                tracing::warn!(payment = %r.payment_id, order = %r.order_id, reason = %r.reason,
                    "payment rejected by orders; refunding");
            } else {
                match store::stored_status(c, &r.payment_id)?.as_deref() {
                    // Rejected before: the refund is under way or done.
                    Some("refund_pending" | "refunded") => {}
                    Some(other) => tracing::error!(payment = %r.payment_id, status = other,
                        "orders rejected a payment that did not succeed; nothing to refund"),
                    None => tracing::error!(payment = %r.payment_id,
                        "orders rejected a payment payments does not know"),
                }
            }
        }
        other => tracing::debug!(subject = %other.subject(), "not for payments; ignored"),
    }
    Ok(Outcome::Applied)
}
