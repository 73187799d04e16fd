//! Text for people: aligned tables, prices as money, times relative to now.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tix_api::health::Health;
use tix_api::{Order, OrderStatus, Ticket};
use tix_client::format::short_id as short;

pub fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// "expires in 14:32", "expired", "paid", "cancelled".
pub fn expiry(o: &Order) -> String {
    match o.status {
        OrderStatus::Complete => return "paid".into(),
        OrderStatus::Cancelled => return "cancelled".into(),
        OrderStatus::Created | OrderStatus::AwaitingPayment => {}
    }
    let left = (o.expires_at.to_datetime() - OffsetDateTime::now_utc()).whole_seconds();
    if left <= 0 {
        "expired".into()
    } else {
        format!("expires in {}:{:02}", left / 60, left % 60)
    }
}

/// Left-aligned columns, two spaces apart, a header row in capitals.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_uppercase()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

pub fn tickets(list: &[Ticket], me: Option<&str>) -> String {
    if list.is_empty() {
        return "No tickets.".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let seller = if Some(t.user_id.as_str()) == me {
                "you".to_string()
            } else {
                short(&t.user_id)
            };
            let state = if t.is_reserved() {
                "reserved"
            } else {
                "on sale"
            };
            vec![
                t.id.clone(),
                t.title.clone(),
                t.price.display(),
                seller,
                state.into(),
            ]
        })
        .collect();
    table(&["id", "title", "price", "seller", "state"], &rows)
}

pub fn ticket(t: &Ticket) -> String {
    table(
        &["field", "value"],
        &[
            vec!["id".into(), t.id.clone()],
            vec!["title".into(), t.title.clone()],
            vec!["price".into(), t.price.display()],
            vec!["seller".into(), t.user_id.clone()],
            vec![
                "state".into(),
                t.order_id
                    .as_ref()
                    .map(|o| format!("reserved by order {o}"))
                    .unwrap_or_else(|| "on sale".into()),
            ],
            vec!["version".into(), t.version.to_string()],
        ],
    )
}

pub fn orders(list: &[Order]) -> String {
    if list.is_empty() {
        return "No orders.".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            vec![
                o.id.clone(),
                o.ticket.title.clone(),
                o.ticket.price.display(),
                o.status.to_string(),
                expiry(o),
            ]
        })
        .collect();
    table(&["id", "ticket", "price", "status", "when"], &rows)
}

pub fn order(o: &Order) -> String {
    table(
        &["field", "value"],
        &[
            vec!["id".into(), o.id.clone()],
            vec![
                "ticket".into(),
                format!("{} ({})", o.ticket.title, o.ticket.id),
            ],
            vec!["price".into(), o.ticket.price.display()],
            vec!["status".into(), o.status.to_string()],
            vec!["when".into(), expiry(o)],
        ],
    )
}

pub fn status(api: &str, health: &Health) -> String {
    let mut rows = vec![vec![
        "gateway".to_string(),
        "up".into(),
        api.to_string(),
        String::new(),
    ]];
    for (name, u) in health.upstreams.iter().flatten() {
        rows.push(vec![
            name.clone(),
            u.status.as_str().to_string(),
            u.url.clone(),
            format!("{} ms", u.latency_ms),
        ]);
    }
    table(&["service", "state", "url", "latency"], &rows)
}

pub fn event(subject: &str, e: &Value) -> String {
    let at = e["occurredAt"].as_str().unwrap_or("");
    let time = at.get(11..23).unwrap_or(at);
    format!(
        "{time}  {subject:<20} {:<10} {}",
        e["producer"].as_str().unwrap_or("?"),
        e["data"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["a", "long header"],
            &[vec!["wide cell".into(), "x".into()]],
        );
        assert_eq!(t, "A          LONG HEADER\nwide cell  x");
    }
}
