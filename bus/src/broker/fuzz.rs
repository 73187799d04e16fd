//! Property tests of the request path over arbitrary frames: the protocol parser never
//! panics, and the broker's core — parse, authentication gate, dispatch, the commands, the
//! store's writer and the ops thread behind it — answers every message or drops it, never
//! panics, and sends nothing malformed.
//!
//! `PROPTEST_CASES=5000 cargo test -p tix-bus --lib fuzz` runs more cases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use proptest::prelude::*;
use proptest::sample::select;
use tix_bus_client::protocol::{self, Request};
use tokio::sync::mpsc::{UnboundedReceiver, error::TryRecvError};
use zeromq::ZmqMessage;

use super::BrokerConfig;
use super::auth::Auth;
use super::core::{Core, Input};
use super::ops::Ops;
use crate::policy::Policy;
use crate::store;

const PEERS: [&[u8]; 3] = [b"peer-a", b"peer-b", b"peer-c"];
const COMMANDS: [&str; 19] = [
    "HELLO", "AUTH", "PUB", "SUB", "UNSUB", "ACK", "NAK", "TOUCH", "STATS", "DLQ", "REPLAY",
    "DROP", "REWIND", "DISCARD", "PING", "BYE", "MSG", "OK", "hello",
];
const NAMES: [&str; 6] = ["g", "h", "tail-1", "s", "*", ""];

fn le(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_le_bytes())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&NAMES[..]).prop_map(str::to_string),
        "[a-z:*-]{0,12}",
        ".{0,4}",
    ]
}

fn number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        (0u64..5).prop_map(Into::into),
        any::<u64>().prop_map(Into::into),
        any::<i64>().prop_map(Into::into),
        Just(serde_json::Value::Null),
        Just("12".into()),
    ]
}

/// JSON bodies shaped like the protocol's, with odd values.
fn body() -> impl Strategy<Value = Bytes> {
    let json = prop_oneof![
        (name(), number(), number()).prop_map(|(c, h, p)| {
            serde_json::json!({"client": c, "heartbeatMs": h, "protocol": p})
        }),
        (
            name(),
            prop::collection::vec(name(), 0..3),
            number(),
            number(),
            number(),
            any::<bool>()
        )
            .prop_map(|(g, s, a, m, d, e)| {
                serde_json::json!({"group": g, "subjects": s, "ackWaitMs": a,
                    "maxInFlight": m, "maxDeliveries": d, "ephemeral": e})
            }),
        (name(), number()).prop_map(|(g, l)| serde_json::json!({"group": g, "limit": l})),
        (name(), prop::collection::vec(0u64..8, 0..4))
            .prop_map(|(g, s)| serde_json::json!({"group": g, "seqs": s})),
        Just(serde_json::json!({})),
        Just(serde_json::json!([1, 2])),
    ];
    prop_oneof![
        4 => json.prop_map(|j| Bytes::from(j.to_string())),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from),
        1 => Just(Bytes::from_static(b"{\"group\":")),
    ]
}

/// One frame after the command: a correlation id, positions, a name, a body, or noise.
fn frame() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => (0u64..6).prop_map(le),
        1 => any::<u64>().prop_map(le),
        2 => prop::collection::vec(0u64..8, 1..4).prop_map(|s| protocol::u64s_frame(&s)),
        3 => name().prop_map(Bytes::from),
        3 => body(),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from),
        1 => Just(Bytes::new()),
    ]
}

/// A group or subject from a small set, so requests meet each other's groups and events.
fn known() -> impl Strategy<Value = Bytes> {
    select(&["g", "h", "s", "t"][..]).prop_map(|n| Bytes::from_static(n.as_bytes()))
}

/// A request as a client would send it, with plausible and odd values.
fn request() -> impl Strategy<Value = Vec<Bytes>> {
    let corr = (0u64..6).prop_map(le);
    let seqs = prop::collection::vec(0u64..12, 1..5).prop_map(|s| protocol::u64s_frame(&s));
    let hello = (name(), 0u64..100_000).prop_map(|(c, h)| {
        Bytes::from(serde_json::json!({"client": c, "heartbeatMs": h}).to_string())
    });
    let sub = (
        known(),
        prop::collection::vec(select(&["s", "t", "*", "u"][..]), 1..3),
        1u64..100_000,
        prop_oneof![9 => 1u32..5, 1 => Just(0)],
        prop_oneof![9 => 1u32..4, 1 => Just(0)],
        prop::bool::weighted(0.2),
    )
        .prop_map(|(g, s, a, m, d, e)| {
            let g = String::from_utf8_lossy(&g).into_owned();
            Bytes::from(
                serde_json::json!({"group": g, "subjects": s, "ackWaitMs": a,
                    "maxInFlight": m, "maxDeliveries": d, "ephemeral": e})
                .to_string(),
            )
        });
    let events = prop::collection::vec(
        (
            (0u64..30).prop_map(|i| Bytes::from(format!("e{i}"))),
            known(),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from),
        ),
        1..4,
    );
    let with = |command: &'static [u8]| Just(Bytes::from_static(command));
    prop_oneof![
        2 => (with(b"HELLO"), corr.clone(), hello).prop_map(|(a, b, c)| vec![a, b, c]),
        3 => (with(b"PUB"), corr.clone(), events).prop_map(|(a, b, events)| {
            let mut f = vec![a, b];
            for (id, subject, payload) in events {
                f.extend([id, subject, payload]);
            }
            f
        }),
        2 => (with(b"SUB"), corr.clone(), sub).prop_map(|(a, b, c)| vec![a, b, c]),
        1 => (with(b"UNSUB"), corr.clone(), known()).prop_map(|(a, b, c)| vec![a, b, c]),
        3 => (select(&["ACK", "NAK", "TOUCH"][..]), corr.clone(), known(), seqs.clone()).prop_map(
            |(a, b, c, d)| vec![Bytes::from_static(a.as_bytes()), b, c, d]
        ),
        1 => (with(b"STATS"), corr.clone()).prop_map(|(a, b)| vec![a, b]),
        1 => (with(b"DLQ"), corr.clone(), body()).prop_map(|(a, b, c)| vec![a, b, c]),
        1 => (with(b"DROP"), corr.clone(), known(), any::<bool>()).prop_map(|(a, b, g, force)| {
            let g = String::from_utf8_lossy(&g).into_owned();
            let body = serde_json::json!({ "group": g, "force": force }).to_string();
            vec![a, b, Bytes::from(body)]
        }),
        1 => (with(b"REWIND"), corr.clone(), known(), prop_oneof![Just(i64::MIN), Just(i64::MAX), -5i64..5_000]).prop_map(|(a, b, g, since)| {
            let g = String::from_utf8_lossy(&g).into_owned();
            let body = serde_json::json!({ "group": g, "sinceMs": since }).to_string();
            vec![a, b, Bytes::from(body)]
        }),
        1 => (with(b"DISCARD"), corr.clone(), known(), prop::option::of(prop::collection::vec(0u64..12, 0..3))).prop_map(
            |(a, b, g, s)| {
                let g = String::from_utf8_lossy(&g).into_owned();
                let body = serde_json::json!({"group": g, "seqs": s}).to_string();
                vec![a, b, Bytes::from(body)]
            }
        ),
        1 => (with(b"REPLAY"), corr, known(), prop::collection::vec(0u64..12, 0..3)).prop_map(
            |(a, b, g, s)| {
                let g = String::from_utf8_lossy(&g).into_owned();
                let body = serde_json::json!({"group": g, "seqs": s}).to_string();
                vec![a, b, Bytes::from(body)]
            }
        ),
        1 => Just(vec![Bytes::from_static(b"PING")]),
        1 => Just(vec![Bytes::from_static(b"BYE")]),
    ]
}

/// A message as a peer sends it: mostly a request, often a command with whatever frames,
/// sometimes anything at all.
fn message() -> impl Strategy<Value = (usize, Vec<Bytes>)> {
    let shaped = (select(&COMMANDS[..]), prop::collection::vec(frame(), 0..8)).prop_map(
        |(command, mut rest)| {
            rest.insert(0, Bytes::from_static(command.as_bytes()));
            rest
        },
    );
    let anything = prop::collection::vec(frame(), 0..6);
    (
        0..PEERS.len(),
        prop_oneof![6 => request(), 3 => shaped, 1 => anything],
    )
}

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    cfg: BrokerConfig,
}

/// A core with its writer and ops threads, on a fresh `bus.db`.
struct Harness {
    core: Core,
    inputs: UnboundedReceiver<Input>,
    out: UnboundedReceiver<ZmqMessage>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(auth: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_string_lossy().into_owned();
        let cfg = Args::parse_from([
            "fuzz",
            "--data-dir",
            &data_dir,
            "--durability",
            "normal",
            "--max-event-bytes",
            "32",
        ])
        .cfg;
        let path = dir.path().join("bus.db");
        let write_conn = store::open(&path, cfg.durability).unwrap();
        let reader = store::Reader::new(store::connect(&path, cfg.durability).unwrap());
        let (inputs_tx, inputs) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, out) = tokio::sync::mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel();
        let to_core = inputs_tx.clone();
        std::thread::spawn(move || {
            store::run_writer(
                write_conn,
                jobs_rx,
                move |done, _| {
                    let _ = to_core.send(Input::Committed(done));
                },
                8192,
            )
        });
        let ops = Ops::start(&path, inputs_tx).unwrap();
        let mut core = Core::load(cfg, reader, jobs_tx, out_tx).unwrap();
        core.ops = Some(ops);
        if auth {
            let policy = Policy::parse(
                r#"
                [clients.orders]
                key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
                publish = ["s"]
                consume = ["*"]
                groups = ["g"]
                "#,
            )
            .unwrap();
            core.auth = Auth::new(Some(Arc::new(policy)));
        }
        Harness {
            core,
            inputs,
            out,
            _dir: dir,
        }
    }

    /// Feeds one message and lets the writer and the ops thread finish what it started;
    /// what the broker sent meanwhile.
    fn feed(&mut self, peer: usize, frames: &[Bytes]) -> Vec<Vec<Bytes>> {
        let mut message = vec![Bytes::from_static(PEERS[peer])];
        message.extend_from_slice(frames);
        self.core.on_message(message);
        let operator = matches!(
            frames.first().map(|f| &f[..]),
            Some(b"STATS" | b"DLQ" | b"REPLAY")
        );
        let mut sent = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while let Ok(m) = self.out.try_recv() {
                sent.push(m.into_vec());
            }
            let answered = sent.iter().any(|m| &m[1][..] != b"MSG");
            if self.core.outstanding_jobs == 0 && (!operator || answered) {
                return sent;
            }
            assert!(Instant::now() < deadline, "no answer within 10 s");
            match self.inputs.try_recv() {
                Ok(input) => self.core.handle(input),
                Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_micros(200)),
                Err(TryRecvError::Disconnected) => panic!("a broker thread died"),
            }
        }
    }
}

/// What a message sent by the broker may look like.
fn check_well_formed(m: &[Bytes]) {
    assert!(
        PEERS.iter().any(|p| m[0][..] == **p),
        "sent to a stranger: {m:?}"
    );
    let kind = &m.get(1).expect("a command after the identity")[..];
    assert!(
        matches!(
            kind,
            b"OK" | b"ERR" | b"PONG" | b"PUBACK" | b"MSG" | b"CHALLENGE"
        ),
        "unexpected {m:?}"
    );
    if kind == b"MSG" {
        assert!((m.len() - 3).is_multiple_of(4) && m.len() > 3, "{m:?}");
    }
}

/// The correlation id a request carries, when the parser would read one.
fn corr(frames: &[Bytes]) -> Option<u64> {
    let known = matches!(
        frames.first().map(|f| &f[..]),
        Some(
            b"HELLO"
                | b"AUTH"
                | b"PUB"
                | b"SUB"
                | b"UNSUB"
                | b"ACK"
                | b"NAK"
                | b"TOUCH"
                | b"STATS"
                | b"DLQ"
                | b"REPLAY"
                | b"DROP"
                | b"REWIND"
                | b"DISCARD"
        )
    );
    known.then(|| frames.get(1).and_then(|f| protocol::read_u64(f)))?
}

fn run(auth: bool, messages: Vec<(usize, Vec<Bytes>)>) {
    let mut h = Harness::new(auth);
    for (peer, frames) in messages {
        let sent = h.feed(peer, &frames);
        for m in &sent {
            check_well_formed(m);
        }
        let answers: Vec<&Vec<Bytes>> = sent
            .iter()
            .filter(|m| m[0][..] == *PEERS[peer] && &m[1][..] != b"MSG")
            .collect();
        let expected = match frames.first().map(|f| &f[..]) {
            None => 0, // only the identity: dropped
            // A stranger is refused at once; a failed handshake may be answered late.
            _ if auth => usize::MAX,
            Some(b"BYE") => 0, // goodbye needs no answer
            // A settle sent with correlation id 0 wants no OK; a refusal is still answered.
            Some(b"ACK" | b"NAK" | b"TOUCH") if corr(&frames) == Some(protocol::NO_REPLY) => {
                assert!(
                    answers.iter().all(|a| &a[1][..] == b"ERR"),
                    "{frames:?} → {answers:?}"
                );
                usize::MAX
            }
            _ => 1,
        };
        if expected == usize::MAX {
            assert!(answers.len() <= 1, "{frames:?} → {answers:?}");
        } else {
            assert_eq!(answers.len(), expected, "{frames:?} → {answers:?}");
        }
        if let (Some(c), Some(a)) = (corr(&frames), answers.first())
            && matches!(&a[1][..], b"OK" | b"ERR" | b"PUBACK" | b"CHALLENGE")
        {
            assert_eq!(protocol::read_u64(&a[2]), Some(c), "{frames:?} → {a:?}");
        }
    }
}

proptest! {
    // A failure is reported with its shrunk input; no regression file is written next to
    // the sources.
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_and_keeps_a_readable_correlation_id(
        frames in prop::collection::vec(frame(), 0..10),
        command in select(&COMMANDS[..]),
        shaped in any::<bool>(),
    ) {
        let mut frames = frames;
        if shaped {
            frames.insert(0, Bytes::from_static(command.as_bytes()));
        }
        if let (Err((c, _)), Some(expected)) = (Request::parse(&frames), corr(&frames)) {
            prop_assert_eq!(c, expected);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn without_authentication_every_message_is_answered_once_or_dropped(
        messages in prop::collection::vec(message(), 1..40),
    ) {
        run(false, messages);
    }

    #[test]
    fn with_authentication_strangers_get_at_most_one_answer_each(
        messages in prop::collection::vec(message(), 1..40),
    ) {
        run(true, messages);
    }
}

/// A dead letter whose commit fails (a full disk, here a table moved out of the way) is
/// not lost: the event goes back to its group and is delivered once more, and once the
/// store takes writes again its next failure is dead-lettered for good.
#[test]
fn a_dead_letter_that_could_not_be_stored_is_delivered_again() {
    let mut h = Harness::new(false);
    let corr = |n: u64| le(n);
    let text = |m: &[Bytes], i: usize| String::from_utf8_lossy(&m[i]).into_owned();
    let hello = Bytes::from(r#"{"client":"c","heartbeatMs":60000}"#);
    h.feed(0, &[Bytes::from_static(b"HELLO"), corr(1), hello]);
    let sub =
        r#"{"group":"g","subjects":["s"],"ackWaitMs":60000,"maxInFlight":4,"maxDeliveries":1}"#;
    h.feed(0, &[Bytes::from_static(b"SUB"), corr(2), Bytes::from(sub)]);
    let publish = [
        Bytes::from_static(b"PUB"),
        corr(3),
        Bytes::from_static(b"e1"),
        Bytes::from_static(b"s"),
        Bytes::from_static(b"{}"),
    ];
    let delivered = |sent: &[Vec<Bytes>]| {
        sent.iter()
            .any(|m| text(m, 1) == "MSG" && text(m, 2) == "g")
    };
    assert!(delivered(&h.feed(0, &publish)), "delivered once");

    let db = rusqlite::Connection::open(h._dir.path().join("bus.db")).unwrap();
    db.execute_batch("ALTER TABLE dead_letters RENAME TO dead_letters_away")
        .unwrap();
    let nak = [
        Bytes::from_static(b"NAK"),
        corr(4),
        Bytes::from_static(b"g"),
        protocol::u64s_frame(&[1]),
    ];
    assert!(
        delivered(&h.feed(0, &nak)),
        "its dead letter could not be stored: delivered again, not forgotten"
    );

    db.execute_batch("ALTER TABLE dead_letters_away RENAME TO dead_letters")
        .unwrap();
    let again = h.feed(0, &nak);
    assert!(!delivered(&again), "dead-lettered this time");
    let listed = h.feed(
        0,
        &[
            Bytes::from_static(b"DLQ"),
            corr(5),
            Bytes::from(r#"{"group":"g"}"#),
        ],
    );
    let list = listed
        .iter()
        .find(|m| text(m, 1) == "OK")
        .map(|m| text(m, 3))
        .unwrap();
    assert!(list.contains(r#""seq":1"#), "{list}");
}
