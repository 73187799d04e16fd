//! Handing events to group members: in log order, redeliveries first, within each
//! member's in-flight limit; and what happens once a write is durable.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tix_bus_client::protocol;

use super::core::{BACKLOG_BYTES, BACKLOG_READ, Core, MAX_EVENTS_PER_MSG, SCAN_BUDGET, Token};
use super::group::{Pending, Slot};
use crate::store::{Done, Event, Write};

impl Core {
    pub(super) fn on_committed(&mut self, done: Vec<Done<Token>>) {
        let mut new_events = false;
        for d in done {
            self.outstanding_jobs -= 1;
            match d.result {
                Ok(fx) => {
                    for e in fx.inserted {
                        new_events = true;
                        self.head = self.head.max(e.seq);
                        *self
                            .subject_counts
                            .entry(String::from_utf8_lossy(e.subject()).into_owned())
                            .or_default() += 1;
                        self.cache_bytes += e.weight();
                        self.cache.push_back(e);
                    }
                    for (subject, n) in fx.pruned {
                        if let Some(c) = self.subject_counts.get_mut(&subject) {
                            *c = c.saturating_sub(n);
                        }
                    }
                    match d.token {
                        Token::PubAck { peer, corr, n } => self.send(vec![
                            peer,
                            Bytes::from_static(b"PUBACK"),
                            protocol::u64_frame(corr),
                            protocol::u32_frame(n),
                        ]),
                        Token::Ok { peer, corr, body } => self.reply_ok(&peer, corr, body),
                        Token::Dropped { gi, peer, corr } => {
                            self.on_dropped(gi, peer, corr, Ok(()))
                        }
                        Token::Rewound {
                            gi,
                            peer,
                            corr,
                            since_ms,
                        } => {
                            // A Rewind write always says where it starts.
                            let rewound = fx.rewound.ok_or_else(|| "no rewind in the write".into());
                            self.on_rewound(gi, peer, corr, since_ms, rewound)
                        }
                        Token::Discarded { peer, corr } => {
                            let body = tix_bus_client::protocol::Discarded {
                                discarded: fx.discarded,
                            };
                            let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                            self.reply_ok(&peer, corr, body);
                        }
                        Token::DeadLetters(_) | Token::Silent => {}
                    }
                }
                Err(e) => match d.token {
                    Token::PubAck { peer, corr, .. }
                    | Token::Ok { peer, corr, .. }
                    | Token::Discarded { peer, corr } => {
                        self.reply_err(&peer, corr, &format!("not stored: {e}"))
                    }
                    Token::Dropped { gi, peer, corr } => {
                        self.on_dropped(gi, peer, corr, Err(e.to_string()))
                    }
                    Token::Rewound {
                        gi,
                        peer,
                        corr,
                        since_ms,
                    } => self.on_rewound(gi, peer, corr, since_ms, Err(e.to_string())),
                    Token::DeadLetters(dead) => self.dead_letters_not_stored(dead, &e.to_string()),
                    Token::Silent => {}
                },
            }
        }
        while self.cache_bytes > self.cfg.cache_bytes {
            match self.cache.pop_front() {
                Some(e) => self.cache_bytes -= e.weight(),
                None => break,
            }
        }
        if new_events {
            for gi in 0..self.groups.len() {
                self.pump(gi);
            }
        }
    }

    /// The first event after `after` for a group, from its disk backlog, the cache, or disk.
    pub(super) fn event_after(&mut self, gi: usize, after: u64) -> Option<Arc<Event>> {
        let g = &mut self.groups[gi];
        while let Some(e) = g.backlog.front() {
            if e.seq > after {
                return g.backlog.pop_front();
            }
            g.backlog.pop_front();
        }
        let cached = self
            .cache
            .front()
            .is_some_and(|first| first.seq <= after.saturating_add(1));
        if cached {
            return first_after(&self.cache, after).cloned();
        }
        if after >= self.head {
            return None;
        }
        match self.reader.events_after(after, BACKLOG_READ, BACKLOG_BYTES) {
            Ok(events) => {
                g.backlog.extend(events);
                g.backlog.pop_front()
            }
            Err(e) => {
                tracing::error!(error = %e, group = %g.name, "reading the log failed");
                None
            }
        }
    }

    /// The next event of the group's subjects it has not looked at yet.
    pub(super) fn next_new(&mut self, gi: usize, budget: &mut usize) -> Option<Arc<Event>> {
        loop {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let cursor = self.groups[gi].cursor;
            let e = self.event_after(gi, cursor)?;
            let g = &mut self.groups[gi];
            g.cursor = e.seq;
            if g.acked_ahead.remove(&e.seq) {
                continue;
            }
            if g.filter.matches(e.subject()) {
                return Some(e);
            }
        }
    }

    /// Hands events to members with room, in log order, redeliveries first.
    pub(super) fn pump(&mut self, gi: usize) {
        if self.stopping {
            return;
        }
        if self.groups[gi].retired {
            return;
        }
        let now = Instant::now();
        // Per member: the message's frames.
        let mut batches: Vec<(usize, Vec<Bytes>)> = Vec::new();
        let mut writes = Vec::new();
        let mut budget = SCAN_BUDGET;
        while let Some(mi) = self.groups[gi].member_with_room() {
            let (seq, slot) = if let Some((seq, slot)) = self.groups[gi].ready.pop_first() {
                // Requeued by a NAK or a lost member: it may have used up its deliveries.
                let g = &self.groups[gi];
                let exhausted = match slot {
                    Slot::Log => g.pending.get(&seq),
                    Slot::Replay => g.replays.get(&seq),
                }
                .is_some_and(|p| p.deliveries >= g.max_deliveries);
                if exhausted {
                    self.groups[gi].next_member = mi;
                    self.dead_letter(gi, seq, slot, &mut writes);
                    continue;
                }
                (seq, slot)
            } else {
                let Some(event) = self.next_new(gi, &mut budget) else {
                    // Undo the round-robin step: nobody received anything.
                    let g = &mut self.groups[gi];
                    g.next_member = mi;
                    if budget == 0 && !self.repump.contains(&gi) {
                        // A long stretch of other subjects: go on at the next turn of the
                        // loop so other peers are served in between.
                        self.repump.push(gi);
                    }
                    break;
                };
                let seq = event.seq;
                self.groups[gi].pending.insert(
                    seq,
                    Pending {
                        event,
                        deliveries: 0,
                        member: None,
                        deadline: now,
                    },
                );
                (seq, Slot::Log)
            };
            let g = &mut self.groups[gi];
            let ack_wait = g.ack_wait;
            let peer = g.members[mi].peer.clone();
            let Some(p) = g.slot_mut(seq, slot) else {
                continue;
            };
            p.deliveries += 1;
            p.member = Some(peer);
            p.deadline = now + ack_wait;
            let (deliveries, event) = (p.deliveries, p.event.clone());
            g.members[mi].in_flight += 1;
            g.in_flight += 1;
            g.delivered += 1;
            if deliveries > 1 {
                g.redelivered += 1;
            }
            self.timers.push(Reverse((now + ack_wait, gi, seq, slot)));
            let frames = match batches.iter_mut().find(|(m, _)| *m == mi) {
                Some((_, f)) => f,
                None => {
                    let g = &self.groups[gi];
                    batches.push((
                        mi,
                        vec![
                            g.members[mi].peer.clone(),
                            Bytes::from_static(b"MSG"),
                            g.name_frame.clone(),
                        ],
                    ));
                    &mut batches.last_mut().expect("just pushed").1
                }
            };
            frames.push(protocol::delivery_header(seq, deliveries));
            frames.extend(event.frames());
            if frames.len() >= 3 + 4 * MAX_EVENTS_PER_MSG {
                let pos = batches.iter().position(|(m, _)| *m == mi).expect("present");
                let (_, full) = batches.swap_remove(pos);
                self.send(full);
            }
        }
        for (_, frames) in batches {
            self.send(frames);
        }
        if !writes.is_empty() {
            self.submit(writes, Token::Silent);
        }
    }

    /// Moves an event that used up its deliveries to the dead-letter list.
    pub(super) fn dead_letter(&mut self, gi: usize, seq: u64, slot: Slot, writes: &mut Vec<Write>) {
        let g = &mut self.groups[gi];
        let Some(p) = g.remove(seq, slot) else {
            return;
        };
        let deliveries = p.deliveries;
        tracing::warn!(group = %g.name, seq, deliveries, "dead letter after max deliveries");
        if g.ephemeral {
            return; // nobody could replay it: a throwaway group's failures are only logged
        }
        match slot {
            Slot::Log => {
                writes.push(Write::DeadLetter {
                    group: g.name.clone(),
                    event: p.event,
                    deliveries,
                });
                self.after_settled(gi, vec![seq], writes);
            }
            Slot::Replay => writes.push(Write::SetReplaying {
                group: g.name.clone(),
                seqs: vec![seq],
                replaying: false,
                deliveries,
            }),
        }
    }

    /// Dead letters whose commit failed (a full disk): each event goes back to its group,
    /// to be delivered once more and dead-lettered again, with a new write, if it fails
    /// again. Without this the group would have forgotten it while no record of it exists.
    fn dead_letters_not_stored(&mut self, dead: Vec<(Arc<str>, Arc<Event>, u32)>, error: &str) {
        let now = Instant::now();
        for (group, event, deliveries) in dead {
            let Some(&gi) = self.group_index.get(&group) else {
                continue; // dropped since: nothing of it is kept
            };
            let g = &mut self.groups[gi];
            let seq = event.seq;
            tracing::error!(group = %g.name, seq, error, "a dead letter could not be stored; delivering it again");
            g.pending.insert(
                seq,
                Pending {
                    event,
                    // One more delivery before it is dead-lettered again: not a busy loop of
                    // failing commits while the disk stays full.
                    deliveries: deliveries.min(g.max_deliveries).saturating_sub(1),
                    member: None,
                    deadline: now,
                },
            );
            g.ready.insert((seq, Slot::Log));
            self.pump(gi);
        }
    }

    /// Records that `settled` positions (acked or dead-lettered) are done for the group.
    pub(super) fn after_settled(&mut self, gi: usize, settled: Vec<u64>, writes: &mut Vec<Write>) {
        let g = &mut self.groups[gi];
        if g.ephemeral {
            return;
        }
        let floor = g.floor();
        if floor > g.persisted_floor {
            g.persisted_floor = floor;
            writes.push(Write::Floor {
                group: g.name.clone(),
                floor,
            });
        }
        let above: Vec<u64> = settled.into_iter().filter(|&s| s > floor).collect();
        if !above.is_empty() {
            writes.push(Write::Acked {
                group: g.name.clone(),
                seqs: above,
            });
        }
    }
}

/// The first event of `cache` (in position order) after position `after`. Positions are
/// consecutive unless something was skipped, so that event is usually where its position
/// says: checking there is one read, where a binary search chases ~20 pointers per event
/// (it was 14 % of the broker's CPU while a consumer kept up).
fn first_after(cache: &VecDeque<Arc<Event>>, after: u64) -> Option<&Arc<Event>> {
    let first = cache.front()?.seq;
    let next = after.saturating_add(1);
    if let Some(e) = usize::try_from(next.saturating_sub(first))
        .ok()
        .and_then(|i| cache.get(i))
        && e.seq == next
        && e.seq > after
    {
        return Some(e);
    }
    let i = cache.partition_point(|e| e.seq <= after);
    cache.get(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(seqs: &[u64]) -> VecDeque<Arc<Event>> {
        seqs.iter()
            .map(|&s| Arc::new(Event::new(s, b"id", b"subject", b"{}", 0)))
            .collect()
    }

    #[test]
    fn the_next_event_is_found_with_or_without_gaps_in_positions() {
        let seqs = [5, 6, 7, 9, 10, 20, 21];
        let c = cache(&seqs);
        for after in 0..25 {
            let want = seqs.iter().copied().find(|&s| s > after);
            assert_eq!(first_after(&c, after).map(|e| e.seq), want, "after {after}");
        }
        assert!(first_after(&c, u64::MAX).is_none());
        assert!(first_after(&cache(&[]), 3).is_none());
        let dense = cache(&[1, 2, 3]);
        assert_eq!(first_after(&dense, 1).map(|e| e.seq), Some(2));
    }
}
