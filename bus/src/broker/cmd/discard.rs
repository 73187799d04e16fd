//! `DISCARD`: forget dead letters for good.
//!
//! A dead letter stays until it is replayed and acked, so one an operator has looked at
//! and will never want delivered (an event a handler can never apply, a service's fault
//! since fixed by hand) would stay in `tix-bus stats` and every health check's count for
//! ever. `DISCARD` deletes the group's dead letters, or only those at the positions given,
//! in one write; those being replayed are kept (their delivery is under way: they go
//! when acked, or come back as dead letters). A `REPLAY` still reading them is waited for
//! (refused: try again), since it is about to send them out. Answered with how many went,
//! once committed.

use bytes::Bytes;
use tix_bus_client::protocol::DiscardRequest;

use crate::broker::core::{Core, Token};
use crate::store::Write;

impl Core {
    pub(in crate::broker) fn on_discard(&mut self, peer: Bytes, corr: u64, r: DiscardRequest) {
        let Some(&gi) = self.group_index.get(r.group.as_str()) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let g = &self.groups[gi];
        if g.ephemeral {
            return self.reply_err(&peer, corr, "an ephemeral group keeps no dead letters");
        }
        if g.dropping {
            return self.reply_err(&peer, corr, "the group is being dropped");
        }
        if g.replay_reads > 0 {
            let message = format!(
                "a replay of group {}'s dead letters is under way; try again",
                g.name
            );
            return self.reply_err(&peer, corr, &message);
        }
        let write = Write::DiscardDeadLetters {
            group: g.name.clone(),
            seqs: r.seqs,
            keep: g.replays.keys().copied().collect(),
        };
        self.submit(vec![write], Token::Discarded { peer, corr });
    }
}
