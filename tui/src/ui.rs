//! The frame: a title bar, the current screen's body, a status bar, and the help overlay
//! on top. Each screen draws its own body (`render` in its module under
//! [`crate::screens`]); this file only lays out the frame and picks the screen.
//!
//! Drawing only reads the state. Every layout degrades on a small terminal (down to 40x12
//! and below) instead of panicking.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Screen};
use crate::screens::{help, market, my_tickets, orders, reservation, sign_in, ticket, ticket_form};

const SPINNER: [&str; 4] = ["⠋", "⠙", "⠹", "⠸"];

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
        Screen::SignIn(form) => sign_in::render(f, body, form),
        Screen::Market => market::render(f, body, app),
        Screen::Detail(_) => ticket::render(f, body, app),
        Screen::Reservation(r) => reservation::render(f, body, app, r),
        Screen::Orders => orders::render(f, body, app),
        Screen::Sell(form) => ticket_form::render(f, body, false, form),
        Screen::Edit(_, form) => ticket_form::render(f, body, true, form),
        Screen::MyTickets => my_tickets::render(f, body, app),
    }
    f.render_widget(status_bar(app), bottom);
    if app.help {
        help::render(f, body);
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

/// Who, where, whether a request is under way, and the last error or notice: the one line
/// every screen shares for feedback, so screens need no room of their own for it.
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
