//! `HELLO`: open a session and tell the client the heartbeat and the event size limit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tix_bus_client::protocol::{Hello, HelloReply};

use crate::broker::core::{Core, Session, hex};

impl Core {
    pub(in crate::broker) fn on_hello(&mut self, peer: Bytes, corr: u64, hello: Hello) {
        let heartbeat = Duration::from_millis(hello.heartbeat_ms.clamp(50, 60_000));
        // A peer that says hello again starts afresh: whatever it held goes back.
        self.drop_session(&peer);
        self.sessions.insert(
            peer.clone(),
            Session {
                last_seen: Instant::now(),
                timeout: heartbeat * 3,
                groups: Vec::new(),
            },
        );
        tracing::info!(peer = %hex(&peer), client = %hello.client, "session opened");
        let reply = HelloReply {
            heartbeat_ms: u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX),
            max_event_bytes: self.cfg.max_event_bytes,
        };
        let body = serde_json::to_vec(&reply).expect("a reply always serialises");
        self.reply_ok(&peer, corr, Bytes::from(body));
    }
}
