//! `pay` and `buy`: charging a card for an order, and `buy` as reserve-then-pay in one go.
//! Both return once the order shows complete (the payment completes it through an event,
//! a moment after the payment's answer), or say that it is catching up.

use std::io::{BufRead, IsTerminal};
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

/// Why a card number is never an argument, and what to do instead; the number itself is
/// never repeated back.
pub const CARD_IN_ARGV: &str = "card numbers are not taken as arguments: they would stay in your shell history and be visible to anyone running `ps`\nhint: leave the number out and `tix pay` / `tix buy` ask for it (hidden), or pipe it in (`tix pay ORDER < card.txt`); sandbox tokens may stay flags (--token tok_visa)";

/// What the payments API takes as a token: `--token` as given, or a card number read
/// from a masked prompt (a terminal) or one line of standard input (a script), sent as
/// bare digits however it was typed (spaces, dashes).
fn source(card: &Card) -> Result<String, Failure> {
    if let Some(token) = &card.token {
        if is_card_number(token) {
            return Err(Failure::Usage(CARD_IN_ARGV.into()));
        }
        return Ok(token.clone());
    }
    let typed = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Card number (hidden): ").map_err(Failure::local)?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Failure::local)?;
        line
    };
    let typed = typed.trim();
    if typed.is_empty() {
        return Err(Failure::Usage(
            "no card number: type it at the prompt, pipe one line into standard input, or give a sandbox token with --token tok_visa".into(),
        ));
    }
    if !is_card_number(typed) {
        return Err(Failure::Usage(
            "that is not a card number: 12 to 19 digits (spaces and dashes are fine)".into(),
        ));
    }
    Ok(typed.chars().filter(char::is_ascii_digit).collect())
}

/// 12 to 19 digits, grouped by spaces or dashes as people copy them.
pub(crate) fn is_card_number(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    (12..=19).contains(&digits)
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}

pub async fn pay(ctx: &Ctx, order_id: &str, card: &Card, wait: &Wait) -> Outcome {
    let client = ctx.signed_in()?;
    let token = source(card)?;
    let payment = match ctx.busy("Paying", client.pay(order_id, &token)).await {
        Ok(p) => p,
        Err(e) => return Err(refused(ctx, &client, e, order_id, wait).await),
    };
    let order = completed(ctx, &client, order_id, &payment, wait).await?;
    ctx.print(&payment, || match &order {
        Some(o) if o.status == OrderStatus::Complete => format!(
            "Paid order {} (payment {}): {}.",
            payment.order_id,
            payment.id,
            output::expiry(o)
        ),
        _ => format!("Paid order {} (payment {}).", payment.order_id, payment.id),
    })
}

pub async fn buy(ctx: &Ctx, ticket_id: &str, card: &Card, wait: &Wait) -> Outcome {
    let client = ctx.signed_in()?;
    // Before reserving: a missing card must not leave a reservation behind.
    let token = source(card)?;
    let order = ctx
        .busy("Reserving", client.create_order(ticket_id))
        .await?;
    let payment = match ctx.busy("Paying", client.pay(&order.id, &token)).await {
        Ok(p) => p,
        Err(e) => return Err(refused(ctx, &client, e, &order.id, wait).await),
    };
    let order = completed(ctx, &client, &order.id, &payment, wait)
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
    })
}

/// A payment refused. After a decline the order is cancelled by an event a moment later,
/// and until then the ticket stays reserved: an immediate `tix orders create` would be
/// told "Ticket is already reserved". So this waits (up to `wait`) until the order shows
/// cancelled, and the message says whether the ticket can be bought again now.
async fn refused(
    ctx: &Ctx,
    client: &ApiClient,
    e: tix_client::ClientError,
    order_id: &str,
    wait: &Wait,
) -> Failure {
    let mut failure = Failure::paying(e, order_id);
    if let Failure::Declined { released, .. } = &mut failure {
        *released = ctx
            .busy("Releasing the ticket", cancelled(client, order_id, wait))
            .await;
    }
    failure
}

/// Whether the order shows cancelled within the wait.
async fn cancelled(client: &ApiClient, order_id: &str, wait: &Wait) -> bool {
    let deadline = Instant::now() + Duration::from_secs(wait.seconds);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(o)) = tokio::time::timeout(left, client.order(order_id)).await
            && o.status == OrderStatus::Cancelled
        {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(POLL.min(left)).await;
    }
}

/// [`settle`] under a spinner, then its note on stderr (after the spinner is gone, so
/// the two do not draw over each other).
async fn completed(
    ctx: &Ctx,
    client: &ApiClient,
    order_id: &str,
    payment: &Payment,
    wait: &Wait,
) -> Result<Option<Order>, Failure> {
    let (order, note) = ctx
        .busy(
            "Waiting for the order to complete",
            settle(client, order_id, payment, wait),
        )
        .await?;
    if let Some(note) = note {
        eprintln!("note: {}", crate::ctx::printable_lines(&note));
    }
    Ok(order)
}

/// The payment was accepted; the order is completed by an event a moment later. Waits
/// (up to `wait`) until the order shows it, so `tix buy X && tix orders show O` never shows
/// `created`. Returns the order as last seen (`None` if it could not be read). If the wait
/// runs out, a note to say that the payment is confirmed and the order is catching up;
/// if the order was cancelled first (it expired, or was cancelled elsewhere), the payment
/// is refunded and that is a failure.
async fn settle(
    client: &ApiClient,
    order_id: &str,
    payment: &Payment,
    wait: &Wait,
) -> Result<(Option<Order>, Option<String>), Failure> {
    if wait.seconds == 0 {
        return Ok((None, None));
    }
    let deadline = Instant::now() + Duration::from_secs(wait.seconds);
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // An answer slower than the wait counts as no answer (the client's own timeout
        // is much longer).
        if let Ok(Ok(o)) = tokio::time::timeout(left, client.order(order_id)).await {
            match o.status {
                OrderStatus::Complete => return Ok((Some(o), None)),
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
    let note = format!(
        "{paid}; order {order_id} {shows} and is catching up: it shows complete in a moment (tix orders show {order_id})"
    );
    Ok((last, Some(note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_told_from_tokens() {
        assert!(is_card_number("4242 4242-4242 4242"));
        assert!(is_card_number("4000000000000002"));
        assert!(!is_card_number("tok_visa"));
        assert!(!is_card_number("12345"));
        assert!(!is_card_number("4242 4242 4242 4242 x"));
    }

    #[test]
    fn a_card_number_given_as_a_token_is_refused_without_echoing_it() {
        let refused = source(&Card {
            token: Some("4242 4242 4242 4242".into()),
        });
        let Err(Failure::Usage(why)) = refused else {
            panic!("{refused:?}")
        };
        assert!(!why.contains("4242"), "{why}");
        assert_eq!(
            source(&Card {
                token: Some("tok_visa".into())
            })
            .unwrap(),
            "tok_visa"
        );
    }
}
