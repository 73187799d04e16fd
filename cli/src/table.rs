//! Tables for people: columns aligned by how wide each character shows (a CJK character
//! or an emoji takes two cells, an accent none), and cut to the width of the terminal so a
//! row never wraps. comfy-table does the measuring and the cutting.

use std::io::IsTerminal;

use comfy_table::{ColumnConstraint, ContentArrangement, Row, Table, presets};
use tix_client::format::printable;

/// The width tables must fit: the terminal's when stdout is one; else `COLUMNS` when set
/// (a script or a test asking for a width); else none, so a pipe gets whole lines.
pub fn width() -> Option<u16> {
    // Unit tests compare whole tables: the terminal or COLUMNS of whoever runs them must
    // not change the text (tests/tables.rs checks the widths through the binary).
    if cfg!(test) {
        return None;
    }
    if std::io::stdout().is_terminal() {
        // comfy-table asks the terminal (through crossterm) when stdout is one.
        if let Some(w) = Table::new().width() {
            return Some(w);
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|w| *w > 0)
}

/// Left-aligned columns two spaces apart under a header in capitals, fitted to [`width`].
/// Control and format characters in the cells show as U+FFFD ([`printable`]).
/// Only the `flexible` columns (free text: titles, names) give up width, ending in `…`;
/// the others (ids, money, states) are always whole, since people copy and compare them.
pub fn table(header: &[&str], rows: &[Vec<String>], flexible: &[usize]) -> String {
    render(header, rows, flexible, width())
}

pub fn render(
    header: &[&str],
    rows: &[Vec<String>],
    flexible: &[usize],
    width: Option<u16>,
) -> String {
    let mut t = Table::new();
    t.force_no_tty()
        .load_preset(presets::NOTHING)
        .set_truncation_indicator("…")
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    if let Some(w) = width {
        t.set_width(w);
    }
    for cells in rows {
        // Cells hold the server's text (titles, names): nothing in them may reach the
        // terminal as a control sequence, and U+FFFD is measured like any character.
        let mut row = Row::from(cells.iter().map(|c| printable(c)));
        // One line per row: what does not fit is cut, not wrapped onto a second line.
        row.max_height(1);
        t.add_row(row);
    }
    let last = header.len().saturating_sub(1);
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, if i < last { 2 } else { 0 }));
        if !flexible.contains(&i) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[[&str; 3]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn without_a_width_columns_align_and_nothing_is_cut() {
        let t = render(
            &["a", "long header", "c"],
            &rows(&[["wide cell", "x", "y"]]),
            &[1],
            None,
        );
        assert_eq!(t, "A          LONG HEADER  C\nwide cell  x            y");
    }

    #[test]
    fn wide_characters_take_two_cells_and_only_flexible_columns_are_cut() {
        let r = rows(&[
            ["t-1", "東京ドーム 🎸 ライブ", "$25.50"],
            ["t-2", "Jazz", "$9.00"],
        ]);
        // 24 cells: 5 for the id, 6 for the price, 13 left for the title and its gap.
        let t = render(&["id", "title", "price"], &r, &[1], Some(24));
        assert_eq!(
            t,
            "ID   TITLE        PRICE\n\
             t-1  東京ドーム…  $25.50\n\
             t-2  Jazz         $9.00"
        );
        let wide = render(&["id", "title", "price"], &r, &[1], None);
        assert_eq!(
            wide,
            "ID   TITLE                 PRICE\n\
             t-1  東京ドーム 🎸 ライブ  $25.50\n\
             t-2  Jazz                  $9.00"
        );
    }
}
