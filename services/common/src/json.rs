//! A JSON extractor whose rejections are [`ApiError`]s: malformed, wrongly typed or
//! oversized bodies get the error body of the contract (`tix_api::ErrorBody`) instead of axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, with errors in the tix shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => {
                    ApiError::BadRequest(format!("Invalid request body: {}", e.body_text()))
                }
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::BadRequest("Malformed JSON in the request body".into())
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
                    "Expected a JSON body (Content-Type: application/json)".into(),
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge
                }
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
