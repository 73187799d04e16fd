//! Who is talking, and that nobody else slipped a frame in: the bus's handshake and the
//! seal every later message carries (docs/bus.md, "Authentication and integrity").
//!
//! Each client has its own key, which the broker's policy lists and which never travels.
//! The handshake proves that both ends know it:
//!
//! ```text
//! client → broker   HELLO     corr json{client,heartbeatMs,protocol:4} client_nonce(32)
//! broker → client   CHALLENGE corr broker_nonce(32)
//! client → broker   AUTH      corr proof(32)
//! broker → client   OK        corr json{heartbeatMs,maxEventBytes} seal(40)   (seq 0)
//!                or ERR       corr "authentication failed"                    (no seal)
//! ```
//! `proof` = HMAC-SHA256(key, "tix-bus hello" ‖ broker_nonce ‖ client_nonce ‖
//! len(client):u64 ‖ client ‖ protocol:u32); a proof recorded on one connection is worthless
//! on the next, whose broker nonce differs. Both ends then derive a session key with
//! HKDF-SHA256 (salt = broker_nonce ‖ client_nonce, info = "tix-bus session" ‖ client) and
//! from then on every message in either direction ends with one more frame, its *seal*:
//! `seq:u64 ‖ BLAKE3-keyed(session_key, direction ‖ seq ‖ (len:u64 ‖ frame)…)` (protocol 4).
//! BLAKE3 rather than HMAC-SHA256 because a message is mostly payload bytes and BLAKE3
//! hashes a batch's chunks side by side in SIMD lanes: about a quarter of the CPU per
//! event for a batch of deliveries (docs/benchmarks.md), so neither end needs to keep
//! digests of payloads. Each direction counts its own `seq` from 0; a receiver takes
//! exactly the next one, so a frame injected, replayed, reordered or reflected back to its
//! sender is refused. The broker's first seal (on its `OK`) also proves to the client that
//! it talks to the real broker.

use std::fmt;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The protocol a client speaks when it authenticates (1 was the protocol without keys, 2
/// and 3 sealed with HMAC-SHA256).
pub const PROTOCOL_VERSION: u32 = 4;

/// A frame at least this long goes to the MAC as it is, not through the buffer that
/// gathers the short ones (copying it would cost more than the call).
const HASH_IN_PLACE: usize = 16 * 1024;

/// The largest gathering buffer a thread keeps for its next message (a batch of 512
/// deliveries of 1 KiB events fits).
const KEEP_GATHERED: usize = 1024 * 1024;

/// Bytes of each side's handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of the handshake proof and of a message's MAC.
pub const MAC_LEN: usize = 32;
/// Bytes of the seal frame: sequence number and MAC.
pub const SEAL_LEN: usize = 8 + MAC_LEN;
/// Shortest key accepted, in bytes; `tix-bus init-policy` makes keys of 32.
pub const MIN_KEY_LEN: usize = 16;

/// A client's secret key, shared with the broker's policy only. Its `Debug` never shows
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct BusKey(Box<[u8]>);

/// Why a text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a bus key is hexadecimal (0-9, a-f), an even number of digits")]
    NotHex,
    #[error("a bus key is at least {MIN_KEY_LEN} bytes ({} hex digits); `tix-bus init-policy` makes them", MIN_KEY_LEN * 2)]
    TooShort,
}

impl BusKey {
    /// A key from its hex form (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<BusKey, KeyError> {
        let text = text.trim().as_bytes();
        if !text.len().is_multiple_of(2) {
            return Err(KeyError::NotHex);
        }
        let digit = |c: u8| (c as char).to_digit(16).ok_or(KeyError::NotHex);
        let bytes = text
            .chunks_exact(2)
            .map(|p| Ok((digit(p[0])? * 16 + digit(p[1])?) as u8))
            .collect::<Result<Vec<u8>, KeyError>>()?;
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort);
        }
        Ok(BusKey(bytes.into_boxed_slice()))
    }

    /// A new random key of 32 bytes.
    pub fn generate() -> BusKey {
        BusKey(Box::new(random_bytes::<32>()))
    }

    /// The hex form, for writing a key file or a policy.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A short fingerprint (the first 8 bytes of SHA-256 of the key, hex) that tells keys
    /// apart in logs without revealing them.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        Sha256::digest(&self.0)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for BusKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusKey([REDACTED] {})", self.fingerprint())
    }
}

/// A fresh random handshake nonce.
pub fn nonce() -> [u8; NONCE_LEN] {
    random_bytes()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The operating system's generator; without it no handshake could be safe at all.
    getrandom::fill(&mut out).expect("the operating system's random generator failed");
    out
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length")
}

fn hello_mac(
    key: &BusKey,
    broker_nonce: &[u8],
    client_nonce: &[u8],
    client: &str,
    protocol: u32,
) -> HmacSha256 {
    let mut m = keyed(&key.0);
    m.update(b"tix-bus hello");
    m.update(broker_nonce);
    m.update(client_nonce);
    m.update(&(client.len() as u64).to_le_bytes());
    m.update(client.as_bytes());
    m.update(&protocol.to_le_bytes());
    m
}

/// The client's answer to the broker's challenge.
pub fn hello_proof(
    key: &BusKey,
    broker_nonce: &[u8],
    client_nonce: &[u8],
    client: &str,
    protocol: u32,
) -> [u8; MAC_LEN] {
    hello_mac(key, broker_nonce, client_nonce, client, protocol)
        .finalize()
        .into_bytes()
        .into()
}

/// Whether `proof` answers the challenge under `key` (compared in constant time).
pub fn verify_hello_proof(
    key: &BusKey,
    broker_nonce: &[u8],
    client_nonce: &[u8],
    client: &str,
    protocol: u32,
    proof: &[u8],
) -> bool {
    hello_mac(key, broker_nonce, client_nonce, client, protocol)
        .verify_slice(proof)
        .is_ok()
}

/// Who sends a sealed message: part of what its MAC covers, so a message cannot be sent
/// back to the side that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToBroker = 1,
    ToClient = 2,
}

/// Why a sealed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the message has no seal")]
    Missing,
    #[error("out of sequence: expected {expected}, got {got}")]
    Sequence { expected: u64, got: u64 },
    #[error("its MAC does not match")]
    BadMac,
}

/// A session's key, derived by both ends from the handshake: it seals and opens every
/// later message. Holds no counters; each side keeps its own.
#[derive(Clone)]
pub struct SessionMac([u8; 32]);

impl fmt::Debug for SessionMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionMac([REDACTED])")
    }
}

impl SessionMac {
    /// HKDF-SHA256 over the client's key, salted with both nonces, bound to the name.
    pub fn derive(
        key: &BusKey,
        broker_nonce: &[u8],
        client_nonce: &[u8],
        client: &str,
    ) -> SessionMac {
        let mut salt = Vec::with_capacity(broker_nonce.len() + client_nonce.len());
        salt.extend_from_slice(broker_nonce);
        salt.extend_from_slice(client_nonce);
        let hk = hkdf::Hkdf::<Sha256>::new(Some(&salt), &key.0);
        let mut info = b"tix-bus session".to_vec();
        info.extend_from_slice(client.as_bytes());
        let mut okm = [0u8; 32];
        hk.expand(&info, &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        SessionMac(okm)
    }

    /// The MAC of message `seq` of `dir`. Short pieces are gathered into one buffer first:
    /// BLAKE3 hashes an input's 1 KiB chunks side by side only when one call spans them,
    /// and the frames of a batch are mostly a few hundred bytes each. The buffer is the
    /// thread's, kept between messages: a fresh one of a batch's size (over glibc's mmap
    /// and trim thresholds) cost page faults on every message.
    fn mac(&self, dir: Direction, seq: u64, frames: &[Bytes]) -> blake3::Hash {
        thread_local! {
            static GATHER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut buf = GATHER
            .try_with(|b| std::mem::take(&mut *b.borrow_mut()))
            .unwrap_or_default();
        let gathered: usize = frames
            .iter()
            .map(|f| 8 + if f.len() < HASH_IN_PLACE { f.len() } else { 0 })
            .sum();
        buf.reserve(9 + gathered);
        let mut h = blake3::Hasher::new_keyed(&self.0);
        buf.push(dir as u8);
        buf.extend_from_slice(&seq.to_le_bytes());
        for f in frames {
            buf.extend_from_slice(&(f.len() as u64).to_le_bytes());
            if f.len() >= HASH_IN_PLACE {
                h.update(&buf);
                buf.clear();
                h.update(f);
            } else {
                buf.extend_from_slice(f);
            }
        }
        h.update(&buf);
        if buf.capacity() <= KEEP_GATHERED {
            buf.clear();
            let _ = GATHER.try_with(|b| *b.borrow_mut() = buf);
        }
        h.finalize()
    }

    /// The seal frame for message number `seq` of `dir` made of `frames`.
    pub fn seal(&self, dir: Direction, seq: u64, frames: &[Bytes]) -> Bytes {
        let mut out = Vec::with_capacity(SEAL_LEN);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(self.mac(dir, seq, frames).as_bytes());
        Bytes::from(out)
    }

    /// Checks that the last frame of `frames` seals the others as message number
    /// `expected` of `dir`, and removes it.
    pub fn open(
        &self,
        dir: Direction,
        expected: u64,
        frames: &mut Vec<Bytes>,
    ) -> Result<(), SealError> {
        let seal = match frames.last() {
            Some(s) if s.len() == SEAL_LEN && frames.len() >= 2 => s.clone(),
            _ => return Err(SealError::Missing),
        };
        let got = u64::from_le_bytes(seal[..8].try_into().expect("8 bytes"));
        if got != expected {
            return Err(SealError::Sequence { expected, got });
        }
        let body = &frames[..frames.len() - 1];
        let tag: [u8; MAC_LEN] = seal[8..].try_into().expect("SEAL_LEN - 8 bytes");
        // `blake3::Hash`'s equality is constant-time.
        if self.mac(dir, got, body) != blake3::Hash::from_bytes(tag) {
            return Err(SealError::BadMac);
        }
        frames.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    #[test]
    fn every_byte_of_a_long_frame_counts_whichever_way_it_is_hashed() {
        let mac = SessionMac::derive(&BusKey::generate(), &nonce(), &nonce(), "orders");
        for len in [
            0,
            1,
            1023,
            1025,
            HASH_IN_PLACE - 1,
            HASH_IN_PLACE,
            3 * HASH_IN_PLACE,
        ] {
            let payload = vec![b'p'; len];
            let msg = vec![
                Bytes::from_static(b"MSG"),
                Bytes::from(payload.clone()),
                Bytes::from_static(b"tail"),
            ];
            let mut sealed = msg.clone();
            sealed.push(mac.seal(Direction::ToClient, 4, &msg));
            mac.open(Direction::ToClient, 4, &mut sealed.clone())
                .unwrap_or_else(|e| panic!("{len}: {e}"));
            if len > 0 {
                // One byte changed anywhere, first or last, is refused.
                for at in [0, len - 1] {
                    let mut changed = payload.clone();
                    changed[at] ^= 1;
                    let mut forged = sealed.clone();
                    forged[1] = Bytes::from(changed);
                    assert_eq!(
                        mac.open(Direction::ToClient, 4, &mut forged),
                        Err(SealError::BadMac),
                        "{len} bytes, byte {at} changed"
                    );
                }
                // A byte moved from one frame to the next is refused too.
                let mut moved = sealed.clone();
                moved[1] = Bytes::from(payload[..len - 1].to_vec());
                moved[2] = Bytes::from([b"p".as_slice(), b"tail"].concat());
                assert_eq!(
                    mac.open(Direction::ToClient, 4, &mut moved),
                    Err(SealError::BadMac)
                );
            }
        }
    }

    #[test]
    fn a_seal_is_keyed_blake3_of_direction_sequence_and_length_prefixed_frames() {
        // The wire format pinned against BLAKE3 computed here by hand, so a mistake both
        // ends would share (a length left out on one path) cannot pass as a round trip.
        let mac = SessionMac::derive(&BusKey::generate(), &nonce(), &nonce(), "orders");
        let frames = vec![
            Bytes::from_static(b"MSG"),
            Bytes::from(vec![b'a'; HASH_IN_PLACE + 3]),
            Bytes::new(),
            Bytes::from(vec![b'b'; 700]),
        ];
        let mut input = vec![Direction::ToClient as u8];
        input.extend_from_slice(&9u64.to_le_bytes());
        for f in &frames {
            input.extend_from_slice(&(f.len() as u64).to_le_bytes());
            input.extend_from_slice(f);
        }
        let want = blake3::keyed_hash(&mac.0, &input);
        let seal = mac.seal(Direction::ToClient, 9, &frames);
        assert_eq!(&seal[..8], &9u64.to_le_bytes());
        assert_eq!(&seal[8..], want.as_bytes());
    }

    #[test]
    fn keys_are_read_from_hex_and_never_shown() {
        let k = BusKey::generate();
        assert_eq!(BusKey::from_hex(&format!(" {}\n", k.to_hex())).unwrap(), k);
        assert_eq!(BusKey::from_hex("abc"), Err(KeyError::NotHex));
        assert_eq!(
            BusKey::from_hex("zz".repeat(16).as_str()),
            Err(KeyError::NotHex)
        );
        assert_eq!(BusKey::from_hex("ab"), Err(KeyError::TooShort));
        assert!(!format!("{k:?}").contains(&k.to_hex()));
        assert_ne!(k, BusKey::generate());
    }

    #[test]
    fn a_proof_holds_only_for_its_key_nonces_name_and_version() {
        let k = BusKey::generate();
        let (b, c) = (nonce(), nonce());
        let p = hello_proof(&k, &b, &c, "orders", PROTOCOL_VERSION);
        assert!(verify_hello_proof(
            &k,
            &b,
            &c,
            "orders",
            PROTOCOL_VERSION,
            &p
        ));
        assert!(!verify_hello_proof(
            &BusKey::generate(),
            &b,
            &c,
            "orders",
            PROTOCOL_VERSION,
            &p
        ));
        let v = PROTOCOL_VERSION;
        assert!(!verify_hello_proof(&k, &nonce(), &c, "orders", v, &p));
        assert!(!verify_hello_proof(&k, &b, &nonce(), "orders", v, &p));
        assert!(!verify_hello_proof(&k, &b, &c, "payments", v, &p));
        assert!(!verify_hello_proof(&k, &b, &c, "orders", v + 1, &p));
        assert!(!verify_hello_proof(&k, &b, &c, "orders", v, &p[..31]));
    }

    #[test]
    fn a_seal_opens_once_in_order_in_its_direction_and_unchanged() {
        let k = BusKey::generate();
        let (b, c) = (nonce(), nonce());
        let client = SessionMac::derive(&k, &b, &c, "orders");
        let broker = SessionMac::derive(&k, &b, &c, "orders");
        let msg = frames(&[b"PUB", &1u64.to_le_bytes(), b"id", b"s", b"{}"]);

        let mut sealed = msg.clone();
        sealed.push(client.seal(Direction::ToBroker, 0, &msg));
        let mut ok = sealed.clone();
        broker.open(Direction::ToBroker, 0, &mut ok).unwrap();
        assert_eq!(ok, msg);

        // Replayed later, reflected, or from another session: refused.
        let mut again = sealed.clone();
        assert_eq!(
            broker.open(Direction::ToBroker, 1, &mut again),
            Err(SealError::Sequence {
                expected: 1,
                got: 0
            })
        );
        let mut reflected = sealed.clone();
        assert_eq!(
            broker.open(Direction::ToClient, 0, &mut reflected),
            Err(SealError::BadMac)
        );
        let other = SessionMac::derive(&k, &nonce(), &c, "orders");
        assert_eq!(
            other.open(Direction::ToBroker, 0, &mut sealed.clone()),
            Err(SealError::BadMac)
        );
        // A changed frame, frames moved across a boundary, or no seal at all: refused.
        let mut changed = sealed.clone();
        changed[4] = Bytes::from_static(b"{\"x\":1}");
        assert_eq!(
            broker.open(Direction::ToBroker, 0, &mut changed),
            Err(SealError::BadMac)
        );
        let mut moved = frames(&[b"PUB", &1u64.to_le_bytes(), b"ids", b"", b"{}"]);
        moved.push(sealed[5].clone());
        assert_eq!(
            broker.open(Direction::ToBroker, 0, &mut moved),
            Err(SealError::BadMac)
        );
        assert_eq!(
            broker.open(Direction::ToBroker, 0, &mut msg.clone()),
            Err(SealError::Missing)
        );
    }
}
