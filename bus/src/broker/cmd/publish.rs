//! `PUB`: a batch of events, answered with `PUBACK` once they are durable.

use bytes::Bytes;
use tix_bus_client::protocol::WireEvent;

use crate::broker::core::{Core, Token, hex};
use crate::store::Write;

impl Core {
    pub(in crate::broker) fn on_publish(&mut self, peer: Bytes, corr: u64, events: Vec<WireEvent>) {
        let size: usize = events.iter().map(|e| e.payload.len()).sum();
        if let Some(e) = events
            .iter()
            .find(|e| e.payload.len() > self.cfg.max_event_bytes)
        {
            let message = format!(
                "event {} is {} bytes; the limit is {}",
                String::from_utf8_lossy(&e.id),
                e.payload.len(),
                self.cfg.max_event_bytes
            );
            tracing::warn!(peer = %hex(&peer), %message, "refused an oversized event");
            return self.reply_err(&peer, corr, &message);
        }
        tracing::trace!(n = events.len(), size, "publish");
        let n = events.len() as u32;
        self.submit(
            vec![Write::Publish(events)],
            Token::PubAck { peer, corr, n },
        );
    }
}
