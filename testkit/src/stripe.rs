//! A stand-in for Stripe's Charges and Refunds API, so the payments service's real Stripe
//! client can be tested over HTTP — including the failures that leave a charge's outcome
//! unknown, which Stripe's own test mode cannot produce on demand.
//!
//! [`StripeDouble::start`] serves on `127.0.0.1:0` inside the test's runtime; point
//! `TIX_STRIPE_BASE_URL` at [`StripeDouble::url`]. It answers:
//!
//! - `POST /v1/charges` (`amount`, `currency`, `source`, optional `description` and
//!   `metadata[…]`): `tok_visa` / `4242 4242 4242 4242` succeed, `tok_chargeDeclined` /
//!   `4000 0000 0000 0002` are declined with a 402, any other source is a 400.
//! - `POST /v1/refunds` (`charge`, optional `amount`, defaulting to what is left).
//! - `GET /v1/charges/{id}`: the charge as it is now (`refunded`, `amount_refunded`).
//!
//! Every request needs `Authorization: Bearer sk_…` (401 otherwise). Errors have Stripe's
//! shape, `{"error":{"type":…,"code":…,"message":…,"param":…}}`.
//!
//! # Idempotency, as Stripe does it
//!
//! The answer to a request with an `Idempotency-Key` is stored with its parameters, per
//! path. A later request with that key and the same parameters (in any order) gets the
//! stored status and body byte for byte, with `Idempotent-Replayed: true`, and moves no
//! money; with other parameters it gets a 400 `idempotency_error`. Declines and other
//! refusals made once the endpoint ran (unknown token or charge, already refunded) are
//! stored like successes; requests refused for the shape of their parameters (missing,
//! not an integer, unknown) are not, so the key can be used again.
//!
//! # Faults
//!
//! [`StripeDouble::fail_next_charge`] and [`StripeDouble::fail_next_refund`] queue a
//! [`Fault`] for the next new request of that path — one that is authenticated and is not
//! answered from the idempotency store — whatever its outcome would be. Replays never
//! consume a fault, so a client's retry with the same key sees what really happened.
//!
//! # Where it differs from Stripe
//!
//! - No 409 "another in-progress request": each request is decided and stored atomically
//!   before any fault delays its answer, so a concurrent request with the same key always
//!   finds the stored answer. That is what a replay during [`Fault::SlowAfterCharging`]
//!   must see, and the real window in which Stripe answers 409 is too short for tests to
//!   aim at.
//! - Raw card numbers are accepted as `source` (Stripe wants tokens), as tix's sandbox
//!   accepts them; currencies are any three letters, and there is no minimum amount.
//! - Declines create no failed charge object; [`StripeDouble::charges`] lists only charges
//!   that took money.
//! - Parameters it does not know are refused ("Received unknown parameter"), as Stripe
//!   does, so a client sending something the double would misrepresent fails loudly.
//! - Keys never expire, and a key used on one path is free on another.
//! - One handle's server stops when its last clone is dropped.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tower::ServiceExt;

const CHARGES: &str = "/v1/charges";
const REFUNDS: &str = "/v1/refunds";

/// A running Stripe double. Clones share the server and its ledger.
#[derive(Debug, Clone)]
pub struct StripeDouble {
    addr: SocketAddr,
    ledger: Shared,
    _server: Arc<AbortOnDrop>,
}

/// A charge that took money, as the double holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRecord {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// As the client sent it (a token or a card number).
    pub source: String,
    /// Empty when the request had no `Idempotency-Key`.
    pub idempotency_key: String,
    /// Fully refunded.
    pub refunded: bool,
}

/// A refund that gave money back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: String,
    pub charge: String,
    pub amount: i64,
    /// Empty when the request had no `Idempotency-Key`.
    pub idempotency_key: String,
}

/// What goes wrong with the next new request of a path. The `…AfterCharging` faults
/// happen once the request's outcome is decided and stored (for a refund: once it is
/// refunded), which is the case a client cannot tell from "nothing happened".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Charge (or refund) and store the result, then answer only after this long — longer
    /// than the client's timeout, so the client gives up though the money moved. A replay
    /// meanwhile gets the stored answer.
    SlowAfterCharging(Duration),
    /// Charge and store the result, then answer 500 `{"error":{"type":"api_error",…}}`: a
    /// 5xx after the money moved, as from a proxy failing in front of Stripe. A replay with
    /// the same key gets the stored success, not the 500.
    ServerErrorAfterCharging,
    /// Charge and store the result, then close the connection without any answer.
    ResetAfterCharging,
    /// Close the connection before doing anything: nothing charged, nothing stored, so a
    /// retry with the same key charges.
    ResetBeforeCharging,
}

impl StripeDouble {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> StripeDouble {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Stripe double to 127.0.0.1:0");
        let addr = listener.local_addr().expect("the Stripe double's address");
        let ledger = Shared::default();
        let server = tokio::spawn(serve(listener, router(ledger.clone())));
        StripeDouble {
            addr,
            ledger,
            _server: Arc::new(AbortOnDrop(server.abort_handle())),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `f` for the next new charge request; several are used in order.
    pub fn fail_next_charge(&self, f: Fault) {
        self.ledger
            .lock()
            .faults
            .entry(CHARGES)
            .or_default()
            .push_back(f);
    }

    /// Queues `f` for the next new refund request; several are used in order.
    pub fn fail_next_refund(&self, f: Fault) {
        self.ledger
            .lock()
            .faults
            .entry(REFUNDS)
            .or_default()
            .push_back(f);
    }

    /// Every charge that took money, oldest first, with its current `refunded`.
    pub fn charges(&self) -> Vec<ChargeRecord> {
        let ledger = self.ledger.lock();
        ledger.charges.iter().map(|c| c.record.clone()).collect()
    }

    /// Every refund that gave money back, oldest first.
    pub fn refunds(&self) -> Vec<RefundRecord> {
        self.ledger.lock().refunds.clone()
    }

    /// How many POSTs reached `path` (e.g. `/v1/charges`): replays, refusals and requests
    /// whose connection was dropped included, so a test can count a client's retries.
    pub fn requests(&self, path: &str) -> usize {
        let ledger = self.ledger.lock();
        ledger.requests.get(path).copied().unwrap_or(0)
    }
}

/// Stops the accept loop when the last handle goes, so a test's port does not outlive it.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Ledger>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // A test that panicked while holding the lock already failed; later readers may
        // as well see the ledger.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct Ledger {
    charges: Vec<Charge>,
    refunds: Vec<RefundRecord>,
    /// Keyed by (path, idempotency key): keys are scoped per endpoint.
    answers: HashMap<(&'static str, String), Stored>,
    faults: HashMap<&'static str, VecDeque<Fault>>,
    requests: HashMap<String, usize>,
}

#[derive(Debug)]
struct Charge {
    record: ChargeRecord,
    amount_refunded: i64,
    description: Option<String>,
    metadata: Map<String, Value>,
}

impl Charge {
    fn to_json(&self) -> Value {
        let r = &self.record;
        json!({
            "id": r.id,
            "object": "charge",
            "amount": r.amount,
            "amount_refunded": self.amount_refunded,
            "captured": true,
            "currency": r.currency,
            "description": self.description,
            "metadata": self.metadata,
            "paid": true,
            "refunded": r.refunded,
            "status": "succeeded",
        })
    }
}

/// A request's parameters, sorted so that two forms compare equal whatever their order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params(Vec<(String, String)>);

#[derive(Debug)]
struct Stored {
    params: Params,
    answer: Answer,
}

/// A status and the exact bytes of its body, so a replay repeats it byte for byte.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Bytes,
}

/// `Ok`: the endpoint ran, and its answer — success, decline or refusal — is what a replay
/// must repeat. `Err`: the parameters were refused before it ran; nothing is stored.
type Outcome = Result<Answer, Answer>;

fn router(ledger: Shared) -> Router {
    Router::new()
        .route(CHARGES, post(create_charge))
        .route("/v1/charges/{id}", get(retrieve_charge))
        .route(REFUNDS, post(create_refund))
        .fallback(unknown_url)
        .layer(middleware::from_fn_with_state(
            ledger.clone(),
            count_and_authenticate,
        ))
        .with_state(ledger)
}

/// Serves each connection with hyper directly rather than `axum::serve`, because only
/// here can a handler's [`Hangup`] become a connection closed without an answer.
async fn serve(listener: TcpListener, app: Router) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or similar: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let app = app.clone();
                async move {
                    let response = app
                        .oneshot(req)
                        .await
                        .unwrap_or_else(|never| match never {});
                    // hyper closes the connection, writing nothing, when the service fails.
                    match response.extensions().get::<Hangup>() {
                        Some(_) => Err(Hangup),
                        None => Ok(response),
                    }
                }
            });
            // It ends in an error when we hang up or the client goes away; neither is the
            // test's business.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
struct Hangup;

impl fmt::Display for Hangup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Stripe double hung up on purpose")
    }
}

impl std::error::Error for Hangup {}

fn hangup() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(Hangup);
    response
}

/// Counts before checking the key, so refused requests are counted too.
async fn count_and_authenticate(
    State(ledger): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::POST {
        *ledger
            .lock()
            .requests
            .entry(req.uri().path().to_owned())
            .or_default() += 1;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let message = match bearer {
        Some(key) if key.starts_with("sk_") && key.len() > "sk_".len() => {
            return next.run(req).await;
        }
        Some(key) => format!("Invalid API Key provided: {key}"),
        None => "You did not provide an API key. You need to provide your API key in the \
                 Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                 YOUR_SECRET_KEY')."
            .to_owned(),
    };
    let answer = error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        None,
        None,
        &message,
    );
    answer.into_response(false)
}

async fn create_charge(State(ledger): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    create(&ledger, CHARGES, &headers, &body, charge).await
}

async fn create_refund(State(ledger): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    create(&ledger, REFUNDS, &headers, &body, refund).await
}

async fn retrieve_charge(State(ledger): State<Shared>, Path(id): Path<String>) -> Response {
    let ledger = ledger.lock();
    let answer = match ledger.charges.iter().find(|c| c.record.id == id) {
        Some(c) => Answer::json(StatusCode::OK, &c.to_json()),
        None => no_such_charge(StatusCode::NOT_FOUND, "id", &id),
    };
    answer.into_response(false)
}

async fn unknown_url(method: Method, uri: axum::http::Uri) -> Response {
    let message = format!("Unrecognized request URL ({method}: {}).", uri.path());
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        None,
        &message,
    )
    .into_response(false)
}

/// The steps every POST shares: replay or refuse a known key, else take the next fault,
/// apply the request and store its outcome under the key — all under one lock, so the
/// outcome is stored before a fault delays or drops the answer.
async fn create(
    ledger: &Shared,
    path: &'static str,
    headers: &HeaderMap,
    body: &[u8],
    apply: fn(&mut Ledger, &Params, &str) -> Outcome,
) -> Response {
    let Ok(mut params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        let message = "Invalid request: the body is not form-encoded.";
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            None,
            message,
        )
        .into_response(false);
    };
    params.sort();
    let params = Params(params);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned);

    let (answer, fault) = {
        let mut ledger = ledger.lock();
        if let Some(key) = &key
            && let Some(stored) = ledger.answers.get(&(path, key.clone()))
        {
            if stored.params == params {
                return stored.answer.clone().into_response(true);
            }
            let message = format!(
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with. Try using a key other than '{key}' if you meant to \
                 execute a different request."
            );
            return error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                None,
                None,
                &message,
            )
            .into_response(false);
        }
        let fault = ledger.faults.get_mut(path).and_then(VecDeque::pop_front);
        if fault == Some(Fault::ResetBeforeCharging) {
            return hangup();
        }
        let answer = match apply(&mut ledger, &params, key.as_deref().unwrap_or("")) {
            Ok(answer) => {
                if let Some(key) = key {
                    let stored = Stored {
                        params,
                        answer: answer.clone(),
                    };
                    ledger.answers.insert((path, key), stored);
                }
                answer
            }
            Err(refused) => refused,
        };
        (answer, fault)
    };

    match fault {
        None | Some(Fault::ResetBeforeCharging) => answer.into_response(false),
        Some(Fault::SlowAfterCharging(delay)) => {
            tokio::time::sleep(delay).await;
            answer.into_response(false)
        }
        Some(Fault::ServerErrorAfterCharging) => {
            let message = "An unknown error occurred (injected by the Stripe double).";
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                None,
                None,
                message,
            )
            .into_response(false)
        }
        Some(Fault::ResetAfterCharging) => hangup(),
    }
}

fn charge(ledger: &mut Ledger, params: &Params, key: &str) -> Outcome {
    params.only(&[
        "amount",
        "currency",
        "source",
        "description",
        "metadata[",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
    ])?;
    let amount = params.amount()?.ok_or_else(|| missing("amount"))?;
    let currency = params.currency()?;
    let source = params.required("source")?;

    // People type card numbers grouped; Stripe's test cards should not care.
    let card: String = source
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    match card.as_str() {
        "tok_visa" | "4242424242424242" => {}
        "tok_chargeDeclined" | "4000000000000002" => {
            return Ok(error(
                StatusCode::PAYMENT_REQUIRED,
                "card_error",
                Some("card_declined"),
                None,
                "Your card was declined.",
            ));
        }
        _ => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                Some("source"),
                &format!("No such token: '{source}'"),
            ));
        }
    }

    let charge = Charge {
        record: ChargeRecord {
            id: new_id("ch"),
            amount,
            currency,
            source: source.to_owned(),
            idempotency_key: key.to_owned(),
            refunded: false,
        },
        amount_refunded: 0,
        description: params.get("description").map(str::to_owned),
        metadata: params.metadata(),
    };
    let answer = Answer::json(StatusCode::OK, &charge.to_json());
    ledger.charges.push(charge);
    Ok(answer)
}

fn refund(ledger: &mut Ledger, params: &Params, key: &str) -> Outcome {
    params.only(&["charge", "amount", "reason", "metadata["])?;
    let charge_id = params.required("charge")?;
    let amount = params.amount()?;

    let Some(charge) = ledger.charges.iter_mut().find(|c| c.record.id == charge_id) else {
        return Ok(no_such_charge(StatusCode::BAD_REQUEST, "charge", charge_id));
    };
    let left = charge.record.amount - charge.amount_refunded;
    if left == 0 {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("charge_already_refunded"),
            None,
            &format!("Charge {charge_id} has already been refunded."),
        ));
    }
    let amount = amount.unwrap_or(left);
    if amount > left {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            Some("amount"),
            &format!(
                "Refund amount ({}) is greater than unrefunded amount on charge ({}).",
                dollars(amount),
                dollars(left)
            ),
        ));
    }
    charge.amount_refunded += amount;
    charge.record.refunded = charge.amount_refunded == charge.record.amount;

    let record = RefundRecord {
        id: new_id("re"),
        charge: charge_id.to_owned(),
        amount,
        idempotency_key: key.to_owned(),
    };
    let answer = Answer::json(
        StatusCode::OK,
        &json!({
            "id": record.id,
            "object": "refund",
            "amount": amount,
            "charge": charge_id,
            "currency": charge.record.currency,
            "metadata": params.metadata(),
            "status": "succeeded",
        }),
    );
    ledger.refunds.push(record);
    Ok(answer)
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, Answer> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(name))
    }

    /// Refuses names not in `known`; a name ending in `[` admits a whole hash (`metadata[`).
    fn only(&self, known: &[&str]) -> Result<(), Answer> {
        let is_known = |name: &str| {
            known.iter().any(|k| match k.strip_suffix('[') {
                Some(hash) => {
                    name.starts_with(k) && name.ends_with(']') && name.len() > hash.len() + 2
                }
                None => name == *k,
            })
        };
        match self.0.iter().find(|(name, _)| !is_known(name)) {
            None => Ok(()),
            Some((name, _)) => Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_unknown"),
                Some(name),
                &format!("Received unknown parameter: {name}"),
            )),
        }
    }

    /// `amount`, if given, as a positive number of the currency's smallest unit.
    fn amount(&self) -> Result<Option<i64>, Answer> {
        let Some(raw) = self.get("amount") else {
            return Ok(None);
        };
        let invalid = |message: String| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                Some("amount"),
                &message,
            )
        };
        match raw.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            Ok(_) => Err(invalid("Invalid positive integer".to_owned())),
            Err(_) => Err(invalid(format!("Invalid integer: {raw}"))),
        }
    }

    /// `currency` in lower case, as Stripe echoes it whatever case it was sent in.
    fn currency(&self) -> Result<String, Answer> {
        let raw = self.required("currency")?;
        if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(raw.to_ascii_lowercase())
        } else {
            Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid_string"),
                Some("currency"),
                &format!("Invalid currency: {raw}"),
            ))
        }
    }

    fn metadata(&self) -> Map<String, Value> {
        self.0
            .iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((key.to_owned(), Value::String(value.clone())))
            })
            .collect()
    }
}

impl Answer {
    fn json(status: StatusCode, body: &Value) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    fn into_response(self, replayed: bool) -> Response {
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body,
        )
            .into_response();
        if replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// A body of Stripe's error shape; `code` and `param` are left out when absent, as Stripe
/// leaves them out.
fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Answer {
    let mut e = Map::new();
    e.insert("type".into(), kind.into());
    if let Some(code) = code {
        e.insert("code".into(), code.into());
    }
    if let Some(param) = param {
        e.insert("param".into(), param.into());
    }
    e.insert("message".into(), message.into());
    Answer::json(status, &json!({ "error": e }))
}

fn missing(param: &str) -> Answer {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_missing"),
        Some(param),
        &format!("Missing required param: {param}."),
    )
}

fn no_such_charge(status: StatusCode, param: &str, id: &str) -> Answer {
    error(
        status,
        "invalid_request_error",
        Some("resource_missing"),
        Some(param),
        &format!("No such charge: '{id}'"),
    )
}

/// Ids unique across doubles and runs, so a test that restarts the double cannot mistake
/// an old charge for a new one.
fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn dollars(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}
