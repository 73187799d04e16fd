//! What the seller sold: each sale (the ticket, what the buyer paid, when), and the
//! totals over all of them, which the API counts so they are right before every page is
//! loaded.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use tix_api::Sales;
use tix_client::format::moment;

use crate::app::{App, Effect, Nav, Page, Screen};
use crate::widgets::{clean, paged_table};

/// Reloads every row loaded so far.
pub(crate) fn load(app: &App) -> Effect {
    Effect::LoadSales {
        offset: 0,
        limit: app.sales.refresh_limit(),
    }
}

pub(crate) fn on_sales(app: &mut App, page: Page<Sales>) -> Vec<Effect> {
    match page.result {
        Ok(s) => {
            app.sales.total = Some(s.count);
            app.sales_total = Some(s.total);
            app.sales
                .on_page(page.offset, page.limit, s.sales, |s| s.order_id.clone());
            // The count says exactly whether more are left.
            app.sales.more = (app.sales.list.len() as u64) < s.count;
        }
        Err(p) => {
            app.sales.on_error(&p.message);
            app.problem(&p);
        }
    }
    Vec::new()
}

pub(crate) fn on_key(app: &mut App, key: KeyEvent) -> (Nav, Vec<Effect>) {
    match key.code {
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') => return (Nav::Back, Vec::new()),
        KeyCode::Char('r') => return (Nav::Stay(Screen::Sales), vec![load(app)]),
        code => {
            let page = app.hits.borrow().page_rows();
            app.sales.list.on_key(code, page);
        }
    }
    (Nav::Stay(Screen::Sales), Vec::new())
}

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let [totals, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let summary = match (app.sales.total, app.sales_total) {
        (Some(n), Some(total)) => Line::from(vec![
            Span::styled(format!(" {n} sold"), theme.header),
            Span::raw(", "),
            Span::styled(format!("{} in all", total.display()), theme.header),
        ]),
        _ => Line::from(""),
    };
    f.render_widget(Paragraph::new(summary), totals);
    let rows: Vec<Row> = app
        .sales
        .list
        .items()
        .iter()
        .map(|s| {
            Row::new(vec![
                clean(&s.ticket.title).into_owned(),
                s.amount.display(),
                moment(s.paid_at, app.now),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(if area.width < 60 { 10 } else { 12 }),
            Constraint::Length(16),
        ],
    )
    .header(Row::new(vec!["TICKET", "AMOUNT", "PAID"]).style(theme.header));
    paged_table(
        f,
        list,
        "my sales",
        table,
        &app.sales,
        "Nothing sold yet.",
        theme,
        &app.hits,
    );
}
