//! Lists that page through every result: offset paging against the API, the next page
//! asked for when the cursor reaches the end, the position shown, errors where the rows
//! would be.

mod common;

use common::*;
use ratatui::crossterm::event::KeyCode;
use tix_api::{Money, OrderTicket, Sale, Sales, UnixMillis};
use tix_client::Kind;
use tix_tui::app::{Action, Effect, Page, Screen, update};

fn next(offset: u32) -> Vec<Effect> {
    vec![Effect::LoadTickets {
        search: String::new(),
        offset,
        limit: 50,
    }]
}

#[test]
fn the_market_loads_the_next_page_at_the_end_and_shows_the_position() {
    let mut app = signed_in();
    update(&mut app, tickets(many(0, 50)));
    update(&mut app, key(KeyCode::Home));
    assert_eq!(app.market.tickets.position(), "1 of 50+");
    assert!(update(&mut app, key(KeyCode::PageDown)).len() <= 1);
    assert_eq!(update(&mut app, key(KeyCode::End)), next(50));
    assert!(
        update(&mut app, key(KeyCode::Down)).is_empty(),
        "asked for once"
    );
    update(&mut app, market_page("", 50, many(50, 23)));
    assert_eq!(app.market.tickets.position(), "50 of 73");
    assert!(update(&mut app, key(KeyCode::End)).is_empty(), "all loaded");
    assert_eq!(app.market.tickets.position(), "73 of 73");
    // A refresh reloads every row loaded, so the cursor stays on ticket 72.
    assert_eq!(
        update(&mut app, ch('r')),
        vec![Effect::LoadTickets {
            search: String::new(),
            offset: 0,
            limit: 100
        }]
    );
    let mut refreshed = many(0, 73);
    refreshed.insert(0, ticket("new", "New", 100));
    update(
        &mut app,
        Action::Tickets {
            search: String::new(),
            page: Page {
                offset: 0,
                limit: 100,
                result: Ok(refreshed),
            },
        },
    );
    assert_eq!(app.market.tickets.list.selected_item().unwrap().id, "t72");
    assert_eq!(app.market.tickets.position(), "74 of 74");
    // Enter opens a ticket from the second page.
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::LoadTicket("t72".into())]
    );
}

#[test]
fn a_failed_page_is_asked_for_again_and_its_error_shown() {
    let mut app = signed_in();
    update(&mut app, tickets(many(0, 50)));
    assert_eq!(update(&mut app, key(KeyCode::End)), next(50));
    let down = problem(Kind::Unavailable, "the server answered 502", None);
    update(
        &mut app,
        Action::Tickets {
            search: String::new(),
            page: Page {
                offset: 50,
                limit: 50,
                result: Err(down),
            },
        },
    );
    assert_eq!(app.last_error.as_deref(), Some("the server answered 502"));
    assert_eq!(app.market.tickets.list.len(), 50, "the rows stay");
    assert_eq!(update(&mut app, key(KeyCode::Down)), next(50));
}

#[test]
fn with_the_api_down_the_market_says_why_instead_of_no_tickets() {
    let mut app = tix_tui::app::App::new(
        "http://api",
        Some(tix_tui::app::User {
            email: "me@x.io".into(),
            id: "me".into(),
        }),
        now(),
    );
    assert!(draw(&app, 100, 30).contains("Loading…"));
    let down = problem(Kind::Unavailable, "cannot reach http://api: refused", None);
    update(
        &mut app,
        Action::Tickets {
            search: String::new(),
            page: Page::first(Err(down)),
        },
    );
    let screen = draw(&app, 100, 30);
    assert!(!screen.contains("No tickets"), "{screen}");
    assert!(
        screen.contains("│ ✗ cannot reach http://api: refused"),
        "{screen}"
    );
    update(&mut app, tickets(Vec::new()));
    assert!(draw(&app, 100, 30).contains("No tickets for sale"));
}

#[test]
fn my_tickets_and_sales_page_too() {
    let mut app = signed_in();
    assert_eq!(
        update(&mut app, ch('m')),
        vec![Effect::LoadMyTickets {
            offset: 0,
            limit: 50
        }]
    );
    update(&mut app, Action::MyTickets(Page::first(Ok(many(0, 50)))));
    assert_eq!(
        update(&mut app, key(KeyCode::End)),
        vec![Effect::LoadMyTickets {
            offset: 50,
            limit: 50
        }]
    );
    update(&mut app, key(KeyCode::Esc));

    assert_eq!(
        update(&mut app, ch('S')),
        vec![Effect::LoadSales {
            offset: 0,
            limit: 50
        }]
    );
    assert_eq!(app.screen, Screen::Sales);
    let sale = |i: u32| Sale {
        amount: Money::from_cents(1000),
        order_id: format!("o{i}"),
        paid_at: UnixMillis::from(now()),
        ticket: OrderTicket {
            id: format!("t{i}"),
            title: format!("Sold {i}"),
            price: Money::from_cents(1000),
            version: 1,
        },
    };
    let page = |from: u32, n: u32| Sales {
        count: 60,
        sales: (from..from + n).map(sale).collect(),
        total: Money::from_cents(60_000),
    };
    update(&mut app, Action::Sales(Page::first(Ok(page(0, 50)))));
    assert_eq!(app.sales.position(), "1 of 60", "the API counts them all");
    assert_eq!(
        update(&mut app, key(KeyCode::End)),
        vec![Effect::LoadSales {
            offset: 50,
            limit: 50
        }]
    );
    update(
        &mut app,
        Action::Sales(Page {
            offset: 50,
            limit: 50,
            result: Ok(page(50, 10)),
        }),
    );
    assert_eq!(app.sales.position(), "50 of 60");
    assert!(update(&mut app, key(KeyCode::End)).is_empty());
    assert_eq!(app.sales_total, Some(Money::from_cents(60_000)));
    assert_eq!(
        update(&mut app, key(KeyCode::Esc)),
        vec![Effect::LoadTickets {
            search: String::new(),
            offset: 0,
            limit: 50
        }]
    );
}

/// Past the API's largest page (200 rows), the timed refresh reloads the first 200 and
/// keeps the rest: the list does not shrink to 200 and the cursor stays on its ticket.
#[test]
fn a_refresh_past_200_rows_keeps_the_rest_and_the_cursor() {
    let mut app = signed_in();
    update(&mut app, tickets(many(0, 50)));
    for at in (50..250).step_by(50) {
        assert_eq!(update(&mut app, key(KeyCode::End)), next(at as u32));
        update(&mut app, market_page("", at as u32, many(at, 50)));
    }
    assert_eq!(app.market.tickets.list.len(), 250);
    assert_eq!(update(&mut app, key(KeyCode::End)), next(250));
    for _ in 0..10 {
        update(&mut app, key(KeyCode::Up));
    }
    assert_eq!(app.market.tickets.list.selected_item().unwrap().id, "t239");
    // The timed refresh, every few ticks.
    let mut asked = Vec::new();
    for _ in 0..3 {
        asked.extend(update(&mut app, Action::Tick(now())));
    }
    let refresh = Effect::LoadTickets {
        search: String::new(),
        offset: 0,
        limit: 200,
    };
    assert_eq!(asked, vec![refresh]);
    update(
        &mut app,
        Action::Tickets {
            search: String::new(),
            page: Page {
                offset: 0,
                limit: 200,
                result: Ok(many(0, 200)),
            },
        },
    );
    assert_eq!(app.market.tickets.list.len(), 250);
    assert_eq!(app.market.tickets.list.selected_item().unwrap().id, "t239");
    assert_eq!(app.market.tickets.position(), "240 of 250+");
}
