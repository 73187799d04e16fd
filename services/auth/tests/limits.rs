//! Abuse resistance at auth's edge, against a real `tix-auth` process. Clients come from
//! different loopback addresses (127.0.0.x), as different machines would.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tix_testkit::{Stack, message};

/// A client whose requests come from `from`.
fn client(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

struct Auth {
    _stack: Stack,
    url: String,
}

fn start_with(env: &[(&str, &str)]) -> Auth {
    let stack = Stack::start_with_env(&["auth"], env);
    Auth {
        url: stack.url("auth"),
        _stack: stack,
    }
}

/// What one sign-up or sign-in answered: status, `Retry-After` (seconds), body.
type Answer = (StatusCode, Option<u64>, Value);

impl Auth {
    async fn post(&self, http: &reqwest::Client, path: &str, body: Value) -> Answer {
        self.post_with(http, path, body, None).await
    }

    async fn post_with(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: Value,
        forwarded_for: Option<&str>,
    ) -> Answer {
        let mut r = http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(f) = forwarded_for {
            r = r.header("x-forwarded-for", f);
        }
        let r = r.send().await.unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (r.status(), retry, r.json().await.unwrap_or(Value::Null))
    }
}

fn creds(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_flood_from_one_address_gets_429s_and_others_still_sign_in() {
    let a = start_with(&[("TIX_SIGNUP_PER_ADDRESS", "3/1")]);
    let (user, flooder) = (client("127.0.0.3"), client("127.0.0.2"));
    let (s, ..) = a
        .post(&user, "/api/users/signup", creds("ann@x.io", "password-1"))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let flood = (0..40).map(|i| {
        let (a, c) = (&a, &flooder);
        async move {
            a.post(
                c,
                "/api/users/signup",
                creds(&format!("bot{i}@x.io"), "password-1"),
            )
            .await
        }
    });
    let answers = futures::future::join_all(flood).await;
    let created = answers
        .iter()
        .filter(|(s, ..)| *s == StatusCode::CREATED)
        .count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|(s, ..)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(created <= 3, "at most the burst gets through: {created}");
    assert_eq!(created + limited.len(), 40, "every other sign-up is a 429");
    let (_, retry, body) = limited[0];
    assert!(retry.is_some_and(|s| s >= 1), "429 says when to retry");
    assert!(message(body).contains("Too many requests"), "{body}");
    // Someone else, meanwhile, signs in as usual.
    let (s, ..) = a
        .post(&user, "/api/users/signin", creds("ann@x.io", "password-1"))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_changes_nothing() {
    // Only 127.0.0.1 (where a gateway would be) is a trusted proxy.
    let a = start_with(&[
        ("TIX_SIGNUP_PER_ADDRESS", "2/1"),
        ("TIX_TRUSTED_PROXIES", "127.0.0.1"),
    ]);
    let outsider = client("127.0.0.4");
    let mut statuses = Vec::new();
    for i in 0..4 {
        let forged = format!("10.0.0.{i}");
        let (s, ..) = a
            .post_with(
                &outsider,
                "/api/users/signup",
                creds(&format!("rot{i}@x.io"), "password-1"),
                Some(&forged),
            )
            .await;
        statuses.push(s);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "rotating X-Forwarded-For is ignored from an untrusted peer"
    );
    // From the trusted proxy, each forwarded client has its own quota.
    let gateway = client("127.0.0.1");
    for i in 0..3 {
        let (s, ..) = a
            .post_with(
                &gateway,
                "/api/users/signup",
                creds(&format!("via{i}@x.io"), "password-1"),
                Some(&format!("10.1.0.{i}")),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::CREATED,
            "client 10.1.0.{i} behind the gateway"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_signins_slow_the_account_down_without_locking_its_owner_out() {
    let a = start_with(&[
        ("TIX_SIGNIN_FREE_FAILURES", "3"),
        ("TIX_SIGNIN_MAX_DELAY", "2s"),
    ]);
    let owner = client("127.0.0.5");
    let (s, ..) = a
        .post(&owner, "/api/users/signup", creds("dee@x.io", "password-1"))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // An attacker rotating addresses guesses at the account.
    let mut answers = Vec::new();
    for i in 0..6 {
        let attacker = client(&format!("127.0.1.{i}"));
        answers.push(
            a.post(
                &attacker,
                "/api/users/signin",
                creds("dee@x.io", &format!("guess-{i}")),
            )
            .await,
        );
    }
    let statuses: Vec<_> = answers.iter().map(|(s, ..)| *s).collect();
    assert_eq!(
        &statuses[..3],
        &[StatusCode::BAD_REQUEST; 3],
        "free failures"
    );
    assert!(
        statuses[3..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "after the free failures the account is slowed: {statuses:?}"
    );
    let (_, retry, body) = answers
        .iter()
        .find(|(s, ..)| *s == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert!(retry.is_some_and(|s| (1..=2).contains(&s)), "{retry:?}");
    assert_eq!(message(body), "Too many failed sign-ins for this account");
    // Another account is not affected.
    let (s, ..) = a
        .post(&owner, "/api/users/signin", creds("eve@x.io", "password-1"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The owner waits at most the maximum delay, then signs in.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, _, body) = a
        .post(&owner, "/api/users/signin", creds("dee@x.io", "password-1"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_beyond_the_queue_is_a_fast_503() {
    // No waiting room at all: whatever finds every core busy is turned away.
    let a = start_with(&[
        ("TIX_HASH_QUEUE", "0"),
        ("TIX_SIGNUP_PER_ADDRESS", "100/100"),
    ]);
    let c = client("127.0.0.6");
    let burst = (0..40).map(|i| {
        let (a, c) = (&a, &c);
        async move {
            a.post(
                c,
                "/api/users/signup",
                creds(&format!("q{i}@x.io"), "password-1"),
            )
            .await
        }
    });
    let answers = futures::future::join_all(burst).await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(s, ..)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "some sign-ups found every core busy");
    assert!(busy.iter().all(|(_, retry, _)| *retry == Some(1)));
    assert!(message(&busy[0].2).contains("busy"), "{}", busy[0].2);
    assert!(
        answers
            .iter()
            .all(|(s, ..)| *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "nothing else goes wrong"
    );
}
