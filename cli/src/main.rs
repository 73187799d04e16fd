//! `tix`: the marketplace from the command line.
//!
//! - [`args`]: the flags and help texts;
//! - [`ctx`]: the API, profile, session and output mode every command shares;
//! - [`commands`]: one module per command group;
//! - [`failure`]: every error, its message and its exit code;
//! - [`output`] and [`table`]: text for people.

mod args;
mod commands;
mod ctx;
mod failure;
mod output;
mod table;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tix_client::{DEFAULT_TIMEOUT, session};

use crate::args::{Cli, Command};
use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};

fn main() -> ExitCode {
    let outcome = if card_in_argv(std::env::args_os()) {
        // Before clap, whose errors would quote the number back.
        Err(Failure::Usage(commands::pay::CARD_IN_ARGV.into()))
    } else {
        run(Cli::parse())
    };
    match outcome {
        Ok(()) | Err(Failure::PipeClosed) => ExitCode::SUCCESS,
        Err(f) => {
            // The message may hold the server's text: nothing in it reaches the terminal
            // as a control sequence (failure.rs also neutralises line breaks in it).
            eprintln!("error: {}", ctx::printable_lines(&f.message()));
            ExitCode::from(f.code())
        }
    }
}

/// `--card …`, or a card number — an argument of its own, an `--option=` value, or typed
/// in groups as several arguments (`4242 4242 4242 4242` unquoted) — anywhere before a
/// `--`: a card number on the command line stays in shell history and shows in `ps`, so
/// it is refused, whatever command it was given to, and before clap, whose "unexpected
/// argument" error would repeat it.
fn card_in_argv(args: impl Iterator<Item = OsString>) -> bool {
    let mut run = String::new();
    for a in args.skip(1).take_while(|a| a != "--") {
        let a = a.to_string_lossy();
        if a == "--card" || a.starts_with("--card=") {
            return true;
        }
        let value = a
            .strip_prefix("--")
            .and_then(|o| o.split_once('='))
            .map_or(&*a, |(_, v)| v);
        if commands::pay::is_card_number(value) {
            return true;
        }
        // Consecutive arguments of digits (and spaces, dashes) read as one number.
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        {
            run.push_str(&a);
            if commands::pay::is_card_number(&run) {
                return true;
            }
        } else {
            run.clear();
        }
    }
    false
}

fn run(cli: Cli) -> Outcome {
    // Completions and man pages need no session or runtime, so they work on a machine
    // never signed in.
    let command = match cli.command {
        Command::Completions { shell } => return commands::completions::print(shell),
        Command::Man { out_dir } => return commands::completions::man(out_dir.as_deref()),
        Command::Api(command) => command,
    };
    // The environment is read here rather than by clap (see `args::Cli`); an empty
    // variable counts as unset.
    let env = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    let profile = cli
        .profile
        .or_else(|| env("TIX_PROFILE"))
        .unwrap_or_else(|| "default".into());
    // The profile becomes a file name: check it before anything else uses it.
    if !session::valid_profile(&profile) {
        return Err(Failure::Usage(
            "a profile name is letters, digits, - and _ (at most 64)".into(),
        ));
    }
    let timeout = match (cli.timeout, env("TIX_TIMEOUT")) {
        (Some(s), _) => Duration::from_secs(s),
        (None, Some(v)) => match v.trim().parse::<u64>() {
            Ok(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
            _ => {
                return Err(Failure::Usage(format!(
                    "TIX_TIMEOUT={v:?} is not a number of seconds from 1 to 3600"
                )));
            }
        },
        (None, None) => DEFAULT_TIMEOUT,
    };
    let mut ctx = Ctx::load(
        cli.api.or_else(|| env("TIX_API")),
        cli.json,
        profile,
        timeout,
    );
    // One command, one request at a time: a single thread is enough.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Local(anyhow::anyhow!("{e}")))?;
    rt.block_on(async {
        ctx.renew_if_due().await;
        commands::run(&ctx, command).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_flag_is_found_wherever_it_is_but_not_after_a_double_dash() {
        let argv = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>().into_iter();
        assert!(card_in_argv(argv(&["tix", "pay", "o1", "--card", "4242"])));
        assert!(card_in_argv(argv(&["tix", "--card=4242", "buy", "t1"])));
        assert!(!card_in_argv(argv(&[
            "tix", "pay", "o1", "--token", "tok_visa"
        ])));
        assert!(!card_in_argv(argv(&["tix", "--", "--card"])));
        assert!(!card_in_argv(argv(&["tix", "--cardinal"])));
        // A card number as an argument of its own, or an option's value.
        assert!(card_in_argv(argv(&[
            "tix",
            "pay",
            "o1",
            "4242424242424242"
        ])));
        assert!(card_in_argv(argv(&[
            "tix",
            "pay",
            "o1",
            "4242 4242 4242 4242"
        ])));
        assert!(card_in_argv(argv(&[
            "tix",
            "buy",
            "--token=4000-0000-0000-0002"
        ])));
        assert!(!card_in_argv(argv(&["tix", "pay", "0193a5c2-7e1f-7000"])));
        assert!(card_in_argv(argv(&[
            "tix", "pay", "o1", "4242", "4242", "4242", "4242"
        ])));
        assert!(!card_in_argv(argv(&["tix", "--", "4242424242424242"])));
        assert!(!card_in_argv(argv(&[
            "tix", "sales", "--limit", "100", "--offset", "200"
        ])));
        assert!(!card_in_argv(argv(&[
            "tix", "tickets", "create", "--price", "25.50"
        ])));
    }
}
