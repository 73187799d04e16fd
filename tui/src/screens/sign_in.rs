//! Signing in or up: one form, two buttons. The checks mirror the server's, so a typo is
//! caught without a round trip; the server's own answer still lands on the field it names.
//!
//! Signing up may set the public name buyers see on the seller's tickets; left empty, the
//! server takes the email's local part (never the whole address), which the field's hint
//! shows as it is typed.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use tix_api::SignedIn;

use crate::app::{App, Effect, Nav, Problem, Screen, User};
use crate::widgets::form::{self, Field, Form};

/// The server's limit on a display name.
const NAME_MAX: usize = 40;

pub(crate) fn form() -> Form {
    let mut pw = Field::new("password", "Password");
    pw.secret = true;
    let mut form = Form {
        fields: vec![
            Field::new("email", "Email"),
            pw,
            Field::new("displayName", "Name"),
        ],
        buttons: vec!["Sign in", "Sign up"],
        focus: 0,
    };
    hint(&mut form);
    form
}

/// The name field's hint follows the email: what the name will be if left empty.
pub(crate) fn hint(form: &mut Form) {
    let local = form.value("email").split('@').next().unwrap_or("").trim();
    let hint = if local.is_empty() {
        "sign-up only, optional: shown to buyers".to_string()
    } else {
        format!("sign-up only, optional (default: {local})")
    };
    if let Some(f) = form.fields.iter_mut().find(|f| f.name == "displayName") {
        f.hint = Some(hint);
    }
}

pub(crate) fn on_key(app: &mut App, mut form: Form, key: KeyEvent) -> (Nav, Vec<Effect>) {
    if form.edit(key) || key.code != KeyCode::Enter {
        hint(&mut form);
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
    let new = button == "Sign up";
    let name = form.value("displayName").trim().to_string();
    if new && name.chars().count() > NAME_MAX {
        form.set_error(
            "displayName",
            Some(format!("Name must be at most {NAME_MAX} characters")),
        );
        ok = false;
    }
    if !ok {
        return (Nav::Stay(Screen::SignIn(form)), Vec::new());
    }
    app.last_error = None;
    (
        Nav::Stay(Screen::SignIn(form)),
        vec![Effect::SignIn {
            email,
            password,
            new,
            display_name: (new && !name.is_empty()).then_some(name),
        }],
    )
}

/// Signed in: on to the market, with nothing to go back to.
pub(crate) fn on_signed_in(app: &mut App, r: Result<SignedIn, Problem>) -> Vec<Effect> {
    match r {
        Ok(who) => {
            app.user = Some(User {
                email: who.email.clone(),
                id: who.id.clone(),
            });
            app.last_error = None;
            app.back.clear();
            app.screen = Screen::Market;
            vec![Effect::SaveSession(who), app.market.load()]
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
    }
}

/// Signing in is where the app starts (and where an expired session leads): there is
/// nothing behind it for Esc to go back to.
pub fn render(f: &mut Frame, area: Rect, form: &Form, app: &App) {
    form::render(
        f,
        area,
        " Sign in or sign up ",
        form,
        None,
        &app.theme,
        &app.hits,
    );
}
