//! What sellers are to everyone else and what they see of their own business: a public
//! display name chosen at sign-up (never the email), shown on every ticket, and the list
//! of tickets they sold with amounts and totals.

use std::time::Duration;

use serde_json::{Value, json};
use tix_testkit::{ALL, Api, Stack, User, eventually, field, message};

const SETTLE: Duration = Duration::from_secs(10);

/// Signs up through the gateway; the answer and the user it made.
async fn signup(api: &Api, email: &str, name: Option<Value>) -> (u16, Value, Option<User>) {
    let mut body = json!({"email": email, "password": "password-123"});
    if let Some(n) = name {
        body["displayName"] = n;
    }
    let (s, v) = api
        .call("POST", "/api/users/signup", None, Some(body))
        .await;
    let user = (s == 201).then(|| User {
        id: v["id"].as_str().unwrap().to_string(),
        email: email.to_string(),
        token: v["token"].as_str().unwrap().to_string(),
    });
    (s, v, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sellers_are_shown_by_the_display_name_they_chose_never_by_email() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);

    let (s, v, ana) = signup(&api, "ana.b@example.com", Some(json!("  Ana 東京 🎫 "))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["displayName"], "Ana 東京 🎫", "trimmed, any script");
    let ana = ana.unwrap();
    let (_, me) = api
        .call("GET", "/api/users/currentuser", Some(&ana), None)
        .await;
    assert_eq!(me["currentUser"]["displayName"], "Ana 東京 🎫");

    // No name chosen (absent or null): the email's local part, never the whole address.
    let (s, v, bo) = signup(&api, "Bo.Rivers@Example.com", None).await;
    assert_eq!((s, v["displayName"].as_str()), (201, Some("bo.rivers")));
    let (s, v, _) = signup(&api, "cy@example.com", Some(Value::Null)).await;
    assert_eq!((s, v["displayName"].as_str()), (201, Some("cy")));

    // Every ticket shows its seller's name, in the list and on its own.
    let t1 = api.create_ticket(&ana, "Opera", 40.0).await;
    let t2 = api.create_ticket(bo.as_ref().unwrap(), "Jazz", 15.0).await;
    assert_eq!(api.ticket(&t1).await["sellerName"], "Ana 東京 🎫");
    assert_eq!(api.ticket(&t2).await["sellerName"], "bo.rivers");
    let (_, list) = api.call("GET", "/api/tickets", None, None).await;
    let shown: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sellerName"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["bo.rivers", "Ana 東京 🎫"], "newest first");
    assert!(!list.to_string().contains("example.com"), "{list}");

    // Signing in again and renewing keep the name.
    let (s, v) = api
        .call(
            "POST",
            "/api/users/signin",
            None,
            Some(json!({"email": "ana.b@example.com", "password": "password-123"})),
        )
        .await;
    assert_eq!((s, v["displayName"].as_str()), (200, Some("Ana 東京 🎫")));
    let (s, v) = api.call("POST", "/api/users/renew", Some(&ana), None).await;
    assert_eq!((s, v["displayName"].as_str()), (200, Some("Ana 東京 🎫")));

    // What a display name may not be; each refusal names the field and makes no account.
    // (Three sign-ups above and nine refused here: refused bodies spend no sign-up quota.)
    for (bad, why) in [
        (
            json!(""),
            "Display name must be between 1 and 40 characters",
        ),
        (
            json!("   "),
            "Display name must be between 1 and 40 characters",
        ),
        (
            json!("x".repeat(41)),
            "Display name must be between 1 and 40 characters",
        ),
        (
            json!("evil\u{202E}moc.liam"),
            "Display name must not contain control or invisible characters",
        ),
        (
            json!("line\nbreak"),
            "Display name must not contain control or invisible characters",
        ),
        (
            json!("ana@example.com"),
            "Display name must not contain @ (it is shown to everyone)",
        ),
        (json!(42), "Display name must be a string"),
        (json!("You"), "Display name is reserved: choose another"),
        (
            json!("0193a5c2"),
            "Display name is reserved: choose another",
        ),
    ] {
        let (s, v, _) = signup(&api, "refused@example.com", Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(
            (field(&v), message(&v)),
            ("displayName".into(), why.into()),
            "{bad}"
        );
    }
    let (s, v) = api
        .call(
            "POST",
            "/api/users/signin",
            None,
            Some(json!({"email": "refused@example.com", "password": "password-123"})),
        )
        .await;
    assert_eq!((s, message(&v)), (400, "Invalid credentials".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_sees_what_was_sold_with_amounts_and_totals() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let opera = api.create_ticket(&seller, "Opera", 25.0).await;
    let jazz = api.create_ticket(&seller, "Jazz", 10.5).await;
    let held = api.create_ticket(&seller, "Held", 99.0).await;
    let declined = api.create_ticket(&seller, "Declined", 7.0).await;

    let mut paid = Vec::new();
    for ticket in [&opera, &jazz] {
        let order = api.reserve_when_known(&buyer, ticket).await;
        let (s, v) = api.pay(&buyer, &order, "tok_visa").await;
        assert_eq!(s, 201, "{v}");
        eventually("the order is complete", SETTLE, || async {
            api.order(&buyer, &order).await["status"] == "complete"
        })
        .await;
        paid.push(order);
    }
    // Neither a reservation nor a declined payment is a sale.
    api.reserve_when_known(&buyer, &held).await;
    let order = api.reserve_when_known(&buyer, &declined).await;
    let (s, _) = api.pay(&buyer, &order, "tok_chargeDeclined").await;
    assert_eq!(s, 402);

    let (s, sales) = api
        .call("GET", "/api/orders/sales", Some(&seller), None)
        .await;
    assert_eq!(s, 200, "{sales}");
    assert_eq!(sales["count"], 2);
    assert_eq!(sales["total"], 35.5);
    let rows = sales["sales"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Newest payment first; the amount is what the buyer paid, the buyer is not named.
    assert_eq!(rows[0]["orderId"], paid[1].as_str());
    assert_eq!(rows[0]["ticket"]["title"], "Jazz");
    assert_eq!(rows[0]["amount"], 10.5);
    assert_eq!(rows[1]["ticket"]["title"], "Opera");
    // RFC 3339 in UTC with the same precision: text order is time order.
    assert!(rows[0]["paidAt"].as_str().unwrap() >= rows[1]["paidAt"].as_str().unwrap());
    assert!(!sales.to_string().contains("buyer"), "{sales}");

    // Pages: the totals stay those of every sale.
    let (_, page) = api
        .call(
            "GET",
            "/api/orders/sales?limit=1&offset=1",
            Some(&seller),
            None,
        )
        .await;
    assert_eq!(
        (page["count"].as_u64(), page["total"].as_f64()),
        (Some(2), Some(35.5))
    );
    assert_eq!(page["sales"].as_array().unwrap().len(), 1);
    assert_eq!(page["sales"][0]["ticket"]["title"], "Opera");

    // The buyer sold nothing; nobody signed out sees anything; bad numbers are refused.
    let (s, none) = api
        .call("GET", "/api/orders/sales", Some(&buyer), None)
        .await;
    assert_eq!(
        (s, none["count"].as_u64(), none["total"].as_f64()),
        (200, Some(0), Some(0.0))
    );
    assert_eq!(none["sales"], json!([]));
    let (s, _) = api.call("GET", "/api/orders/sales", None, None).await;
    assert_eq!(s, 401);
    for bad in ["limit=201", "limit=-1", "offset=x"] {
        let (s, v) = api
            .call(
                "GET",
                &format!("/api/orders/sales?{bad}"),
                Some(&seller),
                None,
            )
            .await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(field(&v), bad.split('=').next().unwrap());
    }
}
