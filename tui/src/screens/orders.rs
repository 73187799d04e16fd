//! The buyer's orders: what was paid (and when), what is still held (and can be paid or
//! cancelled), and which cancelled orders had a payment refunded.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Row, Table};
use tix_api::{Order, OrderStatus, Payment, PaymentStatus};
use tix_client::Kind;
use tix_client::format::moment;

use crate::app::{App, Effect, Nav, Problem, Screen};
use crate::screens::reservation::Reservation;
use crate::widgets::{buttons, clean, countdown, paged_table};

/// What the screen shows: the orders, and the payments alongside (for refunds).
pub(crate) fn load() -> Vec<Effect> {
    vec![Effect::LoadOrders, Effect::LoadPayments]
}

pub(crate) fn on_orders(app: &mut App, r: Result<Vec<Order>, Problem>) -> Vec<Effect> {
    match r {
        // All of them at once: the page is never full, so never "more".
        Ok(list) => app.orders.on_page(0, u32::MAX, list, |o| o.id.clone()),
        Err(p) => {
            app.orders.on_error(&p.message);
            app.problem(&p);
        }
    }
    Vec::new()
}

/// The payments only add to the orders (refund marks): when they cannot be loaded, the
/// orders still show, with the payments last seen. An expired session is the exception,
/// handled as everywhere.
pub(crate) fn on_payments(app: &mut App, r: Result<Vec<Payment>, Problem>) -> Vec<Effect> {
    match r {
        Ok(list) => app.payments = list,
        Err(p) if p.kind == Kind::NotSignedIn => app.problem(&p),
        Err(_) => {}
    }
    Vec::new()
}

/// The list is reloaded rather than edited, so it shows the server's view of the cancel.
pub(crate) fn on_cancelled(app: &mut App, r: Result<String, Problem>) -> Vec<Effect> {
    match r {
        Ok(id) => {
            app.notice = Some(format!("Cancelled order {id}"));
            load()
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
            if let Some(o) = app.orders.list.selected_item()
                && o.status == OrderStatus::Created
            {
                return stay(vec![Effect::CancelOrder(o.id.clone())]);
            }
        }
        KeyCode::Enter => {
            if let Some(o) = app.orders.list.selected_item().cloned()
                && o.status == OrderStatus::Created
            {
                let to = Screen::Reservation(Reservation::new(o));
                return (Nav::push(Screen::Orders, to), Vec::new());
            }
        }
        KeyCode::Char('r') => return stay(load()),
        code => {
            let page = app.hits.borrow().page_rows();
            app.orders.list.on_key(code, page);
        }
    }
    stay(Vec::new())
}

/// The WHEN column: the countdown of a held order, when a paid one was paid, and for a
/// cancelled one whether a payment for it was refunded (or is being refunded: a charge
/// that succeeded for an order cancelled first is always given back).
pub fn when(app: &App, o: &Order) -> String {
    match o.status {
        OrderStatus::Complete => match o.paid_at {
            Some(at) => format!("paid {}", moment(at, app.now)),
            None => "paid".into(),
        },
        OrderStatus::Cancelled => {
            let mine = || app.payments.iter().filter(|p| p.order_id == o.id);
            if let Some(p) = mine().find(|p| p.status == PaymentStatus::Refunded) {
                match p.refunded_at {
                    Some(at) => format!("refunded {}", moment(at, app.now)),
                    None => "refunded".into(),
                }
            } else if mine().any(|p| p.status == PaymentStatus::Succeeded) {
                "refund pending".into()
            } else {
                "cancelled".into()
            }
        }
        OrderStatus::Created | OrderStatus::AwaitingPayment => countdown(app.seconds_left(o)),
    }
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let [list, actions] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    // Narrow, the WHEN column (which says the status in its words) keeps the room the
    // STATUS column would take, so countdowns stay whole.
    let wide = area.width >= 70;
    let rows: Vec<Row> = app
        .orders
        .list
        .items()
        .iter()
        .map(|o| {
            let when = when(app, o);
            let style = match o.status {
                OrderStatus::Created | OrderStatus::AwaitingPayment => theme.key,
                _ if when.starts_with("refund") => theme.dim,
                _ => Default::default(),
            };
            let mut cells = vec![
                clean(&o.ticket.title).into_owned(),
                o.ticket.price.display(),
            ];
            if wide {
                cells.push(o.status.to_string());
            }
            cells.push(when);
            Row::new(cells).style(style)
        })
        .collect();
    let (widths, header) = if wide {
        (
            vec![
                Constraint::Min(10),
                Constraint::Length(12),
                Constraint::Length(10),
                Constraint::Length(25),
            ],
            vec!["TICKET", "PRICE", "STATUS", "WHEN"],
        )
    } else {
        (
            vec![
                Constraint::Min(8),
                Constraint::Length(10),
                Constraint::Length(18),
            ],
            vec!["TICKET", "PRICE", "WHEN"],
        )
    };
    let table = Table::new(rows, widths).header(Row::new(header).style(theme.header));
    paged_table(
        f,
        list,
        "my orders",
        table,
        &app.orders,
        "No orders yet. Buy a ticket from the marketplace.",
        theme,
        &app.hits,
    );
    // What can be done with the order under the cursor, as buttons.
    if app
        .orders
        .list
        .selected_item()
        .is_some_and(|o| o.status == OrderStatus::Created)
    {
        buttons(
            f,
            actions,
            &[("Pay", KeyCode::Enter), ("Cancel", KeyCode::Char('c'))],
            theme,
            &app.hits,
        );
    }
}
