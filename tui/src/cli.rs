//! The command line: flags (each with its `TIX_*` twin), and the man page and shell
//! completions generated from the same definition, so they never drift from `--help`.

use std::io::Write;

use clap::{CommandFactory, Parser};
use clap_complete::Shell;

use crate::widgets::theme::{self, Theme};

/// Buy tickets in the terminal. Shares its sessions with the `tix` CLI: sign in with one,
/// you are signed in with the other.
#[derive(Debug, Parser)]
#[command(
    name = "tix-tui",
    version,
    about,
    after_help = "Examples:\n  tix-tui\n  tix-tui --profile bob --api http://127.0.0.1:8080\n  tix-tui --ops                      # the live operations screen\n  NO_COLOR=1 tix-tui\n  tix-tui --completions zsh > ~/.zfunc/_tix-tui\n\nKeys: press ? in the TUI (or see docs/tui.md)."
)]
pub struct Cli {
    /// The gateway to talk to (default: the session's, else http://127.0.0.1:8080).
    #[arg(long, env = "TIX_API")]
    pub api: Option<String>,
    /// Which saved session to use (as `tix --profile`).
    #[arg(long, env = "TIX_PROFILE", default_value = "default")]
    pub profile: String,
    /// Colours: `default` or `mono` (no colour; bold and reverse video only). Without it,
    /// a non-empty NO_COLOR picks `mono`.
    #[arg(long, env = "TIX_THEME", value_parser = clap::builder::PossibleValuesParser::new(theme::NAMES))]
    pub theme: Option<String>,
    /// Start on the live operations screen (also `O` in the marketplace) and leave the
    /// program with it.
    #[arg(long)]
    pub ops: bool,
    /// The broker's metrics port, for the operations screen's rates and groups.
    #[arg(long, env = "TIX_BUS_METRICS", default_value = "http://127.0.0.1:5556")]
    pub bus_metrics: String,
    /// The bus endpoint, for the operations screen's latest events.
    #[arg(long, env = "TIX_BUS_URL", default_value = "tcp://127.0.0.1:5555")]
    pub bus: String,
    /// The bus client the operations screen follows events as.
    #[arg(long, env = "TIX_BUS_CLIENT", default_value = "cli")]
    pub bus_client: String,
    /// File holding that client's key (or set TIX_BUS_KEY). Default:
    /// $TIX_DATA_DIR/keys/<client>.key (.tix/keys/cli.key) when it exists.
    #[arg(long, env = "TIX_BUS_KEY_FILE", value_name = "PATH")]
    pub bus_key_file: Option<std::path::PathBuf>,
    /// Print the man page (roff) and exit.
    #[arg(long)]
    pub man: bool,
    /// Print shell completions for SHELL and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<Shell>,
}

impl Cli {
    /// Where the operations screen looks, with the gateway at `api`.
    pub fn ops_config(&self, api: &str) -> crate::ops::Config {
        crate::ops::Config {
            gateway: api.to_string(),
            bus_metrics: self.bus_metrics.clone(),
            bus: self.bus.clone(),
            bus_client: self.bus_client.clone(),
            bus_key_file: self.bus_key_file.clone(),
            every: std::time::Duration::from_secs(1),
        }
    }

    /// The theme asked for, `NO_COLOR` taken into account.
    pub fn theme(&self) -> Theme {
        let no_color = std::env::var("NO_COLOR").ok();
        // The value parser admits only known names.
        Theme::choose(self.theme.as_deref(), no_color.as_deref()).unwrap_or_default()
    }

    /// `--man` or `--completions`: writes it to `out` and says so (then there is nothing
    /// else to do). Generated whole first, then written: clap_complete panics on a write
    /// error. A reader that went away (`tix-tui --man | head -1`) is not an error: what it
    /// wanted, it got.
    pub fn print_docs(&self, out: &mut impl Write) -> std::io::Result<bool> {
        let mut cmd = Cli::command();
        let mut text = Vec::new();
        if self.man {
            clap_mangen::Man::new(cmd).render(&mut text)?;
        } else if let Some(shell) = self.completions {
            clap_complete::generate(shell, &mut cmd, "tix-tui", &mut text);
        } else {
            return Ok(false);
        }
        match out.write_all(&text).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(true),
        }
    }
}
