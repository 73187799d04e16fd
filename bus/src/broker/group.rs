//! A durable queue group: its position in the log, its unacked events and its live members.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::store::{Event, GroupRow};

/// Which subjects a group receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    /// A handful of exact subjects: a linear scan beats hashing at this size.
    Only(Vec<Bytes>),
}

impl Filter {
    pub fn new(subjects: &[String]) -> Self {
        if subjects.iter().any(|s| s == "*") {
            Filter::All
        } else {
            Filter::Only(subjects.iter().map(|s| Bytes::from(s.clone())).collect())
        }
    }

    pub fn matches(&self, subject: &[u8]) -> bool {
        match self {
            Filter::All => true,
            Filter::Only(list) => list.iter().any(|s| s[..] == *subject),
        }
    }
}

/// An event handed to the group and not acked yet.
#[derive(Debug)]
pub struct Pending {
    pub event: Arc<Event>,
    pub deliveries: u32,
    /// The member holding it, or `None` while it waits for (re)delivery.
    pub member: Option<Bytes>,
    pub deadline: Instant,
}

#[derive(Debug)]
pub struct Member {
    pub peer: Bytes,
    pub in_flight: u32,
}

/// Where an unacked event lives: the group's own stream, or a replayed dead letter
/// (which the group's floor has already passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    Log,
    Replay,
}

#[derive(Debug)]
pub struct Group {
    pub name: Arc<str>,
    pub name_frame: Bytes,
    pub subjects: Vec<String>,
    pub filter: Filter,
    pub ack_wait: Duration,
    pub max_in_flight: u32,
    pub max_deliveries: u32,
    /// Every log position up to here has been looked at (dispatched or skipped).
    pub cursor: u64,
    /// The floor last written to bus.db.
    pub persisted_floor: u64,
    /// Positions acked before the scan reached them (acks kept from before a restart, or
    /// acks of events a member got before a reconnection): the scan skips them.
    pub acked_ahead: BTreeSet<u64>,
    pub pending: BTreeMap<u64, Pending>,
    pub replays: BTreeMap<u64, Pending>,
    /// Unacked events waiting for a member, lowest position first.
    pub ready: BTreeSet<(u64, Slot)>,
    /// Events read from disk ahead of the cursor, for a group behind the memory cache.
    pub backlog: VecDeque<Arc<Event>>,
    pub members: Vec<Member>,
    pub next_member: usize,
    pub in_flight: u32,
    pub delivered: u64,
    pub redelivered: u64,
    /// Not stored; see `SubscribeOptions::ephemeral`.
    pub ephemeral: bool,
    /// An ephemeral group whose last member left, or a durable one an operator dropped: an
    /// empty slot kept so indices stay valid.
    pub retired: bool,
    /// An operator's `DROP` is being committed: nobody may join or replay meanwhile.
    pub dropping: bool,
    /// An operator's `REWIND` is being committed: nobody may join, and its floor is
    /// neither stored nor pruned to, meanwhile.
    pub rewinding: bool,
    /// `REPLAY` reads of its dead letters under way on the ops thread: a `DISCARD` waits
    /// for them, or it would delete what they are about to send out.
    pub replay_reads: u32,
    /// Since when the group has had no member (its last left, or the broker started);
    /// `None` while it has some. A `DROP` waits for it to be long enough.
    pub idle_since: Option<Instant>,
}

impl Group {
    pub fn from_row(row: &GroupRow, acked_ahead: BTreeSet<u64>) -> Self {
        Group {
            name: Arc::from(row.name.as_str()),
            name_frame: Bytes::from(row.name.clone()),
            subjects: row.subjects.clone(),
            filter: Filter::new(&row.subjects),
            ack_wait: Duration::from_millis(row.ack_wait_ms),
            max_in_flight: row.max_in_flight,
            max_deliveries: row.max_deliveries,
            cursor: row.ack_floor,
            persisted_floor: row.ack_floor,
            acked_ahead,
            pending: BTreeMap::new(),
            replays: BTreeMap::new(),
            ready: BTreeSet::new(),
            backlog: VecDeque::new(),
            members: Vec::new(),
            next_member: 0,
            in_flight: 0,
            delivered: 0,
            redelivered: 0,
            ephemeral: false,
            retired: false,
            dropping: false,
            rewinding: false,
            replay_reads: 0,
            idle_since: Some(Instant::now()),
        }
    }

    pub fn row(&self) -> GroupRow {
        GroupRow {
            name: self.name.to_string(),
            subjects: self.subjects.clone(),
            ack_wait_ms: self.ack_wait.as_millis() as u64,
            max_in_flight: self.max_in_flight,
            max_deliveries: self.max_deliveries,
            ack_floor: self.persisted_floor,
        }
    }

    /// Every event of the group at or below this position is acked (or dead-lettered).
    pub fn floor(&self) -> u64 {
        match self.pending.first_key_value() {
            Some((seq, _)) => seq - 1,
            None => self.cursor,
        }
    }

    pub fn slot_mut(&mut self, seq: u64, slot: Slot) -> Option<&mut Pending> {
        match slot {
            Slot::Log => self.pending.get_mut(&seq),
            Slot::Replay => self.replays.get_mut(&seq),
        }
    }

    pub fn remove(&mut self, seq: u64, slot: Slot) -> Option<Pending> {
        let p = match slot {
            Slot::Log => self.pending.remove(&seq),
            Slot::Replay => self.replays.remove(&seq),
        }?;
        self.ready.remove(&(seq, slot));
        if let Some(peer) = &p.member {
            self.release_member(peer);
        }
        Some(p)
    }

    /// Like [`Group::requeue`], only when `peer` is the member holding the event.
    pub fn requeue_held_by(&mut self, seq: u64, slot: Slot, peer: &Bytes) {
        if self
            .slot_mut(seq, slot)
            .is_some_and(|p| p.member.as_ref() == Some(peer))
        {
            self.requeue(seq, slot);
        }
    }

    /// Takes an event back from the member holding it, so it is delivered again.
    pub fn requeue(&mut self, seq: u64, slot: Slot) {
        let Some(p) = self.slot_mut(seq, slot) else {
            return;
        };
        if let Some(peer) = p.member.take() {
            self.release_member(&peer);
            self.ready.insert((seq, slot));
        }
    }

    fn release_member(&mut self, peer: &Bytes) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(m) = self.members.iter_mut().find(|m| m.peer == *peer) {
            m.in_flight = m.in_flight.saturating_sub(1);
        }
    }

    /// Index of the next member with room for one more event, round robin.
    pub fn member_with_room(&mut self) -> Option<usize> {
        // Max in flight 1 means "strictly in order": one event at a time for the whole group.
        if self.max_in_flight == 1 && self.in_flight > 0 {
            return None;
        }
        let n = self.members.len();
        for i in 0..n {
            let idx = (self.next_member + i) % n;
            if self.members[idx].in_flight < self.max_in_flight {
                self.next_member = (idx + 1) % n;
                return Some(idx);
            }
        }
        None
    }

    /// Drops a member and requeues everything it held.
    pub fn remove_member(&mut self, peer: &Bytes) {
        let Some(pos) = self.members.iter().position(|m| m.peer == *peer) else {
            return;
        };
        let held: Vec<(u64, Slot)> = self
            .pending
            .iter()
            .map(|(s, p)| (*s, Slot::Log, p))
            .chain(self.replays.iter().map(|(s, p)| (*s, Slot::Replay, p)))
            .filter(|(_, _, p)| p.member.as_ref() == Some(peer))
            .map(|(s, slot, _)| (s, slot))
            .collect();
        for (seq, slot) in held {
            self.requeue(seq, slot);
        }
        self.members.remove(pos);
        if self.next_member >= self.members.len() {
            self.next_member = 0;
        }
        if self.members.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }

    /// Empties an ephemeral group that lost its last member, or a dropped durable one.
    pub fn retire(&mut self) {
        self.retired = true;
        self.acked_ahead.clear();
        self.pending.clear();
        self.replays.clear();
        self.ready.clear();
        self.backlog.clear();
        self.in_flight = 0;
    }

    /// Starts the group's scan again at position `from`, forgetting its acks from there on
    /// and what it held from there for redelivery (the scan finds those again). What it
    /// still owes below `from` stays owed. Only for a group without members.
    pub fn rewind_to(&mut self, from: u64) {
        let below = from.saturating_sub(1);
        self.cursor = self.cursor.min(below);
        self.persisted_floor = self.persisted_floor.min(below);
        self.acked_ahead.retain(|&seq| seq < from);
        self.pending.retain(|&seq, _| seq < from);
        self.ready
            .retain(|&(seq, slot)| slot == Slot::Replay || seq < from);
        self.backlog.clear();
    }

    pub fn unacked(&self) -> usize {
        self.pending.len() + self.replays.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(max_in_flight: u32) -> Group {
        let mut g = Group::from_row(
            &GroupRow {
                name: "g".into(),
                subjects: vec!["a".into()],
                ack_wait_ms: 1000,
                max_in_flight,
                max_deliveries: 3,
                ack_floor: 0,
            },
            BTreeSet::new(),
        );
        for p in [b"m1", b"m2"] {
            g.members.push(Member {
                peer: Bytes::from_static(p),
                in_flight: 0,
            });
        }
        g
    }

    fn hold(g: &mut Group, seq: u64, peer: &'static [u8]) {
        let event = Arc::new(Event::new(seq, format!("e{seq}").as_bytes(), b"a", b"", 0));
        g.pending.insert(
            seq,
            Pending {
                event,
                deliveries: 1,
                member: Some(Bytes::from_static(peer)),
                deadline: Instant::now(),
            },
        );
        g.in_flight += 1;
        g.members
            .iter_mut()
            .find(|m| m.peer == peer)
            .unwrap()
            .in_flight += 1;
        g.cursor = g.cursor.max(seq);
    }

    #[test]
    fn the_floor_stops_below_the_oldest_unacked_event() {
        let mut g = group(10);
        assert_eq!(g.floor(), 0);
        hold(&mut g, 3, b"m1");
        hold(&mut g, 5, b"m2");
        assert_eq!(g.floor(), 2);
        g.remove(3, Slot::Log);
        assert_eq!(g.floor(), 4);
        g.remove(5, Slot::Log);
        assert_eq!(g.floor(), 5);
    }

    /// A rewind starts the scan again at `from` and forgets acks and held events from
    /// there; what the group owed below `from` stays owed, and a group not that far yet
    /// keeps its place.
    #[test]
    fn a_rewind_forgets_from_its_start_on_and_keeps_what_is_owed_below() {
        let mut g = group(10);
        hold(&mut g, 3, b"m1");
        hold(&mut g, 8, b"m2");
        g.members.clear();
        g.requeue(3, Slot::Log);
        g.requeue(8, Slot::Log);
        g.ready.insert((5, Slot::Replay));
        g.cursor = 10;
        g.persisted_floor = 2;
        g.acked_ahead.extend([4, 9, 12]);
        g.rewind_to(6);
        assert_eq!(g.cursor, 5);
        assert_eq!(g.persisted_floor, 2, "never raised");
        assert_eq!(g.pending.keys().copied().collect::<Vec<_>>(), [3]);
        assert_eq!(
            g.ready.iter().copied().collect::<Vec<_>>(),
            [(3, Slot::Log), (5, Slot::Replay)]
        );
        assert_eq!(g.acked_ahead.iter().copied().collect::<Vec<_>>(), [4]);
        assert_eq!(g.floor(), 2);

        // Not that far yet: its place stays, its acks from the start on go.
        let mut behind = group(10);
        behind.cursor = 2;
        behind.acked_ahead.extend([7, 9]);
        behind.rewind_to(8);
        assert_eq!(behind.cursor, 2);
        assert_eq!(behind.acked_ahead.iter().copied().collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn a_dropped_member_gives_its_events_back_to_the_group() {
        let mut g = group(10);
        hold(&mut g, 1, b"m1");
        hold(&mut g, 2, b"m2");
        g.remove_member(&Bytes::from_static(b"m1"));
        assert_eq!(
            g.ready.iter().copied().collect::<Vec<_>>(),
            vec![(1, Slot::Log)]
        );
        assert_eq!(g.in_flight, 1);
        assert_eq!(g.members.len(), 1);
    }

    #[test]
    fn max_in_flight_one_serialises_the_whole_group() {
        let mut g = group(1);
        assert!(g.member_with_room().is_some());
        hold(&mut g, 1, b"m1");
        assert_eq!(
            g.member_with_room(),
            None,
            "m2 is idle but the group is ordered"
        );
    }

    #[test]
    fn members_are_picked_round_robin_within_their_limit() {
        let mut g = group(2);
        let a = g.member_with_room().unwrap();
        let b = g.member_with_room().unwrap();
        assert_ne!(a, b);
        g.members[0].in_flight = 2;
        assert_eq!(g.member_with_room(), Some(1));
        assert_eq!(g.member_with_room(), Some(1));
    }

    #[test]
    fn wildcard_and_exact_filters() {
        assert!(Filter::new(&["*".into()]).matches(b"anything"));
        let f = Filter::new(&["ticket:created".into(), "ticket:updated".into()]);
        assert!(f.matches(b"ticket:updated"));
        assert!(!f.matches(b"ticket:update"));
    }
}
