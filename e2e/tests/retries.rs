//! A client may retry any request that creates something: with the same `Idempotency-Key`
//! it never makes a second order or charge, and it is told what the first request did
//! rather than "Ticket is already reserved" or "Order already paid".

use serde_json::json;
use tix_testkit::{ALL, Api, Stack, User, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_reservations_and_payments_answer_with_the_first_one() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Retry me", 42.0).await;
    let other = api.create_ticket(&seller, "Another", 10.0).await;
    let reserve = |key: &'static str, ticket: String| {
        let (api, buyer) = (api.clone(), buyer.clone());
        async move {
            api.call_with(
                "POST",
                "/api/orders",
                Some(&buyer),
                Some(json!({"ticketId": ticket})),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };
    // The first answer was lost, say: the retry gets the same order, not "already reserved".
    let (s1, first) = loop {
        let r = reserve("reserve-1", ticket.clone()).await;
        if r.0 != 404 {
            break r; // the new ticket has reached the orders replica
        }
    };
    assert_eq!(s1, 201, "{first}");
    let (s2, again) = reserve("reserve-1", ticket.clone()).await;
    assert_eq!((s2, &again["id"]), (201, &first["id"]), "{again}");
    // Without the key, a second reservation is refused as usual.
    let (s, v) = api.reserve(&buyer, &ticket).await;
    assert_eq!(
        (s, message(&v).as_str()),
        (400, "Ticket is already reserved")
    );
    // The same key for another request is refused.
    let (s, v) = reserve("reserve-1", other.clone()).await;
    assert_eq!(
        (s, message(&v).as_str()),
        (400, "This Idempotency-Key was used for another request")
    );
    let (s, v) = api
        .call_with("GET", "/api/orders", Some(&buyer), None, &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 1, "one order: {v}");

    // Payments: two retries at once, and one later: one charge.
    let order = first["id"].as_str().unwrap().to_string();
    let pay = || {
        let (api, buyer, order) = (api.clone(), buyer.clone(), order.clone());
        async move {
            api.call_with(
                "POST",
                "/api/payments",
                Some(&buyer),
                Some(json!({"orderId": order, "token": "tok_visa"})),
                &[("Idempotency-Key", "pay-1")],
            )
            .await
        }
    };
    let (a, b) = tokio::join!(pay(), pay());
    for (s, v) in [&a, &b] {
        assert!(*s == 201 || *s == 202, "{s} {v}");
    }
    assert_eq!(a.1["id"], b.1["id"], "the same payment");
    let (s, later) = pay().await;
    assert_eq!((s, &later["id"]), (201, &a.1["id"]), "{later}");
    assert_eq!(later["status"], "succeeded");
    let (_, receipts) = api.call("GET", "/api/payments", Some(&buyer), None).await;
    assert_eq!(
        receipts.as_array().unwrap().len(),
        1,
        "one charge: {receipts}"
    );
    // Without the key, paying again is what it always was.
    let (s, v) = api.pay(&buyer, &order, "tok_visa").await;
    assert_eq!((s, message(&v).as_str()), (400, "Order already paid"));
}
