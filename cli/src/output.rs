//! Text for people: aligned tables ([`crate::table`]), prices as money, times relative to
//! now, sellers by their display names.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tix_api::health::{Health, HealthStatus};
use tix_api::{Order, OrderStatus, Payment, PaymentStatus, Sales, Ticket};
use tix_client::format::{moment, printable, short_id as short};

use crate::table::table;

pub fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// "expires in 14:32", "expired", "paid 09:41 UTC" ("paid" when the time is not known),
/// "cancelled".
pub fn expiry(o: &Order) -> String {
    expiry_at(o, OffsetDateTime::now_utc())
}

fn expiry_at(o: &Order, now: OffsetDateTime) -> String {
    match o.status {
        OrderStatus::Complete => {
            return match o.paid_at {
                Some(at) => format!("paid {}", moment(at, now)),
                None => "paid".into(),
            };
        }
        OrderStatus::Cancelled => return "cancelled".into(),
        OrderStatus::Created | OrderStatus::AwaitingPayment => {}
    }
    let left = (o.expires_at.to_datetime() - now).whole_seconds();
    if left <= 0 {
        "expired".into()
    } else {
        format!("expires in {}:{:02}", left / 60, left % 60)
    }
}

/// Tickets, one a row. Signed in, a `MINE` column says `yes` on the viewer's own tickets:
/// it is worked out here from the user id, never from a name, so a seller who calls
/// themselves "you" (or anything else) cannot make a ticket look like the viewer's.
pub fn tickets(list: &[Ticket], me: Option<&str>) -> String {
    if list.is_empty() {
        return "No tickets.".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let state = if t.is_reserved() {
                "reserved"
            } else {
                "on sale"
            };
            let mut row = vec![t.id.clone(), t.title.clone(), t.price.display(), seller(t)];
            if me.is_some() {
                row.push(if mine(t, me) { "yes" } else { "" }.into());
            }
            row.push(state.into());
            row
        })
        .collect();
    if me.is_some() {
        table(
            &["id", "title", "price", "seller", "mine", "state"],
            &rows,
            &[1, 3],
        )
    } else {
        table(&["id", "title", "price", "seller", "state"], &rows, &[1, 3])
    }
}

/// Whether the signed-in viewer sells `t`.
fn mine(t: &Ticket, me: Option<&str>) -> bool {
    Some(t.user_id.as_str()) == me
}

/// The seller as other people know them: their display name, or — for a ticket from
/// before display names — the end of their id. Never "you": whether a ticket is the
/// viewer's is said apart (`MINE`), where no name can imitate it.
fn seller(t: &Ticket) -> String {
    if t.seller_name.is_empty() {
        short(&t.user_id)
    } else {
        t.seller_name.clone()
    }
}

pub fn ticket(t: &Ticket, me: Option<&str>) -> String {
    let mut rows = vec![
        vec!["id".into(), t.id.clone()],
        vec!["title".into(), t.title.clone()],
        vec!["price".into(), t.price.display()],
        vec!["seller".into(), seller(t)],
    ];
    if me.is_some() {
        let yours = if mine(t, me) { "yes" } else { "no" };
        rows.push(vec!["mine".into(), yours.into()]);
    }
    rows.push(vec![
        "state".into(),
        t.order_id
            .as_ref()
            .map(|o| format!("reserved by order {o}"))
            .unwrap_or_else(|| "on sale".into()),
    ]);
    rows.push(vec!["version".into(), t.version.to_string()]);
    table(&["field", "value"], &rows, &[1])
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
    table(&["id", "ticket", "price", "status", "when"], &rows, &[1])
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
        &[1],
    )
}

pub fn payments(list: &[Payment]) -> String {
    payments_at(list, OffsetDateTime::now_utc())
}

fn payments_at(list: &[Payment], now: OffsetDateTime) -> String {
    if list.is_empty() {
        return "No payments.".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let when = match (p.status, p.refunded_at) {
                (PaymentStatus::Refunded, Some(at)) => format!("refunded {}", moment(at, now)),
                _ => moment(p.created_at, now),
            };
            vec![
                p.id.clone(),
                p.order_id.clone(),
                p.amount.display(),
                p.status.to_string(),
                when,
            ]
        })
        .collect();
    table(&["id", "order", "amount", "status", "when"], &rows, &[])
}

pub fn payment(p: &Payment) -> String {
    let mut rows = vec![
        vec!["id".into(), p.id.clone()],
        vec!["order".into(), p.order_id.clone()],
        vec!["amount".into(), p.amount.display()],
        vec!["status".into(), p.status.to_string()],
        vec!["created".into(), p.created_at.to_rfc3339()],
    ];
    if let Some(at) = p.refunded_at {
        rows.push(vec!["refunded".into(), at.to_rfc3339()]);
    }
    if let Some(why) = &p.reason {
        rows.push(vec!["reason".into(), why.clone()]);
    }
    table(&["field", "value"], &rows, &[1])
}

pub fn status(api: &str, health: &Health) -> String {
    let mut rows = vec![vec![
        "gateway".to_string(),
        "up".into(),
        api.to_string(),
        String::new(),
    ]];
    for (name, u) in health.upstreams.iter().flatten() {
        // Up, but in trouble: name the parts (its consumer, outbox, bus link).
        let failing: Vec<&str> = u
            .checks
            .iter()
            .flatten()
            .filter(|(_, c)| c.status != HealthStatus::Ok)
            .map(|(part, _)| part.as_str())
            .collect();
        let state = match u.health {
            Some(HealthStatus::Degraded) if failing.is_empty() => "degraded".to_string(),
            Some(HealthStatus::Degraded) => format!("degraded ({})", failing.join(", ")),
            _ => u.status.as_str().to_string(),
        };
        rows.push(vec![
            name.clone(),
            state,
            u.url.clone(),
            format!("{} ms", u.latency_ms),
        ]);
    }
    table(&["service", "state", "url", "latency"], &rows, &[1, 2])
}

/// A seller's sales: one row per ticket sold, newest first, and a line with the totals
/// over all of them ("3 sold, total $123.45"), not only the rows shown.
pub fn sales(s: &Sales) -> String {
    sales_at(s, OffsetDateTime::now_utc())
}

fn sales_at(s: &Sales, now: OffsetDateTime) -> String {
    let total = format!("{} sold, total {}", s.count, s.total.display());
    if s.sales.is_empty() {
        return if s.count == 0 {
            "No sales yet.".into()
        } else {
            format!("No sales on this page.\n{total}")
        };
    }
    let rows: Vec<Vec<String>> = s
        .sales
        .iter()
        .map(|sale| {
            vec![
                sale.ticket.title.clone(),
                sale.amount.display(),
                moment(sale.paid_at, now),
                sale.order_id.clone(),
            ]
        })
        .collect();
    let shown = if (s.sales.len() as u64) < s.count {
        format!(" ({} shown)", s.sales.len())
    } else {
        String::new()
    };
    format!(
        "{}\n{total}{shown}",
        table(&["ticket", "amount", "paid", "order"], &rows, &[0])
    )
}

/// One event as `tix events tail` prints it: time, subject, producer, the request that
/// caused it (`req=<id>`, when known), and its data; control and format characters as
/// U+FFFD ([`printable`]).
pub fn event(subject: &str, e: &Value) -> String {
    let at = e["occurredAt"].as_str().unwrap_or("");
    let time = at.get(11..23).unwrap_or(at);
    let request = e["correlationId"]
        .as_str()
        .map(|id| format!("req={id} "))
        .unwrap_or_default();
    printable(&format!(
        "{time}  {subject:<20} {:<10} {request}{}",
        e["producer"].as_str().unwrap_or("?"),
        e["data"]
    ))
}

#[cfg(test)]
mod tests {
    use tix_api::{Money, UnixMillis};

    use super::*;

    #[test]
    fn an_event_line_names_the_request_that_caused_it() {
        let e = serde_json::json!({
            "occurredAt": "2026-11-26T12:00:01.234Z",
            "producer": "orders",
            "correlationId": "0193a5c2-req",
            "data": {"id": "o1"}
        });
        assert_eq!(
            event("order:created", &e),
            r#"12:00:01.234  order:created        orders     req=0193a5c2-req {"id":"o1"}"#
        );
        let mut e = e;
        e.as_object_mut().unwrap().remove("correlationId");
        assert_eq!(
            event("order:created", &e),
            r#"12:00:01.234  order:created        orders     {"id":"o1"}"#
        );
    }

    #[test]
    fn an_event_line_holds_no_control_characters() {
        let e = serde_json::json!({
            "occurredAt": "2026-11-26T12:00:01.234Z",
            "producer": "\u{1b}]52;c;AAAA\u{7}",
            "data": {"title": "\u{202E}evil"}
        });
        let line = event("ticket:created", &e);
        assert!(!line.contains(['\u{1b}', '\u{7}', '\u{202E}']), "{line:?}");
        assert!(line.contains("\u{FFFD}]52;c;AAAA\u{FFFD}"), "{line:?}");
        assert!(line.contains("\u{FFFD}evil"), "{line:?}");
    }

    fn now() -> OffsetDateTime {
        // 2027-01-15T08:00:00Z
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn at(minutes_ago: i64) -> UnixMillis {
        UnixMillis::from(now() - time::Duration::minutes(minutes_ago))
    }

    #[test]
    fn a_paid_order_says_when_it_was_paid() {
        let mut o = Order {
            expires_at: at(-10),
            id: "o1".into(),
            paid_at: None,
            status: OrderStatus::Created,
            ticket: tix_api::OrderTicket {
                id: "t1".into(),
                price: Money::from_cents(2500),
                title: "Jazz".into(),
                version: 0,
            },
            user_id: "u1".into(),
            version: 0,
        };
        assert_eq!(expiry_at(&o, now()), "expires in 10:00");
        o.status = OrderStatus::Complete;
        assert_eq!(
            expiry_at(&o, now()),
            "paid",
            "paid before paidAt was recorded"
        );
        o.paid_at = Some(at(28));
        assert_eq!(expiry_at(&o, now()), "paid 07:32 UTC");
        o.paid_at = Some(at(2 * 24 * 60));
        assert_eq!(expiry_at(&o, now()), "paid 13 Jan 08:00 UTC");
    }

    #[test]
    fn payments_show_their_amount_status_and_refund() {
        let p = |id: &str, status, refunded: Option<UnixMillis>, reason: Option<&str>| Payment {
            amount: Money::from_cents(2550),
            created_at: at(30),
            id: id.into(),
            order_id: format!("order-{id}"),
            reason: reason.map(Into::into),
            refunded_at: refunded,
            status,
        };
        let list = [
            p(
                "p2",
                PaymentStatus::Refunded,
                Some(at(20)),
                Some("the order expired before its payment arrived"),
            ),
            p("p1", PaymentStatus::Succeeded, None, None),
        ];
        assert_eq!(
            payments_at(&list, now()),
            "ID  ORDER     AMOUNT  STATUS     WHEN\n\
             p2  order-p2  $25.50  refunded   refunded 07:40 UTC\n\
             p1  order-p1  $25.50  succeeded  07:30 UTC"
        );
        assert_eq!(payments_at(&[], now()), "No payments.");
        assert_eq!(
            payment(&list[0]),
            "FIELD     VALUE\n\
             id        p2\n\
             order     order-p2\n\
             amount    $25.50\n\
             status    refunded\n\
             created   2027-01-15T07:30:00Z\n\
             refunded  2027-01-15T07:40:00Z\n\
             reason    the order expired before its payment arrived"
        );
    }

    #[test]
    fn sales_show_each_ticket_sold_and_the_totals_over_all_of_them() {
        let sale = |title: &str, cents, minutes_ago| tix_api::Sale {
            amount: Money::from_cents(cents),
            order_id: format!("order-{title}"),
            paid_at: at(minutes_ago),
            ticket: tix_api::OrderTicket {
                id: format!("t-{title}"),
                price: Money::from_cents(cents),
                title: title.into(),
                version: 0,
            },
        };
        let page = Sales {
            count: 3,
            sales: vec![sale("Opera", 10_000, 5), sale("Jazz", 2_345, 60)],
            total: Money::from_cents(12_345 + 1_000),
        };
        assert_eq!(
            sales_at(&page, now()),
            "TICKET  AMOUNT   PAID       ORDER\n\
             Opera   $100.00  07:55 UTC  order-Opera\n\
             Jazz    $23.45   07:00 UTC  order-Jazz\n\
             3 sold, total $133.45 (2 shown)"
        );
        let none = Sales {
            count: 0,
            sales: vec![],
            total: Money::from_cents(0),
        };
        assert_eq!(sales_at(&none, now()), "No sales yet.");
    }

    #[test]
    fn sellers_are_shown_by_name_and_yours_are_marked_apart() {
        let t = |user: &str, name: &str| Ticket {
            id: "t1".into(),
            order_id: None,
            price: Money::from_cents(500),
            seller_name: name.into(),
            title: "Jazz".into(),
            user_id: user.into(),
            version: 0,
        };
        let list = [
            t("seller-0000aaaa", "Ann"),
            t("me", "Bob"),
            t("seller-0000bbbb", ""),
            // Someone else who calls themselves "you".
            t("seller-0000cccc", "you"),
        ];
        assert_eq!(
            tickets(&list, Some("me")),
            "ID  TITLE  PRICE  SELLER    MINE  STATE\n\
             t1  Jazz   $5.00  Ann             on sale\n\
             t1  Jazz   $5.00  Bob       yes   on sale\n\
             t1  Jazz   $5.00  0000bbbb        on sale\n\
             t1  Jazz   $5.00  you             on sale"
        );
        assert_eq!(
            tickets(&list[..1], None),
            "ID  TITLE  PRICE  SELLER  STATE\n\
             t1  Jazz   $5.00  Ann     on sale"
        );
        let mine_row = |t: &Ticket| {
            ticket(t, Some("me"))
                .lines()
                .find(|l| l.starts_with("mine"))
                .unwrap()
                .to_string()
        };
        assert_eq!(mine_row(&list[1]), "mine     yes");
        assert_eq!(mine_row(&list[3]), "mine     no");
        assert!(ticket(&list[3], Some("me")).contains("seller   you"));
    }
}
