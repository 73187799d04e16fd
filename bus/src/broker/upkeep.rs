//! The broker's timed work: ack deadlines that passed, peers that went silent, floors
//! saved, and the log pruned.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::core::{Core, Token, hex};
use super::group::Slot;
use crate::store::{self, Write};

impl Core {
    pub(super) fn on_tick(&mut self, now: Instant) {
        self.auth_upkeep(now);
        self.check_connections(now);
        let mut touched = Vec::new();
        let mut writes = Vec::new();
        while let Some(Reverse((t, gi, seq, slot))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let g = &mut self.groups[gi];
            let Some(p) = g.slot_mut(seq, slot) else {
                continue;
            };
            if p.member.is_none() || p.deadline != t {
                continue; // acked, requeued or redelivered since: a stale timer
            }
            let deliveries = p.deliveries;
            if deliveries >= g.max_deliveries {
                self.dead_letter(gi, seq, slot, &mut writes);
            } else {
                tracing::debug!(group = %g.name, seq, deliveries, "ack wait passed; redelivering");
                g.requeue(seq, slot);
            }
            if !touched.contains(&gi) {
                touched.push(gi);
            }
        }
        if !writes.is_empty() {
            self.submit(writes, Token::Silent);
        }

        if now >= self.next_liveness_check {
            self.next_liveness_check = now + Duration::from_millis(100);
            let dead: Vec<Bytes> = self
                .sessions
                .iter()
                .filter(|(_, s)| now.duration_since(s.last_seen) > s.timeout)
                .map(|(p, _)| p.clone())
                .collect();
            for peer in dead {
                tracing::warn!(peer = %hex(&peer), "peer missed its heartbeats; dropping it");
                let groups = self.drop_session_quiet(&peer);
                touched.extend(groups);
            }
        }

        if now >= self.next_prune {
            self.next_prune = now + self.cfg.prune_interval;
            self.prune();
        }
        touched.append(&mut self.repump);
        touched.sort_unstable();
        touched.dedup();
        for gi in touched {
            self.pump(gi);
        }
        self.compact_timers();
        // Last, so held-back acks go with any job the tick made rather than before it.
        if self.deferred_until.is_some_and(|t| t <= now) {
            self.flush_deferred();
        }
    }

    /// Acked events leave their timers behind until they fall due; with long ack waits
    /// rebuild the heap from what is really in flight before it grows large.
    pub(super) fn compact_timers(&mut self) {
        let live: usize = self.groups.iter().map(|g| g.in_flight as usize).sum();
        if self.timers.len() < 4096 || self.timers.len() < 4 * live {
            return;
        }
        let mut timers = BinaryHeap::with_capacity(live * 2);
        for (gi, g) in self.groups.iter().enumerate() {
            let held = g
                .pending
                .iter()
                .map(|(s, p)| (*s, Slot::Log, p))
                .chain(g.replays.iter().map(|(s, p)| (*s, Slot::Replay, p)));
            for (seq, slot, p) in held {
                if p.member.is_some() {
                    timers.push(Reverse((p.deadline, gi, seq, slot)));
                }
            }
        }
        self.timers = timers;
    }

    pub(super) fn drop_session(&mut self, peer: &Bytes) {
        for gi in self.drop_session_quiet(peer) {
            self.pump(gi);
        }
    }

    pub(super) fn drop_session_quiet(&mut self, peer: &Bytes) -> Vec<usize> {
        let Some(s) = self.sessions.remove(peer) else {
            return Vec::new();
        };
        for &gi in &s.groups {
            self.remove_member(gi, peer);
        }
        s.groups
    }

    pub(super) fn remove_member(&mut self, gi: usize, peer: &Bytes) {
        let g = &mut self.groups[gi];
        g.remove_member(peer);
        if g.ephemeral && g.members.is_empty() && !g.retired {
            g.retire();
            self.group_index.remove(&g.name);
        }
    }

    pub(super) fn persist_floors(&mut self) {
        let mut writes = Vec::new();
        for g in self
            .groups
            .iter_mut()
            .filter(|g| !g.ephemeral && !g.retired && !g.rewinding)
        {
            let floor = g.floor();
            if floor > g.persisted_floor {
                g.persisted_floor = floor;
                writes.push(Write::Floor {
                    group: g.name.clone(),
                    floor,
                });
            }
        }
        if !writes.is_empty() {
            self.submit(writes, Token::Silent);
        }
    }

    /// Deletes events every group is done with and that are older than the retention age.
    pub(super) fn prune(&mut self) {
        self.persist_floors();
        // A group being moved back is about to need events below its floor.
        if self.groups.iter().any(|g| g.rewinding) {
            return;
        }
        let upto = self
            .groups
            .iter()
            .filter(|g| !g.ephemeral && !g.retired)
            .map(|g| g.floor())
            .min()
            .unwrap_or(self.head);
        let before_ms = store::now_ms() - self.cfg.retention.as_millis() as i64;
        if upto > 0 {
            self.submit(vec![Write::Prune { upto, before_ms }], Token::Silent);
        }
    }
}
