//! `completions` and `man`: generated from the same clap definitions as the parser, so
//! they cannot fall behind the flags. Neither needs a session, a runtime or a stack.

use std::path::Path;

use clap::CommandFactory;

use crate::args::Cli;
use crate::ctx::emit;
use crate::failure::{Failure, Outcome};

pub fn print(shell: clap_complete::Shell) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tix", &mut script);
    emit(String::from_utf8_lossy(&script).trim_end())
}

/// `tix.1` on stdout; with a directory, `tix.1` and one page per subcommand
/// (`tix-tickets-list.1`, …) written there, named on stdout.
pub fn man(out_dir: Option<&Path>) -> Outcome {
    let Some(dir) = out_dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .map_err(Failure::local)?;
        return emit(String::from_utf8_lossy(&page).trim_end());
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::local(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| Failure::local(anyhow::anyhow!("writing to {}: {e}", dir.display())))?;
    emit(&format!("Wrote the manual pages to {}.", dir.display()))
}
