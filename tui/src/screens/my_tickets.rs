//! The seller's own tickets, where selling and editing start.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Row, Table};
use tix_api::Ticket;

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::screens::ticket_form;
use crate::widgets::{boxed, highlight};

pub(crate) fn on_my_tickets(app: &mut App, r: Result<Vec<Ticket>, Problem>) -> Vec<Effect> {
    match r {
        Ok(list) => app.my_tickets.replace(list),
        Err(p) => app.problem(&p),
    }
    Vec::new()
}

pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    let stay = |e| (Nav::Stay(Screen::MyTickets), e);
    match key.code {
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => return (Nav::Back, Vec::new()),
        KeyCode::Char('s') => {
            return (
                Nav::push(Screen::MyTickets, ticket_form::sell()),
                Vec::new(),
            );
        }
        KeyCode::Enter | KeyCode::Char('e') => {
            if let Some(t) = app.my_tickets.selected_item() {
                // The server refuses too; saying so here saves filling in the form first.
                if t.is_reserved() {
                    app.last_error = Some("Cannot edit a reserved ticket".into());
                } else {
                    let to = ticket_form::edit(t);
                    return (Nav::push(Screen::MyTickets, to), Vec::new());
                }
            }
        }
        KeyCode::Char('r') => return stay(vec![Effect::LoadMyTickets]),
        code => app.my_tickets.on_key(code),
    }
    stay(Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let rows: Vec<Row> = app
        .my_tickets
        .items()
        .iter()
        .map(|t| {
            let state = if t.is_reserved() {
                "reserved"
            } else {
                "on sale"
            };
            Row::new(vec![t.title.clone(), t.price.display(), state.to_string()])
        })
        .collect();
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
    f.render_stateful_widget(table, area, &mut app.my_tickets.table_state());
}
