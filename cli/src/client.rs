//! One method per API call, typed bodies in and out, errors classified so callers can map
//! them to exit codes or screen messages without looking at status numbers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A ticket as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: String,
    pub title: String,
    pub price: f64,
    pub user_id: String,
    pub version: i64,
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderTicket {
    pub id: String,
    pub title: String,
    pub price: f64,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub status: String,
    /// RFC 3339.
    pub expires_at: String,
    pub version: i64,
    pub ticket: OrderTicket,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: String,
    pub order_id: String,
    pub status: String,
}

/// The answer to signup and signin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    pub id: String,
    pub email: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: String,
    pub email: String,
    pub iat: i64,
    pub exp: i64,
}

/// Filters of `GET /api/tickets`.
#[derive(Debug, Clone, Default)]
pub struct TicketQuery {
    pub all: bool,
    pub mine: bool,
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// What went wrong, by kind.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the URL (refused, timed out, DNS).
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error body.
    #[error("{message}")]
    Api {
        status: u16,
        message: String,
        field: Option<String>,
    },
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

/// The kind of an error, for exit codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotSignedIn,
    Forbidden,
    NotFound,
    /// Validation or a business rule (reserved, already paid, …).
    Rejected,
    Declined,
    Unavailable,
}

impl ClientError {
    pub fn kind(&self) -> Kind {
        match self {
            ClientError::Unreachable { .. } | ClientError::Decode(_) => Kind::Unavailable,
            ClientError::Api { status, .. } => match status {
                401 => Kind::NotSignedIn,
                403 => Kind::Forbidden,
                404 => Kind::NotFound,
                402 => Kind::Declined,
                s if *s >= 500 => Kind::Unavailable,
                _ => Kind::Rejected,
            },
        }
    }
}

/// A client for one API base URL, optionally signed in.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> ApiClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("a client with these settings builds");
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: if e.is_connect() {
                "connection refused".into()
            } else if e.is_timeout() {
                "timed out".into()
            } else {
                e.to_string()
            },
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let first = &value["errors"][0];
        Err(ClientError::Api {
            status,
            message: first["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("the server answered {status}")),
            field: first["field"].as_str().map(str::to_string),
        })
    }

    fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ClientError> {
        serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn signup(&self, email: &str, password: &str) -> Result<SignedIn, ClientError> {
        let v = self
            .send(
                reqwest::Method::POST,
                "/api/users/signup",
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        Self::decode(v)
    }

    pub async fn signin(&self, email: &str, password: &str) -> Result<SignedIn, ClientError> {
        let v = self
            .send(
                reqwest::Method::POST,
                "/api/users/signin",
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        Self::decode(v)
    }

    pub async fn signout(&self) -> Result<(), ClientError> {
        self.send(reqwest::Method::POST, "/api/users/signout", Some(json!({})))
            .await?;
        Ok(())
    }

    pub async fn current_user(&self) -> Result<Option<CurrentUser>, ClientError> {
        let v = self
            .send(reqwest::Method::GET, "/api/users/currentuser", None)
            .await?;
        Self::decode(v["currentUser"].clone())
    }

    pub async fn tickets(&self, q: &TicketQuery) -> Result<Vec<Ticket>, ClientError> {
        let mut params = Vec::new();
        if q.all {
            params.push("all=true".to_string());
        }
        if q.mine {
            params.push("mine=true".to_string());
        }
        if let Some(s) = &q.search {
            params.push(format!("q={}", encode(s)));
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        if let Some(o) = q.offset {
            params.push(format!("offset={o}"));
        }
        let path = if params.is_empty() {
            "/api/tickets".to_string()
        } else {
            format!("/api/tickets?{}", params.join("&"))
        };
        Self::decode(self.send(reqwest::Method::GET, &path, None).await?)
    }

    pub async fn ticket(&self, id: &str) -> Result<Ticket, ClientError> {
        Self::decode(
            self.send(
                reqwest::Method::GET,
                &format!("/api/tickets/{}", encode(id)),
                None,
            )
            .await?,
        )
    }

    pub async fn create_ticket(&self, title: &str, price: f64) -> Result<Ticket, ClientError> {
        let v = self
            .send(
                reqwest::Method::POST,
                "/api/tickets",
                Some(json!({"title": title, "price": price})),
            )
            .await?;
        Self::decode(v)
    }

    pub async fn update_ticket(
        &self,
        id: &str,
        title: &str,
        price: f64,
    ) -> Result<Ticket, ClientError> {
        let v = self
            .send(
                reqwest::Method::PUT,
                &format!("/api/tickets/{}", encode(id)),
                Some(json!({"title": title, "price": price})),
            )
            .await?;
        Self::decode(v)
    }

    pub async fn orders(&self) -> Result<Vec<Order>, ClientError> {
        Self::decode(self.send(reqwest::Method::GET, "/api/orders", None).await?)
    }

    pub async fn order(&self, id: &str) -> Result<Order, ClientError> {
        Self::decode(
            self.send(
                reqwest::Method::GET,
                &format!("/api/orders/{}", encode(id)),
                None,
            )
            .await?,
        )
    }

    pub async fn create_order(&self, ticket_id: &str) -> Result<Order, ClientError> {
        let v = self
            .send(
                reqwest::Method::POST,
                "/api/orders",
                Some(json!({"ticketId": ticket_id})),
            )
            .await?;
        Self::decode(v)
    }

    pub async fn cancel_order(&self, id: &str) -> Result<(), ClientError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("/api/orders/{}", encode(id)),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn pay(&self, order_id: &str, token: &str) -> Result<Payment, ClientError> {
        let v = self
            .send(
                reqwest::Method::POST,
                "/api/payments",
                Some(json!({"orderId": order_id, "token": token})),
            )
            .await?;
        Self::decode(v)
    }

    /// The gateway's `/healthz`: every upstream's state (a 503 still has the body).
    pub async fn health(&self) -> Result<Value, ClientError> {
        match self.send(reqwest::Method::GET, "/healthz", None).await {
            Ok(v) => Ok(v),
            Err(ClientError::Api { status: 503, .. }) => {
                let resp = self
                    .http
                    .get(format!("{}/healthz", self.base))
                    .send()
                    .await
                    .map_err(|e| ClientError::Decode(e.to_string()))?;
                resp.json()
                    .await
                    .map_err(|e| ClientError::Decode(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_kind() {
        let api = |status| ClientError::Api {
            status,
            message: String::new(),
            field: None,
        };
        assert_eq!(api(401).kind(), Kind::NotSignedIn);
        assert_eq!(api(403).kind(), Kind::Forbidden);
        assert_eq!(api(404).kind(), Kind::NotFound);
        assert_eq!(api(400).kind(), Kind::Rejected);
        assert_eq!(api(402).kind(), Kind::Declined);
        assert_eq!(api(502).kind(), Kind::Unavailable);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("a b/../c?d"), "a%20b%2F..%2Fc%3Fd");
        assert_eq!(encode("0193-abc_~."), "0193-abc_~.");
    }
}
