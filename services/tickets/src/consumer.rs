//! What tickets does with order events: reserve on `order:created`, release on
//! `order:cancelled`, each bumping the version and announcing it with `ticket:updated`.
//!
//! Events arrive in log order, but a redelivered one can come after later ones, so each
//! handler is safe in any order: a creation overtaken by its cancellation is ignored (the
//! cancellation leaves a tombstone), and a creation for a ticket held by another order waits
//! (`Retry`) for that order's cancellation.

use rusqlite::Connection;
use tix_api::events::{Envelope, Event};
use tix_common::inbox::Outcome;

use crate::store;

pub fn apply(c: &Connection, env: &Envelope) -> anyhow::Result<Outcome> {
    match &env.event {
        Event::OrderCreated(o) => {
            if store::is_cancelled(c, &o.id)? {
                // Its cancellation got here first: the order never holds the ticket.
                return Ok(Outcome::Applied);
            }
            let Some(mut t) = store::get(c, &o.ticket.id)? else {
                anyhow::bail!("order {} reserves unknown ticket {}", o.id, o.ticket.id);
            };
            match &t.order_id {
                Some(current) if current == &o.id => return Ok(Outcome::Applied),
                Some(current) => {
                    // Orders allows one active order per ticket, so the other order's
                    // cancellation exists and is on its way: wait for it.
                    return Ok(Outcome::Retry(format!("ticket is held by order {current}")));
                }
                None => {}
            }
            t.order_id = Some(o.id.clone());
            t.version += 1;
            store::save(c, &t)?;
            tracing::info!(ticket = %t.id, order = %o.id, version = t.version, "reserved");
        }
        Event::OrderCancelled(o) => {
            let Some(mut t) = store::get(c, &o.ticket.id)? else {
                anyhow::bail!("order {} releases unknown ticket {}", o.id, o.ticket.id);
            };
            store::mark_cancelled(c, &o.id)?;
            // Only the order holding the ticket can release it.
            if t.order_id.as_deref() == Some(o.id.as_str()) {
                t.order_id = None;
                t.version += 1;
                store::save(c, &t)?;
                tracing::info!(ticket = %t.id, order = %o.id, version = t.version, "released");
            }
        }
        other => tracing::debug!(subject = %other.subject(), "not for tickets; ignored"),
    }
    Ok(Outcome::Applied)
}
