//! Tickets for sale.

use serde::{Deserialize, Serialize};

use crate::Money;

/// A ticket as the API shows it: `{id,orderId,price,title,userId,version}`.
// Fields in key order: the body was first written as a sorted JSON map, and the bytes
// stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: String,
    /// The order holding it, while it is reserved or sold.
    pub order_id: Option<String>,
    pub price: Money,
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
pub struct TicketDraft {
    pub title: String,
    pub price: Money,
}
