//! `ACK`, `NAK` and `TOUCH`: a member is done with events, hands them back, or says it is
//! still working on them.

use std::cmp::Reverse;
use std::time::Instant;

use bytes::Bytes;

use crate::broker::core::{Core, Token};
use crate::broker::group::Slot;
use crate::store::Write;
use tix_bus_client::protocol::NO_REPLY;

impl Core {
    pub(in crate::broker) fn on_nak(&mut self, peer: Bytes, corr: u64, group: &str, seqs: &[u64]) {
        let Some(&gi) = self.group_index.get(group) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        for &seq in seqs {
            // Only the holder may hand an event back: a NAK from a member whose ack
            // wait already passed must not take it from the next one.
            self.groups[gi].requeue_held_by(seq, Slot::Log, &peer);
            self.groups[gi].requeue_held_by(seq, Slot::Replay, &peer);
        }
        self.pump(gi);
        self.reply_settled(&peer, corr);
    }

    /// Restarts the ack wait of events the peer holds, without counting a delivery (NATS's
    /// "work in progress"): a consumer that keeps an event while it retries a transient
    /// failure of its own does not use up the event's deliveries. Events the peer does not
    /// hold (acked, or taken back after their ack wait) are left alone.
    pub(in crate::broker) fn on_touch(
        &mut self,
        peer: Bytes,
        corr: u64,
        group: &str,
        seqs: &[u64],
    ) {
        let Some(&gi) = self.group_index.get(group) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let g = &mut self.groups[gi];
        let deadline = Instant::now() + g.ack_wait;
        for &seq in seqs {
            for slot in [Slot::Log, Slot::Replay] {
                if let Some(p) = g.slot_mut(seq, slot)
                    && p.member.as_ref() == Some(&peer)
                {
                    // The timer set at delivery goes stale (its deadline no longer matches)
                    // and is skipped when it falls due.
                    p.deadline = deadline;
                    self.timers.push(Reverse((deadline, gi, seq, slot)));
                }
            }
        }
        self.reply_settled(&peer, corr);
    }

    pub(in crate::broker) fn on_ack(&mut self, peer: Bytes, corr: u64, group: &str, seqs: &[u64]) {
        let Some(&gi) = self.group_index.get(group) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        if self.groups[gi].rewinding {
            // A group being moved back has no member: an ack is a leftover of the place it
            // is leaving, and must not mark an event it is to get again.
            return self.reply_settled(&peer, corr);
        }
        let mut writes = Vec::new();
        let mut acked = Vec::with_capacity(seqs.len());
        let g = &mut self.groups[gi];
        for &seq in seqs {
            if g.remove(seq, Slot::Log).is_some() {
                acked.push(seq);
            } else if g.remove(seq, Slot::Replay).is_some() {
                writes.push(Write::DeleteDeadLetter {
                    group: g.name.clone(),
                    seq,
                });
            } else if seq > g.cursor && seq <= self.head {
                // Delivered before a broker restart and acked after it, ahead of the
                // rescan: record it so the rescan does not deliver it again.
                g.acked_ahead.insert(seq);
                acked.push(seq);
            }
            // Anything else was acked already or dead-lettered: nothing to do.
        }
        self.after_settled(gi, acked, &mut writes);
        if corr != NO_REPLY {
            let body = Bytes::new();
            self.submit(writes, Token::Ok { peer, corr, body });
        } else if !writes.is_empty() {
            // Nobody waits: the writes go with the next commit (an ephemeral group's acks
            // write nothing at all).
            self.defer(writes);
        }
        self.pump(gi);
    }

    /// Answers a settle the sender waits for; one sent with [`NO_REPLY`] gets nothing.
    fn reply_settled(&self, peer: &Bytes, corr: u64) {
        if corr != NO_REPLY {
            self.reply_ok(peer, corr, Bytes::new());
        }
    }
}
