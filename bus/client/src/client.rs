//! The handles callers hold: [`Client`], [`Subscription`] and [`Delivery`]. Each call is
//! a command to the connection driver (`driver.rs`) and a wait for its answer; callers
//! only see an error for requests made while it is disconnected, never a hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::{Cmd, Driver, Reply, Settle};
use crate::protocol::auth::BusKey;
use crate::protocol::{
    self, DeadLetter, DeadLetterQuery, DiscardRequest, Discarded, DropGroupRequest, ReplayRequest,
    Replayed, RewindRequest, Rewound, Stats, SubscribeOptions,
};

/// Why a bus call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("not connected to the bus at {0}")]
    Disconnected(String),
    #[error("the bus did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the bus refused the request: {0}")]
    Refused(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the bus client is closed")]
    Closed,
}

impl Error {
    /// Whether trying the same request again can never succeed: the client itself refused
    /// it (an event over the broker's size limit, an id or subject of the wrong length).
    /// Every other error may pass — the link comes back, the broker answers, its disk
    /// recovers. A broker's `ERR` ([`Error::Refused`]) answers a whole publish batch, so
    /// it cannot be pinned on one event and counts as passing.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// How a client connects and how patient it is.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The broker's endpoint, e.g. `tcp://127.0.0.1:5555`.
    pub endpoint: String,
    /// Who this client is: with authentication on, the broker's policy entry whose key
    /// it holds (and the only `producer` its events may name).
    pub name: String,
    /// This client's key (`TIX_BUS_KEY`, or a file). Without one the client speaks only to
    /// a broker run with `--insecure-no-auth`; with one it refuses a broker that does not
    /// ask it to authenticate, so nobody can impersonate the broker by skipping that.
    pub key: Option<BusKey>,
    /// How often to ping the broker; three missed beats mean it is gone.
    pub heartbeat: Duration,
    /// How long a publish or request waits for the broker's answer.
    pub request_timeout: Duration,
    /// Longest pause between reconnection attempts.
    pub max_backoff: Duration,
    /// Most publishes packed into one message.
    pub max_batch: usize,
    /// Most payload bytes packed into one `PUB`: a batch over the broker's
    /// `--max-message-bytes` (16 MiB by default) would close the connection and, retried
    /// as it was, never get through. Queued publishes beyond it go in the next message.
    pub max_publish_bytes: usize,
}

impl ClientOptions {
    pub fn new(endpoint: impl Into<String>, name: impl Into<String>) -> Self {
        ClientOptions {
            endpoint: endpoint.into(),
            name: name.into(),
            key: None,
            heartbeat: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(2),
            max_batch: 1024,
            max_publish_bytes: 4 << 20,
        }
    }

    /// The same, authenticating with `key`.
    pub fn with_key(mut self, key: BusKey) -> Self {
        self.key = Some(key);
        self
    }
}

/// A handle to the bus. Clones share one connection.
#[derive(Debug, Clone)]
pub struct Client {
    cmds: mpsc::UnboundedSender<Cmd>,
    connected: watch::Receiver<bool>,
    /// Why the broker refused this client's last handshake (cleared when one succeeds).
    refused: watch::Receiver<Option<String>>,
    opts: Arc<ClientOptions>,
    /// The broker's event size limit, learnt at HELLO (0 until then).
    max_event_bytes: Arc<AtomicUsize>,
}

impl Client {
    /// Starts the driver. It connects in the background: calls made before the broker
    /// answers fail with [`Error::Disconnected`]; use [`Client::wait_connected`] to wait.
    pub fn connect(opts: ClientOptions) -> Client {
        let (cmds_tx, cmds_rx) = mpsc::unbounded_channel();
        let (connected_tx, connected_rx) = watch::channel(false);
        let (refused_tx, refused_rx) = watch::channel(None);
        let opts = Arc::new(opts);
        let max_event_bytes = Arc::new(AtomicUsize::new(0));
        let driver = Driver::new(
            opts.clone(),
            cmds_tx.downgrade(),
            connected_tx,
            refused_tx,
            max_event_bytes.clone(),
        );
        tokio::spawn(driver.run(cmds_rx));
        Client {
            cmds: cmds_tx,
            connected: connected_rx,
            refused: refused_rx,
            opts,
            max_event_bytes,
        }
    }

    /// Whether the broker has accepted this client's session and the link is up now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Follows the link: `true` while the broker has accepted this client's session.
    pub fn watch_connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// The broker's endpoint this client connects to.
    pub fn endpoint(&self) -> &str {
        &self.opts.endpoint
    }

    /// Why the broker refused this client's last handshake (a wrong key, a name its policy
    /// does not know), until a handshake succeeds. The client keeps trying meanwhile.
    pub fn refusal(&self) -> Option<String> {
        self.refused.borrow().clone()
    }

    /// Waits until the broker has accepted this client's session. Fails at once with
    /// [`Error::Refused`] when the broker refuses its handshake.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let (mut connected, mut refused) = (self.connected.clone(), self.refused.clone());
        let wait = async {
            loop {
                if *connected.borrow_and_update() {
                    return Ok(());
                }
                if let Some(why) = refused.borrow_and_update().clone() {
                    return Err(Error::Refused(why));
                }
                tokio::select! {
                    r = connected.changed() => r.map_err(|_| Error::Closed)?,
                    r = refused.changed() => r.map_err(|_| Error::Closed)?,
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(Error::Disconnected(self.opts.endpoint.clone())),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(make(tx)).map_err(|_| Error::Closed)?;
        match tokio::time::timeout(self.opts.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout(self.opts.request_timeout)),
        }
    }

    /// Publishes one event and returns once the broker has it durably in its log.
    /// Publishing an id the log already holds succeeds without storing it twice.
    pub async fn publish(
        &self,
        id: impl Into<Bytes>,
        subject: impl Into<Bytes>,
        payload: impl Into<Bytes>,
    ) -> Result<()> {
        let (id, subject, payload) = (id.into(), subject.into(), payload.into());
        if id.is_empty() || id.len() > protocol::MAX_NAME_LEN {
            return Err(Error::Invalid("event id must be 1 to 200 bytes".into()));
        }
        if subject.is_empty() || subject.len() > protocol::MAX_NAME_LEN {
            return Err(Error::Invalid("subject must be 1 to 200 bytes".into()));
        }
        // Checked here so one oversized event does not fail the batch it would share.
        let limit = self.max_event_bytes.load(Ordering::Relaxed);
        if limit > 0 && payload.len() > limit {
            return Err(Error::Invalid(format!(
                "event is {} bytes; the bus takes at most {limit}",
                payload.len()
            )));
        }
        self.call(|done| Cmd::Publish {
            id,
            subject,
            payload,
            done,
        })
        .await
    }

    /// Joins a queue group. Deliveries arrive on the returned subscription; after a
    /// reconnection the driver joins again by itself.
    pub async fn subscribe(&self, opts: SubscribeOptions) -> Result<Subscription> {
        opts.validate().map_err(|e| Error::Invalid(e.into()))?;
        let group: Arc<str> = Arc::from(opts.group.as_str());
        let (tx, rx) = mpsc::unbounded_channel();
        self.call(|done| Cmd::Subscribe {
            opts,
            deliveries: tx,
            done,
        })
        .await?;
        Ok(Subscription {
            group,
            rx,
            cmds: self.cmds.clone(),
        })
    }

    async fn request(&self, command: &'static [u8], body: Vec<u8>) -> Result<Bytes> {
        self.call(|done| Cmd::Request {
            command,
            body: Bytes::from(body),
            done,
        })
        .await
    }

    /// The broker's counters: per subject, per group position, lag, pending, redelivered.
    pub async fn stats(&self) -> Result<Stats> {
        let body = self.request(b"STATS", Vec::new()).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Refused(format!("bad stats: {e}")))
    }

    /// The same counters as raw JSON, for printing.
    pub async fn stats_json(&self) -> Result<String> {
        let body = self.request(b"STATS", Vec::new()).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Dead letters, of one group or all.
    pub async fn dead_letters(&self, group: Option<&str>) -> Result<Vec<DeadLetter>> {
        let q = DeadLetterQuery {
            group: group.map(str::to_string),
            limit: None,
        };
        let body = self
            .request(b"DLQ", serde_json::to_vec(&q).unwrap_or_default())
            .await?;
        serde_json::from_slice(&body).map_err(|e| Error::Refused(format!("bad list: {e}")))
    }

    /// An operator request with a JSON body, and its JSON answer.
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        command: &'static [u8],
        body: &impl serde::Serialize,
    ) -> Result<T> {
        let answer = self
            .request(command, serde_json::to_vec(body).unwrap_or_default())
            .await?;
        serde_json::from_slice(&answer).map_err(|e| Error::Refused(format!("bad reply: {e}")))
    }

    /// Delivers a group's dead letters again (all, or the given positions); returns how many.
    pub async fn replay(&self, group: &str, seqs: Option<Vec<u64>>) -> Result<u64> {
        let r = ReplayRequest {
            group: group.to_string(),
            seqs,
        };
        self.ask::<Replayed>(b"REPLAY", &r)
            .await
            .map(|r| r.replayed)
    }

    /// Forgets a durable group nobody consumes any more (refused while it has members, and
    /// unless `force`, until it has had none for a while): its place in the log, its acks
    /// and its dead letters, so that it no longer holds back pruning. A group of that name
    /// joined later starts afresh.
    pub async fn drop_group(&self, group: &str, force: bool) -> Result<()> {
        let r = DropGroupRequest {
            group: group.to_string(),
            force,
        };
        self.request(b"DROP", serde_json::to_vec(&r).unwrap_or_default())
            .await
            .map(drop)
    }

    /// Moves a durable group back so that it gets again every event stored at or after
    /// `since_ms` (unix milliseconds), as after its service was restored from a backup
    /// taken then; its inbox skips what it had applied. Refused while the group has
    /// members.
    pub async fn rewind(&self, group: &str, since_ms: i64) -> Result<Rewound> {
        let r = RewindRequest {
            group: group.to_string(),
            since_ms,
        };
        self.ask(b"REWIND", &r).await
    }

    /// Forgets a group's dead letters for good, without delivering them again: all of them,
    /// or only those at `seqs`. Those being replayed are kept. How many went.
    pub async fn discard(&self, group: &str, seqs: Option<Vec<u64>>) -> Result<u64> {
        let r = DiscardRequest {
            group: group.to_string(),
            seqs,
        };
        self.ask::<Discarded>(b"DISCARD", &r)
            .await
            .map(|d| d.discarded)
    }

    /// Says goodbye, so the broker hands this client's unacked events to others at once.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Close { done: tx }).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }
}

/// A stream of deliveries for one queue group.
#[derive(Debug)]
pub struct Subscription {
    group: Arc<str>,
    rx: mpsc::UnboundedReceiver<Delivery>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl Subscription {
    /// The next delivery; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A delivery already received, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }

    pub fn group(&self) -> &str {
        &self.group
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.cmds.send(Cmd::Unsubscribe {
            group: self.group.clone(),
        });
    }
}

/// One event handed to this member of a group. Ack it once its effect is durable; an
/// event left unacked comes back after the group's ack wait.
#[derive(Debug)]
pub struct Delivery {
    pub group: Arc<str>,
    /// Position in the broker's log.
    pub seq: u64,
    /// 1 on first delivery, more on redeliveries.
    pub deliveries: u32,
    pub id: String,
    pub subject: String,
    pub payload: Bytes,
    pub(crate) cmds: mpsc::UnboundedSender<Cmd>,
}

impl Delivery {
    /// Acks the event and waits until the broker has recorded the ack durably.
    pub async fn ack(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.settle(Settle::Ack, Some(tx))?;
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout(Duration::from_secs(10))),
        }
    }

    /// Acks without waiting for the broker's confirmation.
    pub fn ack_nowait(&self) -> Result<()> {
        self.settle(Settle::Ack, None)
    }

    /// Hands the event back for immediate redelivery (to any member).
    pub fn nak(&self) -> Result<()> {
        self.settle(Settle::Nak, None)
    }

    /// Says this member is still working on the event (NATS's "in progress"): the broker
    /// restarts its ack wait and counts no delivery. A consumer that keeps an event while
    /// it retries a failure of its own (a busy database) touches it more often than the
    /// ack wait, so the event neither goes to another member nor uses up its deliveries.
    /// Touching an event this member no longer holds does nothing.
    pub fn touch(&self) -> Result<()> {
        self.settle(Settle::Touch, None)
    }

    fn settle(&self, kind: Settle, done: Option<Reply<()>>) -> Result<()> {
        self.cmds
            .send(Cmd::Settle {
                kind,
                group: self.group.clone(),
                seq: self.seq,
                done,
            })
            .map_err(|_| Error::Closed)
    }
}
