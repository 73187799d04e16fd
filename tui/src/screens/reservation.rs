//! A reservation: the ticket is held for the buyer until it expires; they pay, and watch
//! the order until the server calls it complete.
//!
//! Paying is asynchronous on the server (payment succeeds, then the order is marked complete
//! by an event), so the screen polls the order each tick while it is `Confirming`.
//!
//! A decline is asynchronous too: the server cancels the order by an event a moment later,
//! and until then buying the ticket again says it is reserved. So after a decline the
//! screen polls the order until it is cancelled (at most [`RELEASE_POLLS`] ticks) and only
//! then says the ticket can be bought again (`b` does it from here).

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use tix_api::{Order, OrderStatus, Payment};
use tix_client::Kind;
use tix_client::format::moment;

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::screens::orders;
use crate::widgets::form::Field;
use crate::widgets::input::window;
use crate::widgets::{boxed, buttons, clean, countdown};

/// How many ticks (about seconds) to wait for a declined order's ticket to be released.
pub const RELEASE_POLLS: u32 = 5;

/// After a decline: whether the ticket is free to buy again yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Polling the order; this many polls so far.
    Waiting(u32),
    /// The order is cancelled: the ticket can be bought again.
    Released,
    /// Not cancelled within the wait: it will be, but buying now may be refused.
    Slow,
}

/// How a reservation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Paying,
    /// Paid; waiting for the order to be marked complete.
    Confirming,
    Complete,
    Declined(String),
    Expired,
    /// Paid, but the order was cancelled (it expired, or was cancelled elsewhere) before
    /// the payment reached it: the payment is refunded.
    Refunded,
}

/// Lives in [`Screen::Reservation`]: leaving the screen gives up on paying here (the order
/// stays open and can be paid from the orders list).
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub order: Order,
    pub card: Field,
    /// `None` while the card is being typed.
    pub outcome: Option<Outcome>,
    /// Set after a decline.
    pub release: Option<Release>,
}

impl Reservation {
    pub fn new(order: Order) -> Reservation {
        Reservation {
            order,
            card: Field::new("token", "Card or token"),
            outcome: None,
            release: None,
        }
    }
}

/// The server granted a reservation: open it over the screen the buyer came from.
pub(crate) fn on_reserved(app: &mut App, r: Result<Order, Problem>) -> Vec<Effect> {
    match r {
        Ok(order) => {
            app.last_error = None;
            let from = std::mem::replace(
                &mut app.screen,
                Screen::Reservation(Reservation::new(order)),
            );
            app.back.push(from);
        }
        Err(p) => app.problem(&p),
    }
    Vec::new()
}

pub(crate) fn on_paid(app: &mut App, r: Result<Payment, Problem>) -> Vec<Effect> {
    let Screen::Reservation(res) = &mut app.screen else {
        return Vec::new();
    };
    match r {
        Ok(_) => {
            res.outcome = Some(Outcome::Confirming);
            vec![Effect::LoadOrder(res.order.id.clone())]
        }
        // A decline ends the reservation (the server cancels the order); other errors leave
        // the card editable to try again.
        Err(p) if p.kind == Kind::Declined => {
            res.outcome = Some(Outcome::Declined(p.message));
            res.release = Some(Release::Waiting(0));
            vec![Effect::LoadOrder(res.order.id.clone())]
        }
        Err(p) => {
            res.outcome = None;
            res.card.error = p.field.as_ref().map(|_| p.message.clone());
            app.problem(&p);
            Vec::new()
        }
    }
}

pub(crate) fn on_order_now(app: &mut App, r: Result<Order, Problem>) -> Vec<Effect> {
    if let (Screen::Reservation(res), Ok(order)) = (&mut app.screen, r) {
        match order.status {
            OrderStatus::Complete => res.outcome = Some(Outcome::Complete),
            // Cancelled while the payment was on its way: orders rejects the payment and
            // payments refunds it. Waiting longer would never see it complete.
            OrderStatus::Cancelled if res.outcome == Some(Outcome::Confirming) => {
                res.outcome = Some(Outcome::Refunded)
            }
            OrderStatus::Cancelled if matches!(res.release, Some(Release::Waiting(_))) => {
                res.release = Some(Release::Released);
                app.notice = Some("The ticket is released: it can be bought again".into());
            }
            _ => {}
        }
        res.order = order;
    }
    Vec::new()
}

/// The reservation's clock: poll while confirming, expire when the hold runs out.
pub(crate) fn on_tick(app: &mut App) -> Vec<Effect> {
    let left = match &app.screen {
        Screen::Reservation(r) => app.seconds_left(&r.order),
        _ => return Vec::new(),
    };
    let Screen::Reservation(res) = &mut app.screen else {
        return Vec::new();
    };
    if let Some(Release::Waiting(polls)) = res.release {
        if polls + 1 >= RELEASE_POLLS {
            res.release = Some(Release::Slow);
            return Vec::new();
        }
        res.release = Some(Release::Waiting(polls + 1));
        return vec![Effect::LoadOrder(res.order.id.clone())];
    }
    match &res.outcome {
        Some(Outcome::Confirming) => vec![Effect::LoadOrder(res.order.id.clone())],
        None if left <= 0 => {
            res.outcome = Some(Outcome::Expired);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

pub(crate) fn on_key(app: &mut App, mut res: Reservation, key: KeyEvent) -> (Nav, Vec<Effect>) {
    match (&res.outcome, key.code) {
        (_, KeyCode::Esc) => {
            return (Nav::Reset(Screen::Market), vec![app.market.load()]);
        }
        (None, KeyCode::Enter) => {
            let token: String = res.card.value().trim().to_string();
            if token.is_empty() {
                res.card.error = Some("Enter a card number or a token (e.g. tok_visa)".into());
                return (Nav::Stay(Screen::Reservation(res)), Vec::new());
            }
            res.card.error = None;
            res.outcome = Some(Outcome::Paying);
            let effect = Effect::Pay {
                order_id: res.order.id.clone(),
                token,
            };
            return (Nav::Stay(Screen::Reservation(res)), vec![effect]);
        }
        (None, _) => {
            let edited = res.card.input.on_key(key) == Some(true);
            if edited {
                res.card.error = None;
            }
        }
        // Buying again once the declined order let the ticket go.
        (Some(Outcome::Declined(_)), KeyCode::Char('b'))
            if matches!(res.release, Some(Release::Released | Release::Slow)) =>
        {
            let again = Effect::Reserve(res.order.ticket.id.clone());
            return (Nav::Stay(Screen::Reservation(res)), vec![again]);
        }
        // Over, whichever way: the orders list shows how it stands.
        (
            Some(Outcome::Complete | Outcome::Declined(_) | Outcome::Expired | Outcome::Refunded),
            KeyCode::Enter,
        ) => {
            return (Nav::Reset(Screen::Orders), orders::load());
        }
        _ => {}
    }
    (Nav::Stay(Screen::Reservation(res)), Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App, r: &Reservation) {
    let theme = &app.theme;
    let left = app.seconds_left(&r.order);
    let block = boxed(" reservation ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [text, actions] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let mut lines = vec![
        Line::from(Span::styled(
            clean(&r.order.ticket.title).into_owned(),
            theme.header,
        )),
        Line::from(format!(
            "{} — held for you, {}",
            r.order.ticket.price.display(),
            countdown(left)
        )),
    ];
    // A blank line to breathe, unless the terminal is too short to spare it.
    if text.height >= 8 {
        lines.push(Line::from(""));
    }
    let mut cursor = None;
    let mut offer: Vec<(&str, KeyCode)> = Vec::new();
    match &r.outcome {
        None => {
            let label = "Card or token: ";
            let w = text.width.saturating_sub(label.len() as u16) as usize;
            let (shown, at) = window(&clean(&mask(r.card.value())), r.card.input.cursor(), w);
            // Lines above may wrap: the card's row is counted as drawn.
            let above = Paragraph::new(lines.clone()).wrap(Wrap { trim: true });
            let row = above.line_count(text.width.max(1)) as u16;
            cursor = Some((row, label.len() as u16 + at as u16));
            lines.push(Line::from(vec![Span::raw(label), Span::raw(shown)]));
            if let Some(e) = &r.card.error {
                lines.push(Line::from(Span::styled(clean(e).into_owned(), theme.error)));
            }
            lines.push(Line::from(Span::styled(
                "try tok_visa or 4242 4242 4242 4242 — Enter: pay, Esc: leave",
                theme.dim,
            )));
            offer = vec![("Pay", KeyCode::Enter), ("Leave", KeyCode::Esc)];
        }
        Some(Outcome::Paying) => lines.push(Line::from("Paying…")),
        Some(Outcome::Confirming) => lines.push(Line::from("Paid — confirming the order…")),
        Some(Outcome::Complete) => {
            let paid = match r.order.paid_at {
                Some(at) => format!(
                    "✓ Payment complete — the ticket is yours (paid {}).",
                    moment(at, app.now)
                ),
                None => "✓ Payment complete — the ticket is yours.".into(),
            };
            lines.push(Line::from(Span::styled(paid, theme.ok.patch(theme.header))));
            offer = vec![("My orders", KeyCode::Enter)];
        }
        Some(Outcome::Refunded) => {
            lines.push(Line::from(Span::styled(
                "✗ The order was cancelled before your payment reached it.",
                theme.error.patch(theme.header),
            )));
            lines.push(Line::from(
                "The payment is refunded; the ticket was released.",
            ));
            offer = vec![("My orders", KeyCode::Enter)];
        }
        Some(Outcome::Declined(m)) => {
            lines.push(Line::from(Span::styled(
                format!("✗ Declined: {}", clean(m)),
                theme.error.patch(theme.header),
            )));
            lines.push(Line::from(match r.release {
                Some(Release::Waiting(_)) | None => {
                    "The order is being cancelled: waiting for the ticket to be released…"
                }
                Some(Release::Released) => {
                    "The order is cancelled and the ticket released: it can be bought again."
                }
                Some(Release::Slow) => {
                    "The order is being cancelled; the ticket will be free again in a moment."
                }
            }));
            offer = vec![("My orders", KeyCode::Enter)];
            if matches!(r.release, Some(Release::Released | Release::Slow)) {
                offer.push(("Buy again", KeyCode::Char('b')));
            }
        }
        Some(Outcome::Expired) => {
            lines.push(Line::from(Span::styled(
                "✗ The reservation expired; the ticket was released.",
                theme.error.patch(theme.header),
            )));
            offer = vec![("My orders", KeyCode::Enter)];
        }
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), text);
    if let Some((row, col)) = cursor
        && row < text.height
        && col < text.width
    {
        f.set_cursor_position(Position::new(text.x + col, text.y + row));
    }
    buttons(f, actions, &offer, theme, &app.hits);
}

/// A card number shows its last 4 digits only; a token shows as typed.
pub fn mask(input: &str) -> String {
    let digits = input.chars().filter(|c| c.is_ascii_digit()).count();
    if digits < 6 || input.chars().any(|c| c.is_ascii_alphabetic()) {
        return input.to_string();
    }
    let keep = digits.saturating_sub(4);
    let mut seen = 0;
    input
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= keep { '•' } else { c }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_masked_and_tokens_are_not() {
        assert_eq!(mask("4242 4242 4242 4242"), "•••• •••• •••• 4242");
        assert_eq!(mask("tok_visa"), "tok_visa");
        assert_eq!(mask("42"), "42");
    }
}
