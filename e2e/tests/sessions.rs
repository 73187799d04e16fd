//! Sessions across the stack: signing out revokes the token everywhere it is checked
//! (auth, tickets, orders, payments), renewal keeps the session, and a restart keeps the
//! revocation.

use std::time::Duration;

use serde_json::{Value, json};
use tix_testkit::{ALL, Api, Stack, User, eventually};

/// The statuses every token-checking service gives a token: create a ticket, list
/// orders, pay for an unknown order (401 before any lookup when the token is refused).
async fn answers(api: &Api, who: &User) -> (u16, u16, u16, Value) {
    let (t, _) = api
        .call(
            "POST",
            "/api/tickets",
            Some(who),
            Some(json!({"title": "Probe", "price": 5})),
        )
        .await;
    let (o, _) = api.call("GET", "/api/orders", Some(who), None).await;
    let (p, _) = api
        .call(
            "POST",
            "/api/payments",
            Some(who),
            Some(json!({"orderId": "nope", "token": "tok_visa"})),
        )
        .await;
    let (_, me) = api
        .call("GET", "/api/users/currentuser", Some(who), None)
        .await;
    (t, o, p, me["currentUser"].clone())
}

fn as_user(v: &Value) -> User {
    User {
        id: v["id"].as_str().unwrap().to_string(),
        email: v["email"].as_str().unwrap().to_string(),
        token: v["token"].as_str().unwrap().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_revokes_the_session_in_every_service_even_after_a_restart() {
    let mut stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let creds = json!({"email": "sam@x.io", "password": "password-1"});
    let (s, v) = api
        .call("POST", "/api/users/signup", None, Some(creds.clone()))
        .await;
    assert_eq!(s, 201, "{v}");
    let first = as_user(&v);
    let (t, o, p, me) = answers(&api, &first).await;
    assert_eq!((t, o, p), (201, 200, 404), "a fresh token works everywhere");
    assert_eq!(me["id"], first.id.as_str());

    // Renewal: a new token for the same session.
    let (s, v) = api
        .call("POST", "/api/users/renew", Some(&first), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let renewed = as_user(&v);
    assert_ne!(renewed.token, first.token);
    assert_eq!(answers(&api, &renewed).await.0, 201);

    // A second session of the same user (another device) is not affected by signing out
    // the first.
    let (s, v) = api
        .call("POST", "/api/users/signin", None, Some(creds.clone()))
        .await;
    assert_eq!(s, 200, "{v}");
    let other_device = as_user(&v);

    let (s, _) = api
        .call("POST", "/api/users/signout", Some(&first), None)
        .await;
    assert_eq!(s, 200);
    for token in [&first, &renewed] {
        eventually(
            "every service refuses the signed-out session",
            Duration::from_secs(15),
            || async { answers(&api, token).await == (401, 401, 401, Value::Null) },
        )
        .await;
    }
    let (s, _) = api
        .call("POST", "/api/users/renew", Some(&renewed), None)
        .await;
    assert_eq!(s, 401, "a signed-out session cannot be renewed");
    assert_eq!(
        answers(&api, &other_device).await.0,
        201,
        "the other session"
    );

    // The services remember it across a restart.
    for name in ["tickets", "orders", "payments", "auth"] {
        stack.restart(name);
    }
    let api = Api::new(&stack);
    assert_eq!(
        answers(&api, &renewed).await,
        (401, 401, 401, Value::Null),
        "still refused after a restart"
    );
    assert_eq!(answers(&api, &other_device).await.0, 201);
}
