//! Path and query extractors whose rejections are [`ApiError`]s, so a URL axum cannot
//! decode (a percent-encoded id that is not UTF-8, a query string that is not) gets the
//! contract's JSON error body instead of axum's plain-text "Invalid URL".

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::extract::Path`. An id that cannot even be decoded names nothing that
/// exists: 404, as any other unknown id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => {
                tracing::debug!(uri = %parts.uri, error = %rejection.body_text(), "undecodable path");
                Err(ApiError::NotFound)
            }
        }
    }
}

/// Like `axum::extract::Query`, with a 400 in the tix shape for a query string that cannot
/// be decoded. One whose percent-escapes are not UTF-8 is refused too, where axum would
/// read it with replacement characters (a search for `�` that finds nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

/// The 400 for a query string that does not decode to UTF-8.
pub const QUERY_NOT_UTF8: &str = "The query string must be UTF-8 once percent-decoded";

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Separators are ASCII, so the whole string decodes to UTF-8 exactly when each of
        // its names and values does.
        let raw = parts.uri.query().unwrap_or("");
        if percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .is_err()
        {
            return Err(ApiError::BadRequest(QUERY_NOT_UTF8.into()));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "Invalid query string: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// A yes/no query parameter: absent, `false` or `0` is no; `true`, `1` or empty is yes.
pub fn flag(q: &std::collections::HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(ApiError::field(
            name,
            format!("{name} must be true or false"),
        )),
    }
}

/// A whole-number query parameter from 0 to `max`, `default` when absent.
pub fn number(
    q: &std::collections::HashMap<String, String>,
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
