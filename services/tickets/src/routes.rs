//! `POST/GET /api/tickets`, `GET/PUT /api/tickets/:id`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tix_common::auth::{CurrentUser, MaybeUser};
use tix_common::{ApiError, Json};

use crate::AppState;
use crate::domain::{Price, Title};
use crate::store::{self, ListFilter, Ticket};

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

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(ApiError::field(
            name,
            format!("{name} must be true or false"),
        )),
    }
}

fn number(
    q: &HashMap<String, String>,
    name: &str,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    name,
                    format!("{name} must be a whole number from 0 to {max}"),
                )
            }),
    }
}

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
