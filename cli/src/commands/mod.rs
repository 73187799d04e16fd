//! One module per command group; each takes its parsed arguments and the [`Ctx`], prints
//! its result through [`Ctx::print`] and returns a [`Failure`] rather than exiting, so
//! `main` decides the exit code in one place.
//!
//! [`Failure`]: crate::failure::Failure

pub mod account;
pub mod completions;
pub mod events;
pub mod orders;
pub mod pay;
pub mod payments;
pub mod sales;
pub mod status;
pub mod tickets;

use crate::args::{ApiCommand as Command, EventsCmd};
use crate::ctx::Ctx;
use crate::failure::Outcome;

pub async fn run(ctx: &Ctx, command: Command) -> Outcome {
    match command {
        Command::Signup { credentials, name } => account::signup(ctx, credentials, name).await,
        Command::Signin(c) => account::signin(ctx, c).await,
        Command::Signout => account::signout(ctx).await,
        Command::Whoami => account::whoami(ctx).await,
        Command::Tickets(t) => tickets::run(ctx, t).await,
        Command::Orders(o) => orders::run(ctx, o).await,
        Command::Pay {
            order_id,
            card,
            wait,
        } => pay::pay(ctx, &order_id, &card, &wait).await,
        Command::Buy {
            ticket_id,
            card,
            wait,
        } => pay::buy(ctx, &ticket_id, &card, &wait).await,
        Command::Payments(p) => payments::run(ctx, p).await,
        Command::Sales { limit, offset } => sales::run(ctx, limit, offset).await,
        Command::Status => status::run(ctx).await,
        Command::Events(EventsCmd::Tail {
            subjects,
            request,
            bus,
            bus_client,
            bus_key_file,
        }) => {
            let filter = events::Filter { subjects, request };
            events::tail(ctx, filter, &bus, &bus_client, bus_key_file.as_deref()).await
        }
    }
}
