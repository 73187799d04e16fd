//! A JSON extractor whose rejections are [`ApiError`]s: malformed, wrongly typed or
//! oversized bodies get the error body of the contract (`tix_api::ErrorBody`) instead of axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

const NOT_JSON: &str = "Expected a JSON body (Content-Type: application/json)";

/// What axum's `Json` takes for JSON: `application/json` or `application/<anything>+json`,
/// with any parameters (its own check, which is private).
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

/// Like `axum::Json`, with errors in the tix shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::BadRequest(NOT_JSON.into()));
        }
        let body = match Bytes::from_request(req, state).await {
            Ok(body) => body,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge);
            }
            Err(e) => return Err(ApiError::BadRequest(e.body_text())),
        };
        // axum's `Json` deserialises through `serde_path_to_error`, for the path to the bad
        // field in its message: ~5 % of a ticket POST's instructions. A body that parses
        // (nearly all) is read by serde_json alone; only one that does not is read again
        // by axum's, for the message.
        if let Ok(v) = serde_json::from_slice(&body) {
            return Ok(Json(v));
        }
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => {
                    ApiError::BadRequest(format!("Invalid request body: {}", e.body_text()))
                }
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::BadRequest("Malformed JSON in the request body".into())
                }
                // `from_bytes` refuses nothing else; the content type and the body's size
                // were checked above.
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[derive(Debug, serde::Deserialize)]
    struct Ticket {
        #[allow(dead_code)]
        title: String,
        price: f64,
    }

    async fn extract(content_type: Option<&str>, body: &str) -> Result<Ticket, String> {
        let mut req = Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(Body::from(body.to_owned())).unwrap();
        match Json::<Ticket>::from_request(req, &()).await {
            Ok(Json(t)) => Ok(t),
            Err(e) => Err(e.to_string()),
        }
    }

    const JSON: Option<&str> = Some("application/json");

    #[tokio::test]
    async fn a_good_body_parses_and_each_bad_one_gets_its_own_message() {
        let ok = extract(JSON, r#"{"title":"Gig","price":12.5}"#)
            .await
            .unwrap();
        assert_eq!(ok.price, 12.5);
        for ct in [
            "application/json; charset=utf-8",
            "application/cloudevents+json",
        ] {
            assert!(
                extract(Some(ct), r#"{"title":"Gig","price":1}"#)
                    .await
                    .is_ok(),
                "{ct}"
            );
        }
        for ct in [
            None,
            Some("text/json"),
            Some("text/plain"),
            Some("not a type"),
        ] {
            let e = extract(ct, r#"{"title":"Gig","price":1}"#)
                .await
                .unwrap_err();
            assert!(e.contains("Expected a JSON body"), "{ct:?}: {e}");
        }
        for body in [
            r#"{"title":"Gig","price":1"#,
            r#"{"title":"Gig","price":1} trailing"#,
            "",
        ] {
            let e = extract(JSON, body).await.unwrap_err();
            assert!(e.contains("Malformed JSON"), "{body:?}: {e}");
        }
        // The field at fault is named, as axum's extractor names it.
        let e = extract(JSON, r#"{"title":"Gig","price":"twelve"}"#)
            .await
            .unwrap_err();
        assert!(
            e.contains("Invalid request body") && e.contains("price"),
            "{e}"
        );
        let e = extract(JSON, r#"{"price":1}"#).await.unwrap_err();
        assert!(
            e.contains("Invalid request body") && e.contains("title"),
            "{e}"
        );
    }
}
