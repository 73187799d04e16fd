//! The buyer's orders: what was paid, what is still held (and can be paid or cancelled).

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Row, Table};
use tix_api::{Order, OrderStatus};

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::screens::reservation::Reservation;
use crate::widgets::{boxed, countdown, highlight};

pub(crate) fn on_orders(app: &mut App, r: Result<Vec<Order>, Problem>) -> Vec<Effect> {
    match r {
        Ok(list) => app.orders.replace(list),
        Err(p) => app.problem(&p),
    }
    Vec::new()
}

/// The list is reloaded rather than edited, so it shows the server's view of the cancel.
pub(crate) fn on_cancelled(app: &mut App, r: Result<String, Problem>) -> Vec<Effect> {
    match r {
        Ok(id) => {
            app.notice = Some(format!("Cancelled order {id}"));
            vec![Effect::LoadOrders]
        }
        Err(p) => {
            app.problem(&p);
            Vec::new()
        }
    }
}

pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    let stay = |e| (Nav::Stay(Screen::Orders), e);
    match key.code {
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => return (Nav::Back, Vec::new()),
        // Only an order still holding its ticket can be cancelled or paid.
        KeyCode::Char('c') => {
            if let Some(o) = app.orders.selected_item()
                && o.status == OrderStatus::Created
            {
                return stay(vec![Effect::CancelOrder(o.id.clone())]);
            }
        }
        KeyCode::Enter => {
            if let Some(o) = app.orders.selected_item().cloned()
                && o.status == OrderStatus::Created
            {
                let to = Screen::Reservation(Reservation::new(o));
                return (Nav::push(Screen::Orders, to), Vec::new());
            }
        }
        KeyCode::Char('r') => return stay(vec![Effect::LoadOrders]),
        code => app.orders.on_key(code),
    }
    stay(Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let rows: Vec<Row> = app
        .orders
        .items()
        .iter()
        .map(|o| {
            let when = match o.status {
                OrderStatus::Complete => "paid".to_string(),
                OrderStatus::Cancelled => "cancelled".to_string(),
                OrderStatus::Created | OrderStatus::AwaitingPayment => {
                    countdown(app.seconds_left(o))
                }
            };
            Row::new(vec![
                o.ticket.title.clone(),
                o.ticket.price.display(),
                o.status.to_string(),
                when,
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(18),
        ],
    )
    .header(Row::new(vec!["TICKET", "PRICE", "STATUS", "WHEN"]).bold())
    .row_highlight_style(highlight())
    .block(boxed(" my orders — Enter: pay, c: cancel "));
    f.render_stateful_widget(table, area, &mut app.orders.table_state());
}
