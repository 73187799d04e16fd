//! The seller's own tickets, where selling and editing start.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Row, Table};
use tix_api::Ticket;

use crate::app::{App, Effect, Nav, Page, Screen};
use crate::screens::ticket_form;
use crate::widgets::{clean, paged_table};

/// Reloads every row loaded so far.
pub(crate) fn load(app: &App) -> Effect {
    Effect::LoadMyTickets {
        offset: 0,
        limit: app.my_tickets.refresh_limit(),
    }
}

pub(crate) fn on_my_tickets(app: &mut App, page: Page<Vec<Ticket>>) -> Vec<Effect> {
    match page.result {
        Ok(list) => app
            .my_tickets
            .on_page(page.offset, page.limit, list, |t| t.id.clone()),
        Err(p) => {
            app.my_tickets.on_error(&p.message);
            app.problem(&p);
        }
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
            if let Some(t) = app.my_tickets.list.selected_item() {
                // The server refuses too; saying so here saves filling in the form first.
                if t.is_reserved() {
                    app.last_error = Some("Cannot edit a reserved ticket".into());
                } else {
                    let to = ticket_form::edit(t);
                    return (Nav::push(Screen::MyTickets, to), Vec::new());
                }
            }
        }
        KeyCode::Char('r') => return stay(vec![load(app)]),
        code => {
            let page = app.hits.borrow().page_rows();
            app.my_tickets.list.on_key(code, page);
        }
    }
    stay(Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let rows: Vec<Row> = app
        .my_tickets
        .list
        .items()
        .iter()
        .map(|t| {
            let state = if t.is_reserved() {
                "reserved"
            } else {
                "on sale"
            };
            Row::new(vec![
                clean(&t.title).into_owned(),
                t.price.display(),
                state.to_string(),
            ])
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
    .header(Row::new(vec!["TITLE", "PRICE", "STATE"]).style(app.theme.header));
    paged_table(
        f,
        area,
        "my tickets — e: edit, s: sell",
        table,
        &app.my_tickets,
        "You have no tickets on sale. Press s to sell one.",
        &app.theme,
        &app.hits,
    );
}
