//! Text forms (sign in, sell, edit): fields, then buttons, one focus walking through both.
//!
//! Field errors are kept on the field itself, so a check done here and an error the server
//! names by field (`Problem::field`) show up in the same place, under the field.

use std::cell::RefCell;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::hits::{Hits, Target};
use super::input::{TextInput, window};
use super::theme::Theme;
use super::{boxed, clean};

/// One text field of a form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Field {
    /// The API's name for it, so a server error about `field` finds it.
    pub name: &'static str,
    pub label: &'static str,
    pub input: TextInput,
    pub secret: bool,
    pub error: Option<String>,
    /// Shown dimmed after an empty field: what it is for, what happens if left empty.
    pub hint: Option<String>,
}

impl Field {
    pub fn new(name: &'static str, label: &'static str) -> Field {
        Field {
            name,
            label,
            ..Field::default()
        }
    }

    pub fn value(&self) -> &str {
        self.input.value()
    }

    /// A secret shows one dot per character: the user can count what they typed (and see
    /// where the cursor is), nobody behind them can read it.
    pub fn shown(&self) -> String {
        if self.secret {
            return "•".repeat(self.value().chars().count());
        }
        self.value().to_string()
    }
}

/// A form: fields, then buttons; `focus` walks through both.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub fields: Vec<Field>,
    pub buttons: Vec<&'static str>,
    pub focus: usize,
}

impl Form {
    fn len(&self) -> usize {
        self.fields.len() + self.buttons.len()
    }

    pub(crate) fn next(&mut self) {
        self.focus = (self.focus + 1) % self.len();
    }

    fn prev(&mut self) {
        self.focus = (self.focus + self.len() - 1) % self.len();
    }

    pub fn focused_field(&mut self) -> Option<&mut Field> {
        self.fields.get_mut(self.focus)
    }

    /// The button under focus, if focus is on a button.
    pub fn focused_button(&self) -> Option<&'static str> {
        self.focus
            .checked_sub(self.fields.len())
            .and_then(|i| self.buttons.get(i).copied())
    }

    pub fn value(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value())
            .unwrap_or("")
    }

    pub(crate) fn set_error(&mut self, name: &str, error: Option<String>) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.name == name) {
            f.error = error;
        }
    }

    pub(crate) fn clear_errors(&mut self) {
        for f in &mut self.fields {
            f.error = None;
        }
    }

    /// Focus, then everything a text input does; returns true when the key was the
    /// form's, so the screen only sees the keys that mean something to it (Enter, Esc).
    pub(crate) fn edit(&mut self, key: KeyEvent) -> bool {
        match key.code {
            KeyCode::Tab | KeyCode::Down => self.next(),
            KeyCode::BackTab | KeyCode::Up => self.prev(),
            // On the buttons, ←/→ move between them.
            KeyCode::Left | KeyCode::Right if self.focused_button().is_some() => {
                if key.code == KeyCode::Left {
                    self.prev()
                } else {
                    self.next()
                }
            }
            _ => {
                let Some(f) = self.focused_field() else {
                    return false;
                };
                match f.input.on_key(key) {
                    Some(changed) => {
                        if changed {
                            f.error = None;
                        }
                    }
                    None => return false,
                }
            }
        }
        true
    }

    /// Pasted text goes into the focused field.
    pub(crate) fn paste(&mut self, text: &str) {
        if let Some(f) = self.focused_field()
            && f.input.paste(text)
        {
            f.error = None;
        }
    }

    /// A click on a field: focus it, the cursor where it was clicked (past the end: at
    /// the end).
    pub(crate) fn click(&mut self, target: Target) {
        match target {
            Target::Field(i, col) if i < self.fields.len() => {
                self.focus = i;
                self.fields[i].input.set_cursor(col as usize);
            }
            Target::Button(i) if i < self.buttons.len() => self.focus = self.fields.len() + i,
            _ => {}
        }
    }
}

/// Columns before a field's text: the focus marker and the label.
const LABEL: u16 = 12;

/// Draws the form line by line (errors wrap under their field), records where each
/// field and button is for the mouse, and puts the terminal's cursor in the focused field.
/// `esc` names what Esc does on this form, if anything.
pub fn render(
    f: &mut Frame,
    area: Rect,
    title: &str,
    form: &Form,
    esc: Option<&str>,
    theme: &Theme,
    hits: &RefCell<Hits>,
) {
    let block = boxed(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let bottom = inner.y + inner.height;
    let mut y = inner.y;
    let mut hits = hits.borrow_mut();
    let text_w = inner.width.saturating_sub(LABEL);
    for (i, field) in form.fields.iter().enumerate() {
        if y >= bottom {
            return;
        }
        let focused = form.focus == i;
        let marker = if focused { "▸ " } else { "  " };
        let label_style = if focused {
            theme.header
        } else {
            Default::default()
        };
        // The edit form starts with the server's title in it.
        let shown = field.shown();
        let (text, cursor) = window(&clean(&shown), field.input.cursor(), text_w as usize);
        let mut spans = vec![
            Span::styled(format!("{marker}{:<9} ", field.label), label_style),
            Span::raw(text),
        ];
        if field.value().is_empty()
            && let Some(h) = &field.hint
        {
            spans.push(Span::styled(format!(" {h}"), theme.dim));
        }
        f.render_widget(
            Paragraph::new(Line::from(spans)),
            Rect::new(inner.x, y, inner.width, 1),
        );
        let text_area = Rect::new(inner.x + LABEL.min(inner.width), y, text_w, 1);
        // The first character shown, so a click at a column lands on that character.
        let first = field.input.cursor().saturating_sub(cursor) as u16;
        hits.add(
            Rect::new(inner.x, y, LABEL.min(inner.width), 1),
            Target::Field(i, u16::MAX),
        );
        hits.add(text_area, Target::Field(i, first));
        if focused && (cursor as u16) < text_w.max(1) {
            f.set_cursor_position(Position::new(text_area.x + cursor as u16, y));
        }
        y += 1;
        if let Some(e) = &field.error {
            let p = Paragraph::new(Span::styled(clean(e).into_owned(), theme.error))
                .wrap(Wrap { trim: true });
            let w = inner.width.saturating_sub(LABEL).max(1);
            let h = (p.line_count(w) as u16).min(bottom - y);
            f.render_widget(p, Rect::new(inner.x + LABEL.min(inner.width), y, w, h));
            y += h;
        }
    }
    y += 1;
    if y >= bottom {
        return;
    }
    let mut x = inner.x;
    for (i, b) in form.buttons.iter().enumerate() {
        let label = format!("[ {b} ]");
        let w = (label.chars().count() as u16).min((inner.x + inner.width).saturating_sub(x));
        let style = if form.focus == form.fields.len() + i {
            theme.selected
        } else {
            theme.button
        };
        let r = Rect::new(x, y, w, 1);
        f.render_widget(Paragraph::new(Span::styled(label, style)), r);
        hits.add(r, Target::Button(i));
        x = (x + w + 2).min(inner.x + inner.width);
    }
    y += 1;
    if y < bottom {
        let hint = match esc {
            Some(esc) => format!("Tab: next field, Enter: go, Esc: {esc}"),
            None => "Tab: next field, Enter: go".to_string(),
        };
        f.render_widget(
            Paragraph::new(Span::styled(hint, theme.dim)).wrap(Wrap { trim: true }),
            Rect::new(inner.x, y, inner.width, bottom - y),
        );
    }
}
