//! The broker process: a ZeroMQ ROUTER socket in front of the [`core::Core`] state machine
//! and the store's writer thread.
//!
//! ```text
//!  peers ─────────────────► core task ──────────► send task ──► a queue per peer ──► peers
//!  monitor task ─► Input ─►   │   ▲  ▲            (replies, deliveries; never waits)
//!                         Job │   │  │ Input::Committed / Answer / Replay
//!                             ▼   │  │
//!        writer thread (bus.db, group commit)   ops thread (read-only: STATS, DLQ, REPLAY)
//!                                                    ▲  │ state for a scrape
//!                 metrics thread (HTTP: /metrics, /healthz; --metrics-addr) ◄─┘
//! ```
//! The core and the socket tasks share one thread (the binary runs a current-thread
//! runtime); the writer, which blocks on fsync, and the ops thread, whose reads can be long,
//! have threads of their own, and so does the optional metrics server, so that HTTP
//! clients never run on the core's thread. `limits.rs` keeps peers from overwhelming the
//! broker.

mod auth;
mod cmd;
mod core;
mod delivery;
#[cfg(test)]
mod fuzz;
mod group;
mod limits;
mod metrics;
mod ops;
mod upkeep;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use zeromq::{Socket, SocketEvent};

use crate::policy::{self, Policy};
use crate::store::{self, Durability};
use core::{Core, Input};

/// Everything the broker can be told, on the command line or through `TIX_*` variables.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerConfig {
    /// ZeroMQ endpoint to bind (port 0 picks a free port).
    #[arg(long, env = "TIX_BUS_BIND", default_value = "tcp://127.0.0.1:5555")]
    pub bind: String,
    /// Directory holding bus.db.
    #[arg(long, env = "TIX_DATA_DIR", default_value = ".tix")]
    pub data_dir: PathBuf,
    /// `full` fsyncs every commit (an acked event survives power loss) but those of nothing
    /// but consumer acks, which the next one syncs; `normal` survives a crash of the broker
    /// but not of the machine.
    #[arg(long, env = "TIX_BUS_DURABILITY", value_enum, default_value = "full")]
    pub durability: Durability,
    /// Keep events at least this long, even when every group has acked them.
    #[arg(long, env = "TIX_BUS_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// How often acked, expired events are pruned.
    #[arg(long, env = "TIX_BUS_PRUNE_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub prune_interval: Duration,
    /// Largest event payload accepted, in bytes.
    #[arg(long, env = "TIX_BUS_MAX_EVENT_BYTES", default_value_t = 1 << 20)]
    pub max_event_bytes: usize,
    /// Memory for the newest events, so consumers that keep up never read from disk (each
    /// event counts its bytes plus 128 for its bookkeeping).
    #[arg(long, env = "TIX_BUS_CACHE_BYTES", default_value_t = 96 << 20)]
    pub cache_bytes: usize,
    /// Most events (or other writes) committed in one transaction.
    #[arg(long, env = "TIX_BUS_MAX_BATCH", default_value_t = 8192)]
    pub max_batch: usize,
    /// How long the acks of a consumer that waits for no answer may be held back to share
    /// the next commit instead of making one of their own. Longer saves commits at light
    /// load; a crash of the broker redelivers what was held back. A stop saves them first.
    #[arg(long, env = "TIX_BUS_ACK_DELAY", default_value = "20ms", value_parser = humantime::parse_duration)]
    pub ack_delay: Duration,
    /// Largest message a peer may send, in bytes (all its frames; a frame alone may be
    /// at most the event limit plus 64 KiB). A peer that sends more is disconnected before
    /// the broker buffers it.
    #[arg(long, env = "TIX_BUS_MAX_MESSAGE_BYTES", default_value_t = 16 << 20)]
    pub max_message_bytes: usize,
    /// Connections open at once; more are closed as soon as they are accepted.
    #[arg(long, env = "TIX_BUS_MAX_PEERS", default_value_t = 2048)]
    pub max_peers: usize,
    /// Connections without a session (not authenticated yet) at once; the newest beyond
    /// it are closed.
    #[arg(long, env = "TIX_BUS_MAX_UNAUTHENTICATED", default_value_t = 64)]
    pub max_unauthenticated: usize,
    /// Time a new connection has to open a session (HELLO, and the proof with
    /// authentication on) before it is closed.
    #[arg(long, env = "TIX_BUS_HELLO_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub hello_timeout: Duration,
    /// Bytes waiting to be written to one peer; a peer that lets more pile up (it does not
    /// read) is disconnected, and its unacked events go to other members.
    #[arg(long, env = "TIX_BUS_MAX_PEER_QUEUE_BYTES", default_value_t = 32 << 20)]
    pub max_peer_queue_bytes: usize,
    /// The policy: each client's key and rights (default: bus-policy.toml in the data
    /// dir; `tix-bus init-policy` writes one). Reloaded on SIGHUP.
    #[arg(long, env = "TIX_BUS_POLICY", value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// Run without authentication: anyone who reaches the port may publish, consume and
    /// operate. For development only; without it, a broker with no policy refuses to start.
    /// (No environment twin, so nothing left in an environment turns it on.)
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Serve Prometheus metrics (GET /metrics) and a health check (GET /healthz) over HTTP
    /// on this address, e.g. 127.0.0.1:9464 (port 0 picks a free port). Off by default.
    /// Nothing there needs a key: bind it where only the monitoring can reach it.
    #[arg(long, env = "TIX_BUS_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
}

impl BrokerConfig {
    /// Where the policy is read from.
    pub fn policy_path(&self) -> PathBuf {
        self.policy
            .clone()
            .unwrap_or_else(|| self.data_dir.join(policy::FILE_NAME))
    }

    /// The policy to start with: `None` with `--insecure-no-auth`; an error when there is
    /// none otherwise.
    pub fn load_policy(&self) -> anyhow::Result<Option<Policy>> {
        let path = self.policy_path();
        if self.insecure_no_auth {
            tracing::warn!(
                ignored = path.exists().then(|| path.display().to_string()),
                "AUTHENTICATION IS OFF (--insecure-no-auth): anyone who reaches the bus port may publish, consume and operate"
            );
            return Ok(None);
        }
        if !path.exists() {
            anyhow::bail!(
                "no bus policy at {}: create one with `tix-bus init-policy --data-dir {}` \
                 (docs/operations.md), or run with --insecure-no-auth for development only",
                path.display(),
                self.data_dir.display()
            );
        }
        let policy = Policy::load(&path)?;
        if policy.is_empty() {
            tracing::warn!(file = %path.display(), "the bus policy lists no client: every client will be refused");
        }
        Ok(Some(policy))
    }
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    endpoint: String,
    inputs: tokio::sync::mpsc::UnboundedSender<Input>,
    policy_path: Option<PathBuf>,
    core: tokio::task::JoinHandle<()>,
    send_task: tokio::task::JoinHandle<()>,
    metrics_addr: Option<SocketAddr>,
    /// Stops the metrics server when dropped.
    metrics_server: Option<metrics::Server>,
}

impl Broker {
    /// Opens the store, binds the socket and starts serving.
    pub async fn start(cfg: BrokerConfig) -> anyhow::Result<Broker> {
        let policy = cfg.load_policy()?;
        let policy_path = policy.as_ref().map(|_| cfg.policy_path());
        // First, so that a port in use fails the start before anything else is opened.
        let metrics_port = cfg
            .metrics_addr
            .as_deref()
            .map(metrics::Bound::bind)
            .transpose()?;
        let metrics = metrics::Metrics::new();
        // Creates the data dir (0700) and bus.db (0600) when missing.
        let path = cfg.data_dir.join("bus.db");
        let write_conn = store::open(&path, cfg.durability)?;
        let reader = store::Reader::new(
            store::connect(&path, cfg.durability)
                .with_context(|| format!("opening {}", path.display()))?,
        );

        let mut socket = zeromq::RouterSocket::with_options(limits::socket_options(&cfg));
        limits::check_fd_limit(cfg.max_peers);
        let endpoint = socket
            .bind(&cfg.bind)
            .await
            .with_context(|| format!("binding {}", cfg.bind))?
            .to_string();
        let mut monitor = socket.monitor();
        let (send_half, recv_half) = socket.split();

        let (inputs_tx, inputs_rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
        let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = mpsc::channel();

        let max_batch = cfg.max_batch;
        let ops = ops::Ops::start(&path, inputs_tx.clone())?;
        let mut core = Core::load(cfg, reader, jobs_tx, out_tx).context("loading bus.db")?;
        core.conns = limits::Connections::new(send_half.clone());
        core.ops = Some(ops);
        core.auth = auth::Auth::new(policy.map(Arc::new));
        let to_core = inputs_tx.clone();
        let mut observer = metrics.commit_observer();
        std::thread::Builder::new()
            .name("bus-writer".into())
            .spawn(move || {
                store::run_writer(
                    write_conn,
                    jobs_rx,
                    move |done, times| {
                        observer.observe(&done, times);
                        let _ = to_core.send(Input::Committed(done));
                    },
                    max_batch,
                )
            })?;
        let core = tokio::spawn(core.run(recv_half, inputs_rx));

        let send_task = tokio::spawn(limits::run_sender(send_half, out_rx));
        let to_core = inputs_tx.clone();
        tokio::spawn(async move {
            let mut refusals = limits::Refusals::default();
            while let Some(event) = monitor.next().await {
                let input = match event {
                    SocketEvent::Disconnected(peer) => Input::Disconnected(Bytes::from(peer)),
                    // For the logs of the handshake (auth.rs): who failed, from where.
                    SocketEvent::Accepted(addr, peer) => {
                        Input::Accepted(Bytes::from(peer), addr.to_string())
                    }
                    SocketEvent::AcceptFailed(e) => {
                        refusals.count(&e);
                        continue;
                    }
                    _ => continue,
                };
                if to_core.send(input).is_err() {
                    break;
                }
            }
        });
        let metrics_addr = metrics_port.as_ref().map(|p| p.addr());
        let metrics_server = match metrics_port {
            Some(port) => Some(port.serve(metrics, inputs_tx.clone())?),
            None => None,
        };
        tracing::info!(%endpoint, metrics = metrics_addr.map(|a| a.to_string()), "tix-bus listening");
        Ok(Broker {
            endpoint,
            inputs: inputs_tx,
            policy_path,
            core,
            send_task,
            metrics_addr,
            metrics_server,
        })
    }

    /// Where the metrics server listens (the real port when port 0 was asked for), when
    /// `--metrics-addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The bound endpoint, with the real port when port 0 was asked for.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Reads the policy file again (SIGHUP) and applies it: new keys and rights hold for
    /// every request from now on; sessions of clients it no longer admits end. A policy
    /// that does not load is logged and the old one stays.
    pub fn reload_policy(&self) {
        let Some(path) = &self.policy_path else {
            tracing::warn!("authentication is off (--insecure-no-auth): no policy to reload");
            return;
        };
        match Policy::load(path) {
            Ok(p) => {
                let _ = self.inputs.send(Input::Policy(Arc::new(p)));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the bus policy did not load; the old one stays")
            }
        }
    }

    /// Stops taking requests, commits what is queued, sends the last replies and returns.
    pub async fn shutdown(mut self) {
        // First: a stopping core answers no scrape, so the port would only mislead.
        drop(self.metrics_server.take());
        let _ = self.inputs.send(Input::Stop);
        let _ = self.core.await;
        // The core has dropped its sender: the send task drains what is left and ends.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.send_task).await;
    }
}
