//! Snapshots of the main screens on ratatui's TestBackend, at 100x30 and at 40x12 (where
//! nothing may panic or spill out of its area).

mod common;

use common::{draw, market_page, now, seller_ticket};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tix_api::{Money, Order, OrderStatus, OrderTicket, Payment, PaymentStatus, UnixMillis};
use tix_tui::app::{Action, App, Screen, User, update};

fn market() -> App {
    let mut app = App::new(
        "http://127.0.0.1:8080",
        Some(User {
            email: "ann@example.com".into(),
            id: "ann".into(),
        }),
        now(),
    );
    update(
        &mut app,
        market_page(
            "",
            0,
            vec![
                seller_ticket(
                    "01a1-0001",
                    "Jazz at the Blue Room",
                    2500,
                    "seller-0000aaaa",
                    "Blue Room Co",
                ),
                seller_ticket(
                    "01a1-0002",
                    "Rock in the Park — day pass",
                    8950,
                    "seller-0000bbbb",
                    "rosa",
                ),
                seller_ticket("01a1-0003", "My own ticket", 1200, "ann", "ann"),
                seller_ticket(
                    "01a1-0004",
                    "Musical: front row",
                    150000,
                    "seller-0000cccc",
                    "Théâtre du Nord",
                ),
            ],
        ),
    );
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)),
    );
    app
}

fn reservation() -> App {
    let mut app = market();
    let expires = UnixMillis::from(now() + time::Duration::seconds(14 * 60 + 32));
    let order = Order {
        id: "01a1-o1".into(),
        user_id: "ann".into(),
        status: OrderStatus::Created,
        expires_at: expires,
        paid_at: None,
        version: 0,
        ticket: OrderTicket {
            id: "01a1-0002".into(),
            title: "Rock in the Park — day pass".into(),
            price: Money::from_cents(8950),
            version: 1,
        },
    };
    update(&mut app, Action::Reserved(Ok(order)));
    for c in "4242 4242 4242 4242".chars() {
        update(
            &mut app,
            Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
    }
    app
}

/// The orders screen with one order of each kind: held, paid (and when), paid before
/// orders recorded when, refunded, being refunded, and cancelled.
fn orders() -> App {
    let mut app = market();
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('o'), KeyModifiers::NONE)),
    );
    let minutes = |m: i64| UnixMillis::from(now() + time::Duration::minutes(m));
    let order = |id: &str, title: &str, cents: i64, status, paid_at| Order {
        id: id.into(),
        user_id: "ann".into(),
        status,
        expires_at: minutes(10),
        paid_at,
        version: 1,
        ticket: OrderTicket {
            id: format!("t-{id}"),
            title: title.into(),
            price: Money::from_cents(cents),
            version: 0,
        },
    };
    let list = vec![
        order("o6", "Opera: the balcony", 4200, OrderStatus::Created, None),
        order(
            "o5",
            "Jazz at the Blue Room",
            2500,
            OrderStatus::Complete,
            Some(minutes(-3)),
        ),
        order(
            "o4",
            "Rock in the Park — day pass",
            8950,
            OrderStatus::Complete,
            Some(minutes(-3 * 24 * 60)),
        ),
        order(
            "o3",
            "Musical: front row",
            150000,
            OrderStatus::Cancelled,
            None,
        ),
        order(
            "o2",
            "Late night comedy",
            1500,
            OrderStatus::Cancelled,
            None,
        ),
        order("o1", "Chamber music", 3000, OrderStatus::Cancelled, None),
    ];
    update(&mut app, Action::Orders(Ok(list)));
    let payment = |id: &str, order: &str, status, refunded_at| Payment {
        amount: Money::from_cents(1000),
        created_at: minutes(-20),
        id: id.into(),
        order_id: order.into(),
        reason: None,
        refunded_at,
        status,
    };
    let payments = vec![
        payment("p5", "o5", PaymentStatus::Succeeded, None),
        payment("p3", "o3", PaymentStatus::Refunded, Some(minutes(-1))),
        payment("p2", "o2", PaymentStatus::Succeeded, None),
        payment("p1", "o1", PaymentStatus::Failed, None),
    ];
    update(&mut app, Action::Payments(Ok(payments)));
    app
}

fn sign_in() -> App {
    let mut app = App::new("http://127.0.0.1:8080", None, now());
    for c in "ann@example.com".chars() {
        update(
            &mut app,
            Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
    }
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)),
    );
    for c in "secret123".chars() {
        update(
            &mut app,
            Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
    }
    app
}

#[test]
fn market_100x30() {
    insta::assert_snapshot!(draw(&market(), 100, 30));
}

#[test]
fn market_40x12() {
    insta::assert_snapshot!(draw(&market(), 40, 12));
}

#[test]
fn reservation_with_a_masked_card_100x30() {
    insta::assert_snapshot!(draw(&reservation(), 100, 30));
}

#[test]
fn reservation_40x12() {
    insta::assert_snapshot!(draw(&reservation(), 40, 12));
}

#[test]
fn orders_with_paid_times_and_refunds_100x30() {
    insta::assert_snapshot!(draw(&orders(), 100, 30));
}

#[test]
fn orders_40x12() {
    insta::assert_snapshot!(draw(&orders(), 40, 12));
}

#[test]
fn sign_in_100x30() {
    insta::assert_snapshot!(draw(&sign_in(), 100, 30));
}

#[test]
fn help_overlay_40x12() {
    let mut app = market();
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE)),
    );
    insta::assert_snapshot!(draw(&app, 40, 12));
}

/// Too small for every key, the help scrolls: the moving keys move it (no further than its
/// last key), its title says which keys it shows, and any other key closes it. Where it
/// fits, a moving key closes it like any other.
#[test]
fn the_help_scrolls_where_it_does_not_fit() {
    let key = |app: &mut App, code: KeyCode| {
        update(app, Action::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    };
    let mut app = market();
    key(&mut app, KeyCode::Char('?'));
    let first = draw(&app, 40, 12);
    assert!(first.contains(" keys 1–"), "{first}");
    assert!(first.contains("any other key closes"), "{first}");
    key(&mut app, KeyCode::End);
    key(&mut app, KeyCode::Down);
    let last = draw(&app, 40, 12);
    assert!(app.help, "a moving key keeps it open");
    assert!(
        last.contains("quit"),
        "the last key shows at the end:\n{last}"
    );
    insta::assert_snapshot!(last);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Home);
    assert_eq!(draw(&app, 40, 12), first, "Home is back at the first key");
    key(&mut app, KeyCode::Char('x'));
    assert!(!app.help, "any other key closes it");

    key(&mut app, KeyCode::Char('?'));
    let all = draw(&app, 100, 30);
    assert!(
        all.contains("any key closes") && all.contains("quit"),
        "{all}"
    );
    key(&mut app, KeyCode::Down);
    assert!(!app.help, "nothing to scroll: a moving key closes it");
}

#[test]
fn every_screen_survives_tiny_terminals() {
    let mut screens = vec![market(), reservation(), sign_in(), orders()];
    let mut detail = market();
    update(
        &mut detail,
        Action::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
    );
    screens.push(detail);
    let mut orders = market();
    update(
        &mut orders,
        Action::Key(KeyEvent::new(KeyCode::Char('o'), KeyModifiers::NONE)),
    );
    screens.push(orders);
    let mut sell = market();
    update(
        &mut sell,
        Action::Key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::NONE)),
    );
    assert!(matches!(sell.screen, Screen::Sell(_)));
    screens.push(sell);
    for app in &screens {
        for (w, h) in [(40, 12), (20, 6), (10, 3), (1, 1), (200, 60)] {
            draw(app, w, h);
        }
    }
}
