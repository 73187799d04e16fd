//! The key help overlay, drawn over whatever screen is showing and closed by any key — and
//! [`KEYS`], the one list of keys: the overlay shows all of it, each screen's footer the
//! entries marked for it, docs/tui.md repeats it, and a test checks that every key a
//! screen handles is in it.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Text;
use ratatui::widgets::{Cell, Clear, Row, Table};

use crate::app::{App, Screen};
use crate::widgets::boxed;

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
/// open every key is, so the key that closes it does nothing else: the moving keys scroll
/// it when the terminal is too small to show every key, and any other key closes it. `?`
/// is a letter while typing, F1 never is.
pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> bool {
    if app.help {
        let page = app.help_shown.get().max(1) as isize;
        let by = match key.code {
            K::Down | K::Char('j') => Some(1),
            K::Up | K::Char('k') => Some(-1),
            K::PageDown => Some(page),
            K::PageUp => Some(-page),
            K::Home | K::Char('g') => Some(isize::MIN),
            K::End | K::Char('G') => Some(isize::MAX),
            _ => None,
        };
        if !by.is_some_and(|by| scroll(app, by)) {
            app.help = false;
        }
        return true;
    }
    if key.code == KeyCode::F(1) || (key.code == KeyCode::Char('?') && !app.typing()) {
        app.help = true;
        app.help_top = 0;
        return true;
    }
    false
}

/// Moves the open help by `by` keys (clamped to the list); false when it shows every key
/// and so has nothing to scroll. The wheel comes here too.
pub(crate) fn scroll(app: &mut App, by: isize) -> bool {
    let last = app.help_last.get();
    if last == 0 {
        return false;
    }
    // From where it shows now: a key kept from a larger terminal may be past the end.
    app.help_top = app.help_top.min(last).saturating_add_signed(by).min(last);
    true
}

/// The width of the keys' column.
const KEYS_W: u16 = 16;

/// Every key, its text wrapped to the room there is, from the key scrolled to; where the
/// terminal is too small for all of them, the title says which it shows.
pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let w = area.width.min(66);
    let does_w = w.saturating_sub(2 + KEYS_W + 1) as usize;
    let texts: Vec<Vec<String>> = KEYS.iter().map(|k| wrap(k.does, does_w)).collect();
    let lines: usize = texts.iter().map(Vec::len).sum();
    let h = area.height.min(lines as u16 + 2);
    let room = h.saturating_sub(2) as usize;
    // The furthest it scrolls: the first key from which all the rest fit.
    let mut last = KEYS.len();
    let mut used = 0;
    while last > 0 && used + texts[last - 1].len() <= room {
        used += texts[last - 1].len();
        last -= 1;
    }
    let last = last.min(KEYS.len() - 1);
    let top = app.help_top.min(last);
    let (mut shown, mut used) = (0, 0);
    for text in &texts[top..] {
        if shown > 0 && used + text.len() > room {
            break;
        }
        used += text.len();
        shown += 1;
    }
    app.help_last.set(last);
    app.help_shown.set(shown);
    let rows: Vec<Row> = KEYS[top..top + shown]
        .iter()
        .zip(&texts[top..])
        .map(|(k, text)| {
            Row::new(vec![
                Cell::from(k.keys).style(app.theme.key),
                Cell::from(Text::from_iter(text.iter().map(String::as_str))),
            ])
            .height(text.len() as u16)
        })
        .collect();
    let block = if last > 0 {
        boxed(format!(
            " keys {}–{} of {} · ↑↓ more ",
            top + 1,
            top + shown,
            KEYS.len()
        ))
        .title_bottom(" any other key closes ")
    } else {
        boxed(" keys — any key closes ")
    };
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let table = Table::new(rows, [Constraint::Length(KEYS_W), Constraint::Min(10)]).block(block);
    f.render_widget(Clear, popup);
    f.render_widget(table, popup);
}

/// `text` in lines of at most `width` characters, broken at spaces; a word longer than a
/// line is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let (n, w) = (line.chars().count(), word.chars().count());
        if n > 0 && n + 1 + w > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let rest = line.chars().skip(width).collect();
            lines.push(line.chars().take(width).collect());
            line = rest;
        }
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_only_longer_words() {
        assert_eq!(
            wrap("a page up/down, first", 10),
            ["a page", "up/down,", "first"]
        );
        assert_eq!(wrap("quit", 10), ["quit"]);
        assert_eq!(wrap("abcdefghijkl x", 5), ["abcde", "fghij", "kl x"]);
        assert_eq!(wrap("", 5), [""]);
    }
}
