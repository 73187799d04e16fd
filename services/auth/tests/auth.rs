//! The auth API through HTTP against a real `tix-auth` process.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tix_testkit::{Stack, TEST_JWT_SECRET, field, message};

struct Auth {
    _stack: Stack,
    url: String,
    http: reqwest::Client,
}

fn start() -> Auth {
    start_with(&[])
}

fn start_with(env: &[(&str, &str)]) -> Auth {
    let stack = Stack::start_with_env(&["auth"], env);
    Auth {
        url: stack.url("auth"),
        _stack: stack,
        http: reqwest::Client::new(),
    }
}

impl Auth {
    async fn post(
        &self,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    async fn current_user(&self, header: Option<(&str, String)>) -> Value {
        let mut req = self.http.get(format!("{}/api/users/currentuser", self.url));
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["currentUser"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_creates_a_user_and_signs_them_in() {
    let a = start();
    let (s, body, headers) = a
        .post(
            "/api/users/signup",
            json!({"email":"  Ann@Example.com ","password":"correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(body["email"], "ann@example.com", "normalised");
    assert!(body["id"].as_str().unwrap().len() >= 32);
    let token = body["token"].as_str().unwrap().to_string();
    let cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // Both ways of presenting the token work.
    let me = a
        .current_user(Some(("authorization", format!("Bearer {token}"))))
        .await;
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["id"], body["id"]);
    assert!(me["exp"].as_i64().unwrap() > me["iat"].as_i64().unwrap());
    let session = cookie.split(';').next().unwrap().to_string();
    let me = a.current_user(Some(("cookie", session))).await;
    assert_eq!(me["email"], "ann@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_rejects_bad_input_with_the_field_at_fault() {
    let a = start();
    let cases = [
        (
            json!({"email":"not-an-email","password":"long enough"}),
            "email",
            "Email must be valid",
        ),
        (
            json!({"email":"a@b.co","password":"short"}),
            "password",
            "between 8 and 128",
        ),
        (
            json!({"email":"a@b.co","password":"x".repeat(129)}),
            "password",
            "between 8 and 128",
        ),
        (
            json!({"email":5,"password":"long enough"}),
            "email",
            "Email must be valid",
        ),
        (json!({"email":"a@b.co"}), "password", "supplied"),
    ];
    for (body, f, m) in cases {
        let (s, v, _) = a.post("/api/users/signup", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(field(&v), f, "{body} → {v}");
        assert!(message(&v).contains(m), "{body} → {v}");
    }
    // Both fields wrong: both reported.
    let (_, v, _) = a.post("/api/users/signup", json!({})).await;
    assert_eq!(v["errors"].as_array().unwrap().len(), 2, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_can_be_used_once_whatever_its_case() {
    let a = start();
    let (s, ..) = a
        .post(
            "/api/users/signup",
            json!({"email":"bob@x.io","password":"password1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for email in ["bob@x.io", "BOB@X.IO"] {
        let (s, v, _) = a
            .post(
                "/api/users/signup",
                json!({"email":email,"password":"password2"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(
            (field(&v), message(&v)),
            ("email".into(), "Email in use".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_says_the_same_for_an_unknown_email_and_a_wrong_password() {
    let a = start();
    a.post(
        "/api/users/signup",
        json!({"email":"cy@x.io","password":"password1"}),
    )
    .await;
    let (s, v, h) = a
        .post(
            "/api/users/signin",
            json!({"email":"CY@x.io","password":"password1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["email"], "cy@x.io");
    assert!(h.get("set-cookie").is_some());
    let (s1, wrong, _) = a
        .post(
            "/api/users/signin",
            json!({"email":"cy@x.io","password":"password2"}),
        )
        .await;
    let (s2, unknown, _) = a
        .post(
            "/api/users/signin",
            json!({"email":"nobody@x.io","password":"password1"}),
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST));
    assert_eq!(wrong, unknown);
    assert_eq!(message(&wrong), "Invalid credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_nobody() {
    let a = start();
    let (_, v, _) = a
        .post(
            "/api/users/signup",
            json!({"email":"fay@x.io","password":"password1"}),
        )
        .await;
    let token = v["token"].as_str().unwrap();
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"id": v["id"], "email":"fay@x.io", "iat": now - 100, "exp": now - 10});
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg":"none","typ":"JWT"})),
        b64(json!({"id": v["id"], "email":"fay@x.io", "iat": now, "exp": now + 3600}))
    );
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(json!({"id":"someone-else","email":"x@x.io","iat":now,"exp":now + 3600}));
    parts[1] = &forged;
    let tampered = parts.join(".");
    for bad in [expired, alg_none, tampered, "garbage".to_string()] {
        let me = a
            .current_user(Some(("authorization", format!("Bearer {bad}"))))
            .await;
        assert_eq!(me, Value::Null, "{bad}");
    }
    assert_eq!(a.current_user(None).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_clears_the_session_cookie() {
    let a = start();
    let (s, v, h) = a.post("/api/users/signout", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({}));
    let cookie = h.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.starts_with("session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
}

/// The `Set-Cookie` of a sign-up asked for as `host`.
async fn cookie_for(a: &Auth, host: &str, email: &str) -> String {
    let r = a
        .http
        .post(format!("{}/api/users/signup", a.url))
        .header("host", host)
        .json(&json!({"email": email, "password": "password1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.headers()["set-cookie"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_outside_localhost() {
    let a = start();
    let local = cookie_for(&a, "localhost:8080", "l@x.io").await;
    assert!(!local.contains("Secure"), "{local}");
    let loopback = cookie_for(&a, "127.0.0.1:8080", "lb@x.io").await;
    assert!(!loopback.contains("Secure"), "{loopback}");
    let public = cookie_for(&a, "tix.example.com", "p@x.io").await;
    assert!(public.ends_with("; Secure"), "{public}");
    assert!(public.contains("HttpOnly") && public.contains("Max-Age=86400"));
    let always = start_with(&[("TIX_COOKIE_SECURE", "always")]);
    let forced = cookie_for(&always, "localhost", "f@x.io").await;
    assert!(forced.ends_with("; Secure"), "{forced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_untyped_bodies_get_a_clear_error() {
    let a = start();
    let url = format!("{}/api/users/signup", a.url);
    let send = |body: Vec<u8>, ct: Option<&'static str>| {
        let mut r = a.http.post(&url).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let r = send(b"{\"email\": ".to_vec(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(message(&r.json().await.unwrap()).contains("Malformed JSON"));
    let r = send(b"\"just a string\"".to_vec(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(message(&r.json().await.unwrap()).contains("Invalid request body"));
    let r = send(b"{}".to_vec(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(message(&r.json().await.unwrap()).contains("Content-Type"));
    let mut huge = b"{\"email\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200 * 1024));
    huge.extend(b"\"}");
    let r = send(huge, Some("application/json")).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message(&r.json().await.unwrap()).contains("too large"));
    let r = a
        .http
        .get(format!("{}/api/users/nope", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(message(&r.json().await.unwrap()), "Not found");
    // Nothing of the above created anyone: the email is still free.
    let (s, ..) = a
        .post(
            "/api/users/signup",
            json!({"email":"aaa@x.io","password":"password1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

/// A session ends `--session-max-age` after its sign-in, however often it is renewed: a
/// renewal before then gets a token (and cookie) that lives no longer than the session,
/// one after it is 401 and the user signs in again. Tried with 3 s (times are whole
/// seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_be_renewed_past_its_longest_life() {
    let a = start_with(&[("TIX_SESSION_MAX_AGE", "3s")]);
    let (s, body, headers) = a
        .post(
            "/api/users/signup",
            json!({"email":"max@example.com","password":"correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Max-Age=3;") || cookie.ends_with("Max-Age=3"),
        "{cookie}"
    );
    let first = body["token"].as_str().unwrap().to_string();
    let times = |token: &str| -> (i64, i64) {
        let claims = token.split('.').nth(1).unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap();
        let v: Value = serde_json::from_slice(&json).unwrap();
        (v["exp"].as_i64().unwrap(), v["auth_time"].as_i64().unwrap())
    };
    let (exp, began) = times(&first);
    assert_eq!(
        exp,
        began + 3,
        "the first token lives no longer than the session"
    );
    let renew = |token: String| {
        a.http
            .post(format!("{}/api/users/renew", a.url))
            .bearer_auth(token)
            .send()
    };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = renew(first.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let max_age: i64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!((1..=2).contains(&max_age), "{cookie}");
    let renewed = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        times(&renewed),
        (began + 3, began),
        "same session, same end"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let r = renew(renewed).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(message(&v), "Not authorized");
}
