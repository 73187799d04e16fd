//! Who is calling: JWTs signed with `TIX_JWT_SECRET` (HS256 only), accepted from an
//! `Authorization: Bearer` header or from the `session` cookie the course's web client sends
//! (base64 of `{"jwt":"…"}`).

use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub id: String,
    pub email: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signing and checking keys, built once from the secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The shortest secret accepted: shorter ones are guessable offline from any token.
pub const MIN_SECRET_LEN: usize = 32;

impl JwtKeys {
    pub fn new(secret: &str, ttl: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_LEN,
            "TIX_JWT_SECRET must be at least {MIN_SECRET_LEN} characters (generate one with `openssl rand -hex 32`)"
        );
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat"]);
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        })
    }

    /// A token for this user, valid for the configured time.
    pub fn sign(&self, id: &str, email: &str) -> anyhow::Result<(String, Claims)> {
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            id: id.to_string(),
            email: email.to_string(),
            iat,
            exp: iat + self.ttl.as_secs() as i64,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// The claims of a valid, unexpired HS256 token signed with our secret; `None` otherwise
    /// (tampered, expired, `alg: none`, another algorithm, garbage).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// The token a request carries, from the bearer header first, then the session cookie.
pub fn token_from_parts(parts: &Parts) -> Option<String> {
    if let Some(v) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("session="))
        .find_map(jwt_from_cookie)
}

fn jwt_from_cookie(value: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Session {
        jwt: String,
    }
    let value = value.trim_matches('"');
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines.iter().find_map(|e| e.decode(value).ok())?;
    serde_json::from_slice::<Session>(&bytes)
        .ok()
        .map(|s| s.jwt)
}

/// The `Set-Cookie` value carrying a token as the course's web client expects it.
pub fn session_cookie(token: &str, ttl: Duration) -> HeaderValue {
    let json = serde_json::json!({ "jwt": token }).to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&format!(
        "session={b64}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        ttl.as_secs()
    ))
    .expect("base64 is a valid header value")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The signed-in caller; rejects with 401 when there is none.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Claims);

/// The caller if signed in; never rejects.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<Claims>);

impl<S> FromRequestParts<S> for MaybeUser
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let keys = JwtKeys::from_ref(state);
        Ok(MaybeUser(
            token_from_parts(parts).and_then(|t| keys.verify(&t)),
        ))
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some(c) => Ok(CurrentUser(c)),
            None => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret-test-secret-test-secret-0123";

    fn keys() -> JwtKeys {
        JwtKeys::new(SECRET, Duration::from_secs(3600)).unwrap()
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(JwtKeys::new("secret", Duration::from_secs(60)).is_err());
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let k = keys();
        let (token, claims) = k.sign("u1", "a@b.co").unwrap();
        assert_eq!(k.verify(&token), Some(claims));
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let forged = serde_json::json!({"id":"admin","email":"x@y.z","iat":0,"exp":9999999999i64});
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
        assert_eq!(k.verify(&parts.join(".")), None);
        let other = JwtKeys::new(&"x".repeat(40), Duration::from_secs(60)).unwrap();
        assert_eq!(other.verify(&token), None, "another secret's token");
    }

    #[test]
    fn alg_none_and_expired_tokens_are_refused() {
        let k = keys();
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg":"none","typ":"JWT"})),
            b64(serde_json::json!({"id":"u","email":"e@x.io","iat":0,"exp":9999999999i64}))
        );
        assert_eq!(k.verify(&none), None);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            id: "u".into(),
            email: "e@x.io".into(),
            iat: now - 100,
            exp: now - 1,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(k.verify(&expired), None);
    }

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_session_cookie() {
        let cookie = session_cookie("abc.def.ghi", Duration::from_secs(60));
        let cookie = cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            token_from_parts(&parts(&[("cookie", &format!("theme=dark; {cookie}"))])),
            Some("abc.def.ghi".into())
        );
        assert_eq!(
            token_from_parts(&parts(&[("authorization", "Bearer xyz")])),
            Some("xyz".into())
        );
        assert_eq!(token_from_parts(&parts(&[("cookie", "session=%%%")])), None);
        assert_eq!(token_from_parts(&parts(&[])), None);
    }
}
