//! The TUI's state and its update function: `update(app, action) -> effects`. It never
//! touches the terminal or the network, so every key of every screen can be tested by
//! calling it; the effects it returns are carried out by `main` in background tasks, whose
//! results come back as actions.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use time::OffsetDateTime;
use tix_api::{Money, MoneyError, Order, OrderStatus, Payment, SignedIn, Ticket};
use tix_client::Kind;

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

/// One text field of a form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub secret: bool,
    pub error: Option<String>,
}

impl Field {
    pub fn new(name: &'static str, label: &'static str) -> Field {
        Field {
            name,
            label,
            ..Field::default()
        }
    }

    /// What the screen shows: passwords as dots; card numbers all but the last 4.
    pub fn shown(&self) -> String {
        if self.secret {
            return "•".repeat(self.value.chars().count());
        }
        self.value.clone()
    }
}

/// A form: fields, then buttons; `focus` walks through both.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub fields: Vec<Field>,
    pub buttons: Vec<&'static str>,
    pub focus: usize,
}

impl Form {
    fn len(&self) -> usize {
        self.fields.len() + self.buttons.len()
    }

    fn next(&mut self) {
        self.focus = (self.focus + 1) % self.len();
    }

    fn prev(&mut self) {
        self.focus = (self.focus + self.len() - 1) % self.len();
    }

    pub fn focused_field(&mut self) -> Option<&mut Field> {
        self.fields.get_mut(self.focus)
    }

    /// The button under focus, if focus is on a button.
    pub fn focused_button(&self) -> Option<&'static str> {
        self.focus
            .checked_sub(self.fields.len())
            .and_then(|i| self.buttons.get(i).copied())
    }

    pub fn value(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
            .unwrap_or("")
    }

    fn set_error(&mut self, name: &str, error: Option<String>) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.name == name) {
            f.error = error;
        }
    }

    fn clear_errors(&mut self) {
        for f in &mut self.fields {
            f.error = None;
        }
    }

    /// Typing, Backspace, Tab and arrows; returns true when the key was the form's.
    fn edit(&mut self, key: KeyEvent) -> bool {
        match key.code {
            KeyCode::Tab | KeyCode::Down => self.next(),
            KeyCode::BackTab | KeyCode::Up => self.prev(),
            KeyCode::Backspace => {
                if let Some(f) = self.focused_field() {
                    f.value.pop();
                }
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                match self.focused_field() {
                    Some(f) => {
                        f.value.push(c);
                        f.error = None;
                    }
                    None => return false,
                }
            }
            _ => return false,
        }
        true
    }
}

fn sign_in_form() -> Form {
    let mut pw = Field::new("password", "Password");
    pw.secret = true;
    Form {
        fields: vec![Field::new("email", "Email"), pw],
        buttons: vec!["Sign in", "Sign up"],
        focus: 0,
    }
}

fn ticket_form(title: &str, price: Option<Money>) -> Form {
    let mut t = Field::new("title", "Title");
    t.value = title.to_string();
    let mut p = Field::new("price", "Price");
    p.value = price.map(|p| p.to_string()).unwrap_or_default();
    Form {
        fields: vec![t, p],
        buttons: vec!["Save"],
        focus: 0,
    }
}

/// How a reservation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Paying,
    /// Paid; waiting for the order to be marked complete.
    Confirming,
    Complete,
    Declined(String),
    Expired,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub order: Order,
    pub card: Field,
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    SignIn(Form),
    Market,
    Detail(String),
    Reservation(Reservation),
    Orders,
    Sell(Form),
    MyTickets,
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
    pub tickets: Vec<Ticket>,
    pub selected: usize,
    pub search: String,
    pub searching: bool,
    pub my_tickets: Vec<Ticket>,
    pub my_selected: usize,
    pub orders: Vec<Order>,
    pub order_selected: usize,
    pub detail: Option<Ticket>,
    pub last_error: Option<String>,
    pub notice: Option<String>,
    /// Requests under way (the spinner shows while > 0).
    pub busy: usize,
    pub ticks: u64,
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
            Screen::SignIn(sign_in_form())
        };
        App {
            screen,
            back: Vec::new(),
            user,
            api: api.to_string(),
            tickets: Vec::new(),
            selected: 0,
            search: String::new(),
            searching: false,
            my_tickets: Vec::new(),
            my_selected: 0,
            orders: Vec::new(),
            order_selected: 0,
            detail: None,
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
            Screen::Market => vec![Effect::LoadTickets {
                search: String::new(),
            }],
            _ => Vec::new(),
        }
    }

    /// Reloads what the current screen shows.
    fn refresh(&self) -> Vec<Effect> {
        match &self.screen {
            Screen::Market => vec![Effect::LoadTickets {
                search: self.search.clone(),
            }],
            Screen::Orders => vec![Effect::LoadOrders],
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
            Screen::Market => self.searching,
            _ => false,
        }
    }

    fn problem(&mut self, p: &Problem) {
        self.last_error = Some(p.message.clone());
        if p.kind == Kind::NotSignedIn {
            self.user = None;
            self.back.clear();
            self.screen = Screen::SignIn(sign_in_form());
        }
    }

    pub fn selected_ticket(&self) -> Option<&Ticket> {
        self.tickets.get(self.selected)
    }

    /// Seconds until an order expires (negative once past).
    pub fn seconds_left(&self, order: &Order) -> i64 {
        (order.expires_at.to_datetime() - self.now).whole_seconds()
    }
}

/// Applies an action to the app; returns the work it asks for.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Key(key) => on_key(app, key),
        Action::Resize => Vec::new(),
        Action::Tick(now) => {
            app.now = now;
            app.ticks += 1;
            on_tick(app)
        }
        Action::SignedIn(r) => match r {
            Ok(who) => {
                app.user = Some(User {
                    email: who.email.clone(),
                    id: who.id.clone(),
                });
                app.last_error = None;
                app.back.clear();
                app.screen = Screen::Market;
                vec![
                    Effect::SaveSession(who),
                    Effect::LoadTickets {
                        search: app.search.clone(),
                    },
                ]
            }
            Err(p) => {
                if let Screen::SignIn(f) = &mut app.screen
                    && let Some(field) = &p.field
                {
                    f.set_error(field, Some(p.message.clone()));
                }
                app.last_error = Some(p.message);
                Vec::new()
            }
        },
        Action::Tickets(r) => {
            match r {
                Ok(list) => {
                    // Keep the selection on the same ticket across refreshes.
                    let keep = app.selected_ticket().map(|t| t.id.clone());
                    app.tickets = list;
                    app.selected = keep
                        .and_then(|id| app.tickets.iter().position(|t| t.id == id))
                        .unwrap_or(app.selected.min(app.tickets.len().saturating_sub(1)));
                }
                Err(p) => app.problem(&p),
            }
            Vec::new()
        }
        Action::MyTickets(r) => {
            match r {
                Ok(list) => {
                    app.my_selected = app.my_selected.min(list.len().saturating_sub(1));
                    app.my_tickets = list;
                }
                Err(p) => app.problem(&p),
            }
            Vec::new()
        }
        Action::Orders(r) => {
            match r {
                Ok(list) => {
                    app.order_selected = app.order_selected.min(list.len().saturating_sub(1));
                    app.orders = list;
                }
                Err(p) => app.problem(&p),
            }
            Vec::new()
        }
        Action::Ticket(r) => {
            match r {
                Ok(t) => app.detail = Some(t),
                Err(p) => app.problem(&p),
            }
            Vec::new()
        }
        Action::Reserved(r) => {
            match r {
                Ok(order) => {
                    app.last_error = None;
                    let mut card = Field::new("token", "Card or token");
                    card.value = String::new();
                    let from = std::mem::replace(
                        &mut app.screen,
                        Screen::Reservation(Reservation {
                            order,
                            card,
                            outcome: None,
                        }),
                    );
                    app.back.push(from);
                }
                Err(p) => app.problem(&p),
            }
            Vec::new()
        }
        Action::Paid(r) => {
            let Screen::Reservation(res) = &mut app.screen else {
                return Vec::new();
            };
            match r {
                Ok(_) => {
                    res.outcome = Some(Outcome::Confirming);
                    vec![Effect::LoadOrder(res.order.id.clone())]
                }
                Err(p) if p.kind == Kind::Declined => {
                    res.outcome = Some(Outcome::Declined(p.message));
                    Vec::new()
                }
                Err(p) => {
                    res.outcome = None;
                    res.card.error = p.field.as_ref().map(|_| p.message.clone());
                    app.problem(&p);
                    Vec::new()
                }
            }
        }
        Action::OrderNow(r) => {
            if let (Screen::Reservation(res), Ok(order)) = (&mut app.screen, r) {
                if order.status == OrderStatus::Complete {
                    res.outcome = Some(Outcome::Complete);
                }
                res.order = order;
            }
            Vec::new()
        }
        Action::Saved(r) => {
            match r {
                Ok(t) => {
                    app.notice = Some(format!("Saved: {} at {}", t.title, t.price.display()));
                    app.last_error = None;
                    app.screen = Screen::MyTickets;
                    app.back = vec![Screen::Market];
                    return vec![Effect::LoadMyTickets];
                }
                Err(p) => {
                    if let Screen::Sell(f) | Screen::Edit(_, f) = &mut app.screen
                        && let Some(field) = &p.field
                    {
                        f.set_error(field, Some(p.message.clone()));
                    }
                    app.problem(&p);
                }
            }
            Vec::new()
        }
        Action::Cancelled(r) => match r {
            Ok(id) => {
                app.notice = Some(format!("Cancelled order {id}"));
                vec![Effect::LoadOrders]
            }
            Err(p) => {
                app.problem(&p);
                Vec::new()
            }
        },
    }
}

fn on_tick(app: &mut App) -> Vec<Effect> {
    let seconds_left = match &app.screen {
        Screen::Reservation(r) => Some(app.seconds_left(&r.order)),
        _ => None,
    };
    match &mut app.screen {
        Screen::Reservation(res) => match &res.outcome {
            Some(Outcome::Confirming) => vec![Effect::LoadOrder(res.order.id.clone())],
            None if seconds_left.is_some_and(|s| s <= 0) => {
                res.outcome = Some(Outcome::Expired);
                Vec::new()
            }
            _ => Vec::new(),
        },
        _ if app.ticks.is_multiple_of(REFRESH_TICKS) && app.busy == 0 => app.refresh(),
        _ => Vec::new(),
    }
}

fn move_in(sel: &mut usize, len: usize, key: KeyCode) {
    match key {
        KeyCode::Down | KeyCode::Char('j') if *sel + 1 < len => *sel += 1,
        KeyCode::Up | KeyCode::Char('k') => *sel = sel.saturating_sub(1),
        KeyCode::Home | KeyCode::Char('g') => *sel = 0,
        KeyCode::End | KeyCode::Char('G') => *sel = len.saturating_sub(1),
        _ => {}
    }
}

/// Where a key leaves the app.
enum Nav {
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
    fn push(from: Screen, to: Screen) -> Nav {
        Nav::Push {
            from: Box::new(from),
            to: Box::new(to),
        }
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        app.quit = true;
        return Vec::new();
    }
    if app.help {
        // Any key closes the help overlay.
        app.help = false;
        return Vec::new();
    }
    if key.code == KeyCode::F(1) || (key.code == KeyCode::Char('?') && !app.typing()) {
        app.help = true;
        return Vec::new();
    }
    if key.code == KeyCode::Char('q') && !app.typing() {
        app.quit = true;
        return Vec::new();
    }
    app.notice = None;
    let screen = std::mem::replace(&mut app.screen, Screen::Market);
    let (nav, mut effects) = match screen {
        Screen::SignIn(form) => sign_in_key(app, form, key),
        Screen::Market => market_key(app, key),
        Screen::Detail(id) => detail_key(app, id, key),
        Screen::Reservation(res) => reservation_key(app, res, key),
        Screen::Orders => orders_key(app, key),
        Screen::Sell(form) => ticket_form_key(app, None, form, key),
        Screen::Edit(id, form) => ticket_form_key(app, Some(id), form, key),
        Screen::MyTickets => my_tickets_key(app, key),
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

fn sign_in_key(app: &mut App, mut form: Form, key: KeyEvent) -> (Nav, Vec<Effect>) {
    if form.edit(key) || key.code != KeyCode::Enter {
        return (Nav::Stay(Screen::SignIn(form)), Vec::new());
    }
    let Some(button) = form.focused_button() else {
        form.next();
        return (Nav::Stay(Screen::SignIn(form)), Vec::new());
    };
    form.clear_errors();
    let email = form.value("email").trim().to_string();
    let password = form.value("password").to_string();
    let mut ok = true;
    if !email.contains('@') {
        form.set_error("email", Some("Email must be valid".into()));
        ok = false;
    }
    if !(8..=128).contains(&password.chars().count()) {
        form.set_error(
            "password",
            Some("Password must be between 8 and 128 characters".into()),
        );
        ok = false;
    }
    if !ok {
        return (Nav::Stay(Screen::SignIn(form)), Vec::new());
    }
    app.last_error = None;
    let new = button == "Sign up";
    (
        Nav::Stay(Screen::SignIn(form)),
        vec![Effect::SignIn {
            email,
            password,
            new,
        }],
    )
}

fn market_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    let stay = |e| (Nav::Stay(Screen::Market), e);
    if app.searching {
        match key.code {
            KeyCode::Esc | KeyCode::Enter => app.searching = false,
            KeyCode::Backspace => {
                app.search.pop();
                return stay(vec![Effect::LoadTickets {
                    search: app.search.clone(),
                }]);
            }
            KeyCode::Char(c) => {
                app.search.push(c);
                app.selected = 0;
                return stay(vec![Effect::LoadTickets {
                    search: app.search.clone(),
                }]);
            }
            KeyCode::Down | KeyCode::Up => move_in(&mut app.selected, app.tickets.len(), key.code),
            _ => {}
        }
        return stay(Vec::new());
    }
    let push = |to| Nav::push(Screen::Market, to);
    match key.code {
        KeyCode::Char('/') => app.searching = true,
        KeyCode::Esc if !app.search.is_empty() => {
            app.search.clear();
            return stay(vec![Effect::LoadTickets {
                search: String::new(),
            }]);
        }
        KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
            if let Some(t) = app.selected_ticket().cloned() {
                app.detail = Some(t.clone());
                return (
                    push(Screen::Detail(t.id.clone())),
                    vec![Effect::LoadTicket(t.id)],
                );
            }
        }
        KeyCode::Char('o') => return (push(Screen::Orders), vec![Effect::LoadOrders]),
        KeyCode::Char('m') => return (push(Screen::MyTickets), vec![Effect::LoadMyTickets]),
        KeyCode::Char('s') => return (push(Screen::Sell(ticket_form("", None))), Vec::new()),
        KeyCode::Char('r') => return stay(app.refresh()),
        code => move_in(&mut app.selected, app.tickets.len(), code),
    }
    stay(Vec::new())
}

fn detail_key(app: &mut App, id: String, key: KeyEvent) -> (Nav, Vec<Effect>) {
    match key.code {
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => return (Nav::Back, Vec::new()),
        KeyCode::Enter | KeyCode::Char('b') => {
            let mine = app
                .detail
                .as_ref()
                .zip(app.user.as_ref())
                .is_some_and(|(t, u)| t.user_id == u.id);
            if mine {
                app.last_error = Some("You cannot buy your own ticket".into());
            } else {
                return (
                    Nav::Stay(Screen::Detail(id.clone())),
                    vec![Effect::Reserve(id)],
                );
            }
        }
        _ => {}
    }
    (Nav::Stay(Screen::Detail(id)), Vec::new())
}

fn reservation_key(app: &mut App, mut res: Reservation, key: KeyEvent) -> (Nav, Vec<Effect>) {
    match (&res.outcome, key.code) {
        (_, KeyCode::Esc) => {
            return (
                Nav::Reset(Screen::Market),
                vec![Effect::LoadTickets {
                    search: app.search.clone(),
                }],
            );
        }
        (None, KeyCode::Enter) => {
            let token: String = res.card.value.trim().to_string();
            if token.is_empty() {
                res.card.error = Some("Enter a card number or a token (e.g. tok_visa)".into());
                return (Nav::Stay(Screen::Reservation(res)), Vec::new());
            }
            res.card.error = None;
            res.outcome = Some(Outcome::Paying);
            let effect = Effect::Pay {
                order_id: res.order.id.clone(),
                token,
            };
            return (Nav::Stay(Screen::Reservation(res)), vec![effect]);
        }
        (None, KeyCode::Backspace) => {
            res.card.value.pop();
        }
        (None, KeyCode::Char(c)) => {
            res.card.value.push(c);
            res.card.error = None;
        }
        (Some(Outcome::Complete | Outcome::Declined(_) | Outcome::Expired), KeyCode::Enter) => {
            return (Nav::Reset(Screen::Orders), vec![Effect::LoadOrders]);
        }
        _ => {}
    }
    (Nav::Stay(Screen::Reservation(res)), Vec::new())
}

fn orders_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    let stay = |e| (Nav::Stay(Screen::Orders), e);
    match key.code {
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => return (Nav::Back, Vec::new()),
        KeyCode::Char('c') => {
            if let Some(o) = app.orders.get(app.order_selected)
                && o.status == OrderStatus::Created
            {
                return stay(vec![Effect::CancelOrder(o.id.clone())]);
            }
        }
        KeyCode::Enter => {
            if let Some(o) = app.orders.get(app.order_selected).cloned()
                && o.status == OrderStatus::Created
            {
                let card = Field::new("token", "Card or token");
                let to = Screen::Reservation(Reservation {
                    order: o,
                    card,
                    outcome: None,
                });
                return (Nav::push(Screen::Orders, to), Vec::new());
            }
        }
        KeyCode::Char('r') => return stay(vec![Effect::LoadOrders]),
        code => move_in(&mut app.order_selected, app.orders.len(), code),
    }
    stay(Vec::new())
}

fn my_tickets_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    let stay = |e| (Nav::Stay(Screen::MyTickets), e);
    match key.code {
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => return (Nav::Back, Vec::new()),
        KeyCode::Char('s') => {
            return (
                Nav::push(Screen::MyTickets, Screen::Sell(ticket_form("", None))),
                Vec::new(),
            );
        }
        KeyCode::Enter | KeyCode::Char('e') => {
            if let Some(t) = app.my_tickets.get(app.my_selected).cloned() {
                if t.order_id.is_some() {
                    app.last_error = Some("Cannot edit a reserved ticket".into());
                } else {
                    let to = Screen::Edit(t.id.clone(), ticket_form(&t.title, Some(t.price)));
                    return (Nav::push(Screen::MyTickets, to), Vec::new());
                }
            }
        }
        KeyCode::Char('r') => return stay(vec![Effect::LoadMyTickets]),
        code => move_in(&mut app.my_selected, app.my_tickets.len(), code),
    }
    stay(Vec::new())
}

/// Mirrors the server's rules, so most mistakes are caught before a round trip.
pub fn parse_price(raw: &str) -> Result<Money, String> {
    let price: Money = raw.parse().map_err(|e| match e {
        MoneyError::TooPrecise => "Price must have at most 2 decimals".to_string(),
        MoneyError::OutOfRange => "Price must be at most 1000000".to_string(),
        MoneyError::NotANumber => "Price must be a number".to_string(),
    })?;
    if price.cents() <= 0 {
        return Err("Price must be greater than 0".into());
    }
    if price > Money::from_cents(100_000_000) {
        return Err("Price must be at most 1000000".into());
    }
    Ok(price)
}

fn ticket_form_key(
    app: &mut App,
    id: Option<String>,
    mut form: Form,
    key: KeyEvent,
) -> (Nav, Vec<Effect>) {
    let rebuild = |id: Option<String>, form: Form| match id {
        Some(id) => Screen::Edit(id, form),
        None => Screen::Sell(form),
    };
    if key.code == KeyCode::Esc {
        return (Nav::Back, Vec::new());
    }
    if form.edit(key) || key.code != KeyCode::Enter {
        return (Nav::Stay(rebuild(id, form)), Vec::new());
    }
    if form.focused_button().is_none() && form.focus + 1 < form.fields.len() {
        form.next();
        return (Nav::Stay(rebuild(id, form)), Vec::new());
    }
    form.clear_errors();
    let title = form.value("title").trim().to_string();
    let mut ok = true;
    if title.is_empty() {
        form.set_error("title", Some("Title is required".into()));
        ok = false;
    } else if title.chars().count() > 200 {
        form.set_error("title", Some("Title must be at most 200 characters".into()));
        ok = false;
    }
    let price = match parse_price(form.value("price")) {
        Ok(p) => p,
        Err(e) => {
            form.set_error("price", Some(e));
            ok = false;
            Money::default()
        }
    };
    if !ok {
        return (Nav::Stay(rebuild(id, form)), Vec::new());
    }
    app.last_error = None;
    let effect = match &id {
        Some(id) => Effect::UpdateTicket {
            id: id.clone(),
            title,
            price,
        },
        None => Effect::CreateTicket { title, price },
    };
    (Nav::Stay(rebuild(id, form)), vec![effect])
}
