//! The key help overlay, drawn over whatever screen is showing and closed by any key — and
//! [`KEYS`], the one list of keys: the overlay shows all of it, each screen's footer the
//! entries marked for it, docs/tui.md repeats it, and a test checks that every key a
//! screen handles is in it.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Clear, Row, Table};

use crate::app::{App, Screen};
use crate::widgets::boxed;
use crate::widgets::theme::Theme;

/// Which footer shows a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Footer {
    Market,
    Detail,
    Orders,
    MyTickets,
    Sales,
    /// Sign in, sell, edit.
    Form,
    Reservation,
    /// A reservation that is over (paid, declined, expired).
    Over,
    /// Typing a search in the market.
    Search,
    /// Every screen where letters are not being typed.
    Lists,
}

impl Footer {
    pub fn of(app: &App) -> Footer {
        match &app.screen {
            Screen::Market if app.market.searching => Footer::Search,
            Screen::Market => Footer::Market,
            Screen::Detail(_) => Footer::Detail,
            Screen::Orders => Footer::Orders,
            Screen::MyTickets => Footer::MyTickets,
            Screen::Sales => Footer::Sales,
            Screen::SignIn(_) | Screen::Sell(_) | Screen::Edit(..) => Footer::Form,
            Screen::Reservation(r) if r.outcome.is_some() => Footer::Over,
            Screen::Reservation(_) => Footer::Reservation,
        }
    }
}

/// One line of the help.
#[derive(Debug)]
pub struct KeyHelp {
    pub keys: &'static str,
    pub does: &'static str,
    /// The keys themselves: what a click on the footer's hint presses (the first), and
    /// what the test holds every handled key against.
    pub codes: &'static [KeyCode],
    /// The footers that offer it, with the key's name and a word for what it does there.
    pub footer: &'static [(Footer, &'static str, &'static str)],
}

const fn key(
    keys: &'static str,
    does: &'static str,
    codes: &'static [KeyCode],
    footer: &'static [(Footer, &'static str, &'static str)],
) -> KeyHelp {
    KeyHelp {
        keys,
        does,
        codes,
        footer,
    }
}

use Footer as F;
use KeyCode as K;

/// Every key, in the order the help shows them.
pub const KEYS: &[KeyHelp] = &[
    key(
        "↑/↓ or j/k",
        "move",
        &[K::Up, K::Down, K::Char('j'), K::Char('k')],
        &[],
    ),
    key(
        "PgUp/PgDn, g/G",
        "a page up/down, first/last (more load at the end)",
        &[
            K::PageUp,
            K::PageDown,
            K::Char('g'),
            K::Char('G'),
            K::Home,
            K::End,
        ],
        &[],
    ),
    key(
        "Enter or →/l",
        "open, act (buy, pay, save)",
        &[K::Enter, K::Right, K::Char('l')],
        &[
            (F::Market, "Enter", "open"),
            (F::Orders, "Enter", "pay"),
            (F::Reservation, "Enter", "pay"),
            (F::Form, "Enter", "go"),
            (F::Search, "Enter", "done"),
            (F::Over, "Enter", "my orders"),
        ],
    ),
    key(
        "Esc or ←/h",
        "back; in the search: clear it",
        &[K::Esc, K::Left, K::Char('h')],
        &[
            (F::Detail, "Esc", "back"),
            (F::Orders, "Esc", "back"),
            (F::MyTickets, "Esc", "back"),
            (F::Sales, "Esc", "back"),
            (F::Reservation, "Esc", "leave"),
            (F::Search, "Esc", "clear"),
            (F::Over, "Esc", "market"),
        ],
    ),
    key(
        "Tab / Shift-Tab",
        "next / previous field",
        &[K::Tab, K::BackTab],
        &[(F::Form, "Tab", "next field")],
    ),
    key(
        "/",
        "search tickets as you type (a fresh query)",
        &[K::Char('/')],
        &[(F::Market, "/", "search")],
    ),
    key(
        "b",
        "buy the ticket shown (again, after a decline)",
        &[K::Char('b')],
        &[(F::Detail, "b", "buy")],
    ),
    key(
        "o",
        "my orders",
        &[K::Char('o')],
        &[(F::Market, "o", "orders")],
    ),
    key(
        "c",
        "cancel the order (my orders)",
        &[K::Char('c')],
        &[(F::Orders, "c", "cancel")],
    ),
    key(
        "m",
        "my tickets",
        &[K::Char('m')],
        &[(F::Market, "m", "mine")],
    ),
    key(
        "e",
        "edit the ticket (my tickets)",
        &[K::Char('e')],
        &[(F::MyTickets, "e", "edit")],
    ),
    key(
        "s",
        "sell a ticket",
        &[K::Char('s')],
        &[(F::Market, "s", "sell"), (F::MyTickets, "s", "sell")],
    ),
    key(
        "S",
        "my sales and their total",
        &[K::Char('S')],
        &[(F::Market, "S", "sales")],
    ),
    key(
        "O",
        "the live operations screen (readiness, event rates, groups, events)",
        &[K::Char('O')],
        &[(F::Market, "O", "ops")],
    ),
    key(
        "r",
        "refresh (lists also refresh by themselves)",
        &[K::Char('r')],
        &[(F::Sales, "r", "refresh")],
    ),
    key("←/→ Home/End", "in a field: move the cursor", &[], &[]),
    key(
        "Ctrl-W, Ctrl-U",
        "in a field: delete a word (or Alt-⌫), the line",
        &[],
        &[],
    ),
    key(
        "mouse",
        "click: select, again: open; wheel: scroll",
        &[],
        &[],
    ),
    key(
        "? or F1",
        "this help",
        &[K::Char('?'), K::F(1)],
        &[(F::Lists, "?", "help")],
    ),
    key(
        "q or Ctrl-C",
        "quit",
        &[K::Char('q')],
        &[(F::Lists, "q", "quit")],
    ),
];

/// The footer's hints for a screen: (key name, word, the key a click presses).
/// Help comes first, so a narrow terminal that cuts the footer short still shows it.
pub fn hints(at: Footer) -> Vec<(&'static str, &'static str, KeyCode)> {
    let lists = !matches!(at, Footer::Form | Footer::Reservation | Footer::Search);
    let mut hints: Vec<_> = KEYS
        .iter()
        .flat_map(|k| {
            k.footer
                .iter()
                .filter(move |(f, ..)| *f == at || (lists && *f == Footer::Lists))
                .map(move |(_, name, word)| (*name, *word, k.codes[0]))
        })
        .collect();
    hints.sort_by_key(|(_, _, code)| *code != KeyCode::Char('?'));
    hints
}

/// Opens and closes the overlay; returns true when the key was the overlay's. While it is
/// open every key is, so the key that closes it does nothing else. `?` is a letter while
/// typing, F1 never is.
pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> bool {
    if app.help {
        app.help = false;
        return true;
    }
    if key.code == KeyCode::F(1) || (key.code == KeyCode::Char('?') && !app.typing()) {
        app.help = true;
        return true;
    }
    false
}

pub fn render(f: &mut Frame, area: Rect, theme: &Theme) {
    let w = area.width.min(66);
    let h = area.height.min(KEYS.len() as u16 + 2);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let rows: Vec<Row> = KEYS
        .iter()
        .map(|k| {
            Row::new(vec![
                Cell::from(k.keys).style(theme.key),
                Cell::from(k.does),
            ])
        })
        .collect();
    let table = Table::new(rows, [Constraint::Length(16), Constraint::Min(10)])
        .block(boxed(" keys — any key closes "));
    f.render_widget(Clear, popup);
    f.render_widget(table, popup);
}
