//! `POST/GET /api/orders`, `GET/DELETE /api/orders/:id`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use tix_api::{OrderStatus, UnixMillis};

use tix_common::auth::CurrentUser;
use tix_common::extract::number;
use tix_common::idempotency::{self, IdempotencyKey};
use tix_common::{ApiError, Json, rate};
use tix_common::{Path, Query};

use tix_api::{ErrorBody, NewOrder};

use crate::AppState;

/// How long a reservation waits for its ticket to reach this replica.
const REPLICA_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);
use crate::store::{self, Cancellation, Order, Reserved};

/// Every orders endpoint, routed and documented together: a route cannot be served without
/// being in the OpenAPI document (docs/openapi.json).
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(sales))
        .routes(routes!(show, cancel))
}

#[derive(Debug, Deserialize)]
pub struct CreateBody {
    #[serde(default, rename = "ticketId")]
    ticket_id: Option<Value>,
}

/// Reserves a ticket until `expiresAt`; publishes `order:created`.
#[utoipa::path(
    post,
    path = "/api/orders",
    operation_id = "createOrder",
    tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "1 to 255 visible ASCII characters, one per user action: a request repeated with the same key answers with the first one's order")),
    request_body = NewOrder,
    responses(
        (status = 201, description = "The order, holding the ticket", body = tix_api::Order),
        (status = 400, description = "`TicketId must be provided` (field `ticketId`); `Ticket is already reserved`; `You cannot buy your own ticket`; `You already hold 5 unpaid reservations: pay for or cancel one first`; `This Idempotency-Key was used for another request`; `Idempotency-Key must be 1 to 255 visible ASCII characters`", body = ErrorBody),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
        (status = 404, description = "`Not found`: no such ticket (after waiting up to 1.5 s for a ticket just created)", body = ErrorBody),
        (status = 429, description = "`Too many new orders, try again later`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<tix_api::Order>), ApiError> {
    let ticket_id = match &body.ticket_id {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 100 => s.trim().to_string(),
        _ => return Err(ApiError::field("ticketId", "TicketId must be provided")),
    };
    let request = format!("reserve {ticket_id}");
    // A retry of a reservation already made answers with it, before any limit counts it.
    if let Some(order) =
        idempotency::earlier(&state.db, &user.id, key.as_deref(), &request, store::order).await?
    {
        return Ok((StatusCode::CREATED, Json(order.view())));
    }
    if let Err(not_until) = state.order_rate.check_key(&user.id) {
        return Err(ApiError::Limited(
            "Too many new orders, try again later".into(),
            rate::wait_time(&not_until),
        ));
    }
    // The ticket is nearly always in this replica: looked up where the order is written,
    // with no read before it. One created a moment ago may not be yet: its event is given
    // a little time, and the reservation tried again.
    let attempt = Reservation {
        user_id: user.id,
        ticket_id,
        key,
        request,
    };
    let order = match attempt.clone().make(&state).await {
        Err(ApiError::NotFound) => {
            wait_for_replica(&state, &attempt.ticket_id).await?;
            attempt.make(&state).await?
        }
        made => made?,
    };
    tracing::info!(order = %order.id, ticket = %order.ticket.id, "reserved");
    Ok((StatusCode::CREATED, Json(order.view())))
}

/// One buyer's reservation of one ticket, as the writer makes it.
#[derive(Clone)]
struct Reservation {
    user_id: String,
    ticket_id: String,
    key: Option<String>,
    request: String,
}

impl Reservation {
    async fn make(self, state: &AppState) -> Result<Order, ApiError> {
        let Reservation {
            user_id,
            ticket_id,
            key,
            request,
        } = self;
        let ttl = state.order_ttl;
        let max_active = state.max_active_orders;
        state
            .db
            .write(move |c| -> Result<Order, ApiError> {
                // Again here, where two retries racing each other are serialized.
                if let Some(k) = &key
                    && let Some(id) = idempotency::find(c, &user_id, k, &request)?
                    && let Some(order) = store::order(c, &id)?
                {
                    return Ok(order);
                }
                let ticket = store::ticket(c, &ticket_id)?.ok_or(ApiError::NotFound)?;
                if ticket.user_id == user_id {
                    return Err(ApiError::BadRequest(
                        "You cannot buy your own ticket".into(),
                    ));
                }
                // Counted where no other reservation of this buyer can slip in between: every
                // write goes through this one writer.
                if store::unpaid_holds(c, &user_id, UnixMillis::now())? >= i64::from(max_active) {
                    return Err(ApiError::BadRequest(format!(
                        "You already hold {max_active} unpaid reservations: pay for or cancel one first"
                    )));
                }
                let order = Order {
                    id: uuid::Uuid::now_v7().to_string(),
                    user_id: user_id.clone(),
                    status: OrderStatus::Created,
                    expires_at: UnixMillis::now().after(ttl),
                    version: 0,
                    // The price agreed: kept with the order, whatever the seller does next.
                    ticket: Reserved::from(&ticket),
                    paid_at: None,
                    payment_id: None,
                    cancelled_because: None,
                };
                match store::insert_order(c, &order) {
                    Ok(()) => {
                        if let Some(k) = &key {
                            idempotency::record(
                                c,
                                &order.user_id,
                                k,
                                &request,
                                &order.id,
                                UnixMillis::now().as_i64(),
                            )?;
                        }
                        Ok(order)
                    }
                    // The partial unique index: another active order holds this ticket.
                    Err(e) if store::is_unique_violation(&e) => {
                        Err(ApiError::BadRequest("Ticket is already reserved".into()))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
    }
}

/// A ticket created a moment ago may not have reached this replica yet: give its
/// `ticket:created` event a little time rather than answering 404 to a real ticket.
async fn wait_for_replica(state: &AppState, ticket_id: &str) -> Result<(), ApiError> {
    let id = ticket_id.to_string();
    state
        .db
        .read_eventually(
            store::TICKETS,
            REPLICA_WAIT,
            move |c| -> Result<Option<()>, ApiError> { Ok(store::ticket(c, &id)?.map(|_| ())) },
        )
        .await?;
    Ok(())
}

/// The caller's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/orders",
    operation_id = "listOrders",
    tag = "orders",
    responses(
        (status = 200, description = "The caller's orders, each with its ticket as reserved", body = Vec<tix_api::Order>),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<tix_api::Order>>, ApiError> {
    let orders = state
        .db
        .read_blocking(move |c| -> Result<Vec<Order>, ApiError> {
            Ok(store::orders_of(c, &user.id)?)
        })
        .await?;
    Ok(Json(orders.iter().map(Order::view).collect()))
}

/// What the caller sold: completed orders of the caller's tickets, newest payment first,
/// with the count and total of all of them. Buyers are not named.
#[utoipa::path(
    get,
    path = "/api/orders/sales",
    operation_id = "listSales",
    tag = "orders",
    params(
        ("limit" = Option<u8>, Query, maximum = 200, description = "At most this many (default 50)"),
        ("offset" = Option<u32>, Query, maximum = 2147483647, description = "Skip this many (default 0)"),
    ),
    responses(
        (status = 200, description = "One page of the caller's sales and the totals over all of them", body = tix_api::Sales),
        (status = 400, description = "`limit must be a whole number from 0 to 200` (field `limit`), `offset must be …` (field `offset`); `The query string must be UTF-8 once percent-decoded`", body = ErrorBody),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn sales(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<tix_api::Sales>, ApiError> {
    let limit = number(&q, "limit", 50, 200)?;
    let offset = number(&q, "offset", 0, i64::from(i32::MAX))?;
    let sales = state
        .db
        .read_blocking(move |c| -> Result<tix_api::Sales, ApiError> {
            Ok(store::sales_of(c, &user.id, limit, offset)?)
        })
        .await?;
    Ok(Json(sales))
}

async fn owned(state: &AppState, user: &str, id: String) -> Result<Order, ApiError> {
    let order = state
        .db
        .read(move |c| -> Result<Option<Order>, ApiError> { Ok(store::order(c, &id)?) })
        .await?
        .ok_or(ApiError::NotFound)?;
    if order.user_id != user {
        return Err(ApiError::Forbidden);
    }
    Ok(order)
}

#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    operation_id = "showOrder",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = tix_api::Order),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
        (status = 403, description = "`Forbidden`: someone else's order", body = ErrorBody),
        (status = 404, description = "`Not found`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<tix_api::Order>, ApiError> {
    Ok(Json(owned(&state, &user.id, id).await?.view()))
}

/// Cancels one of the caller's orders (cancelling a cancelled one changes nothing);
/// `order:cancelled` releases the ticket.
#[utoipa::path(
    delete,
    path = "/api/orders/{id}",
    operation_id = "cancelOrder",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 400, description = "`Cannot cancel a completed order`", body = ErrorBody),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
        (status = 403, description = "`Forbidden`: someone else's order", body = ErrorBody),
        (status = 404, description = "`Not found`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .write(move |c| -> Result<(), ApiError> {
            let mut o = store::order(c, &id)?.ok_or(ApiError::NotFound)?;
            if o.user_id != user.id {
                return Err(ApiError::Forbidden);
            }
            match o.status {
                OrderStatus::Complete => Err(ApiError::BadRequest(
                    "Cannot cancel a completed order".into(),
                )),
                OrderStatus::Cancelled => Ok(()), // cancelling twice is cancelling once
                _ => Ok(store::cancel(c, &mut o, Cancellation::Buyer)?),
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
