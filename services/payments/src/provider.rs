//! Card processing behind one trait, so the service never knows whose money machine it is
//! talking to: [`Sandbox`] for development and tests, [`Stripe`] for real charges.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// One charge to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub amount_cents: i64,
    /// ISO code in lower case, e.g. `usd`.
    pub currency: String,
    /// A card token (`tok_visa`) or, for the sandbox, a test card number.
    pub source: String,
    /// The order id: a retried charge for the same order is never made twice.
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

/// Why a charge was not made. Each kind leads to a different answer to the buyer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeError {
    /// The card was refused; the message is the provider's, fit for the buyer.
    #[error("declined: {0}")]
    Declined(String),
    /// The request or card is not usable (unknown token, bad number).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The provider could not be reached or answered something unexpected.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
}

/// Something that can take money from a card.
pub trait PaymentProvider: Send + Sync {
    fn charge<'a>(
        &'a self,
        req: &'a ChargeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Charge, ChargeError>> + Send + 'a>>;

    /// Gives a charge back. `Declined`/`Invalid` mean the provider will never do it (the
    /// charge is unknown, or refunded some other way); `Unavailable` is worth retrying
    /// with the same key.
    fn refund<'a>(
        &'a self,
        req: &'a RefundRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Refund, ChargeError>> + Send + 'a>>;
}

/// A built-in provider that answers like Stripe's test mode, without a network.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox;

impl Sandbox {
    pub const DECLINED: &str = "Your card was declined";

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
}

impl PaymentProvider for Sandbox {
    fn charge<'a>(
        &'a self,
        req: &'a ChargeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Charge, ChargeError>> + Send + 'a>> {
        Box::pin(std::future::ready(Self::decide(&req.source)))
    }

    fn refund<'a>(
        &'a self,
        req: &'a RefundRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Refund, ChargeError>> + Send + 'a>> {
        // Every sandbox charge can be refunded; the id follows from the key, so asking
        // twice gives the same refund, as Stripe's idempotency does.
        let r = if req.charge_id.starts_with("ch_") {
            Ok(Refund {
                id: format!("re_{}", req.idempotency_key),
            })
        } else {
            Err(ChargeError::Invalid(format!(
                "no such charge: {}",
                req.charge_id
            )))
        };
        Box::pin(std::future::ready(r))
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
struct StripeCharge {
    id: Option<String>,
}

#[derive(Deserialize)]
struct StripeErrorBody {
    error: Option<StripeError>,
}

#[derive(Deserialize)]
struct StripeError {
    message: Option<String>,
}

impl Stripe {
    pub fn new(base_url: &str, secret_key: &str) -> anyhow::Result<Stripe> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Long enough for a slow card network; the charge runs detached from the
            // request, so a buyer who gives up does not leave it half recorded.
            .timeout(Duration::from_secs(30))
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
        match status {
            200..=299 => serde_json::from_slice::<StripeCharge>(&body)
                .ok()
                .and_then(|r| r.id)
                .map(|id| Refund { id })
                .ok_or_else(|| {
                    ChargeError::Unavailable(format!(
                        "Stripe answered {status} without a refund id"
                    ))
                }),
            400..=499 => Err(ChargeError::Invalid(
                stripe_message(&body).unwrap_or_else(|| format!("Stripe answered {status}")),
            )),
            _ => Err(ChargeError::Unavailable(format!(
                "Stripe answered {status}: {}",
                stripe_message(&body).unwrap_or_default()
            ))),
        }
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
            .map_err(|e| ChargeError::Unavailable(format!("calling Stripe: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ChargeError::Unavailable(format!("reading Stripe's answer: {e}")))?;
        Ok((status, body.to_vec()))
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
        let message = || stripe_message(&body);
        match status {
            200..=299 => serde_json::from_slice::<StripeCharge>(&body)
                .ok()
                .and_then(|c| c.id)
                .map(|id| Charge { id })
                .ok_or_else(|| {
                    ChargeError::Unavailable(format!(
                        "Stripe answered {status} without a charge id"
                    ))
                }),
            402 => Err(ChargeError::Declined(
                message().unwrap_or_else(|| Sandbox::DECLINED.into()),
            )),
            400 => Err(ChargeError::Invalid(
                message().unwrap_or_else(|| "Invalid card".into()),
            )),
            _ => Err(ChargeError::Unavailable(format!(
                "Stripe answered {status}: {}",
                message().unwrap_or_default()
            ))),
        }
    }
}

impl PaymentProvider for Stripe {
    fn charge<'a>(
        &'a self,
        req: &'a ChargeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Charge, ChargeError>> + Send + 'a>> {
        Box::pin(self.create_charge(req))
    }

    fn refund<'a>(
        &'a self,
        req: &'a RefundRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Refund, ChargeError>> + Send + 'a>> {
        Box::pin(self.create_refund(req))
    }
}

/// The message of a Stripe error body, if it has one.
fn stripe_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<StripeErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .and_then(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(source: &str) -> Result<Charge, ChargeError> {
        let req = ChargeRequest {
            amount_cents: 2050,
            currency: "usd".into(),
            source: source.into(),
            idempotency_key: "order-1".into(),
            description: "test".into(),
        };
        futures::executor::block_on(Sandbox.charge(&req))
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
}
