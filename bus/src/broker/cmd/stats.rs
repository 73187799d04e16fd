//! `STATS`: counters per subject and per group, for operators and tests.

use std::collections::HashMap;

use bytes::Bytes;
use tix_bus_client::protocol::{GroupStats, Stats};

use crate::broker::core::Core;
use crate::broker::group::Filter;
use crate::store;

impl Core {
    pub(in crate::broker) fn on_stats(&mut self, peer: Bytes, corr: u64) {
        match self.stats() {
            Ok(body) => self.reply_ok(&peer, corr, body),
            Err(e) => self.reply_err(&peer, corr, &format!("stats failed: {e}")),
        }
    }

    fn stats(&self) -> store::Result<Bytes> {
        let dead: HashMap<String, u64> = self.reader.dead_letter_counts()?.into_iter().collect();
        let mut groups = Vec::with_capacity(self.groups.len());
        for g in self.groups.iter().filter(|g| !g.retired) {
            let subjects = match g.filter {
                Filter::All => None,
                Filter::Only(_) => Some(&g.subjects[..]),
            };
            groups.push(GroupStats {
                ack_wait_ms: u64::try_from(g.ack_wait.as_millis()).unwrap_or(u64::MAX),
                dead_letters: dead.get(&*g.name).copied().unwrap_or(0),
                delivered: g.delivered,
                ephemeral: g.ephemeral,
                floor: g.floor(),
                in_flight: g.in_flight as u64,
                lag: self.reader.count_after(g.cursor, subjects)?,
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
        let body = Stats {
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
        Ok(Bytes::from(
            serde_json::to_vec(&body).expect("stats always serialise"),
        ))
    }
}
