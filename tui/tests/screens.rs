//! Snapshots of the screens issue 14 added or changed — the market paging with its
//! position, sales, the API's error where a list would be, a long status message, a
//! ticket's seller, a decline waiting for the release — at 100x30 and 40x12; where the
//! terminal's cursor goes in masked fields; and that the monochrome theme (what NO_COLOR
//! picks) draws no colour at all.

mod common;

use common::*;
use ratatui::crossterm::event::KeyCode;
use ratatui::layout::Position;
use ratatui::style::Color;
use tix_api::{Money, OrderStatus, OrderTicket, Sale, Sales, UnixMillis};
use tix_client::Kind;
use tix_tui::app::{Action, App, Page, update};
use tix_tui::widgets::theme::Theme;

/// A full first page (so more may follow), the cursor on the 12th row.
fn paged_market() -> App {
    let mut app = signed_in();
    let mut list = many(0, 50);
    list[1] = seller_ticket("t1", "Ticket 1", 1001, "me", "me");
    list[2].seller_name = "Zoë Ångström-Łukasiewicz".into();
    update(&mut app, tickets(list));
    for _ in 0..11 {
        update(&mut app, key(KeyCode::Down));
    }
    app
}

fn sales() -> App {
    let mut app = signed_in();
    update(&mut app, ch('S'));
    let sale = |id: &str, title: &str, cents, minutes_ago| Sale {
        amount: Money::from_cents(cents),
        order_id: id.into(),
        paid_at: UnixMillis::from(now() - time::Duration::minutes(minutes_ago)),
        ticket: OrderTicket {
            id: format!("t-{id}"),
            title: title.into(),
            price: Money::from_cents(cents),
            version: 1,
        },
    };
    let page = Sales {
        count: 3,
        sales: vec![
            sale("o3", "Jazz at the Blue Room", 2500, 5),
            sale("o2", "Rock in the Park — day pass", 8950, 60 * 30),
            sale("o1", "Musical: front row", 150000, 60 * 24 * 400),
        ],
        total: Money::from_cents(161450),
    };
    update(&mut app, Action::Sales(Page::first(Ok(page))));
    app
}

fn api_down() -> App {
    let mut app = signed_in();
    update(&mut app, ch('/'));
    typed(&mut app, "gig");
    update(&mut app, market_page("gig", 0, Vec::new()));
    update(&mut app, key(KeyCode::Enter));
    let down = problem(
        Kind::Unavailable,
        "cannot reach http://127.0.0.1:8080: is the stack running? (scripts/stack up)",
        None,
    );
    update(
        &mut app,
        Action::Tickets {
            search: "gig".into(),
            page: Page::first(Err(down)),
        },
    );
    // What a first start against a stopped stack looks like: nothing loaded yet.
    app.market.tickets = Default::default();
    app.market.tickets.error = Some(app.last_error.clone().unwrap());
    app
}

fn long_status() -> App {
    let mut app = signed_in();
    app.last_error = Some(
        "Ticket is already reserved: someone else holds it until their reservation \
         expires or is paid; try again in a few minutes or pick another ticket"
            .into(),
    );
    app
}

fn detail() -> App {
    let mut app = signed_in();
    update(&mut app, key(KeyCode::Enter));
    app
}

fn declined() -> App {
    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 840))),
    );
    typed(&mut app, "4000 0000 0000 0002");
    update(&mut app, key(KeyCode::Enter));
    update(
        &mut app,
        Action::Paid(Err(problem(Kind::Declined, "Your card was declined", None))),
    );
    app
}

#[test]
fn market_paged_with_seller_names_100x30() {
    insta::assert_snapshot!(draw(&paged_market(), 100, 30));
}

#[test]
fn market_paged_with_seller_names_40x12() {
    insta::assert_snapshot!(draw(&paged_market(), 40, 12));
}

#[test]
fn sales_100x30() {
    insta::assert_snapshot!(draw(&sales(), 100, 30));
}

#[test]
fn sales_40x12() {
    insta::assert_snapshot!(draw(&sales(), 40, 12));
}

#[test]
fn the_api_error_where_the_list_would_be_100x30() {
    let screen = draw(&api_down(), 100, 30);
    assert!(!screen.contains("No tickets"));
    insta::assert_snapshot!(screen);
}

#[test]
fn the_api_error_where_the_list_would_be_40x12() {
    insta::assert_snapshot!(draw(&api_down(), 40, 12));
}

#[test]
fn a_long_status_wraps_100x30() {
    let screen = draw(&long_status(), 100, 30);
    assert!(screen.contains("pick another ticket"), "cut off:\n{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn a_long_status_wraps_40x12() {
    insta::assert_snapshot!(draw(&long_status(), 40, 12));
}

#[test]
fn ticket_with_its_seller_and_buttons_100x30() {
    insta::assert_snapshot!(draw(&detail(), 100, 30));
}

#[test]
fn a_decline_waits_for_the_release_100x30() {
    insta::assert_snapshot!(draw(&declined(), 100, 30));
}

#[test]
fn a_decline_waits_for_the_release_40x12() {
    insta::assert_snapshot!(draw(&declined(), 40, 12));
}

#[test]
fn masked_fields_show_the_terminal_cursor_where_typing_goes() {
    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 840))),
    );
    typed(&mut app, "4242 4242");
    update(&mut app, key(KeyCode::Home));
    update(&mut app, key(KeyCode::Right));
    let mut t = terminal(&app, 100, 30);
    // Box border + "Card or token: " (15) + one character in.
    assert_eq!(
        t.get_cursor_position().unwrap(),
        Position::new(1 + 15 + 1, 5)
    );
    // The same at 40 columns, where the lines above wrap.
    t = terminal(&app, 40, 12);
    let screen = format!("{}", t.backend());
    let row = screen
        .lines()
        .position(|l| l.contains("Card or token"))
        .unwrap() as u16;
    assert_eq!(t.get_cursor_position().unwrap(), Position::new(17, row));

    let mut app = App::new("http://api", None, now());
    update(&mut app, key(KeyCode::Tab));
    typed(&mut app, "secret");
    update(&mut app, key(KeyCode::Left));
    let mut t = terminal(&app, 100, 30);
    assert_eq!(
        t.get_cursor_position().unwrap(),
        Position::new(1 + 12 + 5, 3),
        "on the password's dots, before the last"
    );
}

#[test]
fn the_mono_theme_draws_no_colour_on_any_screen() {
    let mut screens = vec![
        paged_market(),
        sales(),
        api_down(),
        long_status(),
        detail(),
        declined(),
        App::new("http://api", None, now()),
    ];
    let mut orders = signed_in();
    update(&mut orders, ch('o'));
    update(
        &mut orders,
        Action::Orders(Ok(vec![
            order("o1", OrderStatus::Created, 600),
            order("o2", OrderStatus::Complete, 0),
        ])),
    );
    screens.push(orders);
    let mut help = signed_in();
    update(&mut help, ch('?'));
    screens.push(help);
    assert_eq!(
        Theme::choose(None, Some("1")).unwrap(),
        Theme::mono(),
        "NO_COLOR picks it"
    );
    for mut app in screens {
        app.theme = Theme::mono();
        for (w, h) in [(100, 30), (40, 12)] {
            let t = terminal(&app, w, h);
            let buf = t.backend().buffer();
            for cell in buf.content() {
                assert_eq!(
                    (cell.fg, cell.bg),
                    (Color::Reset, Color::Reset),
                    "{:?} has colour in\n{}",
                    cell.symbol(),
                    t.backend()
                );
            }
        }
        // The default theme does use colour: the check above can fail.
        app.theme = Theme::colour();
        let t = terminal(&app, 100, 30);
        assert!(
            t.backend()
                .buffer()
                .content()
                .iter()
                .any(|c| c.bg != Color::Reset)
        );
    }
}
