//! Opening a session on a new connection: `HELLO`, then — with a key — the broker's
//! challenge, the proof, and the broker's sealed `OK` (see [`crate::protocol::auth`]).
//! Whatever goes wrong ends the connection; the driver tries again with backoff.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{Driver, Handshake, Link, Sealing};
use crate::protocol::auth::{self, Direction, PROTOCOL_VERSION, SessionMac};
use crate::protocol::{self, Hello, HelloReply};

impl Driver {
    /// Starts a handshake on the current connection.
    pub(super) async fn send_hello(&mut self) {
        let nonce = auth::nonce();
        let Link::Up {
            handshake, sealing, ..
        } = &mut self.link
        else {
            return;
        };
        *handshake = Handshake::Hello { nonce };
        *sealing = None;
        let keyed = self.opts.key.is_some();
        let hello = Hello {
            client: self.opts.name.clone(),
            heartbeat_ms: self.opts.heartbeat.as_millis() as u64,
            protocol: if keyed { PROTOCOL_VERSION } else { 1 },
        };
        let corr = self.corr(1);
        let mut frames = vec![
            Bytes::from_static(b"HELLO"),
            protocol::u64_frame(corr),
            Bytes::from(serde_json::to_vec(&hello).unwrap_or_default()),
        ];
        if keyed {
            frames.push(Bytes::copy_from_slice(&nonce));
        }
        self.send(frames).await;
    }

    /// A message while the handshake is under way.
    pub(super) async fn on_handshake(&mut self, mut frames: Vec<Bytes>) {
        enum Step {
            Hello([u8; auth::NONCE_LEN]),
            Auth(Box<SessionMac>),
        }
        let step = match &self.link {
            Link::Up {
                handshake: Handshake::Hello { nonce },
                ..
            } => Step::Hello(*nonce),
            Link::Up {
                handshake: Handshake::Auth { mac },
                ..
            } => Step::Auth(mac.clone()),
            _ => return,
        };
        let kind = frames.first().cloned().unwrap_or_default();
        match (step, kind.as_ref()) {
            (_, b"ERR") => {
                let why = frames
                    .get(2)
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                self.refuse(&why).await;
            }
            (Step::Hello(nonce), b"CHALLENGE") => {
                let Some(key) = self.opts.key.clone() else {
                    return self
                        .refuse("the bus requires authentication: give this client its key (TIX_BUS_KEY or TIX_BUS_KEY_FILE)")
                        .await;
                };
                let (corr, broker_nonce) = match (frames.get(1), frames.get(2)) {
                    (Some(c), Some(n)) if n.len() == auth::NONCE_LEN => (c.clone(), n.clone()),
                    _ => return self.link_lost("a malformed challenge from the bus").await,
                };
                let name = &self.opts.name;
                let proof = auth::hello_proof(&key, &broker_nonce, &nonce, name, PROTOCOL_VERSION);
                let mac = SessionMac::derive(&key, &broker_nonce, &nonce, name);
                if let Link::Up { handshake, .. } = &mut self.link {
                    *handshake = Handshake::Auth { mac: Box::new(mac) };
                }
                self.send(vec![
                    Bytes::from_static(b"AUTH"),
                    corr,
                    Bytes::copy_from_slice(&proof),
                ])
                .await;
            }
            (Step::Hello(_), b"OK") => {
                if self.opts.key.is_some() {
                    // Whoever answers without a challenge may not be the broker at all.
                    return self
                        .refuse("the bus did not ask this client to authenticate (is it running with --insecure-no-auth?); a client with a key talks only to a broker that checks it")
                        .await;
                }
                self.hello_accepted(&frames).await;
            }
            (Step::Auth(mac), b"OK") => {
                if mac.open(Direction::ToClient, 0, &mut frames).is_err() {
                    return self
                        .refuse("the bus's answer does not prove it knows this client's key")
                        .await;
                }
                if let Link::Up { sealing, .. } = &mut self.link {
                    *sealing = Some(Box::new(Sealing {
                        mac: *mac,
                        sent: 0,
                        received: 1,
                    }));
                }
                self.hello_accepted(&frames).await;
            }
            // A pong or a late answer from before: nothing to do until the handshake ends.
            _ => {}
        }
    }

    async fn hello_accepted(&mut self, frames: &[Bytes]) {
        if let Some(w) = frames
            .get(2)
            .and_then(|b| serde_json::from_slice::<HelloReply>(b).ok())
        {
            self.max_event_bytes
                .store(w.max_event_bytes, Ordering::Relaxed);
        }
        if let Link::Up { handshake, .. } = &mut self.link {
            *handshake = Handshake::Done;
        }
        self.refused.send_replace(None);
        self.on_hello_ok().await;
    }

    /// The handshake failed: say why to whoever waits, and start over later.
    async fn refuse(&mut self, why: &str) {
        self.refused.send_replace(Some(why.to_string()));
        self.link_lost(&format!("the bus refused this client: {why}"))
            .await;
    }
}
