//! What an operator sees of a running stack: `/metrics` on every process, `/readyz` that
//! turns not-ready and back, and one request id that follows a purchase through its
//! events and every service's log.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use tix_testkit::events::{self, WAIT};
use tix_testkit::{ALL, Api, Bus, Stack, User, eventually};

/// One sample line: `name{label="value",…} number`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// `GET <base>/metrics`, parsed; fails the test unless every line is a comment or a
/// sample line of the exposition format.
async fn scrape(base: &str) -> Vec<Sample> {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = r.text().await.unwrap();
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample line: {l:?}")))
        .collect()
}

/// A sample line, strictly: a metric name, labels with quoted (escaped) values, a number.
fn parse_sample(line: &str) -> Option<Sample> {
    let (head, number) = line.rsplit_once(' ')?;
    let value = match number {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        n => n.parse().ok()?,
    };
    let (name, mut rest) = match head.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let name_ok = !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
    if !name_ok {
        return None;
    }
    let mut labels = HashMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        // The value runs to the first quote not escaped by a backslash.
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => v.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => v.push(c),
            }
        };
        labels.insert(key.to_string(), v);
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The sum of `name` over the series with (at least) these labels; 0 when there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

#[test]
fn the_sample_parser_is_strict() {
    let s = parse_sample(r#"tix_x_total{route="/a/{id}",q="say \"hi\""} 3"#).unwrap();
    assert_eq!(
        (s.labels["route"].as_str(), s.labels["q"].as_str(), s.value),
        ("/a/{id}", "say \"hi\"", 3.0)
    );
    for bad in [
        "x",
        "x{a=\"1\" 2",
        "1x 2",
        "x{a=1} 2",
        "x{a=\"1\"}",
        "x two",
    ] {
        assert!(parse_sample(bad).is_none(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_serves_metrics_and_a_purchase_moves_them() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let names = [
        "gateway",
        "auth",
        "tickets",
        "orders",
        "payments",
        "expiration",
    ];
    let mut before = HashMap::new();
    for n in names {
        before.insert(n, scrape(&stack.url(n)).await);
    }

    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Measured", 12.5).await;
    let order = api.reserve_when_known(&buyer, &ticket).await;
    let (s, paid) = api.pay(&buyer, &order, "tok_visa").await;
    assert_eq!(s, 201, "{paid}");
    eventually("the order is complete", WAIT, || async {
        api.order(&buyer, &order).await["status"] == "complete"
    })
    .await;

    let mut after = HashMap::new();
    for n in names {
        after.insert(n, scrape(&stack.url(n)).await);
    }
    let moved = |svc: &str, name: &str, labels: &[(&str, &str)]| {
        value(&after[svc], name, labels) - value(&before[svc], name, labels)
    };
    // Requests, by route pattern (never by id) in the services and by upstream in the gateway.
    let created = [
        ("route", "/api/orders"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(
        moved(
            "orders",
            "tix_http_request_duration_seconds_count",
            &created
        ),
        1.0
    );
    assert_eq!(
        moved(
            "gateway",
            "tix_http_request_duration_seconds_count",
            &created
        ),
        1.0
    );
    let read = [("route", "/api/orders/{id}"), ("method", "GET")];
    assert!(
        moved("orders", "tix_http_request_duration_seconds_count", &read) >= 1.0,
        "{:?}",
        after["orders"]
            .iter()
            .filter(|s| s.name == "tix_http_request_duration_seconds_count")
            .map(|s| &s.labels)
            .collect::<Vec<_>>()
    );
    assert!(
        after["orders"]
            .iter()
            .all(|s| s.labels.get("route").is_none_or(|r| !r.contains(&order))),
        "no series per id"
    );
    // Events: published from the outbox, applied by consumers.
    assert!(moved("orders", "tix_outbox_published_events_total", &[]) >= 1.0);
    let applied = |subject| [("subject", subject)];
    assert_eq!(
        moved(
            "tickets",
            "tix_consumer_applied_events_total",
            &applied("order:created")
        ),
        1.0
    );
    assert_eq!(
        moved(
            "orders",
            "tix_consumer_applied_events_total",
            &applied("payment:created")
        ),
        1.0
    );
    // Payments by status, counted in its books.
    assert_eq!(
        value(
            &after["payments"],
            "tix_payments",
            &[("status", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        value(&after["payments"], "tix_payments", &[("status", "pending")]),
        0.0
    );
    for svc in ["tickets", "orders", "payments"] {
        // Present, not merely summed to 0 over no series.
        for gauge in ["tix_outbox_events", "tix_consumer_dead_letters"] {
            assert!(
                after[svc].iter().any(|s| s.name == gauge),
                "{svc} has no {gauge}"
            );
        }
        assert_eq!(value(&after[svc], "tix_bus_connected", &[]), 1.0, "{svc}");
        assert_eq!(value(&after[svc], "tix_outbox_events", &[]), 0.0, "{svc}");
        assert_eq!(
            value(&after[svc], "tix_consumer_dead_letters", &[]),
            0.0,
            "{svc}"
        );
    }
}

async fn ready(base: &str) -> (u16, Value) {
    Api::at(base).call("GET", "/readyz", None, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_with_the_bus_or_the_database_and_comes_back() {
    let mut stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    eventually("the stack is ready", WAIT, || async {
        ready(&stack.url("gateway")).await.0 == 200
    })
    .await;
    let (_, r) = ready(&stack.url("orders")).await;
    assert_eq!(r["checks"]["database"]["status"], "ok", "{r}");
    assert_eq!(r["pid"], stack.service("orders").proc.pid(), "{r}");
    // Liveness is not readiness: /healthz stays 200 throughout.

    stack.bus.proc.kill9();
    eventually("tickets is not ready, naming the bus", WAIT, || async {
        let (s, r) = ready(&stack.url("tickets")).await;
        s == 503
            && r["checks"]["bus"]["status"] == "degraded"
            && r["checks"]["bus"]["reason"]
                .as_str()
                .is_some_and(|why| why.contains("not connected to the bus"))
    })
    .await;
    let (s, g) = ready(&stack.url("gateway")).await;
    assert_eq!(s, 503, "{g}");
    assert_eq!(g["upstreams"]["tickets"]["health"], "degraded", "{g}");
    assert_eq!(g["upstreams"]["tickets"]["status"], "up", "it answered");
    let (s, _) = Api::at(&stack.url("tickets"))
        .call("GET", "/healthz", None, None)
        .await;
    assert_eq!(s, 200, "alive while not ready");

    let restarted = Bus::start_in(&stack.data_dir, stack.bus.port(), &[]);
    stack.bus.proc = restarted.proc;
    eventually("ready again with the bus back", WAIT, || async {
        ready(&stack.url("gateway")).await.0 == 200
    })
    .await;

    // Someone holds orders.db's write lock: orders cannot do its job, and says so.
    let lock = rusqlite::Connection::open(stack.data_dir.join("orders.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    eventually("orders is not ready, naming its database", WAIT, || async {
        let (s, r) = ready(&stack.url("orders")).await;
        s == 503 && r["checks"]["database"]["status"] == "degraded"
    })
    .await;
    let (_, g) = ready(&stack.url("gateway")).await;
    assert_eq!(
        g["upstreams"]["orders"]["checks"]["database"]["status"], "degraded",
        "{g}"
    );
    assert_eq!(
        g["upstreams"]["tickets"]["health"], "ok",
        "only orders is named"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    eventually("orders is ready again", WAIT * 2, || async {
        ready(&stack.url("orders")).await.0 == 200
    })
    .await;
    api.create_ticket(&User::new("seller"), "After the lock", 3.0)
        .await;
}

/// The JSON log lines of a process that mention `id` anywhere.
fn log_lines_with(data_dir: &Path, process: &str, id: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(data_dir.join(format!("{process}.log"))).unwrap();
    text.lines()
        .filter(|l| l.contains(id))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_id_finds_a_purchase_in_its_events_and_every_log() {
    // Reservations expire after 3 s: the expiry is part of what the id finds.
    let stack = Stack::start_with_env(&ALL, &[("TIX_LOG_FORMAT", "json"), ("TIX_ORDER_TTL", "3s")]);
    let api = Api::new(&stack);
    let bus = events::connect(&stack.bus.endpoint, "test").await;
    let mut tail = events::group("observer", &["*"]);
    tail.ephemeral = true;
    let mut sub = bus.subscribe(tail).await.unwrap();

    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Followed", 20.0).await;
    let created = events::next_event(&mut sub).await;
    assert_eq!(created.subject().as_str(), "ticket:created");
    assert!(created.correlation_id.is_some(), "the gateway assigned one");

    // The buyer's reservation, under an id of its own (as a proxy in front would send).
    let id = "purchase-7f3c9a";
    let body = serde_json::json!({"ticketId": ticket});
    let mut status = 0;
    for _ in 0..200 {
        let (s, _) = api
            .call_with(
                "POST",
                "/api/orders",
                Some(&buyer),
                Some(body.clone()),
                &[("x-request-id", id)],
            )
            .await;
        status = s;
        if s != 404 {
            break; // 404 until orders' replica has the ticket
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 201);
    // order:created (orders) and, caused by it, ticket:updated (tickets reserves it).
    let mut seen = HashMap::new();
    while seen.len() < 2 {
        let e = events::next_event(&mut sub).await;
        seen.insert(e.subject().as_str().to_string(), e.correlation_id.clone());
    }
    assert_eq!(seen["order:created"].as_deref(), Some(id), "{seen:?}");
    assert_eq!(seen["ticket:updated"].as_deref(), Some(id), "{seen:?}");
    // Unpaid, it expires: the timer's event, the cancellation and the release carry the
    // reservation's id too (expiration kept it with the timer).
    let mut later = Vec::new();
    while later.len() < 3 {
        let e = events::next_event(&mut sub).await;
        later.push((e.subject().as_str().to_string(), e.correlation_id.clone()));
    }
    let subjects: Vec<&str> = later.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        ["expiration:complete", "order:cancelled", "ticket:updated"],
        "{later:?}"
    );
    assert!(
        later.iter().all(|(_, c)| c.as_deref() == Some(id)),
        "{later:?}"
    );

    // The logs: orders' access log line and the event it recorded; tickets applying it
    // and recording the event it caused; the gateway's access log.
    eventually("every log names the request", WAIT, || async {
        let orders = log_lines_with(&stack.data_dir, "tix-orders", id);
        let tickets = log_lines_with(&stack.data_dir, "tix-tickets", id);
        let gateway = log_lines_with(&stack.data_dir, "tix-gateway", id);
        let said = |lines: &[Value], msg: &str| lines.iter().any(|l| l["message"] == msg);
        orders.iter().any(|l| l["span"]["request_id"] == id)
            && said(&orders, "recorded an event")
            && said(&tickets, "applied an event")
            && said(&tickets, "recorded an event")
            && gateway.iter().any(|l| l["span"]["request_id"] == id)
    })
    .await;

    // An id that is not a plain token is replaced, never written into logs and events.
    let (_, _) = api
        .call_with(
            "GET",
            "/api/tickets",
            None,
            None,
            &[("x-request-id", "a b\"}{")],
        )
        .await;
    let text = std::fs::read_to_string(stack.data_dir.join("tix-gateway.log")).unwrap();
    assert!(
        !text.contains("a b\\\"}{"),
        "a client's odd id is not logged"
    );
}
