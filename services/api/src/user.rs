//! Accounts: signing up and in, and who is signed in.

use serde::{Deserialize, Serialize};

/// The body of `POST /api/users/signup` and `/signin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credentials {
    /// Trimmed and lowercased; `local@domain.tld`, no control or invisible characters.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    /// 8 to 128 characters (sign-up; sign-in takes any string).
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
}

/// The body of `POST /api/users/signup`: credentials and the public name shown to other
/// users as a seller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAccount {
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
    /// Trimmed; 1 to 40 characters, no control or invisible characters, not an email
    /// address. Absent or `null`: the email's local part (never the whole address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 40))]
    pub display_name: Option<String>,
}

/// The answer to signup and signin: the account and a token for `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedIn {
    pub id: String,
    pub email: String,
    /// The public name other users see (sellers in the marketplace).
    pub display_name: String,
    pub token: String,
}

/// The signed-in user as `GET /api/users/currentuser` shows it: the token's claims.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CurrentUser {
    /// The public name other users see. Tokens made before display names existed carry
    /// none: the email's local part is shown instead.
    pub display_name: String,
    pub email: String,
    /// Unix seconds.
    pub exp: i64,
    /// Unix seconds.
    pub iat: i64,
    pub id: String,
}

/// `{"currentUser": {…} | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrentUserBody {
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub current_user: Option<CurrentUser>,
}

/// `{}`: the answer to sign-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Empty {}
