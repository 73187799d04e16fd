//! A rolling upgrade: a newer service publishes events carrying what this version has never
//! heard of — a field inside `data`, a key beside it — and every consumer of this version
//! still applies them (docs/events.md, "Compatibility and upgrades").
//!
//! Each event starts as a real envelope of this version serialized to JSON, so `v`, `id` and
//! `occurredAt` are exactly what the code writes; the newer version's additions are put on
//! top. An event that stands for a service's event carries that service's producer name.

use std::time::Duration;

use serde_json::{Value, json};
use tix_testkit::events::{self, connect, in_fifteen_minutes, order_created};
use tix_testkit::{ALL, Api, Stack, User, eventually, message};

const SETTLE: Duration = Duration::from_secs(10);

/// `env` as a newer version of its producer publishes it — with a payload field and an
/// envelope key this version does not know — as the bus's publish id, subject and payload.
fn as_a_newer_version_publishes(mut env: Value) -> (String, String, Vec<u8>) {
    env["data"]["loyaltyPoints"] = json!({"earned": 120, "tier": "gold"});
    env["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let id = env["id"].as_str().expect("an event id").to_owned();
    let subject = env["subject"].as_str().expect("a subject").to_owned();
    (id, subject, serde_json::to_vec(&env).expect("JSON"))
}

/// `data` on `subject`, from `producer`, in an envelope as this version writes it. (testkit
/// builds real envelopes for `order:created`; this crate does not depend on `tix-api`, so the
/// other subjects take that envelope's frame — `v`, `id`, `occurredAt` — and are re-addressed.)
fn event(producer: &str, subject: &str, data: Value) -> Value {
    let mut env = serde_json::to_value(order_created("", "", "", 0, in_fifteen_minutes()))
        .expect("an envelope serializes");
    env["producer"] = producer.into();
    env["subject"] = subject.into();
    env["data"] = data;
    env
}

async fn status(api: &Api, buyer: &User, order: &str) -> Value {
    api.order(buyer, order).await["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_applies_events_from_a_newer_tickets_payments_and_expiration() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let bus = connect(&stack.bus.endpoint, "newer-services").await;
    let publish = async |env: Value| {
        let (id, subject, bytes) = as_a_newer_version_publishes(env);
        bus.publish(id, subject, bytes)
            .await
            .expect("the bus took the event");
    };
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));

    // ticket:created, then ticket:updated: orders replicates the ticket and its new title
    // and price, and a buyer reserves it. (This ticket exists only in the events, so tickets
    // will not know the order's ticket: not what this test is about.)
    let ticket = "ticket-from-a-newer-tickets";
    publish(event(
        "tickets",
        "ticket:created",
        json!({"id": ticket, "title": "Matinee", "priceCents": 1500, "userId": seller.id,
               "version": 0}),
    ))
    .await;
    publish(event(
        "tickets",
        "ticket:updated",
        json!({"id": ticket, "title": "Evening show", "priceCents": 2500, "userId": seller.id,
               "version": 1, "orderId": null}),
    ))
    .await;
    // An order keeps the ticket as it was reserved: reserve only once orders has applied
    // the update, which a later ticket in the log proves.
    let marker = "ticket-published-after-the-update";
    publish(event(
        "tickets",
        "ticket:created",
        json!({"id": marker, "title": "Marker", "priceCents": 100, "userId": seller.id,
               "version": 0}),
    ))
    .await;
    api.reserve_when_known(&User::new("marker-buyer"), marker)
        .await;
    let order = api.reserve_when_known(&buyer, ticket).await;
    eventually("the order shows the updated ticket", SETTLE, || async {
        let t = api.order(&buyer, &order).await["ticket"].clone();
        t["title"] == "Evening show" && t["price"] == 25
    })
    .await;

    // payment:created: orders completes the order.
    let ticket = api.create_ticket(&seller, "Paid", 10.0).await;
    let paid = api.reserve_when_known(&buyer, &ticket).await;
    publish(event(
        "payments",
        "payment:created",
        json!({"id": "payment-from-a-newer-payments", "orderId": paid, "chargeId": "ch_newer"}),
    ))
    .await;
    eventually("the paid order is complete", SETTLE, || async {
        status(&api, &buyer, &paid).await == "complete"
    })
    .await;

    // payment:failed: orders cancels the order.
    let ticket = api.create_ticket(&seller, "Declined", 10.0).await;
    let declined = api.reserve_when_known(&buyer, &ticket).await;
    publish(event(
        "payments",
        "payment:failed",
        json!({"orderId": declined, "reason": "card declined"}),
    ))
    .await;
    eventually("the declined order is cancelled", SETTLE, || async {
        status(&api, &buyer, &declined).await == "cancelled"
    })
    .await;

    // expiration:complete: orders cancels the order, and its ticket is for sale again.
    let ticket = api.create_ticket(&seller, "Late", 10.0).await;
    let late = api.reserve_when_known(&buyer, &ticket).await;
    publish(event(
        "expiration",
        "expiration:complete",
        json!({"orderId": late}),
    ))
    .await;
    eventually("the expired order is cancelled", SETTLE, || async {
        status(&api, &buyer, &late).await == "cancelled"
    })
    .await;
    let (s, v) = api.reserve(&User::new("second"), &ticket).await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_payments_and_expiration_apply_order_events_from_a_newer_orders() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let bus = connect(&stack.bus.endpoint, "newer-orders").await;
    let mut expirations = bus
        .subscribe(events::group("watch", &["expiration:complete"]))
        .await
        .expect("subscribing");
    let publish = async |env: Value| {
        let (id, subject, bytes) = as_a_newer_version_publishes(env);
        bus.publish(id, subject, bytes)
            .await
            .expect("the bus took the event");
    };
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let held = api.create_ticket(&seller, "Held", 20.0).await;
    let due = api.create_ticket(&seller, "Due", 20.0).await;
    // These orders exist only in the events: orders will not know them when payments and
    // expiration report on them. Not what this test is about.

    // order:created, held for fifteen minutes: tickets reserves the ticket, payments
    // replicates the order and takes the buyer's payment for it.
    let order = "order-from-a-newer-orders";
    let created = order_created(order, &held, &buyer.id, 2000, in_fifteen_minutes());
    publish(serde_json::to_value(&created).expect("JSON")).await;
    eventually("tickets reserves the ticket for it", SETTLE, || async {
        api.ticket(&held).await["orderId"] == order
    })
    .await;
    let (s, payment) = api.pay(&buyer, order, "tok_visa").await;
    assert_eq!(s, 201, "{payment}");
    assert_eq!(payment["orderId"], order);

    // order:created, due the moment it is created: expiration schedules it and announces
    // that its time is up.
    let order = "due-order-from-a-newer-orders";
    let created = order_created(order, &due, &buyer.id, 2000, in_fifteen_minutes());
    let mut created = serde_json::to_value(&created).expect("JSON");
    created["data"]["expiresAt"] = created["occurredAt"].clone();
    publish(created).await;
    let fired = serde_json::to_value(events::next_event(&mut expirations).await).expect("JSON");
    assert_eq!(fired["producer"], "expiration");
    assert_eq!(fired["data"]["orderId"], order);

    // order:cancelled: tickets releases the ticket, payments refuses to charge the order.
    eventually("tickets reserves the ticket for it", SETTLE, || async {
        api.ticket(&due).await["orderId"] == order
    })
    .await;
    publish(event(
        "orders",
        "order:cancelled",
        json!({"id": order, "version": 1, "ticket": {"id": due}}),
    ))
    .await;
    eventually("tickets releases the ticket", SETTLE, || async {
        api.ticket(&due).await["orderId"].is_null()
    })
    .await;
    eventually("payments knows the order is cancelled", SETTLE, || async {
        message(&api.pay(&buyer, order, "tok_visa").await.1) == "Cannot pay for a cancelled order"
    })
    .await;
}
