//! `HELLO` and `AUTH`: open a session and tell the client the heartbeat and the event size
//! limit — at once without authentication, after the challenge and its proof with it
//! (`tix_bus_client::protocol::auth` has the frames).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tix_bus_client::protocol::auth::{self, PROTOCOL_VERSION, SessionMac};
use tix_bus_client::protocol::{Hello, HelloReply, u64_frame};

use crate::broker::auth::{Handshake, MAX_HANDSHAKES, sealing_for};
use crate::broker::core::{Core, Session, hex};
use crate::policy::Permissions;

impl Core {
    pub(in crate::broker) fn on_hello(
        &mut self,
        peer: Bytes,
        corr: u64,
        hello: Hello,
        nonce: Option<Bytes>,
    ) {
        if self.auth.policy.is_none() {
            // --insecure-no-auth: whoever says hello is whoever it says.
            return self.open_session(peer, corr, &hello.client, hello.heartbeat_ms, None);
        }
        if self.sessions.contains_key(&peer) {
            // A new session needs a new connection (and a new pair of nonces).
            self.drop_session(&peer);
            return self.reply_err(&peer, corr, "already authenticated: the session is closed");
        }
        if self.auth.is_waiting(&peer) {
            return self.reply_err(&peer, corr, "the last attempt's answer is still pending");
        }
        if nonce.is_some() && hello.protocol != PROTOCOL_VERSION {
            // A keyed client of another protocol version: its seals would not match ours.
            let why = format!(
                "protocol {} is not spoken here (this broker speaks protocol {PROTOCOL_VERSION}): upgrade the client and the broker together",
                hello.protocol
            );
            tracing::warn!(peer = %hex(&peer), addr = self.auth.addr(&peer), client = %hello.client, %why, "authentication failed");
            return self.reply_err(&peer, corr, &format!("authentication failed: {why}"));
        }
        let Some(client_nonce) = nonce.filter(|_| hello.protocol == PROTOCOL_VERSION) else {
            let why = format!(
                "the client does not authenticate (protocol {})",
                hello.protocol
            );
            tracing::warn!(peer = %hex(&peer), addr = self.auth.addr(&peer), client = %hello.client, %why, "authentication failed");
            return self.reply_err(
                &peer,
                corr,
                "authentication required: this client speaks a protocol without keys; upgrade it and give it its key",
            );
        };
        if self.auth.handshakes.len() >= MAX_HANDSHAKES && !self.auth.handshakes.contains_key(&peer)
        {
            tracing::warn!(peer = %hex(&peer), addr = self.auth.addr(&peer), client = %hello.client, "too many handshakes under way; refused one");
            return self.reply_err(&peer, corr, "too many handshakes under way; try again");
        }
        let broker_nonce = auth::nonce();
        self.auth.handshakes.insert(
            peer.clone(),
            Handshake {
                client: hello.client,
                heartbeat_ms: hello.heartbeat_ms,
                client_nonce,
                broker_nonce,
                started: Instant::now(),
            },
        );
        self.send(vec![
            peer,
            Bytes::from_static(b"CHALLENGE"),
            u64_frame(corr),
            Bytes::copy_from_slice(&broker_nonce),
        ]);
    }

    pub(in crate::broker) fn on_auth(&mut self, peer: Bytes, corr: u64, proof: Bytes) {
        let Some(policy) = self.auth.policy.clone() else {
            return self.reply_err(&peer, corr, "authentication is off on this broker");
        };
        let Some(h) = self.auth.handshakes.remove(&peer) else {
            return self.auth_failed(&peer, corr, "?", "AUTH without a HELLO before it");
        };
        let perms = policy.client(&h.client).cloned();
        let key = perms.as_ref().and_then(|p| {
            p.keys.iter().find(|k| {
                auth::verify_hello_proof(
                    k,
                    &h.broker_nonce,
                    &h.client_nonce,
                    &h.client,
                    PROTOCOL_VERSION,
                    &proof,
                )
            })
        });
        let (Some(perms), Some(key)) = (perms.clone(), key) else {
            let why = if perms.is_none() {
                "no such client in the policy"
            } else {
                "wrong key"
            };
            return self.auth_failed(&peer, corr, &h.client, why);
        };
        let mac = SessionMac::derive(key, &h.broker_nonce, &h.client_nonce, &h.client);
        let sealing = sealing_for(mac, key.fingerprint());
        self.open_session(
            peer,
            corr,
            &h.client,
            h.heartbeat_ms,
            Some((perms, sealing)),
        );
    }

    fn open_session(
        &mut self,
        peer: Bytes,
        corr: u64,
        client: &str,
        heartbeat_ms: u64,
        authenticated: Option<(Arc<Permissions>, crate::broker::auth::Sealing)>,
    ) {
        let heartbeat = Duration::from_millis(heartbeat_ms.clamp(50, 60_000));
        // A peer that says hello again starts afresh: whatever it held goes back.
        self.drop_session(&peer);
        let (perms, sealing) = match authenticated {
            Some((p, s)) => (Some(p), Some(s)),
            None => (None, None),
        };
        self.sessions.insert(
            peer.clone(),
            Session {
                last_seen: Instant::now(),
                timeout: heartbeat * 3,
                groups: Vec::new(),
                client: Arc::from(client),
                perms,
                sealing,
            },
        );
        tracing::info!(peer = %hex(&peer), addr = self.auth.addr(&peer), %client, "session opened");
        let reply = HelloReply {
            heartbeat_ms: u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX),
            max_event_bytes: self.cfg.max_event_bytes,
        };
        let body = serde_json::to_vec(&reply).expect("a reply always serialises");
        // Sealed as the session's first message when authenticated: the client's proof
        // that this is the broker that knows its key.
        self.reply_ok(&peer, corr, Bytes::from(body));
    }
}
