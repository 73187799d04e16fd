//! Drawing only: `render(frame, &app)` reads the state and never changes it. Every layout
//! degrades on a small terminal (down to 40x12 and below) instead of panicking.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use tix_api::OrderStatus;
use tix_client::format::short_id as short;

use crate::app::{App, Form, Outcome, Reservation, Screen};

const SPINNER: [&str; 4] = ["⠋", "⠙", "⠹", "⠸"];

/// Every key, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("↑/↓ or j/k", "move"),
    ("Enter or →/l", "open, act"),
    ("Esc or ←/h", "back"),
    ("Tab / Shift-Tab", "next / previous field"),
    ("/", "search tickets (as you type)"),
    ("b", "buy the ticket shown"),
    ("o", "my orders (c: cancel)"),
    ("m", "my tickets (e: edit)"),
    ("s", "sell a ticket"),
    ("r", "refresh"),
    ("? or F1", "this help"),
    ("q or Ctrl-C", "quit"),
];

pub fn render(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width < 20 || area.height < 6 {
        f.render_widget(
            Paragraph::new("tix: make the terminal bigger").wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(title_bar(app), top);
    match &app.screen {
        Screen::SignIn(form) => render_form(f, body, " Sign in or sign up ", form),
        Screen::Market => market(f, body, app),
        Screen::Detail(_) => detail(f, body, app),
        Screen::Reservation(r) => reservation(f, body, app, r),
        Screen::Orders => orders(f, body, app),
        Screen::Sell(form) => render_form(f, body, " Sell a ticket ", form),
        Screen::Edit(_, form) => render_form(f, body, " Edit your ticket ", form),
        Screen::MyTickets => my_tickets(f, body, app),
    }
    f.render_widget(status_bar(app), bottom);
    if app.help {
        help(f, body);
    }
}

fn title_bar(app: &App) -> Paragraph<'static> {
    let name = match &app.screen {
        Screen::SignIn(_) => "sign in",
        Screen::Market => "marketplace",
        Screen::Detail(_) => "ticket",
        Screen::Reservation(_) => "reservation",
        Screen::Orders => "my orders",
        Screen::Sell(_) => "sell",
        Screen::Edit(..) => "edit",
        Screen::MyTickets => "my tickets",
    };
    Paragraph::new(Line::from(vec![
        Span::styled(
            " tix ",
            Style::new().bold().fg(Color::Black).bg(Color::Cyan),
        ),
        Span::raw(format!(" {name}")),
        Span::styled("   ? help  q quit", Style::new().fg(Color::DarkGray)),
    ]))
}

fn status_bar(app: &App) -> Paragraph<'static> {
    let spinner = if app.busy > 0 {
        SPINNER[(app.ticks % 4) as usize]
    } else {
        " "
    };
    let who = app
        .user
        .as_ref()
        .map(|u| u.email.clone())
        .unwrap_or_else(|| "not signed in".into());
    let mut spans = vec![Span::raw(format!("{spinner} {who} @ {} ", app.api))];
    if let Some(e) = &app.last_error {
        spans.push(Span::styled(format!(" ✗ {e}"), Style::new().fg(Color::Red)));
    } else if let Some(n) = &app.notice {
        spans.push(Span::styled(
            format!(" ✓ {n}"),
            Style::new().fg(Color::Green),
        ));
    }
    Paragraph::new(Line::from(spans)).style(Style::new().bg(Color::DarkGray))
}

fn boxed(title: &str) -> Block<'_> {
    Block::default().borders(Borders::ALL).title(title)
}

fn highlight() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

fn market(f: &mut Frame, area: Rect, app: &App) {
    let [search, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let prompt = if app.searching { "/" } else { "search (/): " };
    let cursor = if app.searching { "▏" } else { "" };
    f.render_widget(
        Paragraph::new(format!("{prompt}{}{cursor}", app.search)),
        search,
    );
    let rows: Vec<Row> = app
        .tickets
        .iter()
        .map(|t| {
            let seller = if app.user.as_ref().is_some_and(|u| u.id == t.user_id) {
                "you".to_string()
            } else {
                short(&t.user_id)
            };
            Row::new(vec![
                Cell::from(t.title.clone()),
                Cell::from(t.price.display()),
                Cell::from(seller),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(9),
        ],
    )
    .header(Row::new(vec!["TITLE", "PRICE", "SELLER"]).bold())
    .row_highlight_style(highlight())
    .block(boxed(" tickets for sale — Enter to open "));
    let mut state = TableState::default().with_selected((!empty).then_some(app.selected));
    f.render_stateful_widget(table, list, &mut state);
    if empty {
        let inner = list.inner(ratatui::layout::Margin::new(2, 2));
        f.render_widget(
            Paragraph::new("No tickets for sale. Press s to sell one."),
            inner,
        );
    }
}

fn detail(f: &mut Frame, area: Rect, app: &App) {
    let Some(t) = &app.detail else {
        f.render_widget(Paragraph::new("Loading…").block(boxed(" ticket ")), area);
        return;
    };
    let state = if t.order_id.is_some() {
        "reserved"
    } else {
        "on sale"
    };
    let lines = vec![
        Line::from(Span::styled(t.title.clone(), Style::new().bold())),
        Line::from(format!("Price   {}", t.price.display())),
        Line::from(format!("Seller  {}", short(&t.user_id))),
        Line::from(format!("State   {state}")),
        Line::from(""),
        Line::from(Span::styled(
            "b / Enter: buy    Esc: back",
            Style::new().fg(Color::Cyan),
        )),
    ];
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(boxed(" ticket ")),
        area,
    );
}

fn countdown(seconds: i64) -> String {
    if seconds <= 0 {
        "expired".into()
    } else {
        format!("expires in {}:{:02}", seconds / 60, seconds % 60)
    }
}

fn reservation(f: &mut Frame, area: Rect, app: &App, r: &Reservation) {
    let left = app.seconds_left(&r.order);
    let masked = mask(&r.card.value);
    let mut lines = vec![
        Line::from(Span::styled(
            r.order.ticket.title.clone(),
            Style::new().bold(),
        )),
        Line::from(format!(
            "{} — held for you, {}",
            r.order.ticket.price.display(),
            countdown(left)
        )),
        Line::from(""),
    ];
    match &r.outcome {
        None => {
            lines.push(Line::from(format!("Card or token: {masked}▏")));
            if let Some(e) = &r.card.error {
                lines.push(Line::from(Span::styled(
                    e.clone(),
                    Style::new().fg(Color::Red),
                )));
            }
            lines.push(Line::from(Span::styled(
                "try tok_visa or 4242 4242 4242 4242 — Enter: pay, Esc: leave",
                Style::new().fg(Color::DarkGray),
            )));
        }
        Some(Outcome::Paying) => lines.push(Line::from("Paying…")),
        Some(Outcome::Confirming) => lines.push(Line::from("Paid — confirming the order…")),
        Some(Outcome::Complete) => {
            lines.push(Line::from(Span::styled(
                "✓ Payment complete — the ticket is yours.",
                Style::new().bold().fg(Color::Green),
            )));
            lines.push(Line::from("Enter: my orders"));
        }
        Some(Outcome::Declined(m)) => {
            lines.push(Line::from(Span::styled(
                format!("✗ Declined: {m}"),
                Style::new().bold().fg(Color::Red),
            )));
            lines.push(Line::from(
                "The order is cancelled and the ticket released. Enter: my orders",
            ));
        }
        Some(Outcome::Expired) => {
            lines.push(Line::from(Span::styled(
                "✗ The reservation expired; the ticket was released.",
                Style::new().bold().fg(Color::Red),
            )));
            lines.push(Line::from("Enter: my orders"));
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(boxed(" reservation ")),
        area,
    );
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

fn orders(f: &mut Frame, area: Rect, app: &App) {
    let rows: Vec<Row> = app
        .orders
        .iter()
        .map(|o| {
            let when = match o.status {
                OrderStatus::Complete => "paid".to_string(),
                OrderStatus::Cancelled => "cancelled".to_string(),
                OrderStatus::Created | OrderStatus::AwaitingPayment => {
                    countdown(app.seconds_left(o))
                }
            };
            Row::new(vec![
                o.ticket.title.clone(),
                o.ticket.price.display(),
                o.status.to_string(),
                when,
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(18),
        ],
    )
    .header(Row::new(vec!["TICKET", "PRICE", "STATUS", "WHEN"]).bold())
    .row_highlight_style(highlight())
    .block(boxed(" my orders — Enter: pay, c: cancel "));
    let mut state = TableState::default().with_selected((!empty).then_some(app.order_selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn my_tickets(f: &mut Frame, area: Rect, app: &App) {
    let rows: Vec<Row> = app
        .my_tickets
        .iter()
        .map(|t| {
            let state = if t.order_id.is_some() {
                "reserved"
            } else {
                "on sale"
            };
            Row::new(vec![t.title.clone(), t.price.display(), state.to_string()])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(10),
        ],
    )
    .header(Row::new(vec!["TITLE", "PRICE", "STATE"]).bold())
    .row_highlight_style(highlight())
    .block(boxed(" my tickets — e: edit, s: sell "));
    let mut state = TableState::default().with_selected((!empty).then_some(app.my_selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn render_form(f: &mut Frame, area: Rect, title: &str, form: &Form) {
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = form.focus == i;
        let marker = if focused { "▸ " } else { "  " };
        let cursor = if focused { "▏" } else { "" };
        let style = if focused {
            Style::new().bold()
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{marker}{:<9} ", field.label), style),
            Span::raw(format!("{}{cursor}", field.shown())),
        ]));
        if let Some(e) = &field.error {
            lines.push(Line::from(Span::styled(
                format!("            {e}"),
                Style::new().fg(Color::Red),
            )));
        }
    }
    lines.push(Line::from(""));
    let buttons: Vec<Span> = form
        .buttons
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            let style = if form.focus == form.fields.len() + i {
                highlight()
            } else {
                Style::new()
            };
            [Span::styled(format!("[ {b} ]"), style), Span::raw("  ")]
        })
        .collect();
    lines.push(Line::from(buttons));
    lines.push(Line::from(Span::styled(
        "Tab: next field, Enter: go, Esc: back",
        Style::new().fg(Color::DarkGray),
    )));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(boxed(title)),
        area,
    );
}

fn help(f: &mut Frame, area: Rect) {
    let w = area.width.min(50);
    let h = area.height.min(KEYS.len() as u16 + 2);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let rows: Vec<Row> = KEYS
        .iter()
        .map(|(k, v)| Row::new(vec![Cell::from(*k).bold(), Cell::from(*v)]))
        .collect();
    let table = Table::new(rows, [Constraint::Length(16), Constraint::Min(10)])
        .block(boxed(" keys — any key closes "));
    f.render_widget(Clear, popup);
    f.render_widget(table, popup);
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
