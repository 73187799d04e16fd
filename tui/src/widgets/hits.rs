//! Where things were drawn, for the mouse. Rendering records each clickable area as it
//! draws it; a click is then looked up here and turned into what the keyboard would do,
//! so every mouse action goes through the same key handling (and the same tests).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Position, Rect};

/// What a click on an area does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A button or a key hint: the same as pressing this key.
    Key(KeyCode),
    /// A form's field `n` whose first character shown is this one: focus it, the cursor
    /// at the clicked character (`u16::MAX`: at the end).
    Field(usize, u16),
    /// A form's button `n`: focus it and press Enter.
    Button(usize),
}

/// The rows of the list on screen: where they are and which item the top one is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListRows {
    pub area: Rect,
    pub offset: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hits {
    pub targets: Vec<(Rect, Target)>,
    pub list: Option<ListRows>,
}

impl Hits {
    pub fn add(&mut self, area: Rect, target: Target) {
        if area.width > 0 && area.height > 0 {
            self.targets.push((area, target));
        }
    }

    /// The topmost target at a cell (the last drawn wins, as on screen). A field's target
    /// comes back with the clicked character in it.
    pub fn target_at(&self, column: u16, row: u16) -> Option<Target> {
        let p = Position::new(column, row);
        let (area, t) = self.targets.iter().rev().find(|(r, _)| r.contains(p))?;
        Some(match *t {
            Target::Field(i, first) if first != u16::MAX => {
                Target::Field(i, first.saturating_add(column - area.x))
            }
            t => t,
        })
    }

    /// The list item at a cell, if a row of the list is there.
    pub fn row_at(&self, column: u16, row: u16) -> Option<usize> {
        let l = self.list?;
        l.area
            .contains(Position::new(column, row))
            .then(|| l.offset + (row - l.area.y) as usize)
    }

    /// How many rows the list showed (what PageUp/PageDown move by).
    pub fn page_rows(&self) -> usize {
        self.list.map_or(10, |l| l.area.height.max(1) as usize)
    }
}

/// A key event as the keyboard would send it.
pub fn press(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}
