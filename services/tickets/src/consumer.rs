//! What tickets does with order events: reserve on `order:created`, release on
//! `order:cancelled`, each bumping the version and announcing it with `ticket:updated`.

use rusqlite::Connection;
use tix_api::events::{Envelope, Event};
use tix_common::inbox::Outcome;

use crate::store;

pub fn apply(c: &Connection, env: &Envelope) -> anyhow::Result<Outcome> {
    match &env.event {
        Event::OrderCreated(o) => {
            let Some(mut t) = store::get(c, &o.ticket.id)? else {
                anyhow::bail!("order {} reserves unknown ticket {}", o.id, o.ticket.id);
            };
            match &t.order_id {
                Some(current) if current == &o.id => return Ok(Outcome::Applied),
                Some(current) => {
                    // Orders allows one active order per ticket, and the group is ordered,
                    // so the other order's cancellation comes first; wait for it.
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
