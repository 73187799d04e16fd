//! Who is calling: JWTs signed with the JWT secret (HS256 only), accepted from an
//! `Authorization: Bearer` header or from the `session` cookie the course's web client sends
//! (base64 of `{"jwt":"…"}`).
//!
//! Every token belongs to a session (`jti`). Signing out revokes the session: auth records
//! it and announces `session:revoked`, and every service that checks tokens keeps the
//! revoked sessions in memory ([`Revocations`]), so the check is one hash lookup.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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
    /// The session the token belongs to; renewed tokens keep it. Empty in tokens made
    /// before sessions could be revoked (they expire on their own).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// The user's public display name. Empty in tokens made before display names
    /// existed: [`Claims::display_name`] falls back to the email's local part.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// When the session began (unix seconds): its sign-in, kept by every renewal, so that a
    /// session ends `--session-max-age` after it however often it is renewed. 0 in tokens
    /// made before sessions had an end (their `iat` stands in for it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub auth_time: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Claims {
    /// What other users see of this one: the chosen name, else the email's local part
    /// (never the whole address).
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            default_display_name(&self.email)
        } else {
            &self.name
        }
    }
}

/// The display name of an account that chose none: the email's local part.
pub fn default_display_name(email: &str) -> &str {
    email.split('@').next().unwrap_or_default()
}

/// Sessions that were signed out, each until its last token would have expired anyway.
#[derive(Debug, Default)]
pub struct Revocations {
    until: RwLock<HashMap<String, i64>>,
}

impl Revocations {
    pub fn revoke(&self, jti: &str, until: i64) {
        let mut all = self.until.write().unwrap_or_else(|e| e.into_inner());
        let at = all.entry(jti.to_string()).or_insert(until);
        *at = (*at).max(until);
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        !jti.is_empty()
            && self
                .until
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(jti)
    }

    /// Forgets revocations whose tokens have all expired (unix seconds).
    pub fn prune(&self, now: i64) {
        self.until
            .write()
            .unwrap_or_else(|e| e.into_inner())
            // A token is valid through its `exp` second: so is its refusal.
            .retain(|_, until| *until >= now);
    }

    pub fn len(&self) -> usize {
        self.until.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Signing and checking keys, built once from the secret, and the revoked sessions.
/// Cheap to clone: every clone shares one set (axum clones it out of the state for each
/// request, and a deep copy — keys, the validation's claim sets — was 11 % of a ticket
/// POST's instructions: docs/benchmarks.md).
#[derive(Clone)]
pub struct JwtKeys {
    shared: Arc<Keys>,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// The longest a session lasts from its sign-in, renewals included (auth's
    /// `--session-max-age`); `None` where tokens are only checked.
    max_age: Option<Duration>,
    revoked: Arc<Revocations>,
    /// Tokens whose signature was checked, with their claims: a client sends the same
    /// token with every request, and checking its HMAC again each time was a sixth of a
    /// ticket POST's instructions (docs/benchmarks.md). Expiry and revocation are still
    /// checked on every request; the map holds at most [`VERIFIED_CACHE`] tokens.
    verified: RwLock<HashMap<String, Claims>>,
}

/// How many verified tokens a process remembers.
pub const VERIFIED_CACHE: usize = 4096;

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.shared.ttl)
            .finish_non_exhaustive()
    }
}

/// The shortest secret accepted: shorter ones are guessable offline from any token.
pub const MIN_SECRET_LEN: usize = 32;

impl JwtKeys {
    pub fn new(secret: &str, ttl: Duration) -> anyhow::Result<Self> {
        Self::with_max_age(secret, ttl, None)
    }

    /// Keys that also end every session `max_age` after its sign-in (auth's, which signs
    /// and renews): no token of it is issued past that, and it cannot be renewed then.
    pub fn with_max_age(
        secret: &str,
        ttl: Duration,
        max_age: Option<Duration>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_LEN,
            "the JWT secret must be at least {MIN_SECRET_LEN} characters (generate one with `openssl rand -hex 32`)"
        );
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat"]);
        Ok(JwtKeys {
            shared: Arc::new(Keys {
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                validation,
                ttl,
                max_age,
                revoked: Arc::new(Revocations::default()),
                verified: RwLock::default(),
            }),
        })
    }

    /// A token for this user in a new session, valid for the configured time.
    pub fn sign(&self, id: &str, email: &str) -> anyhow::Result<(String, Claims)> {
        self.sign_named(id, email, "")
    }

    /// A token for a new session of a user with a display name (empty: none chosen).
    pub fn sign_named(
        &self,
        id: &str,
        email: &str,
        name: &str,
    ) -> anyhow::Result<(String, Claims)> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.issue(id, email, name, uuid::Uuid::now_v7().to_string(), now, now)
    }

    /// A fresh token for the same session, valid for the configured time from now.
    /// `None` once the session is older than its longest life: its user signs in again.
    pub fn renew(&self, claims: &Claims) -> anyhow::Result<Option<(String, Claims)>> {
        let began = session_began(claims);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if self.session_ends(began).is_some_and(|end| now >= end) {
            return Ok(None);
        }
        let (id, email, name) = (&claims.id, &claims.email, &claims.name);
        self.issue(id, email, name, claims.jti.clone(), began, now)
            .map(Some)
    }

    /// When a session that began at `began` ends for good, if sessions end.
    fn session_ends(&self, began: i64) -> Option<i64> {
        let max_age = self.shared.max_age?;
        Some(began.saturating_add(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)))
    }

    fn issue(
        &self,
        id: &str,
        email: &str,
        name: &str,
        jti: String,
        auth_time: i64,
        iat: i64,
    ) -> anyhow::Result<(String, Claims)> {
        let mut exp = iat + self.shared.ttl.as_secs() as i64;
        if let Some(end) = self.session_ends(auth_time) {
            exp = exp.min(end);
        }
        let claims = Claims {
            id: id.to_string(),
            email: email.to_string(),
            iat,
            exp,
            jti,
            name: name.to_string(),
            auth_time,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.shared.encoding,
        )?;
        Ok((token, claims))
    }

    /// The claims of a valid, unexpired HS256 token signed with our secret whose session
    /// was not signed out; `None` otherwise (tampered, expired, revoked, `alg: none`,
    /// another algorithm, garbage).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let cached = self
            .shared
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned();
        let claims = match cached {
            // As jsonwebtoken checks it with no leeway: expired once `exp` is past.
            Some(c) if c.exp >= now => c,
            Some(_) => return None,
            None => {
                let c = jsonwebtoken::decode::<Claims>(
                    token,
                    &self.shared.decoding,
                    &self.shared.validation,
                )
                .ok()?
                .claims;
                let mut verified = self
                    .shared
                    .verified
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                if verified.len() >= VERIFIED_CACHE {
                    verified.retain(|_, c| c.exp >= now);
                    if verified.len() >= VERIFIED_CACHE {
                        verified.clear();
                    }
                }
                verified.insert(token.to_string(), c.clone());
                c
            }
        };
        (!self.shared.revoked.is_revoked(&claims.jti)).then_some(claims)
    }

    /// The sessions this process refuses.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.shared.revoked
    }

    /// Until when a session signed out now must be refused: no token of it, however
    /// recently renewed, lives longer.
    pub fn revoke_until(&self, claims: &Claims) -> i64 {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // Not capped at the session's end: a copy renewed under a longer
        // --session-max-age than today's may outlive that end by a token's life.
        claims.exp.max(now + self.shared.ttl.as_secs() as i64)
    }

    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }
}

/// When the session of these claims began: its sign-in, or for a token made before
/// sessions had an end, the token's own issue time.
fn session_began(claims: &Claims) -> i64 {
    if claims.auth_time > 0 {
        claims.auth_time
    } else {
        claims.iat
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

/// The `Set-Cookie` value carrying a token as the course's web client expects it;
/// `secure` keeps browsers from sending it over plain HTTP.
pub fn session_cookie(token: &str, ttl: Duration, secure: bool) -> HeaderValue {
    let json = serde_json::json!({ "jwt": token }).to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "session={b64}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
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

    #[test]
    fn a_remembered_token_still_expires_and_can_still_be_signed_out() {
        let k = JwtKeys::new(SECRET, Duration::from_secs(1)).unwrap();
        let (token, claims) = k.sign("u1", "u@x.io").unwrap();
        assert_eq!(k.verify(&token), Some(claims.clone()));
        assert_eq!(k.verify(&token), Some(claims.clone()), "served from memory");
        assert_eq!(k.shared.verified.read().unwrap().len(), 1);
        // A tampered copy is not the remembered token: its signature is checked.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(k.verify(&forged), None);
        // Expiry is checked on every request, remembered or not (exp is in whole seconds,
        // so a token of 1 s is past after at most 2).
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(k.verify(&token), None, "expired while remembered");
        // And signing out refuses a remembered token at once.
        let (token, claims) = k.sign("u2", "v@x.io").unwrap();
        assert!(k.verify(&token).is_some());
        k.revocations().revoke(&claims.jti, claims.exp);
        assert_eq!(k.verify(&token), None, "signed out while remembered");
    }

    #[test]
    fn the_memory_of_verified_tokens_is_bounded() {
        let k = keys();
        for i in 0..VERIFIED_CACHE + 10 {
            let (t, _) = k.sign(&format!("u{i}"), "u@x.io").unwrap();
            assert!(k.verify(&t).is_some());
        }
        assert!(k.shared.verified.read().unwrap().len() <= VERIFIED_CACHE);
    }

    #[test]
    fn a_signed_out_session_is_refused_renewed_copies_included() {
        let k = keys();
        let (first, claims) = k.sign("u1", "u@x.io").unwrap();
        let (renewed, again) = k.renew(&claims).unwrap().unwrap();
        assert_eq!(again.jti, claims.jti, "renewal keeps the session");
        let (other, _) = k.sign("u1", "u@x.io").unwrap();
        assert!(k.verify(&first).is_some() && k.verify(&renewed).is_some());
        k.revocations().revoke(&claims.jti, k.revoke_until(&claims));
        assert!(k.verify(&first).is_none());
        assert!(k.verify(&renewed).is_none());
        assert!(
            k.verify(&other).is_some(),
            "another session of the same user"
        );
        // Clones (handed to every handler) share the list.
        assert!(k.clone().verify(&renewed).is_none());
        assert!(k.revoke_until(&claims) >= claims.exp);
    }

    /// A session ends its longest life after its sign-in, however often it is renewed: each
    /// token expires by then, and renewing one after it is refused. A token from before
    /// sessions had an end counts from its own issue time.
    #[test]
    fn a_session_ends_its_longest_life_after_sign_in_renewals_included() {
        let k = JwtKeys::with_max_age(
            SECRET,
            Duration::from_secs(3600),
            Some(Duration::from_secs(3)),
        )
        .unwrap();
        let (_, claims) = k.sign("u1", "u@x.io").unwrap();
        assert_eq!(claims.auth_time, claims.iat);
        assert_eq!(
            claims.exp,
            claims.auth_time + 3,
            "capped at the session's end"
        );
        std::thread::sleep(Duration::from_millis(1100));
        let (token, renewed) = k.renew(&claims).unwrap().expect("still within its life");
        assert_eq!(
            renewed.auth_time, claims.auth_time,
            "renewal keeps when it began"
        );
        assert_eq!(renewed.exp, claims.auth_time + 3);
        assert!(k.verify(&token).is_some());
        assert!(k.revoke_until(&renewed) >= renewed.exp);
        // (Times are whole seconds: 3.1 s after the sign-in is at least its third second.)
        std::thread::sleep(Duration::from_millis(2000));
        assert!(k.renew(&renewed).unwrap().is_none(), "too old to renew");

        let old = Claims {
            auth_time: 0,
            iat: time::OffsetDateTime::now_utc().unix_timestamp() - 10,
            ..claims.clone()
        };
        assert!(k.renew(&old).unwrap().is_none(), "counted from its iat");
        // Keys without a longest life (the services that only check tokens) renew on.
        assert!(keys().renew(&old).unwrap().is_some());
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
            jti: String::new(),
            name: String::new(),
            auth_time: 0,
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
        let cookie = session_cookie("abc.def.ghi", Duration::from_secs(60), false);
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
