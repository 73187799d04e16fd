//! Text from the server is drawn, never obeyed: control and invisible characters in
//! titles, names and error messages reach the terminal as U+FFFD; and the viewer's own
//! tickets are marked in a way no display name can copy.

mod common;

use common::*;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Modifier;
use tix_api::{Money, OrderTicket, Sale, Sales, UnixMillis};
use tix_client::Kind;
use tix_tui::app::{Action, App, Page, Screen, update};
use tix_tui::widgets::theme::Theme;

const RLO: &str = "\u{202E}evil";
/// OSC 52: sets the terminal's clipboard.
const OSC: &str = "\u{1b}]52;c;AAAA\u{7}";

/// Every cell's text, in order.
fn cells(buf: &Buffer) -> String {
    buf.content().iter().map(|c| c.symbol()).collect()
}

/// No control or format character anywhere, and at least one U+FFFD where they were.
fn assert_clean(buf: &Buffer, what: &str) {
    let all = cells(buf);
    for bad in [
        '\u{1b}', '\u{7}', '\u{202E}', '\u{200B}', '\u{2066}', '\u{FEFF}',
    ] {
        assert!(!all.contains(bad), "{what}: {bad:?} reached the terminal");
    }
    assert!(all.contains('\u{FFFD}'), "{what}: no U+FFFD drawn");
}

#[test]
fn titles_names_and_errors_are_drawn_with_their_controls_replaced() {
    let mut app = signed_in();
    let mut evil = ticket("t9", RLO, 2500);
    evil.seller_name = "Sam\u{200B}\u{2066}\u{FEFF}".into();
    update(
        &mut app,
        tickets(vec![evil.clone(), ticket("t2", "Rock", 4000)]),
    );
    app.last_error = Some(OSC.into());
    let t = terminal(&app, 100, 30);
    let buf = t.backend().buffer();
    assert_clean(buf, "market");
    assert!(cells(buf).contains("\u{FFFD}evil"), "the title, cleaned");
    assert!(
        cells(buf).contains("\u{FFFD}]52;c;AAAA\u{FFFD}"),
        "the error"
    );

    // The error where the list would be.
    app.market.tickets = Default::default();
    app.market.tickets.error = Some(OSC.into());
    app.last_error = None;
    assert_clean(terminal(&app, 100, 30).backend().buffer(), "list error");

    // The ticket's detail, with a notice naming it.
    let mut app = signed_in();
    update(&mut app, tickets(vec![evil]));
    update(&mut app, key(KeyCode::Enter));
    app.notice = Some(format!("Saved: {RLO}"));
    assert_clean(terminal(&app, 100, 30).backend().buffer(), "detail");

    // Orders, my tickets, sales, the edit form (the server's title in the field).
    let mut app = signed_in();
    let mut o = order("o1", tix_api::OrderStatus::Created, 300);
    o.ticket.title = RLO.into();
    update(&mut app, ch('o'));
    update(&mut app, Action::Orders(Ok(vec![o])));
    assert_clean(terminal(&app, 100, 30).backend().buffer(), "orders");

    let mut app = signed_in();
    update(&mut app, ch('m'));
    let mine = seller_ticket("t5", RLO, 100, "me", "me");
    update(&mut app, Action::MyTickets(Page::first(Ok(vec![mine]))));
    assert_clean(terminal(&app, 100, 30).backend().buffer(), "my tickets");
    update(&mut app, ch('e'));
    assert!(matches!(app.screen, Screen::Edit(..)));
    assert_clean(terminal(&app, 100, 30).backend().buffer(), "edit form");

    let mut app = signed_in();
    update(&mut app, ch('S'));
    let sales = Sales {
        count: 1,
        sales: vec![Sale {
            amount: Money::from_cents(100),
            order_id: "o1".into(),
            paid_at: UnixMillis::from(now()),
            ticket: OrderTicket {
                id: "t1".into(),
                title: RLO.into(),
                price: Money::from_cents(100),
                version: 1,
            },
        }],
        total: Money::from_cents(100),
    };
    update(&mut app, Action::Sales(Page::first(Ok(sales))));
    assert_clean(terminal(&app, 100, 30).backend().buffer(), "sales");

    // A field error from the server on the sign-in form.
    let mut app = App::new("http://api", None, now());
    update(
        &mut app,
        Action::SignedIn(Err(problem(Kind::Rejected, OSC, Some("email")))),
    );
    assert_clean(terminal(&app, 100, 30).backend().buffer(), "sign-in");
}

/// The row of the market whose title is `title`: its text and whether its seller is
/// drawn in the `mine` style.
fn row(app: &App, title: &str) -> (String, bool) {
    let t = terminal(app, 100, 30);
    let buf = t.backend().buffer();
    let w = buf.area.width as usize;
    let cells = buf.content();
    for y in 0..buf.area.height as usize {
        let line = &cells[y * w..(y + 1) * w];
        let text: String = line.iter().map(|c| c.symbol()).collect();
        if text.contains(title) {
            let at = text.find(" you").map(|b| text[..b + 1].chars().count());
            let styled = at.is_some_and(|x| {
                line[x].modifier.contains(Modifier::UNDERLINED)
                    && line[x].fg == app.theme.mine.fg.unwrap_or_default()
            });
            return (text, styled);
        }
    }
    panic!("no row for {title}");
}

#[test]
fn a_seller_named_you_does_not_look_like_the_viewer() {
    for theme in [Theme::default(), Theme::mono()] {
        let mut app = signed_in();
        app.theme = theme;
        update(
            &mut app,
            tickets(vec![
                seller_ticket("t1", "Mine", 1000, "me", "me"),
                seller_ticket("t2", "Spoof", 1000, "mallory", "you"),
                seller_ticket("t3", "Spoof2", 1000, "eve", "★ you"),
            ]),
        );
        // Not on the highlighted row, so the cell styles are the cells' own.
        update(&mut app, key(KeyCode::End));
        let (mine, mine_styled) = row(&app, "Mine");
        let (spoof, spoof_styled) = row(&app, "Spoof ");
        let (spoof2, spoof2_styled) = row(&app, "Spoof2");
        assert!(mine.contains(" you"), "{mine}");
        assert!(spoof.contains(" you"), "{spoof}");
        assert!(mine_styled, "{}: the viewer's own is marked", theme.name);
        assert!(!spoof_styled, "{}: a name is plain", theme.name);
        assert!(!spoof2_styled, "{}: a name is plain", theme.name);
        // The ★ column comes before the title, where no name can reach.
        assert!(mine.trim_start_matches('│').starts_with('★'), "{mine}");
        assert!(!spoof.trim_start_matches('│').starts_with('★'), "{spoof}");
        assert!(!spoof2.trim_start_matches('│').starts_with('★'), "{spoof2}");
    }
    // The ticket's own screen says so too, and not for the impostor.
    let mut app = signed_in();
    let mine = seller_ticket("t1", "Mine", 1000, "me", "me");
    let spoof = seller_ticket("t2", "Spoof", 1000, "mallory", "you");
    update(&mut app, tickets(vec![mine, spoof]));
    update(&mut app, key(KeyCode::Enter));
    assert!(draw(&app, 100, 30).contains("Seller  you ★ your ticket"));
    update(&mut app, key(KeyCode::Esc));
    update(&mut app, key(KeyCode::Down));
    update(&mut app, key(KeyCode::Enter));
    let spoofed = draw(&app, 100, 30);
    assert!(spoofed.contains("Seller  you "), "{spoofed}");
    assert!(!spoofed.contains('★'), "{spoofed}");
}
