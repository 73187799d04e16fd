//! The wire protocol between `tix-bus` and its clients.
//!
//! Every message is a ZeroMQ multipart message whose first frame names the command. Numbers
//! are little-endian fixed-width frames so that the hot path (publish, deliver, ack) never
//! parses text; the rare operator requests carry JSON bodies instead.
//!
//! ```text
//! client → broker                                   broker → client
//! HELLO  corr json{client,heartbeatMs,protocol} nonce
//!                                                   CHALLENGE corr nonce   (authentication on)
//! AUTH   corr proof                                 OK     corr json      (or ERR)
//! PUB    corr (id subject payload)×n                PUBACK corr n:u32      (after commit)
//! SUB    corr json{group,subjects,ackWaitMs,…}      OK     corr json
//! UNSUB  corr group                                 OK     corr
//! ACK    corr group seqs:u64×k                      OK     corr           (after commit)
//! NAK    corr group seqs:u64×k                      OK     corr
//! TOUCH  corr group seqs:u64×k                      OK     corr           (ack wait restarted)
//! STATS  corr                                       OK     corr json
//! DLQ    corr json{group?,limit?}                   OK     corr json
//! REPLAY corr json{group,seqs?}                     OK     corr json
//! DROP   corr json{group,force?}                    OK     corr json      (after commit)
//! REWIND corr json{group,sinceMs}                   OK     corr json      (after commit)
//! DISCARD corr json{group,seqs?}                    OK     corr json      (after commit)
//! PING                                              PONG
//! BYE
//!                                                   MSG    group (seq:u64 deliveries:u32, id, subject, payload)×n
//!                                                   ERR    corr message    (corr 0 when unknown)
//! ```
//! A publish batch of `n` events with correlation id `c` covers the ids `c..c+n`: the client
//! numbers each event, so one `PUBACK` settles a whole batch.
//!
//! With authentication on (the broker's default), `HELLO` is a challenge–response and every
//! later message, both ways, ends with a seal frame (MAC and sequence number): see [`auth`].
//! With `--insecure-no-auth`, `HELLO` is answered `OK` at once and nothing is sealed.

use bytes::Bytes;
use serde::Deserialize;
use zeromq::SocketOptions;

pub mod auth;
mod bodies;
pub use bodies::*;

/// Socket options shared by the broker and its clients: frames up to the event limit are
/// read without growing the buffer a byte at a time.
pub fn socket_options() -> SocketOptions {
    let mut o = SocketOptions::default();
    o.read_buffer(4096, 1 << 20, 2);
    o
}

/// Longest event id or subject the broker accepts, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Reasons a message from a peer is refused. The broker answers them with `ERR`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("empty message")]
    Empty,
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("{command}: {problem}")]
    Malformed {
        command: &'static str,
        problem: &'static str,
    },
    #[error("{0}: invalid JSON body: {1}")]
    BadJson(&'static str, String),
}

/// One event of a publish batch, as it travels: zero-copy slices of the received frames.
#[derive(Debug, Clone)]
pub struct WireEvent {
    pub id: Bytes,
    pub subject: Bytes,
    pub payload: Bytes,
}

/// A parsed client request.
#[derive(Debug)]
pub enum Request {
    /// The client's terms, and its nonce when it authenticates.
    Hello(u64, Hello, Option<Bytes>),
    /// The client's answer to the broker's challenge.
    Auth(u64, Bytes),
    Publish(u64, Vec<WireEvent>),
    Subscribe(u64, SubscribeOptions),
    Unsubscribe(u64, String),
    Ack(u64, String, Vec<u64>),
    Nak(u64, String, Vec<u64>),
    /// The member still works on these events: restart their ack wait, counting no delivery.
    Touch(u64, String, Vec<u64>),
    Stats(u64),
    DeadLetters(u64, DeadLetterQuery),
    Replay(u64, ReplayRequest),
    DropGroup(u64, DropGroupRequest),
    Rewind(u64, RewindRequest),
    Discard(u64, DiscardRequest),
    Ping,
    Bye,
}

impl Request {
    /// Parses the frames of one message (without the ROUTER identity frame).
    ///
    /// On error, the correlation id is returned too when it could be read, so the reply
    /// reaches the request that caused it.
    pub fn parse(frames: &[Bytes]) -> Result<Request, (u64, ProtocolError)> {
        let command = frames.first().ok_or((0, ProtocolError::Empty))?;
        match command.as_ref() {
            b"PING" => return Ok(Request::Ping),
            b"BYE" => return Ok(Request::Bye),
            _ => {}
        }
        let name: &'static str = match command.as_ref() {
            b"HELLO" => "HELLO",
            b"AUTH" => "AUTH",
            b"PUB" => "PUB",
            b"SUB" => "SUB",
            b"UNSUB" => "UNSUB",
            b"ACK" => "ACK",
            b"NAK" => "NAK",
            b"TOUCH" => "TOUCH",
            b"STATS" => "STATS",
            b"DLQ" => "DLQ",
            b"REPLAY" => "REPLAY",
            b"DROP" => "DROP",
            b"REWIND" => "REWIND",
            b"DISCARD" => "DISCARD",
            other => {
                let shown = String::from_utf8_lossy(&other[..other.len().min(32)]).into_owned();
                return Err((0, ProtocolError::UnknownCommand(shown)));
            }
        };
        let malformed = |problem| ProtocolError::Malformed {
            command: name,
            problem,
        };
        let corr = frames
            .get(1)
            .and_then(|f| read_u64(f))
            .ok_or((0, malformed("missing correlation id")))?;
        let args = &frames[2..];
        let fail = |e| (corr, e);
        let json = |i: usize| -> Result<&Bytes, (u64, ProtocolError)> {
            args.get(i).ok_or((corr, malformed("missing JSON body")))
        };
        Ok(match name {
            "HELLO" => {
                let hello: Hello = parse_json(name, json(0)?).map_err(fail)?;
                if hello.client.is_empty() || hello.client.len() > MAX_NAME_LEN {
                    return Err(fail(malformed("client name must be 1 to 200 bytes")));
                }
                let nonce = match args.get(1) {
                    Some(n) if n.len() == auth::NONCE_LEN => Some(n.clone()),
                    Some(_) => return Err(fail(malformed("the nonce must be 32 bytes"))),
                    None => None,
                };
                Request::Hello(corr, hello, nonce)
            }
            "AUTH" => match args.first() {
                Some(p) if p.len() == auth::MAC_LEN => Request::Auth(corr, p.clone()),
                _ => return Err(fail(malformed("the proof must be 32 bytes"))),
            },
            "PUB" => {
                if args.is_empty() || !args.len().is_multiple_of(3) {
                    return Err(fail(malformed("expected (id, subject, payload) triples")));
                }
                let mut events = Vec::with_capacity(args.len() / 3);
                for t in args.chunks_exact(3) {
                    if !valid_name(&t[0]) {
                        return Err(fail(malformed("event id must be 1 to 200 bytes of UTF-8")));
                    }
                    if !valid_name(&t[1]) {
                        return Err(fail(malformed("subject must be 1 to 200 bytes of UTF-8")));
                    }
                    events.push(WireEvent {
                        id: t[0].clone(),
                        subject: t[1].clone(),
                        payload: t[2].clone(),
                    });
                }
                Request::Publish(corr, events)
            }
            "SUB" => {
                let opts: SubscribeOptions = parse_json(name, json(0)?).map_err(fail)?;
                opts.validate().map_err(|p| fail(malformed(p)))?;
                Request::Subscribe(corr, opts)
            }
            "UNSUB" => Request::Unsubscribe(
                corr,
                group_arg(args).ok_or(fail(malformed("missing group")))?,
            ),
            "ACK" | "NAK" | "TOUCH" => {
                let group = group_arg(args).ok_or(fail(malformed("missing group")))?;
                let seqs = args
                    .get(1)
                    .and_then(|f| read_u64s(f))
                    .ok_or(fail(malformed("expected positions as u64 little-endian")))?;
                match name {
                    "ACK" => Request::Ack(corr, group, seqs),
                    "NAK" => Request::Nak(corr, group, seqs),
                    _ => Request::Touch(corr, group, seqs),
                }
            }
            "STATS" => Request::Stats(corr),
            "DLQ" => Request::DeadLetters(corr, parse_json(name, json(0)?).map_err(fail)?),
            "REPLAY" => Request::Replay(corr, parse_json(name, json(0)?).map_err(fail)?),
            "DROP" => Request::DropGroup(corr, parse_json(name, json(0)?).map_err(fail)?),
            "REWIND" => Request::Rewind(corr, parse_json(name, json(0)?).map_err(fail)?),
            "DISCARD" => Request::Discard(corr, parse_json(name, json(0)?).map_err(fail)?),
            _ => unreachable!("every name above is matched"),
        })
    }
}

fn valid_name(b: &Bytes) -> bool {
    !b.is_empty() && b.len() <= MAX_NAME_LEN && std::str::from_utf8(b).is_ok()
}

fn group_arg(args: &[Bytes]) -> Option<String> {
    let b = args.first()?;
    if !valid_name(b) {
        return None;
    }
    String::from_utf8(b.to_vec()).ok()
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    name: &'static str,
    body: &Bytes,
) -> Result<T, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| ProtocolError::BadJson(name, e.to_string()))
}

/// Reads an 8-byte little-endian integer frame.
pub fn read_u64(frame: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(frame.try_into().ok()?))
}

/// Reads a frame of packed 8-byte little-endian integers (at least one).
pub fn read_u64s(frame: &[u8]) -> Option<Vec<u64>> {
    if frame.is_empty() || !frame.len().is_multiple_of(8) {
        return None;
    }
    Some(
        frame
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunk of 8")))
            .collect(),
    )
}

/// Packs integers into one frame.
pub fn u64s_frame(values: &[u64]) -> Bytes {
    let mut out = Vec::with_capacity(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Bytes::from(out)
}

/// The 12-byte header frame of a delivered event: log position and delivery count.
pub fn delivery_header(seq: u64, deliveries: u32) -> Bytes {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    out[8..].copy_from_slice(&deliveries.to_le_bytes());
    Bytes::copy_from_slice(&out)
}

/// Reads a delivery header frame.
pub fn read_delivery_header(frame: &[u8]) -> Option<(u64, u32)> {
    if frame.len() != 12 {
        return None;
    }
    let seq = u64::from_le_bytes(frame[..8].try_into().ok()?);
    let deliveries = u32::from_le_bytes(frame[8..].try_into().ok()?);
    Some((seq, deliveries))
}

/// The correlation id of an `ACK`, `NAK` or `TOUCH` whose sender wants no `OK` back (clients
/// number their requests from 1). Refusals are still answered, with `ERR 0`.
pub const NO_REPLY: u64 = 0;

pub fn u64_frame(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_le_bytes())
}

pub fn u32_frame(v: u32) -> Bytes {
    Bytes::copy_from_slice(&v.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    #[test]
    fn a_publish_batch_is_read_as_triples() {
        let corr = 7u64.to_le_bytes();
        let msg = frames(&[
            b"PUB",
            &corr,
            b"e1",
            b"ticket:created",
            b"{}",
            b"e2",
            b"x",
            b"",
        ]);
        match Request::parse(&msg).unwrap() {
            Request::Publish(7, events) => {
                assert_eq!(events.len(), 2);
                assert_eq!(&events[1].id[..], b"e2");
                assert!(events[1].payload.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_publish_with_a_missing_payload_is_refused_with_its_correlation_id() {
        let corr = 9u64.to_le_bytes();
        let msg = frames(&[b"PUB", &corr, b"e1", b"ticket:created"]);
        let (c, err) = Request::parse(&msg).unwrap_err();
        assert_eq!(c, 9);
        assert!(err.to_string().contains("triples"), "{err}");
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert_eq!(Request::parse(&[]).unwrap_err().1, ProtocolError::Empty);
        let err = Request::parse(&frames(&[b"\xff\x00garbage"]))
            .unwrap_err()
            .1;
        assert!(matches!(err, ProtocolError::UnknownCommand(_)));
        let err = Request::parse(&frames(&[b"ACK", b"short"])).unwrap_err();
        assert_eq!(err.0, 0);
        let corr = 1u64.to_le_bytes();
        let err = Request::parse(&frames(&[b"ACK", &corr, b"g", b"123"])).unwrap_err();
        assert_eq!(err.0, 1);
        let err = Request::parse(&frames(&[b"SUB", &corr, b"{not json"]))
            .unwrap_err()
            .1;
        assert!(matches!(err, ProtocolError::BadJson("SUB", _)));
        let err = Request::parse(&frames(&[b"PUB", &corr, b"", b"s", b"p"]))
            .unwrap_err()
            .1;
        assert!(err.to_string().contains("event id"));
        let err = Request::parse(&frames(&[b"PUB", &corr, b"id", b"\xff\xfe", b"p"]))
            .unwrap_err()
            .1;
        assert!(err.to_string().contains("subject"));
    }

    #[test]
    fn subscribe_options_are_validated() {
        let corr = 1u64.to_le_bytes();
        let body = br#"{"group":"g","subjects":[],"ackWaitMs":1000}"#;
        let err = Request::parse(&frames(&[b"SUB", &corr, body]))
            .unwrap_err()
            .1;
        assert!(err.to_string().contains("subject"), "{err}");
        let body = br#"{"group":"g","subjects":["a"],"maxInFlight":0}"#;
        assert!(Request::parse(&frames(&[b"SUB", &corr, body])).is_err());
        let body = br#"{"group":"g","subjects":["a"]}"#;
        match Request::parse(&frames(&[b"SUB", &corr, body])).unwrap() {
            Request::Subscribe(1, o) => assert_eq!(o, SubscribeOptions::new("g", &["a"])),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn acks_carry_packed_positions() {
        let corr = 3u64.to_le_bytes();
        let seqs = u64s_frame(&[1, 2, 300]);
        let msg = vec![
            Bytes::from_static(b"ACK"),
            Bytes::copy_from_slice(&corr),
            Bytes::from_static(b"orders"),
            seqs,
        ];
        match Request::parse(&msg).unwrap() {
            Request::Ack(3, g, s) => {
                assert_eq!(g, "orders");
                assert_eq!(s, vec![1, 2, 300]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn touches_carry_packed_positions_like_acks() {
        let corr = 4u64.to_le_bytes();
        let msg = vec![
            Bytes::from_static(b"TOUCH"),
            Bytes::copy_from_slice(&corr),
            Bytes::from_static(b"orders"),
            u64s_frame(&[7, 9]),
        ];
        match Request::parse(&msg).unwrap() {
            Request::Touch(4, g, s) => {
                assert_eq!(g, "orders");
                assert_eq!(s, vec![7, 9]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let short = frames(&[b"TOUCH", &corr, b"orders", b"123"]);
        assert_eq!(Request::parse(&short).unwrap_err().0, 4);
    }

    #[test]
    fn a_hello_carries_its_nonce_and_an_auth_its_proof() {
        let corr = 5u64.to_le_bytes();
        let body = br#"{"client":"orders","heartbeatMs":500,"protocol":2}"#;
        match Request::parse(&frames(&[b"HELLO", &corr, body, &[7; 32]])).unwrap() {
            Request::Hello(5, h, Some(n)) => {
                assert_eq!((h.client.as_str(), h.protocol), ("orders", 2));
                assert_eq!(&n[..], &[7; 32]);
            }
            other => panic!("unexpected {other:?}"),
        }
        // The protocol before keys: no nonce, version 1.
        let old = br#"{"client":"orders","heartbeatMs":500}"#;
        match Request::parse(&frames(&[b"HELLO", &corr, old])).unwrap() {
            Request::Hello(5, h, None) => assert_eq!(h.protocol, 1),
            other => panic!("unexpected {other:?}"),
        }
        let err = Request::parse(&frames(&[b"HELLO", &corr, body, b"short"])).unwrap_err();
        assert_eq!(err.0, 5);
        let long = format!(r#"{{"client":"{}","heartbeatMs":500}}"#, "x".repeat(201));
        let err = Request::parse(&frames(&[b"HELLO", &corr, long.as_bytes()])).unwrap_err();
        assert!(err.1.to_string().contains("client name"), "{}", err.1);
        assert!(matches!(
            Request::parse(&frames(&[b"AUTH", &corr, &[1; 32]])).unwrap(),
            Request::Auth(5, _)
        ));
        assert!(Request::parse(&frames(&[b"AUTH", &corr, &[1; 31]])).is_err());
        assert!(Request::parse(&frames(&[b"AUTH", &corr])).is_err());
    }

    #[test]
    fn delivery_headers_round_trip() {
        let h = delivery_header(u64::MAX - 1, 3);
        assert_eq!(read_delivery_header(&h), Some((u64::MAX - 1, 3)));
        assert_eq!(read_delivery_header(b"short"), None);
    }
}
