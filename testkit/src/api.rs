//! Signed-in users and a client of the HTTP API that reports every answer, failures
//! included, as `(status, JSON)`.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;
use tix_api::CurrentUser;

use crate::stack::{Stack, TEST_JWT_SECRET};

/// A signed-in user: a token minted with the test stacks' secret, as auth would mint it.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

impl User {
    /// `id`, signed in as `<id>@example.com` for an hour.
    pub fn new(id: &str) -> User {
        let email = format!("{id}@example.com");
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        // The services read a display name from `name` and fall back to the email's
        // local part (the id here); `displayName` is not a claim they read.
        let claims = CurrentUser {
            display_name: id.to_string(),
            email: email.clone(),
            exp: iat + 3600,
            iat,
            id: id.to_string(),
        };
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
        )
        .expect("an HS256 token always encodes");
        User {
            id: id.to_string(),
            email,
            token,
        }
    }
}

/// Talks to one base URL: the gateway, or a single service.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    /// The stack's gateway.
    pub fn new(stack: &Stack) -> Api {
        Api::at(&stack.url("gateway"))
    }

    /// Any base URL, e.g. one service of a stack without a gateway.
    pub fn at(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("a client with these settings builds"),
        }
    }

    /// One call. The body is `null` when it is not JSON; a transport error (nothing
    /// listening, a dropped connection) comes back as status 0.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&User>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, user, body, &[]).await
    }

    /// [`Api::call`] with extra headers, e.g. `Idempotency-Key`.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        user: Option<&User>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut r = self.http.request(
            method.parse().expect("an HTTP method"),
            format!("{}{path}", self.base),
        );
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(u) = user {
            r = r.bearer_auth(&u.token);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        match r.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Puts a ticket on sale; its id. Fails the test unless the answer is 201.
    pub async fn create_ticket(&self, seller: &User, title: &str, price: f64) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/api/tickets",
                Some(seller),
                Some(serde_json::json!({"title": title, "price": price})),
            )
            .await;
        assert_eq!(s, 201, "creating a ticket: {v}");
        v["id"].as_str().expect("a ticket id").to_string()
    }

    pub async fn ticket(&self, id: &str) -> Value {
        self.call("GET", &format!("/api/tickets/{id}"), None, None)
            .await
            .1
    }

    pub async fn order(&self, buyer: &User, id: &str) -> Value {
        self.call("GET", &format!("/api/orders/{id}"), Some(buyer), None)
            .await
            .1
    }

    pub async fn reserve(&self, buyer: &User, ticket: &str) -> (u16, Value) {
        let body = serde_json::json!({"ticketId": ticket});
        self.call("POST", "/api/orders", Some(buyer), Some(body))
            .await
    }

    /// Reserves `ticket` as soon as orders knows it (a ticket just put on sale takes a
    /// moment to reach orders' replica: 404 until then); the order's id. Any other answer,
    /// or none within 10 s, fails the test.
    pub async fn reserve_when_known(&self, buyer: &User, ticket: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (s, order) = self.reserve(buyer, ticket).await;
            if s == 201 {
                return order["id"].as_str().expect("an order id").to_string();
            }
            assert!(
                s == 404 && std::time::Instant::now() < deadline,
                "reserving {ticket}: {s} {order}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A payment's receipt as its buyer reads it.
    pub async fn payment(&self, buyer: &User, id: &str) -> tix_api::Payment {
        let (s, v) = self
            .call("GET", &format!("/api/payments/{id}"), Some(buyer), None)
            .await;
        assert_eq!(s, 200, "reading payment {id}: {v}");
        serde_json::from_value(v).expect("a receipt")
    }

    pub async fn pay(&self, buyer: &User, order: &str, token: &str) -> (u16, Value) {
        let body = serde_json::json!({"orderId": order, "token": token});
        self.call("POST", "/api/payments", Some(buyer), Some(body))
            .await
    }
}

/// The first error message of an error body (empty if there is none).
pub fn message(v: &Value) -> String {
    v["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The field the first error of an error body names (empty if none).
pub fn field(v: &Value) -> String {
    v["errors"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
