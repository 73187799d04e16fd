//! Fixtures the test files share: a fixed clock, API values, key presses, drawing.
#![allow(dead_code)]

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use time::OffsetDateTime;
use tix_api::{Money, Order, OrderStatus, OrderTicket, Payment, PaymentStatus, Ticket, UnixMillis};
use tix_client::Kind;
use tix_tui::app::{Action, App, Effect, Page, Problem, User, update};

pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

pub fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Action {
    Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn ch(c: char) -> Action {
    key(KeyCode::Char(c))
}

pub fn typed(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| update(app, ch(c))).collect()
}

pub fn mouse(kind: MouseEventKind, column: u16, row: u16) -> Action {
    Action::Mouse(MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    })
}

pub fn click(column: u16, row: u16) -> Action {
    mouse(MouseEventKind::Down(MouseButton::Left), column, row)
}

pub fn ticket(id: &str, title: &str, cents: i64) -> Ticket {
    seller_ticket(id, title, cents, "seller-1", "Sam")
}

pub fn seller_ticket(id: &str, title: &str, cents: i64, seller: &str, name: &str) -> Ticket {
    Ticket {
        id: id.into(),
        title: title.into(),
        price: Money::from_cents(cents),
        seller_name: name.into(),
        user_id: seller.into(),
        version: 0,
        order_id: None,
    }
}

/// The first page of the market for an empty search.
pub fn tickets(list: Vec<Ticket>) -> Action {
    market_page("", 0, list)
}

pub fn market_page(search: &str, offset: u32, list: Vec<Ticket>) -> Action {
    Action::Tickets {
        search: search.into(),
        page: Page {
            offset,
            limit: 50,
            result: Ok(list),
        },
    }
}

pub fn order(id: &str, status: OrderStatus, seconds_left: i64) -> Order {
    let at = now() + time::Duration::seconds(seconds_left);
    Order {
        id: id.into(),
        user_id: "me".into(),
        status,
        expires_at: UnixMillis::from(at),
        paid_at: None,
        version: 0,
        ticket: OrderTicket {
            id: "t1".into(),
            title: "Jazz".into(),
            price: Money::from_cents(2500),
            version: 1,
        },
    }
}

pub fn payment(id: &str, order: &str, status: PaymentStatus) -> Payment {
    Payment {
        amount: Money::from_cents(2500),
        created_at: UnixMillis::from(now() - time::Duration::minutes(5)),
        id: id.into(),
        order_id: order.into(),
        reason: None,
        refunded_at: None,
        status,
    }
}

pub fn problem(kind: Kind, message: &str, field: Option<&str>) -> Problem {
    Problem {
        message: message.into(),
        field: field.map(String::from),
        kind,
    }
}

/// Signed in as "me", the market showing three tickets.
pub fn signed_in() -> App {
    let mut app = App::new(
        "http://api",
        Some(User {
            email: "me@x.io".into(),
            id: "me".into(),
        }),
        now(),
    );
    update(
        &mut app,
        tickets(vec![
            ticket("t1", "Jazz", 2500),
            ticket("t2", "Rock", 4000),
            ticket("t3", "Opera", 9900),
        ]),
    );
    app
}

/// `n` tickets t0…, titled "Ticket n".
pub fn many(from: usize, n: usize) -> Vec<Ticket> {
    (from..from + n)
        .map(|i| ticket(&format!("t{i}"), &format!("Ticket {i}"), 1000 + i as i64))
        .collect()
}

pub fn terminal(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| tix_tui::ui::render(f, app)).unwrap();
    t
}

pub fn draw(app: &App, w: u16, h: u16) -> String {
    format!("{}", terminal(app, w, h).backend())
}
