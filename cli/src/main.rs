//! `tix`: the marketplace from the command line.

mod output;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use serde_json::json;
use tix_api::Money;
use tix_api::health::HealthStatus;
use tix_client::session::{self, Session};
use tix_client::{ApiClient, ClientError, Kind, TicketQuery};

const DEFAULT_API: &str = "http://127.0.0.1:8080";

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  local problem (e.g. the session file cannot be written)
  2  usage: a missing or invalid argument
  3  not signed in, or not allowed (someone else's order or ticket)
  4  not found
  5  refused: invalid input or a business rule (reserved, already paid, email in use)
  6  payment declined
  7  the stack cannot be reached or failed (connection refused, 5xx, a service down)

Examples:
  tix signup --email ann@example.com          # asks for the password
  echo \"$PW\" | tix signin --email ann@example.com --password-stdin
  tix tickets list --search jazz
  tix tickets create --title \"Jazz night\" --price 25
  tix buy 0193a… --token tok_visa
  tix --profile seller tickets list --mine --json | jq '.[].id'";

/// The tix ticket marketplace, from the command line.
#[derive(Debug, Parser)]
#[command(name = "tix", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// The gateway to talk to.
    #[arg(long, env = "TIX_API", global = true)]
    api: Option<String>,
    /// Print one JSON document on stdout instead of text (tail: one per line).
    #[arg(long, global = true)]
    json: bool,
    /// Keep several accounts side by side: each profile has its own session.
    #[arg(long, env = "TIX_PROFILE", default_value = "default", global = true)]
    profile: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Pay for a reserved order.
    #[command(
        after_help = "Examples:\n  tix pay 0193a… --token tok_visa\n  tix pay 0193a… --card '4242 4242 4242 4242'"
    )]
    Pay {
        order_id: String,
        #[command(flatten)]
        card: Card,
    },
    /// Reserve a ticket and pay for it in one go.
    #[command(after_help = "Example: tix buy 0193a… --token tok_visa")]
    Buy {
        ticket_id: String,
        #[command(flatten)]
        card: Card,
    },
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
struct Credentials {
    /// Your email (asked for when missing).
    #[arg(long)]
    email: Option<String>,
    /// Read the password from standard input instead of asking (for scripts).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Card {
    /// A card token, e.g. tok_visa (succeeds) or tok_chargeDeclined (declined).
    #[arg(long)]
    token: Option<String>,
    /// A card number, e.g. 4242424242424242 (succeeds) or 4000000000000002 (declined).
    #[arg(long)]
    card: Option<String>,
}

impl Card {
    fn source(&self) -> String {
        self.token
            .clone()
            .or_else(|| {
                self.card
                    .as_ref()
                    .map(|c| c.chars().filter(|c| c.is_ascii_digit()).collect())
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Subcommand)]
enum TicketsCmd {
    /// Tickets for sale (not reserved), oldest first.
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
enum OrdersCmd {
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
enum EventsCmd {
    /// Follow events live (new ones only) until interrupted.
    #[command(
        after_help = "Example: tix events tail --subject order:created --subject order:cancelled"
    )]
    Tail {
        /// Only these subjects (default: all).
        #[arg(long = "subject")]
        subjects: Vec<String>,
        /// The bus endpoint.
        #[arg(long, env = "TIX_BUS_URL", default_value = "tcp://127.0.0.1:5555")]
        bus: String,
    },
}

/// Everything that ends a command early, mapped to an exit code in one place.
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    NotSignedIn,
    Usage(String),
    Declined {
        message: String,
        order: String,
    },
    /// The gateway answered, but some services behind it did not.
    Degraded,
    Local(anyhow::Error),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Local(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NotSignedIn => 3,
            Failure::Declined { .. } => 6,
            Failure::Degraded => 7,
            Failure::Client(e) => match e.kind() {
                Kind::NotSignedIn | Kind::Forbidden => 3,
                Kind::NotFound => 4,
                Kind::Rejected => 5,
                Kind::Declined => 6,
                Kind::Unavailable => 7,
            },
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::NotSignedIn => "not signed in: run `tix signin` (or `tix signup`)".into(),
            Failure::Usage(m) => m.clone(),
            Failure::Declined { message, order } => format!(
                "payment declined: {message}\norder {order} is cancelled and its ticket released"
            ),
            Failure::Degraded => "some services are down".into(),
            Failure::Local(e) => format!("{e:#}"),
            Failure::Client(ClientError::Unreachable { url, reason }) => format!(
                "cannot reach the tix API at {url} ({reason})\nhint: start the stack with `scripts/stack up`, or point --api / TIX_API at a running gateway"
            ),
            Failure::Client(ClientError::Api { status: 401, .. }) => {
                "not signed in, or the session expired: run `tix signin`".into()
            }
            Failure::Client(ClientError::Api {
                message,
                field: Some(f),
                ..
            }) => format!("{message} ({f})"),
            Failure::Client(e) => e.to_string(),
        }
    }
}

type Outcome = Result<(), Failure>;

struct Ctx {
    api: String,
    json: bool,
    profile: String,
    dir: std::path::PathBuf,
    session: Option<Session>,
}

impl Ctx {
    fn client(&self) -> ApiClient {
        ApiClient::new(&self.api, self.session.as_ref().map(|s| s.token.clone()))
    }

    fn signed_in(&self) -> Result<ApiClient, Failure> {
        if self.session.is_none() {
            return Err(Failure::NotSignedIn);
        }
        Ok(self.client())
    }

    /// Prints a JSON document, or the human text.
    fn print(&self, value: serde_json::Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !session::valid_profile(&cli.profile) {
        eprintln!("error: a profile name is letters, digits, - and _ (at most 64)");
        return ExitCode::from(2);
    }
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "tix", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let dir = session::config_dir();
    let session = Session::load(&dir, &cli.profile);
    let api = cli
        .api
        .clone()
        .or_else(|| session.as_ref().map(|s| s.api.clone()))
        .unwrap_or_else(|| DEFAULT_API.to_string());
    let ctx = Ctx {
        api,
        json: cli.json,
        profile: cli.profile.clone(),
        dir,
        session,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(&ctx, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message());
            ExitCode::from(f.code())
        }
    }
}

fn read_password(from_stdin: bool) -> Result<String, Failure> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Local(e.into()))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").map_err(|e| Failure::Local(e.into()))?
    } else {
        return Err(Failure::Usage(
            "no terminal to ask for the password: pipe it in with --password-stdin".into(),
        ));
    };
    if pw.is_empty() {
        return Err(Failure::Usage("the password is empty".into()));
    }
    Ok(pw)
}

fn read_email(given: Option<String>) -> Result<String, Failure> {
    if let Some(e) = given {
        return Ok(e);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage("give --email".into()));
    }
    eprint!("Email: ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Local(e.into()))?;
    Ok(line.trim().to_string())
}

async fn run(ctx: &Ctx, command: Command) -> Outcome {
    match command {
        Command::Signup(c) => sign(ctx, c, true).await,
        Command::Signin(c) => sign(ctx, c, false).await,
        Command::Signout => {
            if ctx.session.is_some() {
                // The server only clears a cookie; the local session is what matters.
                let _ = ctx.client().signout().await;
            }
            let removed =
                Session::remove(&ctx.dir, &ctx.profile).map_err(|e| Failure::Local(e.into()))?;
            ctx.print(
                json!({ "signedOut": removed, "profile": ctx.profile }),
                || {
                    if removed {
                        "Signed out.".into()
                    } else {
                        "Not signed in.".into()
                    }
                },
            );
            Ok(())
        }
        Command::Whoami => {
            let me = ctx
                .signed_in()?
                .current_user()
                .await?
                .ok_or(Failure::NotSignedIn)?;
            ctx.print(serde_json::to_value(&me).unwrap_or_default(), || {
                format!(
                    "{} (profile {}, user {})\nsession valid until {}",
                    me.email,
                    ctx.profile,
                    me.id,
                    output::date(me.exp)
                )
            });
            Ok(())
        }
        Command::Tickets(t) => tickets(ctx, t).await,
        Command::Orders(o) => orders(ctx, o).await,
        Command::Pay { order_id, card } => {
            let payment = ctx
                .signed_in()?
                .pay(&order_id, &card.source())
                .await
                .map_err(|e| declined(e, &order_id))?;
            ctx.print(serde_json::to_value(&payment).unwrap_or_default(), || {
                format!("Paid order {} (payment {}).", payment.order_id, payment.id)
            });
            Ok(())
        }
        Command::Buy { ticket_id, card } => {
            let client = ctx.signed_in()?;
            let order = client.create_order(&ticket_id).await?;
            let payment = client
                .pay(&order.id, &card.source())
                .await
                .map_err(|e| declined(e, &order.id))?;
            ctx.print(json!({ "order": order, "payment": payment }), || {
                format!(
                    "Bought {} for {} — order {}, payment {}.",
                    order.ticket.title,
                    order.ticket.price.display(),
                    order.id,
                    payment.id
                )
            });
            Ok(())
        }
        Command::Status => {
            let health = ctx.client().health().await?;
            ctx.print(serde_json::to_value(&health).unwrap_or_default(), || {
                output::status(&ctx.api, &health)
            });
            if health.status != HealthStatus::Ok {
                return Err(Failure::Degraded);
            }
            Ok(())
        }
        Command::Events(EventsCmd::Tail { subjects, bus }) => tail(ctx, subjects, bus).await,
        Command::Completions { .. } => Ok(()),
    }
}

/// A 402 says what happened to the order, not just that the card failed.
fn declined(e: ClientError, order: &str) -> Failure {
    match e {
        ClientError::Api {
            status: 402,
            message,
            ..
        } => Failure::Declined {
            message,
            order: order.to_string(),
        },
        other => Failure::Client(other),
    }
}

async fn sign(ctx: &Ctx, c: Credentials, new: bool) -> Outcome {
    let email = read_email(c.email)?;
    let password = read_password(c.password_stdin)?;
    let client = ApiClient::new(&ctx.api, None);
    let who = if new {
        client.signup(&email, &password).await?
    } else {
        client.signin(&email, &password).await?
    };
    let session = Session {
        api: ctx.api.clone(),
        email: who.email.clone(),
        user_id: who.id.clone(),
        token: who.token.clone(),
    };
    session
        .save(&ctx.dir, &ctx.profile)
        .map_err(|e| Failure::Local(anyhow::anyhow!("saving the session: {e}")))?;
    ctx.print(
        json!({ "id": who.id, "email": who.email, "profile": ctx.profile }),
        || {
            format!(
                "{} as {} (profile {}).",
                if new {
                    "Signed up and signed in"
                } else {
                    "Signed in"
                },
                who.email,
                ctx.profile
            )
        },
    );
    Ok(())
}

async fn tickets(ctx: &Ctx, cmd: TicketsCmd) -> Outcome {
    match cmd {
        TicketsCmd::List {
            all,
            mine,
            search,
            limit,
            offset,
        } => {
            let client = if mine { ctx.signed_in()? } else { ctx.client() };
            let list = client
                .tickets(&TicketQuery {
                    all,
                    mine,
                    search,
                    limit,
                    offset,
                })
                .await?;
            let me = ctx.session.as_ref().map(|s| s.user_id.as_str());
            ctx.print(serde_json::to_value(&list).unwrap_or_default(), || {
                output::tickets(&list, me)
            });
        }
        TicketsCmd::Show { id } => {
            let t = ctx.client().ticket(&id).await?;
            ctx.print(serde_json::to_value(&t).unwrap_or_default(), || {
                output::ticket(&t)
            });
        }
        TicketsCmd::Create { title, price } => {
            let t = ctx.signed_in()?.create_ticket(&title, price).await?;
            ctx.print(serde_json::to_value(&t).unwrap_or_default(), || {
                format!(
                    "On sale: {} for {} — ticket {}.",
                    t.title,
                    t.price.display(),
                    t.id
                )
            });
        }
        TicketsCmd::Update { id, title, price } => {
            if title.is_none() && price.is_none() {
                return Err(Failure::Usage("give --title, --price or both".into()));
            }
            let client = ctx.signed_in()?;
            let current = client.ticket(&id).await?;
            let t = client
                .update_ticket(
                    &id,
                    title.as_deref().unwrap_or(&current.title),
                    price.unwrap_or(current.price),
                )
                .await?;
            ctx.print(serde_json::to_value(&t).unwrap_or_default(), || {
                format!(
                    "Updated: {} for {} (version {}).",
                    t.title,
                    t.price.display(),
                    t.version
                )
            });
        }
    }
    Ok(())
}

async fn orders(ctx: &Ctx, cmd: OrdersCmd) -> Outcome {
    let client = ctx.signed_in()?;
    match cmd {
        OrdersCmd::List => {
            let list = client.orders().await?;
            ctx.print(serde_json::to_value(&list).unwrap_or_default(), || {
                output::orders(&list)
            });
        }
        OrdersCmd::Show { id } => {
            let o = client.order(&id).await?;
            ctx.print(serde_json::to_value(&o).unwrap_or_default(), || {
                output::order(&o)
            });
        }
        OrdersCmd::Create { ticket_id } => {
            let o = client.create_order(&ticket_id).await?;
            ctx.print(serde_json::to_value(&o).unwrap_or_default(), || {
                format!(
                    "Reserved {} for {} — order {}, {}.\nPay with: tix pay {} --token tok_visa",
                    o.ticket.title,
                    o.ticket.price.display(),
                    o.id,
                    output::expiry(&o),
                    o.id
                )
            });
        }
        OrdersCmd::Cancel { id } => {
            client.cancel_order(&id).await?;
            ctx.print(json!({ "id": id, "status": "cancelled" }), || {
                format!("Cancelled order {id}; its ticket is released.")
            });
        }
    }
    Ok(())
}

async fn tail(ctx: &Ctx, subjects: Vec<String>, endpoint: String) -> Outcome {
    let bus =
        tix_bus_client::Client::connect(tix_bus_client::ClientOptions::new(&endpoint, "tix-cli"));
    bus.wait_connected(std::time::Duration::from_secs(3))
        .await
        .map_err(|_| {
            Failure::Client(ClientError::Unreachable {
                url: endpoint.clone(),
                reason: "the event bus does not answer".into(),
            })
        })?;
    let mut opts =
        tix_bus_client::SubscribeOptions::new(format!("tix-tail-{}", uuid::Uuid::now_v7()), &["*"]);
    if !subjects.is_empty() {
        opts.subjects = subjects;
    }
    opts.ephemeral = true;
    let mut sub = bus
        .subscribe(opts)
        .await
        .map_err(|e| Failure::Local(e.into()))?;
    if !ctx.json {
        eprintln!("Following new events on {endpoint} (Ctrl-C to stop)…");
    }
    loop {
        tokio::select! {
            d = sub.next() => {
                let Some(d) = d else { break };
                let _ = d.ack_nowait();
                let event: serde_json::Value = serde_json::from_slice(&d.payload).unwrap_or(serde_json::Value::Null);
                if ctx.json {
                    println!("{event}");
                } else {
                    println!("{}", output::event(&d.subject, &event));
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    bus.close().await;
    Ok(())
}
