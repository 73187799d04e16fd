//! The expiration service alone (with the real bus): an order's time runs out, and
//! `expiration:complete` is published — at the due time, not before.

use std::time::{Duration, Instant};

use tix_api::events::{Envelope, Event, OrderCreated, OrderStatus, OrderTicket};
use tix_bus_client::{Client, ClientOptions, SubscribeOptions};
use tix_testkit::Stack;

fn order_created(id: &str, expires_in: time::Duration) -> Envelope {
    Envelope::new(
        "orders",
        Event::OrderCreated(OrderCreated {
            id: id.into(),
            status: OrderStatus::Created,
            user_id: "buyer".into(),
            expires_at: (time::OffsetDateTime::now_utc() + expires_in).into(),
            version: 0,
            ticket: OrderTicket {
                id: "t".into(),
                price_cents: tix_api::Money::from_cents(100),
            },
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_expires_when_its_time_is_up_and_not_before() {
    let stack = Stack::start(&["expiration"]);
    let bus = Client::connect(ClientOptions::new(&stack.bus.endpoint, "test"));
    bus.wait_connected(Duration::from_secs(10)).await.unwrap();
    let mut sub = bus
        .subscribe(SubscribeOptions::new("test", &["expiration:complete"]))
        .await
        .unwrap();
    let started = Instant::now();
    for env in [
        order_created("later", time::Duration::seconds(2)),
        order_created("overdue", time::Duration::seconds(-5)),
    ] {
        bus.publish(env.id.clone(), env.subject().as_str(), env.to_json())
            .await
            .unwrap();
    }
    let mut fired = Vec::new();
    for _ in 0..2 {
        let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("an expiry")
            .unwrap();
        d.ack_nowait().unwrap();
        match Envelope::from_bus(&d.subject, &d.payload).unwrap().event {
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
