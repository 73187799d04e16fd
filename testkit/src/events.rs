//! The bus as a test sees it: a connected client, events published the way a service
//! publishes them, deliveries awaited with a deadline, and silence asserted.

use std::time::Duration;

use tix_api::events::{Envelope, Event, OrderCreated, OrderStatus, OrderTicket};
use tix_api::{Money, UnixMillis};
use tix_bus_client::{BusKey, Client, ClientOptions, Delivery, SubscribeOptions, Subscription};

use crate::stack::{TEST_BUS_CLIENT, TEST_BUS_KEY};

/// How long a test waits for a delivery or a connection before it fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// A client connected to `endpoint` as the tests' client [`TEST_BUS_CLIENT`] (every
/// right, any producer), patient enough for a loaded test machine but quick to notice a
/// broker that went away. `_label` only tells a test's clients apart for its reader: the
/// broker knows them all as `test`. A broker started with `--insecure-no-auth` gets a
/// client without a key.
pub async fn connect(endpoint: &str, _label: &str) -> Client {
    let key = (!crate::stack::is_insecure(endpoint)).then(test_key);
    let c = Client::connect(options(endpoint, TEST_BUS_CLIENT, key));
    c.wait_connected(WAIT).await.expect("connecting to the bus");
    c
}

/// A client connected as `name` with `key` (a service's key from [`crate::Bus::key`]).
pub async fn connect_as(endpoint: &str, name: &str, key: BusKey) -> Client {
    let c = Client::connect(options(endpoint, name, Some(key)));
    c.wait_connected(WAIT).await.expect("connecting to the bus");
    c
}

/// The options [`connect`] uses, for a test that connects by itself.
pub fn options(endpoint: &str, name: &str, key: Option<BusKey>) -> ClientOptions {
    let mut opts = ClientOptions::new(endpoint, name);
    opts.key = key;
    opts.heartbeat = Duration::from_millis(200);
    opts.request_timeout = Duration::from_secs(3);
    opts.max_backoff = Duration::from_millis(300);
    opts
}

/// The key of [`TEST_BUS_CLIENT`].
pub fn test_key() -> BusKey {
    BusKey::from_hex(TEST_BUS_KEY).expect("a valid key")
}

/// A durable group on `subjects` with the default options.
pub fn group(name: &str, subjects: &[&str]) -> SubscribeOptions {
    SubscribeOptions::new(name, subjects)
}

/// Publishes as a service would: the bus id is the envelope id.
pub async fn publish(bus: &Client, env: &Envelope) {
    bus.publish(env.id.clone(), env.subject().as_str(), env.to_json())
        .await
        .expect("the bus took the event");
}

/// Publishes `n` small events `<prefix>-00000…` at once; their ids.
pub async fn publish_n(c: &Client, prefix: &str, subject: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        ids.push(id.clone());
        calls.push(c.publish(id, subject.to_string(), format!("{{\"n\":{i}}}")));
    }
    for r in futures::future::join_all(calls).await {
        r.expect("publish acked");
    }
    ids
}

/// The next delivery, failing the test if none comes within [`WAIT`].
pub async fn next_delivery(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within the wait")
        .expect("the subscription is open")
}

/// The next event, acked and parsed.
pub async fn next_event(sub: &mut Subscription) -> Envelope {
    let d = next_delivery(sub).await;
    d.ack_nowait().expect("acking");
    Envelope::from_bus(&d.subject, &d.payload).expect("a valid event")
}

/// Fails the test if anything is delivered within `quiet`.
pub async fn assert_quiet(sub: &mut Subscription, quiet: Duration) {
    if let Ok(Some(d)) = tokio::time::timeout(quiet, sub.next()).await {
        panic!(
            "expected nothing, got seq {} ({} deliveries) {} {}",
            d.seq,
            d.deliveries,
            d.subject,
            String::from_utf8_lossy(&d.payload)
        );
    }
}

/// `order:created` as orders publishes it: `buyer` holds `ticket` at `price_cents` until
/// `expires_at`.
pub fn order_created(
    order: &str,
    ticket: &str,
    buyer: &str,
    price_cents: i64,
    expires_at: UnixMillis,
) -> Envelope {
    Envelope::new(
        "orders",
        Event::OrderCreated(OrderCreated {
            id: order.into(),
            status: OrderStatus::Created,
            user_id: buyer.into(),
            expires_at,
            version: 0,
            ticket: OrderTicket {
                id: ticket.into(),
                price_cents: Money::from_cents(price_cents),
            },
        }),
    )
}

/// Fifteen minutes from now: an order's usual hold.
pub fn in_fifteen_minutes() -> UnixMillis {
    UnixMillis::now().after(Duration::from_secs(15 * 60))
}

/// A bus peer speaking the wire protocol by hand on a raw DEALER socket, for testing what
/// the broker does with what no well-behaved client sends: requests without a session,
/// wrong keys, replayed handshakes, forged or replayed seals.
pub struct RawPeer {
    socket: zeromq::DealerSocket,
    session: Option<RawSession>,
}

impl std::fmt::Debug for RawPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPeer")
            .field("authenticated", &self.session.is_some())
            .finish()
    }
}

/// An authenticated session's seal and counters.
#[derive(Debug)]
pub struct RawSession {
    pub mac: tix_bus_client::protocol::auth::SessionMac,
    /// Number of the next message this peer seals.
    pub sent: u64,
    /// Number of the next message expected from the broker.
    pub received: u64,
}

/// The frames of a handshake as a client sent them, to replay.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub hello: Vec<bytes::Bytes>,
    pub auth: Vec<bytes::Bytes>,
}

/// Builds frames from byte slices.
pub fn frames(parts: &[&[u8]]) -> Vec<bytes::Bytes> {
    parts
        .iter()
        .map(|p| bytes::Bytes::copy_from_slice(p))
        .collect()
}

impl RawPeer {
    /// A new connection to the broker, with no session.
    pub async fn connect(endpoint: &str) -> RawPeer {
        use zeromq::Socket;
        let mut socket = zeromq::DealerSocket::new();
        socket
            .connect(endpoint)
            .await
            .expect("connecting a raw peer");
        RawPeer {
            socket,
            session: None,
        }
    }

    /// Sends frames as they are (unsealed).
    pub async fn send_raw(&mut self, frames: Vec<bytes::Bytes>) {
        use zeromq::SocketSend;
        let m = zeromq::ZmqMessage::try_from(frames).expect("at least one frame");
        self.socket.send(m).await.expect("sending on a raw peer");
    }

    /// The next message as it came, failing the test after [`WAIT`].
    pub async fn recv_raw(&mut self) -> Vec<bytes::Bytes> {
        self.recv_within(WAIT)
            .await
            .expect("the broker answers within the wait")
    }

    /// The next message as it came, if one comes within `within`.
    pub async fn recv_within(&mut self, within: Duration) -> Option<Vec<bytes::Bytes>> {
        use zeromq::SocketRecv;
        match tokio::time::timeout(within, self.socket.recv()).await {
            Ok(Ok(m)) => Some(m.into_vec()),
            _ => None,
        }
    }

    /// Whether the broker closes this connection within `within`: probed by sending (a
    /// DEALER with no connection left refuses to send; this one never reconnects).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        use zeromq::SocketSend;
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let probe = zeromq::ZmqMessage::from(bytes::Bytes::from_static(b"PING"));
            if self.socket.send(probe).await.is_err() {
                return true;
            }
            // Whatever the broker answered the probe with is not the point.
            let _ = self.recv_within(Duration::from_millis(50)).await;
        }
        false
    }

    /// Says hello as `name` and answers the challenge with `key`; the frames it sent (to
    /// replay) and the broker's last answer (`OK …` with its seal removed, or `ERR …`).
    pub async fn authenticate(
        &mut self,
        name: &str,
        key: &BusKey,
    ) -> (Handshake, Vec<bytes::Bytes>) {
        use tix_bus_client::protocol::auth::{self, Direction, PROTOCOL_VERSION, SessionMac};
        let nonce = auth::nonce();
        let body =
            serde_json::json!({"client": name, "heartbeatMs": 5000, "protocol": PROTOCOL_VERSION});
        let hello = frames(&[
            b"HELLO",
            &1u64.to_le_bytes(),
            body.to_string().as_bytes(),
            &nonce,
        ]);
        self.send_raw(hello.clone()).await;
        let challenge = self.recv_raw().await;
        assert_eq!(&challenge[0][..], b"CHALLENGE", "{challenge:?}");
        let broker_nonce = challenge[2].clone();
        let proof = auth::hello_proof(key, &broker_nonce, &nonce, name, PROTOCOL_VERSION);
        let auth_frames = frames(&[b"AUTH", &1u64.to_le_bytes(), &proof]);
        self.send_raw(auth_frames.clone()).await;
        let mut answer = self.recv_raw().await;
        if &answer[0][..] == b"OK" {
            let mac = SessionMac::derive(key, &broker_nonce, &nonce, name);
            mac.open(Direction::ToClient, 0, &mut answer)
                .expect("the broker's OK is sealed with the session's first number");
            self.session = Some(RawSession {
                mac,
                sent: 0,
                received: 1,
            });
        }
        let shake = Handshake {
            hello,
            auth: auth_frames,
        };
        (shake, answer)
    }

    /// The session, once [`RawPeer::authenticate`] succeeded.
    pub fn session(&mut self) -> &mut RawSession {
        self.session.as_mut().expect("an authenticated raw peer")
    }

    /// Seals `frames` with the session's next number and sends them; the frames as sent
    /// (seal included), to replay.
    pub async fn send_sealed(&mut self, mut frames: Vec<bytes::Bytes>) -> Vec<bytes::Bytes> {
        use tix_bus_client::protocol::auth::Direction;
        let s = self.session();
        let seal = s.mac.seal(Direction::ToBroker, s.sent, &frames);
        s.sent += 1;
        frames.push(seal);
        self.send_raw(frames.clone()).await;
        frames
    }

    /// The next message from the broker with its seal checked and removed; an error (and
    /// the message) when the seal does not open.
    pub async fn recv_sealed(
        &mut self,
    ) -> Result<Vec<bytes::Bytes>, (tix_bus_client::protocol::auth::SealError, Vec<bytes::Bytes>)>
    {
        use tix_bus_client::protocol::auth::Direction;
        let mut m = self.recv_raw().await;
        let s = self.session();
        match s.mac.open(Direction::ToClient, s.received, &mut m) {
            Ok(()) => {
                s.received += 1;
                Ok(m)
            }
            Err(e) => Err((e, m)),
        }
    }
}
