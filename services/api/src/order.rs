//! Orders: a buyer's hold on one ticket, then its purchase.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Money, UnixMillis};

/// Where an order stands. The wire spellings are the API's (and the course app's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrderStatus {
    /// Reserved, waiting for payment until it expires.
    #[serde(rename = "created")]
    Created,
    /// Cancelled by the buyer, by expiry or by a declined card; the ticket is free again.
    #[serde(rename = "cancelled")]
    Cancelled,
    #[serde(rename = "awaiting:payment")]
    AwaitingPayment,
    /// Paid.
    #[serde(rename = "complete")]
    Complete,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Created,
        OrderStatus::Cancelled,
        OrderStatus::AwaitingPayment,
        OrderStatus::Complete,
    ];

    /// The wire spelling, also what the databases store.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::AwaitingPayment => "awaiting:payment",
            OrderStatus::Complete => "complete",
        }
    }

    /// Whether the order still holds its ticket (every status but cancelled).
    pub fn is_active(self) -> bool {
        self != OrderStatus::Cancelled
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status spelling that is not one of [`OrderStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<OrderStatus, UnknownStatus> {
        OrderStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// The ticket inside an order: `{id,price,title,version}`. The price is the one agreed
/// at reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderTicket {
    pub id: String,
    pub price: Money,
    pub title: String,
    pub version: i64,
}

/// An order as the API shows it: `{expiresAt,id,paidAt,status,ticket,userId,version}`.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    /// When an unpaid order is cancelled.
    pub expires_at: UnixMillis,
    pub id: String,
    /// When orders recorded the payment that completed it; `null` until then.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub paid_at: Option<UnixMillis>,
    pub status: OrderStatus,
    /// The ticket as it was reserved: its price is the one agreed, charged and shown,
    /// whatever the seller does to the ticket afterwards.
    pub ticket: OrderTicket,
    /// The buyer.
    pub user_id: String,
    pub version: i64,
}

/// One ticket the caller sold: a completed order of someone else's for the caller's
/// ticket. The buyer is not named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sale {
    /// What the buyer paid: the price agreed at reservation.
    pub amount: Money,
    pub order_id: String,
    pub paid_at: UnixMillis,
    pub ticket: OrderTicket,
}

/// `GET /api/orders/sales`: one page of the caller's sales, newest first, and the totals
/// over all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sales {
    /// How many tickets the caller has sold in all.
    pub count: u64,
    pub sales: Vec<Sale>,
    /// The sum of every sale's amount (not only this page's).
    pub total: Money,
}

/// The body of `POST /api/orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewOrder {
    /// The ticket to reserve.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub ticket_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_write() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("paid".parse::<OrderStatus>().is_err());
    }
}
