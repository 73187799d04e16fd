//! A provider slower than the request may take: the buyer hears "pending" (202) rather
//! than "took too long", the charge is still recorded, and a service told to stop waits
//! for a charge in flight before it exits — nothing is left pending.

use std::time::Duration;

use tix_api::{Payment, PaymentStatus};
use tix_testkit::events::{self, WAIT, in_fifteen_minutes, order_created, publish};
use tix_testkit::{Api, Fault, Stack, StripeDouble, User, eventually};

/// Payments with requests of at most 2 s (so a payment answers within about 1 s) in front
/// of a Stripe that takes 3 s over every charge (the provider's own timeout is longer).
async fn start() -> (Stack, Api, StripeDouble) {
    let stripe = StripeDouble::start().await;
    for _ in 0..4 {
        stripe.fail_next_charge(Fault::SlowAfterCharging(Duration::from_secs(3)));
    }
    let stack = Stack::start_with_env(
        &["payments"],
        &[
            ("TIX_PAYMENT_PROVIDER", "stripe"),
            ("TIX_STRIPE_SECRET_KEY", "sk_test_x"),
            ("TIX_STRIPE_BASE_URL", &stripe.url()),
            ("TIX_REQUEST_TIMEOUT", "2s"),
        ],
    );
    let api = Api::at(&stack.url("payments"));
    (stack, api, stripe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_slower_than_the_request_is_answered_pending_and_then_recorded() {
    let (stack, api, stripe) = start().await;
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let bob = User::new("bob");
    publish(
        &bus,
        &order_created("o-1", "t-1", &bob.id, 700, in_fifteen_minutes()),
    )
    .await;
    let (s, v) = api.pay(&bob, "o-1", "tok_visa").await;
    assert_eq!(s, 202, "{v}");
    let pending: Payment = serde_json::from_value(v).unwrap();
    assert_eq!(pending.status, PaymentStatus::Pending);
    eventually("the charge is recorded", WAIT, || async {
        api.payment(&bob, &pending.id).await.status == PaymentStatus::Succeeded
    })
    .await;
    assert_eq!(stripe.charges().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_service_records_the_charge_in_flight_before_it_exits() {
    let (mut stack, api, stripe) = start().await;
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let bob = User::new("bob");
    publish(
        &bus,
        &order_created("o-2", "t-2", &bob.id, 700, in_fifteen_minutes()),
    )
    .await;
    let (s, v) = api.pay(&bob, "o-2", "tok_visa").await;
    assert_eq!(s, 202, "{v}");
    let pending: Payment = serde_json::from_value(v).unwrap();
    // Told to stop while the provider is still charging: it waits for the charge.
    let exited = stack
        .service("payments")
        .proc
        .terminate(Duration::from_secs(20));
    assert!(exited, "payments stopped by itself, after the charge");
    stack.restart("payments");
    let api = Api::at(&stack.url("payments"));
    assert_eq!(
        api.payment(&bob, &pending.id).await.status,
        PaymentStatus::Succeeded,
        "recorded before the process exited, not left pending"
    );
    assert_eq!(
        stripe.charges().len(),
        1,
        "and not charged again after the restart"
    );
}
