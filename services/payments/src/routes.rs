//! `POST /api/payments`: claim the order, charge the card, record the outcome; and the
//! buyer's receipts, `GET /api/payments` and `GET /api/payments/:id`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tix_common::auth::CurrentUser;
use tix_common::{ApiError, FieldError, Json};

use crate::AppState;
use crate::provider::{ChargeError, ChargeRequest};
use crate::store::{self, Claim, Order};
use tix_api::{OrderStatus, Payment, PaymentStatus, UnixMillis};
use tix_common::idempotency::{self, IdempotencyKey};

/// How long a payment waits for its order to be replicated: a buyer may pay right after
/// reserving, before `order:created` has reached payments.
const REPLICA_WAIT: Duration = Duration::from_secs(3);

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
        .read_eventually(REPLICA_WAIT, move |c| -> Result<Option<Order>, ApiError> {
            Ok(store::get_order(c, &key)?)
        })
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
    if let Some(k) = key.clone() {
        let (uid, req) = (user.id.clone(), request.clone());
        let earlier = state
            .db
            .read(move |c| -> Result<Option<Payment>, ApiError> {
                match idempotency::find(c, &uid, &k, &req)? {
                    Some(id) => Ok(store::receipt(c, &id)?.map(|(p, _)| p)),
                    None => Ok(None),
                }
            })
            .await?;
        if let Some(p) = earlier {
            return replay(p);
        }
    }
    let order = wait_for_order(&state, &order_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if order.user_id != user.id {
        return Err(ApiError::Forbidden);
    }
    ensure_payable(&order)?;
    let payment_id = uuid::Uuid::now_v7().to_string();
    let claimed = state
        .db
        .write(move |c| -> Result<Claimed, ApiError> {
            // Checked again where it cannot change underneath: the consumer's writes go
            // through this same writer, so an order:cancelled applied since the read above
            // is seen here.
            let order = store::get_order(c, &order_id)?.ok_or(ApiError::NotFound)?;
            ensure_payable(&order)?;
            let claim = Claim {
                id: payment_id,
                order_id: order.id,
                amount: order.price,
                created_at: UnixMillis::now(),
            };
            if let Some(k) = &key {
                // Two retries racing: the second finds the first's claim here.
                if let Some(id) = idempotency::find(c, &user.id, k, &request)?
                    && let Some((earlier, _)) = store::receipt(c, &id)?
                {
                    return Ok(Claimed::Earlier(earlier));
                }
            }
            if !store::claim(c, &claim)? {
                return Err(ApiError::BadRequest("Order already paid".into()));
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
        Claimed::Earlier(p) => return replay(p),
    };
    // Detached from the request and tracked: a buyer who hangs up, the request timeout or
    // a shutdown must not leave a charge made but unrecorded. A charge slower than the
    // request may take is answered 202 with the pending receipt; the buyer polls it (or
    // retries with the same Idempotency-Key).
    let pending = claim.pending();
    let answer_within = state.answer_within;
    let tracker = state.settling.clone();
    let settling = tracker.spawn(settle(state, claim, token));
    match tokio::time::timeout(answer_within, settling).await {
        Ok(joined) => joined
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("settling a payment")))?,
        Err(_) => Ok((StatusCode::ACCEPTED, Json(pending))),
    }
}

/// What the claiming transaction found: a new attempt to charge, or the one an earlier
/// request with the same key made.
enum Claimed {
    New(Claim),
    Earlier(Payment),
}

/// The answer a retried payment gets: what the first request got, as far as it is known.
fn replay(p: Payment) -> Result<(StatusCode, Json<Payment>), ApiError> {
    match p.status {
        PaymentStatus::Succeeded | PaymentStatus::Refunded => Ok((StatusCode::CREATED, Json(p))),
        PaymentStatus::Failed => Err(ApiError::PaymentRequired(
            p.reason.unwrap_or_else(|| "Your card was declined".into()),
        )),
        // The first request is still charging: come back for the outcome.
        PaymentStatus::Pending => Ok((StatusCode::ACCEPTED, Json(p))),
    }
}

async fn settle(
    state: AppState,
    claim: Claim,
    token: String,
) -> Result<(StatusCode, Json<Payment>), ApiError> {
    let req = ChargeRequest {
        amount_cents: claim.amount.cents(),
        currency: state.currency.to_string(),
        source: token,
        idempotency_key: claim.order_id.clone(),
        description: format!("tix order {}", claim.order_id),
    };
    let outcome = state.provider.charge(&req).await;
    let c = claim.clone();
    match outcome {
        Ok(charge) => {
            let charge_id = charge.id.clone();
            state
                .db
                .write(move |conn| -> Result<(), ApiError> {
                    Ok(store::succeed(conn, &c, &charge_id)?)
                })
                .await
                .inspect_err(|_| {
                    tracing::error!(payment = %claim.id, order = %claim.order_id, charge = %charge.id,
                        "the card was charged but the payment could not be recorded");
                })?;
            tracing::info!(payment = %claim.id, order = %claim.order_id, charge = %charge.id, "paid");
            Ok((StatusCode::CREATED, Json(claim.succeeded())))
        }
        Err(ChargeError::Declined(reason)) => {
            let r = reason.clone();
            state
                .db
                .write(move |conn| -> Result<(), ApiError> { Ok(store::fail(conn, &c, &r)?) })
                .await?;
            tracing::info!(payment = %claim.id, order = %claim.order_id, %reason, "declined");
            Err(ApiError::PaymentRequired(reason))
        }
        Err(ChargeError::Invalid(why)) => {
            release(&state, c).await?;
            tracing::info!(order = %claim.order_id, %why, "invalid card");
            Err(ApiError::field("token", "Invalid card"))
        }
        Err(e @ ChargeError::Unavailable(_)) => {
            release(&state, c).await?;
            Err(ApiError::Internal(anyhow::Error::new(e).context(format!(
                "charging order {} (payment {})",
                claim.order_id, claim.id
            ))))
        }
    }
}

async fn release(state: &AppState, claim: Claim) -> Result<(), ApiError> {
    state
        .db
        .write(move |c| -> Result<(), ApiError> { Ok(store::release(c, &claim)?) })
        .await
}

/// The caller's payments, newest first.
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
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let (receipt, buyer) = state
        .db
        .read(move |c| -> Result<_, ApiError> { Ok(store::receipt(c, &id)?) })
        .await?
        .ok_or(ApiError::NotFound)?;
    if buyer != user.id {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(receipt))
}
