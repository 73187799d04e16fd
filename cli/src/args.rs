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
  7  the stack cannot be reached or failed (connection refused, 5xx, a service down)

Examples:
  tix signup --email ann@example.com          # asks for the password
  echo \"$PW\" | tix signin --email ann@example.com --password-stdin
  tix tickets list --search jazz
  tix tickets create --title \"Jazz night\" --price 25
  tix buy 0193a… --token tok_visa
  tix payments list
  tix --profile seller tickets list --mine --json | jq '.[].id'";

/// The tix ticket marketplace, from the command line.
#[derive(Debug, Parser)]
#[command(name = "tix", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The gateway to talk to.
    #[arg(long, env = "TIX_API", global = true)]
    pub api: Option<String>,
    /// Print one JSON document on stdout instead of text (tail: one per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Keep several accounts side by side: each profile has its own session.
    #[arg(long, env = "TIX_PROFILE", default_value = "default", global = true)]
    pub profile: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account and sign in.
    #[command(after_help = "Example: tix signup --email ann@example.com")]
    Signup(Credentials),
    /// Sign in to an existing account.
    #[command(
        after_help = "Example: echo \"$PW\" | tix signin --email ann@example.com --password-stdin"
    )]
    Signin(Credentials),
    /// Sign out: forget this profile's session.
    Signout,
    /// Who this profile is signed in as.
    Whoami,
    /// Sell, browse and edit tickets.
    #[command(subcommand)]
    Tickets(TicketsCmd),
    /// Your orders: reserve, look, cancel.
    #[command(subcommand)]
    Orders(OrdersCmd),
    /// Pay for a reserved order; returns once the order shows complete.
    #[command(
        after_help = "Examples:\n  tix pay 0193a… --token tok_visa\n  tix pay 0193a… --card '4242 4242 4242 4242'"
    )]
    Pay {
        order_id: String,
        #[command(flatten)]
        card: Card,
        #[command(flatten)]
        wait: Wait,
    },
    /// Reserve a ticket and pay for it in one go; returns once the order shows complete.
    #[command(after_help = "Example: tix buy 0193a… --token tok_visa")]
    Buy {
        ticket_id: String,
        #[command(flatten)]
        card: Card,
        #[command(flatten)]
        wait: Wait,
    },
    /// Your payments (receipts): what was charged, and what was refunded.
    #[command(subcommand)]
    Payments(PaymentsCmd),
    /// Each service's health, through the gateway.
    Status,
    /// Watch the event bus.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Print a shell completion script.
    #[command(
        after_help = "Example: tix completions bash > ~/.local/share/bash-completion/completions/tix"
    )]
    Completions { shell: clap_complete::Shell },
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

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Card {
    /// A card token, e.g. tok_visa (succeeds) or tok_chargeDeclined (declined).
    #[arg(long)]
    pub token: Option<String>,
    /// A card number, e.g. 4242424242424242 (succeeds) or 4000000000000002 (declined).
    #[arg(long)]
    pub card: Option<String>,
}

/// After a payment is accepted, the order is completed by an event a moment later.
#[derive(Debug, Args)]
pub struct Wait {
    /// How long to wait, in seconds, for the order to show complete after the payment
    /// (then it says the order is catching up). 0 returns at once.
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
    List,
    /// One of your orders.
    Show { id: String },
    /// Reserve a ticket (it is held for you until the order expires).
    #[command(after_help = "Example: tix orders create 0193a…")]
    Create { ticket_id: String },
    /// Cancel an order and release its ticket.
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
}
