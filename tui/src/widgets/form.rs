//! Text forms (sign in, sell, edit): fields, then buttons, one focus walking through both.
//!
//! Field errors are kept on the field itself, so a check done here and an error the server
//! names by field (`Problem::field`) show up in the same place, under the field.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{boxed, highlight};

/// One text field of a form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field {
    /// The API's name for it, so a server error about `field` finds it.
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub secret: bool,
    pub error: Option<String>,
}

impl Field {
    pub fn new(name: &'static str, label: &'static str) -> Field {
        Field {
            name,
            label,
            ..Field::default()
        }
    }

    /// A secret shows one dot per character: the user can count what they typed, nobody
    /// behind them can read it.
    pub fn shown(&self) -> String {
        if self.secret {
            return "•".repeat(self.value.chars().count());
        }
        self.value.clone()
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
            .map(|f| f.value.as_str())
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

    /// Typing, Backspace, Tab and arrows; returns true when the key was the form's, so the
    /// screen only sees the keys that mean something to it (Enter, Esc).
    pub(crate) fn edit(&mut self, key: KeyEvent) -> bool {
        match key.code {
            KeyCode::Tab | KeyCode::Down => self.next(),
            KeyCode::BackTab | KeyCode::Up => self.prev(),
            KeyCode::Backspace => {
                if let Some(f) = self.focused_field() {
                    f.value.pop();
                }
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                match self.focused_field() {
                    Some(f) => {
                        f.value.push(c);
                        f.error = None;
                    }
                    None => return false,
                }
            }
            _ => return false,
        }
        true
    }
}

pub fn render(f: &mut Frame, area: Rect, title: &str, form: &Form) {
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = form.focus == i;
        let marker = if focused { "▸ " } else { "  " };
        let cursor = if focused { "▏" } else { "" };
        let style = if focused {
            Style::new().bold()
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{marker}{:<9} ", field.label), style),
            Span::raw(format!("{}{cursor}", field.shown())),
        ]));
        if let Some(e) = &field.error {
            lines.push(Line::from(Span::styled(
                format!("            {e}"),
                Style::new().fg(Color::Red),
            )));
        }
    }
    lines.push(Line::from(""));
    let buttons: Vec<Span> = form
        .buttons
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            let style = if form.focus == form.fields.len() + i {
                highlight()
            } else {
                Style::new()
            };
            [Span::styled(format!("[ {b} ]"), style), Span::raw("  ")]
        })
        .collect();
    lines.push(Line::from(buttons));
    lines.push(Line::from(Span::styled(
        "Tab: next field, Enter: go, Esc: back",
        Style::new().fg(Color::DarkGray),
    )));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(boxed(title)),
        area,
    );
}
