//! Accounts: signing up and in, and who is signed in.

use serde::{Deserialize, Serialize};

/// The body of `POST /api/users/signup` and `/signin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// The answer to signup and signin: the account and a token for `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// The signed-in user as `GET /api/users/currentuser` shows it: the token's claims.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
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
pub struct CurrentUserBody {
    pub current_user: Option<CurrentUser>,
}

/// `{}`: the answer to sign-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}
