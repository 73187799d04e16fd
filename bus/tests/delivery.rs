//! Publishing, consuming and acking through a real `tix-bus` process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tix_testkit::Bus;
use tix_testkit::events::{WAIT, assert_quiet, connect, group, next_delivery, publish_n};
use tix_testkit::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_is_delivered_and_acked() {
    let bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    c.publish("evt-1", "ticket:created", r#"{"title":"concert"}"#)
        .await
        .unwrap();
    let mut sub = c
        .subscribe(group("orders", &["ticket:created"]))
        .await
        .unwrap();
    let d = next_delivery(&mut sub).await;
    assert_eq!(d.id, "evt-1");
    assert_eq!(d.subject, "ticket:created");
    assert_eq!(&d.payload[..], br#"{"title":"concert"}"#);
    assert_eq!(d.deliveries, 1);
    d.ack().await.unwrap();

    let stats = c.stats().await.unwrap();
    let g = stats.group("orders").unwrap();
    assert_eq!((g.pending, g.lag, g.floor), (0, 0, d.seq));
    assert_eq!(stats.subjects["ticket:created"], 1);
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_sees_every_event_of_its_subjects_from_the_start() {
    let bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    publish_n(&c, "t", "ticket:created", 20).await;
    publish_n(&c, "o", "order:created", 10).await;

    // Groups made after the events were published still get all of them, in log order.
    let mut orders = c
        .subscribe(group("orders", &["ticket:created"]))
        .await
        .unwrap();
    let mut payments = c
        .subscribe(group("payments", &["ticket:created", "order:created"]))
        .await
        .unwrap();
    let mut seen_orders = Vec::new();
    for _ in 0..20 {
        let d = next_delivery(&mut orders).await;
        assert_eq!(d.subject, "ticket:created");
        seen_orders.push(d.seq);
        d.ack().await.unwrap();
    }
    let mut seen_payments = Vec::new();
    for _ in 0..30 {
        let d = next_delivery(&mut payments).await;
        seen_payments.push(d.seq);
        d.ack().await.unwrap();
    }
    assert!(seen_orders.windows(2).all(|w| w[0] < w[1]), "log order");
    assert!(seen_payments.windows(2).all(|w| w[0] < w[1]), "log order");
    assert_quiet(&mut orders, Duration::from_millis(200)).await;
    assert_quiet(&mut payments, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_three_splits_the_work_and_never_hands_one_event_to_two_members() {
    let bus = Bus::start();
    let publisher = connect(&bus.endpoint, "pub").await;
    let total = 600;
    let held: Arc<Mutex<HashSet<String>>> = Arc::default();
    let per_member: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let all: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for m in 0..3 {
        let c = connect(&bus.endpoint, &format!("member-{m}")).await;
        let mut o = group("workers", &["work"]);
        o.max_in_flight = 8;
        let mut sub = c.subscribe(o).await.unwrap();
        let (held, per_member, all) = (held.clone(), per_member.clone(), all.clone());
        tasks.push(tokio::spawn(async move {
            let _keep = c;
            while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
                // While one member holds an event, no other member may have it.
                assert!(
                    held.lock().unwrap().insert(d.id.clone()),
                    "{} held twice",
                    d.id
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
                held.lock().unwrap().remove(&d.id);
                all.lock().unwrap().push(d.id.clone());
                *per_member.lock().unwrap().entry(m).or_default() += 1;
                d.ack().await.unwrap();
            }
        }));
    }
    publish_n(&publisher, "w", "work", total).await;
    for t in tasks {
        t.await.unwrap();
    }
    let all = all.lock().unwrap();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), total, "each event processed exactly once");
    assert_eq!(unique.len(), total);
    let per_member = per_member.lock().unwrap();
    assert_eq!(per_member.len(), 3, "every member got work: {per_member:?}");
    assert!(
        per_member.values().all(|&n| n >= total / 10),
        "{per_member:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_in_flight_one_a_group_is_processed_strictly_in_order() {
    let bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    publish_n(&c, "e", "ticket:updated", 30).await;
    let order: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut tasks = Vec::new();
    for m in 0..2 {
        let c = connect(&bus.endpoint, &format!("m{m}")).await;
        let mut o = group("orders", &["ticket:updated"]);
        o.max_in_flight = 1;
        let mut sub = c.subscribe(o).await.unwrap();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let _keep = c;
            while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
                order.lock().unwrap().push(d.seq);
                tokio::time::sleep(Duration::from_millis(2)).await;
                d.ack().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 30);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_the_same_event_id_twice_stores_it_once_and_acks_both() {
    let bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    c.publish("same-id", "ticket:created", "{}").await.unwrap();
    // Again, also inside one batch with itself.
    let (a, b) = tokio::join!(
        c.publish("same-id", "ticket:created", "{}"),
        c.publish("same-id", "ticket:created", "{}")
    );
    a.unwrap();
    b.unwrap();
    let stats = c.stats().await.unwrap();
    assert_eq!(stats.events, 1);
    assert_eq!(stats.head, 1);
    let mut sub = c.subscribe(group("g", &["ticket:created"])).await.unwrap();
    next_delivery(&mut sub).await.ack().await.unwrap();
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_group_sees_every_subject() {
    let bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    c.publish("a", "ticket:created", "{}").await.unwrap();
    c.publish("b", "payment:created", "{}").await.unwrap();
    let mut sub = c.subscribe(group("audit", &["*"])).await.unwrap();
    assert_eq!(next_delivery(&mut sub).await.id, "a");
    assert_eq!(next_delivery(&mut sub).await.id, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_events_older_than_the_retention_are_pruned_but_not_before_every_group_acked() {
    let bus = tix_testkit::Bus::start_with(&["--retention", "0s", "--prune-interval", "100ms"]);
    let c = connect(&bus.endpoint, "t").await;
    let mut fast = c.subscribe(group("fast", &["s"])).await.unwrap();
    let mut slow = c.subscribe(group("slow", &["s"])).await.unwrap();
    publish_and_ack(&c, &mut fast, "r", 5).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.stats().await.unwrap().events, 5, "slow has not acked yet");
    for _ in 0..5 {
        next_delivery(&mut slow).await.ack().await.unwrap();
    }
    eventually("the log is pruned", WAIT, || async {
        c.stats().await.unwrap().events == 0
    })
    .await;
    let stats = c.stats().await.unwrap();
    assert_eq!(stats.head, 5, "positions are kept after pruning");
    // The log still works after pruning and positions continue.
    c.publish("after", "s", "{}").await.unwrap();
    let d = next_delivery(&mut fast).await;
    assert_eq!((d.id.as_str(), d.seq), ("after", 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_on_a_rare_subject_behind_a_long_log_gets_its_events() {
    // Start cold (empty memory cache) so the group reads the log from disk, and scans far
    // more positions than one turn of the broker's loop allows.
    let mut bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    publish_n(&c, "noise", "ticket:created", 10_000).await;
    c.publish("rare-1", "payment:failed", "{}").await.unwrap();
    bus.crash_and_restart(&[]);
    let c = connect(&bus.endpoint, "t2").await;
    let mut sub = c
        .subscribe(group("rare", &["payment:failed"]))
        .await
        .unwrap();
    let d = next_delivery(&mut sub).await;
    assert_eq!(d.id, "rare-1");
    d.ack().await.unwrap();
    let g = c.stats().await.unwrap().group("rare").cloned().unwrap();
    assert_eq!((g.lag, g.pending), (0, 0));
}

/// Publishes made at the same moment are packed into one message only up to a size: forty
/// events of 900 KiB (35 MiB, over the broker's 16 MiB message limit) all get through,
/// where one message of all of them would close the connection every time it was retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_published_at_once_go_in_messages_the_broker_takes() {
    let bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    let payload = bytes::Bytes::from(vec![b'x'; 900 * 1024]);
    let mut publishes = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (c, payload) = (c.clone(), payload.clone());
        publishes.spawn(async move {
            c.publish(format!("big-{i}"), "ticket:created", payload)
                .await
        });
    }
    while let Some(r) = publishes.join_next().await {
        r.unwrap().expect("every large publish is stored");
    }
    assert_eq!(c.stats().await.unwrap().events, 40);
}

/// A durable group nobody consumes any more holds back pruning for ever; an operator's
/// `DROP` forgets it (refused while it has a member, and for a group that does not exist),
/// with its dead letters, and the log is pruned. The drop outlives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_group_no_longer_holds_back_pruning() {
    let args = ["--retention", "0s", "--prune-interval", "100ms"];
    let mut bus = tix_testkit::Bus::start_with(&args);
    let c = connect(&bus.endpoint, "t").await;
    let mut live = c.subscribe(group("live", &["s"])).await.unwrap();
    let mut opts = group("gone", &["s"]);
    opts.max_deliveries = 1;
    let mut gone = c.subscribe(opts).await.unwrap();
    publish_and_ack(&c, &mut live, "r", 5).await;
    // One dead letter for the group about to go: it goes with it.
    next_delivery(&mut gone).await.nak().unwrap();
    eventually("a dead letter", WAIT, || async {
        c.dead_letters(Some("gone")).await.unwrap().len() == 1
    })
    .await;
    let refused = c.drop_group("gone", true).await.unwrap_err().to_string();
    assert!(refused.contains("1 member(s)"), "{refused}");
    drop(gone);
    no_members_left(&c, "gone").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        c.stats().await.unwrap().events,
        4,
        "the idle group holds back every event after its dead letter (which has a copy)"
    );

    // Its last member left a moment ago: it may be a service reconnecting. As an operator
    // types it (the operator's key from the data dir), then forced.
    let cli = |extra: &[&str]| {
        let mut args = vec!["drop-group", "--group", "gone"];
        args.extend_from_slice(extra);
        bus.operator(&args)
    };
    let recent = cli(&[]);
    let said = String::from_utf8_lossy(&recent.stderr).into_owned();
    assert!(!recent.status.success(), "{said}");
    assert!(
        said.contains("reconnecting") && said.contains("force"),
        "{said}"
    );
    let forced = cli(&["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&forced.stdout).trim(),
        r#"{"dropped":"gone"}"#
    );
    let unknown = c.drop_group("gone", true).await.unwrap_err().to_string();
    assert!(unknown.contains("unknown group"), "{unknown}");
    eventually("the log is pruned", WAIT, || async {
        c.stats().await.unwrap().events == 0
    })
    .await;
    let stats = c.stats().await.unwrap();
    assert!(stats.groups.iter().all(|g| g.name != "gone"), "{stats:?}");
    assert!(c.dead_letters(Some("gone")).await.unwrap().is_empty());

    // The dropped group's place no longer counts: later events are pruned too.
    publish_and_ack(&c, &mut live, "r1", 3).await;
    eventually("later events are pruned", WAIT, || async {
        c.stats().await.unwrap().events == 0
    })
    .await;
    // An ephemeral group is not dropped: it goes with its last member.
    let mut watching = group("watching", &["s"]);
    watching.ephemeral = true;
    let _watch = c.subscribe(watching).await.unwrap();
    let ephemeral = c
        .drop_group("watching", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(ephemeral.contains("ephemeral"), "{ephemeral}");

    // After a restart the group is still gone, and the log goes on being pruned.
    drop(live);
    bus.crash_and_restart(&args);
    let c = connect(&bus.endpoint, "t").await;
    // A group loaded at start-up has had no member only since the broker started.
    let started = c.drop_group("live", false).await.unwrap_err().to_string();
    assert!(started.contains("reconnecting"), "{started}");
    let mut live = c.subscribe(group("live", &["s"])).await.unwrap();
    assert!(
        c.stats()
            .await
            .unwrap()
            .groups
            .iter()
            .all(|g| g.name != "gone")
    );
    publish_and_ack(&c, &mut live, "r2", 3).await;
    eventually("the new events are pruned too", WAIT, || async {
        c.stats().await.unwrap().events == 0
    })
    .await;
}

/// After a service is restored from a backup, an operator moves its group back to the
/// backup's time: the group gets again every event of its subjects stored since then,
/// acked or not (an ack above its place is forgotten too), from the oldest, and still gets
/// what it owed from before; other groups are left where they are. Refused while the group
/// has a member, for an unknown or ephemeral group; a time it has not reached moves
/// nothing. It outlives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_group_gets_again_every_event_stored_since_the_time_asked() {
    let mut bus = tix_testkit::Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    let mut svc = group("svc", &["s"]);
    svc.max_in_flight = 10;
    let mut sub = c.subscribe(svc.clone()).await.unwrap();
    let mut other = c.subscribe(group("other", &["s"])).await.unwrap();
    let now = std::time::SystemTime::now;
    publish_n(&c, "before", "s", 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(next_delivery(&mut sub).await);
        next_delivery(&mut other).await.ack().await.unwrap();
    }
    // The backup's time: strictly between the two batches, to the millisecond.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let backup = now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    publish_n(&c, "after", "s", 3).await;
    publish_n(&c, "elsewhere", "x", 1).await;
    for _ in 0..3 {
        held.push(next_delivery(&mut sub).await);
        next_delivery(&mut other).await.ack().await.unwrap();
    }
    // Acked: the first from before the backup and the last two after it. Still owed: the
    // second from before (being retried, say) and the first after: the group's place is
    // below the one, and the acks of the two after it are stored above it.
    for i in [0, 3, 4] {
        held[i].ack().await.unwrap();
    }
    let since_ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    };
    let busy = c
        .rewind("svc", since_ms(backup))
        .await
        .unwrap_err()
        .to_string();
    assert!(busy.contains("1 member(s)"), "{busy}");
    drop(held);
    drop(sub);
    no_members_left(&c, "svc").await;
    let unknown = c.rewind("nobody", 0).await.unwrap_err().to_string();
    assert!(unknown.contains("unknown group"), "{unknown}");
    let later = since_ms(now() + Duration::from_secs(3600));
    let ahead = c.rewind("svc", later).await.unwrap();
    assert_eq!(
        (ahead.from, ahead.positions),
        (7, 0),
        "a time not reached moves nothing"
    );

    // As an operator types it, with the operator's key from the data dir.
    let rewind = |since: &str| bus.operator(&["rewind", "--group", "svc", "--since", since]);
    let out = rewind(&humantime::format_rfc3339_millis(backup).to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["group"], "svc");
    assert_eq!(said["from"], 3, "the first event stored after the backup");
    assert_eq!(
        said["positions"], 4,
        "three of its subject and one of another"
    );
    assert_eq!(said["pruned"], false);
    let bad = rewind("yesterday-ish");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("how long ago"));

    let expect = async |c: &tix_bus_client::Client, ids: &[&str]| {
        let mut sub = c.subscribe(svc.clone()).await.unwrap();
        let mut got = Vec::new();
        for _ in ids {
            let d = next_delivery(&mut sub).await;
            got.push(d.id.clone());
            d.ack().await.unwrap();
        }
        assert_eq!(got, ids);
        assert_quiet(&mut sub, Duration::from_millis(300)).await;
        sub
    };
    let since_backup = ["after-00000", "after-00001", "after-00002"];
    let mut owed = vec!["before-00001"];
    owed.extend(since_backup);
    let sub = expect(&c, &owed).await;
    assert_quiet(&mut other, Duration::from_millis(100)).await;

    // Moved back again and the broker restarted before anyone joins: the stored place
    // is the one it starts from.
    drop(sub);
    no_members_left(&c, "svc").await;
    c.rewind("svc", since_ms(backup)).await.unwrap();
    drop(other);
    drop(c);
    bus.crash_and_restart(&[]);
    let c = connect(&bus.endpoint, "t").await;
    expect(&c, &since_backup).await;

    let mut watching = group("watching", &["s"]);
    watching.ephemeral = true;
    let _watch = c.subscribe(watching).await.unwrap();
    let ephemeral = c.rewind("watching", 0).await.unwrap_err().to_string();
    assert!(ephemeral.contains("ephemeral"), "{ephemeral}");
}

/// Waits until the broker counts no member in `group` (its last one dropped).
async fn no_members_left(c: &tix_bus_client::Client, group: &str) {
    eventually("the member left", WAIT, || async {
        let stats = c.stats().await.unwrap();
        stats
            .groups
            .iter()
            .any(|g| g.name == group && g.members == 0)
    })
    .await;
}

/// Publishes `n` events on subject `s` and acks each as `sub` receives it.
async fn publish_and_ack(
    c: &tix_bus_client::Client,
    sub: &mut tix_bus_client::Subscription,
    prefix: &str,
    n: usize,
) {
    publish_n(c, prefix, "s", n).await;
    for _ in 0..n {
        next_delivery(sub).await.ack().await.unwrap();
    }
}

/// A consumer that does not wait for its settles (the services' inbox acks with
/// `ack_nowait`) sends them with correlation id 0: the broker applies them and answers
/// nothing, so neither side spends a message on an `OK` nobody reads. One with an id still
/// gets its `OK`, and a refusal is answered either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settles_with_correlation_id_zero_take_effect_and_get_no_answer() {
    use tix_testkit::events::{RawPeer, frames, test_key};
    let text = |f: &bytes::Bytes| String::from_utf8_lossy(f).into_owned();
    let bus = Bus::start();
    let c = connect(&bus.endpoint, "t").await;
    publish_n(&c, "t", "ticket:created", 3).await;

    let mut peer = RawPeer::connect(&bus.endpoint).await;
    peer.authenticate(tix_testkit::stack::TEST_BUS_CLIENT, &test_key())
        .await;
    peer.send_sealed(frames(&[
        b"SUB",
        &1u64.to_le_bytes(),
        br#"{"group":"orders","subjects":["ticket:created"]}"#,
    ]))
    .await;
    let (mut seqs, mut joined) = (Vec::new(), false);
    while seqs.len() < 3 || !joined {
        let m = peer.recv_sealed().await.unwrap();
        match text(&m[0]).as_str() {
            "OK" => {
                assert_eq!(&m[1][..], &1u64.to_le_bytes());
                joined = true;
            }
            "MSG" => {
                for e in m[2..].chunks(4) {
                    seqs.push(u64::from_le_bytes(e[0][..8].try_into().unwrap()));
                }
            }
            other => panic!("unexpected {other}: {m:?}"),
        }
    }
    let seq = |i: usize| seqs[i].to_le_bytes();
    let zero = 0u64.to_le_bytes();

    // The first event: touched, then acked, both with id 0.
    peer.send_sealed(frames(&[b"TOUCH", &zero, b"orders", &seq(0)]))
        .await;
    peer.send_sealed(frames(&[b"ACK", &zero, b"orders", &seq(0)]))
        .await;
    // The second: handed back with id 0, so it comes again.
    peer.send_sealed(frames(&[b"NAK", &zero, b"orders", &seq(1)]))
        .await;
    // A refusal is answered even with id 0.
    peer.send_sealed(frames(&[b"ACK", &zero, b"no-such-group", &seq(2)]))
        .await;
    // The third, acked with an id: the one answer besides the redelivery and the refusal.
    peer.send_sealed(frames(&[b"ACK", &9u64.to_le_bytes(), b"orders", &seq(2)]))
        .await;

    let mut answers = Vec::new();
    while answers.len() < 3 {
        let m = peer.recv_sealed().await.unwrap();
        answers.push(match text(&m[0]).as_str() {
            "MSG" => format!("MSG {}", u64::from_le_bytes(m[2][..8].try_into().unwrap())),
            "ERR" => format!(
                "ERR {} {}",
                u64::from_le_bytes(m[1][..8].try_into().unwrap()),
                text(&m[2])
            ),
            "OK" => format!("OK {}", u64::from_le_bytes(m[1][..8].try_into().unwrap())),
            other => panic!("unexpected {other}: {m:?}"),
        });
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            "ERR 0 unknown group".to_string(),
            format!("MSG {}", seqs[1]),
            "OK 9".to_string(),
        ]
    );
    assert!(
        peer.recv_within(Duration::from_millis(300)).await.is_none(),
        "nothing else is answered"
    );
    let g = c.stats().await.unwrap();
    let g = g.group("orders").unwrap();
    assert_eq!(
        g.pending, 1,
        "only the event handed back is still out: {g:?}"
    );
    assert_eq!(g.floor, seqs[0], "{g:?}");
}
