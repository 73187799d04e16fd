//! One ticket's detail, where buying starts.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use tix_api::Ticket;

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::screens::market::{MINE, mine, seller};
use crate::widgets::{boxed, buttons, clean};

pub(crate) fn on_ticket(app: &mut App, r: Result<Ticket, Problem>) -> Vec<Effect> {
    match r {
        Ok(t) => app.detail = Some(t),
        Err(p) => app.problem(&p),
    }
    Vec::new()
}

/// `id` is the ticket on screen. Buying only asks for a reservation: the reservation screen
/// opens when the server has granted it (see `reservation::on_reserved`).
pub(crate) fn on_key(app: &mut App, id: String, key: KeyEvent) -> (Nav, Vec<Effect>) {
    match key.code {
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => return (Nav::Back, Vec::new()),
        KeyCode::Enter | KeyCode::Char('b') => {
            // Checked here as well as by the server, to say why in words.
            let mine = app
                .detail
                .as_ref()
                .zip(app.user.as_ref())
                .is_some_and(|(t, u)| t.user_id == u.id);
            if mine {
                app.last_error = Some("You cannot buy your own ticket".into());
            } else {
                return (
                    Nav::Stay(Screen::Detail(id.clone())),
                    vec![Effect::Reserve(id)],
                );
            }
        }
        _ => {}
    }
    (Nav::Stay(Screen::Detail(id)), Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let block = boxed(" ticket ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(t) = &app.detail else {
        f.render_widget(Paragraph::new("Loading…"), inner);
        return;
    };
    let state = if t.is_reserved() {
        "reserved"
    } else {
        "on sale"
    };
    let [text, actions] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let mut who = vec![Span::raw("Seller  "), seller(app, t)];
    if mine(app, t) {
        who.push(Span::raw(" "));
        who.push(Span::styled(format!("{MINE} your ticket"), theme.mine));
    }
    let lines = vec![
        Line::from(Span::styled(clean(&t.title).into_owned(), theme.header)),
        Line::from(format!("Price   {}", t.price.display())),
        Line::from(who),
        Line::from(format!("State   {state}")),
    ];
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), text);
    buttons(
        f,
        actions,
        &[("Buy", KeyCode::Char('b')), ("Back", KeyCode::Esc)],
        theme,
        &app.hits,
    );
}
