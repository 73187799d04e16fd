//! `pay` and `buy`: charging a card for an order, and `buy` as reserve-then-pay in one go.

use serde::Serialize;
use tix_api::{Order, Payment};

use crate::args::Card;
use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};

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

pub async fn pay(ctx: &Ctx, order_id: &str, card: &Card) -> Outcome {
    let payment = ctx
        .signed_in()?
        .pay(order_id, &card.source())
        .await
        .map_err(|e| Failure::paying(e, order_id))?;
    ctx.print(&payment, || {
        format!("Paid order {} (payment {}).", payment.order_id, payment.id)
    });
    Ok(())
}

pub async fn buy(ctx: &Ctx, ticket_id: &str, card: &Card) -> Outcome {
    let client = ctx.signed_in()?;
    let order = client.create_order(ticket_id).await?;
    let payment = client
        .pay(&order.id, &card.source())
        .await
        .map_err(|e| Failure::paying(e, &order.id))?;
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
