//! Operator requests (`STATS`, `DLQ`, `REPLAY`), and the state a metrics scrape reports,
//! read off the broker's thread.
//!
//! Their reads can take long on a large log (a `count(*)` per group over everything it has
//! not seen yet, dead letters with big payloads); on the core's thread they would hold up
//! every session, heartbeats included. The core takes what only it knows (a snapshot of
//! its counters), hands the rest to the `bus-ops` thread, which reads through a read-only
//! connection of its own and sends the result back to the core as an
//! [`Input`](super::core::Input) — a reply that goes out like any other, or the dead letters
//! a replay puts back in their group.

use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use super::cmd::{DeadLettersJob, ReplayJob, StatsJob};
use super::core::Input;
use super::metrics::StateReply;
use crate::store::{self, Reader};

/// Operator requests waiting for the ops thread at most; more are refused as busy.
const QUEUE: usize = 8;

/// Work for the ops thread, with who asked.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) peer: Bytes,
    pub(super) corr: u64,
    pub(super) work: Work,
}

#[derive(Debug)]
pub(super) enum Work {
    Stats(StatsJob),
    DeadLetters(DeadLettersJob),
    Replay(ReplayJob),
    /// A metrics scrape: answered to the scrape, not through the core.
    Metrics {
        stats: StatsJob,
        connections: u64,
        reply: StateReply,
    },
}

/// The way to the ops thread.
#[derive(Debug)]
pub(super) struct Ops {
    jobs: SyncSender<Job>,
}

impl Ops {
    /// Opens the read-only connection and starts the thread; replies go to `inputs`.
    pub(super) fn start(path: &Path, inputs: UnboundedSender<Input>) -> anyhow::Result<Ops> {
        let reader = Reader::new(
            store::connect_read_only(path)
                .with_context(|| format!("opening {} read-only", path.display()))?,
        );
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("bus-ops".into())
            .spawn(move || {
                for job in queue {
                    let (peer, corr) = (job.peer, job.corr);
                    let input = match job.work {
                        Work::Stats(s) => Input::Answer {
                            peer,
                            corr,
                            result: s.run(&reader),
                        },
                        Work::DeadLetters(d) => Input::Answer {
                            peer,
                            corr,
                            result: d.run(&reader),
                        },
                        Work::Replay(r) => r.run(&reader, peer, corr),
                        Work::Metrics {
                            stats,
                            connections,
                            reply,
                        } => {
                            // A scrape that gave up waiting is no reason to stop.
                            let _ = reply.send(stats.run_for_metrics(&reader, connections));
                            continue;
                        }
                    };
                    if inputs.send(input).is_err() {
                        break; // the broker stopped
                    }
                }
            })?;
        Ok(Ops { jobs })
    }

    /// Queues a job; `false` when the thread is busy with too many already.
    pub(super) fn submit(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}
