//! One method per API call, typed bodies in and out, errors classified so callers can map
//! them to exit codes or screen messages without looking at status numbers.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tix_api::health::Health;
use tix_api::user::Empty;
use tix_api::{
    Credentials, CurrentUser, CurrentUserBody, Money, NewAccount, NewOrder, NewPayment, Order,
    Payment, Sales, SignedIn, Ticket, TicketDraft,
};

pub use crate::error::{ClientError, Kind, Network};
use crate::error::{api_error, unreachable};

/// Filters of `GET /api/tickets`.
#[derive(Debug, Clone, Default)]
pub struct TicketQuery {
    pub all: bool,
    pub mine: bool,
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// A client for one API base URL, optionally signed in.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

/// How long one request may take, connecting included, unless [`ApiClient::with_timeout`]
/// says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a connection may take to open: a gateway that exists answers in well under
/// that, so waiting longer only delays "cannot reach".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// An HTTP answer, whatever its status.
struct Answer {
    status: u16,
    /// `Retry-After` in seconds (only the delay form: the services never send a date).
    retry_after: Option<u64>,
    body: Vec<u8>,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> ApiClient {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            timeout: DEFAULT_TIMEOUT,
            http: http_client(DEFAULT_TIMEOUT),
        }
    }

    /// The same client with another limit on each request (the CLI's `--timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> ApiClient {
        self.timeout = timeout;
        self.http = http_client(timeout);
        self
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
        let answer = self.exchange(method, path, body, None).await?;
        decode(answer)
    }

    /// A request that creates something, sent with one `Idempotency-Key` and retried with
    /// the same key when its outcome is unknown (no answer, 502, 503) or when its body was
    /// too slow to arrive (408: nothing was done): the server makes it once and answers
    /// every retry with the first result.
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
            // A name that does not resolve or a failed handshake never reached the
            // server, and trying again will not change that.
            let unclear = match &answer {
                Err(e) => !matches!(e.network(), None | Some(Network::Dns | Network::Tls)),
                Ok(a) => matches!(a.status, 408 | 502 | 503),
            };
            if !unclear || attempt >= CREATE_ATTEMPTS {
                return decode(answer?);
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
    ) -> Result<Answer, ClientError> {
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
        let resp = req.send().await.map_err(|e| {
            unreachable(&self.base, self.timeout, connect_timeout(self.timeout), &e)
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                unreachable(&self.base, self.timeout, connect_timeout(self.timeout), &e)
            } else {
                ClientError::Decode(e.to_string())
            }
        })?;
        Ok(Answer {
            status,
            retry_after,
            body: body.to_vec(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(reqwest::Method::GET, path, None::<&Empty>).await
    }

    /// A new account; `display_name` `None` lets the server take the email's local part.
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<SignedIn, ClientError> {
        let body = NewAccount {
            email: email.to_string(),
            password: password.to_string(),
            display_name: display_name.map(str::to_string),
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
        self.get(&with_page("/api/tickets", params, q.limit, q.offset))
            .await
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

    /// One page of the caller's sales (newest first) and the totals over all of them.
    pub async fn sales(
        &self,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<Sales, ClientError> {
        self.get(&with_page("/api/orders/sales", Vec::new(), limit, offset))
            .await
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
        let a = self
            .exchange(reqwest::Method::GET, "/healthz", None::<&Empty>, None)
            .await?;
        match serde_json::from_slice(&a.body) {
            Ok(h) => Ok(h),
            Err(_) if !(200..300).contains(&a.status) => {
                Err(api_error(a.status, a.retry_after, &a.body))
            }
            Err(e) => Err(ClientError::Decode(e.to_string())),
        }
    }
}

/// Tries of a request that creates something, the first included.
const CREATE_ATTEMPTS: u32 = 4;

/// The limit on opening a connection, under a limit of `timeout` on the whole request.
fn connect_timeout(timeout: Duration) -> Duration {
    CONNECT_TIMEOUT.min(timeout)
}

fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout(timeout))
        .build()
        .expect("a client with these settings builds")
}

/// The body of a 2xx answer as `T`, any other answer as its error.
fn decode<T: DeserializeOwned>(a: Answer) -> Result<T, ClientError> {
    if (200..300).contains(&a.status) {
        // A 204 has no body; `()` and `Empty` read it as `null`.
        let bytes: &[u8] = if a.body.is_empty() { b"null" } else { &a.body };
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()));
    }
    Err(api_error(a.status, a.retry_after, &a.body))
}

/// `path?a=1&limit=…&offset=…`: the query parameters given, then the page's.
fn with_page(
    path: &str,
    mut params: Vec<String>,
    limit: Option<u32>,
    offset: Option<u32>,
) -> String {
    if let Some(l) = limit {
        params.push(format!("limit={l}"));
    }
    if let Some(o) = offset {
        params.push(format!("offset={o}"));
    }
    if params.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", params.join("&"))
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
    fn path_segments_are_encoded() {
        assert_eq!(encode("a b/../c?d"), "a%20b%2F..%2Fc%3Fd");
        assert_eq!(encode("0193-abc_~."), "0193-abc_~.");
    }
}
