//! The marketplace: tickets for sale, searched as you type; the home screen, from which
//! every other screen opens.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use tix_api::Ticket;
use tix_client::format::short_id as short;

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::screens::{orders, ticket_form};
use crate::widgets::list::SelectList;
use crate::widgets::{boxed, highlight};

/// Kept on [`App`] rather than in [`Screen::Market`]: the list and the search survive a
/// visit to a ticket and back, and refreshes land whatever screen is showing.
#[derive(Debug, Clone, Default)]
pub struct Market {
    pub tickets: SelectList<Ticket>,
    pub search: String,
    /// Keys go to the search box (letters are text, not shortcuts) until Enter or Esc.
    pub searching: bool,
}

impl Market {
    /// The request that reloads the market. The search is part of it, so a reload never
    /// shows tickets the user has filtered out.
    pub(crate) fn load(&self) -> Effect {
        Effect::LoadTickets {
            search: self.search.clone(),
        }
    }
}

pub(crate) fn on_tickets(app: &mut App, r: Result<Vec<Ticket>, Problem>) -> Vec<Effect> {
    match r {
        // The cursor stays on the same ticket across refreshes.
        Ok(list) => app.market.tickets.replace_keeping(list, |t| t.id.clone()),
        Err(p) => app.problem(&p),
    }
    Vec::new()
}

pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    let stay = |e| (Nav::Stay(Screen::Market), e);
    let market = &mut app.market;
    if market.searching {
        match key.code {
            KeyCode::Esc | KeyCode::Enter => market.searching = false,
            KeyCode::Backspace => {
                market.search.pop();
                return stay(vec![market.load()]);
            }
            KeyCode::Char(c) => {
                market.search.push(c);
                market.tickets.first();
                return stay(vec![market.load()]);
            }
            // Only the arrows move: j and k are letters of the search.
            KeyCode::Down | KeyCode::Up => market.tickets.on_key(key.code),
            _ => {}
        }
        return stay(Vec::new());
    }
    let push = |to| Nav::push(Screen::Market, to);
    match key.code {
        KeyCode::Char('/') => market.searching = true,
        KeyCode::Esc if !market.search.is_empty() => {
            market.search.clear();
            return stay(vec![market.load()]);
        }
        KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
            if let Some(t) = market.tickets.selected_item().cloned() {
                // Show what the list knows at once; the fresh copy replaces it on arrival.
                app.detail = Some(t.clone());
                return (
                    push(Screen::Detail(t.id.clone())),
                    vec![Effect::LoadTicket(t.id)],
                );
            }
        }
        KeyCode::Char('o') => return (push(Screen::Orders), orders::load()),
        KeyCode::Char('m') => return (push(Screen::MyTickets), vec![Effect::LoadMyTickets]),
        KeyCode::Char('s') => return (push(ticket_form::sell()), Vec::new()),
        KeyCode::Char('r') => return stay(vec![market.load()]),
        code => market.tickets.on_key(code),
    }
    stay(Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let market = &app.market;
    let [search, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let prompt = if market.searching {
        "/"
    } else {
        "search (/): "
    };
    let cursor = if market.searching { "▏" } else { "" };
    f.render_widget(
        Paragraph::new(format!("{prompt}{}{cursor}", market.search)),
        search,
    );
    let rows: Vec<Row> = market
        .tickets
        .items()
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
    f.render_stateful_widget(table, list, &mut market.tickets.table_state());
    if market.tickets.is_empty() {
        let inner = list.inner(Margin::new(2, 2));
        f.render_widget(
            Paragraph::new("No tickets for sale. Press s to sell one."),
            inner,
        );
    }
}
