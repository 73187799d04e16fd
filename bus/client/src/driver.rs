//! The connection driver behind every [`Client`](crate::Client): one task that owns the
//! DEALER socket. It batches whatever callers queued while it was busy into one message
//! (many publishes become one `PUB`, many acks one `ACK`), so throughput is not bound by
//! round trips. It sends heartbeats, notices a silent broker, reconnects with backoff and
//! resubscribes on its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::client::{ClientOptions, Delivery, Error, Result};
use crate::protocol::{self, Hello, HelloReply, SubscribeOptions};

/// A caller waiting for the broker's answer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// Positions acked (or naked) together, and who waits for the broker's confirmation.
type Settles = (Vec<u64>, Vec<Reply<()>>);

/// What a handle asks of the driver.
#[derive(Debug)]
pub(crate) enum Cmd {
    Publish {
        id: Bytes,
        subject: Bytes,
        payload: Bytes,
        done: Reply<()>,
    },
    Request {
        command: &'static [u8],
        body: Bytes,
        done: Reply<Bytes>,
    },
    Subscribe {
        opts: SubscribeOptions,
        deliveries: mpsc::UnboundedSender<Delivery>,
        done: Reply<()>,
    },
    Unsubscribe {
        group: Arc<str>,
    },
    Settle {
        nak: bool,
        group: Arc<str>,
        seq: u64,
        done: Option<Reply<()>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// What an outstanding correlation id is waiting for.
enum Waiter {
    Publish(Vec<Reply<()>>),
    Settle(Vec<Reply<()>>),
    Request(Reply<Bytes>),
    Subscribe(Arc<str>, Option<Reply<()>>),
    Hello,
}

impl Waiter {
    fn fail(self, e: &Error) {
        match self {
            Waiter::Publish(v) | Waiter::Settle(v) => {
                for r in v {
                    let _ = r.send(Err(e.clone()));
                }
            }
            Waiter::Request(r) => {
                let _ = r.send(Err(e.clone()));
            }
            Waiter::Subscribe(_, Some(r)) => {
                let _ = r.send(Err(e.clone()));
            }
            Waiter::Subscribe(_, None) | Waiter::Hello => {}
        }
    }

    fn abandoned(&self) -> bool {
        match self {
            Waiter::Publish(v) | Waiter::Settle(v) => v.iter().all(|r| r.is_closed()),
            Waiter::Request(r) => r.is_closed(),
            Waiter::Subscribe(..) | Waiter::Hello => false,
        }
    }
}

struct Sub {
    opts: SubscribeOptions,
    deliveries: mpsc::UnboundedSender<Delivery>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);

enum Link {
    Down {
        retry_at: Instant,
    },
    Connecting(tokio::task::JoinHandle<zeromq::ZmqResult<zeromq::DealerSocket>>),
    Up {
        send: zeromq::DealerSendHalf,
        recv: zeromq::DealerRecvHalf,
        last_heard: Instant,
        hello_done: bool,
    },
}

type ConnectResult =
    std::result::Result<zeromq::ZmqResult<zeromq::DealerSocket>, tokio::task::JoinError>;

enum LinkEvent {
    Connected(ConnectResult),
    Message(Option<ZmqMessage>),
}

pub(crate) struct Driver {
    opts: Arc<ClientOptions>,
    /// Weak, so the driver ends once every handle, subscription and delivery is gone.
    cmds: mpsc::WeakUnboundedSender<Cmd>,
    connected: watch::Sender<bool>,
    subs: HashMap<Arc<str>, Sub>,
    waiting: HashMap<u64, Waiter>,
    next_corr: u64,
    link: Link,
    /// Pause before the next connection attempt; doubles up to `max_backoff`.
    backoff: Duration,
    max_event_bytes: Arc<AtomicUsize>,
}

impl Driver {
    pub(crate) fn new(
        opts: Arc<ClientOptions>,
        cmds: mpsc::WeakUnboundedSender<Cmd>,
        connected: watch::Sender<bool>,
        max_event_bytes: Arc<AtomicUsize>,
    ) -> Self {
        Driver {
            opts,
            cmds,
            connected,
            subs: HashMap::new(),
            waiting: HashMap::new(),
            next_corr: 1,
            link: Link::Down {
                retry_at: Instant::now(),
            },
            backoff: FIRST_BACKOFF,
            max_event_bytes,
        }
    }

    fn corr(&mut self, n: usize) -> u64 {
        let c = self.next_corr;
        self.next_corr += n.max(1) as u64;
        c
    }

    fn ready(&self) -> bool {
        matches!(
            self.link,
            Link::Up {
                hello_done: true,
                ..
            }
        )
    }

    pub(crate) async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let mut ticker = tokio::time::interval(self.opts.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.advance_link().await;
            let link_event = async {
                match &mut self.link {
                    // Receiving from the socket is cancel-safe: a message is only taken
                    // from its queue when the future completes.
                    Link::Up { recv, .. } => LinkEvent::Message(recv.recv().await.ok()),
                    Link::Connecting(h) => LinkEvent::Connected(h.await),
                    Link::Down { .. } => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                event = link_event => match event {
                    LinkEvent::Connected(result) => self.on_connect_result(result).await,
                    LinkEvent::Message(Some(m)) => self.on_incoming(m.into_vec()).await,
                    LinkEvent::Message(None) => self.link_lost("the connection closed").await,
                },
                cmd = cmds.recv() => {
                    let Some(cmd) = cmd else { break };
                    let mut batch = vec![cmd];
                    while batch.len() < self.opts.max_batch {
                        match cmds.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    if self.on_commands(batch).await {
                        break;
                    }
                }
                _ = ticker.tick() => self.on_tick().await,
            }
        }
        self.shutdown_link();
    }

    /// Starts a connection attempt once the backoff has passed.
    async fn advance_link(&mut self) {
        if let Link::Down { retry_at, .. } = self.link
            && Instant::now() >= retry_at
        {
            let endpoint = self.opts.endpoint.clone();
            let handle = tokio::spawn(async move {
                let mut o = protocol::socket_options();
                o.connect_timeout(Duration::from_millis(500));
                let mut socket = zeromq::DealerSocket::with_options(o);
                socket.connect(&endpoint).await?;
                Ok(socket)
            });
            self.link = Link::Connecting(handle);
        }
    }

    async fn on_connect_result(&mut self, result: ConnectResult) {
        match result {
            Ok(Ok(socket)) => {
                let (send, recv) = socket.split();
                self.link = Link::Up {
                    send,
                    recv,
                    last_heard: Instant::now(),
                    hello_done: false,
                };
                self.send_hello().await;
            }
            Ok(Err(e)) => self.schedule_retry(&e.to_string()),
            Err(e) => self.schedule_retry(&e.to_string()),
        }
    }

    fn schedule_retry(&mut self, why: &str) {
        let backoff = self.backoff;
        tracing::debug!(endpoint = %self.opts.endpoint, why, ?backoff, "bus connect failed; retrying");
        self.backoff = (backoff * 2).min(self.opts.max_backoff);
        self.link = Link::Down {
            retry_at: Instant::now() + backoff,
        };
    }

    async fn send_hello(&mut self) {
        let corr = self.corr(1);
        self.waiting.insert(corr, Waiter::Hello);
        let hello = Hello {
            client: self.opts.name.clone(),
            heartbeat_ms: self.opts.heartbeat.as_millis() as u64,
        };
        let body = serde_json::to_vec(&hello).unwrap_or_default();
        self.send(vec![
            Bytes::from_static(b"HELLO"),
            protocol::u64_frame(corr),
            Bytes::from(body),
        ])
        .await;
    }

    async fn send(&mut self, frames: Vec<Bytes>) {
        let Link::Up { send, .. } = &mut self.link else {
            return;
        };
        let m = ZmqMessage::try_from(frames).expect("never empty");
        if let Err(e) = send.send(m).await {
            self.link_lost(&e.to_string()).await;
        }
    }

    /// Fails everything outstanding and starts over.
    async fn link_lost(&mut self, why: &str) {
        if matches!(self.link, Link::Up { .. }) {
            tracing::warn!(endpoint = %self.opts.endpoint, why, "lost the bus; reconnecting");
        }
        self.shutdown_link();
        self.connected.send_replace(false);
        let err = Error::Disconnected(self.opts.endpoint.clone());
        for (_, w) in self.waiting.drain() {
            w.fail(&err);
        }
        self.link = Link::Down {
            retry_at: Instant::now() + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.opts.max_backoff);
    }

    fn shutdown_link(&mut self) {
        if let Link::Connecting(h) = &self.link {
            h.abort();
        }
    }

    async fn on_tick(&mut self) {
        self.waiting.retain(|_, w| !w.abandoned());
        let silent_for = match &self.link {
            Link::Up { last_heard, .. } => last_heard.elapsed(),
            _ => return,
        };
        if silent_for > self.opts.heartbeat * 3 {
            self.link_lost("the broker stopped answering heartbeats")
                .await;
            return;
        }
        self.send(vec![Bytes::from_static(b"PING")]).await;
    }

    async fn on_incoming(&mut self, frames: Vec<Bytes>) {
        if let Link::Up { last_heard, .. } = &mut self.link {
            *last_heard = Instant::now();
        }
        let Some(kind) = frames.first() else { return };
        let corr = frames
            .get(1)
            .and_then(|f| protocol::read_u64(f))
            .unwrap_or(0);
        match kind.as_ref() {
            b"PONG" => {
                let known = frames.get(1).is_some_and(|f| &f[..] == b"1");
                let hello_done = matches!(
                    self.link,
                    Link::Up {
                        hello_done: true,
                        ..
                    }
                );
                if !known && hello_done {
                    // The broker restarted behind an unbroken connection: start a new session.
                    tracing::info!("the bus forgot this session; saying hello again");
                    self.connected.send_replace(false);
                    if let Link::Up { hello_done, .. } = &mut self.link {
                        *hello_done = false;
                    }
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
                Some(Waiter::Hello) => {
                    if let Some(w) = frames
                        .get(2)
                        .and_then(|b| serde_json::from_slice::<HelloReply>(b).ok())
                    {
                        self.max_event_bytes
                            .store(w.max_event_bytes, Ordering::Relaxed);
                    }
                    self.on_hello_ok().await
                }
                None => {}
            },
            b"ERR" => {
                let message = frames
                    .get(2)
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                match self.waiting.remove(&corr) {
                    Some(Waiter::Hello) => {
                        self.link_lost(&format!("hello refused: {message}")).await
                    }
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
                    None => tracing::warn!(%message, "the bus reported an error"),
                }
            }
            _ => tracing::warn!("unexpected message from the bus"),
        }
    }

    async fn on_hello_ok(&mut self) {
        if let Link::Up { hello_done, .. } = &mut self.link {
            *hello_done = true;
        }
        self.backoff = FIRST_BACKOFF;
        let subs: Vec<SubscribeOptions> = self.subs.values().map(|s| s.opts.clone()).collect();
        for opts in subs {
            self.send_subscribe(opts, None).await;
        }
        self.connected.send_replace(true);
        tracing::info!(endpoint = %self.opts.endpoint, "connected to the bus");
    }

    async fn send_subscribe(&mut self, opts: SubscribeOptions, done: Option<Reply<()>>) {
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

    async fn on_deliveries(&mut self, frames: &[Bytes]) {
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
            let corr = self.corr(1);
            self.send(vec![
                Bytes::from_static(b"UNSUB"),
                protocol::u64_frame(corr),
                Bytes::from(group.to_string()),
            ])
            .await;
        }
    }

    /// Handles a batch of commands; returns true when the client was closed.
    async fn on_commands(&mut self, batch: Vec<Cmd>) -> bool {
        let ready = self.ready();
        let endpoint = self.opts.endpoint.clone();
        let down = || Error::Disconnected(endpoint.clone());
        let mut publish: Vec<Bytes> = Vec::new();
        let mut publish_done: Vec<Reply<()>> = Vec::new();
        let mut settles: HashMap<(Arc<str>, bool), Settles> = HashMap::new();
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
                    publish.extend([id, subject, payload]);
                    publish_done.push(done);
                }
                Cmd::Settle {
                    nak,
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
                    let entry = settles.entry((group, nak)).or_default();
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
                        let corr = self.corr(1);
                        self.send(vec![
                            Bytes::from_static(b"UNSUB"),
                            protocol::u64_frame(corr),
                            Bytes::from(group.to_string()),
                        ])
                        .await;
                    }
                }
                Cmd::Close { done } => closed = Some(done),
            }
        }
        if !publish_done.is_empty() {
            let corr = self.corr(publish_done.len());
            self.waiting.insert(corr, Waiter::Publish(publish_done));
            let mut frames = Vec::with_capacity(2 + publish.len());
            frames.push(Bytes::from_static(b"PUB"));
            frames.push(protocol::u64_frame(corr));
            frames.extend(publish);
            self.send(frames).await;
        }
        for ((group, nak), (seqs, dones)) in settles {
            let corr = self.corr(1);
            self.waiting.insert(corr, Waiter::Settle(dones));
            self.send(vec![
                Bytes::from_static(if nak { b"NAK" } else { b"ACK" }),
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
