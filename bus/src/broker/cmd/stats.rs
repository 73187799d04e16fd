//! `STATS`: counters per subject and per group, for operators and tests.
//!
//! The core fills in what it holds in memory; the counts that need the log (each group's
//! lag, the dead letters per group) are read on the ops thread (`broker/ops.rs`). A metrics
//! scrape (`broker/metrics.rs`) gets the same numbers the same way.

use std::collections::HashMap;

use bytes::Bytes;
use tix_bus_client::protocol::{GroupStats, Stats};

use crate::broker::core::Core;
use crate::broker::group::Filter;
use crate::broker::metrics::{BrokerState, StateReply};
use crate::broker::ops::{Job, Work};
use crate::store::{self, Reader};

/// What the ops thread completes: the core's counters, and for each group (in the same
/// order) the position its lag counts from and its subjects (`None`: all).
#[derive(Debug)]
pub(in crate::broker) struct StatsJob {
    stats: Stats,
    lags: Vec<(u64, Option<Vec<String>>)>,
}

impl Core {
    pub(in crate::broker) fn on_stats(&mut self, peer: Bytes, corr: u64) {
        let job = Job {
            peer: peer.clone(),
            corr,
            work: Work::Stats(self.stats_snapshot()),
        };
        self.submit_op(&peer, corr, job);
    }

    /// A scrape's request: like `STATS`, with the open connections. When the ops thread is
    /// busy the reply is dropped, which the scrape takes as "no state this time".
    pub(in crate::broker) fn on_metrics(&mut self, reply: StateReply) {
        let job = Job {
            peer: Bytes::new(),
            corr: 0,
            work: Work::Metrics {
                stats: self.stats_snapshot(),
                connections: self.conns.open(),
                reply,
            },
        };
        if let Some(ops) = &self.ops {
            ops.submit(job);
        }
    }

    fn stats_snapshot(&self) -> StatsJob {
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut lags = Vec::with_capacity(self.groups.len());
        for g in self.groups.iter().filter(|g| !g.retired) {
            lags.push((
                g.cursor,
                match g.filter {
                    Filter::All => None,
                    Filter::Only(_) => Some(g.subjects.clone()),
                },
            ));
            groups.push(GroupStats {
                ack_wait_ms: u64::try_from(g.ack_wait.as_millis()).unwrap_or(u64::MAX),
                dead_letters: 0,
                delivered: g.delivered,
                ephemeral: g.ephemeral,
                floor: g.floor(),
                in_flight: g.in_flight as u64,
                lag: 0,
                max_deliveries: g.max_deliveries,
                max_in_flight: g.max_in_flight,
                members: g.members.len() as u64,
                name: g.name.to_string(),
                pending: g.unacked() as u64,
                position: g.cursor,
                redelivered: g.redelivered,
                subjects: g.subjects.clone(),
            });
        }
        let stats = Stats {
            events: self.subject_counts.values().sum(),
            groups,
            head: self.head,
            sessions: self.sessions.len() as u64,
            subjects: self
                .subject_counts
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        };
        StatsJob { stats, lags }
    }
}

impl StatsJob {
    /// On the ops thread: the counts from the log, and the body.
    pub(in crate::broker) fn run(self, reader: &Reader) -> Result<Bytes, String> {
        self.complete(reader)
            .map_err(|e| format!("stats failed: {e}"))
    }

    /// On the ops thread, for a metrics scrape: the completed counters.
    pub(in crate::broker) fn run_for_metrics(
        self,
        reader: &Reader,
        connections: u64,
    ) -> Result<BrokerState, String> {
        let stats = self
            .fill(reader)
            .map_err(|e| format!("stats failed: {e}"))?;
        Ok(BrokerState { stats, connections })
    }

    fn complete(self, reader: &Reader) -> store::Result<Bytes> {
        let stats = self.fill(reader)?;
        Ok(Bytes::from(
            serde_json::to_vec(&stats).expect("stats always serialise"),
        ))
    }

    fn fill(mut self, reader: &Reader) -> store::Result<Stats> {
        let dead: HashMap<String, u64> = reader.dead_letter_counts()?.into_iter().collect();
        for (g, (cursor, subjects)) in self.stats.groups.iter_mut().zip(&self.lags) {
            g.dead_letters = dead.get(&g.name).copied().unwrap_or(0);
            g.lag = reader.count_after(*cursor, subjects.as_deref())?;
        }
        Ok(self.stats)
    }
}
