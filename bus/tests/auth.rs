//! The bus as a trust boundary (docs/bus.md, "Authentication and integrity",
//! "Permissions"): against a real broker with the policy `tix-bus init-policy` writes,
//! nobody without a key does anything, a wrong key is refused and slowed down, a recorded
//! handshake or frame is worth nothing when replayed, and each service's key does only
//! what its policy entry says.

use std::time::{Duration, Instant};

use tix_bus_client::{BusKey, Client, Error};
use tix_testkit::events::{
    RawPeer, WAIT, connect, connect_as, frames, group, next_delivery, options, test_key,
};
use tix_testkit::{Bus, eventually};

fn key_of(bus: &Bus, client: &str) -> BusKey {
    BusKey::from_hex(&bus.key(client)).unwrap()
}

/// An event as the named producer would publish it.
fn envelope(id: &str, subject: &str, producer: &str) -> String {
    serde_json::json!({
        "v": 1, "id": id, "subject": subject, "producer": producer,
        "occurredAt": "2026-01-01T00:00:00Z",
        "data": {"id": "p1", "orderId": "o1", "chargeId": "ch_1"}
    })
    .to_string()
}

fn text(frame: &bytes::Bytes) -> String {
    String::from_utf8_lossy(frame).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_session_can_do_nothing_but_say_hello() {
    let bus = Bus::start();
    let test = connect(&bus.endpoint, "t").await;
    let mut sub = test
        .subscribe(group("watch", &["payment:created"]))
        .await
        .unwrap();

    // The documented protocol, as a script would speak it: no key, so no handshake.
    let mut forger = RawPeer::connect(&bus.endpoint).await;
    let forged = envelope("forged-1", "payment:created", "payments");
    let corr: Vec<[u8; 8]> = (0..6u64).map(u64::to_le_bytes).collect();
    let attempts: Vec<Vec<&[u8]>> = vec![
        vec![
            b"PUB",
            &corr[1],
            b"forged-1",
            b"payment:created",
            forged.as_bytes(),
        ],
        vec![
            b"SUB",
            &corr[2],
            br#"{"group":"orders","subjects":["payment:created"]}"#,
        ],
        vec![b"ACK", &corr[3], b"orders", &corr[1]],
        vec![b"STATS", &corr[4]],
        vec![b"REPLAY", &corr[5], br#"{"group":"orders"}"#],
        vec![b"DROP", &corr[5], br#"{"group":"orders"}"#],
        vec![b"PING"],
    ];
    for parts in attempts {
        forger.send_raw(frames(&parts)).await;
        let reply = forger.recv_raw().await;
        assert_eq!(text(&reply[0]), "ERR", "{reply:?}");
        assert!(text(&reply[2]).contains("no session"), "{reply:?}");
    }
    // The old protocol's hello (no nonce, no key) opens nothing either.
    forger
        .send_raw(frames(&[
            b"HELLO",
            &6u64.to_le_bytes(),
            br#"{"client":"payments","heartbeatMs":500}"#,
        ]))
        .await;
    let reply = forger.recv_raw().await;
    assert_eq!(text(&reply[0]), "ERR");
    assert!(
        text(&reply[2]).contains("authentication required"),
        "{reply:?}"
    );

    let stats = test.stats().await.unwrap();
    assert_eq!(stats.events, 0, "nothing was stored");
    assert!(stats.group("orders").is_none(), "no group was made");
    tix_testkit::events::assert_quiet(&mut sub, Duration::from_millis(300)).await;
    let log = bus.proc.log_tail();
    assert!(
        log.contains("refused a request from a peer that has not authenticated"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_logged_and_slowed_down() {
    let bus = Bus::start();
    let wrong = BusKey::generate();

    // The client library says why at once, instead of timing out.
    let c = Client::connect(options(&bus.endpoint, "payments", Some(wrong.clone())));
    match c.wait_connected(WAIT).await {
        Err(Error::Refused(why)) => assert!(why.contains("authentication failed"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    c.close().await;
    drop(c);

    // Guess after guess, each on a new connection: every answer is a refusal, and once the
    // first few are spent the broker holds its answers back longer and longer.
    let mut waited = Vec::new();
    for _ in 0..5 {
        let mut peer = RawPeer::connect(&bus.endpoint).await;
        let started = Instant::now();
        let (_, answer) = peer.authenticate("payments", &wrong).await;
        waited.push(started.elapsed());
        assert_eq!(text(&answer[0]), "ERR", "{answer:?}");
        assert_eq!(text(&answer[2]), "authentication failed");
        // Refused, then disconnected (the hello timeout is 10 s: not its sweep).
        assert!(peer.closed_within(Duration::from_secs(3)).await);
    }
    // A deliberate hold-back, not a speed: only its lower bound is checked.
    assert!(
        waited[4] >= Duration::from_millis(400),
        "the 6th failure in a row or later was answered after {:?}",
        waited[4]
    );
    // A name the policy does not know gets the very same answer.
    let mut peer = RawPeer::connect(&bus.endpoint).await;
    let (_, answer) = peer.authenticate("nobody", &wrong).await;
    assert_eq!(text(&answer[2]), "authentication failed");

    // The right key is not held back by someone else's failures.
    let started = Instant::now();
    let payments = connect_as(&bus.endpoint, "payments", key_of(&bus, "payments")).await;
    assert!(payments.is_connected());
    assert!(started.elapsed() < Duration::from_secs(5));

    let log = bus.proc.log_tail();
    assert!(log.contains("authentication failed"), "{log}");
    assert!(
        log.contains("wrong key") && log.contains("payments"),
        "{log}"
    );
    assert!(log.contains("no such client in the policy"), "{log}");
    assert!(
        log.contains("127.0.0.1"),
        "the peer's address is logged: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_handshake_is_refused() {
    let bus = Bus::start();
    let key = key_of(&bus, "payments");
    let mut real = RawPeer::connect(&bus.endpoint).await;
    let (recorded, answer) = real.authenticate("payments", &key).await;
    assert_eq!(text(&answer[0]), "OK");

    // Someone who recorded those frames replays them on a connection of their own: the
    // broker's new challenge makes the old proof worthless.
    let mut replayer = RawPeer::connect(&bus.endpoint).await;
    replayer.send_raw(recorded.hello.clone()).await;
    let challenge = replayer.recv_raw().await;
    assert_eq!(text(&challenge[0]), "CHALLENGE");
    replayer.send_raw(recorded.auth.clone()).await;
    let answer = replayer.recv_raw().await;
    assert_eq!(text(&answer[0]), "ERR", "{answer:?}");
    assert_eq!(text(&answer[2]), "authentication failed");
    // ... and its connection is closed (long before the hello timeout's sweep).
    assert!(
        replayer.closed_within(Duration::from_secs(3)).await,
        "a failed handshake ends the connection"
    );

    // The proof alone, without its hello, is no better.
    let mut bare = RawPeer::connect(&bus.endpoint).await;
    bare.send_raw(recorded.auth).await;
    assert_eq!(text(&bare.recv_raw().await[0]), "ERR");

    let test = connect(&bus.endpoint, "t").await;
    assert_eq!(test.stats().await.unwrap().events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_or_replayed_frame_is_refused_and_ends_the_session() {
    let bus = Bus::start();
    let test = connect(&bus.endpoint, "t").await;
    let key = key_of(&bus, "payments");
    let publish = |corr: u64, id: &str| {
        let body = envelope(id, "payment:created", "payments");
        frames(&[
            b"PUB",
            &corr.to_le_bytes(),
            id.as_bytes(),
            b"payment:created",
            body.as_bytes(),
        ])
    };

    // A frame sealed earlier on the session, sent again (an old sequence number).
    let mut peer = RawPeer::connect(&bus.endpoint).await;
    peer.authenticate("payments", &key).await;
    let sent = peer.send_sealed(publish(10, "genuine-1")).await;
    assert_eq!(text(&peer.recv_sealed().await.unwrap()[0]), "PUBACK");
    let mut replayed = publish(11, "replayed-2");
    replayed.push(sent.last().unwrap().clone());
    peer.send_raw(replayed).await;
    let answer = peer.recv_raw().await;
    assert_eq!(text(&answer[0]), "ERR", "{answer:?}");
    assert!(text(&answer[2]).contains("out of sequence"), "{answer:?}");
    // The session is over, and so is the connection: nothing more is sent on it.
    assert!(
        peer.closed_within(Duration::from_secs(3)).await,
        "a broken seal ends the connection"
    );

    // A frame changed on the way (the MAC no longer matches).
    let mut peer = RawPeer::connect(&bus.endpoint).await;
    peer.authenticate("payments", &key).await;
    let mut tampered = publish(20, "genuine-2");
    let seal = {
        let s = peer.session();
        let seal = s.mac.seal(
            tix_bus_client::protocol::auth::Direction::ToBroker,
            s.sent,
            &tampered,
        );
        s.sent += 1;
        seal
    };
    tampered[2] = bytes::Bytes::from_static(b"injected-3");
    tampered.push(seal);
    peer.send_raw(tampered).await;
    let answer = peer.recv_raw().await;
    assert!(text(&answer[2]).contains("MAC"), "{answer:?}");

    // A message with no seal at all on an authenticated session.
    let mut peer = RawPeer::connect(&bus.endpoint).await;
    peer.authenticate("payments", &key).await;
    peer.send_raw(publish(30, "unsealed-4")).await;
    let answer = peer.recv_raw().await;
    assert!(text(&answer[2]).contains("no seal"), "{answer:?}");

    // Only the genuine event took effect.
    let mut sub = test
        .subscribe(group("check", &["payment:created"]))
        .await
        .unwrap();
    assert_eq!(next_delivery(&mut sub).await.id, "genuine-1");
    tix_testkit::events::assert_quiet(&mut sub, Duration::from_millis(500)).await;
    assert_eq!(test.stats().await.unwrap().events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_key_does_only_what_its_policy_entry_allows() {
    let bus = Bus::start();
    let orders = connect_as(&bus.endpoint, "orders", key_of(&bus, "orders")).await;
    let refused = |r: tix_bus_client::Result<()>, what: &str| match r {
        Err(Error::Refused(m)) => assert!(m.contains(what), "{m}"),
        other => panic!("expected a refusal naming {what:?}, got {other:?}"),
    };

    // Its own subjects under its own name: fine.
    orders
        .publish(
            "o-1",
            "order:created",
            envelope("o-1", "order:created", "orders"),
        )
        .await
        .unwrap();
    // Another service's subject: refused.
    refused(
        orders
            .publish(
                "p-1",
                "payment:created",
                envelope("p-1", "payment:created", "payments"),
            )
            .await,
        "may not publish payment:created",
    );
    // Its own subject under another producer's name: refused.
    refused(
        orders
            .publish(
                "o-2",
                "order:created",
                envelope("o-2", "order:created", "payments"),
            )
            .await,
        "as producer \"payments\"",
    );
    // Another service's group, a subject it does not consume, everything: refused.
    for (g, subjects, what) in [
        ("payments", &["order:created"][..], "group payments"),
        ("orders", &["order:created"][..], "consume order:created"),
        ("orders", &["*"][..], "consume *"),
    ] {
        let r = orders.subscribe(group(g, subjects)).await.map(|_| ());
        refused(r, what);
    }
    // Its own group: fine.
    orders
        .subscribe(group("orders", &["payment:created"]))
        .await
        .unwrap();
    // Operator requests: refused, but for the counters (`stats = true`, for /healthz).
    match orders.dead_letters(None).await {
        Err(Error::Refused(m)) => assert!(m.contains("operator"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(orders.stats().await.unwrap().events, 1);
    let cli = connect_as(&bus.endpoint, "cli", key_of(&bus, "cli")).await;
    match cli.stats().await {
        Err(Error::Refused(m)) => assert!(m.contains("operator"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match orders.replay("orders", None).await {
        Err(Error::Refused(m)) => assert!(m.contains("operator"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nor may a service forget its own dead letters, or move its group back.
    match orders.discard("orders", None).await {
        Err(Error::Refused(m)) => assert!(m.contains("operator"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match orders.rewind("orders", 0).await {
        Err(Error::Refused(m)) => assert!(m.contains("operator"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Refusals leave the session open.
    assert!(orders.is_connected());

    // The operator's key may ask.
    let operator = connect_as(&bus.endpoint, "operator", key_of(&bus, "operator")).await;
    let stats = operator.stats().await.unwrap();
    assert_eq!(stats.events, 1, "only the allowed event was stored");
    let log = bus.proc.log_tail();
    assert!(
        log.contains("refused a request") && log.contains("may not publish payment:created"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_policy_admits_new_clients_and_ends_the_sessions_of_removed_keys() {
    let bus = Bus::start();
    let old = key_of(&bus, "expiration");
    let expiration = connect_as(&bus.endpoint, "expiration", old.clone()).await;
    let newcomer_key = BusKey::generate();
    let newcomer = Client::connect(options(
        &bus.endpoint,
        "newcomer",
        Some(newcomer_key.clone()),
    ));
    assert!(matches!(
        newcomer.wait_connected(WAIT).await,
        Err(Error::Refused(_))
    ));

    // The operator gives expiration a new key and adds a client, then signals the broker.
    let new = BusKey::generate();
    let policy = std::fs::read_to_string(bus.policy_file()).unwrap();
    let policy = policy.replace(&old.to_hex(), &new.to_hex())
        + &format!(
            "\n[clients.newcomer]\nkey = \"{}\"\nconsume = [\"*\"]\ngroups = [\"new\"]\n",
            newcomer_key.to_hex()
        );
    std::fs::write(bus.policy_file(), policy).unwrap();
    bus.proc.signal("HUP");

    // The session opened with the old key ends, and the old key opens no new one ...
    eventually("the old key's session ends", WAIT, || async {
        !expiration.is_connected() && expiration.refusal().is_some()
    })
    .await;
    // ... the new one does, and so does the newcomer's (the client kept trying).
    connect_as(&bus.endpoint, "expiration", new).await;
    newcomer.wait_connected(WAIT).await.unwrap();
    newcomer.subscribe(group("new", &["*"])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_the_broker_starts_only_when_told_it_is_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(tix_testkit::bin("tix-bus"))
            .args(["--bind", "tcp://127.0.0.1:0", "--data-dir", &data])
            .output(),
    )
    .await
    .expect("it exits at once")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no bus policy") && err.contains("init-policy"),
        "{err}"
    );

    // Told so, it runs, and takes clients without a key ...
    let bus = Bus::start_with(&["--insecure-no-auth"]);
    let open = Client::connect(options(&bus.endpoint, "anyone", None));
    open.wait_connected(WAIT).await.unwrap();
    open.publish("e", "s", "{}").await.unwrap();
    // ... but a client with a key will not talk to a broker that does not check it.
    let keyed = Client::connect(options(&bus.endpoint, "test", Some(test_key())));
    match keyed.wait_connected(WAIT).await {
        Err(Error::Refused(why)) => assert!(why.contains("did not ask"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_client_of_another_protocol_version_is_told_so() {
    let bus = Bus::start();
    // A protocol-3 client: it would seal with HMAC-SHA256 over payload digests, where this
    // broker seals with BLAKE3 over the frames, so its first message would fail its check.
    // It is told at once.
    let mut old = RawPeer::connect(&bus.endpoint).await;
    old.send_raw(frames(&[
        b"HELLO",
        &1u64.to_le_bytes(),
        br#"{"client":"payments","heartbeatMs":500,"protocol":3}"#,
        &[7u8; 32],
    ]))
    .await;
    let answer = old.recv_raw().await;
    assert_eq!(text(&answer[0]), "ERR", "{answer:?}");
    let why = text(&answer[2]);
    assert!(
        why.contains("protocol 3 is not spoken here") && why.contains("protocol 4"),
        "{why}"
    );
}
