//! The auth endpoints (docs/api.md): sign up, sign in, sign out, renew, who am I.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tix_api::ErrorBody;
use tix_api::events::{Envelope, Event, SessionRevoked};
use tix_api::user::{Credentials, CurrentUserBody, Empty, NewAccount, SignedIn};
use tix_common::auth::{Claims, CurrentUser, MaybeUser, clear_session_cookie, session_cookie};
use tix_common::db::DbError;
use tix_common::{ApiError, FieldError, Json, outbox, sessions};

use crate::AppState;
use crate::domain::{DisplayName, Email, Password};

/// Every auth endpoint, routed and documented together: a route cannot be served without
/// being in the OpenAPI document (docs/openapi.json).
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(signin))
        .routes(routes!(signout))
        .routes(routes!(renew))
        .routes(routes!(current_user))
}

/// The body of signup and signin, loosely typed so each field gets its own error.
#[derive(Debug, Deserialize)]
pub struct CredentialsBody {
    #[serde(default)]
    email: Option<Value>,
    #[serde(default)]
    password: Option<Value>,
    /// Sign-up only; sign-in ignores it.
    #[serde(default, rename = "displayName")]
    display_name: Option<Value>,
}

fn parse_credentials(body: &CredentialsBody) -> Result<(Email, Password), ApiError> {
    let mut errors = Vec::new();
    let email = match &body.email {
        Some(Value::String(s)) => Email::parse(s).map_err(|e| errors.push(e)).ok(),
        _ => {
            errors.push(FieldError::new("email", "Email must be valid"));
            None
        }
    };
    let password = match &body.password {
        Some(Value::String(s)) => Password::parse(s).map_err(|e| errors.push(e)).ok(),
        _ => {
            errors.push(FieldError::new("password", "Password must be supplied"));
            None
        }
    };
    match (email, password) {
        (Some(e), Some(p)) if errors.is_empty() => Ok((e, p)),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Sign-up's optional display name: absent or `null` takes the email's local part.
fn parse_display_name(body: &CredentialsBody, email: &Email) -> Result<DisplayName, ApiError> {
    match &body.display_name {
        None | Some(Value::Null) => Ok(DisplayName::from_email(email)),
        Some(Value::String(s)) => DisplayName::parse(s).map_err(|e| ApiError::Validation(vec![e])),
        Some(_) => Err(ApiError::field(
            "displayName",
            "Display name must be a string",
        )),
    }
}

/// The answer that signs a user in: the token in the body and in the session cookie.
fn signed_in(
    status: StatusCode,
    state: &AppState,
    headers: &HeaderMap,
    (token, claims): (String, Claims),
) -> Result<Response, ApiError> {
    let secure = state.cookie_secure.applies(headers);
    // The cookie lives as long as its token (shorter than the TTL near the session's end).
    let lives = std::time::Duration::from_secs(u64::try_from(claims.exp - claims.iat).unwrap_or(0));
    let cookie = session_cookie(&token, lives, secure);
    let body = SignedIn {
        display_name: claims.display_name().to_string(),
        id: claims.id,
        email: claims.email,
        token,
    };
    Ok((status, [(SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Hashes a password on the hashing threads once the limits admit it: at most one per
/// core at a time, a bounded number waiting, `503` beyond.
async fn hash(state: &AppState, password: String) -> Result<String, ApiError> {
    let _slot = state.limits.hash_slot().await?;
    state
        .hashers
        .hash(password)
        .await
        .map_err(ApiError::Internal)
}

/// Checks a password against a stored hash, admitted like [`hash`].
async fn verify(state: &AppState, password: String, phc: String) -> Result<bool, ApiError> {
    let _slot = state.limits.hash_slot().await?;
    state
        .hashers
        .verify(password, phc)
        .await
        .map_err(ApiError::Internal)
}

/// Creates an account and signs it in. The email is trimmed and lowercased.
#[utoipa::path(
    post,
    path = "/api/users/signup",
    operation_id = "signup",
    tag = "users",
    request_body = NewAccount,
    responses(
        (status = 201, description = "Signed up and signed in: the token, also set as the `session` cookie", body = SignedIn,
            headers(("Set-Cookie" = String, description = "`session=<base64 of {\"jwt\":…}>; HttpOnly; SameSite=Lax; Path=/`"))),
        (status = 400, description = "`Email must be valid`, `Email in use` (field `email`); `Password must be between 8 and 128 characters`, `Password must be supplied` (field `password`); `Display name must be between 1 and 40 characters`, `… must not contain control or invisible characters`, `… must not contain @`, `… must be a string`, `Display name is reserved: choose another` (`you`, eight hex digits) (field `displayName`)", body = ErrorBody),
        (status = 429, description = "`Too many requests, try again in N s`: sign-ups from this address or from everyone", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`The service is busy, try again in 1 s`: every core is hashing a password and the queue is full", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(()),
)]
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<CredentialsBody>,
) -> Result<Response, ApiError> {
    // Checked before the limits: a malformed body costs nothing and uses up no quota.
    let (email, password) = parse_credentials(&body)?;
    let name = parse_display_name(&body, &email)?;
    let ip = state.limits.client_ip(peer, &headers);
    state.limits.check_signup(ip).inspect_err(|_| {
        tracing::warn!(%ip, "sign-up rate limited");
    })?;
    // Hashing is deliberately slow: it runs on the hashing threads, never the async ones.
    let hash = hash(&state, password.expose().to_string()).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let (uid, mail, shown) = (
        id.clone(),
        email.as_str().to_string(),
        name.as_str().to_string(),
    );
    let inserted = state
        .db
        .write(move |c| -> Result<usize, DbError> {
            Ok(c.execute(
                "INSERT INTO users (id, email, password_hash, created_at, display_name)
                 VALUES (?1, ?2, ?3, unixepoch(), ?4)
                 ON CONFLICT (email) DO NOTHING",
                (&uid, &mail, &hash, &shown),
            )?)
        })
        .await?;
    if inserted == 0 {
        return Err(ApiError::field("email", "Email in use"));
    }
    tracing::info!(user = %id, "signed up");
    let session = state.keys.sign_named(&id, email.as_str(), name.as_str())?;
    signed_in(StatusCode::CREATED, &state, &headers, session)
}

/// Signs in. An unknown email and a wrong password get the same answer, after the same work.
#[utoipa::path(
    post,
    path = "/api/users/signin",
    operation_id = "signin",
    tag = "users",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in: the token, also set as the `session` cookie", body = SignedIn,
            headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 400, description = "`Invalid credentials`; `Email must be valid` (field `email`), `Password must be supplied` (field `password`)", body = ErrorBody),
        (status = 429, description = "`Too many requests, try again in N s` (this address, or everyone), `Too many failed sign-ins for this account`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`The service is busy, try again in 1 s`: every core is hashing a password and the queue is full", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(()),
)]
pub async fn signin(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<CredentialsBody>,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::BadRequest("Invalid credentials".into());
    // Shape errors are reported, but a wrong-length password is just "invalid credentials":
    // it must not tell which accounts exist or what the rules were when they were made.
    let (email, password) = match (&body.email, &body.password) {
        (Some(Value::String(e)), Some(Value::String(p))) => (
            Email::parse(e).map_err(|e| ApiError::Validation(vec![e]))?,
            p.clone(),
        ),
        _ => return Err(parse_credentials(&body).err().unwrap_or_else(invalid)),
    };
    let ip = state.limits.client_ip(peer, &headers);
    state
        .limits
        .check_signin(ip, email.as_str())
        .inspect_err(|_| {
            tracing::warn!(email = %email.as_str(), %ip, "sign-in rate limited");
        })?;
    let mail = email.as_str().to_string();
    let user = state
        .db
        .read(
            move |c| -> Result<Option<(String, String, String)>, DbError> {
                use rusqlite::OptionalExtension;
                Ok(c.query_row(
                    "SELECT id, password_hash, display_name FROM users WHERE email = ?1",
                    [&mail],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?)
            },
        )
        .await?;
    let dummy = state.dummy_hash.clone();
    let (id, ok) = match user {
        Some((id, hash, name)) => (Some((id, name)), verify(&state, password, hash).await?),
        None => {
            // Same work as a real check, so timing does not reveal unknown emails.
            verify(&state, password, dummy.as_ref().clone()).await?;
            (None, false)
        }
    };
    match (id, ok) {
        (Some((id, name)), true) => {
            state.limits.succeeded(email.as_str());
            let session = state.keys.sign_named(&id, email.as_str(), &name)?;
            signed_in(StatusCode::OK, &state, &headers, session)
        }
        _ => {
            state.limits.failed(email.as_str());
            Err(invalid())
        }
    }
}

/// Clears the cookie and, when the request carries a valid token, revokes its session:
/// recorded here and announced as `session:revoked`, so every service refuses its tokens.
#[utoipa::path(
    post,
    path = "/api/users/signout",
    operation_id = "signout",
    tag = "users",
    responses(
        (status = 200, description = "`{}`; the cookie is cleared, and the token's session, if it had a valid one, is revoked in every service", body = Empty,
            headers(("Set-Cookie" = String, description = "`session=; Max-Age=0`"))),
    ),
    security((), ("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn signout(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
) -> Result<Response, ApiError> {
    if let Some(claims) = user.filter(|c| !c.jti.is_empty()) {
        let revoked = SessionRevoked {
            until: state.keys.revoke_until(&claims),
            jti: claims.jti,
            user_id: claims.id,
        };
        let memory = state.keys.revocations().clone();
        let user = revoked.user_id.clone();
        state
            .db
            .write(move |c| -> Result<(), ApiError> {
                sessions::record(c, &memory, &revoked)?;
                outbox::enqueue(
                    c,
                    &Envelope::new(crate::PRODUCER, Event::SessionRevoked(revoked.clone())),
                )?;
                Ok(())
            })
            .await?;
        tracing::info!(%user, "signed out; session revoked");
    }
    Ok((
        StatusCode::OK,
        [(SET_COOKIE, clear_session_cookie())],
        Json(Empty {}),
    )
        .into_response())
}

/// A fresh token for the caller's session, valid for the whole session time from now (but
/// never past the session's longest life, `--session-max-age` after its sign-in); a
/// signed-out session, or one at the end of its life, cannot be renewed.
#[utoipa::path(
    post,
    path = "/api/users/renew",
    operation_id = "renew",
    tag = "users",
    responses(
        (status = 200, description = "A fresh token for the same session, also set as the `session` cookie", body = SignedIn,
            headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "`Not authorized`: no valid token, a signed-out session, or one at the end of its longest life (`--session-max-age` after its sign-in: sign in again)", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn renew(
    State(state): State<AppState>,
    CurrentUser(claims): CurrentUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = state.keys.renew(&claims)?.ok_or(ApiError::Unauthorized)?;
    signed_in(StatusCode::OK, &state, &headers, session)
}

/// Who the token belongs to; `{"currentUser":null}` without a valid one.
#[utoipa::path(
    get,
    path = "/api/users/currentuser",
    operation_id = "currentUser",
    tag = "users",
    responses(
        (status = 200, description = "The token's claims, or `null`", body = CurrentUserBody),
    ),
    security((), ("bearerAuth" = []), ("sessionCookie" = [])),
)]
pub async fn current_user(MaybeUser(user): MaybeUser) -> Json<CurrentUserBody> {
    Json(CurrentUserBody {
        current_user: user.map(|c| tix_api::CurrentUser {
            display_name: c.display_name().to_string(),
            email: c.email,
            exp: c.exp,
            iat: c.iat,
            id: c.id,
        }),
    })
}
