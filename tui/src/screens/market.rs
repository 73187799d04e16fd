//! The marketplace: tickets for sale, searched as you type and loaded a page at a time as
//! the cursor goes down; the home screen, from which every other screen opens.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use tix_api::Ticket;

use crate::app::{App, Effect, Nav, Page, Screen};
use crate::screens::{orders, sales, ticket_form};
use crate::widgets::hits::Target;
use crate::widgets::input::{TextInput, window};
use crate::widgets::list::{PAGE, Paged};
use crate::widgets::{clean, paged_table};

/// Kept on [`App`] rather than in [`Screen::Market`]: the list and the search survive a
/// visit to a ticket and back, and refreshes land whatever screen is showing.
#[derive(Debug, Clone, Default)]
pub struct Market {
    pub tickets: Paged<Ticket>,
    pub search: TextInput,
    /// Keys go to the search box (letters are text, not shortcuts) until Enter or Esc.
    pub searching: bool,
}

impl Market {
    /// The request that reloads the market: every row loaded so far (so the cursor keeps
    /// its place), for the search shown (so a reload never shows tickets filtered out).
    pub(crate) fn load(&self) -> Effect {
        Effect::LoadTickets {
            search: self.search.value().to_string(),
            offset: 0,
            limit: self.tickets.refresh_limit(),
        }
    }

    /// A new search starts from its first page, the cursor on the first row. The rows
    /// shown stay until the answer replaces them, so typing does not flicker.
    fn search_again(&mut self) -> Effect {
        self.tickets.list.first();
        // A next page of the old search may be under way; its answer will be dropped.
        self.tickets.loading = false;
        Effect::LoadTickets {
            search: self.search.value().to_string(),
            offset: 0,
            limit: PAGE,
        }
    }
}

/// Whether `t` is the viewer's own ticket.
pub fn mine(app: &App, t: &Ticket) -> bool {
    app.user.as_ref().is_some_and(|u| u.id == t.user_id)
}

/// What marks the viewer's own ticket: ★ in the theme's `mine` style. Drawn in a column
/// (or a place) of its own that no server text reaches, so no display name can copy it.
pub const MINE: &str = "★";

/// The seller as buyers see them: their display name (cleaned of control and invisible
/// characters), or "you" in the theme's `mine` style, which no name can take on (a
/// seller who named themselves "you" is drawn plain).
pub fn seller(app: &App, t: &Ticket) -> Span<'static> {
    if mine(app, t) {
        Span::styled("you", app.theme.mine)
    } else if t.seller_name.is_empty() {
        // Tickets put on sale before display names existed carry none.
        Span::raw("—")
    } else {
        Span::raw(clean(&t.seller_name).into_owned())
    }
}

pub(crate) fn on_tickets(app: &mut App, search: &str, page: Page<Vec<Ticket>>) -> Vec<Effect> {
    // Typing on fires a request per key: only the answer for what is in the box counts.
    if search != app.market.search.value() {
        return Vec::new();
    }
    match page.result {
        Ok(list) => app
            .market
            .tickets
            .on_page(page.offset, page.limit, list, |t| t.id.clone()),
        Err(p) => {
            app.market.tickets.on_error(&p.message);
            app.problem(&p);
        }
    }
    Vec::new()
}

pub(crate) fn on_paste(app: &mut App, text: &str) -> Vec<Effect> {
    if app.market.search.paste(text) {
        return vec![app.market.search_again()];
    }
    Vec::new()
}

pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    let stay = |e| (Nav::Stay(Screen::Market), e);
    let page = app.hits.borrow().page_rows();
    let market = &mut app.market;
    if market.searching {
        match key.code {
            // Esc gives up the search; Enter keeps it and goes back to the list's keys.
            KeyCode::Esc => {
                market.searching = false;
                if !market.search.value().is_empty() {
                    market.search.clear();
                    return stay(vec![market.search_again()]);
                }
            }
            KeyCode::Enter => market.searching = false,
            // Only these move the cursor: j and k are letters of the search.
            KeyCode::Down | KeyCode::Up | KeyCode::PageDown | KeyCode::PageUp => {
                market.tickets.list.on_key(key.code, page);
            }
            _ => {
                if market.search.on_key(key) == Some(true) {
                    return stay(vec![market.search_again()]);
                }
            }
        }
        return stay(Vec::new());
    }
    let push = |to| Nav::push(Screen::Market, to);
    match key.code {
        // A fresh query each time: `/` is "search for", not "edit the search".
        KeyCode::Char('/') => {
            market.searching = true;
            if !market.search.value().is_empty() {
                market.search.clear();
                return stay(vec![market.search_again()]);
            }
        }
        KeyCode::Esc if !market.search.value().is_empty() => {
            market.search.clear();
            return stay(vec![market.search_again()]);
        }
        KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
            if let Some(t) = market.tickets.list.selected_item().cloned() {
                // Show what the list knows at once; the fresh copy replaces it on arrival.
                app.detail = Some(t.clone());
                return (
                    push(Screen::Detail(t.id.clone())),
                    vec![Effect::LoadTicket(t.id)],
                );
            }
        }
        KeyCode::Char('o') => return (push(Screen::Orders), orders::load()),
        KeyCode::Char('m') => {
            app.my_tickets.list.first();
            let load = super::my_tickets::load(app);
            return (push(Screen::MyTickets), vec![load]);
        }
        KeyCode::Char('S') => {
            app.sales.list.first();
            let load = sales::load(app);
            return (push(Screen::Sales), vec![load]);
        }
        KeyCode::Char('s') => return (push(ticket_form::sell()), Vec::new()),
        // The operations screen runs its own loop in main (it reads the bus, not the API).
        KeyCode::Char('O') => return stay(vec![Effect::OpenOps]),
        KeyCode::Char('r') => return stay(vec![market.load()]),
        code => {
            market.tickets.list.on_key(code, page);
        }
    }
    stay(Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let market = &app.market;
    let theme = &app.theme;
    let [search, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let prompt = if market.searching {
        "search: "
    } else {
        "search (/): "
    };
    let prompt_w = prompt.len() as u16;
    let width = search.width.saturating_sub(prompt_w) as usize;
    // Pasted text can hold invisible characters too.
    let (text, cursor) = window(&clean(market.search.value()), market.search.cursor(), width);
    let mut spans = vec![Span::styled(prompt, theme.dim), Span::raw(text)];
    if market.searching {
        f.set_cursor_position(Position::new(search.x + prompt_w + cursor as u16, search.y));
    } else if market.search.value().is_empty() {
        spans.push(Span::styled("type / to search titles", theme.dim));
    } else {
        spans.push(Span::styled("  (Esc clears)", theme.dim));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), search);
    if !market.searching {
        app.hits
            .borrow_mut()
            .add(search, Target::Key(KeyCode::Char('/')));
    }
    let rows: Vec<Row> = market
        .tickets
        .list
        .items()
        .iter()
        .map(|t| {
            let marker = if mine(app, t) {
                Cell::from(Span::styled(MINE, theme.mine))
            } else {
                Cell::from("")
            };
            Row::new(vec![
                marker,
                Cell::from(clean(&t.title).into_owned()),
                Cell::from(t.price.display()),
                Cell::from(seller(app, t)),
            ])
        })
        .collect();
    // Names are cut shorter on a narrow terminal, so titles keep some room.
    let seller_w = if area.width < 60 { 10 } else { 16 };
    let table = Table::new(
        rows,
        [
            // ★ on the viewer's own tickets.
            Constraint::Length(1),
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(seller_w),
        ],
    )
    .header(Row::new(vec!["", "TITLE", "PRICE", "SELLER"]).style(theme.header));
    let empty = if market.search.value().is_empty() {
        "No tickets for sale. Press s to sell one."
    } else {
        "No tickets match the search. Esc clears it."
    };
    paged_table(
        f,
        list,
        "tickets for sale",
        table,
        &market.tickets,
        empty,
        theme,
        &app.hits,
    );
}
