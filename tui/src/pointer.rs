//! The mouse and pasted text, turned into what the keyboard would do: a click on a button
//! or a key hint presses its key, a click on a row selects it (on the selected row, opens
//! it), the wheel moves the cursor (or scrolls the help), a paste types into the focused
//! field. Nothing here decides anything a key handler does not, so both stay in step.

use ratatui::crossterm::event::{KeyCode, MouseButton, MouseEvent, MouseEventKind};

use crate::app::{App, Effect, Screen, next_page, on_key};
use crate::screens::{help, market, sign_in};
use crate::widgets::hits::{Target, press};
use crate::widgets::list::SelectList;

/// The wheel moves the cursor of a list; a click does what the key it stands for does
/// (see [`Hits`](crate::widgets::hits::Hits)); a click on a row selects it, and on the selected row opens it, so a
/// double click opens whatever row it lands on.
pub(crate) fn on_mouse(app: &mut App, m: MouseEvent) -> Vec<Effect> {
    let lists = matches!(
        app.screen,
        Screen::Market | Screen::Orders | Screen::MyTickets | Screen::Sales
    );
    match m.kind {
        // The wheel scrolls the help when it does not fit, and never closes it.
        MouseEventKind::ScrollDown if app.help => {
            help::scroll(app, 1);
            Vec::new()
        }
        MouseEventKind::ScrollUp if app.help => {
            help::scroll(app, -1);
            Vec::new()
        }
        MouseEventKind::ScrollDown if lists && !app.help => on_key(app, press(KeyCode::Down)),
        MouseEventKind::ScrollUp if lists && !app.help => on_key(app, press(KeyCode::Up)),
        MouseEventKind::Down(MouseButton::Left) => click(app, m.column, m.row),
        _ => Vec::new(),
    }
}

fn click(app: &mut App, column: u16, row: u16) -> Vec<Effect> {
    if app.help {
        app.help = false;
        return Vec::new();
    }
    let hits = app.hits.borrow().clone();
    if let Some(target) = hits.target_at(column, row) {
        return match target {
            Target::Key(code) => on_key(app, press(code)),
            Target::Field(..) | Target::Button(_) => {
                if let Screen::SignIn(f) | Screen::Sell(f) | Screen::Edit(_, f) = &mut app.screen {
                    f.click(target);
                }
                if let Target::Button(_) = target {
                    on_key(app, press(KeyCode::Enter))
                } else {
                    Vec::new()
                }
            }
        };
    }
    let Some(i) = hits.row_at(column, row) else {
        return Vec::new();
    };
    fn pick<T>(l: &mut SelectList<T>, i: usize) -> bool {
        let again = l.selected() == i && i < l.len();
        l.select(i);
        again
    }
    let again = match app.screen {
        Screen::Market => pick(&mut app.market.tickets.list, i),
        Screen::Orders => pick(&mut app.orders.list, i),
        Screen::MyTickets => pick(&mut app.my_tickets.list, i),
        Screen::Sales => pick(&mut app.sales.list, i),
        _ => return Vec::new(),
    };
    if again {
        on_key(app, press(KeyCode::Enter))
    } else {
        next_page(app).into_iter().collect()
    }
}

/// Pasted text goes where typed text would; elsewhere it is ignored (a paste is never a
/// string of shortcuts).
pub(crate) fn on_paste(app: &mut App, text: &str) -> Vec<Effect> {
    if app.help {
        return Vec::new();
    }
    match &mut app.screen {
        Screen::SignIn(f) => {
            f.paste(text);
            sign_in::hint(f);
        }
        Screen::Sell(f) | Screen::Edit(_, f) => f.paste(text),
        Screen::Reservation(r) if r.outcome.is_none() => {
            r.card.input.paste(text);
        }
        Screen::Market if app.market.searching => return market::on_paste(app, text),
        _ => {}
    }
    Vec::new()
}
