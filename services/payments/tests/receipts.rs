//! Receipts and refunds through a real `tix-payments` process and the real bus: what a
//! buyer sees of their payments, and a charge orders rejected being given back.

use std::time::Duration;

use tix_api::events::{Envelope, Event, PaymentRejected};
use tix_api::{Payment, PaymentStatus, UnixMillis};
use tix_bus_client::SubscribeOptions;
use tix_testkit::events::{self, WAIT, in_fifteen_minutes, next_event, order_created, publish};
use tix_testkit::{Api, Stack, User, eventually, message};

fn receipt(v: &serde_json::Value) -> Payment {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_see_their_payments_and_only_theirs() {
    let stack = Stack::start(&["payments"]);
    let api = Api::at(&stack.url("payments"));
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let (bob, eve) = (User::new("bob"), User::new("eve"));
    for (order, price) in [("o-1", 2050), ("o-2", 990)] {
        let env = order_created(
            order,
            &format!("t-{order}"),
            &bob.id,
            price,
            in_fifteen_minutes(),
        );
        publish(&bus, &env).await;
    }
    let before = UnixMillis::now();
    let (s, paid) = api.pay(&bob, "o-1", "tok_visa").await;
    assert_eq!(s, 201, "{paid}");
    let paid = receipt(&paid);
    assert_eq!(
        (paid.status, paid.amount.cents(), paid.order_id.as_str()),
        (PaymentStatus::Succeeded, 2050, "o-1")
    );
    assert!(paid.created_at >= before && paid.refunded_at.is_none());
    let (s, declined) = api.pay(&bob, "o-2", "tok_chargeDeclined").await;
    assert_eq!(s, 402, "{declined}");

    let (s, list) = api.call("GET", "/api/payments", Some(&bob), None).await;
    assert_eq!(s, 200);
    let list: Vec<Payment> = serde_json::from_value(list).unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].order_id, "o-2", "newest first");
    assert_eq!(list[0].status, PaymentStatus::Failed);
    assert_eq!(list[0].reason.as_deref(), Some("Your card was declined"));
    assert_eq!(list[1], paid, "the receipt is what the payment answered");

    let path = format!("/api/payments/{}", paid.id);
    let (s, one) = api.call("GET", &path, Some(&bob), None).await;
    assert_eq!((s, receipt(&one)), (200, paid.clone()));
    let (s, v) = api.call("GET", &path, Some(&eve), None).await;
    assert_eq!(
        (s, message(&v).as_str()),
        (403, "Forbidden"),
        "someone else's"
    );
    let (s, _) = api
        .call("GET", "/api/payments/nope", Some(&bob), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = api.call("GET", &path, None, None).await;
    assert_eq!(s, 401);
    let (s, list) = api.call("GET", "/api/payments", Some(&eve), None).await;
    assert_eq!((s, list), (200, serde_json::json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_orders_rejects_is_refunded_once_however_often_it_is_rejected() {
    let stack = Stack::start(&["payments"]);
    let api = Api::at(&stack.url("payments"));
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let mut refunds = bus
        .subscribe(SubscribeOptions::new("test", &["payment:refunded"]))
        .await
        .unwrap();
    let bob = User::new("bob");
    publish(
        &bus,
        &order_created("o-9", "t-9", &bob.id, 1500, in_fifteen_minutes()),
    )
    .await;
    let (s, paid) = api.pay(&bob, "o-9", "tok_visa").await;
    assert_eq!(s, 201, "{paid}");
    let paid = receipt(&paid);
    let reject = || {
        Envelope::new(
            "orders",
            Event::PaymentRejected(PaymentRejected {
                payment_id: paid.id.clone(),
                order_id: "o-9".into(),
                reason: "the order was cancelled before its payment arrived".into(),
            }),
        )
    };
    // Two rejections (a redelivery, a replay): one refund.
    publish(&bus, &reject()).await;
    publish(&bus, &reject()).await;
    match next_event(&mut refunds).await.event {
        Event::PaymentRefunded(r) => assert_eq!(
            (r.payment_id.as_str(), r.order_id.as_str()),
            (paid.id.as_str(), "o-9")
        ),
        other => panic!("unexpected {other:?}"),
    }
    let path = format!("/api/payments/{}", paid.id);
    eventually("the receipt says refunded", WAIT, || async {
        receipt(&api.call("GET", &path, Some(&bob), None).await.1).status == PaymentStatus::Refunded
    })
    .await;
    let refunded = receipt(&api.call("GET", &path, Some(&bob), None).await.1);
    assert!(refunded.refunded_at.is_some_and(|t| t >= paid.created_at));
    assert_eq!(
        refunded.reason.as_deref(),
        Some("the order was cancelled before its payment arrived")
    );
    tix_testkit::events::assert_quiet(&mut refunds, Duration::from_millis(800)).await;
    // The order cannot be paid again: its payment exists, refunded.
    let (s, v) = api.pay(&bob, "o-9", "tok_visa").await;
    assert_eq!(s, 400, "{v}");
}
