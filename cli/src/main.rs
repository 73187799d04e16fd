//! `tix`: the marketplace from the command line.
//!
//! - [`args`]: the flags and help texts;
//! - [`ctx`]: the API, profile, session and output mode every command shares;
//! - [`commands`]: one module per command group;
//! - [`failure`]: every error, its message and its exit code;
//! - [`output`]: text for people.

mod args;
mod commands;
mod ctx;
mod failure;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tix_client::session;

use crate::args::{Cli, Command};
use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message());
            ExitCode::from(f.code())
        }
    }
}

fn run(cli: Cli) -> Outcome {
    // The profile becomes a file name: check it before anything else uses it.
    if !session::valid_profile(&cli.profile) {
        return Err(Failure::Usage(
            "a profile name is letters, digits, - and _ (at most 64)".into(),
        ));
    }
    // Completions need no session or runtime, so they work on a machine never signed in.
    if let Command::Completions { shell } = cli.command {
        commands::completions::print(shell);
        return Ok(());
    }
    let mut ctx = Ctx::load(cli.api, cli.json, cli.profile);
    // One command, one request at a time: a single thread is enough.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Local(anyhow::anyhow!("{e}")))?;
    rt.block_on(async {
        ctx.renew_if_due().await;
        commands::run(&ctx, cli.command).await
    })
}
