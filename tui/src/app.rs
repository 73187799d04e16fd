//! The TUI's state and its update function: `update(app, action) -> effects`.
//!
//! `update` never touches the terminal or the network, so every key of every screen can be
//! tested by calling it; the effects it returns are carried out by `main` in background
//! tasks, whose results come back as actions. This file holds what is shared by all
//! screens — the state, the messages, navigation and the keys that work everywhere — and
//! hands everything else to the screen it concerns, in [`crate::screens`].

use std::cell::{Cell, RefCell};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent};
use time::OffsetDateTime;
use tix_api::{Money, Order, Payment, Sale, Sales, SignedIn, Ticket};
use tix_client::Kind;

use crate::pointer;
use crate::screens::market::Market;
use crate::screens::{
    help, market, my_tickets, orders, reservation, sales, sign_in, ticket, ticket_form,
};
use crate::widgets::hits::Hits;
use crate::widgets::list::{PAGE, Paged};
use crate::widgets::theme::Theme;

// Kept reachable from here: they are what the `Screen` variants hold.
pub use crate::screens::reservation::{Outcome, Release, Reservation};
pub use crate::widgets::form::{Field, Form};

/// An error from the API, kept as data the screens can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub field: Option<String>,
    pub kind: Kind,
}

/// The answer to a request for one page of a list: which rows were asked for, and what
/// came back.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub offset: u32,
    pub limit: u32,
    pub result: Result<T, Problem>,
}

impl<T> Page<T> {
    /// The first page, as the app asks for it when a list opens.
    pub fn first(result: Result<T, Problem>) -> Page<T> {
        Page {
            offset: 0,
            limit: PAGE,
            result,
        }
    }
}

/// Everything that can happen to the app.
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    /// A click or the wheel (mouse moves are never sent).
    Mouse(MouseEvent),
    /// Text pasted into the terminal (bracketed paste): goes into the focused field.
    Paste(String),
    /// The terminal changed size: only a redraw is needed.
    Resize,
    /// About once a second: countdowns move, lists refresh every few ticks.
    Tick(OffsetDateTime),
    SignedIn(Result<SignedIn, Problem>),
    /// A page of the market for this search (an answer for an older search is dropped).
    Tickets {
        search: String,
        page: Page<Vec<Ticket>>,
    },
    MyTickets(Page<Vec<Ticket>>),
    Orders(Result<Vec<Order>, Problem>),
    /// The buyer's payments, loaded alongside the orders (to mark refunded ones).
    Payments(Result<Vec<Payment>, Problem>),
    Sales(Page<Sales>),
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
        /// Signing up only; `None` lets the server take the email's local part.
        display_name: Option<String>,
    },
    SaveSession(SignedIn),
    LoadTickets {
        search: String,
        offset: u32,
        limit: u32,
    },
    LoadMyTickets {
        offset: u32,
        limit: u32,
    },
    LoadOrders,
    LoadPayments,
    LoadSales {
        offset: u32,
        limit: u32,
    },
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
    /// Show the live operations screen until it is left (`tix_tui::ops`).
    OpenOps,
}

/// Which screen is showing. A variant carries only what lives and dies with one visit (a
/// form being typed, a reservation being paid), so going back drops it; what outlives a
/// visit (the lists, the search) is on [`App`], because answers to requests can land while
/// their screen is down in the back stack.
// A reservation is the largest; a screen is moved once per key, which its size does not
// make slow, and boxing it would only make every match on it noisier.
#[allow(clippy::large_enum_variant)]
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
    /// What the user sold.
    Sales,
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
    /// Loaded whole (the API does not page orders), so always complete.
    pub orders: Paged<Order>,
    /// The buyer's payments as last loaded with the orders: which cancelled orders were
    /// refunded.
    pub payments: Vec<Payment>,
    pub my_tickets: Paged<Ticket>,
    pub sales: Paged<Sale>,
    /// What all the user's sales came to (every page, not only those loaded).
    pub sales_total: Option<Money>,
    pub theme: Theme,
    /// Where the last frame drew what can be clicked; written while drawing (drawing
    /// otherwise only reads the state), read by the next click.
    pub hits: RefCell<Hits>,
    pub last_error: Option<String>,
    pub notice: Option<String>,
    /// Requests under way (the spinner shows while > 0).
    pub busy: usize,
    pub ticks: u64,
    /// The key help overlay is open (over any screen).
    pub help: bool,
    /// The first key the help shows: it scrolls when the terminal is too small for it.
    pub help_top: usize,
    /// How many keys the last frame's help showed, and the furthest it could scroll
    /// (0: it showed them all). Written while drawing, as `hits`: what the next key may
    /// scroll by.
    pub help_shown: Cell<usize>,
    pub help_last: Cell<usize>,
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
            orders: Paged::default(),
            payments: Vec::new(),
            my_tickets: Paged::default(),
            sales: Paged::default(),
            sales_total: None,
            theme: Theme::default(),
            hits: RefCell::default(),
            last_error: None,
            notice: None,
            busy: 0,
            ticks: 0,
            help: false,
            help_top: 0,
            help_shown: Cell::new(0),
            help_last: Cell::new(0),
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
            Screen::MyTickets => vec![my_tickets::load(self)],
            Screen::Sales => vec![sales::load(self)],
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
        Action::Mouse(m) => pointer::on_mouse(app, m),
        Action::Paste(text) => pointer::on_paste(app, &text),
        Action::Resize => Vec::new(),
        Action::Tick(now) => {
            app.now = now;
            app.ticks += 1;
            on_tick(app)
        }
        Action::SignedIn(r) => sign_in::on_signed_in(app, r),
        Action::Tickets { search, page } => market::on_tickets(app, &search, page),
        Action::MyTickets(page) => my_tickets::on_my_tickets(app, page),
        Action::Sales(page) => sales::on_sales(app, page),
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
pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
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
        Screen::Sales => sales::on_key(app, key),
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
    effects.extend(next_page(app));
    effects
}

/// The next page of the list on screen, when the cursor has reached the end of what is
/// loaded and there is more. Checked after every key and click, so every way of moving
/// (arrows, PageDown, End, the wheel, a click on the last row) loads more.
pub(crate) fn next_page(app: &mut App) -> Option<Effect> {
    match app.screen {
        Screen::Market => app
            .market
            .tickets
            .next_page()
            .map(|offset| Effect::LoadTickets {
                search: app.market.search.value().to_string(),
                offset,
                limit: PAGE,
            }),
        Screen::MyTickets => app
            .my_tickets
            .next_page()
            .map(|offset| Effect::LoadMyTickets {
                offset,
                limit: PAGE,
            }),
        Screen::Sales => app.sales.next_page().map(|offset| Effect::LoadSales {
            offset,
            limit: PAGE,
        }),
        _ => None,
    }
}
