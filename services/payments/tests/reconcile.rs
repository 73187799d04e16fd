//! Attempts whose outcome was lost are settled by asking the provider again with the
//! attempt's own key: after a crash between charging and recording (the built-in sandbox,
//! whose ledger outlives the process), and after every kind of unclear answer from Stripe
//! (a double the test starts, with faults injected). After each scenario the provider's
//! books and payments.db agree: every charge made is one succeeded payment, and nothing is
//! left pending.

use std::time::Duration;

use tix_api::events::Event;
use tix_api::{Payment, PaymentStatus};
use tix_bus_client::Subscription;
use tix_testkit::events::{
    self, assert_quiet, in_fifteen_minutes, next_event, order_created, publish,
};
use tix_testkit::{Api, Fault, Stack, StripeDouble, User, message};

async fn receipts(api: &Api, buyer: &User) -> Vec<Payment> {
    let (s, v) = api.call("GET", "/api/payments", Some(buyer), None).await;
    assert_eq!(s, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

async fn watch(stack: &Stack) -> (tix_bus_client::Client, Subscription) {
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let sub = bus
        .subscribe(events::group(
            "test",
            &["payment:created", "payment:failed"],
        ))
        .await
        .unwrap();
    (bus, sub)
}

/// What payments.db holds: (status, provider key) of every attempt, oldest first.
fn attempts(stack: &Stack) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(stack.data_dir.join("payments.db")).unwrap();
    let mut st = c
        .prepare("SELECT status, provider_key FROM payments ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_made_just_before_a_crash_is_recorded_after_the_restart() {
    let mut stack = Stack::start_with_env(
        &["payments"],
        &[
            ("TIX_PAYMENTS_CRASH_AFTER_CHARGE", "1"),
            ("TIX_RECONCILE_EVERY", "1s"),
        ],
    );
    let (bus, mut sub) = watch(&stack).await;
    let bob = User::new("bob");
    publish(
        &bus,
        &order_created("o-1", "t-1", &bob.id, 2050, in_fifteen_minutes()),
    )
    .await;

    // The sandbox charges, then the process dies before payments.db hears of it: the
    // buyer's connection drops without an answer.
    let sent = reqwest::Client::new()
        .post(format!("{}/api/payments", stack.url("payments")))
        .bearer_auth(&bob.token)
        .json(&serde_json::json!({"orderId": "o-1", "token": "tok_visa"}))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "no answer from a process that died: {sent:?}"
    );
    let left = attempts(&stack);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        left[0].0, "pending",
        "written before the provider was called"
    );

    stack.set_env("TIX_PAYMENTS_CRASH_AFTER_CHARGE", "0");
    stack.restart("payments");
    let api = Api::at(&stack.url("payments"));
    // The start-up sweep asks the sandbox again with the attempt's key and finds the charge.
    let created = match next_event(&mut sub).await.event {
        Event::PaymentCreated(p) => p,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(created.order_id, "o-1");
    let paid = receipts(&api, &bob).await;
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(
        (paid[0].id.as_str(), paid[0].status),
        (created.id.as_str(), PaymentStatus::Succeeded)
    );

    // The ledger holds one charge — the one recorded — and nothing is pending.
    let ledger = rusqlite::Connection::open(stack.data_dir.join("sandbox-ledger.db")).unwrap();
    let charges: Vec<String> = ledger
        .prepare("SELECT charge_id FROM charges WHERE charge_id IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(charges, vec![created.charge_id.clone()]);
    assert_eq!(
        attempts(&stack),
        vec![("succeeded".into(), format!("charge-{}", created.id))]
    );

    // Paying again is refused, and charges nothing.
    let (s, v) = api.pay(&bob, "o-1", "tok_visa").await;
    assert_eq!((s, message(&v).as_str()), (400, "Order already paid"));
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_card_is_settled_as_failed_and_another_card_is_a_new_attempt() {
    let stack = Stack::start(&["payments"]);
    let (bus, mut sub) = watch(&stack).await;
    let api = Api::at(&stack.url("payments"));
    let bob = User::new("bob");
    publish(
        &bus,
        &order_created("o-1", "t-1", &bob.id, 990, in_fifteen_minutes()),
    )
    .await;
    let (s, v) = api.pay(&bob, "o-1", "tok_nonsense").await;
    assert_eq!((s, message(&v).as_str()), (400, "Invalid card"));
    let (s, v) = api.pay(&bob, "o-1", "tok_visa").await;
    assert_eq!(s, 201, "{v}");
    assert!(matches!(
        next_event(&mut sub).await.event,
        Event::PaymentCreated(_)
    ));
    // Two attempts, each with its own key: the second is not refused as a reuse of the
    // first's, and the failed one is on the buyer's receipts with its reason.
    let tried = attempts(&stack);
    assert_eq!(
        tried.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        ["failed", "succeeded"]
    );
    assert_ne!(tried[0].1, tried[1].1);
    let list = receipts(&api, &bob).await;
    assert_eq!(
        list.iter()
            .map(|p| (p.status, p.reason.as_deref()))
            .collect::<Vec<_>>(),
        [
            (PaymentStatus::Succeeded, None),
            (PaymentStatus::Failed, Some("Invalid card"))
        ]
    );
}

/// Payments charging through the Stripe double, giving up on Stripe after 1 s and
/// sweeping every second.
fn stripe_stack(stripe: &StripeDouble) -> Stack {
    Stack::start_with_env(
        &["payments"],
        &[
            ("TIX_PAYMENT_PROVIDER", "stripe"),
            ("TIX_STRIPE_SECRET_KEY", "sk_test_x"),
            ("TIX_STRIPE_BASE_URL", &stripe.url()),
            ("TIX_PROVIDER_TIMEOUT", "1s"),
            ("TIX_RECONCILE_EVERY", "1s"),
        ],
    )
}

/// The provider's books and payments.db agree: every charge is one succeeded (or refunded)
/// attempt under that attempt's own key, and no attempt is pending.
fn assert_books_agree(stack: &Stack, stripe: &StripeDouble) {
    let c = rusqlite::Connection::open(stack.data_dir.join("payments.db")).unwrap();
    let pending: i64 = c
        .query_row(
            "SELECT count(*) FROM payments WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 0, "no attempt is left pending");
    for charge in stripe.charges() {
        let (status, key): (String, String) = c
            .query_row(
                "SELECT status, provider_key FROM payments WHERE charge_id = ?1",
                [&charge.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("charge {} is not recorded: {e}", charge.id));
        assert!(
            ["succeeded", "refunded"].contains(&status.as_str()),
            "{status}"
        );
        assert_eq!(key, charge.idempotency_key);
    }
    let recorded: i64 = c
        .query_row(
            "SELECT count(*) FROM payments WHERE charge_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        recorded as usize,
        stripe.charges().len(),
        "no charge recorded twice or invented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unclear_answer_is_settled_by_asking_again_and_charges_once() {
    let stripe = StripeDouble::start().await;
    let stack = stripe_stack(&stripe);
    let (bus, mut sub) = watch(&stack).await;
    let api = Api::at(&stack.url("payments"));
    let bob = User::new("bob");
    let faults = [
        // A 5xx after the money moved.
        Fault::ServerErrorAfterCharging,
        // Charged, then the connection dropped without an answer.
        Fault::ResetAfterCharging,
        // Charged, answered after the client gave up (its timeout is 1 s).
        Fault::SlowAfterCharging(Duration::from_secs(3)),
        // The connection dropped before Stripe did anything: asking again charges now.
        Fault::ResetBeforeCharging,
    ];
    for (i, fault) in faults.iter().enumerate() {
        let order = format!("o-{i}");
        publish(
            &bus,
            &order_created(
                &order,
                &format!("t-{i}"),
                &bob.id,
                1000 + i as i64,
                in_fifteen_minutes(),
            ),
        )
        .await;
        stripe.fail_next_charge(fault.clone());
        // The buyer hears "pending", not an error: the money may have moved.
        let (s, v) = api.pay(&bob, &order, "tok_visa").await;
        assert_eq!(s, 202, "{fault:?}: {v}");
        let pending: Payment = serde_json::from_value(v).unwrap();
        assert_eq!(pending.status, PaymentStatus::Pending);
        // Another card meanwhile is refused: the first attempt is not released on a guess.
        let (s, v) = api.pay(&bob, &order, "4242424242424242").await;
        assert_eq!(s, 400, "{fault:?}: {v}");
        assert!(
            [
                "A payment for this order is being processed",
                "Order already paid"
            ]
            .contains(&message(&v).as_str()),
            "{v}"
        );
        // The sweep asks Stripe again with the attempt's key and records the charge.
        match next_event(&mut sub).await.event {
            Event::PaymentCreated(p) => assert_eq!(
                (p.id.as_str(), p.order_id.as_str()),
                (pending.id.as_str(), order.as_str())
            ),
            other => panic!("{fault:?}: unexpected {other:?}"),
        }
        assert_eq!(
            api.payment(&bob, &pending.id).await.status,
            PaymentStatus::Succeeded,
            "{fault:?}"
        );
    }
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
    assert_eq!(
        stripe.charges().len(),
        faults.len(),
        "{:?}",
        stripe.charges()
    );
    assert_books_agree(&stack, &stripe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_cannot_be_reached_charges_nothing_and_the_buyer_may_retry() {
    // Nothing listens where Stripe should be: the request never leaves.
    let nowhere = format!("http://127.0.0.1:{}", tix_testkit::free_port());
    let stack = Stack::start_with_env(
        &["payments"],
        &[
            ("TIX_PAYMENT_PROVIDER", "stripe"),
            ("TIX_STRIPE_SECRET_KEY", "sk_test_x"),
            ("TIX_STRIPE_BASE_URL", &nowhere),
            ("TIX_RECONCILE_EVERY", "1s"),
        ],
    );
    let (bus, mut sub) = watch(&stack).await;
    let bob = User::new("bob");
    publish(
        &bus,
        &order_created("o-1", "t-1", &bob.id, 700, in_fifteen_minutes()),
    )
    .await;
    let http = reqwest::Client::new();
    for _ in 0..2 {
        // The same Idempotency-Key both times, as the CLI retries: nothing happened the
        // first time, so the second is a new attempt rather than a replayed failure.
        let r = http
            .post(format!("{}/api/payments", stack.url("payments")))
            .bearer_auth(&bob.token)
            .header("Idempotency-Key", "pay-o-1-once")
            .json(&serde_json::json!({"orderId": "o-1", "token": "tok_visa"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "5");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            message(&v),
            "The payment provider cannot be reached right now; nothing was charged"
        );
    }
    // Settled as failed (the order stays open, nothing is announced), never pending.
    assert_eq!(
        attempts(&stack)
            .iter()
            .map(|a| a.0.as_str())
            .collect::<Vec<_>>(),
        ["failed", "failed"]
    );
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_answer_is_lost_is_asked_again_and_made_once() {
    let stripe = StripeDouble::start().await;
    let stack = stripe_stack(&stripe);
    let (bus, mut sub) = watch(&stack).await;
    let api = Api::at(&stack.url("payments"));
    let bob = User::new("bob");
    publish(
        &bus,
        &order_created("o-1", "t-1", &bob.id, 1500, in_fifteen_minutes()),
    )
    .await;
    let (s, v) = api.pay(&bob, "o-1", "tok_visa").await;
    assert_eq!(s, 201, "{v}");
    let paid: Payment = serde_json::from_value(v).unwrap();
    assert!(matches!(
        next_event(&mut sub).await.event,
        Event::PaymentCreated(_)
    ));
    stripe.fail_next_refund(Fault::ServerErrorAfterCharging);
    publish(
        &bus,
        &tix_api::events::Envelope::new(
            "orders",
            Event::PaymentRejected(tix_api::events::PaymentRejected {
                payment_id: paid.id.clone(),
                order_id: "o-1".into(),
                reason: "the order was cancelled before its payment arrived".into(),
            }),
        ),
    )
    .await;
    tix_testkit::eventually("the refund is recorded", events::WAIT, || async {
        api.payment(&bob, &paid.id).await.status == PaymentStatus::Refunded
    })
    .await;
    assert!(
        stripe.requests("/v1/refunds") >= 2,
        "asked again after the 500"
    );
    assert_eq!(stripe.refunds().len(), 1, "{:?}", stripe.refunds());
    assert!(stripe.charges()[0].refunded);
    assert_books_agree(&stack, &stripe);
}
