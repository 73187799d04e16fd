//! The frame: a title bar, the current screen's body, a status bar, the footer's key
//! hints, and the help overlay on top. Each screen draws its own body (`render` in its
//! module under [`crate::screens`]); this file only lays out the frame and picks the
//! screen.
//!
//! Drawing only reads the state, except for [`App::hits`], where it notes what can be
//! clicked. Every layout degrades on a small terminal (down to 40x12 and below) instead
//! of panicking.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Screen};
use crate::screens::help::{self, Footer};
use crate::screens::{
    market, my_tickets, orders, reservation, sales, sign_in, ticket, ticket_form,
};
use crate::widgets::clean;
use crate::widgets::hits::{Hits, Target};

const SPINNER: [&str; 4] = ["⠋", "⠙", "⠹", "⠸"];

pub fn render(f: &mut Frame, app: &App) {
    *app.hits.borrow_mut() = Hits::default();
    let area = f.area();
    if area.width < 20 || area.height < 6 {
        f.render_widget(
            Paragraph::new("tix: make the terminal bigger").wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let status = status_bar(app, area.width);
    // A long message wraps rather than being cut off, up to half the screen.
    let status_h = (status.line_count(area.width) as u16).clamp(1, (area.height / 2).max(1));
    let [top, body, bottom, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(status_h),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(title_bar(app), top);
    match &app.screen {
        Screen::SignIn(form) => sign_in::render(f, body, form, app),
        Screen::Market => market::render(f, body, app),
        Screen::Detail(_) => ticket::render(f, body, app),
        Screen::Reservation(r) => reservation::render(f, body, app, r),
        Screen::Orders => orders::render(f, body, app),
        Screen::Sell(form) => ticket_form::render(f, body, false, form, app),
        Screen::Edit(_, form) => ticket_form::render(f, body, true, form, app),
        Screen::MyTickets => my_tickets::render(f, body, app),
        Screen::Sales => sales::render(f, body, app),
    }
    f.render_widget(status, bottom);
    footer(f, keys, app);
    if app.help {
        help::render(f, body, app);
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
        Screen::Sales => "my sales",
    };
    Paragraph::new(Line::from(vec![
        Span::styled(" tix ", app.theme.brand),
        Span::raw(format!(" {name}")),
    ]))
}

/// Who, where, whether a request is under way, and the last error or notice: the one line
/// every screen shares for feedback, so screens need no room of their own for it.
fn status_bar(app: &App, width: u16) -> Paragraph<'static> {
    let theme = &app.theme;
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
    // On a narrow terminal the API would push the message onto a line of its own.
    let place = if width >= 60 {
        format!("{spinner} {} @ {} ", clean(&who), clean(&app.api))
    } else {
        format!("{spinner} {} ", clean(&who))
    };
    let mut spans = vec![Span::raw(place)];
    if let Some(e) = &app.last_error {
        spans.push(Span::styled(format!(" ✗ {}", clean(e)), theme.error));
    } else if let Some(n) = &app.notice {
        spans.push(Span::styled(format!(" ✓ {}", clean(n)), theme.ok));
    }
    Paragraph::new(Line::from(spans))
        .style(theme.bar)
        .wrap(Wrap { trim: false })
}

/// The screen's keys from the help's list, each a button: a click presses the key.
fn footer(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = Vec::new();
    let mut x = area.x;
    let end = area.x + area.width;
    let mut hits = app.hits.borrow_mut();
    for (name, word, code) in help::hints(Footer::of(app)) {
        let w = (name.chars().count() + 1 + word.chars().count()) as u16;
        if x + w > end {
            break;
        }
        spans.push(Span::styled(name, theme.key));
        spans.push(Span::styled(format!(" {word}"), theme.dim));
        spans.push(Span::raw("  "));
        hits.add(Rect::new(x, area.y, w, 1), Target::Key(code));
        x += w + 2;
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
