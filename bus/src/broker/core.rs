//! The broker's state machine. It runs on one thread and owns every group, session and
//! timer, so no state is shared or locked; the network tasks and the store's writer talk to
//! it through one channel of [`Input`]s.
//!
//! This file holds the state, the loop and the dispatch of each request to its command in
//! `cmd/` (one file per request, parse → apply → reply); `delivery.rs` hands events to
//! group members and `upkeep.rs` does the timed work (ack deadlines, dead peers, pruning).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use zeromq::ZmqMessage;

use super::BrokerConfig;
use super::auth::{Auth, Sealing};
use super::group::{Group, Pending, Slot};
use crate::policy::{Permissions, Policy};
use crate::store::{self, Done, Event, Job, Reader, Write};
use tix_bus_client::protocol::auth::Direction;
use tix_bus_client::protocol::{self, Request};

/// Everything the core reacts to.
#[derive(Debug)]
pub enum Input {
    /// The writer committed (or failed) these jobs.
    Committed(Vec<Done<Token>>),
    /// The transport saw a peer's connection close.
    Disconnected(Bytes),
    /// The transport accepted a peer's connection from this address.
    Accepted(Bytes, String),
    /// A new policy to apply (SIGHUP).
    Policy(Arc<Policy>),
    /// The answer to an operator request, from the ops thread (`ops.rs`).
    Answer {
        peer: Bytes,
        corr: u64,
        result: Result<Bytes, String>,
    },
    /// A replay's dead letters, read by the ops thread.
    Replay {
        peer: Bytes,
        corr: u64,
        /// The group's slot when the request was made: a group dropped and joined again
        /// meanwhile has another, and does not get the old one's dead letters.
        gi: usize,
        request: tix_bus_client::protocol::ReplayRequest,
        dead: Result<Vec<Arc<Event>>, String>,
    },
    /// A metrics scrape wants the broker's state (`metrics.rs`); answered by the ops thread.
    Metrics(super::metrics::StateReply),
    /// Finish in-flight work and stop.
    Stop,
}

/// What to answer once a job is durable.
#[derive(Debug)]
pub enum Token {
    PubAck {
        peer: Bytes,
        corr: u64,
        n: u32,
    },
    Ok {
        peer: Bytes,
        corr: u64,
        body: Bytes,
    },
    /// An operator's `DROP` of group `gi`: applied in memory once committed.
    Dropped {
        gi: usize,
        peer: Bytes,
        corr: u64,
    },
    /// An operator's `REWIND` of group `gi` to the time asked: applied in memory once
    /// committed.
    Rewound {
        gi: usize,
        peer: Bytes,
        corr: u64,
        since_ms: i64,
    },
    /// An operator's `DISCARD`: answered with how many dead letters the write deleted.
    Discarded {
        peer: Bytes,
        corr: u64,
    },
    /// Writes that dead-letter these events (group, event, deliveries): should the commit
    /// fail, each goes back to its group instead of being lost.
    DeadLetters(Vec<(Arc<str>, Arc<Event>, u32)>),
    Silent,
}

#[derive(Debug)]
pub(super) struct Session {
    pub(super) last_seen: Instant,
    pub(super) timeout: Duration,
    pub(super) groups: Vec<usize>,
    /// The name it said hello with: with authentication, the policy entry it proved.
    pub(super) client: Arc<str>,
    /// Its rights; `None` without authentication (`--insecure-no-auth`).
    pub(super) perms: Option<Arc<Permissions>>,
    /// Its seal; `None` without authentication.
    pub(super) sealing: Option<Sealing>,
}

/// Events a MSG message carries at most, so one message stays a reasonable size.
pub(super) const MAX_EVENTS_PER_MSG: usize = 512;
/// Events read from disk at once by a group behind the memory cache.
pub(super) const BACKLOG_READ: usize = 512;
/// ... and at most this many payload bytes.
pub(super) const BACKLOG_BYTES: usize = 4 << 20;
/// Log positions one pump may look at before yielding to other work.
pub(super) const SCAN_BUDGET: usize = 4096;
/// Most writes of acks nobody waits for held back at once (`BrokerConfig::ack_delay`).
const MAX_DEFERRED: usize = 4096;

pub struct Core {
    pub(super) cfg: BrokerConfig,
    pub(super) reader: Reader,
    pub(super) jobs: Option<mpsc::Sender<Job<Token>>>,
    pub(super) out: UnboundedSender<ZmqMessage>,
    pub(super) outstanding_jobs: usize,
    pub(super) head: u64,
    /// The newest committed events, bounded by `cfg.cache_bytes`.
    pub(super) cache: VecDeque<Arc<Event>>,
    pub(super) cache_bytes: usize,
    pub(super) subject_counts: HashMap<String, u64>,
    pub(super) groups: Vec<Group>,
    pub(super) group_index: HashMap<Arc<str>, usize>,
    pub(super) sessions: HashMap<Bytes, Session>,
    /// Ack deadlines, checked lazily against the pending entry when they fall due.
    pub(super) timers: BinaryHeap<Reverse<(Instant, usize, u64, Slot)>>,
    pub(super) next_liveness_check: Instant,
    pub(super) next_prune: Instant,
    /// Groups whose scan ran out of budget and should go on at the next turn.
    pub(super) repump: Vec<usize>,
    pub(super) stopping: bool,
    /// Handshakes under way, the policy, failed clients held back (`auth.rs`).
    pub(super) auth: Auth,
    /// Connections without a session, capped and timed out (`limits.rs`).
    pub(super) conns: super::limits::Connections,
    /// The thread answering operator requests (`ops.rs`).
    pub(super) ops: Option<super::ops::Ops>,
    /// Writes of acks nobody waits for, held back (up to `cfg.ack_delay`) to go with the next
    /// job rather than a commit of their own, and when they must go at the latest.
    pub(super) deferred: Vec<Write>,
    pub(super) deferred_until: Option<Instant>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("head", &self.head).finish()
    }
}

fn msg(frames: Vec<Bytes>) -> ZmqMessage {
    ZmqMessage::try_from(frames).expect("replies always have frames")
}

impl Core {
    pub fn load(
        cfg: BrokerConfig,
        reader: Reader,
        jobs: mpsc::Sender<Job<Token>>,
        out: UnboundedSender<ZmqMessage>,
    ) -> store::Result<Self> {
        let now = Instant::now();
        let mut core = Core {
            head: reader.head()?,
            subject_counts: reader.subject_counts()?.into_iter().collect(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            groups: Vec::new(),
            group_index: HashMap::new(),
            sessions: HashMap::new(),
            timers: BinaryHeap::new(),
            next_liveness_check: now,
            next_prune: now + cfg.prune_interval,
            repump: Vec::new(),
            stopping: false,
            auth: Auth::default(),
            conns: Default::default(),
            ops: None,
            deferred: Vec::new(),
            deferred_until: None,
            outstanding_jobs: 0,
            jobs: Some(jobs),
            out,
            reader,
            cfg,
        };
        for row in core.reader.groups()? {
            let acked = core.reader.acked_above_floor(&row.name)?;
            core.add_group(Group::from_row(&row, acked));
        }
        for (group, event) in core.reader.replaying()? {
            if let Some(&gi) = core.group_index.get(group.as_str()) {
                let g = &mut core.groups[gi];
                g.ready.insert((event.seq, Slot::Replay));
                g.replays.insert(
                    event.seq,
                    Pending {
                        event,
                        deliveries: 0,
                        member: None,
                        deadline: now,
                    },
                );
            }
        }
        tracing::info!(
            head = core.head,
            groups = core.groups.len(),
            "loaded the log"
        );
        Ok(core)
    }

    pub(super) fn add_group(&mut self, g: Group) -> usize {
        let idx = self.groups.len();
        self.group_index.insert(g.name.clone(), idx);
        self.groups.push(g);
        idx
    }

    /// Runs until [`Input::Stop`] has been received and every queued write is durable.
    ///
    /// The core reads the socket itself: a message goes from the wire to the state machine
    /// without crossing a thread, and only writes cross over to the store's writer thread.
    pub async fn run(
        mut self,
        mut socket: zeromq::RouterRecvHalf,
        mut inputs: UnboundedReceiver<Input>,
    ) {
        use zeromq::SocketRecv;
        loop {
            if self.stopping && self.outstanding_jobs == 0 {
                break;
            }
            let deadline = tokio::time::Instant::from_std(self.next_deadline());
            tokio::select! {
                biased;
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input),
                    None => break,
                },
                m = socket.recv(), if !self.stopping => match m {
                    Ok(m) => self.on_message(m.into_vec()),
                    Err(e) => {
                        tracing::warn!(error = %e, "receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
            self.on_tick(Instant::now());
        }
        tracing::info!("broker core stopped");
    }

    pub(super) fn next_deadline(&self) -> Instant {
        if !self.repump.is_empty() {
            return Instant::now();
        }
        let mut next = self.next_liveness_check.min(self.next_prune);
        if let Some(Reverse((t, ..))) = self.timers.peek() {
            next = next.min(*t);
        }
        if let Some(t) = self.auth.next_deadline() {
            next = next.min(t);
        }
        if let Some(t) = self.conns.next_close() {
            next = next.min(t);
        }
        if let Some(t) = self.deferred_until {
            next = next.min(t);
        }
        next
    }

    pub(super) fn handle(&mut self, input: Input) {
        match input {
            Input::Committed(done) => self.on_committed(done),
            Input::Disconnected(peer) => {
                if self.sessions.contains_key(&peer) {
                    tracing::info!(peer = %hex(&peer), "peer disconnected");
                    self.drop_session(&peer);
                }
                self.auth.forget(&peer);
                self.conns.forget(&peer);
            }
            Input::Accepted(peer, addr) => {
                self.on_connected(&peer);
                // Only for logs; bounded in case the transport drops disconnections.
                if self.auth.addrs.len() < 65_536 {
                    self.auth.addrs.insert(peer, addr);
                }
            }
            Input::Policy(policy) => self.set_policy(policy),
            Input::Answer { peer, corr, result } => match result {
                Ok(body) => self.reply_ok(&peer, corr, body),
                Err(e) => self.reply_err(&peer, corr, &e),
            },
            Input::Replay {
                peer,
                corr,
                gi,
                request,
                dead,
            } => self.on_replay_read(peer, corr, gi, request, dead),
            Input::Metrics(reply) => self.on_metrics(reply),
            Input::Stop => {
                tracing::info!("stopping: finishing queued writes");
                self.stopping = true;
                self.persist_floors();
                self.flush_deferred();
            }
        }
    }

    pub(super) fn send(&self, mut frames: Vec<Bytes>) {
        // An authenticated session's messages are sealed, in the order they are sent.
        if let Some(sealing) = self
            .sessions
            .get(&frames[0])
            .and_then(|s| s.sealing.as_ref())
        {
            let seq = sealing.sent.get();
            sealing.sent.set(seq + 1);
            let seal = sealing.mac.seal(Direction::ToClient, seq, &frames[1..]);
            frames.push(seal);
        }
        // The send task only goes away when the process stops.
        let _ = self.out.send(msg(frames));
    }

    pub(super) fn reply_ok(&self, peer: &Bytes, corr: u64, body: Bytes) {
        self.send(vec![
            peer.clone(),
            Bytes::from_static(b"OK"),
            protocol::u64_frame(corr),
            body,
        ]);
    }

    pub(super) fn reply_err(&self, peer: &Bytes, corr: u64, message: &str) {
        self.send(vec![
            peer.clone(),
            Bytes::from_static(b"ERR"),
            protocol::u64_frame(corr),
            Bytes::from(message.to_string()),
        ]);
    }

    /// Holds back writes that may be lost without harm to anything but redelivery (the acks
    /// of a sender who waits for no answer): they go with the next job, or on their own
    /// once `--ack-delay` has passed. A crash of the broker meanwhile only means those
    /// events are delivered again; at light load this spares the writer a commit per ack.
    pub(super) fn defer(&mut self, writes: Vec<Write>) {
        // Only what may be lost: a dead letter must go at once (`submit` watches for those).
        debug_assert!(!writes.iter().any(store::needs_sync), "{writes:?}");
        self.deferred.extend(writes);
        self.deferred_until
            .get_or_insert_with(|| Instant::now() + self.cfg.ack_delay);
        if self.deferred.len() >= MAX_DEFERRED {
            self.flush_deferred();
        }
    }

    /// Sends the held-back writes to the writer now.
    pub(super) fn flush_deferred(&mut self) {
        if !self.deferred.is_empty() {
            self.submit(Vec::new(), Token::Silent);
        }
    }

    pub(super) fn submit(&mut self, writes: Vec<Write>, token: Token) {
        // Held-back acks first, so every write still reaches the store in the order it
        // was made (an ack before its group's DROP, a floor before the prune it allows).
        let writes = if self.deferred.is_empty() {
            writes
        } else {
            self.deferred_until = None;
            let mut all = std::mem::take(&mut self.deferred);
            all.extend(writes);
            all
        };
        let Some(jobs) = &self.jobs else { return };
        // The group has forgotten a dead-lettered event already; its record must not be
        // lost with a failed commit (`on_committed` puts it back).
        let token = match token {
            Token::Silent => {
                let dead: Vec<_> = writes
                    .iter()
                    .filter_map(|w| match w {
                        Write::DeadLetter {
                            group,
                            event,
                            deliveries,
                        } => Some((group.clone(), event.clone(), *deliveries)),
                        _ => None,
                    })
                    .collect();
                if dead.is_empty() {
                    Token::Silent
                } else {
                    Token::DeadLetters(dead)
                }
            }
            other => other,
        };
        // Whoever hears of the commit (`PUBACK`, `OK`) may count on it surviving a power cut.
        let answered = !matches!(token, Token::Silent | Token::DeadLetters(_));
        if jobs.send(Job::new(writes, token, answered)).is_ok() {
            self.outstanding_jobs += 1;
        } else {
            tracing::error!("the store writer is gone; a write was dropped");
        }
    }

    pub(super) fn on_message(&mut self, mut frames: Vec<Bytes>) {
        if frames.len() < 2 {
            return;
        }
        let peer = frames.remove(0);
        // Seal checked and removed, or the message refused (auth.rs).
        let Some(known) = self.admit(&peer, &mut frames) else {
            return;
        };
        if self.stopping {
            let corr = frames
                .get(1)
                .and_then(|f| protocol::read_u64(f))
                .unwrap_or(0);
            self.reply_err(&peer, corr, "broker is shutting down");
            return;
        }
        let request = match Request::parse(&frames) {
            Ok(r) => r,
            Err((corr, e)) => {
                tracing::warn!(peer = %hex(&peer), error = %e, "refused a bad message");
                self.reply_err(&peer, corr, &e.to_string());
                return;
            }
        };
        if known && !self.authorize(&peer, &request) {
            return;
        }
        match request {
            Request::Ping => self.send(vec![
                peer,
                Bytes::from_static(b"PONG"),
                Bytes::from_static(if known { b"1" } else { b"0" }),
            ]),
            Request::Bye => self.drop_session(&peer),
            Request::Hello(corr, hello, nonce) => self.on_hello(peer, corr, hello, nonce),
            Request::Auth(corr, proof) => self.on_auth(peer, corr, proof),
            Request::Publish(corr, events) => self.on_publish(peer, corr, events),
            Request::Subscribe(corr, opts) => self.on_subscribe(peer, corr, opts, known),
            Request::Unsubscribe(corr, group) => self.on_unsubscribe(peer, corr, &group),
            Request::Ack(corr, group, seqs) => self.on_ack(peer, corr, &group, &seqs),
            Request::Nak(corr, group, seqs) => self.on_nak(peer, corr, &group, &seqs),
            Request::Touch(corr, group, seqs) => self.on_touch(peer, corr, &group, &seqs),
            Request::Stats(corr) => self.on_stats(peer, corr),
            Request::DeadLetters(corr, q) => self.on_dead_letters(peer, corr, q),
            Request::Replay(corr, r) => self.on_replay(peer, corr, r),
            Request::DropGroup(corr, r) => self.on_drop_group(peer, corr, r),
            Request::Rewind(corr, r) => self.on_rewind(peer, corr, r),
            Request::Discard(corr, r) => self.on_discard(peer, corr, r),
        }
    }
}

/// Short printable form of a peer identity for logs.
pub(super) fn hex(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        cfg: BrokerConfig,
    }

    /// A core on a fresh `bus.db`, and the writer's end of its jobs (no writer: the test
    /// reads what reaches it).
    fn core() -> (Core, mpsc::Receiver<Job<Token>>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_string_lossy().into_owned();
        let cfg = Args::parse_from(["core", "--data-dir", &data_dir]).cfg;
        let path = dir.path().join("bus.db");
        drop(store::open(&path, cfg.durability).unwrap());
        let reader = Reader::new(store::connect(&path, cfg.durability).unwrap());
        let (jobs_tx, jobs) = mpsc::channel();
        let (out, _) = tokio::sync::mpsc::unbounded_channel();
        (Core::load(cfg, reader, jobs_tx, out).unwrap(), jobs, dir)
    }

    /// Acks nobody waits for are held back, however many come within `--ack-delay`, until
    /// `MAX_DEFERRED` are held: then they all go to the writer at once, as one unsynced job
    /// in the order they were made, and nothing is held any more.
    #[test]
    fn held_back_acks_go_to_the_writer_at_once_when_too_many_are_held() {
        let (mut core, jobs, _dir) = core();
        let ack = |seq: u64| Write::Acked {
            group: Arc::from("g"),
            seqs: vec![seq],
        };
        let last = MAX_DEFERRED as u64 - 1;
        for seq in 0..last {
            core.defer(vec![ack(seq)]);
        }
        assert!(jobs.try_recv().is_err(), "held back");
        assert!(core.deferred_until.is_some());

        core.defer(vec![ack(last)]);
        let job = jobs.try_recv().expect("sent once the limit is reached");
        let seqs: Vec<u64> = job
            .writes
            .iter()
            .map(|w| match w {
                Write::Acked { seqs, .. } => seqs[0],
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, (0..=last).collect::<Vec<_>>());
        assert!(!job.sync, "nobody waits for them");
        assert!(core.deferred.is_empty() && core.deferred_until.is_none());
        assert!(jobs.try_recv().is_err(), "one job");
        assert_eq!(core.outstanding_jobs, 1);
    }
}
