//! `tickets list|show|create|update`: selling and browsing.

use tix_api::Money;
use tix_client::TicketQuery;

use crate::args::TicketsCmd;
use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};
use crate::output;

pub async fn run(ctx: &Ctx, cmd: TicketsCmd) -> Outcome {
    match cmd {
        TicketsCmd::List {
            all,
            mine,
            search,
            limit,
            offset,
        } => {
            list(
                ctx,
                TicketQuery {
                    all,
                    mine,
                    search,
                    limit,
                    offset,
                },
            )
            .await
        }
        TicketsCmd::Show { id } => show(ctx, &id).await,
        TicketsCmd::Create { title, price } => create(ctx, &title, price).await,
        TicketsCmd::Update { id, title, price } => update(ctx, &id, title, price).await,
    }
}

async fn list(ctx: &Ctx, query: TicketQuery) -> Outcome {
    // Browsing is open to anyone; only "mine" needs to know who you are.
    let client = if query.mine {
        ctx.signed_in()?
    } else {
        ctx.client()
    };
    let list = ctx.busy("Loading tickets", client.tickets(&query)).await?;
    let me = ctx.session.as_ref().map(|s| s.user_id.as_str());
    ctx.print(&list, || output::tickets(&list, me))
}

async fn show(ctx: &Ctx, id: &str) -> Outcome {
    let t = ctx
        .busy("Loading the ticket", ctx.client().ticket(id))
        .await?;
    let me = ctx.session.as_ref().map(|s| s.user_id.as_str());
    ctx.print(&t, || output::ticket(&t, me))
}

async fn create(ctx: &Ctx, title: &str, price: Money) -> Outcome {
    let client = ctx.signed_in()?;
    let t = ctx
        .busy("Putting it on sale", client.create_ticket(title, price))
        .await?;
    ctx.print(&t, || {
        format!(
            "On sale: {} for {} — ticket {}.",
            t.title,
            t.price.display(),
            t.id
        )
    })
}

/// The API replaces title and price together, so the one not given is read back first.
async fn update(ctx: &Ctx, id: &str, title: Option<String>, price: Option<Money>) -> Outcome {
    if title.is_none() && price.is_none() {
        return Err(Failure::Usage("give --title, --price or both".into()));
    }
    let client = ctx.signed_in()?;
    let t = ctx
        .busy("Updating the ticket", async {
            let current = client.ticket(id).await?;
            client
                .update_ticket(
                    id,
                    title.as_deref().unwrap_or(&current.title),
                    price.unwrap_or(current.price),
                )
                .await
        })
        .await?;
    ctx.print(&t, || {
        format!(
            "Updated: {} for {} (version {}).",
            t.title,
            t.price.display(),
            t.version
        )
    })
}
