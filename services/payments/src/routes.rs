//! `POST /api/payments`: claim the order, charge the card, record the outcome; and the
//! buyer's receipts, `GET /api/payments` and `GET /api/payments/:id`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tix_common::Path;
use tix_common::auth::CurrentUser;
use tix_common::{ApiError, FieldError, Json};

use crate::AppState;
use crate::charging::Settled;
use crate::store::{self, Claim, Failure, Order, Receipt};
use tix_api::{ErrorBody, NewPayment, OrderStatus, Payment, PaymentStatus, UnixMillis};
use tix_common::idempotency::{self, IdempotencyKey};

/// How long a payment waits for its order to be replicated: a buyer may pay right after
/// reserving, before `order:created` has reached payments.
const REPLICA_WAIT: Duration = Duration::from_secs(3);

/// Every payments endpoint, routed and documented together: a route cannot be served
/// without being in the OpenAPI document (docs/openapi.json).
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentBody {
    #[serde(default)]
    order_id: Option<Value>,
    #[serde(default)]
    token: Option<Value>,
}

fn required_string(v: Option<&Value>, field: &str, label: &str) -> Result<String, FieldError> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            Err(FieldError::new(field, format!("{label} is required")))
        }
        Some(_) => Err(FieldError::new(field, format!("{label} must be a string"))),
    }
}

fn parse_body(body: &PaymentBody) -> Result<(String, String), ApiError> {
    let order_id = required_string(body.order_id.as_ref(), "orderId", "Order id");
    let token = required_string(body.token.as_ref(), "token", "Token");
    match (order_id, token) {
        (Ok(o), Ok(t)) => Ok((o, t)),
        (o, t) => Err(ApiError::Validation(
            [o.err(), t.err()].into_iter().flatten().collect(),
        )),
    }
}

async fn wait_for_order(state: &AppState, id: &str) -> Result<Option<Order>, ApiError> {
    let key = id.to_string();
    state
        .db
        .read_eventually(
            store::ORDERS,
            REPLICA_WAIT,
            move |c| -> Result<Option<Order>, ApiError> { Ok(store::get_order(c, &key)?) },
        )
        .await
}

/// An order this close to its expiry is not charged: orders would cancel it (and release
/// its ticket) while the charge is still running.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

fn ensure_payable(order: &Order) -> Result<(), ApiError> {
    if order.status == OrderStatus::Created
        && order
            .expires_at
            .is_some_and(|at| UnixMillis::now().after(EXPIRY_MARGIN) >= at)
    {
        return Err(ApiError::BadRequest(
            "Cannot pay for an expired order".into(),
        ));
    }
    match order.status {
        OrderStatus::Created => Ok(()),
        OrderStatus::Cancelled => Err(ApiError::BadRequest(
            "Cannot pay for a cancelled order".into(),
        )),
        OrderStatus::Complete => Err(ApiError::BadRequest("Order already paid".into())),
        // Payments' replica never holds it; were it to, it is not payable.
        OrderStatus::AwaitingPayment => Err(ApiError::BadRequest("Order is not payable".into())),
    }
}

/// Pays for one of the caller's orders with a card token: the amount is the order's price,
/// never a number from the client. Publishes `payment:created` or `payment:failed`.
#[utoipa::path(
    post,
    path = "/api/payments",
    operation_id = "createPayment",
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "1 to 255 visible ASCII characters, one per user action: a request repeated with the same key never charges twice and answers with the first one's outcome")),
    request_body = NewPayment,
    responses(
        (status = 201, description = "Charged: the receipt (`succeeded`; `refunded` when orders had cancelled the order first)", body = Payment),
        (status = 202, description = "The provider's answer is not known yet: the receipt, `pending`; poll `GET /api/payments/{id}` or retry with the same `Idempotency-Key`", body = Payment),
        (status = 400, description = "`Order id is required`, `Order id must be a string` (field `orderId`); `Token is required`, `Token must be a string`, `Invalid card` (field `token`); `Cannot pay for a cancelled order`; `Cannot pay for an expired order`; `Order already paid`; `A payment for this order is being processed`; `This Idempotency-Key was used for another request`; `Idempotency-Key must be 1 to 255 visible ASCII characters`", body = ErrorBody),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
        (status = 402, description = "`Your card was declined`: the order is cancelled and its ticket released", body = ErrorBody),
        (status = 403, description = "`Forbidden`: someone else's order", body = ErrorBody),
        (status = 404, description = "`Not found`: no such order (after waiting up to 3 s for an order just made)", body = ErrorBody),
        (status = 503, description = "`The payment provider cannot be reached right now; nothing was charged`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<PaymentBody>,
) -> Result<(StatusCode, Json<Payment>), ApiError> {
    let (order_id, token) = parse_body(&body)?;
    let request = format!("pay {order_id}");
    // A retry of a payment already made answers with it — never a second charge, never
    // "Order already paid" to the buyer who paid.
    if let Some(r) = idempotency::earlier(
        &state.db,
        &user.id,
        key.as_deref(),
        &request,
        store::receipt,
    )
    .await?
    {
        return replay(r);
    }
    let order = wait_for_order(&state, &order_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if order.user_id != user.id {
        return Err(ApiError::Forbidden);
    }
    ensure_payable(&order)?;
    let payment_id = uuid::Uuid::now_v7().to_string();
    let currency = state.currency.to_string();
    let claimed = state
        .db
        .write(move |c| -> Result<Claimed, ApiError> {
            // Checked again where it cannot change underneath: the consumer's writes go
            // through this same writer, so an order:cancelled applied since the read above
            // is seen here.
            let order = store::get_order(c, &order_id)?.ok_or(ApiError::NotFound)?;
            ensure_payable(&order)?;
            let claim = Claim {
                id: payment_id.clone(),
                order_id: order.id,
                amount: order.price,
                created_at: UnixMillis::now(),
                currency: currency.clone(),
                source: token.clone(),
            };
            if let Some(k) = &key {
                // Two retries racing: the second finds the first's claim here.
                if let Some(id) = idempotency::find(c, &user.id, k, &request)?
                    && let Some(earlier) = store::receipt(c, &id)?
                {
                    return Ok(Claimed::Earlier(earlier));
                }
            }
            if !store::claim(c, &claim)? {
                return Err(ApiError::BadRequest(
                    if store::has_pending_attempt(c, &claim.order_id)? {
                        "A payment for this order is being processed"
                    } else {
                        "Order already paid"
                    }
                    .into(),
                ));
            }
            if let Some(k) = &key {
                idempotency::record(
                    c,
                    &user.id,
                    k,
                    &request,
                    &claim.id,
                    claim.created_at.as_i64(),
                )?;
            }
            Ok(Claimed::New(claim))
        })
        .await?;
    let claim = match claimed {
        Claimed::New(claim) => claim,
        Claimed::Earlier(r) => return replay(r),
    };
    // Detached from the request and tracked: a buyer who hangs up, the request timeout or
    // a shutdown must not leave a charge made but unrecorded. A charge slower than the
    // request may take is answered 202 with the pending receipt; the buyer polls it (or
    // retries with the same Idempotency-Key).
    let pending = claim.pending();
    let guard = state
        .charger
        .enter(&claim.id)
        .expect("a new attempt is in flight nowhere else");
    let charger = state.charger.clone();
    let settling = state.settling.spawn(in_this_request(async move {
        charger.attempt(claim, guard).await
    }));
    match tokio::time::timeout(state.answer_within, settling).await {
        Ok(joined) => {
            let settled = joined
                .map_err(|e| {
                    ApiError::Internal(anyhow::Error::new(e).context("settling a payment"))
                })?
                // Recorded as pending at worst: the reconciler settles it.
                .map_err(|e| {
                    ApiError::Internal(anyhow::Error::new(e).context("recording a payment"))
                })?;
            answer(settled, pending)
        }
        Err(_) => Ok((StatusCode::ACCEPTED, Json(pending))),
    }
}

/// What the claiming transaction found: a new attempt to charge, or the one an earlier
/// request with the same key made.
enum Claimed {
    New(Claim),
    Earlier(Receipt),
}

/// How long a buyer is told to wait before trying a provider that could not be reached.
const PROVIDER_RETRY: Duration = Duration::from_secs(5);

/// The buyer's answer for a settled (or still unknown) attempt.
fn answer(settled: Settled, pending: Payment) -> Result<(StatusCode, Json<Payment>), ApiError> {
    match settled {
        Settled::Succeeded(p) => Ok((StatusCode::CREATED, Json(p))),
        Settled::Failed(failure, reason) => Err(failed(failure, reason)),
        // The money may have moved: the buyer sees it pending, and the reconciler settles it.
        Settled::Unknown(_) => Ok((StatusCode::ACCEPTED, Json(pending))),
    }
}

fn failed(failure: Failure, reason: String) -> ApiError {
    match failure {
        Failure::Declined => ApiError::PaymentRequired(reason),
        Failure::Invalid => ApiError::field("token", "Invalid card"),
        Failure::Unreachable => ApiError::Unavailable(
            "The payment provider cannot be reached right now; nothing was charged".into(),
            PROVIDER_RETRY,
        ),
    }
}

/// The answer a retried payment gets: what the first request got, as far as it is known.
fn replay(r: Receipt) -> Result<(StatusCode, Json<Payment>), ApiError> {
    let p = r.payment;
    match p.status {
        PaymentStatus::Succeeded | PaymentStatus::Refunded => Ok((StatusCode::CREATED, Json(p))),
        PaymentStatus::Failed => Err(failed(
            r.failure.unwrap_or(Failure::Declined),
            p.reason.unwrap_or_else(|| "Your card was declined".into()),
        )),
        // The first request is still charging: come back for the outcome.
        PaymentStatus::Pending => Ok((StatusCode::ACCEPTED, Json(p))),
    }
}

/// The caller's payments, newest first.
#[utoipa::path(
    get,
    path = "/api/payments",
    operation_id = "listPayments",
    tag = "payments",
    responses(
        (status = 200, description = "The caller's receipts, newest first (at most 500)", body = Vec<Payment>),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Payment>>, ApiError> {
    let receipts = state
        .db
        .read_blocking(move |c| -> Result<Vec<Payment>, ApiError> {
            Ok(store::receipts_of(c, &user.id)?)
        })
        .await?;
    Ok(Json(receipts))
}

/// One of the caller's payments: 404 unknown, 403 someone else's.
#[utoipa::path(
    get,
    path = "/api/payments/{id}",
    operation_id = "showPayment",
    tag = "payments",
    params(("id" = String, Path, description = "The payment's id")),
    responses(
        (status = 200, description = "The receipt", body = Payment),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
        (status = 403, description = "`Forbidden`: someone else's payment", body = ErrorBody),
        (status = 404, description = "`Not found`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let receipt = state
        .db
        .read(move |c| -> Result<_, ApiError> { Ok(store::receipt(c, &id)?) })
        .await?
        .ok_or(ApiError::NotFound)?;
    if receipt.buyer != user.id {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(receipt.payment))
}

/// `fut`, run with this request's correlation id wherever it is spawned: the charge's events
/// carry the id of the request that paid.
fn in_this_request<F: std::future::Future>(fut: F) -> impl std::future::Future<Output = F::Output> {
    tix_common::correlation::scope(tix_common::correlation::current(), fut)
}
