//! Nobody is charged without getting the ticket: a payment that lands on an order cancelled
//! first is refunded, whatever order the services learn things in. The services' own
//! SQLite files are checked afterwards (every charge is a completed order or a refund).

use std::time::Duration;

use tix_api::{Payment, PaymentStatus};
use tix_e2e::assert_consistent_within;
use tix_testkit::{ALL, Api, Stack, User, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_an_order_cancelled_while_the_bus_was_frozen_is_refunded() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Front row", 80.0).await;
    let order_id = api.reserve_when_known(&buyer, &ticket).await;
    // Every service has seen the reservation (tickets shows it reserved).
    eventually(
        "tickets applied the reservation",
        Duration::from_secs(10),
        || async { api.ticket(&ticket).await["orderId"] == order_id.as_str() },
    )
    .await;

    // The bus freezes: the cancellation cannot reach payments, which still sees the order
    // open and charges the card.
    stack.bus.proc.signal("STOP");
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{order_id}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, paid) = api.pay(&buyer, &order_id, "tok_visa").await;
    stack.bus.proc.signal("CONT");
    assert_eq!(s, 201, "payments charged the card: {paid}");
    let payment: Payment = serde_json::from_value(paid).unwrap();

    // Orders applied the cancellation first, so it rejects the payment and payments
    // gives the money back.
    let path = format!("/api/payments/{}", payment.id);
    eventually(
        "the charge is refunded",
        Duration::from_secs(30),
        || async {
            let (_, v) = api.call("GET", &path, Some(&buyer), None).await;
            v["status"] == PaymentStatus::Refunded.as_str()
        },
    )
    .await;
    let order = api.order(&buyer, &order_id).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(order["paidAt"], serde_json::Value::Null);
    eventually(
        "the ticket is for sale again",
        Duration::from_secs(10),
        || async { api.ticket(&ticket).await["orderId"].is_null() },
    )
    .await;
    assert_consistent_within(&stack.data_dir, Duration::from_secs(10)).await;
}
