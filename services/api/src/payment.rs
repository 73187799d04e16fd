//! Payments: a charge for one order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Money, UnixMillis};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PaymentStatus {
    /// Claimed; the provider's answer is not recorded yet.
    Pending,
    Succeeded,
    Failed,
    /// Charged, then given back: the order could not be completed (cancelled or expired
    /// before the charge was recorded).
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
    ];

    /// The wire spelling, also what payments.db stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = crate::order::UnknownStatus;

    fn from_str(s: &str) -> Result<PaymentStatus, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| crate::order::UnknownStatus(s.to_string()))
    }
}

/// A payment as the API shows it — a receipt:
/// `{amount,createdAt,id,orderId,reason?,refundedAt?,status}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    /// What was (or is being) charged: the price agreed when the order was made.
    pub amount: Money,
    pub created_at: UnixMillis,
    pub id: String,
    pub order_id: String,
    /// Why it failed or was refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub refunded_at: Option<UnixMillis>,
    pub status: PaymentStatus,
}

/// The body of `POST /api/payments`: the order and a card token from the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPayment {
    /// The order to pay for: the caller's, reserved and not expired.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub order_id: String,
    /// A card token or number from the provider (sandbox: `tok_visa`, `4242 4242 4242
    /// 4242`; declined: `tok_chargeDeclined`, `4000 0000 0000 0002`).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, pattern = r"\S", example = "tok_visa")
    )]
    pub token: String,
}
