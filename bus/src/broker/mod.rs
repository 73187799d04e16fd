//! The broker process: a ZeroMQ ROUTER socket in front of the [`core::Core`] state machine
//! and the store's writer thread.
//!
//! ```text
//!  peers ─────────────────► core task ──────────► send task ──► peers
//!  monitor task ─► Input ─►   │   ▲               (replies, deliveries)
//!                         Job │   │ Input::Committed
//!                             ▼   │
//!                  writer thread (bus.db, group commit)
//! ```
//! The core and the socket tasks share one thread (the binary runs a current-thread
//! runtime); only the writer, which blocks on fsync, has a thread of its own.

mod cmd;
mod core;
mod delivery;
mod group;
mod upkeep;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use zeromq::{Socket, SocketEvent, SocketSend};

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
    /// `full` fsyncs every commit (an acked event survives power loss); `normal` survives a
    /// crash of the broker but not of the machine.
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
    /// Memory for the newest events, so consumers that keep up never read from disk.
    #[arg(long, env = "TIX_BUS_CACHE_BYTES", default_value_t = 64 << 20)]
    pub cache_bytes: usize,
    /// Most events (or other writes) committed in one transaction.
    #[arg(long, env = "TIX_BUS_MAX_BATCH", default_value_t = 8192)]
    pub max_batch: usize,
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    endpoint: String,
    inputs: tokio::sync::mpsc::UnboundedSender<Input>,
    core: tokio::task::JoinHandle<()>,
    send_task: tokio::task::JoinHandle<()>,
}

impl Broker {
    /// Opens the store, binds the socket and starts serving.
    pub async fn start(cfg: BrokerConfig) -> anyhow::Result<Broker> {
        // Creates the data dir (0700) and bus.db (0600) when missing.
        let path = cfg.data_dir.join("bus.db");
        let write_conn = store::open(&path, cfg.durability)?;
        let reader = store::Reader::new(
            store::connect(&path, cfg.durability)
                .with_context(|| format!("opening {}", path.display()))?,
        );

        let mut socket =
            zeromq::RouterSocket::with_options(tix_bus_client::protocol::socket_options());
        let endpoint = socket
            .bind(&cfg.bind)
            .await
            .with_context(|| format!("binding {}", cfg.bind))?
            .to_string();
        let mut monitor = socket.monitor();
        let (mut send_half, recv_half) = socket.split();

        let (inputs_tx, inputs_rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = mpsc::channel();

        let max_batch = cfg.max_batch;
        let core = Core::load(cfg, reader, jobs_tx, out_tx).context("loading bus.db")?;
        let to_core = inputs_tx.clone();
        std::thread::Builder::new()
            .name("bus-writer".into())
            .spawn(move || {
                store::run_writer(
                    write_conn,
                    jobs_rx,
                    move |done| {
                        let _ = to_core.send(Input::Committed(done));
                    },
                    max_batch,
                )
            })?;
        let core = tokio::spawn(core.run(recv_half, inputs_rx));

        let send_task = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                // A peer that went away is the heartbeat's business, not an error here.
                if let Err(e) = send_half.send(m).await {
                    tracing::debug!(error = %e, "send to a peer failed");
                }
            }
        });
        let to_core = inputs_tx.clone();
        tokio::spawn(async move {
            while let Some(event) = monitor.next().await {
                if let SocketEvent::Disconnected(peer) = event
                    && to_core
                        .send(Input::Disconnected(Bytes::from(peer)))
                        .is_err()
                {
                    break;
                }
            }
        });
        tracing::info!(%endpoint, "tix-bus listening");
        Ok(Broker {
            endpoint,
            inputs: inputs_tx,
            core,
            send_task,
        })
    }

    /// The bound endpoint, with the real port when port 0 was asked for.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stops taking requests, commits what is queued, sends the last replies and returns.
    pub async fn shutdown(self) {
        let _ = self.inputs.send(Input::Stop);
        let _ = self.core.await;
        // The core has dropped its sender: the send task drains what is left and ends.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.send_task).await;
    }
}
