//! The orders service alone (with the real bus): its replica of tickets, reservations,
//! and what the expiration and payment events do to an order.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tix_api::Money;
use tix_api::events::{
    Envelope, Event, ExpirationComplete, PaymentCreated, PaymentRejected, TicketCreated,
    TicketUpdated,
};
use tix_bus_client::SubscribeOptions;
use tix_testkit::events::{self, assert_quiet, next_event, publish};
use tix_testkit::{Api, Stack, User, eventually, message};

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

/// A reservation looks the ticket up where it writes the order. One made before the
/// ticket's creation reaches the replica waits for it (up to 1.5 s) and then succeeds; one
/// for a ticket that never comes is 404 and holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_made_before_its_ticket_arrives_waits_for_it() {
    let stack = Stack::start(&["orders"]);
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    let buyer = User::new("early");
    let (reserved, ()) = tokio::join!(api.reserve(&buyer, "late"), async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        publish(&bus, &Envelope::new("tickets", created("late", 700))).await;
    });
    assert_eq!(reserved.0, StatusCode::CREATED, "{}", reserved.1);
    assert_eq!(reserved.1["ticket"]["id"], "late");

    let (s, body) = api.reserve(&buyer, "never").await;
    assert_eq!((s, message(&body).as_str()), (404, "Not found"));
    let (_, mine) = api.call("GET", "/api/orders", Some(&buyer), None).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
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

fn payment_created(payment: &str, order: &str) -> Envelope {
    Envelope::new(
        "payments",
        Event::PaymentCreated(PaymentCreated {
            id: payment.into(),
            order_id: order.into(),
            charge_id: format!("ch_{payment}"),
        }),
    )
}

fn id(order: &serde_json::Value) -> String {
    order["id"].as_str().expect("an order id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_keeps_the_title_and_price_it_was_reserved_at() {
    let stack = Stack::start(&["orders"]);
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    let (buyer, other) = (User::new("buyer"), User::new("other"));
    publish(&bus, &Envelope::new("tickets", created("t5", 2500))).await;
    let (s, o) = api.reserve(&buyer, "t5").await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let order = id(&o);
    // The seller edits the ticket (as if tickets took the edit before the reservation).
    publish(&bus, &Envelope::new("tickets", updated("t5", 1, 4000))).await;
    // A ticket created after the edit: once it can be reserved, the replica has applied
    // everything before it in the log, the edit included.
    publish(&bus, &Envelope::new("tickets", created("t6", 100))).await;
    let (s, v) = api.reserve(&other, "t6").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let shown = |o: &serde_json::Value| {
        (
            o["ticket"]["title"].clone(),
            o["ticket"]["price"].clone(),
            o["ticket"]["version"].clone(),
        )
    };
    let reserved = (json!("Show"), json!(25), json!(0));
    assert_eq!(shown(&api.order(&buyer, &order).await), reserved);
    let (_, list) = api.call("GET", "/api/orders", Some(&buyer), None).await;
    assert_eq!(shown(&list[0]), reserved, "{list}");

    // Released and reserved again, the ticket sells at its new price; the first order
    // still shows the old one.
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{order}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = api.reserve(&other, "t5").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(shown(&v), (json!("Show v1"), json!(40), json!(1)));
    let o = api.order(&buyer, &order).await;
    assert_eq!(
        (o["status"].clone(), shown(&o)),
        (json!("cancelled"), reserved)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_at_is_null_until_the_payment_completes_the_order() {
    let stack = Stack::start(&["orders"]);
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    let mut rejected = bus
        .subscribe(SubscribeOptions::new("test", &["payment:rejected"]))
        .await
        .unwrap();
    let buyer = User::new("buyer");
    publish(&bus, &Envelope::new("tickets", created("t7", 1000))).await;
    let (s, o) = api.reserve(&buyer, "t7").await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["paidAt"], serde_json::Value::Null, "{o}");
    let order = id(&o);
    assert_eq!(
        api.order(&buyer, &order).await["paidAt"],
        serde_json::Value::Null
    );

    let before = time::OffsetDateTime::now_utc();
    publish(&bus, &payment_created("p1", &order)).await;
    eventually("the order is complete", Duration::from_secs(10), || async {
        api.order(&buyer, &order).await["status"] == "complete"
    })
    .await;
    let after = time::OffsetDateTime::now_utc();
    let o = api.order(&buyer, &order).await;
    let paid_at = o["paidAt"].as_str().unwrap_or_else(|| panic!("{o}"));
    let paid_at =
        time::OffsetDateTime::parse(paid_at, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(
        before - time::Duration::milliseconds(1) <= paid_at && paid_at <= after,
        "{paid_at} not between {before} and {after}"
    );
    assert_eq!(o["version"], 1);

    // The same payment announced again changes nothing and is not rejected.
    publish(&bus, &payment_created("p1", &order)).await;
    assert_quiet(&mut rejected, Duration::from_millis(800)).await;
    assert_eq!(api.order(&buyer, &order).await, o);
    // A second charge for the paid order is rejected, so payments refunds it.
    publish(&bus, &payment_created("p2", &order)).await;
    match next_event(&mut rejected).await.event {
        Event::PaymentRejected(r) => assert_eq!(
            r,
            PaymentRejected {
                payment_id: "p2".into(),
                order_id: order.clone(),
                reason: "the order was already paid by another payment".into(),
            }
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(api.order(&buyer, &order).await, o, "paid by p1, still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_a_cancelled_order_is_rejected_and_the_order_stays_cancelled() {
    let stack = Stack::start(&["orders"]);
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    let mut rejected = bus
        .subscribe(SubscribeOptions::new("test", &["payment:rejected"]))
        .await
        .unwrap();
    let buyer = User::new("buyer");
    publish(&bus, &Envelope::new("tickets", created("t8", 1000))).await;
    publish(&bus, &Envelope::new("tickets", created("t9", 1000))).await;
    let (_, cancelled) = api.reserve(&buyer, "t8").await;
    let (_, expired) = api.reserve(&buyer, "t9").await;
    let (cancelled, expired) = (id(&cancelled), id(&expired));

    // Cancelled by the buyer, then a charge arrives (the bus was slow, say).
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{cancelled}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    publish(&bus, &payment_created("p-late", &cancelled)).await;
    match next_event(&mut rejected).await.event {
        Event::PaymentRejected(r) => assert_eq!(
            r,
            PaymentRejected {
                payment_id: "p-late".into(),
                order_id: cancelled.clone(),
                reason: "the order was cancelled before its payment arrived".into(),
            }
        ),
        other => panic!("unexpected {other:?}"),
    }
    let o = api.order(&buyer, &cancelled).await;
    assert_eq!(
        (
            o["status"].as_str(),
            o["paidAt"].clone(),
            o["version"].clone()
        ),
        (Some("cancelled"), serde_json::Value::Null, json!(1)),
        "{o}"
    );

    // Expired, then a charge arrives.
    publish(
        &bus,
        &Envelope::new(
            "expiration",
            Event::ExpirationComplete(ExpirationComplete {
                order_id: expired.clone(),
            }),
        ),
    )
    .await;
    eventually("the order expires", Duration::from_secs(10), || async {
        api.order(&buyer, &expired).await["status"] == "cancelled"
    })
    .await;
    publish(&bus, &payment_created("p-expired", &expired)).await;
    match next_event(&mut rejected).await.event {
        Event::PaymentRejected(r) => assert_eq!(
            (
                r.payment_id.as_str(),
                r.order_id.as_str(),
                r.reason.as_str()
            ),
            (
                "p-expired",
                expired.as_str(),
                "the order expired before its payment arrived"
            )
        ),
        other => panic!("unexpected {other:?}"),
    }
    let o = api.order(&buyer, &expired).await;
    assert_eq!(
        (o["status"].as_str(), o["paidAt"].clone()),
        (Some("cancelled"), serde_json::Value::Null),
        "{o}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_converges_on_the_newest_version_whatever_arrives_and_whatever_never_does() {
    let stack = Stack::start(&["orders"]);
    let (api, bus) = (
        Api::at(&stack.url("orders")),
        events::connect(&stack.bus.endpoint, "test").await,
    );
    // Version 3 alone: its creation and versions 1–2 are held back (or dead-lettered).
    publish(&bus, &Envelope::new("tickets", updated("c1", 3, 4000))).await;
    let (s, o) = api.reserve(&User::new("ann"), "c1").await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(
        (o["ticket"]["version"].clone(), o["ticket"]["price"].clone()),
        (json!(3), json!(40)),
        "the update alone is the ticket as it is now"
    );
    // The stragglers arrive: nothing goes back.
    for e in [
        created("c1", 1000),
        updated("c1", 1, 2000),
        updated("c1", 2, 3000),
    ] {
        publish(&bus, &Envelope::new("tickets", e)).await;
    }
    // A marker published after them proves orders has applied them.
    publish(&bus, &Envelope::new("tickets", created("c2", 500))).await;
    let (s, _) = api.reserve(&User::new("ann"), "c2").await;
    assert_eq!(s, StatusCode::CREATED);
    let id = o["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{id}"),
            Some(&User::new("ann")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, again) = api.reserve(&User::new("bob"), "c1").await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["ticket"]["version"], 3, "{again}");
    assert_eq!(again["ticket"]["price"], 40);
}
