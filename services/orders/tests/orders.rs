//! The orders service alone (with the real bus): its replica of tickets, reservations,
//! and what the expiration and payment events do to an order.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tix_api::Money;
use tix_api::events::{
    Envelope, Event, ExpirationComplete, PaymentCreated, TicketCreated, TicketUpdated,
};
use tix_bus_client::{Client, ClientOptions, SubscribeOptions, Subscription};
use tix_common::auth::JwtKeys;
use tix_testkit::{Stack, TEST_JWT_SECRET};

fn token(user: &str) -> String {
    JwtKeys::new(TEST_JWT_SECRET, Duration::from_secs(3600))
        .unwrap()
        .sign(user, "x@y.io")
        .unwrap()
        .0
}

async fn bus(stack: &Stack) -> Client {
    let c = Client::connect(ClientOptions::new(&stack.bus.endpoint, "test"));
    c.wait_connected(Duration::from_secs(10)).await.unwrap();
    c
}

async fn publish(bus: &Client, event: Event) {
    let env = Envelope::new("tickets", event);
    bus.publish(env.id.clone(), env.subject().as_str(), env.to_json())
        .await
        .unwrap();
}

async fn next(sub: &mut Subscription) -> Envelope {
    let d = tokio::time::timeout(Duration::from_secs(15), sub.next())
        .await
        .expect("an event")
        .unwrap();
    d.ack_nowait().unwrap();
    Envelope::from_bus(&d.subject, &d.payload).unwrap()
}

fn created(id: &str, price_cents: i64) -> Event {
    Event::TicketCreated(TicketCreated {
        id: id.into(),
        title: "Show".into(),
        price_cents: Money::from_cents(price_cents),
        user_id: "seller".into(),
        version: 0,
    })
}

fn updated(id: &str, version: i64, price_cents: i64) -> Event {
    Event::TicketUpdated(TicketUpdated {
        id: id.into(),
        title: format!("Show v{version}"),
        price_cents: Money::from_cents(price_cents),
        user_id: "seller".into(),
        version,
        order_id: None,
    })
}

async fn reserve(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    ticket: &str,
) -> (StatusCode, Value) {
    let r = http
        .post(format!("{url}/api/orders"))
        .bearer_auth(token(user))
        .json(&json!({"ticketId": ticket}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn order(http: &reqwest::Client, url: &str, user: &str, id: &str) -> Value {
    http.get(format!("{url}/api/orders/{id}"))
        .bearer_auth(token(user))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_of_a_replicated_ticket_announces_order_created() {
    let stack = Stack::start_with_env(&["orders"], &[("TIX_ORDER_TTL", "10m")]);
    let (url, http, bus) = (
        stack.url("orders"),
        reqwest::Client::new(),
        bus(&stack).await,
    );
    let mut sub = bus
        .subscribe(SubscribeOptions::new("test", &["order:created"]))
        .await
        .unwrap();
    publish(&bus, created("t1", 2500)).await;
    let (s, o) = reserve(&http, &url, "buyer", "t1").await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(
        (o["status"].as_str(), o["ticket"]["price"].clone()),
        (Some("created"), json!(25))
    );
    match next(&mut sub).await.event {
        Event::OrderCreated(c) => {
            assert_eq!(
                (c.id.as_str(), c.ticket.price_cents.cents(), c.version),
                (o["id"].as_str().unwrap(), 2500, 0)
            );
            let ttl = c.expires_at.to_datetime() - time::OffsetDateTime::now_utc();
            assert!(
                ttl > time::Duration::minutes(9) && ttl <= time::Duration::minutes(10),
                "{ttl}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let r = http.get(format!("{url}/api/orders")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_versions_apply_in_order_even_when_they_arrive_out_of_order() {
    let stack = Stack::start(&["orders"]);
    let (url, http, bus) = (
        stack.url("orders"),
        reqwest::Client::new(),
        bus(&stack).await,
    );
    publish(&bus, created("t2", 1000)).await;
    // Version 2 first: left unacked until version 1 has been applied.
    publish(&bus, updated("t2", 2, 3000)).await;
    publish(&bus, updated("t2", 1, 2000)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, o) = reserve(&http, &url, "probe", "t2").await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let id = o["id"].as_str().unwrap().to_string();
        let version = o["ticket"]["version"].as_i64().unwrap();
        // Release the probe reservation so the next probe can reserve again.
        http.delete(format!("{url}/api/orders/{id}"))
            .bearer_auth(token("probe"))
            .send()
            .await
            .unwrap();
        if version == 2 {
            assert_eq!(o["ticket"]["price"], json!(30), "version 2's price");
            break;
        }
        assert!(version < 2);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica never reached version 2"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_cancels_an_unpaid_order_but_not_a_paid_one() {
    let stack = Stack::start(&["orders"]);
    let (url, http, bus) = (
        stack.url("orders"),
        reqwest::Client::new(),
        bus(&stack).await,
    );
    let mut sub = bus
        .subscribe(SubscribeOptions::new("test", &["order:cancelled"]))
        .await
        .unwrap();
    publish(&bus, created("t3", 100)).await;
    publish(&bus, created("t4", 100)).await;
    let (_, unpaid) = reserve(&http, &url, "ann", "t3").await;
    let (_, paid) = reserve(&http, &url, "bob", "t4").await;
    let (unpaid, paid) = (
        unpaid["id"].as_str().unwrap().to_string(),
        paid["id"].as_str().unwrap().to_string(),
    );
    publish(
        &bus,
        Event::PaymentCreated(PaymentCreated {
            id: "p1".into(),
            order_id: paid.clone(),
            charge_id: "ch".into(),
        }),
    )
    .await;
    publish(
        &bus,
        Event::ExpirationComplete(ExpirationComplete {
            order_id: unpaid.clone(),
        }),
    )
    .await;
    publish(
        &bus,
        Event::ExpirationComplete(ExpirationComplete {
            order_id: paid.clone(),
        }),
    )
    .await;
    match next(&mut sub).await.event {
        Event::OrderCancelled(c) => assert_eq!(
            (c.id.as_str(), c.version, c.ticket.id.as_str()),
            (unpaid.as_str(), 1, "t3")
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        order(&http, &url, "ann", &unpaid).await["status"],
        "cancelled"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while order(&http, &url, "bob", &paid).await["status"] != "complete" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the paid order never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(800), sub.next())
            .await
            .is_err(),
        "a paid order does not expire"
    );
}
