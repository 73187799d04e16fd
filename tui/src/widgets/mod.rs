//! Pieces several screens share, so a list, a form or a box looks and behaves the same on
//! every screen.

pub mod form;
pub mod list;

use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders};

/// The bordered, titled box every screen draws in.
pub fn boxed(title: &str) -> Block<'_> {
    Block::default().borders(Borders::ALL).title(title)
}

/// The cursor row of a list and the focused button of a form.
pub fn highlight() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// Time left on a reservation, as the orders list and the reservation both show it.
pub fn countdown(seconds: i64) -> String {
    if seconds <= 0 {
        "expired".into()
    } else {
        format!("expires in {}:{:02}", seconds / 60, seconds % 60)
    }
}
