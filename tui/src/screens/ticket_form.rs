//! Selling a ticket and editing one: the same form (title, price), two screens
//! ([`Screen::Sell`] and [`Screen::Edit`]) that differ only in the request they send.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use tix_api::{Money, MoneyError, Ticket};

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::widgets::form::{self, Field, Form};
use crate::widgets::input::TextInput;

fn form(title: &str, price: Option<Money>) -> Form {
    let mut t = Field::new("title", "Title");
    t.input = TextInput::new(title);
    let mut p = Field::new("price", "Price");
    p.input = TextInput::new(&price.map(|p| p.to_string()).unwrap_or_default());
    Form {
        fields: vec![t, p],
        buttons: vec!["Save"],
        focus: 0,
    }
}

/// A blank form for a new ticket.
pub(crate) fn sell() -> Screen {
    Screen::Sell(form("", None))
}

/// The form filled in with the ticket as it is.
pub(crate) fn edit(t: &Ticket) -> Screen {
    Screen::Edit(t.id.clone(), form(&t.title, Some(t.price)))
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

/// `id` is the ticket being edited, `None` when selling a new one.
pub(crate) fn on_key(
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
    // Enter on a field moves to the next one; on the last field it saves.
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

/// Saved: show the seller's tickets, where the change can be seen, with the market behind.
pub(crate) fn on_saved(app: &mut App, r: Result<Ticket, Problem>) -> Vec<Effect> {
    match r {
        Ok(t) => {
            app.notice = Some(format!("Saved: {} at {}", t.title, t.price.display()));
            app.last_error = None;
            app.screen = Screen::MyTickets;
            app.back = vec![Screen::Market];
            return vec![crate::screens::my_tickets::load(app)];
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

/// `editing` picks the title: the form is the same.
pub fn render(f: &mut Frame, area: Rect, editing: bool, form: &Form, app: &App) {
    let title = if editing {
        " Edit your ticket "
    } else {
        " Sell a ticket "
    };
    form::render(f, area, title, form, Some("back"), &app.theme, &app.hits);
}
