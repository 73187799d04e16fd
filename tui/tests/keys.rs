//! Text editing in every field, the search's manners, and the help as the one list of keys.

mod common;

use common::*;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tix_api::{OrderStatus, Sales};
use tix_tui::app::{Action, App, Effect, Page, Screen, update};
use tix_tui::screens::help::{self, Footer, KEYS};

fn alt_backspace() -> Action {
    Action::Key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::ALT))
}

#[test]
fn fields_edit_at_the_cursor_with_word_and_line_deletes() {
    let mut app = signed_in();
    update(&mut app, ch('s'));
    typed(&mut app, "Jazz night");
    update(&mut app, key(KeyCode::Home));
    typed(&mut app, "Late ");
    update(&mut app, key(KeyCode::End));
    typed(&mut app, " live");
    update(&mut app, ctrl('w'));
    let title = |app: &App| match &app.screen {
        Screen::Sell(f) => f.value("title").to_string(),
        _ => panic!(),
    };
    assert_eq!(title(&app), "Late Jazz night ");
    update(&mut app, alt_backspace());
    assert_eq!(title(&app), "Late Jazz ");
    update(&mut app, key(KeyCode::Left));
    update(&mut app, key(KeyCode::Left));
    update(&mut app, key(KeyCode::Delete));
    assert_eq!(title(&app), "Late Jaz ");
    update(&mut app, ctrl('u'));
    assert_eq!(title(&app), "");
    assert!(!app.quit, "Ctrl-U is not a shortcut");

    // The card field of a reservation edits the same way.
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 600))),
    );
    typed(&mut app, "tok_vsa");
    update(&mut app, key(KeyCode::Left));
    update(&mut app, key(KeyCode::Left));
    typed(&mut app, "i");
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::Pay {
            order_id: "o1".into(),
            token: "tok_visa".into()
        }]
    );
}

#[test]
fn the_search_clears_on_esc_and_slash_starts_a_fresh_one() {
    let mut app = signed_in();
    update(&mut app, ch('/'));
    typed(&mut app, "jazz");
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.market.search.value(), "jazz");
    // `/` again: a new query, not more letters on the old one.
    let effects = update(&mut app, ch('/'));
    assert_eq!(app.market.search.value(), "");
    assert_eq!(
        effects,
        vec![Effect::LoadTickets {
            search: String::new(),
            offset: 0,
            limit: 50
        }]
    );
    typed(&mut app, "rock");
    // Esc while typing clears the query and leaves the box.
    let effects = update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.market.search.value(), "");
    assert!(!app.typing());
    assert_eq!(effects.len(), 1);
    // An answer for a query no longer in the box is dropped.
    update(&mut app, market_page("rock", 0, many(0, 1)));
    assert_eq!(app.market.tickets.list.len(), 3);
    // Editing keys work in the search as in any field.
    update(&mut app, ch('/'));
    typed(&mut app, "big band");
    update(&mut app, ctrl('w'));
    assert_eq!(app.market.search.value(), "big ");
}

/// Every screen's keys, tried one by one: a key that changes anything must be listed in
/// the help.
#[test]
fn every_key_a_screen_handles_is_in_the_help() {
    let listed: Vec<KeyCode> = KEYS.iter().flat_map(|k| k.codes.iter().copied()).collect();
    let mut keys: Vec<KeyCode> = (' '..='~').map(KeyCode::Char).collect();
    keys.extend([
        KeyCode::Enter,
        KeyCode::Esc,
        KeyCode::Tab,
        KeyCode::BackTab,
        KeyCode::Up,
        KeyCode::Down,
        KeyCode::Left,
        KeyCode::Right,
        KeyCode::Home,
        KeyCode::End,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::Delete,
        KeyCode::Backspace,
        KeyCode::F(1),
        KeyCode::F(2),
    ]);
    let mut screens = Vec::new();
    let mut market = signed_in();
    market.market.tickets.list.select(1);
    screens.push(market.clone());
    let mut detail = market.clone();
    update(&mut detail, key(KeyCode::Enter));
    screens.push(detail);
    let mut orders = market.clone();
    update(&mut orders, ch('o'));
    update(
        &mut orders,
        Action::Orders(Ok(vec![
            order("o1", OrderStatus::Complete, 0),
            order("o2", OrderStatus::Created, 600),
            order("o3", OrderStatus::Created, 600),
        ])),
    );
    orders.orders.list.select(1);
    screens.push(orders);
    let mut mine = market.clone();
    update(&mut mine, ch('m'));
    update(
        &mut mine,
        Action::MyTickets(Page::first(Ok(vec![
            ticket("t1", "A", 100),
            ticket("t2", "B", 100),
            ticket("t3", "C", 100),
        ]))),
    );
    mine.my_tickets.list.select(1);
    screens.push(mine);
    let mut sales = market.clone();
    update(&mut sales, ch('S'));
    update(
        &mut sales,
        Action::Sales(Page::first(Ok(Sales {
            count: 0,
            sales: Vec::new(),
            total: Default::default(),
        }))),
    );
    screens.push(sales);
    for app in &screens {
        assert!(!app.typing());
        for code in &keys {
            let mut after = app.clone();
            let effects = update(&mut after, key(*code));
            let changed = !effects.is_empty() || format!("{after:?}") != format!("{app:?}");
            assert!(
                !changed || listed.contains(code),
                "{code:?} does something on {:?} but the help does not list it",
                app.screen
            );
        }
    }
}

#[test]
fn footers_come_from_the_help_with_help_first() {
    let market = help::hints(Footer::Market);
    assert_eq!(market[0].0, "?");
    for (name, word, code) in help::hints(Footer::Market)
        .into_iter()
        .chain(help::hints(Footer::Orders))
        .chain(help::hints(Footer::Form))
    {
        let entry = KEYS.iter().find(|k| k.codes.contains(&code)).unwrap();
        assert!(
            entry
                .footer
                .iter()
                .any(|(_, n, w)| *n == name && *w == word),
            "{name} {word}"
        );
    }
    let form: Vec<&str> = help::hints(Footer::Form).iter().map(|h| h.0).collect();
    assert!(!form.contains(&"q"), "q is a letter in a form");
}

#[test]
fn countdowns_in_the_orders_list_tick() {
    let mut app = signed_in();
    update(&mut app, ch('o'));
    update(
        &mut app,
        Action::Orders(Ok(vec![order("o1", OrderStatus::Created, 75)])),
    );
    let when = |app: &App| tix_tui::screens::orders::when(app, &app.orders.list.items()[0]);
    assert_eq!(when(&app), "expires in 01:15");
    update(&mut app, Action::Tick(now() + time::Duration::seconds(1)));
    assert_eq!(when(&app), "expires in 01:14");
    assert!(draw(&app, 100, 30).contains("expires in 01:14"));
    update(&mut app, Action::Tick(now() + time::Duration::seconds(80)));
    assert_eq!(when(&app), "expired");
}
