//! The command line itself: every flag, subcommand and help text, and nothing that runs.
//! Kept apart from the commands (as ripgrep keeps its flags) so the whole interface reads
//! in one place, and so changing what a command does cannot change what it accepts.
//!
//! The `///` comments on these types are the help texts users see: edit them as
//! documentation for people, with an example where a flag is not obvious.

use clap::{Args, Parser, Subcommand};
use tix_api::Money;

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  local problem (e.g. the session file cannot be written)
  2  usage: a missing or invalid argument
  3  not signed in, or not allowed (someone else's order or ticket)
  4  not found
  5  refused: invalid input or a business rule (reserved, already paid, email in use,
     an order cancelled before its payment arrived: the payment is refunded)
  6  payment declined
  7  the stack cannot be reached or failed (a name that does not resolve, TLS, timed out,
     connection refused, a 5xx or a 408, a service down)

Environment: TIX_API (--api), TIX_PROFILE (--profile), TIX_TIMEOUT (--timeout),
TIX_CONFIG_DIR (where sessions live). Card numbers are never flags: `tix pay` and
`tix buy` ask for one (masked) or read it from standard input.

Examples:
  tix signup --email ann@example.com          # asks for the password
  echo \"$PW\" | tix signin --email ann@example.com --password-stdin
  tix tickets list --search jazz
  tix tickets create --title \"Jazz night\" --price 25
  tix buy 0193a… --token tok_visa
  tix pay 0193b…                              # asks for the card number, masked
  tix sales
  tix payments list
  tix --profile seller tickets list --mine --json | jq '.[].id'";

/// The tix ticket marketplace, from the command line.
#[derive(Debug, Parser)]
#[command(name = "tix", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The gateway to talk to [env: TIX_API] (default: the session's, else
    /// http://127.0.0.1:8080).
    // The environment is read by hand (ctx.rs), not with clap's `env`: clap counts a set
    // variable as a flag given and prints `--api <API>` in every usage line.
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// Print one JSON document on stdout instead of text (tail: one per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Keep several accounts side by side: each profile has its own session [env:
    /// TIX_PROFILE] [default: default].
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Give up on a request after this many seconds [env: TIX_TIMEOUT] [default: 30].
    #[arg(long, global = true, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

/// Every command: those that talk to the API, and those that only describe `tix` itself
/// (kept apart so `main` answers them without a session, a runtime or a stack).
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Api(ApiCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example: tix completions bash > ~/.local/share/bash-completion/completions/tix"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), or write one page per command to a directory.
    #[command(
        after_help = "Examples:\n  tix man | man -l -\n  tix man --out-dir ~/.local/share/man/man1   # tix.1, tix-tickets-list.1, …"
    )]
    Man {
        /// Write tix.1 and a page per subcommand (tix-tickets-list.1, …) here instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
}

/// The commands that talk to the API.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Create an account and sign in.
    #[command(
        after_help = "Examples:\n  tix signup --email ann@example.com                  # asks for the password\n  tix signup --email ann@example.com --name \"Ann S.\""
    )]
    Signup {
        #[command(flatten)]
        credentials: Credentials,
        /// The name other users see on your tickets (1 to 40 characters; default: the
        /// part of your email before the @, never the whole address).
        #[arg(long, value_name = "DISPLAY NAME")]
        name: Option<String>,
    },
    /// Sign in to an existing account.
    #[command(
        after_help = "Example: echo \"$PW\" | tix signin --email ann@example.com --password-stdin"
    )]
    Signin(Credentials),
    /// Sign out: forget this profile's session (and revoke it on the server).
    #[command(after_help = "Example: tix --profile bob signout")]
    Signout,
    /// Who this profile is signed in as.
    #[command(
        after_help = "Examples:\n  tix whoami\n  tix --profile bob whoami --json | jq -r .email"
    )]
    Whoami,
    /// Sell, browse and edit tickets.
    #[command(
        subcommand,
        after_help = "Examples:\n  tix tickets list --search jazz\n  tix tickets create --title \"Jazz night\" --price 25.50"
    )]
    Tickets(TicketsCmd),
    /// Your orders: reserve, look, cancel.
    #[command(
        subcommand,
        after_help = "Examples:\n  tix orders create 0193a…\n  tix orders list"
    )]
    Orders(OrdersCmd),
    /// Pay for a reserved order; returns once the order shows complete.
    ///
    /// The card number is asked for without echo on a terminal, or read as one line
    /// from standard input; never give it as a flag (it would stay in your shell history
    /// and in `ps`). Sandbox tokens may be flags.
    #[command(
        after_help = "Examples:\n  tix pay 0193a…                         # asks: Card number (hidden)\n  tix pay 0193a… < card.txt              # one line: the number\n  tix pay 0193a… --token tok_visa        # a sandbox token\n\nTest cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.\nAfter a decline, it waits until the order shows cancelled, so the ticket can be\nreserved again at once."
    )]
    Pay {
        order_id: String,
        #[command(flatten)]
        card: Card,
        #[command(flatten)]
        wait: Wait,
    },
    /// Reserve a ticket and pay for it in one go; returns once the order shows complete.
    ///
    /// The card is read as for `tix pay`: asked for on a terminal, else one line of
    /// standard input, or a sandbox token with --token.
    #[command(
        after_help = "Examples:\n  tix buy 0193a… --token tok_visa\n  tix buy 0193a…                         # asks: Card number (hidden)"
    )]
    Buy {
        ticket_id: String,
        #[command(flatten)]
        card: Card,
        #[command(flatten)]
        wait: Wait,
    },
    /// Your payments (receipts): what was charged, and what was refunded.
    #[command(
        subcommand,
        after_help = "Examples:\n  tix payments list\n  tix payments show 0193b…"
    )]
    Payments(PaymentsCmd),
    /// The tickets you sold: what each buyer paid and when, with the totals.
    #[command(
        after_help = "Examples:\n  tix sales\n  tix sales --limit 10 --offset 10\n  tix sales --json | jq .total"
    )]
    Sales {
        /// At most this many sales (newest first).
        #[arg(long)]
        limit: Option<u32>,
        /// Skip this many of the newest first.
        #[arg(long)]
        offset: Option<u32>,
    },
    /// Each service's health, through the gateway.
    #[command(
        after_help = "Examples:\n  tix status\n  tix status --json | jq .upstreams.orders.status"
    )]
    Status,
    /// Watch the event bus.
    #[command(
        subcommand,
        after_help = "Example: tix events tail --subject order:created"
    )]
    Events(EventsCmd),
}

#[derive(Debug, Args)]
pub struct Credentials {
    /// Your email (asked for when missing).
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from standard input instead of asking (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

/// How to pay. A card number is deliberately not a flag (see `tix pay --help`).
#[derive(Debug, Args)]
pub struct Card {
    /// A sandbox card token instead of a number, e.g. tok_visa (succeeds) or
    /// tok_chargeDeclined (declined).
    #[arg(long)]
    pub token: Option<String>,
}

/// After a payment is accepted, the order is completed by an event a moment later.
#[derive(Debug, Args)]
pub struct Wait {
    /// How long to wait, in seconds, for the order to show complete after the payment
    /// (then it says the order is catching up), or cancelled after a decline. 0 returns
    /// at once.
    #[arg(long = "wait", value_name = "SECONDS", default_value_t = 5)]
    pub seconds: u64,
}

#[derive(Debug, Subcommand)]
pub enum TicketsCmd {
    /// Tickets for sale (not reserved), newest first.
    #[command(
        after_help = "Examples:\n  tix tickets list --search jazz\n  tix tickets list --mine --json"
    )]
    List {
        /// Include reserved and sold tickets.
        #[arg(long)]
        all: bool,
        /// Only your own tickets.
        #[arg(long)]
        mine: bool,
        /// Title contains this text.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        offset: Option<u32>,
    },
    /// One ticket.
    #[command(
        after_help = "Examples:\n  tix tickets show 0193a…\n  tix tickets show 0193a… --json | jq .price"
    )]
    Show { id: String },
    /// Put a ticket on sale.
    #[command(after_help = "Example: tix tickets create --title \"Jazz night\" --price 25.50")]
    Create {
        #[arg(long)]
        title: String,
        /// In currency units, at most 2 decimals.
        #[arg(long)]
        price: Money,
    },
    /// Change your ticket's title or price (not while it is reserved).
    #[command(after_help = "Example: tix tickets update 0193a… --price 30")]
    Update {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        price: Option<Money>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrdersCmd {
    /// Your orders, newest first.
    #[command(
        after_help = "Examples:\n  tix orders list\n  tix orders list --json | jq '.[] | select(.status == \"created\") | .id'"
    )]
    List,
    /// One of your orders.
    #[command(after_help = "Example: tix orders show 0193b…")]
    Show { id: String },
    /// Reserve a ticket (it is held for you until the order expires).
    #[command(after_help = "Example: tix orders create 0193a…")]
    Create { ticket_id: String },
    /// Cancel an order and release its ticket.
    #[command(after_help = "Example: tix orders cancel 0193b…")]
    Cancel { id: String },
}

#[derive(Debug, Subcommand)]
pub enum PaymentsCmd {
    /// Your payments, newest first.
    #[command(
        after_help = "Examples:\n  tix payments list\n  tix payments list --json | jq '.[] | select(.status == \"refunded\")'"
    )]
    List,
    /// One of your payments: amount, status, when, and why it failed or was refunded.
    #[command(after_help = "Example: tix payments show 0193b…")]
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Follow events live (new ones only) until interrupted.
    #[command(
        after_help = "Examples:\n  tix events tail --subject order:created --subject order:cancelled\n  tix events tail --request 0193a5c2-7f7e-7cc0-9a2e-4c1d2b3a4f5e   # one purchase's events"
    )]
    Tail {
        /// Only these subjects (default: all).
        #[arg(long = "subject")]
        subjects: Vec<String>,
        /// Only events caused by this request (its `x-request-id`, the events'
        /// `correlationId`), and those its consumers published in turn.
        #[arg(long, value_name = "ID")]
        request: Option<String>,
        /// The bus endpoint.
        #[arg(long, env = "TIX_BUS_URL", default_value = "tcp://127.0.0.1:5555")]
        bus: String,
        /// The bus client to authenticate as.
        #[arg(long, env = "TIX_BUS_CLIENT", default_value = "cli")]
        bus_client: String,
        /// File holding that client's key (or set TIX_BUS_KEY). Default:
        /// $TIX_DATA_DIR/keys/<client>.key (.tix/keys/cli.key) when it exists, as
        /// scripts/stack leaves it.
        #[arg(long, env = "TIX_BUS_KEY_FILE", value_name = "PATH")]
        bus_key_file: Option<std::path::PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap checks most of a derive's consistency (duplicate flags, bad groups) only when
    /// the command is built; this makes a mistake fail `cargo test`, not a user's run.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// docs/cli.md promises an example in every command's help; this names each one that
    /// has none, down to the nested subcommands.
    #[test]
    fn every_command_has_an_example_in_its_help() {
        fn walk(cmd: &mut clap::Command, path: String, missing: &mut Vec<String>) {
            let help = cmd.render_long_help().to_string();
            if !help.lines().any(|l| l.trim_start().starts_with("Example")) {
                missing.push(path.clone());
            }
            for sub in cmd.get_subcommands_mut() {
                let name = sub.get_name().to_string();
                if name != "help" {
                    walk(sub, format!("{path} {name}"), missing);
                }
            }
        }
        let mut root = Cli::command();
        root.build();
        let mut missing = Vec::new();
        walk(&mut root, "tix".into(), &mut missing);
        assert!(missing.is_empty(), "no example in the help of: {missing:?}");
    }
}
