//! `DLQ`: list a group's dead letters (or every group's) for an operator.

use bytes::Bytes;
use tix_bus_client::protocol::DeadLetterQuery;

use crate::broker::core::Core;

impl Core {
    pub(in crate::broker) fn on_dead_letters(
        &mut self,
        peer: Bytes,
        corr: u64,
        q: DeadLetterQuery,
    ) {
        let limit = q.limit.unwrap_or(1000).min(10_000);
        match self.reader.dead_letters(q.group.as_deref(), limit, false) {
            Ok(list) => {
                let body = serde_json::to_vec(&list).unwrap_or_default();
                self.reply_ok(&peer, corr, Bytes::from(body));
            }
            Err(e) => self.reply_err(&peer, corr, &format!("reading dead letters failed: {e}")),
        }
    }
}
