//! One ticket's detail, where buying starts.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use tix_api::Ticket;
use tix_client::format::short_id as short;

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::widgets::boxed;

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
    let Some(t) = &app.detail else {
        f.render_widget(Paragraph::new("Loading…").block(boxed(" ticket ")), area);
        return;
    };
    let state = if t.is_reserved() {
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
