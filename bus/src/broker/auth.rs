//! The broker's side of authentication and permissions (docs/bus.md, "Authentication and
//! integrity"): the gate every message passes before the dispatch, the one place where a
//! request is checked against the client's rights, the handshakes under way, and the
//! slowing down of clients that fail theirs.
//!
//! Memory here is bounded whatever peers do: at most [`MAX_HANDSHAKES`] handshakes under
//! way (each forgotten after [`HANDSHAKE_TIMEOUT`]), [`MAX_FAILURE_ENTRIES`] failure
//! counters, [`MAX_DELAYED`] answers held back.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tix_bus_client::protocol::auth::{Direction, NONCE_LEN, SessionMac};
use tix_bus_client::protocol::{self, Request};

use super::core::{Core, hex};
use crate::policy::Policy;

/// Handshakes under way at once; a `HELLO` beyond them is refused until some finish.
pub(super) const MAX_HANDSHAKES: usize = 1024;
/// Time between `CHALLENGE` and `AUTH` before the handshake is forgotten.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Failures a client name or an address may have before its answers are held back.
const FREE_FAILURES: u32 = 3;
/// The first hold-back; it doubles with every failure after that ...
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// ... up to this (below the client's 10 s handshake timeout, so it hears the refusal).
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A name or address whose last failure is older than this starts afresh.
const FAILURE_MEMORY: Duration = Duration::from_secs(600);
/// Failure counters kept; the stalest goes when a new one needs room.
const MAX_FAILURE_ENTRIES: usize = 4096;
/// Refusals held back at once; beyond that a failed peer hears nothing (its client times
/// out, which is as good).
const MAX_DELAYED: usize = 1024;

/// The seal of an authenticated session: its key and each direction's next number.
#[derive(Debug)]
pub(super) struct Sealing {
    pub(super) mac: SessionMac,
    /// Next number to seal a message to the client with; a `Cell` because replies are sent
    /// from `&self` all over the broker.
    pub(super) sent: Cell<u64>,
    /// Next number expected from the client.
    pub(super) received: u64,
    /// Which of the client's keys it proved (a fingerprint): a policy reload that drops
    /// that key ends the session.
    pub(super) key: String,
}

/// A handshake between `CHALLENGE` and `AUTH`.
#[derive(Debug)]
pub(super) struct Handshake {
    pub(super) client: String,
    pub(super) heartbeat_ms: u64,
    pub(super) client_nonce: Bytes,
    pub(super) broker_nonce: [u8; NONCE_LEN],
    pub(super) started: Instant,
}

/// What the broker knows about authentication.
#[derive(Debug, Default)]
pub(super) struct Auth {
    /// `None`: run with `--insecure-no-auth`, every peer may do anything.
    pub(super) policy: Option<Arc<Policy>>,
    pub(super) handshakes: HashMap<Bytes, Handshake>,
    /// Remote addresses of connected peers, as the transport reports them.
    pub(super) addrs: HashMap<Bytes, String>,
    failures: HashMap<String, (u32, Instant)>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    /// Peers with a refusal held back: they may not start another handshake meanwhile.
    waiting: HashSet<Bytes>,
    next_delayed_id: u64,
    /// Requests refused for want of a session since the last log line about them, and
    /// when that line was written: one peer can send thousands a second, the log gets
    /// one line per [`QUIET_LOG`].
    unauthenticated: (u64, Option<Instant>),
}

/// The least time between two log lines about requests without a session.
const QUIET_LOG: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Delayed {
    due: Instant,
    id: u64,
    peer: Bytes,
    corr: u64,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.id) == (o.due, o.id)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.id).cmp(&(o.due, o.id))
    }
}

impl Auth {
    pub(super) fn new(policy: Option<Arc<Policy>>) -> Self {
        Auth {
            policy,
            ..Default::default()
        }
    }

    /// The peer's address for logs, or `-` when the transport did not say.
    pub(super) fn addr(&self, peer: &Bytes) -> &str {
        self.addrs.get(peer).map(String::as_str).unwrap_or("-")
    }

    /// The next time something here falls due.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.delayed.peek().map(|Reverse(d)| d.due)
    }

    /// Whether the peer waits for a held-back refusal.
    pub(super) fn is_waiting(&self, peer: &Bytes) -> bool {
        self.waiting.contains(peer)
    }

    /// Forgets a peer whose connection closed.
    pub(super) fn forget(&mut self, peer: &Bytes) {
        self.handshakes.remove(peer);
        self.addrs.remove(peer);
    }

    /// Counts a failure against `keys` (a client name, an address); returns how long to
    /// hold the answer back.
    fn count_failure(&mut self, keys: &[String], now: Instant) -> Duration {
        let mut delay = Duration::ZERO;
        for key in keys {
            if !self.failures.contains_key(key) && self.failures.len() >= MAX_FAILURE_ENTRIES {
                self.failures
                    .retain(|_, (_, last)| now.duration_since(*last) < FAILURE_MEMORY);
                if self.failures.len() >= MAX_FAILURE_ENTRIES
                    && let Some(stalest) = self
                        .failures
                        .iter()
                        .min_by_key(|(_, (_, last))| *last)
                        .map(|(k, _)| k.clone())
                {
                    self.failures.remove(&stalest);
                }
            }
            let entry = self.failures.entry(key.clone()).or_insert((0, now));
            if now.duration_since(entry.1) >= FAILURE_MEMORY {
                *entry = (0, now);
            }
            entry.0 = entry.0.saturating_add(1);
            entry.1 = now;
            delay = delay.max(hold_back(entry.0));
        }
        delay
    }
}

/// How long to hold back the answer to a name's or address's `n`-th failure in a row.
fn hold_back(n: u32) -> Duration {
    if n <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (n - FREE_FAILURES - 1).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

/// The correlation id of a request, for the `ERR` that refuses it.
fn corr_of(request: &Request) -> u64 {
    match request {
        Request::Hello(c, ..)
        | Request::Auth(c, _)
        | Request::Publish(c, _)
        | Request::Subscribe(c, _)
        | Request::Unsubscribe(c, _)
        | Request::Ack(c, ..)
        | Request::Nak(c, ..)
        | Request::Touch(c, ..)
        | Request::Stats(c)
        | Request::DeadLetters(c, _)
        | Request::Replay(c, _)
        | Request::DropGroup(c, _)
        | Request::Rewind(c, _)
        | Request::Discard(c, _) => *c,
        Request::Ping | Request::Bye => 0,
    }
}

impl Core {
    /// The gate before the dispatch. A message from a peer with a session must carry the
    /// session's next seal, which is checked and removed; without a session, only the
    /// handshake may be spoken. Returns whether the peer has a session, or `None` when the
    /// message was refused (answered, logged, and the session, if any, dropped).
    pub(super) fn admit(&mut self, peer: &Bytes, frames: &mut Vec<Bytes>) -> Option<bool> {
        if let Some(s) = self.sessions.get_mut(peer) {
            s.last_seen = Instant::now();
            let Some(seal) = &mut s.sealing else {
                return Some(true);
            };
            match seal.mac.open(Direction::ToBroker, seal.received, frames) {
                Ok(()) => {
                    seal.received += 1;
                    return Some(true);
                }
                Err(e) => {
                    let client = s.client.clone();
                    tracing::warn!(
                        peer = %hex(peer),
                        addr = self.auth.addr(peer),
                        %client,
                        error = %e,
                        "refused a message that failed its check; the session is closed"
                    );
                    self.drop_session(peer);
                    self.reply_err(peer, 0, &format!("refused: {e}; the session is closed"));
                    self.conns.close_after_refusal(peer, Instant::now());
                    return None;
                }
            }
        }
        if self.auth.policy.is_none() {
            return Some(false);
        }
        if matches!(frames.first().map(|f| &f[..]), Some(b"HELLO" | b"AUTH")) {
            return Some(false);
        }
        self.auth.handshakes.remove(peer);
        let now = Instant::now();
        let (count, last) = self.auth.unauthenticated;
        if last.is_none_or(|t| now.duration_since(t) >= QUIET_LOG) {
            let command = frames
                .first()
                .map(|f| String::from_utf8_lossy(&f[..f.len().min(16)]).into_owned());
            tracing::warn!(
                peer = %hex(peer),
                addr = self.auth.addr(peer),
                command = command.as_deref().unwrap_or(""),
                refused = count + 1,
                "refused a request from a peer that has not authenticated (refused: how many since the last such line)"
            );
            self.auth.unauthenticated = (0, Some(now));
        } else {
            self.auth.unauthenticated.0 += 1;
        }
        let corr = frames
            .get(1)
            .and_then(|f| protocol::read_u64(f))
            .unwrap_or(0);
        self.reply_err(peer, corr, "no session: authenticate with HELLO first");
        None
    }

    /// Whether the session's client may make `request`: the one permission check of the
    /// broker. A refusal is answered with `ERR` and logged.
    pub(super) fn authorize(&self, peer: &Bytes, request: &Request) -> bool {
        let Some(perms) = self.sessions.get(peer).and_then(|s| s.perms.as_ref()) else {
            return true; // no policy: --insecure-no-auth
        };
        match perms.authorize(request) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(
                    peer = %hex(peer),
                    addr = self.auth.addr(peer),
                    client = %perms.name,
                    %why,
                    "refused a request"
                );
                self.reply_err(peer, corr_of(request), &why);
                false
            }
        }
    }

    /// A handshake failed: logged, counted against the client name and the address, and
    /// answered `ERR` — at once for the first few failures, later held back longer and
    /// longer, so guessing keys is slow and a misconfigured client does not flood the log.
    pub(super) fn auth_failed(&mut self, peer: &Bytes, corr: u64, client: &str, why: &str) {
        let now = Instant::now();
        let mut keys = vec![format!("client {client}")];
        if let Some(addr) = self.auth.addrs.get(peer) {
            // The host, without the port: a new connection gets a new port.
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
            keys.push(format!("address {host}"));
        }
        let delay = self.auth.count_failure(&keys, now);
        tracing::warn!(
            peer = %hex(peer),
            addr = self.auth.addr(peer),
            %client,
            why,
            held_back_ms = delay.as_millis() as u64,
            "authentication failed"
        );
        if delay.is_zero() {
            self.reply_err(peer, corr, "authentication failed");
            self.conns.close_after_refusal(peer, now);
            return;
        }
        if self.auth.delayed.len() >= MAX_DELAYED {
            return;
        }
        let id = self.auth.next_delayed_id;
        self.auth.next_delayed_id += 1;
        self.auth.waiting.insert(peer.clone());
        self.auth.delayed.push(Reverse(Delayed {
            due: now + delay,
            id,
            peer: peer.clone(),
            corr,
        }));
    }

    /// Sends the refusals held back until now, and forgets handshakes left unfinished.
    pub(super) fn auth_upkeep(&mut self, now: Instant) {
        while let Some(Reverse(d)) = self.auth.delayed.peek() {
            if d.due > now {
                break;
            }
            let Some(Reverse(d)) = self.auth.delayed.pop() else {
                break;
            };
            self.auth.waiting.remove(&d.peer);
            self.reply_err(&d.peer, d.corr, "authentication failed");
            self.conns.close_after_refusal(&d.peer, now);
        }
        self.auth
            .handshakes
            .retain(|_, h| now.duration_since(h.started) < HANDSHAKE_TIMEOUT);
    }

    /// A new policy (SIGHUP): sessions of clients it no longer lists, or whose key it no
    /// longer holds, end now; the others keep going under their new rights.
    pub(super) fn set_policy(&mut self, policy: Arc<Policy>) {
        let mut ended = Vec::new();
        for (peer, s) in self.sessions.iter_mut() {
            let Some(sealing) = &s.sealing else { continue };
            match policy.client(&s.client) {
                Some(p) if p.keys.iter().any(|k| k.fingerprint() == sealing.key) => {
                    s.perms = Some(p.clone());
                }
                _ => ended.push((peer.clone(), s.client.clone())),
            }
        }
        for (peer, client) in ended {
            tracing::warn!(peer = %hex(&peer), %client, "the new policy no longer admits this client; its session ends");
            self.drop_session(&peer);
        }
        tracing::info!(clients = policy.len(), "bus policy loaded");
        self.auth.policy = Some(policy);
    }
}

/// The seal of a session that just authenticated with the key of this fingerprint.
pub(super) fn sealing_for(mac: SessionMac, key_fingerprint: String) -> Sealing {
    Sealing {
        mac,
        sent: Cell::new(0),
        received: 0,
        key: key_fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_free_then_held_back_longer_up_to_a_cap() {
        assert_eq!(hold_back(1), Duration::ZERO);
        assert_eq!(hold_back(FREE_FAILURES), Duration::ZERO);
        assert_eq!(hold_back(FREE_FAILURES + 1), FIRST_DELAY);
        assert_eq!(hold_back(FREE_FAILURES + 2), FIRST_DELAY * 2);
        assert_eq!(hold_back(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn failure_counters_stay_bounded() {
        let mut a = Auth::default();
        let now = Instant::now();
        for i in 0..(MAX_FAILURE_ENTRIES + 100) {
            a.count_failure(&[format!("client c{i}")], now);
        }
        assert_eq!(a.failures.len(), MAX_FAILURE_ENTRIES);
        for _ in 0..10 {
            a.count_failure(&["client x".to_string()], now);
        }
        assert_eq!(a.failures["client x"].0, 10);
        // Forgotten after a quiet while.
        let later = now + FAILURE_MEMORY;
        assert_eq!(
            a.count_failure(&["client x".to_string()], later),
            Duration::ZERO
        );
    }
}
