//! `POST/GET /api/tickets`, `GET/PUT /api/tickets/:id`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tix_common::auth::{CurrentUser, MaybeUser};
use tix_common::extract::{flag, number};
use tix_common::{ApiError, Json};
use tix_common::{Path, Query};

use tix_api::{ErrorBody, TicketDraft};

use crate::AppState;
use crate::domain::{Price, Title};
use crate::store::{self, ListFilter, Ticket};

/// Every tickets endpoint, routed and documented together: a route cannot be served
/// without being in the OpenAPI document (docs/openapi.json).
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update))
}

#[derive(Debug, Deserialize)]
pub struct TicketBody {
    #[serde(default)]
    title: Option<Value>,
    #[serde(default)]
    price: Option<Value>,
}

fn parse_body(body: &TicketBody) -> Result<(Title, Price), ApiError> {
    let title = Title::parse(body.title.as_ref());
    let price = Price::parse(body.price.as_ref());
    match (title, price) {
        (Ok(t), Ok(p)) => Ok((t, p)),
        (t, p) => Err(ApiError::Validation(
            [t.err(), p.err()].into_iter().flatten().collect(),
        )),
    }
}

/// Puts a ticket on sale; publishes `ticket:created`.
#[utoipa::path(
    post,
    path = "/api/tickets",
    operation_id = "createTicket",
    tag = "tickets",
    request_body = TicketDraft,
    responses(
        (status = 201, description = "The ticket, on sale", body = tix_api::Ticket),
        (status = 400, description = "Per field: `Title is required`, `Title must be a string`, `Title must be at most 200 characters`, `Title must not contain control or invisible characters`, `Price is required`, `Price must be a number`, `Price must be greater than 0`, `Price must have at most 2 decimals`, `Price must be at most 1000000`", body = ErrorBody),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<TicketBody>,
) -> Result<(StatusCode, Json<tix_api::Ticket>), ApiError> {
    let (title, price) = parse_body(&body)?;
    let ticket = Ticket {
        id: uuid::Uuid::now_v7().to_string(),
        title: title.as_str().to_string(),
        price,
        seller_name: user.display_name().to_string(),
        user_id: user.id,
        version: 0,
        order_id: None,
    };
    let t = ticket.clone();
    state
        .db
        .write(move |c| -> Result<(), ApiError> { Ok(store::insert(c, &t)?) })
        .await?;
    Ok((StatusCode::CREATED, Json(ticket.view())))
}

/// The tickets on sale, newest first.
#[utoipa::path(
    get,
    path = "/api/tickets",
    operation_id = "listTickets",
    tag = "tickets",
    params(
        ("all" = Option<bool>, Query, description = "Reserved tickets too (`true`/`false`, also `1`/`0`)"),
        ("mine" = Option<bool>, Query, description = "Only the caller's own tickets, reserved or not (401 without a token)"),
        ("q" = Option<String>, Query, description = "Title contains the text (case-insensitive for ASCII; `%` and `_` are literal)"),
        ("limit" = Option<u8>, Query, maximum = 200, description = "At most this many (default 50)"),
        ("offset" = Option<u32>, Query, maximum = 2147483647, description = "Skip this many (default 0)"),
        ("before" = Option<String>, Query, description = "Only tickets put on sale before the ticket with this id: the next page after the last id of this one"),
    ),
    responses(
        (status = 200, description = "The tickets, newest first", body = Vec<tix_api::Ticket>),
        (status = 400, description = "A bad flag or number (`limit must be a whole number from 0 to 200`, `mine must be true or false`); `The query string must be UTF-8 once percent-decoded`", body = ErrorBody),
        (status = 401, description = "`Not authorized`: `mine=true` without a valid token", body = ErrorBody),
    ),
    security((), ("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<tix_api::Ticket>>, ApiError> {
    let mine = flag(&q, "mine")?;
    let owner = match (mine, user) {
        (false, _) => None,
        (true, Some(u)) => Some(u.id),
        (true, None) => return Err(ApiError::Unauthorized),
    };
    let filter = ListFilter {
        // Your own reserved tickets are yours to see.
        include_reserved: flag(&q, "all")? || owner.is_some(),
        search: q
            .get("q")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        owner,
        before: q
            .get("before")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        limit: number(&q, "limit", 50, 200)?,
        offset: number(&q, "offset", 0, i64::from(i32::MAX))?,
    };
    // A search may scan the table: keep it off the async workers.
    let tickets = state
        .db
        .read_blocking(move |c| -> Result<Vec<Ticket>, ApiError> { Ok(store::list(c, &filter)?) })
        .await?;
    Ok(Json(tickets.iter().map(Ticket::view).collect()))
}

#[utoipa::path(
    get,
    path = "/api/tickets/{id}",
    operation_id = "showTicket",
    tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "The ticket", body = tix_api::Ticket),
        (status = 404, description = "`Not found`: no ticket has this id (any format)", body = ErrorBody),
    ),
    security(()),
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<tix_api::Ticket>, ApiError> {
    let ticket = state
        .db
        .read(move |c| -> Result<Option<Ticket>, ApiError> { Ok(store::get(c, &id)?) })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(ticket.view()))
}

/// Edits one of the caller's tickets (`version` + 1); publishes `ticket:updated`.
#[utoipa::path(
    put,
    path = "/api/tickets/{id}",
    operation_id = "updateTicket",
    tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    request_body = TicketDraft,
    responses(
        (status = 200, description = "The updated ticket", body = tix_api::Ticket),
        (status = 400, description = "The same per-field errors as creating one; `Cannot edit a reserved ticket`", body = ErrorBody),
        (status = 401, description = "`Not authorized`", body = ErrorBody),
        (status = 403, description = "`Forbidden`: someone else's ticket", body = ErrorBody),
        (status = 404, description = "`Not found`", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<TicketBody>,
) -> Result<Json<tix_api::Ticket>, ApiError> {
    let (title, price) = parse_body(&body)?;
    let ticket = state
        .db
        .write(move |c| -> Result<Ticket, ApiError> {
            let mut t = store::get(c, &id)?.ok_or(ApiError::NotFound)?;
            if t.user_id != user.id {
                return Err(ApiError::Forbidden);
            }
            if t.order_id.is_some() {
                return Err(ApiError::BadRequest("Cannot edit a reserved ticket".into()));
            }
            t.title = title.as_str().to_string();
            t.price = price;
            t.version += 1;
            store::save(c, &t)?;
            Ok(t)
        })
        .await?;
    Ok(Json(ticket.view()))
}
