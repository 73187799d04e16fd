//! A list with a cursor, shared by every list screen (market, orders, my tickets, sales),
//! and [`Paged`]: such a list loaded from the API a page at a time.
//!
//! The one rule all of them need lives here: the cursor is on an item, or at 0 when there
//! are none. Lists are replaced on every refresh (wholesale, or their first rows when more
//! are loaded than one request reloads), so keeping that rule is the list's job, not
//! each screen's.

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

    /// A reload of the first `head.len()` rows only (a list longer than one request can
    /// reload): they replace the rows in front, the rows loaded beyond them stay (less
    /// any the new rows now hold), and the cursor follows its item as with
    /// [`replace_keeping`](Self::replace_keeping).
    pub fn replace_head<K: PartialEq>(&mut self, head: Vec<T>, key: impl Fn(&T) -> K) {
        let kept = self.selected_item().map(&key);
        let tail = self.items.split_off(head.len().min(self.items.len()));
        let mut items = head;
        let fresh = items.len();
        for t in tail {
            if !items[..fresh].iter().any(|h| key(h) == key(&t)) {
                items.push(t);
            }
        }
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

    /// Puts the cursor on item `i` (a click); out of range, it stays where it is.
    pub fn select(&mut self, i: usize) {
        if i < self.items.len() {
            self.selected = i;
        }
    }

    /// Whether the cursor is on the last item (the moment to load the next page).
    pub fn at_end(&self) -> bool {
        !self.items.is_empty() && self.selected == self.last_index()
    }

    /// Adds items at the end, leaving out those already there (matched by `key`): rows
    /// can shift between two page requests, and a row is shown once.
    pub fn append<K: PartialEq>(&mut self, items: Vec<T>, key: impl Fn(&T) -> K) {
        for t in items {
            if !self.items.iter().any(|have| key(have) == key(&t)) {
                self.items.push(t);
            }
        }
    }

    /// The list keys every list screen shares: ↑/k, ↓/j, Home/g, End/G, PageUp and
    /// PageDown (by `page` rows: what the screen showed last). Returns whether the key was
    /// one of them, so a screen can pass on whatever it did not handle itself.
    pub fn on_key(&mut self, code: KeyCode, page: usize) -> bool {
        match code {
            KeyCode::Down | KeyCode::Char('j') => self.down(),
            KeyCode::Up | KeyCode::Char('k') => self.up(),
            KeyCode::Home | KeyCode::Char('g') => self.first(),
            KeyCode::End | KeyCode::Char('G') => self.last(),
            KeyCode::PageDown => self.page_down(page.max(1)),
            KeyCode::PageUp => self.page_up(page.max(1)),
            _ => return false,
        }
        true
    }

    /// For drawing as a ratatui `Table`: no highlighted row when there is nothing to select.
    pub fn table_state(&self) -> TableState {
        TableState::default().with_selected((!self.is_empty()).then_some(self.selected))
    }
}

/// Rows asked for per page (the API's default page, well under its maximum of 200).
pub const PAGE: u32 = 50;
/// The API's largest page: a refresh reloads at most this many rows.
pub const MAX_PAGE: u32 = 200;

/// A list the API serves in pages (offset paging): what has been loaded, whether there
/// is more, and the last load's error, which the screen shows where the rows would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    pub list: SelectList<T>,
    /// The last page came back full: there may be more behind it.
    pub more: bool,
    /// A next page was asked for and has not arrived (so it is asked for once).
    pub loading: bool,
    /// The last load failed: why, in the API's words.
    pub error: Option<String>,
    /// Whether any answer came yet ("no tickets" is only said after one did).
    pub loaded: bool,
    /// How many there are in all, when the API says so (sales do).
    pub total: Option<u64>,
}

impl<T> Default for Paged<T> {
    fn default() -> Self {
        Paged {
            list: SelectList::default(),
            more: false,
            loading: false,
            error: None,
            loaded: false,
            total: None,
        }
    }
}

impl<T> Paged<T> {
    /// How many rows a refresh reloads: every loaded row (whole pages), within the API's
    /// maximum, so a refresh keeps the cursor where the user scrolled to. Beyond that
    /// maximum the reload covers the first rows and [`on_page`](Self::on_page) keeps the
    /// rest.
    pub fn refresh_limit(&self) -> u32 {
        let len = self.list.len() as u32;
        len.div_ceil(PAGE).max(1).saturating_mul(PAGE).min(MAX_PAGE)
    }

    /// The offset of the next page to load, once, when the cursor is on the last row and
    /// the last page was full.
    pub fn next_page(&mut self) -> Option<u32> {
        if self.more && !self.loading && self.list.at_end() {
            self.loading = true;
            return Some(self.list.len() as u32);
        }
        None
    }

    /// An answer for `offset`..`offset+limit`: offset 0 is a reload (the cursor follows
    /// its item), a later offset the next page. A full reload shorter than what is loaded
    /// (more than [`MAX_PAGE`] rows) replaces only the rows in front and keeps the rest,
    /// so the list does not shrink under the cursor. A page that no longer fits (a reload
    /// landed first) is dropped; the cursor reaching the end asks again.
    pub fn on_page<K: PartialEq>(
        &mut self,
        offset: u32,
        limit: u32,
        items: Vec<T>,
        key: impl Fn(&T) -> K,
    ) {
        self.loaded = true;
        self.error = None;
        let full = items.len() as u32 >= limit;
        if offset == 0 {
            self.loading = false;
            if full && items.len() < self.list.len() {
                // Rows past the reload are still as loaded, and so is whether more follow.
                self.list.replace_head(items, key);
            } else {
                self.list.replace_keeping(items, key);
                self.more = full;
            }
        } else if offset as usize == self.list.len() {
            self.loading = false;
            self.list.append(items, key);
            self.more = full;
        } else if offset as usize > self.list.len() {
            self.loading = false;
        }
    }

    pub fn on_error(&mut self, message: &str) {
        self.loading = false;
        self.error = Some(message.to_string());
    }

    /// "12 of 50+" while more may follow, "12 of 73" when all are loaded or the total is
    /// known; empty for an empty list.
    pub fn position(&self) -> String {
        if self.list.is_empty() {
            return String::new();
        }
        let at = self.list.selected() + 1;
        match self.total {
            Some(n) => format!("{at} of {n}"),
            None if self.more => format!("{at} of {}+", self.list.len()),
            None => format!("{at} of {}", self.list.len()),
        }
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
        l.on_key(KeyCode::Char('j'), 10);
        l.on_key(KeyCode::Down, 10);
        assert_eq!(l.selected(), 2);
        l.on_key(KeyCode::Char('k'), 10);
        assert_eq!(l.selected(), 1);
        l.on_key(KeyCode::Char('G'), 10);
        assert_eq!(l.selected(), 2);
        l.on_key(KeyCode::Home, 10);
        assert_eq!(l.selected(), 0);
        l.on_key(KeyCode::PageDown, 2);
        assert_eq!(l.selected(), 2);
        assert!(!l.on_key(KeyCode::Char('x'), 10));
        assert_eq!(l.selected(), 2);
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

    #[test]
    fn pages_append_once_and_say_where_the_cursor_is() {
        let mut p: Paged<u32> = Paged::default();
        assert_eq!(p.refresh_limit(), PAGE);
        p.on_page(0, 2, vec![1, 2], |x| *x);
        assert_eq!(p.position(), "1 of 2+");
        assert_eq!(p.next_page(), None, "not at the end yet");
        p.list.last();
        assert_eq!(p.next_page(), Some(2));
        assert_eq!(p.next_page(), None, "asked once");
        p.on_page(2, 3, vec![2, 3], |x| *x);
        assert_eq!(p.list.items(), &[1, 2, 3]);
        assert_eq!(p.position(), "2 of 3");
        assert!(!p.more);
        p.on_page(7, 2, vec![9], |x| *x);
        assert_eq!(p.list.len(), 3, "a page that no longer fits is dropped");
        p.total = Some(73);
        assert_eq!(p.position(), "2 of 73");
    }

    #[test]
    fn a_refresh_past_the_largest_page_keeps_the_rows_beyond_it() {
        let mut p: Paged<u32> = Paged::default();
        for at in (0..250).step_by(50) {
            p.on_page(at, PAGE, (at..at + 50).collect(), |x| *x);
        }
        assert_eq!(p.list.len(), 250);
        assert!(p.more);
        p.list.select(240);
        assert_eq!(p.refresh_limit(), MAX_PAGE);
        // Row 0 went, a new row came first: the first 200 rows, shifted.
        let mut fresh: Vec<u32> = vec![1000];
        fresh.extend(1..200);
        p.on_page(0, MAX_PAGE, fresh, |x| *x);
        assert_eq!(p.list.len(), 250, "the rows past 200 stay");
        assert_eq!(
            p.list.selected_item(),
            Some(&240),
            "the cursor stays on its row"
        );
        assert_eq!(p.list.items()[0], 1000);
        assert_eq!(p.list.items()[199], 199);
        assert_eq!(p.list.items()[200], 200);
        assert!(p.more, "more may still follow");
        // A short reload is the whole list: it ends there.
        p.on_page(0, MAX_PAGE, vec![1, 2, 3], |x| *x);
        assert_eq!(p.list.len(), 3);
        assert!(!p.more);
    }
}
