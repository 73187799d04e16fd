//! The broker's state machine. It runs on one thread and owns every group, session and
//! timer, so no state is shared or locked; the network tasks and the store's writer talk to
//! it through one channel of [`Input`]s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use zeromq::ZmqMessage;

use super::BrokerConfig;
use super::group::{Filter, Group, Member, Pending, Slot};
use crate::store::{self, Done, Event, Job, Reader, Write};
use tix_bus_client::protocol::{
    self, DeadLetterQuery, Hello, ReplayRequest, Request, SubscribeOptions, WireEvent,
};

/// Everything the core reacts to.
#[derive(Debug)]
pub enum Input {
    /// The writer committed (or failed) these jobs.
    Committed(Vec<Done<Token>>),
    /// The transport saw a peer's connection close.
    Disconnected(Bytes),
    /// Finish in-flight work and stop.
    Stop,
}

/// What to answer once a job is durable.
#[derive(Debug)]
pub enum Token {
    PubAck { peer: Bytes, corr: u64, n: u32 },
    Ok { peer: Bytes, corr: u64, body: Bytes },
    Silent,
}

#[derive(Debug)]
struct Session {
    last_seen: Instant,
    timeout: Duration,
    groups: Vec<usize>,
}

/// Events a MSG message carries at most, so one message stays a reasonable size.
const MAX_EVENTS_PER_MSG: usize = 512;
/// Events read from disk at once by a group behind the memory cache.
const BACKLOG_READ: usize = 512;
/// ... and at most this many payload bytes.
const BACKLOG_BYTES: usize = 4 << 20;
/// Log positions one pump may look at before yielding to other work.
const SCAN_BUDGET: usize = 4096;

pub struct Core {
    cfg: BrokerConfig,
    reader: Reader,
    jobs: Option<mpsc::Sender<Job<Token>>>,
    out: UnboundedSender<ZmqMessage>,
    outstanding_jobs: usize,
    head: u64,
    /// The newest committed events, bounded by `cfg.cache_bytes`.
    cache: VecDeque<Arc<Event>>,
    cache_bytes: usize,
    subject_counts: HashMap<String, u64>,
    groups: Vec<Group>,
    group_index: HashMap<Arc<str>, usize>,
    sessions: HashMap<Bytes, Session>,
    /// Ack deadlines, checked lazily against the pending entry when they fall due.
    timers: BinaryHeap<Reverse<(Instant, usize, u64, Slot)>>,
    next_liveness_check: Instant,
    next_prune: Instant,
    /// Groups whose scan ran out of budget and should go on at the next turn.
    repump: Vec<usize>,
    stopping: bool,
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

    fn add_group(&mut self, g: Group) -> usize {
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

    fn next_deadline(&self) -> Instant {
        if !self.repump.is_empty() {
            return Instant::now();
        }
        let mut next = self.next_liveness_check.min(self.next_prune);
        if let Some(Reverse((t, ..))) = self.timers.peek() {
            next = next.min(*t);
        }
        next
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Committed(done) => self.on_committed(done),
            Input::Disconnected(peer) => {
                if self.sessions.contains_key(&peer) {
                    tracing::info!(peer = %hex(&peer), "peer disconnected");
                    self.drop_session(&peer);
                }
            }
            Input::Stop => {
                tracing::info!("stopping: finishing queued writes");
                self.stopping = true;
                self.persist_floors();
            }
        }
    }

    fn send(&self, frames: Vec<Bytes>) {
        // The send task only goes away when the process stops.
        let _ = self.out.send(msg(frames));
    }

    fn reply_ok(&self, peer: &Bytes, corr: u64, body: Bytes) {
        self.send(vec![
            peer.clone(),
            Bytes::from_static(b"OK"),
            protocol::u64_frame(corr),
            body,
        ]);
    }

    fn reply_err(&self, peer: &Bytes, corr: u64, message: &str) {
        self.send(vec![
            peer.clone(),
            Bytes::from_static(b"ERR"),
            protocol::u64_frame(corr),
            Bytes::from(message.to_string()),
        ]);
    }

    fn submit(&mut self, writes: Vec<Write>, token: Token) {
        let Some(jobs) = &self.jobs else { return };
        if jobs.send(Job { writes, token }).is_ok() {
            self.outstanding_jobs += 1;
        } else {
            tracing::error!("the store writer is gone; a write was dropped");
        }
    }

    fn on_message(&mut self, mut frames: Vec<Bytes>) {
        if frames.len() < 2 {
            return;
        }
        let peer = frames.remove(0);
        let known = if let Some(s) = self.sessions.get_mut(&peer) {
            s.last_seen = Instant::now();
            true
        } else {
            false
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
        match request {
            Request::Ping => self.send(vec![
                peer,
                Bytes::from_static(b"PONG"),
                Bytes::from_static(if known { b"1" } else { b"0" }),
            ]),
            Request::Bye => self.drop_session(&peer),
            Request::Hello(corr, hello) => self.on_hello(peer, corr, hello),
            Request::Publish(corr, events) => self.on_publish(peer, corr, events),
            Request::Subscribe(corr, opts) => self.on_subscribe(peer, corr, opts, known),
            Request::Unsubscribe(corr, group) => {
                if let Some(&gi) = self.group_index.get(group.as_str()) {
                    self.remove_member(gi, &peer);
                    if let Some(s) = self.sessions.get_mut(&peer) {
                        s.groups.retain(|&g| g != gi);
                    }
                    self.pump(gi);
                }
                self.reply_ok(&peer, corr, Bytes::new());
            }
            Request::Ack(corr, group, seqs) => self.on_ack(peer, corr, &group, &seqs),
            Request::Nak(corr, group, seqs) => {
                let Some(&gi) = self.group_index.get(group.as_str()) else {
                    return self.reply_err(&peer, corr, "unknown group");
                };
                for seq in seqs {
                    // Only the holder may hand an event back: a NAK from a member whose ack
                    // wait already passed must not take it from the next one.
                    self.groups[gi].requeue_held_by(seq, Slot::Log, &peer);
                    self.groups[gi].requeue_held_by(seq, Slot::Replay, &peer);
                }
                self.pump(gi);
                self.reply_ok(&peer, corr, Bytes::new());
            }
            Request::Stats(corr) => match self.stats() {
                Ok(body) => self.reply_ok(&peer, corr, body),
                Err(e) => self.reply_err(&peer, corr, &format!("stats failed: {e}")),
            },
            Request::DeadLetters(corr, q) => self.on_dead_letters(peer, corr, q),
            Request::Replay(corr, r) => self.on_replay(peer, corr, r),
        }
    }

    fn on_hello(&mut self, peer: Bytes, corr: u64, hello: Hello) {
        let heartbeat = Duration::from_millis(hello.heartbeat_ms.clamp(50, 60_000));
        // A peer that says hello again starts afresh: whatever it held goes back.
        self.drop_session(&peer);
        self.sessions.insert(
            peer.clone(),
            Session {
                last_seen: Instant::now(),
                timeout: heartbeat * 3,
                groups: Vec::new(),
            },
        );
        tracing::info!(peer = %hex(&peer), client = %hello.client, "session opened");
        let body = json!({
            "heartbeatMs": heartbeat.as_millis() as u64,
            "maxEventBytes": self.cfg.max_event_bytes,
        })
        .to_string();
        self.reply_ok(&peer, corr, Bytes::from(body));
    }

    fn on_publish(&mut self, peer: Bytes, corr: u64, events: Vec<WireEvent>) {
        let size: usize = events.iter().map(|e| e.payload.len()).sum();
        if let Some(e) = events
            .iter()
            .find(|e| e.payload.len() > self.cfg.max_event_bytes)
        {
            let message = format!(
                "event {} is {} bytes; the limit is {}",
                String::from_utf8_lossy(&e.id),
                e.payload.len(),
                self.cfg.max_event_bytes
            );
            tracing::warn!(peer = %hex(&peer), %message, "refused an oversized event");
            return self.reply_err(&peer, corr, &message);
        }
        tracing::trace!(n = events.len(), size, "publish");
        let n = events.len() as u32;
        self.submit(
            vec![Write::Publish(events)],
            Token::PubAck { peer, corr, n },
        );
    }

    fn on_subscribe(&mut self, peer: Bytes, corr: u64, opts: SubscribeOptions, known: bool) {
        if !known {
            return self.reply_err(&peer, corr, "no session: send HELLO first");
        }
        let name: Arc<str> = Arc::from(opts.group.as_str());
        let filter = Filter::new(&opts.subjects);
        let gi = match self.group_index.get(&name) {
            Some(&gi) => {
                let g = &self.groups[gi];
                let others = g.members.iter().any(|m| m.peer != peer);
                let differs = g.subjects != opts.subjects
                    || g.ack_wait.as_millis() as u64 != opts.ack_wait_ms
                    || g.max_in_flight != opts.max_in_flight
                    || g.max_deliveries != opts.max_deliveries;
                if g.ephemeral != opts.ephemeral || (others && differs) {
                    // Two deployments disagreeing on a live group would silently skip
                    // events of a subject or break its ordering: refuse instead.
                    let message = format!(
                        "group {name} is in use with other options (subjects {:?}, maxInFlight {}); stop its members first or use another group",
                        g.subjects, g.max_in_flight
                    );
                    return self.reply_err(&peer, corr, &message);
                }
                gi
            }
            None => {
                let row = store::GroupRow {
                    name: opts.group.clone(),
                    subjects: opts.subjects.clone(),
                    ack_wait_ms: opts.ack_wait_ms,
                    max_in_flight: opts.max_in_flight,
                    max_deliveries: opts.max_deliveries,
                    ack_floor: 0,
                };
                let mut g = Group::from_row(&row, Default::default());
                if opts.ephemeral {
                    g.ephemeral = true;
                    g.cursor = self.head;
                    g.persisted_floor = self.head;
                } else {
                    tracing::info!(group = %name, subjects = ?opts.subjects, "new group starts at the beginning of the log");
                }
                self.add_group(g)
            }
        };
        let ephemeral = opts.ephemeral;
        let g = &mut self.groups[gi];
        g.subjects = opts.subjects;
        g.filter = filter;
        g.ack_wait = Duration::from_millis(opts.ack_wait_ms);
        g.max_in_flight = opts.max_in_flight;
        g.max_deliveries = opts.max_deliveries;
        if !g.members.iter().any(|m| m.peer == peer) {
            g.members.push(Member {
                peer: peer.clone(),
                in_flight: 0,
            });
        }
        let row = g.row();
        if let Some(s) = self.sessions.get_mut(&peer)
            && !s.groups.contains(&gi)
        {
            s.groups.push(gi);
        }
        let body = Bytes::from(json!({ "group": &*name }).to_string());
        if ephemeral {
            self.reply_ok(&peer, corr, body);
        } else {
            // The member receives events only after its OK, so it is ready for them.
            self.submit(
                vec![Write::UpsertGroup(row)],
                Token::Ok { peer, corr, body },
            );
        }
        self.pump(gi);
    }

    fn on_ack(&mut self, peer: Bytes, corr: u64, group: &str, seqs: &[u64]) {
        let Some(&gi) = self.group_index.get(group) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let mut writes = Vec::new();
        let mut acked = Vec::with_capacity(seqs.len());
        let g = &mut self.groups[gi];
        for &seq in seqs {
            if g.remove(seq, Slot::Log).is_some() {
                acked.push(seq);
            } else if g.remove(seq, Slot::Replay).is_some() {
                writes.push(Write::DeleteDeadLetter {
                    group: g.name.clone(),
                    seq,
                });
            } else if seq > g.cursor && seq <= self.head {
                // Delivered before a broker restart and acked after it, ahead of the
                // rescan: record it so the rescan does not deliver it again.
                g.acked_ahead.insert(seq);
                acked.push(seq);
            }
            // Anything else was acked already or dead-lettered: nothing to do.
        }
        self.after_settled(gi, acked, &mut writes);
        self.submit(
            writes,
            Token::Ok {
                peer,
                corr,
                body: Bytes::new(),
            },
        );
        self.pump(gi);
    }

    /// Records that `settled` positions (acked or dead-lettered) are done for the group.
    fn after_settled(&mut self, gi: usize, settled: Vec<u64>, writes: &mut Vec<Write>) {
        let g = &mut self.groups[gi];
        if g.ephemeral {
            return;
        }
        let floor = g.floor();
        if floor > g.persisted_floor {
            g.persisted_floor = floor;
            writes.push(Write::Floor {
                group: g.name.clone(),
                floor,
            });
        }
        let above: Vec<u64> = settled.into_iter().filter(|&s| s > floor).collect();
        if !above.is_empty() {
            writes.push(Write::Acked {
                group: g.name.clone(),
                seqs: above,
            });
        }
    }

    fn on_dead_letters(&mut self, peer: Bytes, corr: u64, q: DeadLetterQuery) {
        let limit = q.limit.unwrap_or(1000).min(10_000);
        match self.reader.dead_letters(q.group.as_deref(), limit, false) {
            Ok(list) => {
                let body = serde_json::to_vec(&list).unwrap_or_default();
                self.reply_ok(&peer, corr, Bytes::from(body));
            }
            Err(e) => self.reply_err(&peer, corr, &format!("reading dead letters failed: {e}")),
        }
    }

    fn on_replay(&mut self, peer: Bytes, corr: u64, r: ReplayRequest) {
        let Some(&gi) = self.group_index.get(r.group.as_str()) else {
            return self.reply_err(&peer, corr, "unknown group");
        };
        let dead = match self.reader.dead_letter_events(&r.group) {
            Ok(d) => d,
            Err(e) => {
                return self.reply_err(&peer, corr, &format!("reading dead letters failed: {e}"));
            }
        };
        let now = Instant::now();
        let g = &mut self.groups[gi];
        let mut seqs = Vec::new();
        for event in dead {
            let seq = event.seq;
            if r.seqs.as_ref().is_some_and(|only| !only.contains(&seq)) {
                continue;
            }
            // Asked twice before the first request's write landed: it is already back.
            if g.replays.contains_key(&seq) {
                continue;
            }
            g.replays.insert(
                seq,
                Pending {
                    event,
                    deliveries: 0,
                    member: None,
                    deadline: now,
                },
            );
            g.ready.insert((seq, Slot::Replay));
            seqs.push(seq);
        }
        tracing::info!(group = %g.name, n = seqs.len(), "replaying dead letters");
        let body = Bytes::from(json!({ "replayed": seqs.len() }).to_string());
        let write = Write::SetReplaying {
            group: g.name.clone(),
            seqs,
            replaying: true,
            deliveries: 0,
        };
        self.submit(vec![write], Token::Ok { peer, corr, body });
        self.pump(gi);
    }

    fn on_committed(&mut self, done: Vec<Done<Token>>) {
        let mut new_events = false;
        for d in done {
            self.outstanding_jobs -= 1;
            match d.result {
                Ok(fx) => {
                    for e in fx.inserted {
                        new_events = true;
                        self.head = self.head.max(e.seq);
                        *self
                            .subject_counts
                            .entry(String::from_utf8_lossy(&e.subject).into_owned())
                            .or_default() += 1;
                        self.cache_bytes += e.weight();
                        self.cache.push_back(e);
                    }
                    for (subject, n) in fx.pruned {
                        if let Some(c) = self.subject_counts.get_mut(&subject) {
                            *c = c.saturating_sub(n);
                        }
                    }
                    match d.token {
                        Token::PubAck { peer, corr, n } => self.send(vec![
                            peer,
                            Bytes::from_static(b"PUBACK"),
                            protocol::u64_frame(corr),
                            protocol::u32_frame(n),
                        ]),
                        Token::Ok { peer, corr, body } => self.reply_ok(&peer, corr, body),
                        Token::Silent => {}
                    }
                }
                Err(e) => match d.token {
                    Token::PubAck { peer, corr, .. } | Token::Ok { peer, corr, .. } => {
                        self.reply_err(&peer, corr, &format!("not stored: {e}"))
                    }
                    Token::Silent => {}
                },
            }
        }
        while self.cache_bytes > self.cfg.cache_bytes {
            match self.cache.pop_front() {
                Some(e) => self.cache_bytes -= e.weight(),
                None => break,
            }
        }
        if new_events {
            for gi in 0..self.groups.len() {
                self.pump(gi);
            }
        }
    }

    /// The first event after `after` for a group, from its disk backlog, the cache, or disk.
    fn event_after(&mut self, gi: usize, after: u64) -> Option<Arc<Event>> {
        let g = &mut self.groups[gi];
        while let Some(e) = g.backlog.front() {
            if e.seq > after {
                return g.backlog.pop_front();
            }
            g.backlog.pop_front();
        }
        let cached = self
            .cache
            .front()
            .is_some_and(|first| first.seq <= after.saturating_add(1));
        if cached {
            let i = self.cache.partition_point(|e| e.seq <= after);
            return self.cache.get(i).cloned();
        }
        if after >= self.head {
            return None;
        }
        match self.reader.events_after(after, BACKLOG_READ, BACKLOG_BYTES) {
            Ok(events) => {
                g.backlog.extend(events);
                g.backlog.pop_front()
            }
            Err(e) => {
                tracing::error!(error = %e, group = %g.name, "reading the log failed");
                None
            }
        }
    }

    /// The next event of the group's subjects it has not looked at yet.
    fn next_new(&mut self, gi: usize, budget: &mut usize) -> Option<Arc<Event>> {
        loop {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let cursor = self.groups[gi].cursor;
            let e = self.event_after(gi, cursor)?;
            let g = &mut self.groups[gi];
            g.cursor = e.seq;
            if g.acked_ahead.remove(&e.seq) {
                continue;
            }
            if g.filter.matches(&e.subject) {
                return Some(e);
            }
        }
    }

    /// Hands events to members with room, in log order, redeliveries first.
    fn pump(&mut self, gi: usize) {
        if self.stopping {
            return;
        }
        if self.groups[gi].retired {
            return;
        }
        let now = Instant::now();
        let mut batches: Vec<(usize, Vec<Bytes>)> = Vec::new();
        let mut writes = Vec::new();
        let mut budget = SCAN_BUDGET;
        while let Some(mi) = self.groups[gi].member_with_room() {
            let (seq, slot) = if let Some((seq, slot)) = self.groups[gi].ready.pop_first() {
                // Requeued by a NAK or a lost member: it may have used up its deliveries.
                let g = &self.groups[gi];
                let exhausted = match slot {
                    Slot::Log => g.pending.get(&seq),
                    Slot::Replay => g.replays.get(&seq),
                }
                .is_some_and(|p| p.deliveries >= g.max_deliveries);
                if exhausted {
                    self.groups[gi].next_member = mi;
                    self.dead_letter(gi, seq, slot, &mut writes);
                    continue;
                }
                (seq, slot)
            } else {
                let Some(event) = self.next_new(gi, &mut budget) else {
                    // Undo the round-robin step: nobody received anything.
                    let g = &mut self.groups[gi];
                    g.next_member = mi;
                    if budget == 0 && !self.repump.contains(&gi) {
                        // A long stretch of other subjects: go on at the next turn of the
                        // loop so other peers are served in between.
                        self.repump.push(gi);
                    }
                    break;
                };
                let seq = event.seq;
                self.groups[gi].pending.insert(
                    seq,
                    Pending {
                        event,
                        deliveries: 0,
                        member: None,
                        deadline: now,
                    },
                );
                (seq, Slot::Log)
            };
            let g = &mut self.groups[gi];
            let ack_wait = g.ack_wait;
            let peer = g.members[mi].peer.clone();
            let Some(p) = g.slot_mut(seq, slot) else {
                continue;
            };
            p.deliveries += 1;
            p.member = Some(peer);
            p.deadline = now + ack_wait;
            let (deliveries, event) = (p.deliveries, p.event.clone());
            g.members[mi].in_flight += 1;
            g.in_flight += 1;
            g.delivered += 1;
            if deliveries > 1 {
                g.redelivered += 1;
            }
            self.timers.push(Reverse((now + ack_wait, gi, seq, slot)));
            let frames = match batches.iter_mut().find(|(m, _)| *m == mi) {
                Some((_, f)) => f,
                None => {
                    let g = &self.groups[gi];
                    batches.push((
                        mi,
                        vec![
                            g.members[mi].peer.clone(),
                            Bytes::from_static(b"MSG"),
                            g.name_frame.clone(),
                        ],
                    ));
                    &mut batches.last_mut().expect("just pushed").1
                }
            };
            frames.push(protocol::delivery_header(seq, deliveries));
            frames.push(event.id.clone());
            frames.push(event.subject.clone());
            frames.push(event.payload.clone());
            if frames.len() >= 3 + 4 * MAX_EVENTS_PER_MSG {
                let pos = batches.iter().position(|(m, _)| *m == mi).expect("present");
                let (_, full) = batches.swap_remove(pos);
                self.send(full);
            }
        }
        for (_, frames) in batches {
            self.send(frames);
        }
        if !writes.is_empty() {
            self.submit(writes, Token::Silent);
        }
    }

    /// Moves an event that used up its deliveries to the dead-letter list.
    fn dead_letter(&mut self, gi: usize, seq: u64, slot: Slot, writes: &mut Vec<Write>) {
        let g = &mut self.groups[gi];
        let Some(p) = g.remove(seq, slot) else {
            return;
        };
        let deliveries = p.deliveries;
        tracing::warn!(group = %g.name, seq, deliveries, "dead letter after max deliveries");
        if g.ephemeral {
            return; // nobody could replay it: a throwaway group's failures are only logged
        }
        match slot {
            Slot::Log => {
                writes.push(Write::DeadLetter {
                    group: g.name.clone(),
                    event: p.event,
                    deliveries,
                });
                self.after_settled(gi, vec![seq], writes);
            }
            Slot::Replay => writes.push(Write::SetReplaying {
                group: g.name.clone(),
                seqs: vec![seq],
                replaying: false,
                deliveries,
            }),
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let mut touched = Vec::new();
        let mut writes = Vec::new();
        while let Some(Reverse((t, gi, seq, slot))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let g = &mut self.groups[gi];
            let Some(p) = g.slot_mut(seq, slot) else {
                continue;
            };
            if p.member.is_none() || p.deadline != t {
                continue; // acked, requeued or redelivered since: a stale timer
            }
            let deliveries = p.deliveries;
            if deliveries >= g.max_deliveries {
                self.dead_letter(gi, seq, slot, &mut writes);
            } else {
                tracing::debug!(group = %g.name, seq, deliveries, "ack wait passed; redelivering");
                g.requeue(seq, slot);
            }
            if !touched.contains(&gi) {
                touched.push(gi);
            }
        }
        if !writes.is_empty() {
            self.submit(writes, Token::Silent);
        }

        if now >= self.next_liveness_check {
            self.next_liveness_check = now + Duration::from_millis(100);
            let dead: Vec<Bytes> = self
                .sessions
                .iter()
                .filter(|(_, s)| now.duration_since(s.last_seen) > s.timeout)
                .map(|(p, _)| p.clone())
                .collect();
            for peer in dead {
                tracing::warn!(peer = %hex(&peer), "peer missed its heartbeats; dropping it");
                let groups = self.drop_session_quiet(&peer);
                touched.extend(groups);
            }
        }

        if now >= self.next_prune {
            self.next_prune = now + self.cfg.prune_interval;
            self.prune();
        }
        touched.append(&mut self.repump);
        touched.sort_unstable();
        touched.dedup();
        for gi in touched {
            self.pump(gi);
        }
        self.compact_timers();
    }

    /// Acked events leave their timers behind until they fall due; with long ack waits
    /// rebuild the heap from what is really in flight before it grows large.
    fn compact_timers(&mut self) {
        let live: usize = self.groups.iter().map(|g| g.in_flight as usize).sum();
        if self.timers.len() < 4096 || self.timers.len() < 4 * live {
            return;
        }
        let mut timers = BinaryHeap::with_capacity(live * 2);
        for (gi, g) in self.groups.iter().enumerate() {
            let held = g
                .pending
                .iter()
                .map(|(s, p)| (*s, Slot::Log, p))
                .chain(g.replays.iter().map(|(s, p)| (*s, Slot::Replay, p)));
            for (seq, slot, p) in held {
                if p.member.is_some() {
                    timers.push(Reverse((p.deadline, gi, seq, slot)));
                }
            }
        }
        self.timers = timers;
    }

    fn drop_session(&mut self, peer: &Bytes) {
        for gi in self.drop_session_quiet(peer) {
            self.pump(gi);
        }
    }

    fn drop_session_quiet(&mut self, peer: &Bytes) -> Vec<usize> {
        let Some(s) = self.sessions.remove(peer) else {
            return Vec::new();
        };
        for &gi in &s.groups {
            self.remove_member(gi, peer);
        }
        s.groups
    }

    fn remove_member(&mut self, gi: usize, peer: &Bytes) {
        let g = &mut self.groups[gi];
        g.remove_member(peer);
        if g.ephemeral && g.members.is_empty() && !g.retired {
            g.retire();
            self.group_index.remove(&g.name);
        }
    }

    fn persist_floors(&mut self) {
        let mut writes = Vec::new();
        for g in self.groups.iter_mut().filter(|g| !g.ephemeral) {
            let floor = g.floor();
            if floor > g.persisted_floor {
                g.persisted_floor = floor;
                writes.push(Write::Floor {
                    group: g.name.clone(),
                    floor,
                });
            }
        }
        if !writes.is_empty() {
            self.submit(writes, Token::Silent);
        }
    }

    /// Deletes events every group is done with and that are older than the retention age.
    fn prune(&mut self) {
        self.persist_floors();
        let upto = self
            .groups
            .iter()
            .filter(|g| !g.ephemeral)
            .map(|g| g.floor())
            .min()
            .unwrap_or(self.head);
        let before_ms = store::now_ms() - self.cfg.retention.as_millis() as i64;
        if upto > 0 {
            self.submit(vec![Write::Prune { upto, before_ms }], Token::Silent);
        }
    }

    fn stats(&self) -> store::Result<Bytes> {
        let dead: HashMap<String, u64> = self.reader.dead_letter_counts()?.into_iter().collect();
        let mut groups = Vec::with_capacity(self.groups.len());
        for g in self.groups.iter().filter(|g| !g.retired) {
            let subjects = match g.filter {
                Filter::All => None,
                Filter::Only(_) => Some(&g.subjects[..]),
            };
            groups.push(json!({
                "name": &*g.name,
                "subjects": g.subjects,
                "position": g.cursor,
                "floor": g.floor(),
                "lag": self.reader.count_after(g.cursor, subjects)?,
                "pending": g.unacked(),
                "inFlight": g.in_flight,
                "delivered": g.delivered,
                "redelivered": g.redelivered,
                "deadLetters": dead.get(&*g.name).copied().unwrap_or(0),
                "members": g.members.len(),
                "ackWaitMs": g.ack_wait.as_millis() as u64,
                "maxInFlight": g.max_in_flight,
                "maxDeliveries": g.max_deliveries,
                "ephemeral": g.ephemeral,
            }));
        }
        let body = json!({
            "head": self.head,
            "events": self.subject_counts.values().sum::<u64>(),
            "subjects": self.subject_counts,
            "sessions": self.sessions.len(),
            "groups": groups,
        });
        Ok(Bytes::from(body.to_string()))
    }
}

/// Short printable form of a peer identity for logs.
fn hex(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}
