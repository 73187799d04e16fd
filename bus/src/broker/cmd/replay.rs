//! `REPLAY`: deliver a group's dead letters again.

use std::time::Instant;

use bytes::Bytes;
use tix_bus_client::protocol::{ReplayRequest, Replayed};

use crate::broker::core::{Core, Token};
use crate::broker::group::{Pending, Slot};
use crate::store::Write;

impl Core {
    pub(in crate::broker) fn on_replay(&mut self, peer: Bytes, corr: u64, r: ReplayRequest) {
        let Some(&gi) = self.group_index.get(r.group.as_str()) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let dead = match self.reader.dead_letter_events(&r.group) {
            Ok(d) => d,
            Err(e) => {
                return self.reply_err(&peer, corr, &format!("reading dead letters failed: {e}"));
            }
        };
        let now = Instant::now();
        let g = &mut self.groups[gi];
        let mut seqs = Vec::new();
        for event in dead {
            let seq = event.seq;
            if r.seqs.as_ref().is_some_and(|only| !only.contains(&seq)) {
                continue;
            }
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
