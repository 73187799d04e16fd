//! Pieces several screens share, so a list, a form or a box looks and behaves the same on
//! every screen.

pub mod form;
pub mod hits;
pub mod input;
pub mod list;
pub mod theme;

use std::borrow::Cow;
use std::cell::RefCell;

use ratatui::Frame;
use ratatui::layout::{Margin, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Table, Wrap};

use hits::{Hits, ListRows, Target};
use list::Paged;
use theme::Theme;

/// Text from the server (titles, display names, error messages) made safe to draw: every
/// control character (Unicode Cc: ESC, BEL, CR, …) and every invisible or format
/// character (Cf: bidi overrides and isolates, zero-width spaces and joiners, soft hyphen,
/// word joiner, BOM, tag characters, …, plus line separators and blank "filler" letters)
/// becomes U+FFFD. ratatui hands such characters to the terminal as they are, where an
/// escape sequence can rewrite the screen (or the clipboard) and a right-to-left override
/// can reverse a row. One character for one, so a cursor counted in characters stays
/// right. Every string the server supplied goes through this before it becomes a
/// `Span`, a `Cell` or a `Paragraph`.
pub fn clean(text: &str) -> Cow<'_, str> {
    if text.chars().any(unsafe_char) {
        Cow::Owned(
            text.chars()
                .map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Whether `c` is a control (Cc) or format (Cf) character, or another one drawn as
/// nothing (line and paragraph separators, Hangul fillers), which [`clean`] replaces.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Cf, the whole category as of Unicode 16.
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
                // Zl, Zp: a line break in the middle of a cell.
                | '\u{2028}'
                | '\u{2029}'
                // Letters drawn as blank space, a favourite for invisible names.
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
        )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_replaces_controls_and_invisibles_one_for_one() {
        assert!(matches!(clean("Zoë — 🎟 ok"), Cow::Borrowed(_)));
        for bad in [
            '\u{1b}',
            '\u{7}',
            '\r',
            '\n',
            '\t',
            '\u{7f}',
            '\u{9b}',
            '\u{AD}',
            '\u{61C}',
            '\u{200B}',
            '\u{200D}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{2028}',
            '\u{3164}',
        ] {
            let s = format!("a{bad}b");
            assert_eq!(clean(&s), "a\u{FFFD}b", "{:?}", bad);
        }
        assert_eq!(clean("\u{1b}]52;c;AAAA\u{7}"), "\u{FFFD}]52;c;AAAA\u{FFFD}");
    }
}
