//! What the broker sends: answers to pending requests, deliveries, errors, pongs.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{Driver, FIRST_BACKOFF, Handshake, Link, Reply, Waiter};
use crate::client::{Delivery, Error};
use crate::protocol::auth::Direction;
use crate::protocol::{self, SubscribeOptions};

impl Driver {
    pub(super) async fn on_incoming(&mut self, mut frames: Vec<Bytes>) {
        let Link::Up {
            last_heard,
            handshake,
            sealing,
            ..
        } = &mut self.link
        else {
            return;
        };
        *last_heard = Instant::now();
        if !matches!(handshake, Handshake::Done) {
            return self.on_handshake(frames).await;
        }
        if let Some(s) = sealing {
            // Injected, replayed, reordered or not from the broker: this connection can no
            // longer be trusted. A new one gets a new session.
            if let Err(e) = s.mac.open(Direction::ToClient, s.received, &mut frames) {
                let why = format!("a message from the bus failed its check ({e})");
                return self.link_lost(&why).await;
            }
            s.received += 1;
        }
        let Some(kind) = frames.first() else { return };
        let corr = frames
            .get(1)
            .and_then(|f| protocol::read_u64(f))
            .unwrap_or(0);
        match kind.as_ref() {
            b"PONG" => {
                let known = frames.get(1).is_some_and(|f| &f[..] == b"1");
                if !known {
                    // The broker restarted behind an unbroken connection (a broker without
                    // authentication: one with it refuses an unknown peer's ping instead):
                    // start a new session.
                    tracing::info!("the bus forgot this session; saying hello again");
                    self.connected.send_replace(false);
                    self.send_hello().await;
                }
            }
            b"MSG" => self.on_deliveries(&frames).await,
            b"PUBACK" | b"OK" => match self.waiting.remove(&corr) {
                Some(Waiter::Publish(v)) | Some(Waiter::Settle(v)) => {
                    for r in v {
                        let _ = r.send(Ok(()));
                    }
                }
                Some(Waiter::Request(r)) => {
                    let _ = r.send(Ok(frames.get(2).cloned().unwrap_or_default()));
                }
                Some(Waiter::Subscribe(_, Some(r))) => {
                    let _ = r.send(Ok(()));
                }
                Some(Waiter::Subscribe(_, None)) => {}
                None => {}
            },
            b"ERR" => {
                let message = frames
                    .get(2)
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                match self.waiting.remove(&corr) {
                    Some(Waiter::Subscribe(group, reply)) => {
                        // Refused: forget it, so it is not sent again after a reconnection
                        // (its subscription ends, which tells a consumer loop to retry).
                        tracing::warn!(%group, %message, "the bus refused a subscription");
                        self.subs.remove(&group);
                        if let Some(r) = reply {
                            let _ = r.send(Err(Error::Refused(message)));
                        }
                    }
                    Some(w) => w.fail(&Error::Refused(message)),
                    // A settle nobody waits for, refused (a group gone, the broker stopping):
                    // the event comes back, which is all a refusal could change.
                    None if corr == protocol::NO_REPLY => {
                        tracing::debug!(%message, "the bus refused a settle");
                    }
                    None => tracing::warn!(%message, "the bus reported an error"),
                }
            }
            _ => tracing::warn!("unexpected message from the bus"),
        }
    }

    pub(super) async fn on_hello_ok(&mut self) {
        self.backoff = FIRST_BACKOFF;
        let subs: Vec<SubscribeOptions> = self.subs.values().map(|s| s.opts.clone()).collect();
        for opts in subs {
            self.send_subscribe(opts, None).await;
        }
        self.connected.send_replace(true);
        tracing::info!(endpoint = %self.opts.endpoint, "connected to the bus");
    }

    pub(super) async fn send_subscribe(&mut self, opts: SubscribeOptions, done: Option<Reply<()>>) {
        let corr = self.corr(1);
        let group: Arc<str> = Arc::from(opts.group.as_str());
        self.waiting.insert(corr, Waiter::Subscribe(group, done));
        let body = serde_json::to_vec(&opts).unwrap_or_default();
        self.send(vec![
            Bytes::from_static(b"SUB"),
            protocol::u64_frame(corr),
            Bytes::from(body),
        ])
        .await;
    }

    pub(super) async fn on_deliveries(&mut self, frames: &[Bytes]) {
        let Some(group) = frames.get(1) else { return };
        let Some((group, sub)) = std::str::from_utf8(group)
            .ok()
            .and_then(|g| self.subs.get_key_value(g))
        else {
            // A delivery for a group we left: it will come back to another member.
            return;
        };
        let group = group.clone();
        let Some(cmds) = self.cmds.upgrade() else {
            return;
        };
        let mut abandoned = Vec::new();
        for ev in frames[2..].chunks_exact(4) {
            let Some((seq, deliveries)) = protocol::read_delivery_header(&ev[0]) else {
                continue;
            };
            let delivery = Delivery {
                group: group.clone(),
                seq,
                deliveries,
                id: String::from_utf8_lossy(&ev[1]).into_owned(),
                subject: String::from_utf8_lossy(&ev[2]).into_owned(),
                payload: ev[3].clone(),
                cmds: cmds.clone(),
            };
            if sub.deliveries.send(delivery).is_err() {
                abandoned.push(seq);
            }
        }
        if !abandoned.is_empty() {
            // Nobody reads this subscription any more: give its events back and leave.
            self.subs.remove(&group);
            let corr = self.corr(1);
            self.send(vec![
                Bytes::from_static(b"NAK"),
                protocol::u64_frame(corr),
                Bytes::from(group.to_string()),
                protocol::u64s_frame(&abandoned),
            ])
            .await;
            self.send_unsubscribe(&group).await;
        }
    }

    /// Leaves a group on the broker (the answer needs no waiter).
    pub(super) async fn send_unsubscribe(&mut self, group: &str) {
        let corr = self.corr(1);
        self.send(vec![
            Bytes::from_static(b"UNSUB"),
            protocol::u64_frame(corr),
            Bytes::from(group.to_string()),
        ])
        .await;
    }
}
