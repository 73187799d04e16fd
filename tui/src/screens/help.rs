//! The key help overlay: drawn over whatever screen is showing, closed by any key.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Cell, Clear, Row, Table};

use crate::app::App;
use crate::widgets::boxed;

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

pub fn render(f: &mut Frame, area: Rect) {
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
