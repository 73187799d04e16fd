//! What callers ask: every command queued while the driver was busy, packed into as few
//! messages as possible.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{Cmd, Driver, Reply, Settle, Settles, Sub, Waiter};
use crate::client::Error;
use crate::protocol;

impl Driver {
    /// One `PUB` of `events` (id, subject, payload frames each), answered to `done`.
    async fn send_publish(&mut self, events: Vec<Bytes>, done: Vec<Reply<()>>) {
        let corr = self.corr(done.len());
        self.waiting.insert(corr, Waiter::Publish(done));
        let mut frames = Vec::with_capacity(2 + events.len());
        frames.push(Bytes::from_static(b"PUB"));
        frames.push(protocol::u64_frame(corr));
        frames.extend(events);
        self.send(frames).await;
    }

    /// Handles a batch of commands; returns true when the client was closed.
    pub(super) async fn on_commands(&mut self, batch: Vec<Cmd>) -> bool {
        let ready = self.ready();
        let endpoint = self.opts.endpoint.clone();
        let down = || Error::Disconnected(endpoint.clone());
        let mut publish: Vec<Bytes> = Vec::new();
        let mut publish_done: Vec<Reply<()>> = Vec::new();
        let mut publish_bytes = 0usize;
        let mut settles: HashMap<(Arc<str>, Settle), Settles> = HashMap::new();
        let mut closed = None;
        for cmd in batch {
            match cmd {
                Cmd::Publish {
                    id,
                    subject,
                    payload,
                    done,
                } => {
                    if !ready {
                        let _ = done.send(Err(down()));
                        continue;
                    }
                    // Every frame counts at least 64 bytes at the broker.
                    let size = [&id, &subject, &payload]
                        .iter()
                        .map(|f| f.len().max(64))
                        .sum::<usize>();
                    if !publish_done.is_empty()
                        && publish_bytes + size > self.opts.max_publish_bytes
                    {
                        self.send_publish(
                            std::mem::take(&mut publish),
                            std::mem::take(&mut publish_done),
                        )
                        .await;
                        publish_bytes = 0;
                    }
                    publish.extend([id, subject, payload]);
                    publish_done.push(done);
                    publish_bytes += size;
                }
                Cmd::Settle {
                    kind,
                    group,
                    seq,
                    done,
                } => {
                    if !ready {
                        if let Some(done) = done {
                            let _ = done.send(Err(down()));
                        }
                        continue;
                    }
                    let entry = settles.entry((group, kind)).or_default();
                    entry.0.push(seq);
                    entry.1.extend(done);
                }
                Cmd::Request {
                    command,
                    body,
                    done,
                } => {
                    if !ready {
                        let _ = done.send(Err(down()));
                        continue;
                    }
                    let corr = self.corr(1);
                    self.waiting.insert(corr, Waiter::Request(done));
                    let mut frames = vec![Bytes::from_static(command), protocol::u64_frame(corr)];
                    if !body.is_empty() {
                        frames.push(body);
                    }
                    self.send(frames).await;
                }
                Cmd::Subscribe {
                    opts,
                    deliveries,
                    done,
                } => {
                    let group: Arc<str> = Arc::from(opts.group.as_str());
                    if self.subs.contains_key(&group) {
                        let _ = done.send(Err(Error::Invalid(format!(
                            "this client is already subscribed to group {group}"
                        ))));
                        continue;
                    }
                    self.subs.insert(
                        group,
                        Sub {
                            opts: opts.clone(),
                            deliveries,
                        },
                    );
                    if ready {
                        self.send_subscribe(opts, Some(done)).await;
                    } else {
                        // Remembered: the driver joins the group as soon as it connects.
                        let _ = done.send(Ok(()));
                    }
                }
                Cmd::Unsubscribe { group } => {
                    if self.subs.remove(&group).is_some() && ready {
                        self.send_unsubscribe(&group).await;
                    }
                }
                Cmd::Close { done } => closed = Some(done),
            }
        }
        if !publish_done.is_empty() {
            self.send_publish(publish, publish_done).await;
        }
        for ((group, kind), (seqs, dones)) in settles {
            // Nobody waits for these (`ack_nowait`, `nak`, `touch`): correlation id 0 asks the
            // broker for no `OK`, which would cost both sides a message for nothing.
            let corr = if dones.is_empty() {
                protocol::NO_REPLY
            } else {
                let corr = self.corr(1);
                self.waiting.insert(corr, Waiter::Settle(dones));
                corr
            };
            self.send(vec![
                Bytes::from_static(kind.command()),
                protocol::u64_frame(corr),
                Bytes::from(group.to_string()),
                protocol::u64s_frame(&seqs),
            ])
            .await;
        }
        if let Some(done) = closed {
            if self.ready() {
                self.send(vec![Bytes::from_static(b"BYE")]).await;
            }
            self.subs.clear();
            let _ = done.send(());
            return true;
        }
        false
    }
}
