//! The expiration service alone (with the real bus): an order's time runs out, and
//! `expiration:complete` is published — at the due time, not before.

use std::time::{Duration, Instant};

use tix_api::UnixMillis;
use tix_api::events::Event;
use tix_bus_client::SubscribeOptions;
use tix_testkit::Stack;
use tix_testkit::events::{self, next_event, order_created, publish};

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
