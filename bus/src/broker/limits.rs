//! What keeps peers from overwhelming the broker (docs/bus.md, "Limits").
//!
//! The transport enforces the per-connection caps, set on the socket here: frame and
//! message sizes checked on the length a frame header declares, before anything is
//! allocated; connections open at once; time to finish the ZMTP handshake; and each peer's
//! queue of messages waiting to be written. The broker's part is below: the send task never
//! waits for a peer (one that does not read is disconnected, its unacked events go back to
//! their groups through the usual disconnection), and connections without a session —
//! unauthenticated, whatever the handshake looks like: no entry in `core.sessions` — are
//! counted, capped and timed out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedReceiver;
use zeromq::util::PeerIdentity;
use zeromq::{RouterSendHalf, SocketOptions, ZmqError, ZmqMessage};

use super::BrokerConfig;
use super::core::{Core, hex};

/// What a frame may hold beyond an event's payload, and the floor of the frame limit: an
/// `ACK` of a whole in-flight window (65,536 positions) is a 512 KiB frame whatever the
/// event limit.
const FRAME_FLOOR: usize = 1 << 20;
const FRAME_HEADROOM: usize = 64 << 10;
/// Messages waiting for one peer at most (its bytes are capped by `max_peer_queue_bytes`).
const PEER_QUEUE_MESSAGES: usize = 8192;
/// How often connections without a session are looked at.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The socket options of the broker's ROUTER socket: the clients' read buffers, plus the
/// caps above.
pub(super) fn socket_options(cfg: &BrokerConfig) -> SocketOptions {
    let mut o = tix_bus_client::protocol::socket_options();
    let max_frame = cfg.max_event_bytes.max(FRAME_FLOOR) + FRAME_HEADROOM;
    o.max_message_size(max_frame, cfg.max_message_bytes.max(max_frame))
        .max_connections(cfg.max_peers)
        .handshake_timeout(cfg.hello_timeout)
        .send_queue(PEER_QUEUE_MESSAGES, Some(cfg.max_peer_queue_bytes));
    o
}

/// Sends what the core queued, never waiting for a peer: a peer whose queue is full does
/// not read what it is sent, and is disconnected so that it stalls nobody else.
pub(super) async fn run_sender(mut socket: RouterSendHalf, mut out: UnboundedReceiver<ZmqMessage>) {
    while let Some(m) = out.recv().await {
        let peer = m.get(0).cloned();
        match socket.try_send(m) {
            Ok(()) => {}
            Err(ZmqError::ReturnToSender { .. }) => {
                let Some(peer) = peer else { continue };
                let Ok(id) = PeerIdentity::try_from(peer.clone()) else {
                    continue;
                };
                if socket.disconnect_peer(&id) {
                    tracing::warn!(
                        peer = %hex(&peer),
                        "peer does not read what it is sent (its send queue is full); disconnected"
                    );
                }
            }
            // A peer that went away is the heartbeat's business, not an error here.
            Err(e) => tracing::debug!(error = %e, "send to a peer failed"),
        }
    }
}

/// Connections that have no session yet, watched by the core.
#[derive(Default)]
pub(super) struct Connections {
    socket: Option<RouterSendHalf>,
    /// Peers connected without a session, and since when they are so.
    unauthenticated: HashMap<Bytes, Instant>,
    next_sweep: Option<Instant>,
    /// Closed for being over the limit since the last sweep (logged then, once).
    refused: u64,
    /// Peers refused for good (a failed handshake, a broken seal), closed once their `ERR`
    /// has had [`CLOSE_GRACE`] to leave. At most one entry per connected peer.
    closing: Vec<(Bytes, Instant)>,
}

/// How long a refused peer's `ERR` is given to leave before its connection is closed.
pub(super) const CLOSE_GRACE: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("unauthenticated", &self.unauthenticated.len())
            .finish()
    }
}

impl Connections {
    pub(super) fn new(socket: RouterSendHalf) -> Self {
        Connections {
            socket: Some(socket),
            ..Default::default()
        }
    }

    /// Connections open now (ZMTP handshake done), with or without a session.
    pub(super) fn open(&self) -> u64 {
        self.socket
            .as_ref()
            .map_or(0, |s| s.connected_peers().len() as u64)
    }

    /// Forgets a peer whose connection closed.
    pub(super) fn forget(&mut self, peer: &Bytes) {
        self.unauthenticated.remove(peer);
        self.closing.retain(|(p, _)| p != peer);
    }

    /// Closes `peer`'s connection shortly (after its `ERR` left): a failed handshake or a
    /// broken seal ends the connection, not only the session.
    pub(super) fn close_after_refusal(&mut self, peer: &Bytes, now: Instant) {
        if !self.closing.iter().any(|(p, _)| p == peer) {
            self.closing.push((peer.clone(), now + CLOSE_GRACE));
        }
    }

    /// When the next refused peer is due to be closed.
    pub(super) fn next_close(&self) -> Option<Instant> {
        self.closing.iter().map(|(_, due)| *due).min()
    }

    /// Closes the refused peers whose time has come; how many.
    fn close_due(&mut self, now: Instant) -> usize {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.closing)
            .into_iter()
            .partition(|(_, t)| *t <= now);
        self.closing = later;
        for (peer, _) in &due {
            self.close(peer);
        }
        due.len()
    }

    fn close(&mut self, peer: &Bytes) {
        self.unauthenticated.remove(peer);
        if let (Some(socket), Ok(id)) = (&self.socket, PeerIdentity::try_from(peer.clone())) {
            socket.disconnect_peer(&id);
        }
    }
}

impl Core {
    /// A connection finished the ZMTP handshake: it counts as unauthenticated until it has
    /// a session, and one beyond the limit is closed at once.
    pub(super) fn on_connected(&mut self, peer: &Bytes) {
        if self.sessions.contains_key(peer) {
            return;
        }
        self.conns
            .unauthenticated
            .entry(peer.clone())
            .or_insert_with(Instant::now);
        if self.conns.unauthenticated.len() > self.cfg.max_unauthenticated {
            self.conns.refused += 1;
            self.conns.close(peer);
        }
    }

    /// Once a second: the transport's list of connected peers is the truth (a monitor
    /// event can be lost under a flood). Peers without a session for longer than the
    /// hello timeout are closed, and the newest beyond the unauthenticated limit.
    pub(super) fn check_connections(&mut self, now: Instant) {
        let closed = self.conns.close_due(now);
        if closed > 0 {
            tracing::debug!(closed, "closed the connections of refused peers");
        }
        if self.conns.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.conns.next_sweep = Some(now + SWEEP_EVERY);
        let Some(socket) = &self.conns.socket else {
            return;
        };
        let waiting: Vec<(Bytes, Instant)> = socket
            .connected_peers()
            .into_iter()
            .map(Bytes::from)
            .filter(|peer| !self.sessions.contains_key(peer))
            .map(|peer| {
                let since = self
                    .conns
                    .unauthenticated
                    .get(&peer)
                    .copied()
                    .unwrap_or(now);
                (peer, since)
            })
            .collect();
        self.conns.unauthenticated = waiting.iter().cloned().collect();

        let timeout = self.cfg.hello_timeout;
        let (late, mut waiting): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(_, since)| now.duration_since(*since) >= timeout);
        for (peer, _) in late {
            tracing::info!(
                peer = %hex(&peer),
                addr = self.auth.addr(&peer),
                timeout = ?timeout,
                "connection opened no session in time; closed"
            );
            self.conns.close(&peer);
        }
        if waiting.len() > self.cfg.max_unauthenticated {
            // Oldest first: they are the likeliest to be in the middle of a handshake.
            waiting.sort_by_key(|(_, since)| *since);
            for (peer, _) in waiting.split_off(self.cfg.max_unauthenticated) {
                self.conns.refused += 1;
                self.conns.close(&peer);
            }
        }
        if self.conns.refused > 0 {
            tracing::warn!(
                closed = self.conns.refused,
                limit = self.cfg.max_unauthenticated,
                "closed connections over the limit of connections without a session"
            );
            self.conns.refused = 0;
        }
    }
}

/// Connections the transport refused or dropped before they were peers (over
/// `--max-peers`, a failed or slow ZMTP handshake), logged at most every ten seconds.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    count: u64,
    last_log: Option<Instant>,
}

impl Refusals {
    pub(super) fn count(&mut self, error: &ZmqError) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            return;
        }
        tracing::warn!(
            connections = self.count,
            last = %error,
            "connections refused or closed before their ZMTP handshake completed"
        );
        self.count = 0;
        self.last_log = Some(now);
    }
}

/// Warns when the process may not open as many connections as `--max-peers` allows (the
/// accept loop then backs off on "too many open files" instead of failing).
pub(super) fn check_fd_limit(max_peers: usize) {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    if let Some(soft) = soft
        && soft < max_peers + 64
    {
        tracing::warn!(
            open_files = soft,
            max_peers,
            "the open-files limit is below --max-peers (+64 for the broker itself); raise it (ulimit -n) or lower --max-peers"
        );
    }
}
