//! The connection driver behind every [`Client`](crate::Client): one task that owns the
//! DEALER socket. It batches whatever callers queued while it was busy into one message
//! (many publishes become one `PUB`, many acks one `ACK`), so throughput is not bound by
//! round trips. It sends heartbeats, notices a silent broker, reconnects with backoff and
//! resubscribes on its own. It authenticates each connection and seals every message
//! after that (`handshake.rs`); a message from the broker that does not open is a broken
//! connection: the driver drops it and starts over.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::client::{ClientOptions, Delivery, Error, Result};
use crate::protocol::auth::{Direction, NONCE_LEN, SessionMac};
use crate::protocol::{self, SubscribeOptions};

mod handshake;
mod incoming;
mod outgoing;

/// A caller waiting for the broker's answer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// Positions acked (or naked, or touched) together, and who waits for the broker's
/// confirmation.
type Settles = (Vec<u64>, Vec<Reply<()>>);

/// What a member tells the broker about events it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Settle {
    /// Done: never deliver it again (`ACK`).
    Ack,
    /// Hand it back for redelivery now (`NAK`).
    Nak,
    /// Still working on it: restart its ack wait, counting no delivery (`TOUCH`).
    Touch,
}

impl Settle {
    pub(crate) fn command(self) -> &'static [u8] {
        match self {
            Settle::Ack => b"ACK",
            Settle::Nak => b"NAK",
            Settle::Touch => b"TOUCH",
        }
    }
}

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
        kind: Settle,
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
            Waiter::Subscribe(_, None) => {}
        }
    }

    fn abandoned(&self) -> bool {
        match self {
            Waiter::Publish(v) | Waiter::Settle(v) => v.iter().all(|r| r.is_closed()),
            Waiter::Request(r) => r.is_closed(),
            Waiter::Subscribe(..) => false,
        }
    }
}

struct Sub {
    opts: SubscribeOptions,
    deliveries: mpsc::UnboundedSender<Delivery>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// How long a handshake may take, however short the heartbeat: the broker slows its answer
/// to a client that failed before (up to 5 s).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a connection's handshake is.
enum Handshake {
    /// `HELLO` sent with this nonce; waiting for `CHALLENGE` (or, without a key, `OK`).
    Hello { nonce: [u8; NONCE_LEN] },
    /// `AUTH` sent; waiting for the broker's sealed `OK`.
    Auth { mac: Box<SessionMac> },
    /// The session is open.
    Done,
}

/// The seal of an authenticated session: its key and each direction's next number.
struct Sealing {
    mac: SessionMac,
    sent: u64,
    received: u64,
}

enum Link {
    Down {
        retry_at: Instant,
    },
    Connecting(tokio::task::JoinHandle<zeromq::ZmqResult<zeromq::DealerSocket>>),
    Up {
        send: zeromq::DealerSendHalf,
        recv: zeromq::DealerRecvHalf,
        last_heard: Instant,
        handshake: Handshake,
        /// Set once an authenticated handshake succeeds: every message is sealed from then.
        sealing: Option<Box<Sealing>>,
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
    refused: watch::Sender<Option<String>>,
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
        refused: watch::Sender<Option<String>>,
        max_event_bytes: Arc<AtomicUsize>,
    ) -> Self {
        Driver {
            opts,
            cmds,
            connected,
            refused,
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
                handshake: Handshake::Done,
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
                    handshake: Handshake::Done, // replaced by send_hello, next
                    sealing: None,
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

    /// Sends a message, sealed once the session is authenticated.
    async fn send(&mut self, mut frames: Vec<Bytes>) {
        let Link::Up { send, sealing, .. } = &mut self.link else {
            return;
        };
        if let Some(s) = sealing {
            let seal = s.mac.seal(Direction::ToBroker, s.sent, &frames);
            s.sent += 1;
            frames.push(seal);
        }
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
        let (silent_for, open) = match &self.link {
            Link::Up {
                last_heard,
                handshake,
                ..
            } => (last_heard.elapsed(), matches!(handshake, Handshake::Done)),
            _ => return,
        };
        if open && silent_for > self.opts.heartbeat * 3 {
            self.link_lost("the broker stopped answering heartbeats")
                .await;
            return;
        }
        if !open {
            if silent_for > HANDSHAKE_TIMEOUT.max(self.opts.heartbeat * 3) {
                self.link_lost("the broker did not finish the handshake")
                    .await;
            }
            return;
        }
        self.send(vec![Bytes::from_static(b"PING")]).await;
    }
}
