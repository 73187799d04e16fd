//! `pay` and `buy`: charging a card for an order, and `buy` as reserve-then-pay in one go.
//! Both return once the order shows complete (the payment completes it through an event,
//! a moment after the payment's answer), or say that it is catching up.

use std::time::Duration;

use serde::Serialize;
use tix_api::{Order, OrderStatus, Payment, PaymentStatus};
use tix_client::ApiClient;
use tokio::time::Instant;

use crate::args::{Card, Wait};
use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};
use crate::output;

/// How often `pay` and `buy` look at the order while it catches up with its payment.
const POLL: Duration = Duration::from_millis(100);

/// `--json` after buying: both halves, so a script can follow up on the order as well
/// as the payment. Fields in key order, as the document was first written as a sorted
/// JSON map.
#[derive(Debug, Serialize)]
struct BoughtDoc<'a> {
    order: &'a Order,
    payment: &'a Payment,
}

impl Card {
    /// What the payments API takes as a token. A card number is accepted the way people
    /// copy it (spaces, dashes) and sent as bare digits.
    fn source(&self) -> String {
        self.token
            .clone()
            .or_else(|| {
                self.card
                    .as_ref()
                    .map(|c| c.chars().filter(|c| c.is_ascii_digit()).collect())
            })
            .unwrap_or_default()
    }
}

pub async fn pay(ctx: &Ctx, order_id: &str, card: &Card, wait: &Wait) -> Outcome {
    let client = ctx.signed_in()?;
    let payment = client
        .pay(order_id, &card.source())
        .await
        .map_err(|e| Failure::paying(e, order_id))?;
    let order = settle(&client, order_id, &payment, wait).await?;
    ctx.print(&payment, || match &order {
        Some(o) if o.status == OrderStatus::Complete => format!(
            "Paid order {} (payment {}): {}.",
            payment.order_id,
            payment.id,
            output::expiry(o)
        ),
        _ => format!("Paid order {} (payment {}).", payment.order_id, payment.id),
    });
    Ok(())
}

pub async fn buy(ctx: &Ctx, ticket_id: &str, card: &Card, wait: &Wait) -> Outcome {
    let client = ctx.signed_in()?;
    let order = client.create_order(ticket_id).await?;
    let payment = client
        .pay(&order.id, &card.source())
        .await
        .map_err(|e| Failure::paying(e, &order.id))?;
    let order = settle(&client, &order.id, &payment, wait)
        .await?
        .unwrap_or(order);
    let doc = BoughtDoc {
        order: &order,
        payment: &payment,
    };
    ctx.print(&doc, || {
        format!(
            "Bought {} for {} — order {}, payment {}.",
            order.ticket.title,
            order.ticket.price.display(),
            order.id,
            payment.id
        )
    });
    Ok(())
}

/// The payment was accepted; the order is completed by an event a moment later. Waits
/// (up to `wait`) until the order shows it, so `tix buy X && tix orders show O` never shows
/// `created`. Returns the order as last seen (`None` if it could not be read). If the wait
/// runs out, says on stderr that the payment is confirmed and the order is catching up;
/// if the order was cancelled first (it expired, or was cancelled elsewhere), the payment
/// is refunded and that is a failure.
async fn settle(
    client: &ApiClient,
    order_id: &str,
    payment: &Payment,
    wait: &Wait,
) -> Result<Option<Order>, Failure> {
    if wait.seconds == 0 {
        return Ok(None);
    }
    let deadline = Instant::now() + Duration::from_secs(wait.seconds);
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // An answer slower than the wait counts as no answer (the client's own timeout
        // is much longer).
        if let Ok(Ok(o)) = tokio::time::timeout(left, client.order(order_id)).await {
            match o.status {
                OrderStatus::Complete => return Ok(Some(o)),
                OrderStatus::Cancelled => {
                    return Err(Failure::PaidTooLate {
                        order: o.id,
                        payment: payment.id.clone(),
                    });
                }
                OrderStatus::Created | OrderStatus::AwaitingPayment => last = Some(o),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(POLL.min(left)).await;
    }
    let shows = last
        .as_ref()
        .map_or("cannot be read right now".to_string(), |o| {
            format!("still shows {}", o.status)
        });
    let paid = if payment.status == PaymentStatus::Pending {
        format!(
            "payment {} is still being processed (see `tix payments show {}`)",
            payment.id, payment.id
        )
    } else {
        format!("payment {} is confirmed", payment.id)
    };
    eprintln!(
        "note: {paid}; order {order_id} {shows} and is catching up: it shows complete in a moment (tix orders show {order_id})"
    );
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_is_sent_as_digits_and_a_token_as_is() {
        let card = |token: Option<&str>, number: Option<&str>| Card {
            token: token.map(Into::into),
            card: number.map(Into::into),
        };
        assert_eq!(
            card(None, Some("4242 4242-4242 4242")).source(),
            "4242424242424242"
        );
        assert_eq!(card(Some("tok_visa"), None).source(), "tok_visa");
    }
}
