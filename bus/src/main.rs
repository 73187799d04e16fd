//! `tix-bus`: the broker process, and the operator's commands to inspect it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, Parser, Subcommand};
use tix_bus::{Broker, BrokerConfig};
use tix_bus_client::{Client, ClientOptions, SubscribeOptions};

/// The tix event bus: a durable ZeroMQ broker with queue groups, acks and redelivery.
///
/// Without a subcommand it runs the broker. The subcommands talk to a running broker.
///
/// Every client authenticates with its own key, listed with its rights in the broker's
/// policy (<data-dir>/bus-policy.toml); `tix-bus init-policy` writes one with a key per
/// tix client. The operator commands use the key of client `operator`: TIX_BUS_KEY, a file
/// (--bus-key-file / TIX_BUS_KEY_FILE), or <data-dir>/keys/operator.key.
///
/// Examples:
///   tix-bus init-policy --data-dir .tix          keys and policy for every tix client
///   tix-bus --data-dir .tix                      run the broker on tcp://127.0.0.1:5555
///   tix-bus stats                                per-subject counts, per-group lag
///   tix-bus dead-letters --group orders          list dead letters
///   tix-bus replay --group orders                deliver them again
///   tix-bus discard --group orders --seq 42      forget one for good (or --all)
///   tix-bus drop-group --group old-service       forget a group nobody consumes
///   tix-bus rewind --group orders --since 2026-11-26T13:55:00Z
///                                                deliver again what was stored since
///   tix-bus tail --subject ticket:created        follow events live
///   tix-bus man | man -l -                       this manual
///   tix-bus completions bash                     a shell completion script
#[derive(Debug, Parser)]
#[command(
    name = "tix-bus",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    broker: BrokerConfig,
    /// Log filter, e.g. `info` or `tix_bus=debug`.
    #[arg(long, env = "TIX_LOG", default_value = "info", global = true)]
    log: String,
    /// `text`, or `json`: one JSON object per line, as every tix service writes them.
    #[arg(
        long,
        env = "TIX_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
}

/// How log lines are written (the services' `tix_common::config::LogFormat`; the broker
/// does not depend on tix-common).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a key for every tix client (<data-dir>/keys/<client>.key, 0600) and the
    /// broker's policy (<data-dir>/bus-policy.toml, 0600) if they are missing. Running it
    /// again changes nothing.
    InitPolicy {
        /// Where the broker keeps its data.
        #[arg(long, env = "TIX_DATA_DIR", default_value = ".tix")]
        data_dir: PathBuf,
    },
    /// Print the broker's counters as JSON.
    Stats(Target),
    /// List dead letters as JSON.
    DeadLetters {
        #[command(flatten)]
        target: Target,
        /// Only this group's.
        #[arg(long)]
        group: Option<String>,
    },
    /// Deliver a group's dead letters again.
    Replay {
        #[command(flatten)]
        target: Target,
        /// The group whose dead letters to deliver again.
        #[arg(long)]
        group: String,
        /// Only these log positions (default: all of the group's dead letters).
        #[arg(long = "seq")]
        seqs: Vec<u64>,
    },
    /// Forget a group's dead letters for good, without delivering them again: all of them,
    /// or only those at the positions given. Those being replayed are kept. Look at them
    /// first (dead-letters): a discarded event is gone from the group, though it stays in
    /// the log until it is pruned.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["seqs", "all"])))]
    Discard {
        #[command(flatten)]
        target: Target,
        /// The group whose dead letters to forget.
        #[arg(long)]
        group: String,
        /// These log positions.
        #[arg(long = "seq")]
        seqs: Vec<u64>,
        /// All of the group's dead letters (but those being replayed).
        #[arg(long, conflicts_with = "seqs")]
        all: bool,
    },
    /// Forget a durable group nobody consumes any more (a removed or renamed service's):
    /// its place in the log, its acks and its dead letters, so that it no longer holds back
    /// pruning. Refused while it has members. A group of that name joined later starts at
    /// the beginning of the log, as a new group does: never drop one a service still uses.
    DropGroup {
        #[command(flatten)]
        target: Target,
        /// The group to forget.
        #[arg(long)]
        group: String,
        /// Drop it although its last member left less than 5 minutes ago (or the broker
        /// started less than 5 minutes ago): it may be a service reconnecting.
        #[arg(long)]
        force: bool,
    },
    /// Move a durable group back, so that it gets again every event stored since a time:
    /// after restoring its service from a backup taken then (a little before it, to be
    /// safe), so that what it applied after the backup is applied again. Its inbox skips what
    /// it had applied, for as long as it remembers (TIX_INBOX_RETENTION, 24 h back from
    /// now): a time further back than that would apply old events twice. Refused while the
    /// group has members: stop the service first.
    Rewind {
        #[command(flatten)]
        target: Target,
        /// The group to move back.
        #[arg(long)]
        group: String,
        /// From when: a UTC time (2026-11-26T13:55:00Z; the backup's MANIFEST says when it
        /// was taken) or how long ago (90m).
        #[arg(long, value_parser = since)]
        since: SystemTime,
    },
    /// Follow events as JSON lines. By default a throwaway group that sees new events only;
    /// with --group, a durable group (from its position, or the start of the log).
    Tail {
        #[command(flatten)]
        target: Target,
        /// Subjects to follow (default: all).
        #[arg(long = "subject")]
        subjects: Vec<String>,
        /// Join this durable group instead of a throwaway one.
        #[arg(long)]
        group: Option<String>,
        /// The group's ack wait (with --no-ack, how long until an event is redelivered).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        ack_wait: Duration,
        /// Events the tail holds unacked at once.
        #[arg(long, default_value_t = 256)]
        max_in_flight: u32,
        /// Print events without acking them (they will be redelivered).
        #[arg(long)]
        no_ack: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff).
    Man,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The broker to ask.
    #[arg(long, env = "TIX_BUS_URL", default_value = "tcp://127.0.0.1:5555")]
    endpoint: String,
    /// The client to authenticate as (its policy entry needs `operator = true` for
    /// dead-letters, replay, discard, drop-group and rewind, `stats` or `operator` for stats).
    #[arg(long, env = "TIX_BUS_CLIENT", default_value = "operator")]
    client: String,
    /// File holding the client's key (or set TIX_BUS_KEY). Default:
    /// <data-dir>/keys/<client>.key when it exists.
    #[arg(long, env = "TIX_BUS_KEY_FILE", value_name = "PATH")]
    bus_key_file: Option<PathBuf>,
    /// The data dir whose keys/ to look in when no key is given.
    #[arg(long, env = "TIX_DATA_DIR", default_value = ".tix")]
    data_dir: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Generated from the parser itself; no logging, broker or key involved.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            // Into memory first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "tix-bus", &mut script);
            return print_generated(&script, "the completion script");
        }
        Some(Command::Man) => {
            let mut page = Vec::new();
            if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
                eprintln!("tix-bus: rendering the manual page: {e}");
                return std::process::ExitCode::FAILURE;
            }
            return print_generated(&page, "the manual page");
        }
        _ => {}
    }
    // Colour codes only for a person: stderr is a terminal and NO_COLOR is unset (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr);
    match cli.log_format {
        // One JSON object per line, as every tix service writes them.
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => logs.with_ansi(colour).init(),
    }
    let done = match cli.command {
        None => serve(cli.broker).await,
        Some(cmd) => operate(cmd).await,
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // One line for an operator, the causes in it; no backtrace whatever RUST_BACKTRACE says.
        Err(e) => {
            eprintln!("tix-bus: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(cfg: BrokerConfig) -> anyhow::Result<()> {
    let broker = Broker::start(cfg).await?;
    // Tests and scripts read this line to learn the port when it was chosen by the OS.
    println!("tix-bus listening on {}", broker.endpoint());
    // After the line above, which scripts wait for first; tests with port 0 read the port here.
    if let Some(addr) = broker.metrics_addr() {
        println!("tix-bus metrics on http://{addr}");
    }
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the bus policy");
                broker.reload_policy();
            }
        }
    }
    tracing::info!("shutting down");
    broker.shutdown().await;
    Ok(())
}

async fn connect(target: &Target) -> anyhow::Result<Client> {
    let fallback = tix_bus_client::key::key_file_in(&target.data_dir, &target.client);
    let key = tix_bus_client::key::resolve(target.bus_key_file.as_deref(), Some(&fallback))?;
    let mut opts = ClientOptions::new(&target.endpoint, &target.client);
    opts.key = key;
    let client = Client::connect(opts);
    client
        .wait_connected(Duration::from_secs(3))
        .await
        .map_err(|e| match e {
            tix_bus_client::Error::Refused(why) => anyhow::anyhow!(
                "the bus refused client {}: {why} (its key: TIX_BUS_KEY, --bus-key-file, or {})",
                target.client,
                fallback.display()
            ),
            e => anyhow::anyhow!("{e}: is tix-bus running? (scripts/stack up)"),
        })?;
    Ok(client)
}

/// Writes a generated script or page to stdout. A reader that went away (`| head -1`)
/// is not an error: the output simply ends, quietly, with success.
fn print_generated(bytes: &[u8], what: &str) -> std::process::ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tix-bus: writing {what}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn operate(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        // Answered in `main` before logging starts.
        Command::Completions { .. } | Command::Man => {}
        Command::InitPolicy { data_dir } => {
            let done = tix_bus::policy::init(&data_dir)?;
            for k in &done.new_keys {
                println!("wrote {}", k.display());
            }
            if done.wrote_policy {
                println!("wrote {}", done.policy.display());
            } else if done.new_keys.is_empty() {
                println!("kept {}", done.policy.display());
            } else {
                println!(
                    "kept {}: it exists, so the new keys are not in it — add them (docs/operations.md)",
                    done.policy.display()
                );
            }
        }
        Command::Stats(t) => {
            let c = connect(&t).await?;
            let body = c.stats_json().await?;
            println!("{body}");
        }
        Command::DeadLetters { target, group } => {
            let c = connect(&target).await?;
            let list = c.dead_letters(group.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&list)?);
            // The broker lists at most 1,000 (and 8 MiB of payloads) per request, oldest
            // first: say so when the counts show more.
            let stats = c.stats().await?;
            let total: u64 = stats
                .groups
                .iter()
                .filter(|g| group.as_ref().is_none_or(|name| *name == g.name))
                .map(|g| g.dead_letters)
                .sum();
            let listed = list.iter().filter(|d| !d.replaying).count() as u64;
            if listed < total {
                eprintln!(
                    "showing {listed} of {total} dead letters (the oldest; a listing holds at most 1,000 and 8 MiB of payloads)"
                );
            }
        }
        Command::Replay {
            target,
            group,
            seqs,
        } => {
            let c = connect(&target).await?;
            let only = (!seqs.is_empty()).then_some(seqs);
            let n = c.replay(&group, only).await?;
            println!("{}", serde_json::json!({ "replayed": n }));
        }
        Command::Discard {
            target,
            group,
            seqs,
            all,
        } => {
            let c = connect(&target).await?;
            let only = (!all).then_some(seqs);
            let n = c.discard(&group, only).await?;
            println!("{}", serde_json::json!({ "discarded": n }));
        }
        Command::DropGroup {
            target,
            group,
            force,
        } => {
            let c = connect(&target).await?;
            c.drop_group(&group, force).await?;
            println!("{}", serde_json::json!({ "dropped": group }));
        }
        Command::Rewind {
            target,
            group,
            since,
        } => {
            let since_ms = since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            if SystemTime::now()
                .duration_since(since)
                .is_ok_and(|ago| ago > INBOX_MEMORY)
            {
                eprintln!(
                    "warning: that is more than 24 h ago: a service's inbox remembers what it applied for TIX_INBOX_RETENTION (24 h by default), and would apply older events again"
                );
            }
            let c = connect(&target).await?;
            let r = c.rewind(&group, since_ms).await?;
            if r.pruned {
                eprintln!(
                    "the log may no longer hold everything stored since then (older events were pruned past the retention): {group} starts again from the oldest it holds"
                );
            }
            println!("{}", serde_json::to_string(&r)?);
        }
        Command::Tail {
            target,
            subjects,
            group,
            ack_wait,
            max_in_flight,
            no_ack,
        } => {
            let c = connect(&target).await?;
            let subjects = if subjects.is_empty() {
                vec!["*".to_string()]
            } else {
                subjects
            };
            let ephemeral = group.is_none();
            let mut opts = SubscribeOptions::new(
                group.unwrap_or_else(|| format!("tail-{}", uuid::Uuid::now_v7())),
                &[],
            );
            opts.ephemeral = ephemeral;
            opts.subjects = subjects;
            opts.ack_wait_ms = ack_wait.as_millis() as u64;
            opts.max_in_flight = max_in_flight;
            let mut sub = c.subscribe(opts).await?;
            loop {
                tokio::select! {
                    d = sub.next() => {
                        let Some(d) = d else { break };
                        let payload: serde_json::Value = serde_json::from_slice(&d.payload)
                            .unwrap_or_else(|_| String::from_utf8_lossy(&d.payload).into_owned().into());
                        println!("{}", serde_json::json!({
                            "seq": d.seq, "deliveries": d.deliveries, "id": d.id,
                            "subject": d.subject, "payload": payload,
                        }));
                        if !no_ack {
                            d.ack_nowait()?;
                        }
                    }
                    _ = shutdown_signal() => break,
                }
            }
            c.close().await;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// How long the services' inboxes remember what they applied, by default
/// (`TIX_INBOX_RETENTION`): a rewind further back is warned about.
const INBOX_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// `--since`: a UTC time, or how long ago.
fn since(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    match humantime::parse_duration(s) {
        Ok(ago) => SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("{s} ago is before 1970")),
        Err(_) => Err(format!(
            "expected a UTC time (2026-11-26T13:55:00Z) or how long ago (90m), got {s:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `rewind --since` takes the backup MANIFEST's UTC time (with or without a fraction) or
    /// how long ago, and names both forms when it gets neither.
    #[test]
    fn since_is_a_utc_time_or_how_long_ago() {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let at = |s| super::since(s).unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(at("1970-01-01T00:01:00Z"), Duration::from_secs(60));
        assert_eq!(
            at("1970-01-01T00:01:00.250Z"),
            Duration::from_millis(60_250)
        );
        let then = super::since("90m").unwrap();
        let ago = SystemTime::now().duration_since(then).unwrap();
        assert!(
            ago >= Duration::from_secs(5400) && ago < Duration::from_secs(5460),
            "{ago:?}"
        );
        let bad = super::since("last tuesday").unwrap_err();
        assert!(
            bad.contains("UTC time") && bad.contains("how long ago"),
            "{bad}"
        );
    }

    #[test]
    fn the_manual_page_renders() {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH tix-bus 1"), "{page}");
        assert!(
            page.contains("dead\\-letters"),
            "lists the commands: {page}"
        );
    }

    #[test]
    fn completions_are_generated_for_each_shell() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tix-bus", &mut script);
            let script = String::from_utf8(script).unwrap();
            assert!(
                script.contains("tix-bus") && script.contains("replay"),
                "{shell}: {script}"
            );
        }
    }
}
