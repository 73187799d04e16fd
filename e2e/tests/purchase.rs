//! The whole purchase flow, every service a separate process, through the gateway.

use std::time::Duration;

use serde_json::Value;
use tix_e2e::assert_consistent_within;
use tix_testkit::{ALL, Api, Stack, User, eventually};

const SETTLE: Duration = Duration::from_secs(10);

async fn reserved_by(api: &Api, ticket: &str) -> Value {
    api.ticket(ticket).await["orderId"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_reserves_and_pays_and_the_ticket_is_sold() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Final", 25.0).await;

    let (s, order) = api.reserve(&buyer, &ticket).await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "created");
    assert_eq!(order["ticket"]["price"], 25);
    let order_id = order["id"].as_str().unwrap().to_string();

    // Tickets hears of it: the ticket shows as reserved and its seller cannot edit it.
    eventually("the ticket shows as reserved", SETTLE, || async {
        reserved_by(&api, &ticket).await == order_id.as_str()
    })
    .await;
    let (s, v) = api
        .call(
            "PUT",
            &format!("/api/tickets/{ticket}"),
            Some(&seller),
            Some(serde_json::json!({"title":"x","price":1})),
        )
        .await;
    assert_eq!(
        (s, v["errors"][0]["message"].as_str()),
        (400, Some("Cannot edit a reserved ticket"))
    );
    // Nobody else can reserve it.
    let (s, v) = api.reserve(&User::new("late"), &ticket).await;
    assert_eq!(
        (s, v["errors"][0]["message"].as_str()),
        (400, Some("Ticket is already reserved"))
    );

    let (s, payment) = api.pay(&buyer, &order_id, "tok_visa").await;
    assert_eq!(s, 201, "{payment}");
    assert_eq!(payment["orderId"], order_id.as_str());
    eventually("the order is complete", SETTLE, || async {
        api.order(&buyer, &order_id).await["status"] == "complete"
    })
    .await;
    // Paid: it can neither be cancelled nor paid again.
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{order_id}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = api.pay(&buyer, &order_id, "tok_visa").await;
    assert_eq!(s, 400);
    // The buyer's orders list it with its ticket; another user cannot see it.
    let (_, mine) = api.call("GET", "/api/orders", Some(&buyer), None).await;
    assert_eq!(mine[0]["ticket"]["title"], "Final");
    let (s, _) = api
        .call(
            "GET",
            &format!("/api/orders/{order_id}"),
            Some(&seller),
            None,
        )
        .await;
    assert_eq!(s, 403);
    assert_consistent_within(&stack.data_dir, SETTLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_cancels_the_order_and_releases_the_ticket() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Declined", 10.0).await;
    let (_, order) = api.reserve(&buyer, &ticket).await;
    let order_id = order["id"].as_str().unwrap().to_string();
    let (s, v) = api.pay(&buyer, &order_id, "tok_chargeDeclined").await;
    assert_eq!(s, 402, "{v}");
    eventually("the order is cancelled", SETTLE, || async {
        api.order(&buyer, &order_id).await["status"] == "cancelled"
    })
    .await;
    eventually("the ticket is released", SETTLE, || async {
        reserved_by(&api, &ticket).await.is_null()
    })
    .await;
    let (s, _) = api.reserve(&User::new("second"), &ticket).await;
    assert_eq!(s, 201, "buyable again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_not_paid_in_time_expires_and_the_ticket_is_buyable_again() {
    let stack = Stack::start_with_env(&ALL, &[("TIX_ORDER_TTL", "2s")]);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Fleeting", 5.0).await;
    let (_, order) = api.reserve(&buyer, &ticket).await;
    let order_id = order["id"].as_str().unwrap().to_string();
    eventually("the order expires", SETTLE, || async {
        api.order(&buyer, &order_id).await["status"] == "cancelled"
    })
    .await;
    eventually("the ticket is released", SETTLE, || async {
        reserved_by(&api, &ticket).await.is_null()
    })
    .await;
    let (s, v) = api.pay(&buyer, &order_id, "tok_visa").await;
    assert_eq!(s, 400, "an expired order cannot be paid: {v}");
    let (s, _) = api.reserve(&User::new("second"), &ticket).await;
    assert_eq!(s, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_releases_the_ticket() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Changed my mind", 5.0).await;
    let (_, order) = api.reserve(&buyer, &ticket).await;
    let order_id = order["id"].as_str().unwrap().to_string();
    eventually("reserved", SETTLE, || async {
        !reserved_by(&api, &ticket).await.is_null()
    })
    .await;
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{order_id}"),
            Some(&seller),
            None,
        )
        .await;
    assert_eq!(s, 403, "only the buyer cancels");
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{order_id}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(api.order(&buyer, &order_id).await["status"], "cancelled");
    eventually("the ticket is released", SETTLE, || async {
        reserved_by(&api, &ticket).await.is_null()
    })
    .await;
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/orders/{order_id}"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, 204, "cancelling twice is harmless");
    let (s, _) = api
        .call("DELETE", "/api/orders/unknown", Some(&buyer), None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_buyers_racing_for_one_ticket_get_one_order() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let ticket = api
        .create_ticket(&User::new("seller"), "Last seat", 99.0)
        .await;
    let (s, _) = api.reserve(&User::new("warmup"), "no-such-ticket").await;
    assert_eq!(s, 404);
    let results = futures::future::join_all((0..100).map(|i| {
        let api = api.clone();
        let ticket = ticket.clone();
        async move { api.reserve(&User::new(&format!("buyer{i}")), &ticket).await }
    }))
    .await;
    let won = results.iter().filter(|(s, _)| *s == 201).count();
    let lost: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 400)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(won, 1, "exactly one order");
    assert_eq!(lost.len(), 99, "the others were refused cleanly");
    assert!(
        lost.iter()
            .all(|v| v["errors"][0]["message"] == "Ticket is already reserved")
    );
    assert_consistent_within(&stack.data_dir, SETTLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_refuse_what_a_marketplace_should_refuse() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let seller = User::new("seller");
    let ticket = api.create_ticket(&seller, "Mine", 5.0).await;
    let (s, v) = api.reserve(&seller, &ticket).await;
    assert_eq!(
        (s, v["errors"][0]["message"].as_str()),
        (400, Some("You cannot buy your own ticket"))
    );
    let (s, v) = api
        .call(
            "POST",
            "/api/orders",
            Some(&seller),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(
        (s, v["errors"][0]["field"].as_str()),
        (400, Some("ticketId"))
    );
    let (s, _) = api
        .call(
            "POST",
            "/api/orders",
            None,
            Some(serde_json::json!({"ticketId": ticket})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = api.call("GET", "/api/orders", None, None).await;
    assert_eq!(s, 401);
}
