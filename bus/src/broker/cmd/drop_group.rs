//! `DROP`: forget a durable group nobody consumes any more.
//!
//! A durable group keeps its place in the log for ever, so one whose service was removed or
//! renamed holds back pruning, and the log grows without bound. An operator drops it: its
//! row, its acks and its dead letters go in one write, and in memory it becomes an empty
//! slot (as an ephemeral group does when its last member leaves), so indices stay valid.
//! A group with members is refused: they would lose their place under their feet.

use bytes::Bytes;
use tix_bus_client::protocol::DropGroupRequest;

use crate::broker::core::{Core, Token};
use crate::store::Write;

impl Core {
    pub(in crate::broker) fn on_drop_group(&mut self, peer: Bytes, corr: u64, r: DropGroupRequest) {
        let Some(&gi) = self.group_index.get(r.group.as_str()) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let g = &mut self.groups[gi];
        if g.ephemeral {
            return self.reply_err(
                &peer,
                corr,
                "an ephemeral group goes away with its last member",
            );
        }
        if !g.members.is_empty() {
            let message = format!(
                "group {} has {} member(s); stop them first",
                g.name,
                g.members.len()
            );
            return self.reply_err(&peer, corr, &message);
        }
        tracing::warn!(group = %g.name, floor = g.floor(), "dropping the group at an operator's request");
        g.retire();
        let name = g.name.clone();
        self.group_index.remove(&name);
        let body = Bytes::from(serde_json::json!({ "dropped": &*name }).to_string());
        self.submit(
            vec![Write::DropGroup { group: name }],
            Token::Ok { peer, corr, body },
        );
    }
}
