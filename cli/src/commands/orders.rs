//! `orders list|show|create|cancel`: a buyer's reservations. Paying is in [`super::pay`].

use serde::Serialize;
use tix_api::OrderStatus;

use crate::args::OrdersCmd;
use crate::ctx::Ctx;
use crate::failure::Outcome;
use crate::output;

/// `--json` after cancelling: the API answers with no body, so the CLI states the
/// outcome itself. Fields in key order, as the document was first written as a sorted
/// JSON map.
#[derive(Debug, Serialize)]
struct CancelledDoc<'a> {
    id: &'a str,
    status: OrderStatus,
}

pub async fn run(ctx: &Ctx, cmd: OrdersCmd) -> Outcome {
    // Orders are always someone's: every subcommand needs the session.
    let client = ctx.signed_in()?;
    match cmd {
        OrdersCmd::List => {
            let list = ctx.busy("Loading your orders", client.orders()).await?;
            ctx.print(&list, || output::orders(&list))
        }
        OrdersCmd::Show { id } => {
            let o = ctx.busy("Loading the order", client.order(&id)).await?;
            ctx.print(&o, || output::order(&o))
        }
        OrdersCmd::Create { ticket_id } => {
            let o = ctx
                .busy("Reserving", client.create_order(&ticket_id))
                .await?;
            ctx.print(&o, || {
                format!(
                    "Reserved {} for {} — order {}, {}.\nPay with: tix pay {} --token tok_visa",
                    o.ticket.title,
                    o.ticket.price.display(),
                    o.id,
                    output::expiry(&o),
                    o.id
                )
            })
        }
        OrdersCmd::Cancel { id } => {
            ctx.busy("Cancelling", client.cancel_order(&id)).await?;
            let doc = CancelledDoc {
                id: &id,
                status: OrderStatus::Cancelled,
            };
            ctx.print(&doc, || {
                format!("Cancelled order {id}; its ticket is released.")
            })
        }
    }
}
