//! Key handling of every screen, driven through `update` without a terminal.

mod common;

use common::*;
use ratatui::crossterm::event::KeyCode;
use tix_api::{Money, OrderStatus, PaymentStatus, SignedIn, UnixMillis};
use tix_client::Kind;
use tix_tui::app::{Action, App, Effect, Outcome, Release, Screen, update};

#[test]
fn sign_in_checks_the_form_before_asking_the_server() {
    let mut app = App::new("http://api", None, now());
    assert!(matches!(app.screen, Screen::SignIn(_)));
    typed(&mut app, "ann");
    update(&mut app, key(KeyCode::Tab));
    typed(&mut app, "short");
    update(&mut app, key(KeyCode::Tab)); // → Name
    update(&mut app, key(KeyCode::Tab)); // → [Sign in]
    let effects = update(&mut app, key(KeyCode::Enter));
    assert!(effects.is_empty(), "invalid input never reaches the server");
    let Screen::SignIn(form) = &app.screen else {
        panic!()
    };
    assert_eq!(form.fields[0].error.as_deref(), Some("Email must be valid"));
    assert!(
        form.fields[1]
            .error
            .as_deref()
            .unwrap()
            .contains("between 8 and 128")
    );

    let mut app = App::new("http://api", None, now());
    typed(&mut app, "ann@x.io");
    update(&mut app, key(KeyCode::Enter)); // Enter on a field moves on
    typed(&mut app, "long enough");
    update(&mut app, key(KeyCode::Tab)); // → Name, left empty: the server's default
    let Screen::SignIn(form) = &app.screen else {
        panic!()
    };
    assert_eq!(
        form.fields[2].hint.as_deref(),
        Some("sign-up only, optional (default: ann)")
    );
    update(&mut app, key(KeyCode::Tab));
    update(&mut app, key(KeyCode::Tab)); // → [Sign up]
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        effects,
        vec![Effect::SignIn {
            email: "ann@x.io".into(),
            password: "long enough".into(),
            new: true,
            display_name: None,
        }]
    );
    // A name typed is sent when signing up, never when signing in.
    update(&mut app, key(KeyCode::BackTab));
    update(&mut app, key(KeyCode::BackTab)); // → Name
    typed(&mut app, " Ann B ");
    update(&mut app, key(KeyCode::Tab)); // → [Sign in]
    let Effect::SignIn { display_name, .. } = &update(&mut app, key(KeyCode::Enter))[0] else {
        panic!()
    };
    assert_eq!(display_name, &None);
    update(&mut app, key(KeyCode::Tab)); // → [Sign up]
    let Effect::SignIn { display_name, .. } = &update(&mut app, key(KeyCode::Enter))[0] else {
        panic!()
    };
    assert_eq!(display_name.as_deref(), Some("Ann B"));
    // 'q' in a text field is a letter, not quit.
    let mut app = App::new("http://api", None, now());
    update(&mut app, ch('q'));
    assert!(!app.quit);

    let who = SignedIn {
        id: "u1".into(),
        email: "ann@x.io".into(),
        display_name: "ann".into(),
        token: "t".into(),
    };
    let effects = update(&mut app, Action::SignedIn(Ok(who.clone())));
    assert_eq!(app.screen, Screen::Market);
    assert_eq!(effects[0], Effect::SaveSession(who));
}

#[test]
fn the_server_error_shows_next_to_its_field() {
    let mut app = App::new("http://api", None, now());
    update(
        &mut app,
        Action::SignedIn(Err(problem(Kind::Rejected, "Email in use", Some("email")))),
    );
    let Screen::SignIn(form) = &app.screen else {
        panic!()
    };
    assert_eq!(form.fields[0].error.as_deref(), Some("Email in use"));
    assert_eq!(app.last_error.as_deref(), Some("Email in use"));
}

#[test]
fn the_market_moves_searches_as_you_type_and_keeps_the_selection_on_refresh() {
    let mut app = signed_in();
    update(&mut app, ch('j'));
    update(&mut app, key(KeyCode::Down));
    assert_eq!(app.market.tickets.list.selected(), 2);
    update(&mut app, ch('k'));
    assert_eq!(app.market.tickets.list.selected_item().unwrap().id, "t2");
    // A refresh with a new ticket first keeps the cursor on "Rock".
    update(
        &mut app,
        tickets(vec![
            ticket("t0", "New", 100),
            ticket("t1", "Jazz", 2500),
            ticket("t2", "Rock", 4000),
        ]),
    );
    assert_eq!(app.market.tickets.list.selected_item().unwrap().id, "t2");

    update(&mut app, ch('/'));
    assert!(app.typing());
    let effects = typed(&mut app, "ja");
    assert_eq!(
        effects.last(),
        Some(&Effect::LoadTickets {
            search: "ja".into(),
            offset: 0,
            limit: 50,
        })
    );
    update(&mut app, key(KeyCode::Enter));
    assert!(!app.typing());
    let effects = update(&mut app, key(KeyCode::Esc));
    assert_eq!(
        effects,
        vec![Effect::LoadTickets {
            search: String::new(),
            offset: 0,
            limit: 50,
        }]
    );
}

#[test]
fn navigation_opens_screens_and_esc_comes_back() {
    let mut app = signed_in();
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.screen, Screen::Detail("t1".into()));
    assert_eq!(effects, vec![Effect::LoadTicket("t1".into())]);
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.screen, Screen::Market);
    assert_eq!(
        update(&mut app, ch('o')),
        vec![Effect::LoadOrders, Effect::LoadPayments],
        "the orders, and the payments that say which were refunded"
    );
    assert_eq!(app.screen, Screen::Orders);
    update(&mut app, ch('h'));
    assert_eq!(app.screen, Screen::Market);
    update(&mut app, ch('m'));
    assert_eq!(app.screen, Screen::MyTickets);
    update(&mut app, key(KeyCode::Esc));
    update(&mut app, ch('?'));
    assert!(app.help);
    update(&mut app, ch('x'));
    assert!(!app.help, "any key closes the help");
    update(&mut app, ch('q'));
    assert!(app.quit);
}

#[test]
fn buying_reserves_then_pays_and_shows_complete() {
    let mut app = signed_in();
    update(&mut app, key(KeyCode::Enter));
    update(&mut app, Action::Ticket(Ok(ticket("t1", "Jazz", 2500))));
    assert_eq!(
        update(&mut app, ch('b')),
        vec![Effect::Reserve("t1".into())]
    );
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 900))),
    );
    assert!(matches!(app.screen, Screen::Reservation(_)));
    // Empty card: a hint, no request.
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    let effects = {
        typed(&mut app, "tok_visa");
        update(&mut app, key(KeyCode::Enter))
    };
    assert_eq!(
        effects,
        vec![Effect::Pay {
            order_id: "o1".into(),
            token: "tok_visa".into()
        }]
    );
    let paid = payment("p1", "o1", PaymentStatus::Succeeded);
    assert_eq!(
        update(&mut app, Action::Paid(Ok(paid))),
        vec![Effect::LoadOrder("o1".into())]
    );
    update(
        &mut app,
        Action::OrderNow(Ok(order("o1", OrderStatus::Complete, 890))),
    );
    let Screen::Reservation(r) = &app.screen else {
        panic!()
    };
    assert_eq!(r.outcome, Some(Outcome::Complete));
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::LoadOrders, Effect::LoadPayments]
    );
    assert_eq!(app.screen, Screen::Orders);
}

#[test]
fn a_decline_and_an_expiry_end_the_reservation_with_a_reason() {
    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 2))),
    );
    typed(&mut app, "4000000000000002");
    update(&mut app, key(KeyCode::Enter));
    update(
        &mut app,
        Action::Paid(Err(problem(Kind::Declined, "Your card was declined", None))),
    );
    let Screen::Reservation(r) = &app.screen else {
        panic!()
    };
    assert_eq!(
        r.outcome,
        Some(Outcome::Declined("Your card was declined".into()))
    );

    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o2", OrderStatus::Created, 2))),
    );
    update(&mut app, Action::Tick(now() + time::Duration::seconds(3)));
    let Screen::Reservation(r) = &app.screen else {
        panic!()
    };
    assert_eq!(r.outcome, Some(Outcome::Expired));
}

#[test]
fn orders_can_be_cancelled_and_paid_from_the_list() {
    let mut app = signed_in();
    update(&mut app, ch('o'));
    update(
        &mut app,
        Action::Orders(Ok(vec![
            order("o1", OrderStatus::Complete, 0),
            order("o2", OrderStatus::Created, 600),
        ])),
    );
    assert!(
        update(&mut app, ch('c')).is_empty(),
        "a paid order cannot be cancelled"
    );
    update(&mut app, ch('j'));
    assert_eq!(
        update(&mut app, ch('c')),
        vec![Effect::CancelOrder("o2".into())]
    );
    update(&mut app, key(KeyCode::Enter));
    assert!(matches!(app.screen, Screen::Reservation(_)));
}

#[test]
fn selling_checks_like_the_server_and_shows_its_answer() {
    let mut app = signed_in();
    update(&mut app, ch('s'));
    typed(&mut app, "Gig");
    update(&mut app, key(KeyCode::Tab));
    typed(&mut app, "10.005");
    update(&mut app, key(KeyCode::Enter));
    let Screen::Sell(form) = &app.screen else {
        panic!()
    };
    assert_eq!(
        form.fields[1].error.as_deref(),
        Some("Price must have at most 2 decimals")
    );
    update(&mut app, key(KeyCode::Backspace));
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        effects,
        vec![Effect::CreateTicket {
            title: "Gig".into(),
            price: Money::from_cents(1000)
        }]
    );
    update(
        &mut app,
        Action::Saved(Err(problem(
            Kind::Rejected,
            "Title must be at most 200 characters",
            Some("title"),
        ))),
    );
    let Screen::Sell(form) = &app.screen else {
        panic!()
    };
    assert_eq!(
        form.fields[0].error.as_deref(),
        Some("Title must be at most 200 characters")
    );
    update(&mut app, Action::Saved(Ok(ticket("t9", "Gig", 1000))));
    assert_eq!(app.screen, Screen::MyTickets);
}

#[test]
fn an_expired_session_goes_back_to_sign_in() {
    let mut app = signed_in();
    update(&mut app, ch('o'));
    update(
        &mut app,
        Action::Orders(Err(problem(Kind::NotSignedIn, "Not authorized", None))),
    );
    assert!(matches!(app.screen, Screen::SignIn(_)));
    assert!(app.user.is_none());
}

#[test]
fn the_orders_list_says_when_an_order_was_paid_and_which_were_refunded() {
    let mut app = signed_in();
    update(&mut app, ch('o'));
    let mut paid = order("o1", OrderStatus::Complete, 0);
    paid.paid_at = Some(UnixMillis::from(now() - time::Duration::minutes(3)));
    let orders = vec![
        paid,
        order("o2", OrderStatus::Complete, 0),
        order("o3", OrderStatus::Cancelled, 0),
        order("o4", OrderStatus::Cancelled, 0),
        order("o5", OrderStatus::Cancelled, 0),
        order("o6", OrderStatus::Created, 600),
    ];
    update(&mut app, Action::Orders(Ok(orders)));
    let mut refunded = payment("p3", "o3", PaymentStatus::Refunded);
    refunded.refunded_at = Some(UnixMillis::from(now() - time::Duration::minutes(1)));
    let payments = vec![
        payment("p1", "o1", PaymentStatus::Succeeded),
        refunded,
        payment("p3-declined", "o3", PaymentStatus::Failed),
        // Charged, but the order had been cancelled: the refund is on its way.
        payment("p4", "o4", PaymentStatus::Succeeded),
        payment("p5", "o5", PaymentStatus::Failed),
    ];
    assert!(update(&mut app, Action::Payments(Ok(payments))).is_empty());
    let when: Vec<String> = app
        .orders
        .list
        .items()
        .iter()
        .map(|o| tix_tui::screens::orders::when(&app, o))
        .collect();
    assert_eq!(
        when,
        [
            "paid 07:57 UTC",
            "paid",
            "refunded 07:59 UTC",
            "refund pending",
            "cancelled",
            "expires in 10:00"
        ]
    );

    // The payments failing to load leaves the orders and the marks as they were…
    update(
        &mut app,
        Action::Payments(Err(problem(
            Kind::Unavailable,
            "the server answered 502",
            None,
        ))),
    );
    assert_eq!(app.payments.len(), 5);
    assert_eq!(app.screen, Screen::Orders);
    assert_eq!(
        app.last_error, None,
        "the orders are what this screen is about"
    );
    // …and they come back with the orders on every refresh.
    assert_eq!(
        update(&mut app, ch('r')),
        vec![Effect::LoadOrders, Effect::LoadPayments]
    );
    for t in 1..=3 {
        let effects = update(&mut app, Action::Tick(now() + time::Duration::seconds(t)));
        if t == 3 {
            assert_eq!(effects, vec![Effect::LoadOrders, Effect::LoadPayments]);
        }
    }
    // An expired session is handled as everywhere.
    update(
        &mut app,
        Action::Payments(Err(problem(Kind::NotSignedIn, "Not authorized", None))),
    );
    assert!(matches!(app.screen, Screen::SignIn(_)));
}

#[test]
fn a_payment_that_arrives_after_the_order_was_cancelled_ends_as_refunded() {
    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 900))),
    );
    typed(&mut app, "tok_visa");
    update(&mut app, key(KeyCode::Enter));
    update(
        &mut app,
        Action::Paid(Ok(payment("p1", "o1", PaymentStatus::Succeeded))),
    );
    // Still catching up: keep confirming.
    update(
        &mut app,
        Action::OrderNow(Ok(order("o1", OrderStatus::Created, 890))),
    );
    assert_eq!(
        update(&mut app, Action::Tick(now() + time::Duration::seconds(1))),
        vec![Effect::LoadOrder("o1".into())]
    );
    // Cancelled first (it expired meanwhile, say): the payment is refunded, no more polling.
    update(
        &mut app,
        Action::OrderNow(Ok(order("o1", OrderStatus::Cancelled, 0))),
    );
    let Screen::Reservation(r) = &app.screen else {
        panic!()
    };
    assert_eq!(r.outcome, Some(Outcome::Refunded));
    assert!(update(&mut app, Action::Tick(now() + time::Duration::seconds(2))).is_empty());
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::LoadOrders, Effect::LoadPayments]
    );
    assert_eq!(app.screen, Screen::Orders);
}

#[test]
fn after_a_decline_the_order_is_watched_until_the_ticket_is_released() {
    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o1", OrderStatus::Created, 900))),
    );
    typed(&mut app, "tok_chargeDeclined");
    update(&mut app, key(KeyCode::Enter));
    let declined = Action::Paid(Err(problem(Kind::Declined, "Declined", None)));
    assert_eq!(
        update(&mut app, declined.clone()),
        vec![Effect::LoadOrder("o1".into())],
        "the services cancel the order a moment later: watch for it"
    );
    assert!(
        update(&mut app, ch('b')).is_empty(),
        "not bought again while the ticket may still be held"
    );
    update(
        &mut app,
        Action::OrderNow(Ok(order("o1", OrderStatus::Created, 899))),
    );
    assert_eq!(
        update(&mut app, Action::Tick(now() + time::Duration::seconds(1))),
        vec![Effect::LoadOrder("o1".into())]
    );
    update(
        &mut app,
        Action::OrderNow(Ok(order("o1", OrderStatus::Cancelled, 898))),
    );
    let Screen::Reservation(r) = &app.screen else {
        panic!()
    };
    assert_eq!(r.release, Some(Release::Released));
    assert!(update(&mut app, Action::Tick(now() + time::Duration::seconds(2))).is_empty());
    assert_eq!(
        update(&mut app, ch('b')),
        vec![Effect::Reserve("t1".into())],
        "released: buy again from here"
    );

    // Never cancelled in time: the watch gives up after a few ticks and says so.
    let mut app = signed_in();
    update(
        &mut app,
        Action::Reserved(Ok(order("o2", OrderStatus::Created, 900))),
    );
    typed(&mut app, "x");
    update(&mut app, key(KeyCode::Enter));
    update(&mut app, declined);
    let polls: usize = (1..=10)
        .map(|t| update(&mut app, Action::Tick(now() + time::Duration::seconds(t))).len())
        .sum();
    assert_eq!(polls, 4, "five looks in all, the first on the decline");
    let Screen::Reservation(r) = &app.screen else {
        panic!()
    };
    assert_eq!(r.release, Some(Release::Slow));
}
