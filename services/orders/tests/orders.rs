//! The orders service alone (with the real bus): its replica of tickets, reservations,
//! and what the expiration and payment events do to an order.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tix_api::Money;
use tix_api::events::{
    Envelope, Event, ExpirationComplete, PaymentCreated, TicketCreated, TicketUpdated,
};
use tix_bus_client::SubscribeOptions;
use tix_testkit::events::{self, next_event, publish};
use tix_testkit::{Api, Stack, User, message};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_of_a_replicated_ticket_announces_order_created() {
    let stack = Stack::start_with_env(&["orders"], &[("TIX_ORDER_TTL", "10m")]);
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    let mut sub = bus
        .subscribe(SubscribeOptions::new("test", &["order:created"]))
        .await
        .unwrap();
    publish(&bus, &Envelope::new("tickets", created("t1", 2500))).await;
    let (s, o) = api.reserve(&User::new("buyer"), "t1").await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(
        (o["status"].as_str(), o["ticket"]["price"].clone()),
        (Some("created"), json!(25))
    );
    match next_event(&mut sub).await.event {
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
    let (s, _) = api.call("GET", "/api/orders", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "listing orders needs a user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_versions_apply_in_order_even_when_they_arrive_out_of_order() {
    // The probe reserves and cancels in a loop: lift the per-buyer rate for it.
    let stack = Stack::start_with_env(&["orders"], &[("TIX_ORDERS_PER_USER", "1000/1000")]);
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    publish(&bus, &Envelope::new("tickets", created("t2", 1000))).await;
    // Version 2 first: left unacked until version 1 has been applied.
    publish(&bus, &Envelope::new("tickets", updated("t2", 2, 3000))).await;
    publish(&bus, &Envelope::new("tickets", updated("t2", 1, 2000))).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, o) = api.reserve(&User::new("probe"), "t2").await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let id = o["id"].as_str().unwrap().to_string();
        let version = o["ticket"]["version"].as_i64().unwrap();
        // Release the probe reservation so the next probe can reserve again.
        let probe = User::new("probe");
        let (s, _) = api
            .call("DELETE", &format!("/api/orders/{id}"), Some(&probe), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "releasing the probe order");
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
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    let mut sub = bus
        .subscribe(SubscribeOptions::new("test", &["order:cancelled"]))
        .await
        .unwrap();
    publish(&bus, &Envelope::new("tickets", created("t3", 100))).await;
    publish(&bus, &Envelope::new("tickets", created("t4", 100))).await;
    let (_, unpaid) = api.reserve(&User::new("ann"), "t3").await;
    let (_, paid) = api.reserve(&User::new("bob"), "t4").await;
    let (unpaid, paid) = (
        unpaid["id"].as_str().unwrap().to_string(),
        paid["id"].as_str().unwrap().to_string(),
    );
    publish(
        &bus,
        &Envelope::new(
            "tickets",
            Event::PaymentCreated(PaymentCreated {
                id: "p1".into(),
                order_id: paid.clone(),
                charge_id: "ch".into(),
            }),
        ),
    )
    .await;
    publish(
        &bus,
        &Envelope::new(
            "tickets",
            Event::ExpirationComplete(ExpirationComplete {
                order_id: unpaid.clone(),
            }),
        ),
    )
    .await;
    publish(
        &bus,
        &Envelope::new(
            "tickets",
            Event::ExpirationComplete(ExpirationComplete {
                order_id: paid.clone(),
            }),
        ),
    )
    .await;
    match next_event(&mut sub).await.event {
        Event::OrderCancelled(c) => assert_eq!(
            (c.id.as_str(), c.version, c.ticket.id.as_str()),
            (unpaid.as_str(), 1, "t3")
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        api.order(&User::new("ann"), &unpaid).await["status"],
        "cancelled"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api.order(&User::new("bob"), &paid).await["status"] != "complete" {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_cannot_hoard_tickets() {
    let stack = Stack::start_with_env(
        &["orders"],
        &[
            ("TIX_MAX_ACTIVE_ORDERS", "3"),
            ("TIX_ORDERS_PER_USER", "6/1"),
        ],
    );
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    for i in 0..10 {
        publish(
            &bus,
            &Envelope::new("tickets", created(&format!("h{i}"), 100)),
        )
        .await;
    }
    let hoarder = User::new("hoarder");
    let mut held = Vec::new();
    for i in 0..3 {
        let (s, o) = api.reserve(&hoarder, &format!("h{i}")).await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        held.push(o["id"].as_str().unwrap().to_string());
    }
    // A fourth unpaid reservation is refused, and says what to do.
    let (s, v) = api.reserve(&hoarder, "h3").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        message(&v),
        "You already hold 3 unpaid reservations: pay for or cancel one first"
    );
    // Someone else still reserves it.
    let (s, _) = api.reserve(&User::new("other"), "h3").await;
    assert_eq!(s, StatusCode::CREATED);
    // Cancelling one makes room again.
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{}", held.remove(0)),
            Some(&hoarder),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = api.reserve(&hoarder, "h4").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    held.push(v["id"].as_str().unwrap().to_string());
    // Reserving and cancelling in a loop runs into the rate of new orders (6 at once).
    let mut last = (201, serde_json::Value::Null);
    for i in 5..10 {
        let (s, _) = api
            .call(
                "DELETE",
                &format!("/api/orders/{}", held.remove(0)),
                Some(&hoarder),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        last = api.reserve(&hoarder, &format!("h{i}")).await;
        if last.0 != StatusCode::CREATED {
            break;
        }
        held.push(last.1["id"].as_str().unwrap().to_string());
    }
    assert_eq!(last.0, StatusCode::TOO_MANY_REQUESTS, "{}", last.1);
    assert_eq!(message(&last.1), "Too many new orders, try again later");
}
