//! A one-line text input with a cursor, built on `tui-input`: the same editing keys in
//! every form, the card field and the search (←/→, Home/End, Ctrl-←/→ by word, Ctrl-W and
//! Alt-Backspace delete a word, Ctrl-U the line, Ctrl-K to the end, Delete), and paste.

use ratatui::crossterm::event::{Event, KeyEvent};
use ratatui::text::Span;
use tui_input::backend::crossterm::to_input_request;
use tui_input::{Input, InputRequest};

#[derive(Debug, Clone, Default)]
pub struct TextInput(Input);

// `Input` has no `PartialEq`; screens compare by what the user sees: text and cursor.
impl PartialEq for TextInput {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value() && self.cursor() == other.cursor()
    }
}

impl TextInput {
    /// The cursor goes after the text, where typing continues.
    pub fn new(value: &str) -> TextInput {
        TextInput(Input::new(value.to_string()))
    }

    pub fn value(&self) -> &str {
        self.0.value()
    }

    /// The cursor, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.0.cursor()
    }

    pub fn clear(&mut self) {
        self.0.reset();
    }

    pub fn set_cursor(&mut self, at: usize) {
        self.0.handle(InputRequest::SetCursor(at));
    }

    /// An editing key: `None` when the key is not one (Enter, Tab, arrows up and down…),
    /// else whether the text changed (a cursor move leaves it as it was).
    pub fn on_key(&mut self, key: KeyEvent) -> Option<bool> {
        let req = to_input_request(&Event::Key(key))?;
        let before = self.value().len();
        let changed = self.0.handle(req).is_some_and(|c| c.value);
        Some(changed || before != self.value().len())
    }

    /// Inserts pasted text at the cursor. A field is one line: line breaks become spaces
    /// and other control characters are dropped, so a pasted card number with a trailing
    /// newline does not submit or corrupt anything.
    pub fn paste(&mut self, text: &str) -> bool {
        let mut changed = false;
        for c in text.trim_end_matches(['\r', '\n']).chars() {
            let c = if c == '\n' || c == '\r' || c == '\t' {
                ' '
            } else {
                c
            };
            if !c.is_control() {
                self.0.handle(InputRequest::InsertChar(c));
                changed = true;
            }
        }
        changed
    }
}

/// What fits of `shown` (the text as displayed: masked or not, as many characters as the
/// value) in `width` columns with the cursor in view, and the cursor's column in it.
pub fn window(shown: &str, cursor: usize, width: usize) -> (String, usize) {
    let cols: Vec<(char, usize)> = shown
        .chars()
        .map(|c| (c, Span::raw(c.to_string()).width()))
        .collect();
    let cursor = cursor.min(cols.len());
    // Scroll just enough that the cursor's cell (one past the text at the end) fits.
    let mut start = 0;
    let upto = |s: usize| cols[s..cursor].iter().map(|(_, w)| w).sum::<usize>();
    while start < cursor && upto(start) + 1 > width.max(1) {
        start += 1;
    }
    let mut text = String::new();
    let mut used = 0;
    for (c, w) in &cols[start..] {
        if used + w > width {
            break;
        }
        text.push(*c);
        used += w;
    }
    (text, upto(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn edits_at_the_cursor() {
        let mut i = TextInput::new("hello world");
        assert_eq!(
            i.on_key(key(KeyCode::Home, KeyModifiers::NONE)),
            Some(false)
        );
        assert_eq!(
            i.on_key(key(KeyCode::Char('>'), KeyModifiers::NONE)),
            Some(true)
        );
        i.on_key(key(KeyCode::End, KeyModifiers::NONE));
        i.on_key(key(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(i.value(), ">hello ");
        i.on_key(key(KeyCode::Backspace, KeyModifiers::ALT));
        assert_eq!(i.value(), ">");
        i.paste("a\nb\u{7}c\n");
        assert_eq!(i.value(), ">a bc");
        i.on_key(key(KeyCode::Left, KeyModifiers::NONE));
        i.on_key(key(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(i.value(), "");
        assert_eq!(i.on_key(key(KeyCode::Enter, KeyModifiers::NONE)), None);
        assert_eq!(i.on_key(key(KeyCode::Tab, KeyModifiers::NONE)), None);
    }

    #[test]
    fn the_window_keeps_the_cursor_in_view() {
        assert_eq!(window("abcdef", 6, 10), ("abcdef".into(), 6));
        assert_eq!(window("abcdef", 6, 4), ("def".into(), 3));
        assert_eq!(window("abcdef", 0, 4), ("abcd".into(), 0));
        assert_eq!(window("", 0, 0), ("".into(), 0));
    }
}
