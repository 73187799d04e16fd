//! What orders does with events from the bus.

use rusqlite::Connection;
use tix_api::OrderStatus;
use tix_api::events::{Envelope, Event};
use tix_common::inbox::Outcome;

use crate::store::{self, Ticket};

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
            let Some(mut replica) = store::ticket(c, &t.id)? else {
                return Ok(Outcome::Retry(format!("ticket {} not known yet", t.id)));
            };
            if t.version <= replica.version {
                return Ok(Outcome::Applied); // an old or repeated version: already reflected
            }
            if t.version != replica.version + 1 {
                // A version from the future: its predecessor comes first.
                return Ok(Outcome::Retry(format!(
                    "ticket {} version {} after {}",
                    t.id, t.version, replica.version
                )));
            }
            replica.title = t.title.clone();
            replica.price = t.price_cents;
            replica.version = t.version;
            store::update_ticket(c, &replica)?;
        }
        Event::ExpirationComplete(e) => cancel_unless_done(c, &e.order_id, "expired")?,
        Event::PaymentFailed(p) => cancel_unless_done(c, &p.order_id, "payment failed")?,
        Event::PaymentCreated(p) => {
            let Some(mut o) = store::order(c, &p.order_id)? else {
                anyhow::bail!("payment for unknown order {}", p.order_id);
            };
            match o.status {
                OrderStatus::Complete => {}
                OrderStatus::Cancelled => {
                    // Paid in the same instant it expired: the ticket may be someone else's
                    // by now, so the order stays cancelled and the charge must be refunded.
                    tracing::error!(order = %o.id, payment = %p.id, charge = %p.charge_id,
                        "payment for a cancelled order: refund needed");
                }
                _ => {
                    store::complete(c, &mut o)?;
                    tracing::info!(order = %o.id, "paid");
                }
            }
        }
        other => tracing::debug!(subject = %other.subject(), "not for orders; ignored"),
    }
    Ok(Outcome::Applied)
}

fn cancel_unless_done(c: &Connection, order_id: &str, why: &str) -> anyhow::Result<()> {
    let Some(mut o) = store::order(c, order_id)? else {
        anyhow::bail!("{why}: unknown order {order_id}");
    };
    if matches!(o.status, OrderStatus::Complete | OrderStatus::Cancelled) {
        return Ok(()); // paid in time, or cancelled already: the event changes nothing
    }
    store::cancel(c, &mut o)?;
    tracing::info!(order = %o.id, why, "cancelled");
    Ok(())
}
