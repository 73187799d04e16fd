//! One method per API call, typed bodies in and out, errors classified so callers can map
//! them to exit codes or screen messages without looking at status numbers.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tix_api::health::Health;
use tix_api::user::Empty;
use tix_api::{
    Credentials, CurrentUser, CurrentUserBody, ErrorBody, Money, NewOrder, NewPayment, Order,
    Payment, SignedIn, Ticket, TicketDraft,
};

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

    /// One request; the body of a 2xx answer as `T`, any other answer as its error body.
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.exchange(method, path, body, None).await?;
        decode(status, &bytes)
    }

    /// A request that creates something, sent with one `Idempotency-Key` and retried with
    /// the same key when its outcome is unknown (no answer, 502, 503): the server makes it
    /// once and answers every retry with the first result.
    async fn create<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        let key = uuid::Uuid::now_v7().to_string();
        let mut pause = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self
                .exchange(reqwest::Method::POST, path, Some(body), Some(&key))
                .await;
            let unclear = match &answer {
                Err(ClientError::Unreachable { .. }) => true,
                Ok((status, _)) => matches!(status, 502 | 503),
                Err(_) => false,
            };
            if !unclear || attempt >= CREATE_ATTEMPTS {
                let (status, bytes) = answer?;
                return decode(status, &bytes);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }

    /// Sends a request and reads the whole answer, whatever its status.
    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
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
        Ok((status, bytes.to_vec()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(reqwest::Method::GET, path, None::<&Empty>).await
    }

    pub async fn signup(&self, email: &str, password: &str) -> Result<SignedIn, ClientError> {
        let body = Credentials {
            email: email.to_string(),
            password: password.to_string(),
        };
        self.send(reqwest::Method::POST, "/api/users/signup", Some(&body))
            .await
    }

    pub async fn signin(&self, email: &str, password: &str) -> Result<SignedIn, ClientError> {
        let body = Credentials {
            email: email.to_string(),
            password: password.to_string(),
        };
        self.send(reqwest::Method::POST, "/api/users/signin", Some(&body))
            .await
    }

    pub async fn signout(&self) -> Result<(), ClientError> {
        let _: Empty = self
            .send(reqwest::Method::POST, "/api/users/signout", Some(&Empty {}))
            .await?;
        Ok(())
    }

    /// A fresh token for the signed-in session (the old one stays valid until it expires
    /// or the session is signed out).
    pub async fn renew(&self) -> Result<SignedIn, ClientError> {
        self.send(reqwest::Method::POST, "/api/users/renew", None::<&Empty>)
            .await
    }

    pub async fn current_user(&self) -> Result<Option<CurrentUser>, ClientError> {
        let body: CurrentUserBody = self.get("/api/users/currentuser").await?;
        Ok(body.current_user)
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
        self.get(&path).await
    }

    pub async fn ticket(&self, id: &str) -> Result<Ticket, ClientError> {
        self.get(&format!("/api/tickets/{}", encode(id))).await
    }

    pub async fn create_ticket(&self, title: &str, price: Money) -> Result<Ticket, ClientError> {
        let body = TicketDraft {
            title: title.to_string(),
            price,
        };
        self.send(reqwest::Method::POST, "/api/tickets", Some(&body))
            .await
    }

    pub async fn update_ticket(
        &self,
        id: &str,
        title: &str,
        price: Money,
    ) -> Result<Ticket, ClientError> {
        let body = TicketDraft {
            title: title.to_string(),
            price,
        };
        let path = format!("/api/tickets/{}", encode(id));
        self.send(reqwest::Method::PUT, &path, Some(&body)).await
    }

    pub async fn orders(&self) -> Result<Vec<Order>, ClientError> {
        self.get("/api/orders").await
    }

    pub async fn order(&self, id: &str) -> Result<Order, ClientError> {
        self.get(&format!("/api/orders/{}", encode(id))).await
    }

    pub async fn create_order(&self, ticket_id: &str) -> Result<Order, ClientError> {
        let body = NewOrder {
            ticket_id: ticket_id.to_string(),
        };
        self.create("/api/orders", &body).await
    }

    pub async fn cancel_order(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/api/orders/{}", encode(id));
        self.send(reqwest::Method::DELETE, &path, None::<&Empty>)
            .await
    }

    pub async fn pay(&self, order_id: &str, token: &str) -> Result<Payment, ClientError> {
        let body = NewPayment {
            order_id: order_id.to_string(),
            token: token.to_string(),
        };
        self.create("/api/payments", &body).await
    }

    /// The caller's payments (receipts), newest first.
    pub async fn payments(&self) -> Result<Vec<Payment>, ClientError> {
        self.get("/api/payments").await
    }

    /// One of the caller's payments (someone else's is `Forbidden`).
    pub async fn payment(&self, id: &str) -> Result<Payment, ClientError> {
        self.get(&format!("/api/payments/{}", encode(id))).await
    }

    /// The gateway's `/healthz`: every upstream's state. A 503 still carries the body, and
    /// is an answer, not an error.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let (status, bytes) = self
            .exchange(reqwest::Method::GET, "/healthz", None::<&Empty>, None)
            .await?;
        match serde_json::from_slice(&bytes) {
            Ok(h) => Ok(h),
            Err(_) if !(200..300).contains(&status) => Err(api_error(status, &bytes)),
            Err(e) => Err(ClientError::Decode(e.to_string())),
        }
    }
}

/// Tries of a request that creates something, the first included.
const CREATE_ATTEMPTS: u32 = 4;

/// The body of a 2xx answer as `T`, any other answer as its error.
fn decode<T: DeserializeOwned>(status: u16, bytes: &[u8]) -> Result<T, ClientError> {
    if (200..300).contains(&status) {
        // A 204 has no body; `()` and `Empty` read it as `null`.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()));
    }
    Err(api_error(status, bytes))
}

/// The error of a non-2xx answer, from its error body when it has one.
fn api_error(status: u16, bytes: &[u8]) -> ClientError {
    let first = serde_json::from_slice::<ErrorBody>(bytes)
        .ok()
        .and_then(|b| b.errors.into_iter().next());
    ClientError::Api {
        status,
        message: first
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| format!("the server answered {status}")),
        field: first.and_then(|e| e.field),
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
