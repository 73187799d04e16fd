//! `sales`: what a seller sold — each ticket, what its buyer paid and when — with the
//! count and total over every sale, not only the page shown.

use crate::ctx::Ctx;
use crate::failure::Outcome;
use crate::output;

pub async fn run(ctx: &Ctx, limit: Option<u32>, offset: Option<u32>) -> Outcome {
    let client = ctx.signed_in()?;
    let sales = ctx
        .busy("Loading your sales", client.sales(limit, offset))
        .await?;
    ctx.print(&sales, || output::sales(&sales))
}
