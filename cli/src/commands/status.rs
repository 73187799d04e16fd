//! `status`: the gateway's view of every service, for "is the stack up?" in scripts too.

use tix_api::health::HealthStatus;

use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};
use crate::output;

pub async fn run(ctx: &Ctx) -> Outcome {
    let health = ctx
        .busy("Asking the gateway", ctx.client().health())
        .await?;
    ctx.print(&health, || output::status(&ctx.api, &health))?;
    // The report is printed either way; the exit code is what a script checks.
    if health.status != HealthStatus::Ok {
        return Err(Failure::Degraded);
    }
    Ok(())
}
