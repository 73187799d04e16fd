//! `completions`: generated from the same clap definitions as the parser, so they
//! cannot fall behind the flags.

use clap::CommandFactory;

use crate::args::Cli;

pub fn print(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), "tix", &mut std::io::stdout());
}
