//! The error body every endpoint answers with: `{"errors":[{"message":…,"field":…?}]}`.

use serde::{Deserialize, Serialize};

/// One problem with a request, optionally tied to a field of its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub field: Option<String>,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    /// A problem with the request as a whole.
    pub fn general(message: impl Into<String>) -> Self {
        FieldError {
            message: message.into(),
            field: None,
        }
    }
}

/// `{"errors":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub errors: Vec<FieldError>,
}

impl ErrorBody {
    pub fn message(message: impl Into<String>) -> Self {
        ErrorBody {
            errors: vec![FieldError::general(message)],
        }
    }
}
