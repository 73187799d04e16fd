//! The payments API and its events, through HTTP and the real bus, against a real
//! `tix-payments` process. Orders are announced on the bus as the orders service would;
//! tokens are minted with the stack's secret, as auth would.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tix_api::events::{Envelope, Event, OrderCancelled, TicketRef};
use tix_bus_client::{Client, SubscribeOptions, Subscription};
use tix_testkit::events::{
    self, WAIT, assert_quiet, in_fifteen_minutes, next_event, order_created, publish,
};
use tix_testkit::{Stack, TEST_JWT_SECRET, User, eventually, message};

const PRICE_CENTS: i64 = 2050;
/// How long "nothing more is announced" is watched for.
const QUIET: Duration = Duration::from_millis(800);

struct T {
    stack: Stack,
    url: String,
    http: reqwest::Client,
}

fn start() -> T {
    start_with_env(&[])
}

fn start_with_env(env: &[(&str, &str)]) -> T {
    let stack = Stack::start_with_env(&["payments"], env);
    T {
        url: stack.url("payments"),
        stack,
        http: reqwest::Client::new(),
    }
}

impl T {
    async fn send(&self, user: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.http.post(format!("{}/api/payments", self.url));
        if let Some(u) = user {
            r = r.bearer_auth(User::new(u).token);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn pay(&self, user: &str, order: &str, card: &str) -> (StatusCode, Value) {
        self.send(Some(user), Some(json!({"orderId": order, "token": card})))
            .await
    }

    async fn bus(&self) -> Client {
        events::connect(&self.stack.bus.endpoint, "test").await
    }

    /// A bus client and a subscription to what payments announces.
    async fn watch(&self) -> (Client, Subscription) {
        let bus = self.bus().await;
        let sub = bus
            .subscribe(SubscribeOptions::new(
                "test",
                &["payment:created", "payment:failed"],
            ))
            .await
            .unwrap();
        (bus, sub)
    }

    /// Announces an order for `buyer`, as the orders service would.
    async fn order(&self, bus: &Client, id: &str, buyer: &str, price_cents: i64) {
        let env = order_created(
            id,
            &format!("ticket-of-{id}"),
            buyer,
            price_cents,
            in_fifteen_minutes(),
        );
        publish(bus, &env).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_with_a_good_card_charges_the_order_price_and_announces_payment_created() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    // Paid straight after the order is announced: payments waits for its replica.
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    let (s, v) = t.pay("bob", "order-1", "tok_visa").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["orderId"], &v["status"]),
        (&json!("order-1"), &json!("succeeded"))
    );
    let id = v["id"].as_str().unwrap();
    let env = next_event(&mut sub).await;
    assert_eq!(env.producer, "payments");
    match env.event {
        Event::PaymentCreated(p) => {
            assert_eq!((p.id.as_str(), p.order_id.as_str()), (id, "order-1"));
            assert!(p.charge_id.starts_with("ch_sandbox_"), "{}", p.charge_id);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_quiet(&mut sub, QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_card_number_typed_with_spaces_works_too() {
    let t = start();
    let bus = t.bus().await;
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    let (s, v) = t.pay("bob", "order-1", "4242 4242 4242 4242").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_is_402_announces_payment_failed_and_closes_the_order() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    let (s, v) = t.pay("bob", "order-1", "tok_chargeDeclined").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::PAYMENT_REQUIRED, "Your card was declined")
    );
    match next_event(&mut sub).await.event {
        Event::PaymentFailed(f) => {
            assert_eq!(
                (f.order_id.as_str(), f.reason.as_str()),
                ("order-1", "Your card was declined")
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    // Orders cancels it on payment:failed; another card must not be charged meanwhile.
    let (s, v) = t.pay("bob", "order-1", "tok_visa").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Cannot pay for a cancelled order")
    );
    assert_quiet(&mut sub, QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_card_is_400_on_the_token_and_the_buyer_may_try_another() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    let (s, v) = t.pay("bob", "order-1", "tok_nonsense").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["errors"][0]["field"], "token", "{v}");
    assert_eq!(message(&v), "Invalid card");
    let (s, v) = t.pay("bob", "order-1", "tok_visa").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(matches!(
        next_event(&mut sub).await.event,
        Event::PaymentCreated(_)
    ));
}

/// A buyer pays a moment after reserving, before `order:created` has reached payments'
/// replica: the payment waits for it and is charged, rather than answering 404 for a real
/// order. (The wait is woken by the commit that adds the order, `store::ORDERS`; that the
/// wake-up comes from that commit alone is pinned in `tix_common::db`'s tests, since a
/// wait never woken would still find the order at its deadline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_before_its_order_arrives_waits_for_it() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    let (paid, ()) = tokio::join!(t.pay("bob", "early-order", "tok_visa"), async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let env = order_created(
            "early-order",
            "ticket-of-early-order",
            "bob",
            PRICE_CENTS,
            in_fifteen_minutes(),
        );
        publish(&bus, &env).await;
    });
    assert_eq!(paid.0, StatusCode::CREATED, "{}", paid.1);
    assert_eq!(paid.1["orderId"], "early-order");
    match next_event(&mut sub).await.event {
        Event::PaymentCreated(p) => assert_eq!(p.order_id, "early-order"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_order_is_404_once_the_replica_wait_is_over() {
    let t = start();
    let began = std::time::Instant::now();
    let (s, v) = t.pay("bob", "no-such-order", "tok_visa").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::NOT_FOUND, "Not found")
    );
    assert!(
        began.elapsed() >= Duration::from_secs(3),
        "it waited for the replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_buyer_pays_for_an_order() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    let (s, v) = t.pay("mallory", "order-1", "tok_visa").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::FORBIDDEN, "Forbidden")
    );
    assert_quiet(&mut sub, QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_order_cannot_be_paid() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    publish(
        &bus,
        &Envelope::new(
            "orders",
            Event::OrderCancelled(OrderCancelled {
                id: "order-1".into(),
                version: 1,
                ticket: TicketRef {
                    id: "ticket-of-order-1".into(),
                },
            }),
        ),
    )
    .await;
    // An invalid card charges nothing, so it can probe until the cancellation has landed.
    eventually("the cancellation reaches payments", WAIT, || async {
        let (_, v) = t.pay("bob", "order-1", "tok_nonsense").await;
        message(&v) == "Cannot pay for a cancelled order"
    })
    .await;
    let (s, v) = t.pay("bob", "order-1", "tok_visa").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Cannot pay for a cancelled order")
    );
    assert_quiet(&mut sub, QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_is_not_paid_again() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    let (s, _) = t.pay("bob", "order-1", "tok_visa").await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = t.pay("bob", "order-1", "tok_visa").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Order already paid")
    );
    assert!(matches!(
        next_event(&mut sub).await.event,
        Event::PaymentCreated(_)
    ));
    assert_quiet(&mut sub, QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_payments_at_once_charge_the_order_once() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    t.order(&bus, "order-1", "bob", PRICE_CENTS).await;
    // Both wait for the replica together, then race for the claim.
    let (a, b) = tokio::join!(
        t.pay("bob", "order-1", "tok_visa"),
        t.pay("bob", "order-1", "4242424242424242")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::BAD_REQUEST],
        "{a:?} {b:?}"
    );
    let refused = if a.0 == StatusCode::BAD_REQUEST {
        &a
    } else {
        &b
    };
    // Refused while the first is charging, or once it has been.
    let said = message(&refused.1);
    assert!(
        [
            "A payment for this order is being processed",
            "Order already paid"
        ]
        .contains(&said.as_str()),
        "{said}"
    );
    assert!(matches!(
        next_event(&mut sub).await.event,
        Event::PaymentCreated(_)
    ));
    assert_quiet(&mut sub, QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_mistyped_fields_are_refused_field_by_field() {
    let t = start();
    let cases = [
        (json!({"token": "tok_visa"}), vec!["orderId"]),
        (json!({"orderId": "", "token": "tok_visa"}), vec!["orderId"]),
        (json!({"orderId": 7, "token": "tok_visa"}), vec!["orderId"]),
        (json!({"orderId": "order-1"}), vec!["token"]),
        (json!({"orderId": "order-1", "token": "   "}), vec!["token"]),
        (json!({"orderId": "order-1", "token": {}}), vec!["token"]),
        (json!({}), vec!["orderId", "token"]),
    ];
    for (body, fields) in cases {
        let (s, v) = t.send(Some("bob"), Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let got: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{body} → {v}");
    }
    let r = t
        .http
        .post(format!("{}/api/payments", t.url))
        .bearer_auth(User::new("bob").token)
        .header("content-type", "application/json")
        .body("{\"orderId\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_needs_a_signed_in_buyer() {
    let t = start();
    let (s, v) = t
        .send(
            None,
            Some(json!({"orderId": "order-1", "token": "tok_visa"})),
        )
        .await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::UNAUTHORIZED, "Not authorized")
    );
    let r = t
        .http
        .post(format!("{}/api/payments", t.url))
        .bearer_auth(format!("{}x", User::new("bob").token))
        .json(&json!({"orderId": "order-1", "token": "tok_visa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stripe_provider_charges_through_the_stripe_api() {
    let stripe = tix_testkit::StripeDouble::start().await;
    let t = start_with_env(&[
        ("TIX_PAYMENT_PROVIDER", "stripe"),
        ("TIX_STRIPE_SECRET_KEY", "sk_test_x"),
        ("TIX_STRIPE_BASE_URL", &stripe.url()),
    ]);
    let (bus, mut sub) = t.watch().await;
    t.order(&bus, "order-1", "bob", 2050).await;
    t.order(&bus, "order-2", "bob", 990).await;

    let (s, v) = t.pay("bob", "order-1", "tok_visa").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let charges = stripe.charges();
    assert_eq!(charges.len(), 1, "{charges:?}");
    let payment_id = match next_event(&mut sub).await.event {
        Event::PaymentCreated(p) => {
            assert_eq!(
                (p.order_id.as_str(), p.charge_id.as_str()),
                ("order-1", charges[0].id.as_str())
            );
            p.id
        }
        other => panic!("unexpected {other:?}"),
    };
    // The order's price, in the configured currency, under the attempt's own key.
    assert_eq!(
        (
            charges[0].amount,
            charges[0].currency.as_str(),
            charges[0].source.as_str(),
            charges[0].idempotency_key.clone()
        ),
        (2050, "usd", "tok_visa", format!("charge-{payment_id}"))
    );

    let (s, v) = t.pay("bob", "order-2", "tok_chargeDeclined").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::PAYMENT_REQUIRED, "Your card was declined.")
    );
    match next_event(&mut sub).await.event {
        Event::PaymentFailed(f) => assert_eq!(
            (f.order_id.as_str(), f.reason.as_str()),
            ("order-2", "Your card was declined.")
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(stripe.charges().len(), 1, "a decline moves no money");

    // Orders rejects the first payment (its order was cancelled first): Stripe refunds it,
    // with the payment's own refund key.
    let rejected = Envelope::new(
        "orders",
        Event::PaymentRejected(tix_api::events::PaymentRejected {
            payment_id: payment_id.clone(),
            order_id: "order-1".into(),
            reason: "the order was cancelled before its payment arrived".into(),
        }),
    );
    publish(&bus, &rejected).await;
    eventually("Stripe refunds the rejected charge", WAIT, || async {
        !stripe.refunds().is_empty()
    })
    .await;
    let refunds = stripe.refunds();
    assert_eq!(
        (
            refunds.len(),
            refunds[0].charge.as_str(),
            refunds[0].amount,
            refunds[0].idempotency_key.clone()
        ),
        (
            1,
            charges[0].id.as_str(),
            2050,
            format!("refund-{payment_id}")
        )
    );
    assert!(stripe.charges()[0].refunded);
}

#[test]
fn the_stripe_provider_will_not_start_without_a_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let bus = format!("tcp://127.0.0.1:{}", tix_testkit::free_port());
    let mut child = std::process::Command::new(tix_testkit::bin("tix-payments"))
        .args(["--port", "0"])
        .env("TIX_JWT_SECRET", TEST_JWT_SECRET)
        .env("TIX_DATA_DIR", dir.path())
        .env("TIX_BUS_URL", &bus)
        .env("TIX_PAYMENT_PROVIDER", "stripe")
        .env_remove("TIX_STRIPE_SECRET_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tix-payments kept running without a Stripe key");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("TIX_STRIPE_SECRET_KEY"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_about_to_expire_is_not_charged() {
    let t = start();
    let (bus, mut sub) = t.watch().await;
    // Expires in 2 s: orders would cancel it while a charge is still running.
    let mut env = order_created(
        "order-late",
        "ticket-of-order-late",
        "bob",
        PRICE_CENTS,
        in_fifteen_minutes(),
    );
    if let tix_api::events::Event::OrderCreated(o) = &mut env.event {
        o.expires_at = tix_api::UnixMillis::now().after(Duration::from_secs(2));
    }
    publish(&bus, &env).await;
    let (s, v) = t.pay("bob", "order-late", "tok_visa").await;
    assert_eq!(
        (s, message(&v).as_str()),
        (StatusCode::BAD_REQUEST, "Cannot pay for an expired order")
    );
    assert_quiet(&mut sub, QUIET).await;
}
