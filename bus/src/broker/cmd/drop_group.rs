//! `DROP`: forget a durable group nobody consumes any more.
//!
//! A durable group keeps its place in the log for ever, so one whose service was removed or
//! renamed holds back pruning, and the log grows without bound. An operator drops it: its
//! row, its acks and its dead letters go in one write. Only once that write is committed
//! does the group become an empty slot in memory (as an ephemeral group does when its last
//! member leaves, so indices stay valid) and its name free: until then it is `dropping`,
//! and nobody may join it or replay its dead letters, so a failed commit leaves it as it was.
//! A group with members is refused: they would lose their place under their feet.

use std::time::Duration;

use bytes::Bytes;
use tix_bus_client::protocol::DropGroupRequest;

use crate::broker::core::{Core, Token};
use crate::store::Write;

/// How long a group must have had no member before a `DROP` without `force`: a service
/// redeployed or reconnecting comes back well within it, and a group dropped under it
/// would start again from the beginning of the log.
pub(in crate::broker) const IDLE_BEFORE_DROP: Duration = Duration::from_secs(300);

impl Core {
    pub(in crate::broker) fn on_drop_group(&mut self, peer: Bytes, corr: u64, r: DropGroupRequest) {
        let Some(&gi) = self.group_index.get(r.group.as_str()) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let g = &mut self.groups[gi];
        let refusal = if g.ephemeral {
            Some("an ephemeral group goes away with its last member".to_string())
        } else if g.dropping {
            Some(format!("group {} is being dropped already", g.name))
        } else if g.rewinding {
            Some(format!("group {} is being moved back; try again", g.name))
        } else if !g.members.is_empty() {
            Some(format!(
                "group {} has {} member(s); stop them first",
                g.name,
                g.members.len()
            ))
        } else if let Some(idle) = g.idle_since.map(|t| t.elapsed())
            && idle < IDLE_BEFORE_DROP
            && !r.force
        {
            Some(format!(
                "group {} has had no member for only {} s (it may be a service reconnecting); wait until {} s, or force it",
                g.name,
                idle.as_secs(),
                IDLE_BEFORE_DROP.as_secs()
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            return self.reply_err(&peer, corr, &message);
        }
        g.dropping = true;
        let group = g.name.clone();
        self.submit(
            vec![Write::DropGroup { group }],
            Token::Dropped { gi, peer, corr },
        );
    }

    /// The drop is committed (`Ok`) or not: the group goes, or stays as it was.
    pub(in crate::broker) fn on_dropped(
        &mut self,
        gi: usize,
        peer: Bytes,
        corr: u64,
        result: Result<(), String>,
    ) {
        let g = &mut self.groups[gi];
        g.dropping = false;
        match result {
            Ok(()) => {
                tracing::warn!(group = %g.name, floor = g.floor(), "dropped the group at an operator's request");
                g.retire();
                let name = g.name.clone();
                self.group_index.remove(&name);
                let body = Bytes::from(serde_json::json!({ "dropped": &*name }).to_string());
                self.reply_ok(&peer, corr, body);
            }
            Err(e) => self.reply_err(&peer, corr, &format!("not stored: {e}")),
        }
    }
}
