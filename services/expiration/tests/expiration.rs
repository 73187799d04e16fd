//! The expiration service alone (with the real bus): an order's time runs out, and
//! `expiration:complete` is published — at the due time, not before, and not for an order
//! that was paid.

use std::time::{Duration, Instant};

use tix_api::UnixMillis;
use tix_api::events::{Envelope, Event, PaymentCreated};
use tix_bus_client::{Client, SubscribeOptions};
use tix_testkit::events::{self, next_event, order_created, publish};
use tix_testkit::{Stack, eventually};

/// `payment:created` as payments publishes it for `order`.
fn payment_created(order: &str) -> Envelope {
    Envelope::new(
        "payments",
        Event::PaymentCreated(PaymentCreated {
            id: format!("pay-{order}"),
            order_id: order.into(),
            charge_id: format!("ch-{order}"),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_expires_when_its_time_is_up_and_not_before() {
    let stack = Stack::start(&["expiration"]);
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let mut sub = bus
        .subscribe(SubscribeOptions::new("test", &["expiration:complete"]))
        .await
        .unwrap();
    let started = Instant::now();
    for env in [
        order_created(
            "later",
            "t",
            "buyer",
            100,
            UnixMillis::now().after(Duration::from_secs(2)),
        ),
        order_created(
            "overdue",
            "t",
            "buyer",
            100,
            UnixMillis::new(UnixMillis::now().as_i64() - 5_000),
        ),
    ] {
        publish(&bus, &env).await;
    }
    let mut fired = Vec::new();
    for _ in 0..2 {
        match next_event(&mut sub).await.event {
            Event::ExpirationComplete(e) => fired.push((e.order_id, started.elapsed())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fired[0].0, "overdue", "an overdue timer fires at once");
    assert_eq!(fired[1].0, "later");
    assert!(
        fired[1].1 >= Duration::from_millis(1500),
        "not before its time: {:?}",
        fired[1].1
    );
    let r = reqwest::get(format!("{}/healthz", stack.url("expiration")))
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Waits until expiration's group has one member asking for exactly `subjects`.
async fn joined_with(bus: &Client, subjects: &[&str]) {
    eventually(
        &format!("expiration joined with {subjects:?}"),
        Duration::from_secs(20),
        || async {
            let Ok(stats) = bus.stats().await else {
                return false;
            };
            stats
                .group("expiration")
                .is_some_and(|g| g.members == 1 && g.subjects == subjects)
        },
    )
    .await;
}

/// The order an `expiration:complete` is for.
fn expired(env: Envelope) -> String {
    match env.event {
        Event::ExpirationComplete(e) => e.order_id,
        other => panic!("unexpected {other:?}"),
    }
}

/// Two orders due in 4 s, `paid<n>` paid at once and `unpaid<n>` not: which of them fire,
/// sorted. Watched from the end of the log, so earlier expiries do not count.
async fn fired_when_one_is_paid(bus: &Client, n: u32) -> Vec<String> {
    let mut watch = SubscribeOptions::new("test", &["expiration:complete"]);
    watch.ephemeral = true;
    let mut sub = bus.subscribe(watch).await.unwrap();
    let due = UnixMillis::now().after(Duration::from_secs(4));
    let (paid, unpaid) = (format!("paid{n}"), format!("unpaid{n}"));
    publish(bus, &order_created(&paid, "t1", "buyer", 100, due)).await;
    publish(bus, &order_created(&unpaid, "t2", "buyer", 100, due)).await;
    // After its order in the log: the group gets them in that order.
    publish(bus, &payment_created(&paid)).await;
    let mut fired = vec![expired(next_event(&mut sub).await)];
    // Both were due at the same moment: a second one would be out within 2 s.
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
        d.ack_nowait().unwrap();
        fired.push(expired(Envelope::from_bus(&d.subject, &d.payload).unwrap()));
    }
    fired.sort();
    fired
}

const BOTH: [&str; 2] = ["order:created", "payment:created"];

/// A paid order's timer is dropped: the sale does not come back 15 minutes later as an
/// `expiration:complete` for orders to ignore. The unpaid one beside it still expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_does_not_expire_and_an_unpaid_one_still_does() {
    let stack = Stack::start(&["expiration"]);
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    joined_with(&bus, &BOTH).await;
    assert_eq!(fired_when_one_is_paid(&bus, 1).await, ["unpaid1"]);
}

/// A broker policy written before expiration asked for `payment:created` (the file is kept
/// across upgrades) refuses that subject. Expiration joins without it, says so in its log,
/// and expires orders as it used to — the paid one too, which orders ignores — rather
/// than staying out of its group and expiring nothing. Once the broker comes back with
/// the right, expiration asks for every subject again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_an_older_policy_expiration_joins_without_payments_and_still_expires() {
    let mut stack = Stack::start(&["expiration"]);
    let policy = stack.bus.policy_file();
    let text = std::fs::read_to_string(&policy).unwrap();
    let older = text.replace(
        "consume = [\"order:created\", \"payment:created\"]",
        "consume = [\"order:created\"]",
    );
    assert_ne!(
        older, text,
        "expiration's rights as init-policy writes them"
    );
    std::fs::write(&policy, older).unwrap();
    // The broker reads the policy as it starts; expiration then starts as after an upgrade.
    stack.bus.crash_and_restart(&[]);
    stack.restart("expiration");
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    joined_with(&bus, &["order:created"]).await;
    assert_eq!(fired_when_one_is_paid(&bus, 1).await, ["paid1", "unpaid1"]);
    let log = stack.service("expiration").proc.log_text();
    assert!(
        log.contains("does not let this service consume payment:created"),
        "{log}"
    );

    // The operator gives the right back and restarts the broker: expiration reconnects,
    // asks for both subjects again, and a paid order's timer is dropped once more.
    std::fs::write(&policy, text).unwrap();
    stack.bus.crash_and_restart(&[]);
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    joined_with(&bus, &BOTH).await;
    assert_eq!(fired_when_one_is_paid(&bus, 2).await, ["unpaid2"]);
}
