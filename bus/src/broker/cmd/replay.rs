//! `REPLAY`: deliver a group's dead letters again.
//!
//! The dead letters are read on the ops thread (`broker/ops.rs`), at most [`MAX_REPLAY`]
//! per request (the reply says how many went out; an operator asks again for the rest),
//! and handed back to the core, which puts them in the group's queue.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tix_bus_client::protocol::{ReplayRequest, Replayed};

use crate::broker::core::{Core, Input, Token};
use crate::broker::group::{Pending, Slot};
use crate::broker::ops::{Job, Work};
use crate::store::{Event, Reader, Write};

/// Dead letters one `REPLAY` sends out again at most.
pub(in crate::broker) const MAX_REPLAY: usize = 10_000;

/// A replay's read, for the ops thread.
#[derive(Debug)]
pub(in crate::broker) struct ReplayJob {
    gi: usize,
    request: ReplayRequest,
}

impl Core {
    pub(in crate::broker) fn on_replay(&mut self, peer: Bytes, corr: u64, r: ReplayRequest) {
        let Some(&gi) = self.group_index.get(r.group.as_str()) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        if self.groups[gi].dropping {
            return self.reply_err(&peer, corr, "the group is being dropped");
        }
        let job = Job {
            peer: peer.clone(),
            corr,
            work: Work::Replay(ReplayJob { gi, request: r }),
        };
        if self.submit_op(&peer, corr, job) {
            self.groups[gi].replay_reads += 1;
        }
    }

    /// The dead letters were read: they go back to the group.
    pub(in crate::broker) fn on_replay_read(
        &mut self,
        peer: Bytes,
        corr: u64,
        asked_of: usize,
        r: ReplayRequest,
        dead: Result<Vec<Arc<Event>>, String>,
    ) {
        if let Some(g) = self.groups.get_mut(asked_of) {
            g.replay_reads = g.replay_reads.saturating_sub(1);
        }
        let dead = match dead {
            Ok(d) => d,
            Err(e) => {
                return self.reply_err(&peer, corr, &format!("reading dead letters failed: {e}"));
            }
        };
        // Dropped since (and perhaps joined again, as a new group): not this group's any more.
        let Some(&gi) = self
            .group_index
            .get(r.group.as_str())
            .filter(|&&gi| gi == asked_of && !self.groups[gi].dropping)
        else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let now = Instant::now();
        let g = &mut self.groups[gi];
        let mut seqs = Vec::new();
        for event in dead {
            let seq = event.seq;
            // Asked twice before the first request's write landed: it is already back.
            if g.replays.contains_key(&seq) {
                continue;
            }
            g.replays.insert(
                seq,
                Pending {
                    event,
                    deliveries: 0,
                    member: None,
                    deadline: now,
                },
            );
            g.ready.insert((seq, Slot::Replay));
            seqs.push(seq);
        }
        tracing::info!(group = %g.name, n = seqs.len(), "replaying dead letters");
        let replayed = Replayed {
            replayed: seqs.len() as u64,
        };
        let body = Bytes::from(serde_json::to_vec(&replayed).expect("a reply always serialises"));
        let write = Write::SetReplaying {
            group: g.name.clone(),
            seqs,
            replaying: true,
            deliveries: 0,
        };
        self.submit(vec![write], Token::Ok { peer, corr, body });
        self.pump(gi);
    }
}

impl ReplayJob {
    /// On the ops thread: the dead letters to replay, for the core.
    pub(in crate::broker) fn run(self, reader: &Reader, peer: Bytes, corr: u64) -> Input {
        let r = self.request;
        let dead = reader
            .dead_letter_events(&r.group, r.seqs.as_deref(), MAX_REPLAY)
            .map_err(|e| e.to_string());
        Input::Replay {
            peer,
            corr,
            gi: self.gi,
            request: r,
            dead,
        }
    }
}
