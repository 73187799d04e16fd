//! What orders does with events from the bus.
//!
//! Orders is the single authority on "cancelled or paid": an order is completed by the
//! first of {its cancellation, a successful payment} that orders applies, in its own
//! transaction. A payment that comes second is rejected (`payment:rejected`, enqueued in
//! the same transaction) and payments refunds it, so every successful charge ends as
//! exactly one of {a complete order, a refund}.

use rusqlite::Connection;
use tix_api::events::{Envelope, Event, PaymentCreated};
use tix_api::{OrderStatus, UnixMillis};
use tix_common::inbox::Outcome;

use crate::store::{self, Cancellation, Ticket};

pub fn apply(c: &Connection, env: &Envelope) -> anyhow::Result<Outcome> {
    match &env.event {
        Event::TicketCreated(t) => {
            store::insert_ticket(
                c,
                &Ticket {
                    id: t.id.clone(),
                    title: t.title.clone(),
                    price: t.price_cents,
                    user_id: t.user_id.clone(),
                    version: t.version,
                },
            )?;
        }
        Event::TicketUpdated(t) => {
            // The event carries the whole ticket, so the newest version wins whatever the
            // order they arrive in: a predecessor held back (even past the redelivery
            // budget) never stalls the replica, and arriving later changes nothing.
            let newest = Ticket {
                id: t.id.clone(),
                title: t.title.clone(),
                price: t.price_cents,
                user_id: t.user_id.clone(),
                version: t.version,
            };
            match store::ticket(c, &t.id)? {
                // Before its ticket:created: the update is the ticket as it now is.
                None => {
                    store::insert_ticket(c, &newest)?;
                }
                Some(replica) if t.version > replica.version => {
                    // Orders already made keep the ticket as they reserved it.
                    store::update_ticket(c, &newest)?;
                }
                Some(_) => {} // an old or repeated version: already reflected
            }
        }
        Event::ExpirationComplete(e) => cancel_unless_done(c, &e.order_id, Cancellation::Expired)?,
        Event::PaymentFailed(p) => cancel_unless_done(c, &p.order_id, Cancellation::PaymentFailed)?,
        Event::PaymentCreated(p) => paid(c, p)?,
        other => tracing::debug!(subject = %other.subject(), "not for orders; ignored"),
    }
    Ok(Outcome::Applied)
}

/// A charge succeeded: it completes the order if nothing settled the order first;
/// otherwise it is rejected, and payments refunds it.
fn paid(c: &Connection, p: &PaymentCreated) -> anyhow::Result<()> {
    let Some(mut o) = store::order(c, &p.order_id)? else {
        anyhow::bail!("payment for unknown order {}", p.order_id);
    };
    let rejected = match o.status {
        OrderStatus::Created | OrderStatus::AwaitingPayment => {
            // Even past `expiresAt`: the payment came first, so it wins (expiration's event
            // for the order will find it complete and change nothing).
            store::complete(c, &mut o, &p.id, UnixMillis::now())?;
            tracing::info!(order = %o.id, payment = %p.id, "paid");
            return Ok(());
        }
        // The cancellation came first (expired, cancelled by the buyer, declined): the
        // ticket may be someone else's by now, so the order stays cancelled.
        OrderStatus::Cancelled => Cancellation::rejection(o.cancelled_because),
        OrderStatus::Complete => match &o.payment_id {
            // Paid by another charge: this one is a second charge for the same order.
            Some(by) if *by != p.id => "the order was already paid by another payment",
            // The same payment announced again (or an order paid before orders recorded
            // which payment paid it): nothing to do.
            _ => return Ok(()),
        },
    };
    store::reject_payment(c, &o, &p.id, rejected)?;
    tracing::warn!(order = %o.id, payment = %p.id, charge = %p.charge_id, reason = rejected,
        "payment rejected: payments refunds it");
    Ok(())
}

fn cancel_unless_done(c: &Connection, order_id: &str, why: Cancellation) -> anyhow::Result<()> {
    let Some(mut o) = store::order(c, order_id)? else {
        anyhow::bail!("{why}: unknown order {order_id}");
    };
    if matches!(o.status, OrderStatus::Complete | OrderStatus::Cancelled) {
        return Ok(()); // paid in time, or cancelled already: the event changes nothing
    }
    store::cancel(c, &mut o, why)?;
    tracing::info!(order = %o.id, %why, "cancelled");
    Ok(())
}
