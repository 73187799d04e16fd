//! `DLQ`: list a group's dead letters (or every group's) for an operator.
//!
//! Read on the ops thread (`broker/ops.rs`), and bounded: at most `limit` dead letters
//! (1,000 unless asked, never more than [`MAX_LIMIT`]) and no more once their payloads
//! reach [`MAX_REPLY_BYTES`]; the list is in group and log order, so an operator sees the
//! oldest first and `tix-bus dead-letters` says when there are more than it shows.

use bytes::Bytes;
use tix_bus_client::protocol::DeadLetterQuery;

use crate::broker::core::Core;
use crate::broker::ops::{Job, Work};
use crate::store::Reader;

/// Dead letters one `DLQ` answers with unless it asks for another number.
pub(in crate::broker) const DEFAULT_LIMIT: u32 = 1000;
/// The most one `DLQ` answers with.
pub(in crate::broker) const MAX_LIMIT: u32 = 10_000;
/// Payload bytes one `DLQ` answers with at most (at least one dead letter, whatever its
/// size).
pub(in crate::broker) const MAX_REPLY_BYTES: usize = 8 << 20;

/// A dead-letter listing for the ops thread.
#[derive(Debug)]
pub(in crate::broker) struct DeadLettersJob {
    group: Option<String>,
    limit: u32,
}

impl Core {
    pub(in crate::broker) fn on_dead_letters(
        &mut self,
        peer: Bytes,
        corr: u64,
        q: DeadLetterQuery,
    ) {
        let job = Job {
            peer: peer.clone(),
            corr,
            work: Work::DeadLetters(DeadLettersJob {
                group: q.group,
                limit: q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
            }),
        };
        self.submit_op(&peer, corr, job);
    }

    /// Hands an operator request to the ops thread, or refuses it when that is busy.
    /// Whether the ops thread took the job (when not, the peer is told it is busy).
    pub(in crate::broker) fn submit_op(&mut self, peer: &Bytes, corr: u64, job: Job) -> bool {
        let accepted = self.ops.as_ref().is_some_and(|ops| ops.submit(job));
        if !accepted {
            self.reply_err(
                peer,
                corr,
                "busy: too many operator requests under way; try again",
            );
        }
        accepted
    }
}

impl DeadLettersJob {
    /// On the ops thread: the list, as JSON.
    pub(in crate::broker) fn run(self, reader: &Reader) -> Result<Bytes, String> {
        let list = reader
            .dead_letters(self.group.as_deref(), self.limit, MAX_REPLY_BYTES, false)
            .map_err(|e| format!("reading dead letters failed: {e}"))?;
        Ok(Bytes::from(serde_json::to_vec(&list).unwrap_or_default()))
    }
}
