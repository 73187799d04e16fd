//! The one error type of every service's HTTP layer, mapped once to the error body of the
//! contract ([`tix_api::ErrorBody`]): `{"errors":[{"message":…,"field":…?}]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use tix_api::ErrorBody;

pub use tix_api::FieldError;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with one entry per invalid field.
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// 400: a business rule, e.g. "Cannot edit a reserved ticket".
    #[error("{0}")]
    BadRequest(String),
    #[error("Not authorized")]
    Unauthorized,
    #[error("Forbidden")]
    Forbidden,
    #[error("Not found")]
    NotFound,
    /// 402: the card was declined.
    #[error("{0}")]
    PaymentRequired(String),
    #[error("Request body is too large")]
    PayloadTooLarge,
    /// 429 with `Retry-After`: this caller is going too fast.
    #[error("Too many requests, try again in {} s", retry_secs(*.0))]
    TooManyRequests(Duration),
    /// 429 with `Retry-After` and a message saying which limit was hit.
    #[error("{0}")]
    Limited(String, Duration),
    /// 503 with `Retry-After`: the service is at capacity for everyone right now.
    #[error("The service is busy, try again in {} s", retry_secs(*.0))]
    Busy(Duration),
    /// 503 with `Retry-After` and a message saying what is unavailable.
    #[error("{0}")]
    Unavailable(String, Duration),
    #[error("The request took too long")]
    Timeout,
    /// 408: the client did not send its whole body within the request timeout (the
    /// handler never ran). A slow server is 503 ([`ApiError::Timeout`]).
    #[error("The request body did not arrive in time")]
    SlowBody,
    /// 500: logged with its whole cause chain, answered with a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) | ApiError::Limited(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy(_) | ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::SlowBody => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn errors(&self) -> Vec<FieldError> {
        match self {
            ApiError::Validation(list) => list.clone(),
            ApiError::Internal(_) => vec![FieldError::general("Something went wrong")],
            other => vec![FieldError::general(other.to_string())],
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::Internal(e.into())
    }
}

/// Whole seconds for `Retry-After`, rounded up and at least 1.
fn retry_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The error body for a status and message, for responses built outside a handler.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(ErrorBody::message(message))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let mut response = (
            self.status(),
            axum::Json(ErrorBody {
                errors: self.errors(),
            }),
        )
            .into_response();
        if let ApiError::TooManyRequests(after)
        | ApiError::Limited(_, after)
        | ApiError::Busy(after)
        | ApiError::Unavailable(_, after) = &self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_secs(*after)),
            );
        }
        if matches!(self, ApiError::PayloadTooLarge) {
            // The rest of the body is left unread, so the connection cannot carry another
            // request: say so, or a client that pools connections sends its next request
            // down one the server is closing.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_have_the_documented_shape() {
        let (s, v) = body(ApiError::field("price", "Price must be greater than 0")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(
            v,
            serde_json::json!({"errors":[{"message":"Price must be greater than 0","field":"price"}]})
        );
        let (s, v) = body(ApiError::NotFound).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v, serde_json::json!({"errors":[{"message":"Not found"}]}));
    }

    #[test]
    fn limits_say_when_to_come_back() {
        let r = ApiError::TooManyRequests(Duration::from_millis(1500)).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "2");
        let r = ApiError::Busy(Duration::from_millis(10)).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(
            ApiError::TooManyRequests(Duration::from_secs(3)).to_string(),
            "Too many requests, try again in 3 s"
        );
    }

    #[test]
    fn a_body_too_large_closes_the_connection() {
        let r = ApiError::PayloadTooLarge.into_response();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers()["connection"], "close");
        let r = ApiError::NotFound.into_response();
        assert!(r.headers().get("connection").is_none());
    }

    #[tokio::test]
    async fn an_internal_error_never_leaks_its_cause() {
        let e = anyhow::anyhow!("disk I/O error at /secret/path/tickets.db");
        let (s, v) = body(ApiError::Internal(e)).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!v.to_string().contains("secret"), "{v}");
    }
}
