//! Tickets for sale.

use serde::{Deserialize, Serialize};

use crate::Money;

/// A ticket as the API shows it: `{id,orderId,price,sellerName,title,userId,version}`.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticket {
    pub id: String,
    /// The order holding it, while it is reserved or sold.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub order_id: Option<String>,
    pub price: Money,
    /// The seller's public display name, as it was when the ticket was put on sale.
    #[serde(default)]
    pub seller_name: String,
    pub title: String,
    /// The seller.
    pub user_id: String,
    /// Goes up by one with every change.
    pub version: i64,
}

impl Ticket {
    pub fn is_reserved(&self) -> bool {
        self.order_id.is_some()
    }
}

/// The body of `POST /api/tickets` and `PUT /api/tickets/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketDraft {
    /// Trimmed; 1 to 200 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = r"\S")
    )]
    pub title: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::price_input))]
    pub price: Money,
}
