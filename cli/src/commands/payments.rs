//! `payments list|show`: a buyer's receipts — what was charged for which order, and what
//! was refunded and why. Paying is in [`super::pay`].

use crate::args::PaymentsCmd;
use crate::ctx::Ctx;
use crate::failure::Outcome;
use crate::output;

pub async fn run(ctx: &Ctx, cmd: PaymentsCmd) -> Outcome {
    // Payments are always someone's: every subcommand needs the session.
    let client = ctx.signed_in()?;
    match cmd {
        PaymentsCmd::List => {
            let list = ctx.busy("Loading your payments", client.payments()).await?;
            ctx.print(&list, || output::payments(&list))
        }
        PaymentsCmd::Show { id } => {
            let p = ctx.busy("Loading the payment", client.payment(&id)).await?;
            ctx.print(&p, || output::payment(&p))
        }
    }
}
