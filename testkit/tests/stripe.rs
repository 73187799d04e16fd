//! The Stripe double answers as Stripe does in every way the payments service relies on:
//! test cards, idempotent replays, refunds, and the faults that leave a charge's outcome
//! unknown to the client.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use tix_testkit::stripe::{Fault, StripeDouble};

const SECRET: &str = "sk_test_double";

/// What the client saw: a status, its headers and the raw body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn id(&self) -> String {
        self.json()["id"].as_str().expect("an id").to_owned()
    }

    fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
}

/// Posts a form as tix's Stripe client does, with a generous timeout.
async fn post(
    stripe: &StripeDouble,
    path: &str,
    key: &str,
    form: &[(&str, &str)],
) -> reqwest::Result<Reply> {
    post_within(stripe, path, key, form, Duration::from_secs(10)).await
}

async fn post_within(
    stripe: &StripeDouble,
    path: &str,
    key: &str,
    form: &[(&str, &str)],
    timeout: Duration,
) -> reqwest::Result<Reply> {
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let resp = client
        .post(format!("{}{path}", stripe.url()))
        .bearer_auth(SECRET)
        .header("Idempotency-Key", key)
        .form(form)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?.to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn charge(stripe: &StripeDouble, key: &str, source: &str) -> reqwest::Result<Reply> {
    post(stripe, "/v1/charges", key, &charge_form(source)).await
}

fn charge_form(source: &str) -> [(&str, &str); 4] {
    [
        ("amount", "2050"),
        ("currency", "usd"),
        ("source", source),
        ("description", "order 1"),
    ]
}

async fn refund(stripe: &StripeDouble, key: &str, charge: &str) -> reqwest::Result<Reply> {
    post(
        stripe,
        "/v1/refunds",
        key,
        &[("charge", charge), ("amount", "2050")],
    )
    .await
}

async fn retrieve(stripe: &StripeDouble, id: &str) -> Reply {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/charges/{id}", stripe.url()))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("the double answers");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.expect("a body").to_vec(),
    }
}

#[tokio::test]
async fn test_cards_that_succeed_are_charged() {
    let stripe = StripeDouble::start().await;
    for (key, source) in [
        ("k1", "tok_visa"),
        ("k2", "4242 4242 4242 4242"),
        ("k3", "4242-4242-4242-4242"),
    ] {
        let r = charge(&stripe, key, source).await.unwrap();
        assert_eq!(r.status, 200, "{source}");
        let body = r.json();
        assert!(body["id"].as_str().unwrap().starts_with("ch_"), "{body}");
        assert_eq!(body["object"], "charge");
        assert_eq!(body["amount"], 2050);
        assert_eq!(body["currency"], "usd");
        assert_eq!(body["paid"], true);
        assert_eq!(body["refunded"], false);
        assert_eq!(body["status"], "succeeded");
        assert!(!r.replayed());
    }
    let charges = stripe.charges();
    assert_eq!(charges.len(), 3);
    assert_eq!(charges[1].source, "4242 4242 4242 4242");
    assert_eq!(charges[0].idempotency_key, "k1");
    assert_eq!((charges[0].amount, charges[0].refunded), (2050, false));
}

#[tokio::test]
async fn declined_cards_get_a_402_card_error_and_no_charge() {
    let stripe = StripeDouble::start().await;
    for source in ["tok_chargeDeclined", "4000 0000 0000 0002"] {
        let r = charge(&stripe, source, source).await.unwrap();
        assert_eq!(r.status, 402, "{source}");
        assert_eq!(r.error_type(), "card_error");
        assert_eq!(r.error_code(), "card_declined");
        assert_eq!(r.json()["error"]["message"], "Your card was declined.");
    }
    assert!(stripe.charges().is_empty());
}

#[tokio::test]
async fn an_unknown_token_is_an_invalid_request() {
    let stripe = StripeDouble::start().await;
    let r = charge(&stripe, "k", "tok_nobody").await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "invalid_request_error");
    assert_eq!(r.json()["error"]["message"], "No such token: 'tok_nobody'");
    assert!(stripe.charges().is_empty());
}

#[tokio::test]
async fn malformed_parameters_are_refused_without_using_up_the_key() {
    let stripe = StripeDouble::start().await;
    let cases: [&[(&str, &str)]; 4] = [
        &[("currency", "usd"), ("source", "tok_visa")],
        &[
            ("amount", "20.50"),
            ("currency", "usd"),
            ("source", "tok_visa"),
        ],
        &[("amount", "2050"), ("source", "tok_visa")],
        &[("amount", "2050"), ("currency", "usd")],
    ];
    for form in cases {
        let r = post(&stripe, "/v1/charges", "order-1", form).await.unwrap();
        assert_eq!(r.status, 400, "{form:?}");
        assert_eq!(r.error_type(), "invalid_request_error", "{form:?}");
    }
    let r = charge(&stripe, "order-1", "tok_visa").await.unwrap();
    assert_eq!(
        r.status, 200,
        "the key was not stored with a refused request"
    );
    assert!(!r.replayed());
    assert_eq!(stripe.charges().len(), 1);
}

#[tokio::test]
async fn unknown_parameters_are_refused_as_stripe_does() {
    let stripe = StripeDouble::start().await;
    let mut form = charge_form("tok_visa").to_vec();
    form.push(("capture", "false"));
    let r = post(&stripe, "/v1/charges", "k", &form).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "parameter_unknown");

    form.pop();
    form.push(("metadata[order_id]", "o-1"));
    let r = post(&stripe, "/v1/charges", "k", &form).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["order_id"], "o-1");
}

#[tokio::test]
async fn replaying_a_key_with_the_same_parameters_repeats_the_answer_and_charges_once() {
    let stripe = StripeDouble::start().await;
    let first = charge(&stripe, "order-1", "tok_visa").await.unwrap();
    let mut reordered = charge_form("tok_visa");
    reordered.reverse();
    let again = post(&stripe, "/v1/charges", "order-1", &reordered)
        .await
        .unwrap();

    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "byte for byte");
    assert!(again.replayed());
    assert_eq!(stripe.charges().len(), 1);
    assert_eq!(stripe.requests("/v1/charges"), 2);
}

#[tokio::test]
async fn a_declined_charge_is_replayed_as_the_same_decline() {
    let stripe = StripeDouble::start().await;
    let first = charge(&stripe, "order-1", "tok_chargeDeclined")
        .await
        .unwrap();
    let again = charge(&stripe, "order-1", "tok_chargeDeclined")
        .await
        .unwrap();
    assert_eq!((first.status, again.status), (402, 402));
    assert_eq!(again.body, first.body);
    assert!(again.replayed());
}

#[tokio::test]
async fn reusing_a_key_with_other_parameters_is_an_idempotency_error() {
    let stripe = StripeDouble::start().await;
    charge(&stripe, "order-1", "tok_visa").await.unwrap();
    let r = charge(&stripe, "order-1", "4242424242424242")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "idempotency_error");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message
            .starts_with("Keys for idempotent requests can only be used with the same parameters"),
        "{message}"
    );
    assert_eq!(stripe.charges().len(), 1);
}

#[tokio::test]
async fn keys_are_scoped_per_endpoint() {
    let stripe = StripeDouble::start().await;
    let id = charge(&stripe, "same-key", "tok_visa").await.unwrap().id();
    let r = refund(&stripe, "same-key", &id).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(!r.replayed());
}

#[tokio::test]
async fn a_slow_answer_times_the_client_out_though_the_charge_was_made() {
    let stripe = StripeDouble::start().await;
    stripe.fail_next_charge(Fault::SlowAfterCharging(Duration::from_secs(2)));
    let form = charge_form("tok_visa");

    let err = post_within(
        &stripe,
        "/v1/charges",
        "order-1",
        &form,
        Duration::from_millis(500),
    )
    .await
    .expect_err("the client gives up");
    assert!(err.is_timeout(), "{err}");
    let charges = stripe.charges();
    assert_eq!(charges.len(), 1);

    // The first answer is still being held back; a replay gets the stored one at once.
    let again = post_within(
        &stripe,
        "/v1/charges",
        "order-1",
        &form,
        Duration::from_millis(500),
    )
    .await
    .unwrap();
    assert_eq!(again.status, 200);
    assert!(again.replayed());
    assert_eq!(again.id(), charges[0].id);
    assert_eq!(stripe.charges().len(), 1);
}

#[tokio::test]
async fn a_server_error_after_charging_is_followed_by_the_stored_success() {
    let stripe = StripeDouble::start().await;
    stripe.fail_next_charge(Fault::ServerErrorAfterCharging);

    let first = charge(&stripe, "order-1", "tok_visa").await.unwrap();
    assert_eq!(first.status, 500);
    assert_eq!(first.error_type(), "api_error");
    let charges = stripe.charges();
    assert_eq!(charges.len(), 1);

    let again = charge(&stripe, "order-1", "tok_visa").await.unwrap();
    assert_eq!(again.status, 200);
    assert!(again.replayed());
    assert_eq!(again.id(), charges[0].id);
    assert_eq!(stripe.charges().len(), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_charging_hides_a_charge_that_a_replay_reveals() {
    let stripe = StripeDouble::start().await;
    stripe.fail_next_charge(Fault::ResetAfterCharging);

    let err = charge(&stripe, "order-1", "tok_visa")
        .await
        .expect_err("no answer at all");
    assert!(err.status().is_none(), "{err}");
    assert!(!err.is_timeout(), "{err}");
    let charges = stripe.charges();
    assert_eq!(charges.len(), 1);

    let again = charge(&stripe, "order-1", "tok_visa").await.unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.id(), charges[0].id);
    assert_eq!(stripe.charges().len(), 1);
    assert_eq!(
        stripe.requests("/v1/charges"),
        2,
        "the client did not retry on its own"
    );
}

#[tokio::test]
async fn a_connection_dropped_before_charging_leaves_the_key_free() {
    let stripe = StripeDouble::start().await;
    stripe.fail_next_charge(Fault::ResetBeforeCharging);

    let err = charge(&stripe, "order-1", "tok_visa")
        .await
        .expect_err("no answer at all");
    assert!(err.status().is_none(), "{err}");
    assert!(stripe.charges().is_empty());

    let retry = charge(&stripe, "order-1", "tok_visa").await.unwrap();
    assert_eq!(retry.status, 200);
    assert!(!retry.replayed());
    assert_eq!(stripe.charges().len(), 1);
}

#[tokio::test]
async fn faults_are_used_in_order_by_new_requests_only() {
    let stripe = StripeDouble::start().await;
    charge(&stripe, "order-1", "tok_visa").await.unwrap();
    stripe.fail_next_charge(Fault::ServerErrorAfterCharging);
    stripe.fail_next_charge(Fault::ResetBeforeCharging);

    let replay = charge(&stripe, "order-1", "tok_visa").await.unwrap();
    assert_eq!(replay.status, 200, "a replay leaves the faults queued");
    assert_eq!(
        charge(&stripe, "order-2", "tok_visa").await.unwrap().status,
        500
    );
    assert!(charge(&stripe, "order-3", "tok_visa").await.is_err());
    assert_eq!(
        charge(&stripe, "order-3", "tok_visa").await.unwrap().status,
        200
    );
    assert_eq!(stripe.charges().len(), 3);
}

#[tokio::test]
async fn refunding_a_charge_marks_it_refunded() {
    let stripe = StripeDouble::start().await;
    let id = charge(&stripe, "order-1", "tok_visa").await.unwrap().id();

    let r = refund(&stripe, "refund-1", &id).await.unwrap();
    assert_eq!(r.status, 200);
    let body = r.json();
    assert!(body["id"].as_str().unwrap().starts_with("re_"), "{body}");
    assert_eq!(body["object"], "refund");
    assert_eq!(body["charge"], id.as_str());
    assert_eq!(body["amount"], 2050);
    assert_eq!(body["status"], "succeeded");

    let got = retrieve(&stripe, &id).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["refunded"], true);
    assert_eq!(got.json()["amount_refunded"], 2050);
    assert!(stripe.charges()[0].refunded);
    let refunds = stripe.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].charge, id);
    assert_eq!(refunds[0].idempotency_key, "refund-1");
}

#[tokio::test]
async fn a_refund_is_replayed_for_its_key_and_refused_for_another() {
    let stripe = StripeDouble::start().await;
    let id = charge(&stripe, "order-1", "tok_visa").await.unwrap().id();
    let first = refund(&stripe, "refund-1", &id).await.unwrap();

    let again = refund(&stripe, "refund-1", &id).await.unwrap();
    assert_eq!((again.status, again.id()), (200, first.id()));
    assert!(again.replayed());

    let other = refund(&stripe, "refund-2", &id).await.unwrap();
    assert_eq!(other.status, 400);
    assert_eq!(other.error_code(), "charge_already_refunded");
    assert_eq!(stripe.refunds().len(), 1);
}

#[tokio::test]
async fn refunds_of_unknown_charges_or_too_much_are_refused() {
    let stripe = StripeDouble::start().await;
    let r = refund(&stripe, "refund-1", "ch_nobody").await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "resource_missing");
    assert_eq!(r.json()["error"]["message"], "No such charge: 'ch_nobody'");

    let id = charge(&stripe, "order-1", "tok_visa").await.unwrap().id();
    let form = [("charge", id.as_str()), ("amount", "2051")];
    let r = post(&stripe, "/v1/refunds", "refund-2", &form)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "invalid_request_error");
    assert!(stripe.refunds().is_empty());
    assert!(!stripe.charges()[0].refunded);
}

#[tokio::test]
async fn a_refund_whose_answer_is_lost_is_found_by_its_replay() {
    let stripe = StripeDouble::start().await;
    let id = charge(&stripe, "order-1", "tok_visa").await.unwrap().id();
    stripe.fail_next_refund(Fault::ServerErrorAfterCharging);
    stripe.fail_next_refund(Fault::ResetAfterCharging);

    assert_eq!(refund(&stripe, "refund-1", &id).await.unwrap().status, 500);
    let again = refund(&stripe, "refund-1", &id).await.unwrap();
    assert_eq!(
        (again.status, again.id()),
        (200, stripe.refunds()[0].id.clone())
    );

    let id = charge(&stripe, "order-2", "tok_visa").await.unwrap().id();
    assert!(refund(&stripe, "refund-2", &id).await.is_err());
    assert_eq!(refund(&stripe, "refund-2", &id).await.unwrap().status, 200);
    assert_eq!(stripe.refunds().len(), 2);
}

#[tokio::test]
async fn an_unknown_charge_is_not_found() {
    let stripe = StripeDouble::start().await;
    let r = retrieve(&stripe, "ch_nobody").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "resource_missing");
}

#[tokio::test]
async fn requests_without_a_secret_key_are_unauthorized() {
    let stripe = StripeDouble::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/charges", stripe.url());
    let form = charge_form("tok_visa");

    let none = client.post(&url).form(&form).send().await.unwrap();
    let publishable = client
        .post(&url)
        .bearer_auth("pk_test_x")
        .form(&form)
        .send()
        .await
        .unwrap();
    for resp in [none, publishable] {
        assert_eq!(resp.status().as_u16(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    assert!(stripe.charges().is_empty());
    assert_eq!(stripe.requests("/v1/charges"), 2);
}
