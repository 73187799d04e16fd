//! A list with a cursor, shared by every list screen (market, orders, my tickets).
//!
//! The one rule all of them need lives here: the cursor is on an item, or at 0 when there
//! are none. Lists are replaced wholesale on every refresh, so keeping that rule is the
//! list's job, not each screen's.

use ratatui::crossterm::event::KeyCode;
use ratatui::widgets::TableState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectList<T> {
    items: Vec<T>,
    selected: usize,
}

// Not derived: a derive would ask `T: Default`, which an empty list does not need.
impl<T> Default for SelectList<T> {
    fn default() -> Self {
        SelectList {
            items: Vec::new(),
            selected: 0,
        }
    }
}

impl<T> SelectList<T> {
    pub fn new(items: Vec<T>) -> Self {
        SelectList { items, selected: 0 }
    }

    pub fn items(&self) -> &[T] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The cursor's index (0 on an empty list).
    pub fn selected(&self) -> usize {
        self.selected
    }

    pub fn selected_item(&self) -> Option<&T> {
        self.items.get(self.selected)
    }

    fn last_index(&self) -> usize {
        self.items.len().saturating_sub(1)
    }

    /// New contents: the cursor keeps its place, pulled in if the list got shorter.
    pub fn replace(&mut self, items: Vec<T>) {
        self.items = items;
        self.selected = self.selected.min(self.last_index());
    }

    /// New contents, the cursor following the item it was on (matched by `key`), so a
    /// refresh that adds a row above does not move what the user is looking at. When that
    /// item is gone, the cursor keeps its place as with [`replace`](Self::replace).
    pub fn replace_keeping<K: PartialEq>(&mut self, items: Vec<T>, key: impl Fn(&T) -> K) {
        let kept = self.selected_item().map(&key);
        self.items = items;
        self.selected = kept
            .and_then(|k| self.items.iter().position(|t| key(t) == k))
            .unwrap_or(self.selected.min(self.last_index()));
    }

    pub fn up(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    pub fn down(&mut self) {
        if self.selected + 1 < self.items.len() {
            self.selected += 1;
        }
    }

    pub fn first(&mut self) {
        self.selected = 0;
    }

    pub fn last(&mut self) {
        self.selected = self.last_index();
    }

    pub fn page_up(&mut self, rows: usize) {
        self.selected = self.selected.saturating_sub(rows);
    }

    pub fn page_down(&mut self, rows: usize) {
        self.selected = (self.selected + rows).min(self.last_index());
    }

    /// The list keys every list screen shares: ↑/k, ↓/j, Home/g, End/G. Other keys are
    /// ignored, so a screen can pass on whatever it did not handle itself.
    pub fn on_key(&mut self, code: KeyCode) {
        match code {
            KeyCode::Down | KeyCode::Char('j') => self.down(),
            KeyCode::Up | KeyCode::Char('k') => self.up(),
            KeyCode::Home | KeyCode::Char('g') => self.first(),
            KeyCode::End | KeyCode::Char('G') => self.last(),
            _ => {}
        }
    }

    /// For drawing as a ratatui `Table`: no highlighted row when there is nothing to select.
    pub fn table_state(&self) -> TableState {
        TableState::default().with_selected((!self.is_empty()).then_some(self.selected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_stay_inside_the_list() {
        let mut l = SelectList::new(vec!['a', 'b', 'c', 'd', 'e']);
        l.up();
        assert_eq!(l.selected(), 0);
        l.down();
        l.down();
        assert_eq!(l.selected_item(), Some(&'c'));
        l.last();
        l.down();
        assert_eq!(l.selected(), 4);
        l.page_up(3);
        assert_eq!(l.selected(), 1);
        l.page_up(3);
        assert_eq!(l.selected(), 0);
        l.page_down(3);
        assert_eq!(l.selected(), 3);
        l.page_down(3);
        assert_eq!(l.selected(), 4);
        l.first();
        assert_eq!(l.selected(), 0);
    }

    #[test]
    fn keys_move_like_the_arrows_and_vi() {
        let mut l = SelectList::new(vec![1, 2, 3]);
        l.on_key(KeyCode::Char('j'));
        l.on_key(KeyCode::Down);
        assert_eq!(l.selected(), 2);
        l.on_key(KeyCode::Char('k'));
        assert_eq!(l.selected(), 1);
        l.on_key(KeyCode::Char('G'));
        assert_eq!(l.selected(), 2);
        l.on_key(KeyCode::Home);
        assert_eq!(l.selected(), 0);
        l.on_key(KeyCode::Char('x'));
        assert_eq!(l.selected(), 0);
    }

    #[test]
    fn an_empty_list_has_its_cursor_at_zero_and_nothing_highlighted() {
        let mut l: SelectList<u8> = SelectList::default();
        l.down();
        l.last();
        l.page_down(10);
        assert_eq!(l.selected(), 0);
        assert_eq!(l.selected_item(), None);
        assert_eq!(l.table_state().selected(), None);
    }

    #[test]
    fn a_refresh_clamps_or_follows_the_item() {
        let mut l = SelectList::new(vec!["a", "b", "c"]);
        l.last();
        l.replace(vec!["a"]);
        assert_eq!(l.selected(), 0);

        let mut l = SelectList::new(vec!["a", "b", "c"]);
        l.down();
        l.replace_keeping(vec!["new", "a", "b"], |s| *s);
        assert_eq!(l.selected_item(), Some(&"b"));
        l.replace_keeping(vec!["x", "y", "z"], |s| *s);
        assert_eq!(
            l.selected(),
            2,
            "the item is gone: the cursor keeps its place"
        );
        l.replace_keeping(vec!["x"], |s| *s);
        assert_eq!(l.selected(), 0);
    }
}
