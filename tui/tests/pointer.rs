//! The mouse and paste, driven through `update` after drawing once on a TestBackend (a
//! click is looked up in what the last frame drew, as in the terminal).

mod common;

use common::*;
use ratatui::crossterm::event::{KeyCode, MouseEventKind};
use tix_api::OrderStatus;
use tix_tui::app::{Action, App, Effect, Screen, update};

/// The row of the screen whose text contains `needle`, and the column where it starts.
fn find(app: &App, needle: &str) -> (u16, u16) {
    let screen = draw(app, 100, 30);
    for (y, line) in screen.lines().enumerate() {
        if let Some(at) = line.find(needle) {
            // Columns are characters; the line is quoted.
            let col = line[..at].chars().count() as u16 - 1;
            return (col, y as u16);
        }
    }
    panic!("{needle:?} is not on screen:\n{screen}");
}

fn click_on(app: &mut App, needle: &str) -> Vec<Effect> {
    let (x, y) = find(app, needle);
    update(app, click(x + 1, y))
}

#[test]
fn a_click_selects_a_row_and_a_second_click_opens_it() {
    let mut app = signed_in();
    assert!(click_on(&mut app, "Opera").is_empty());
    assert_eq!(app.market.tickets.list.selected_item().unwrap().id, "t3");
    assert_eq!(app.screen, Screen::Market);
    assert_eq!(
        click_on(&mut app, "Opera"),
        vec![Effect::LoadTicket("t3".into())],
        "a click on the selected row opens it (a double click does both)"
    );
    assert_eq!(app.screen, Screen::Detail("t3".into()));
}

#[test]
fn the_wheel_moves_the_cursor_and_loads_the_next_page_at_the_end() {
    let mut app = signed_in();
    update(&mut app, tickets(many(0, 50)));
    update(&mut app, key(KeyCode::Home));
    draw(&app, 100, 30);
    let wheel = |kind| mouse(kind, 10, 10);
    update(&mut app, wheel(MouseEventKind::ScrollDown));
    update(&mut app, wheel(MouseEventKind::ScrollDown));
    assert_eq!(app.market.tickets.list.selected(), 2);
    update(&mut app, wheel(MouseEventKind::ScrollUp));
    assert_eq!(app.market.tickets.list.selected(), 1);
    let effects: Vec<Effect> = (0..60)
        .flat_map(|_| update(&mut app, wheel(MouseEventKind::ScrollDown)))
        .collect();
    assert_eq!(
        effects,
        vec![Effect::LoadTickets {
            search: String::new(),
            offset: 50,
            limit: 50
        }]
    );
}

/// Over the help, the wheel scrolls it where it does not fit and never closes it, nor
/// moves the list beneath.
#[test]
fn the_wheel_scrolls_the_help_and_leaves_the_list_alone() {
    let mut app = signed_in();
    update(&mut app, key(KeyCode::Char('?')));
    let wheel = |kind| mouse(kind, 10, 5);
    draw(&app, 40, 12);
    update(&mut app, wheel(MouseEventKind::ScrollDown));
    update(&mut app, wheel(MouseEventKind::ScrollDown));
    update(&mut app, wheel(MouseEventKind::ScrollUp));
    assert!(app.help);
    assert_eq!(app.help_top, 1);
    assert!(draw(&app, 40, 12).contains(" keys 2–"));
    assert_eq!(app.market.tickets.list.selected(), 0);
    // Where it fits there is nothing to scroll.
    draw(&app, 100, 30);
    update(&mut app, wheel(MouseEventKind::ScrollDown));
    assert!(app.help);
    assert!(draw(&app, 100, 30).contains("any key closes"));
    assert_eq!(app.market.tickets.list.selected(), 0);
}

#[test]
fn buttons_and_footer_hints_do_what_their_keys_do() {
    let mut app = signed_in();
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        click_on(&mut app, "[ Buy ]"),
        vec![Effect::Reserve("t1".into())]
    );
    click_on(&mut app, "[ Back ]");
    assert_eq!(app.screen, Screen::Market);

    assert_eq!(
        click_on(&mut app, "o orders"),
        vec![Effect::LoadOrders, Effect::LoadPayments]
    );
    update(
        &mut app,
        Action::Orders(Ok(vec![
            order("o1", OrderStatus::Created, 600),
            order("o2", OrderStatus::Complete, 0),
        ])),
    );
    assert_eq!(
        click_on(&mut app, "[ Cancel ]"),
        vec![Effect::CancelOrder("o1".into())]
    );
    click_on(&mut app, "[ Pay ]");
    assert!(matches!(app.screen, Screen::Reservation(_)));
    // The help closes on a click anywhere, which does nothing else.
    let mut app = signed_in();
    click_on(&mut app, "? help");
    assert!(app.help);
    assert!(click_on(&mut app, "Opera").is_empty());
    assert!(!app.help);
    assert_eq!(app.market.tickets.list.selected(), 0);
}

#[test]
fn clicks_focus_form_fields_put_the_cursor_there_and_press_buttons() {
    let mut app = App::new("http://api", None, now());
    typed(&mut app, "ann@x.io");
    click_on(&mut app, "Password");
    typed(&mut app, "long enough");
    let (x, y) = find(&app, "ann@x.io");
    update(&mut app, click(x + 3, y)); // on the '@'
    typed(&mut app, "ie");
    let Screen::SignIn(form) = &app.screen else {
        panic!()
    };
    assert_eq!(form.value("email"), "annie@x.io");
    assert_eq!(
        click_on(&mut app, "[ Sign in ]"),
        vec![Effect::SignIn {
            email: "annie@x.io".into(),
            password: "long enough".into(),
            new: false,
            display_name: None,
        }]
    );
}

#[test]
fn a_paste_types_into_the_focused_field_and_nowhere_else() {
    let mut app = signed_in();
    assert!(
        update(&mut app, Action::Paste("oms".into())).is_empty(),
        "a paste is never a string of shortcuts"
    );
    assert_eq!(app.screen, Screen::Market);
    update(&mut app, ch('/'));
    assert_eq!(
        update(&mut app, Action::Paste("jazz night\n".into())),
        vec![Effect::LoadTickets {
            search: "jazz night".into(),
            offset: 0,
            limit: 50
        }]
    );

    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 600))),
    );
    update(&mut app, Action::Paste("4242 4242 4242 4242\n".into()));
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::Pay {
            order_id: "o1".into(),
            token: "4242 4242 4242 4242".into()
        }]
    );

    let mut app = signed_in();
    update(&mut app, ch('s'));
    update(&mut app, Action::Paste("Gig".into()));
    update(&mut app, key(KeyCode::Tab));
    update(&mut app, Action::Paste("12.50".into()));
    let Screen::Sell(form) = &app.screen else {
        panic!()
    };
    assert_eq!((form.value("title"), form.value("price")), ("Gig", "12.50"));
}
