//! Card processing behind one trait, so the service never knows whose money machine it is
//! talking to: [`Sandbox`] for development and tests, [`Stripe`] for real charges.
//!
//! Every request carries an idempotency key, and both providers keep the first answer to a
//! key: asking again with the same key and the same parameters gives the same answer and
//! moves no more money. That is how an attempt whose outcome was lost is settled later
//! (`reconcile.rs`): by asking again.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use rusqlite::OptionalExtension;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tix_common::db::{Db, DbError, Durability};

/// One charge to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub amount_cents: i64,
    /// ISO code in lower case, e.g. `usd`.
    pub currency: String,
    /// A card token (`tok_visa`) or, for the sandbox, a test card number.
    pub source: String,
    /// The attempt's own key (`charge-<payment id>`): asking again is answered with the
    /// first outcome, never a second charge.
    pub idempotency_key: String,
    pub description: String,
}

/// A charge to give back in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub charge_id: String,
    pub amount_cents: i64,
    /// The payment's own refund key: asking twice refunds once.
    pub idempotency_key: String,
}

/// A refund the provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
}

/// A charge the provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
}

/// Why a charge was not made, or why we do not know whether it was. Each kind leads to a
/// different answer to the buyer, and only [`ChargeError::Unknown`] leaves money unsettled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeError {
    /// The card was refused; the message is the provider's, fit for the buyer.
    #[error("declined: {0}")]
    Declined(String),
    /// The request or card is not usable (unknown token, bad number).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Nothing was charged and it is not the card's fault: the provider could not be
    /// reached, or refused the request before acting on it (rate limit, our credentials).
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// The request reached the provider but its answer did not reach us (timeout, dropped
    /// connection, a 5xx, a garbled body): the money may have moved. Settled by asking
    /// again with the same key, never by assuming.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

impl ChargeError {
    /// Whether asking again later (with the same key) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChargeError::Unreachable(_) | ChargeError::Unknown(_))
    }
}

/// A boxed provider answer.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, ChargeError>> + Send + 'a>>;

/// Something that can take money from a card.
pub trait PaymentProvider: Send + Sync {
    /// Charges a card, or answers as it did the first time this key was used.
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> Answer<'a, Charge>;

    /// Gives a charge back. `Declined`/`Invalid` mean the provider will never do it (the
    /// charge is unknown, or refunded some other way); the others are worth retrying with
    /// the same key.
    fn refund<'a>(&'a self, req: &'a RefundRequest) -> Answer<'a, Refund>;
}

/// A built-in provider that answers like Stripe's test mode, without a network. It keeps
/// a ledger of its own (`sandbox-ledger.db` beside payments.db, written in transactions
/// apart from payments' own, as a real provider's books would be), so the same key asked
/// again — even after payments crashed between charging and recording — gets the same
/// answer.
///
/// The ledger has a writer thread of its own with group commit, as a service's database
/// does: the charges of concurrent payments share one transaction, and none of them runs
/// SQLite on the request thread.
#[derive(Debug, Clone)]
pub struct Sandbox {
    ledger: Db,
}

const LEDGER: &str = "
    CREATE TABLE IF NOT EXISTS charges (
        idempotency_key TEXT PRIMARY KEY,
        params TEXT NOT NULL,
        charge_id TEXT UNIQUE,
        declined TEXT,
        invalid TEXT
    );
    CREATE TABLE IF NOT EXISTS refunds (
        idempotency_key TEXT PRIMARY KEY,
        charge_id TEXT NOT NULL UNIQUE,
        refund_id TEXT NOT NULL
    );";

/// What the ledger answers: the provider's outcome, or the ledger failing (which leaves the
/// outcome unknown: asked again, it answers).
type Booked<T> = Result<Result<T, ChargeError>, DbError>;

impl Sandbox {
    pub const DECLINED: &str = "Your card was declined";

    /// The sandbox with its ledger at `path` (created 0600 if missing).
    pub fn open(path: &Path) -> anyhow::Result<Sandbox> {
        use anyhow::Context;
        // Synced at checkpoints only: a sandbox may lose its last moments to a power cut,
        // never to a killed payments process (the OS has the writes); payments' own commits
        // stay durable, and the purchase benchmark measures them, not a stand-in's books.
        // Ledgers from before kept no schema version: their tables exist already.
        let ledger = Db::open(path, Durability::Normal, &[LEDGER])
            .with_context(|| format!("opening the sandbox ledger {}", path.display()))?;
        Ok(Sandbox { ledger })
    }

    fn decide(source: &str) -> Result<Charge, ChargeError> {
        // People type card numbers grouped; the sandbox should not care.
        let source: String = source
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        match source.as_str() {
            "tok_visa" | "4242424242424242" => Ok(Charge {
                id: format!("ch_sandbox_{}", uuid::Uuid::now_v7().simple()),
            }),
            "tok_chargeDeclined" | "4000000000000002" => {
                Err(ChargeError::Declined(Self::DECLINED.into()))
            }
            _ => Err(ChargeError::Invalid("Invalid card".into())),
        }
    }

    async fn charge_in_ledger(&self, req: &ChargeRequest) -> Result<Charge, ChargeError> {
        let params = format!(
            "{}|{}|{}|{}",
            req.amount_cents, req.currency, req.source, req.description
        );
        let key = req.idempotency_key.clone();
        // Decided first and written only if the key is new: a first charge, the usual
        // case, is one statement.
        let outcome = Self::decide(&req.source);
        let booked = self
            .ledger
            .write(move |c| -> Booked<Charge> {
                let (charge_id, declined, invalid) = match &outcome {
                    Ok(ch) => (Some(ch.id.as_str()), None, None),
                    Err(ChargeError::Declined(d)) => (None, Some(d.as_str()), None),
                    Err(_) => (None, None, Some("Invalid card")),
                };
                let fresh = c
                    .prepare_cached(
                        "INSERT INTO charges (idempotency_key, params, charge_id, declined, invalid)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (idempotency_key) DO NOTHING",
                    )?
                    .execute((&key, &params, charge_id, declined, invalid))?
                    == 1;
                if fresh {
                    return Ok(outcome.clone());
                }
                type Stored = (String, Option<String>, Option<String>, Option<String>);
                let (was, charge_id, declined, invalid): Stored = c
                    .prepare_cached(
                        "SELECT params, charge_id, declined, invalid FROM charges WHERE idempotency_key = ?1",
                    )?
                    .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                if was != params {
                    // Stripe's idempotency_error: a bug of ours, never a reason to give up on
                    // money that may have moved.
                    return Ok(Err(ChargeError::Unknown(format!(
                        "key {key} was first used with other parameters"
                    ))));
                }
                Ok(match (charge_id, declined, invalid) {
                    (Some(id), _, _) => Ok(Charge { id }),
                    (_, Some(d), _) => Err(ChargeError::Declined(d)),
                    (_, _, i) => Err(ChargeError::Invalid(i.unwrap_or_default())),
                })
            })
            .await;
        settled(booked)
    }

    async fn refund_in_ledger(&self, req: &RefundRequest) -> Result<Refund, ChargeError> {
        let (key, charge) = (req.idempotency_key.clone(), req.charge_id.clone());
        let booked = self
            .ledger
            .write(move |c| -> Booked<Refund> {
                let stored: Option<(String, String)> = c
                    .prepare_cached(
                        "SELECT charge_id, refund_id FROM refunds WHERE idempotency_key = ?1",
                    )?
                    .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((refunded, id)) = stored {
                    return Ok(if refunded == charge {
                        Ok(Refund { id })
                    } else {
                        Err(ChargeError::Unknown(format!(
                            "key {key} was first used for charge {refunded}"
                        )))
                    });
                }
                let charged = c
                    .prepare_cached("SELECT 1 FROM charges WHERE charge_id = ?1")?
                    .exists([&charge])?;
                if !charged {
                    return Ok(Err(ChargeError::Invalid(format!(
                        "No such charge: {charge}"
                    ))));
                }
                let id = format!("re_sandbox_{}", uuid::Uuid::now_v7().simple());
                let n = c
                    .prepare_cached(
                        "INSERT INTO refunds (idempotency_key, charge_id, refund_id) VALUES (?1, ?2, ?3)
                         ON CONFLICT (charge_id) DO NOTHING",
                    )?
                    .execute((&key, &charge, &id))?;
                Ok(if n == 0 {
                    Err(ChargeError::Invalid(format!(
                        "Charge {charge} has already been refunded"
                    )))
                } else {
                    Ok(Refund { id })
                })
            })
            .await;
        settled(booked)
    }
}

/// The ledger's answer, or, when the ledger failed, an outcome to settle by asking again.
fn settled<T>(booked: Booked<T>) -> Result<T, ChargeError> {
    booked.unwrap_or_else(|e| Err(ChargeError::Unknown(format!("sandbox ledger: {e}"))))
}

impl PaymentProvider for Sandbox {
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> Answer<'a, Charge> {
        Box::pin(self.charge_in_ledger(req))
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> Answer<'a, Refund> {
        Box::pin(self.refund_in_ledger(req))
    }
}
/// Stripe's Charges API over HTTPS.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base_url: String,
    secret_key: SecretString,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct StripeObject {
    id: Option<String>,
}

#[derive(Deserialize)]
struct StripeErrorBody {
    error: Option<StripeError>,
}

#[derive(Deserialize)]
struct StripeError {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Stripe {
    /// A client whose every call gives up after `timeout` (an unknown outcome, settled
    /// later by asking again with the same key).
    pub fn new(base_url: &str, secret_key: &str, timeout: Duration) -> anyhow::Result<Stripe> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()?;
        Ok(Stripe {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            secret_key: SecretString::from(secret_key),
        })
    }

    /// `POST /v1/refunds` for the whole charge, with the payment's refund key.
    async fn create_refund(&self, req: &RefundRequest) -> Result<Refund, ChargeError> {
        let amount = req.amount_cents.to_string();
        let form = [
            ("charge", req.charge_id.as_str()),
            ("amount", amount.as_str()),
        ];
        let (status, body) = self
            .post("/v1/refunds", &req.idempotency_key, &form)
            .await?;
        classify(status, &body, "refund").map(|id| Refund { id })
    }

    async fn create_charge(&self, req: &ChargeRequest) -> Result<Charge, ChargeError> {
        let amount = req.amount_cents.to_string();
        let form = [
            ("amount", amount.as_str()),
            ("currency", req.currency.as_str()),
            ("source", req.source.as_str()),
            ("description", req.description.as_str()),
        ];
        let (status, body) = self
            .post("/v1/charges", &req.idempotency_key, &form)
            .await?;
        classify(status, &body, "charge").map(|id| Charge { id })
    }

    /// One form POST to Stripe with an idempotency key; the status and the raw body.
    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>), ChargeError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.secret_key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| {
                // Only a connection never made is sure to have charged nothing.
                if e.is_connect() {
                    ChargeError::Unreachable(format!("connecting to Stripe: {e}"))
                } else {
                    ChargeError::Unknown(format!("calling Stripe: {e}"))
                }
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ChargeError::Unknown(format!("reading Stripe's answer: {e}")))?;
        Ok((status, body.to_vec()))
    }
}

/// What an answer from Stripe means: the object's id, or which kind of failure.
fn classify(status: u16, body: &[u8], what: &str) -> Result<String, ChargeError> {
    let error = serde_json::from_slice::<StripeErrorBody>(body)
        .ok()
        .and_then(|b| b.error);
    let message = error.as_ref().and_then(|e| e.message.clone());
    let kind = error.as_ref().and_then(|e| e.kind.clone());
    let said = || {
        format!(
            "Stripe answered {status}: {}",
            message.clone().unwrap_or_default()
        )
    };
    match status {
        200..=299 => serde_json::from_slice::<StripeObject>(body)
            .ok()
            .and_then(|o| o.id)
            .ok_or_else(|| {
                ChargeError::Unknown(format!("Stripe answered {status} without a {what} id"))
            }),
        402 => Err(ChargeError::Declined(
            message.unwrap_or_else(|| Sandbox::DECLINED.into()),
        )),
        // Another request with this key is under way, or the key was first used with other
        // parameters: either way the first request decides, and it is not known here.
        409 => Err(ChargeError::Unknown(said())),
        400 if kind.as_deref() == Some("idempotency_error") => Err(ChargeError::Unknown(said())),
        // Refused before acting: our key is wrong or we are going too fast.
        401 | 403 | 429 => Err(ChargeError::Unreachable(said())),
        400..=499 => Err(ChargeError::Invalid(
            message.unwrap_or_else(|| format!("Stripe refused the {what}")),
        )),
        _ => Err(ChargeError::Unknown(said())),
    }
}

impl PaymentProvider for Stripe {
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> Answer<'a, Charge> {
        Box::pin(self.create_charge(req))
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> Answer<'a, Refund> {
        Box::pin(self.create_refund(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, source: &str) -> ChargeRequest {
        ChargeRequest {
            amount_cents: 2050,
            currency: "usd".into(),
            source: source.into(),
            idempotency_key: key.into(),
            description: "test".into(),
        }
    }

    fn charge(source: &str) -> Result<Charge, ChargeError> {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::open(&dir.path().join("ledger.db")).unwrap();
        let key = uuid::Uuid::now_v7().to_string();
        futures::executor::block_on(sandbox.charge(&request(&key, source)))
    }

    #[test]
    fn stripe_test_successes_are_charged_with_a_fresh_id() {
        for source in [
            "tok_visa",
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
        ] {
            let c = charge(source).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert!(c.id.starts_with("ch_sandbox_"), "{}", c.id);
        }
        assert_ne!(charge("tok_visa").unwrap(), charge("tok_visa").unwrap());
    }

    #[test]
    fn stripe_test_declines_are_declined() {
        for source in ["tok_chargeDeclined", "4000 0000 0000 0002"] {
            assert_eq!(
                charge(source),
                Err(ChargeError::Declined("Your card was declined".into())),
                "{source}"
            );
        }
    }

    #[test]
    fn anything_else_is_an_invalid_card() {
        for source in ["", "tok_mastercard_unknown", "4242", "4111111111111111"] {
            assert_eq!(
                charge(source),
                Err(ChargeError::Invalid("Invalid card".into())),
                "{source:?}"
            );
        }
    }

    #[test]
    fn the_sandbox_ledger_answers_a_key_again_with_its_first_outcome_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        use futures::executor::block_on as run;
        let first = run(Sandbox::open(&path)
            .unwrap()
            .charge(&request("k1", "tok_visa")))
        .unwrap();
        let declined = run(Sandbox::open(&path)
            .unwrap()
            .charge(&request("k2", "tok_chargeDeclined")));
        // A new process with the same ledger, as after payments was killed.
        let sandbox = Sandbox::open(&path).unwrap();
        assert_eq!(
            run(sandbox.charge(&request("k1", "tok_visa"))),
            Ok(first.clone())
        );
        assert_eq!(
            run(sandbox.charge(&request("k2", "tok_chargeDeclined"))),
            declined
        );
        // The same key with other parameters is never taken as a new charge or a refusal.
        assert!(matches!(
            run(sandbox.charge(&request("k1", "tok_chargeDeclined"))),
            Err(ChargeError::Unknown(_))
        ));
        let refund = |key: &str, charge: &str| {
            run(sandbox.refund(&RefundRequest {
                charge_id: charge.into(),
                amount_cents: 2050,
                idempotency_key: key.into(),
            }))
        };
        let r = refund("r1", &first.id).unwrap();
        assert_eq!(refund("r1", &first.id), Ok(r));
        assert!(
            matches!(refund("r2", &first.id), Err(ChargeError::Invalid(m)) if m.contains("already been refunded"))
        );
        assert!(
            matches!(refund("r3", "ch_nobody"), Err(ChargeError::Invalid(m)) if m.contains("No such charge"))
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Ledgers written before it had a writer thread kept no schema version: opened now,
    /// they keep their charges and answer their keys as before.
    #[test]
    fn a_ledger_from_before_keeps_its_charges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(LEDGER).unwrap();
        c.execute(
            "INSERT INTO charges (idempotency_key, params, charge_id) VALUES ('k1', ?1, 'ch_old')",
            ["2050|usd|tok_visa|test"],
        )
        .unwrap();
        drop(c);
        let sandbox = Sandbox::open(&path).unwrap();
        assert_eq!(
            futures::executor::block_on(sandbox.charge(&request("k1", "tok_visa"))),
            Ok(Charge {
                id: "ch_old".into()
            })
        );
    }

    /// Charges made at once (as the ledger's writer batches them into one transaction):
    /// each is booked under its own key, and asking each key again gives that answer back.
    #[tokio::test]
    async fn concurrent_charges_are_each_booked_once() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::open(&dir.path().join("ledger.db")).unwrap();
        let requests: Vec<ChargeRequest> = (0..64)
            .map(|i| {
                let source = if i % 4 == 3 {
                    "tok_chargeDeclined"
                } else {
                    "tok_visa"
                };
                request(&format!("k{i}"), source)
            })
            .collect();
        let first = futures::future::join_all(requests.iter().map(|r| sandbox.charge(r))).await;
        let again = futures::future::join_all(requests.iter().map(|r| sandbox.charge(r))).await;
        assert_eq!(first, again);
        let charged: std::collections::HashSet<_> = first
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|c| &c.id))
            .collect();
        assert_eq!(charged.len(), 48, "{first:?}");
        assert_eq!(
            first
                .iter()
                .filter(|r| matches!(r, Err(ChargeError::Declined(_))))
                .count(),
            16
        );
    }

    #[test]
    fn stripe_answers_are_classified_by_what_they_say_about_the_money() {
        let err = |kind: &str, message: &str| {
            format!(r#"{{"error":{{"type":"{kind}","message":"{message}"}}}}"#).into_bytes()
        };
        assert_eq!(
            classify(200, br#"{"id":"ch_1"}"#, "charge"),
            Ok("ch_1".into())
        );
        assert!(matches!(
            classify(200, b"<html>", "charge"),
            Err(ChargeError::Unknown(_))
        ));
        assert_eq!(
            classify(402, &err("card_error", "Your card was declined."), "charge"),
            Err(ChargeError::Declined("Your card was declined.".into()))
        );
        assert_eq!(
            classify(
                400,
                &err("invalid_request_error", "No such token: 'x'"),
                "charge"
            ),
            Err(ChargeError::Invalid("No such token: 'x'".into()))
        );
        assert!(matches!(
            classify(400, &err("idempotency_error", "Keys …"), "charge"),
            Err(ChargeError::Unknown(_))
        ));
        assert!(matches!(
            classify(409, &err("idempotency_error", "in progress"), "charge"),
            Err(ChargeError::Unknown(_))
        ));
        for status in [500, 502, 503, 504] {
            assert!(
                matches!(
                    classify(status, b"", "charge"),
                    Err(ChargeError::Unknown(_))
                ),
                "{status}"
            );
        }
        for status in [401, 403, 429] {
            assert!(
                matches!(
                    classify(status, b"", "charge"),
                    Err(ChargeError::Unreachable(_))
                ),
                "{status}"
            );
        }
    }
}
