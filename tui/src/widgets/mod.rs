//! Pieces several screens share, so a list, a form or a box looks and behaves the same on
//! every screen.

pub mod form;
pub mod hits;
pub mod input;
pub mod list;
pub mod theme;

use std::cell::RefCell;

use ratatui::Frame;
use ratatui::layout::{Margin, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Table, Wrap};

use hits::{Hits, ListRows, Target};
use list::Paged;
use theme::Theme;

/// Server text made safe to draw: control and invisible characters become U+FFFD, one
/// for one. The CLI's output uses the same function.
pub use tix_client::format::clean;

/// The bordered, titled box every screen draws in.
pub fn boxed<'a>(title: impl Into<Line<'a>>) -> Block<'a> {
    Block::default().borders(Borders::ALL).title(title)
}

/// Time left on a reservation, as the orders list and the reservation both show it.
pub fn countdown(seconds: i64) -> String {
    if seconds <= 0 {
        "expired".into()
    } else {
        format!("expires in {:02}:{:02}", seconds / 60, seconds % 60)
    }
}

/// Draws a paged list as a table in a box titled `title` and the position ("12 of 50+"),
/// and records its rows for the mouse. In place of rows: the last load's error when there
/// is nothing to show, else `empty` once the first answer came (never before: an empty
/// list that has not loaded yet is not "no tickets").
#[allow(clippy::too_many_arguments)]
pub fn paged_table<T>(
    f: &mut Frame,
    area: Rect,
    title: &str,
    table: Table,
    paged: &Paged<T>,
    empty: &str,
    theme: &Theme,
    hits: &RefCell<Hits>,
) {
    let position = paged.position();
    let mut block = boxed(format!(" {title} "));
    if !position.is_empty() {
        block = block.title(Line::from(format!(" {position} ")).right_aligned());
    }
    let mut state = paged.list.table_state();
    f.render_stateful_widget(
        table.block(block).row_highlight_style(theme.selected),
        area,
        &mut state,
    );
    // The table's header takes the first line inside the box.
    let inner = area.inner(Margin::new(1, 1));
    let rows = Rect::new(
        inner.x,
        inner.y.saturating_add(1),
        inner.width,
        inner.height.saturating_sub(1),
    );
    hits.borrow_mut().list = Some(ListRows {
        area: rows,
        offset: state.offset(),
    });
    if paged.list.is_empty() {
        let say = match (&paged.error, paged.loaded) {
            (Some(e), _) => Span::styled(format!("✗ {}", clean(e)), theme.error),
            (None, true) => Span::raw(empty.to_string()),
            (None, false) => Span::styled("Loading…", theme.dim),
        };
        // A blank line above reads better, when there is room for it.
        let gap = u16::from(rows.height > 4);
        let at = rows.inner(Margin::new(1, gap));
        f.render_widget(Paragraph::new(say).wrap(Wrap { trim: true }), at);
    }
}

/// A row of clickable buttons, each drawn `[ label ]`, recorded as the key it stands for.
pub fn buttons(
    f: &mut Frame,
    area: Rect,
    items: &[(&str, ratatui::crossterm::event::KeyCode)],
    theme: &Theme,
    hits: &RefCell<Hits>,
) {
    let mut x = area.x;
    let end = area.x + area.width;
    for (label, code) in items {
        let text = format!("[ {label} ]");
        let w = (Span::raw(&text).width() as u16).min(end.saturating_sub(x));
        if w == 0 || area.height == 0 {
            break;
        }
        let r = Rect::new(x, area.y, w, 1);
        f.render_widget(Paragraph::new(Span::styled(text, theme.button)), r);
        hits.borrow_mut().add(r, Target::Key(*code));
        x = (x + w + 2).min(end);
    }
}
