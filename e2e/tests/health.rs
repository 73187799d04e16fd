//! What `/healthz` says while the event plumbing is in trouble, service by service and
//! aggregated by the gateway: a consumer kept from its database, the bus down, a dead
//! letter. And that the trouble costs no event.

use std::time::{Duration, Instant};

use serde_json::Value;
use tix_e2e::rows;
use tix_testkit::events::{self, WAIT};
use tix_testkit::{ALL, Api, Bus, Stack, User, eventually};

/// The gateway's `/healthz`: its HTTP status and body.
async fn gateway_health(api: &Api) -> (u16, Value) {
    api.call("GET", "/healthz", None, None).await
}

async fn wait_all_ok(api: &Api) {
    eventually("every service reports ok", WAIT, || async {
        gateway_health(api).await.1["status"] == "ok"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_kept_from_its_database_is_degraded_in_health_and_uses_no_delivery() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    wait_all_ok(&api).await;

    // Someone holds orders.db's write lock (a stuck backup, a migration by hand): every
    // write of orders fails with "database is locked" after SQLite's 5 s busy timeout.
    let lock = rusqlite::Connection::open(stack.data_dir.join("orders.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked_at = Instant::now();
    let ticket = api
        .create_ticket(&User::new("seller"), "Held back", 10.0)
        .await;

    eventually(
        "the gateway shows orders' consumer stuck",
        WAIT * 2,
        || async {
            let (s, h) = gateway_health(&api).await;
            s == 200
                && h["status"] == "degraded"
                && h["upstreams"]["orders"]["status"] == "up"
                && h["upstreams"]["orders"]["health"] == "degraded"
                && h["upstreams"]["orders"]["checks"]["consumer"]["status"] == "degraded"
                && h["upstreams"]["orders"]["checks"]["consumer"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("database is locked"))
        },
    )
    .await;
    let (_, h) = gateway_health(&api).await;
    let consumer = &h["upstreams"]["orders"]["checks"]["consumer"];
    assert!(consumer["since"].is_string(), "{consumer}");
    assert_eq!(
        h["upstreams"]["tickets"]["health"], "ok",
        "only orders is named"
    );

    // Two ack waits of orders' group (5 s each) and more: the event stays with orders,
    // touched, with no delivery counted.
    let two_ack_waits = Duration::from_secs(12);
    tokio::time::sleep(two_ack_waits.saturating_sub(locked_at.elapsed())).await;
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let g = bus.stats().await.unwrap().group("orders").cloned().unwrap();
    assert_eq!(
        (g.redelivered, g.dead_letters),
        (0, 0),
        "nothing redelivered after {:?}",
        locked_at.elapsed()
    );
    let replica = format!("SELECT id FROM tickets WHERE id = '{ticket}'");
    assert!(rows(&stack.data_dir, "orders.db", &replica).is_empty());

    lock.execute_batch("ROLLBACK").unwrap();
    eventually("orders applies the event", WAIT, || async {
        rows(&stack.data_dir, "orders.db", &replica).len() == 1
    })
    .await;
    wait_all_ok(&api).await;
    let g = bus.stats().await.unwrap().group("orders").cloned().unwrap();
    assert_eq!((g.pending, g.redelivered, g.dead_letters), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_bus_down_every_service_says_so_and_counts_what_waits() {
    let mut stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    wait_all_ok(&api).await;

    stack.bus.proc.kill9();
    // Requests still work; the event waits in tickets' outbox.
    api.create_ticket(&User::new("seller"), "Sold while the bus is down", 5.0)
        .await;
    eventually("every service names its bus link", WAIT, || async {
        let (s, h) = gateway_health(&api).await;
        s == 200
            && h["status"] == "degraded"
            && ["auth", "tickets", "orders", "payments", "expiration"]
                .iter()
                .all(|svc| h["upstreams"][svc]["checks"]["bus"]["status"] == "degraded")
    })
    .await;
    let (_, h) = gateway_health(&api).await;
    let bus_check = &h["upstreams"]["tickets"]["checks"]["bus"];
    assert!(
        bus_check["reason"]
            .as_str()
            .unwrap()
            .contains("not connected to the bus"),
        "{bus_check}"
    );
    eventually(
        "tickets' outbox is degraded, its event waiting",
        WAIT * 2,
        || async {
            let outbox = &gateway_health(&api).await.1["upstreams"]["tickets"]["checks"]["outbox"];
            outbox["status"] == "degraded" && outbox["waiting"] == 1
        },
    )
    .await;

    let restarted = Bus::start_in(&stack.data_dir, stack.bus.port(), &[]);
    stack.bus.proc = restarted.proc;
    wait_all_ok(&api).await;
    let (_, h) = gateway_health(&api).await;
    assert_eq!(h["upstreams"]["tickets"]["checks"]["outbox"]["waiting"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_dead_letters_show_in_its_service_health_through_the_gateway() {
    let mut stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    wait_all_ok(&api).await;
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let subjects = bus
        .stats()
        .await
        .unwrap()
        .group("orders")
        .unwrap()
        .subjects
        .clone();

    // A poison event that orders' consumer would fail on ten times, 5 s apart: with
    // orders stopped, the test takes its group over with a budget of one delivery and
    // hands the event back, so the bus dead-letters it at once.
    stack.kill("orders");
    let mut o = events::group("orders", &[]);
    o.subjects = subjects;
    o.max_deliveries = 1;
    // The broker may not have dropped the killed process from the group yet.
    let deadline = Instant::now() + WAIT;
    let mut sub = loop {
        match bus.subscribe(o.clone()).await {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("joining the group: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    bus.publish("poison-1", "ticket:created", "not an event")
        .await
        .unwrap();
    events::next_delivery(&mut sub).await.nak().unwrap();
    eventually("the event is a dead letter", WAIT, || async {
        bus.dead_letters(Some("orders")).await.unwrap().len() == 1
    })
    .await;
    drop(sub);

    stack.restart("orders");
    eventually("the gateway shows orders' dead letter", WAIT, || async {
        let (_, h) = gateway_health(&api).await;
        h["upstreams"]["orders"]["checks"]["consumer"]["deadLetters"] == 1
    })
    .await;
    let (s, h) = gateway_health(&api).await;
    assert_eq!(
        (s, h["status"].as_str()),
        (200, Some("ok")),
        "a dead letter is for an operator, not an outage: {h}"
    );
}
