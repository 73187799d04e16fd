//! The client's side of message integrity, against a stand-in broker on a real socket: a
//! delivery whose seal does not open (forged, or replayed with an old number) is never
//! handed to the consumer, and the client drops the connection and authenticates anew.

use std::time::Duration;

use bytes::Bytes;
use tix_bus_client::protocol::auth::{self, Direction, PROTOCOL_VERSION, SessionMac};
use tix_bus_client::protocol::delivery_header;
use tix_bus_client::{BusKey, Client, ClientOptions, SubscribeOptions};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

const WAIT: Duration = Duration::from_secs(10);

/// One authenticated session of the stand-in broker.
struct Session {
    peer: Bytes,
    mac: SessionMac,
    sent: u64,
}

struct FakeBroker {
    socket: zeromq::RouterSocket,
    key: BusKey,
}

impl FakeBroker {
    async fn recv(&mut self) -> Vec<Bytes> {
        tokio::time::timeout(WAIT, self.socket.recv())
            .await
            .expect("the client sends something")
            .unwrap()
            .into_vec()
    }

    async fn send(&mut self, frames: Vec<Bytes>) {
        self.socket
            .send(ZmqMessage::try_from(frames).unwrap())
            .await
            .unwrap();
    }

    /// Answers a client's handshake like the real broker; the session.
    async fn accept(&mut self) -> Session {
        let hello = loop {
            let m = self.recv().await;
            if &m[1][..] == b"HELLO" {
                break m;
            }
        };
        let (peer, corr, client_nonce) = (hello[0].clone(), hello[2].clone(), hello[4].clone());
        let broker_nonce = auth::nonce();
        self.send(vec![
            peer.clone(),
            Bytes::from_static(b"CHALLENGE"),
            corr,
            Bytes::copy_from_slice(&broker_nonce),
        ])
        .await;
        let proof = self.recv().await;
        assert_eq!(&proof[1][..], b"AUTH");
        assert!(auth::verify_hello_proof(
            &self.key,
            &broker_nonce,
            &client_nonce,
            "orders",
            PROTOCOL_VERSION,
            &proof[3],
        ));
        let mac = SessionMac::derive(&self.key, &broker_nonce, &client_nonce, "orders");
        let mut s = Session { peer, mac, sent: 0 };
        let body = Bytes::from_static(br#"{"heartbeatMs":5000,"maxEventBytes":1048576}"#);
        self.send_sealed(
            &mut s,
            vec![Bytes::from_static(b"OK"), proof[2].clone(), body],
        )
        .await;
        s
    }

    /// Sends `frames` sealed with the session's next number; the message as sent.
    async fn send_sealed(&mut self, s: &mut Session, frames: Vec<Bytes>) -> Vec<Bytes> {
        let seal = s.mac.seal(Direction::ToClient, s.sent, &frames);
        s.sent += 1;
        let mut m = vec![s.peer.clone()];
        m.extend(frames);
        m.push(seal);
        self.send(m.clone()).await;
        m
    }

    /// Answers the client's SUB once it comes.
    async fn answer_subscribe(&mut self, s: &mut Session) {
        let sub = loop {
            let m = self.recv().await;
            if m[0] == s.peer && &m[1][..] == b"SUB" {
                break m;
            }
        };
        self.send_sealed(
            s,
            vec![Bytes::from_static(b"OK"), sub[2].clone(), Bytes::new()],
        )
        .await;
    }
}

fn delivery(seq: u64, id: &str) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"MSG"),
        Bytes::from_static(b"orders"),
        delivery_header(seq, 1),
        Bytes::copy_from_slice(id.as_bytes()),
        Bytes::from_static(b"payment:created"),
        Bytes::from_static(b"{}"),
    ]
}

#[tokio::test]
async fn a_forged_or_replayed_delivery_never_reaches_the_consumer_and_the_client_reconnects() {
    let key = BusKey::generate();
    let mut socket = zeromq::RouterSocket::new();
    let endpoint = socket.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut broker = FakeBroker {
        socket,
        key: key.clone(),
    };
    let mut opts = ClientOptions::new(endpoint, "orders").with_key(key);
    opts.heartbeat = Duration::from_secs(1);
    opts.max_backoff = Duration::from_millis(100);
    let client = Client::connect(opts);

    let mut s = broker.accept().await;
    client.wait_connected(WAIT).await.unwrap();
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .subscribe(SubscribeOptions::new("orders", &["payment:created"]))
                .await
        }
    });
    broker.answer_subscribe(&mut s).await;
    let mut sub = subscribing.await.unwrap().unwrap();

    let genuine = broker.send_sealed(&mut s, delivery(1, "genuine-1")).await;
    let d = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id, "genuine-1");

    // Sealed with a key that is not the session's: dropped, and the link with it.
    let mut forged = vec![s.peer.clone()];
    forged.extend(delivery(2, "forged-2"));
    let other = SessionMac::derive(
        &BusKey::generate(),
        &auth::nonce(),
        &auth::nonce(),
        "orders",
    );
    forged.push(other.seal(Direction::ToClient, s.sent, &forged[1..]));
    broker.send(forged).await;
    let mut again = broker.accept().await;
    assert_ne!(again.peer, s.peer, "a new connection");
    broker.answer_subscribe(&mut again).await;

    // The genuine delivery sent once more on the new session: its old seal does not open.
    let mut replayed = genuine.clone();
    replayed[0] = again.peer.clone();
    broker.send(replayed).await;
    let third = broker.accept().await;
    assert_ne!(third.peer, again.peer);

    // Neither the forged delivery nor the replayed one reached the consumer.
    let nothing = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(nothing.is_err(), "unexpected delivery {nothing:?}");
}
