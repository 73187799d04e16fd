//! The TUI's state and its update function: `update(app, action) -> effects`.
//!
//! `update` never touches the terminal or the network, so every key of every screen can be
//! tested by calling it; the effects it returns are carried out by `main` in background
//! tasks, whose results come back as actions. This file holds what is shared by all
//! screens — the state, the messages, navigation and the keys that work everywhere — and
//! hands everything else to the screen it concerns, in [`crate::screens`].

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use time::OffsetDateTime;
use tix_api::{Money, Order, Payment, SignedIn, Ticket};
use tix_client::Kind;

use crate::screens::market::Market;
use crate::screens::{help, market, my_tickets, orders, reservation, sign_in, ticket, ticket_form};
use crate::widgets::list::SelectList;

// Kept reachable from here: they are what the `Screen` variants hold.
pub use crate::screens::reservation::{Outcome, Reservation};
pub use crate::widgets::form::{Field, Form};

/// An error from the API, kept as data the screens can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub field: Option<String>,
    pub kind: Kind,
}

/// Everything that can happen to the app.
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    /// The terminal changed size: only a redraw is needed.
    Resize,
    /// About once a second: countdowns move, lists refresh every few ticks.
    Tick(OffsetDateTime),
    SignedIn(Result<SignedIn, Problem>),
    Tickets(Result<Vec<Ticket>, Problem>),
    MyTickets(Result<Vec<Ticket>, Problem>),
    Orders(Result<Vec<Order>, Problem>),
    /// The buyer's payments, loaded alongside the orders (to mark refunded ones).
    Payments(Result<Vec<Payment>, Problem>),
    Ticket(Result<Ticket, Problem>),
    Reserved(Result<Order, Problem>),
    Paid(Result<Payment, Problem>),
    OrderNow(Result<Order, Problem>),
    Saved(Result<Ticket, Problem>),
    Cancelled(Result<String, Problem>),
}

/// Work for `main` to do: network calls and saving the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    SignIn {
        email: String,
        password: String,
        new: bool,
    },
    SaveSession(SignedIn),
    LoadTickets {
        search: String,
    },
    LoadMyTickets,
    LoadOrders,
    LoadPayments,
    LoadTicket(String),
    Reserve(String),
    Pay {
        order_id: String,
        token: String,
    },
    LoadOrder(String),
    CreateTicket {
        title: String,
        price: Money,
    },
    UpdateTicket {
        id: String,
        title: String,
        price: Money,
    },
    CancelOrder(String),
}

/// Which screen is showing. A variant carries only what lives and dies with one visit (a
/// form being typed, a reservation being paid), so going back drops it; what outlives a
/// visit (the lists, the search) is on [`App`], because answers to requests can land while
/// their screen is down in the back stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    SignIn(Form),
    Market,
    /// A ticket's detail, by id; the ticket itself is [`App::detail`].
    Detail(String),
    Reservation(Reservation),
    Orders,
    Sell(Form),
    MyTickets,
    /// Editing the ticket with this id.
    Edit(String, Form),
}

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub id: String,
}

/// The whole state of the TUI.
#[derive(Debug, Clone)]
pub struct App {
    pub screen: Screen,
    /// Where Esc goes back to.
    pub back: Vec<Screen>,
    pub user: Option<User>,
    pub api: String,
    pub market: Market,
    /// The ticket the detail screen shows: the market's copy at once, the server's when it
    /// arrives.
    pub detail: Option<Ticket>,
    pub orders: SelectList<Order>,
    /// The buyer's payments as last loaded with the orders: which cancelled orders were
    /// refunded.
    pub payments: Vec<Payment>,
    pub my_tickets: SelectList<Ticket>,
    pub last_error: Option<String>,
    pub notice: Option<String>,
    /// Requests under way (the spinner shows while > 0).
    pub busy: usize,
    pub ticks: u64,
    /// The key help overlay is open (over any screen).
    pub help: bool,
    pub now: OffsetDateTime,
    pub quit: bool,
}

/// Lists refresh every this many ticks (about seconds).
const REFRESH_TICKS: u64 = 3;

impl App {
    pub fn new(api: &str, user: Option<User>, now: OffsetDateTime) -> App {
        let screen = if user.is_some() {
            Screen::Market
        } else {
            Screen::SignIn(sign_in::form())
        };
        App {
            screen,
            back: Vec::new(),
            user,
            api: api.to_string(),
            market: Market::default(),
            detail: None,
            orders: SelectList::default(),
            payments: Vec::new(),
            my_tickets: SelectList::default(),
            last_error: None,
            notice: None,
            busy: 0,
            ticks: 0,
            help: false,
            now,
            quit: false,
        }
    }

    /// What to load when the app starts.
    pub fn start(&self) -> Vec<Effect> {
        match self.screen {
            Screen::Market => vec![self.market.load()],
            _ => Vec::new(),
        }
    }

    /// Reloads what the current screen shows: on a timer, and on coming back to a screen
    /// whose data may have changed meanwhile.
    fn refresh(&self) -> Vec<Effect> {
        match &self.screen {
            Screen::Market => vec![self.market.load()],
            Screen::Orders => orders::load(),
            Screen::MyTickets => vec![Effect::LoadMyTickets],
            Screen::Detail(id) => vec![Effect::LoadTicket(id.clone())],
            _ => Vec::new(),
        }
    }

    /// Whether keys go to a text input (so letters are not shortcuts).
    pub fn typing(&self) -> bool {
        match &self.screen {
            Screen::SignIn(f) | Screen::Sell(f) | Screen::Edit(_, f) => f.focus < f.fields.len(),
            Screen::Reservation(r) => r.outcome.is_none(),
            Screen::Market => self.market.searching,
            _ => false,
        }
    }

    /// Shows an API error in the status bar. An expired session is the one error every
    /// screen handles the same way, so it is handled here: back to signing in.
    pub(crate) fn problem(&mut self, p: &Problem) {
        self.last_error = Some(p.message.clone());
        if p.kind == Kind::NotSignedIn {
            self.user = None;
            self.back.clear();
            self.screen = Screen::SignIn(sign_in::form());
        }
    }

    /// Seconds until an order expires (negative once past).
    pub fn seconds_left(&self, order: &Order) -> i64 {
        (order.expires_at.to_datetime() - self.now).whole_seconds()
    }
}

/// Applies an action to the app; returns the work it asks for. Keys and ticks go through
/// the routing below; each API answer goes to the screen that asked for it.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Key(key) => on_key(app, key),
        Action::Resize => Vec::new(),
        Action::Tick(now) => {
            app.now = now;
            app.ticks += 1;
            on_tick(app)
        }
        Action::SignedIn(r) => sign_in::on_signed_in(app, r),
        Action::Tickets(r) => market::on_tickets(app, r),
        Action::MyTickets(r) => my_tickets::on_my_tickets(app, r),
        Action::Orders(r) => orders::on_orders(app, r),
        Action::Payments(r) => orders::on_payments(app, r),
        Action::Ticket(r) => ticket::on_ticket(app, r),
        Action::Reserved(r) => reservation::on_reserved(app, r),
        Action::Paid(r) => reservation::on_paid(app, r),
        Action::OrderNow(r) => reservation::on_order_now(app, r),
        Action::Saved(r) => ticket_form::on_saved(app, r),
        Action::Cancelled(r) => orders::on_cancelled(app, r),
    }
}

fn on_tick(app: &mut App) -> Vec<Effect> {
    // A reservation has its own clock (expiry, confirming a payment) and is never refreshed.
    if let Screen::Reservation(_) = app.screen {
        return reservation::on_tick(app);
    }
    if app.ticks.is_multiple_of(REFRESH_TICKS) && app.busy == 0 {
        app.refresh()
    } else {
        Vec::new()
    }
}

/// Where a key leaves the app. Screens say where to go; only this file moves between
/// screens, so the back stack is kept in one place.
pub(crate) enum Nav {
    Stay(Screen),
    /// Open `to`; Esc comes back to `from`.
    Push {
        from: Box<Screen>,
        to: Box<Screen>,
    },
    Back,
    /// Start over at `to` (nothing to go back to but the market).
    Reset(Screen),
}

impl Nav {
    pub(crate) fn push(from: Screen, to: Screen) -> Nav {
        Nav::Push {
            from: Box::new(from),
            to: Box::new(to),
        }
    }
}

/// The keys that work everywhere come first (quit, help), then the screen's own.
fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        app.quit = true;
        return Vec::new();
    }
    if help::on_key(app, key) {
        return Vec::new();
    }
    if key.code == KeyCode::Char('q') && !app.typing() {
        app.quit = true;
        return Vec::new();
    }
    app.notice = None;
    // The screen is moved out so its handler can own it and hand back the next one.
    let screen = std::mem::replace(&mut app.screen, Screen::Market);
    let (nav, mut effects) = match screen {
        Screen::SignIn(form) => sign_in::on_key(app, form, key),
        Screen::Market => market::on_key(app, key),
        Screen::Detail(id) => ticket::on_key(app, id, key),
        Screen::Reservation(res) => reservation::on_key(app, res, key),
        Screen::Orders => orders::on_key(app, key),
        Screen::Sell(form) => ticket_form::on_key(app, None, form, key),
        Screen::Edit(id, form) => ticket_form::on_key(app, Some(id), form, key),
        Screen::MyTickets => my_tickets::on_key(app, key),
    };
    match nav {
        Nav::Stay(s) => app.screen = s,
        Nav::Push { from, to } => {
            app.back.push(*from);
            app.screen = *to;
        }
        Nav::Back => {
            app.screen = app.back.pop().unwrap_or(Screen::Market);
            effects.extend(app.refresh());
        }
        Nav::Reset(to) => {
            app.back = if to == Screen::Market {
                Vec::new()
            } else {
                vec![Screen::Market]
            };
            app.screen = to;
        }
    }
    effects
}
