//! `REWIND`: move a durable group back, so that it gets again what the log stored since a
//! time.
//!
//! A service restored from a backup taken at B has lost what it applied after B, but the
//! bus has moved its group past those events. Its inbox came back with the database and
//! skips what it had applied by B, so delivering everything stored since a little before B
//! again loses nothing and applies nothing twice (docs/deploy.md, "Backups and restore").
//! The writer finds the first position stored at or after the time (a binary search over
//! positions), lowers the group's stored floor below it and forgets its acks from there;
//! only then does the group's scan start again from there in memory. What the group still
//! owes below that position (an event being retried) stays owed. Meanwhile it is
//! `rewinding`: nobody may join it or drop it, and its floor is neither stored nor pruned
//! to. A group with members is refused: they hold events of the place it is leaving. A
//! time the group has not reached yet moves nothing, and is answered like any other.

use bytes::Bytes;
use tix_bus_client::protocol::{RewindRequest, Rewound};

use crate::broker::core::{Core, Token};
use crate::store::{Rewind, Write};

impl Core {
    pub(in crate::broker) fn on_rewind(&mut self, peer: Bytes, corr: u64, r: RewindRequest) {
        let Some(&gi) = self.group_index.get(r.group.as_str()) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let g = &mut self.groups[gi];
        let refusal = if g.ephemeral {
            Some("an ephemeral group has no place to move back".to_string())
        } else if g.dropping || g.rewinding {
            Some(format!(
                "group {} is busy with another operator request",
                g.name
            ))
        } else if !g.members.is_empty() {
            Some(format!(
                "group {} has {} member(s); stop them first",
                g.name,
                g.members.len()
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            return self.reply_err(&peer, corr, &message);
        }
        g.rewinding = true;
        let retention = i64::try_from(self.cfg.retention.as_millis()).unwrap_or(i64::MAX);
        let write = Write::Rewind {
            group: g.name.clone(),
            since_ms: r.since_ms,
            pruned_before_ms: crate::store::now_ms().saturating_sub(retention),
        };
        let since_ms = r.since_ms;
        self.submit(
            vec![write],
            Token::Rewound {
                gi,
                peer,
                corr,
                since_ms,
            },
        );
    }

    /// The rewind is committed (`Ok`, with where the group starts again) or not (the
    /// group stays where it was).
    pub(in crate::broker) fn on_rewound(
        &mut self,
        gi: usize,
        peer: Bytes,
        corr: u64,
        since_ms: i64,
        result: Result<Rewind, String>,
    ) {
        let head = self.head;
        let g = &mut self.groups[gi];
        g.rewinding = false;
        match result {
            Ok(Rewind { from, pruned }) => {
                let before = g.floor();
                g.rewind_to(from);
                tracing::warn!(group = %g.name, since_ms, from, before, pruned,
                    "moved the group back at an operator's request");
                let body = Rewound {
                    group: g.name.to_string(),
                    from,
                    positions: (head + 1).saturating_sub(from),
                    pruned,
                };
                let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                self.reply_ok(&peer, corr, body);
                self.pump(gi);
            }
            Err(e) => self.reply_err(&peer, corr, &format!("not stored: {e}")),
        }
    }
}
