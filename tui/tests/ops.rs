//! The operations screen: snapshots of a known state at 100x30 and 40x12, and the screen
//! fed from a real stack (broker, six services, gateway) while a purchase happens.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tix_api::health::{Health, HealthStatus, UpstreamHealth, UpstreamStatus};
use tix_testkit::{ALL, Api, Stack, User};
use tix_tui::ops::model::{ProcessState, TailState};
use tix_tui::ops::prom::Sample;
use tix_tui::ops::{self, Config, Input, Msg, Ops};
use tix_tui::widgets::theme::Theme;

fn screen(ops: &Ops, w: u16, h: u16, theme: &Theme) -> (String, ratatui::buffer::Buffer) {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ops::view::render(f, f.area(), ops, theme))
        .unwrap();
    let buf = t.backend().buffer().clone();
    let text = (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    (text, buf)
}

fn upstream(ok: bool, failing: Option<&str>) -> UpstreamHealth {
    let checks = failing.map(|name| {
        BTreeMap::from([(
            name.to_string(),
            serde_json::from_value(serde_json::json!({"status":"degraded","reason":"down"}))
                .unwrap(),
        )])
    });
    UpstreamHealth {
        latency_ms: 1,
        status: if ok {
            UpstreamStatus::Up
        } else {
            UpstreamStatus::Down
        },
        url: "http://127.0.0.1:1".into(),
        health: ok.then_some(if failing.is_some() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        }),
        checks,
    }
}

fn sample(name: &str, label: (&str, &str), v: f64) -> Sample {
    Sample {
        name: name.into(),
        labels: vec![(label.0.into(), label.1.into())],
        value: v,
    }
}

/// A stack in a known state: one service not ready, one down, traffic on three subjects,
/// a group with dead letters, a few events.
fn known() -> Ops {
    let mut ops = Ops::new("http://127.0.0.1:8080", "http://127.0.0.1:5556");
    ops.apply(Msg::Readiness(Ok(Health {
        service: "gateway".into(),
        status: HealthStatus::Degraded,
        upstreams: Some(BTreeMap::from([
            ("auth".to_string(), upstream(true, None)),
            ("tickets".to_string(), upstream(true, None)),
            ("orders".to_string(), upstream(true, Some("bus"))),
            ("payments".to_string(), upstream(false, None)),
        ])),
        checks: None,
        pid: None,
        instance: None,
    })));
    let totals = [
        (0.0, 0.0, 0.0),
        (5.0, 2.0, 0.0),
        (12.0, 6.0, 1.0),
        (30.0, 9.0, 1.0),
    ];
    for (created, updated, dead) in totals {
        ops.apply(Msg::Metrics(
            Ok(vec![
                sample(
                    "tix_bus_published_events_total",
                    ("subject", "order:created"),
                    created,
                ),
                sample(
                    "tix_bus_published_events_total",
                    ("subject", "ticket:updated"),
                    updated,
                ),
                sample(
                    "tix_bus_published_events_total",
                    ("subject", "payment:created"),
                    dead,
                ),
                sample("tix_bus_group_lag_events", ("group", "orders"), 3.0),
                sample("tix_bus_group_lag_events", ("group", "tickets"), 0.0),
                sample("tix_bus_group_dead_letters", ("group", "payments"), dead),
                sample("tix_bus_group_pending_events", ("group", "payments"), 2.0),
            ]),
            Duration::from_secs(1),
        ));
    }
    ops.apply(Msg::Tail(TailState::Following));
    for (i, subject) in ["ticket:created", "order:created", "ticket:updated"]
        .iter()
        .enumerate()
    {
        ops.apply(Msg::Event {
            subject: subject.to_string(),
            envelope: serde_json::json!({
                "producer": subject.split(':').next().unwrap().to_string() + "s",
                "occurredAt": format!("2026-11-26T14:02:0{i}.125Z"),
                "correlationId": "7f7e0c1d-aaaa",
                "data": {"id": format!("0193a5c2-000{i}"), "status": "created", "price": 25},
            }),
        });
    }
    ops
}

#[test]
fn a_known_state_at_100x30_and_40x12() {
    let ops = known();
    let (wide, _) = screen(&ops, 100, 30, &Theme::colour());
    insta::assert_snapshot!("ops_100x30", wide);
    let (narrow, _) = screen(&ops, 40, 12, &Theme::colour());
    insta::assert_snapshot!("ops_40x12", narrow);
    // What someone glancing at it must see.
    assert!(wide.contains("● auth"), "{wide}");
    assert!(wide.contains("◐ orders (bus)"), "{wide}");
    assert!(wide.contains("○ payments (down)"), "{wide}");
    assert!(
        wide.contains("order:created") && wide.contains("18/s"),
        "{wide}"
    );
    assert!(wide.contains("req=7f7e0c1d"), "{wide}");
}

#[test]
fn no_colour_means_no_colour() {
    let (_, buf) = screen(&known(), 100, 30, &Theme::mono());
    for cell in buf.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{cell:?}");
    }
}

#[test]
fn keys_pause_scroll_and_leave() {
    let mut ops = known();
    let key = |c| Input::Key(KeyEvent::new(c, KeyModifiers::NONE));
    assert!(ops::on_input(&mut ops, key(KeyCode::Char('p'))));
    assert!(ops.paused);
    assert!(ops::on_input(&mut ops, key(KeyCode::Up)));
    assert!(ops::on_input(&mut ops, Input::Wheel { up: true }));
    assert_eq!(ops.scroll, 2, "two events back at most (three in all)");
    let (text, _) = screen(&ops, 100, 30, &Theme::colour());
    assert!(text.contains("[paused]") && text.contains("(↑2)"), "{text}");
    assert!(ops::on_input(&mut ops, key(KeyCode::End)));
    assert_eq!(ops.scroll, 0);
    assert!(!ops::on_input(&mut ops, key(KeyCode::Esc)));
    assert!(!ops::on_input(&mut ops, key(KeyCode::Char('q'))));
}

#[test]
fn what_the_bus_carries_never_reaches_the_terminal_raw() {
    let mut ops = known();
    ops.apply(Msg::Event {
        subject: "order:created\u{1b}]52;c;AAAA\u{7}".into(),
        envelope: serde_json::json!({
            "producer": "orders\u{202E}",
            "correlationId": "\u{1b}[2J",
            "data": {"id": "x", "status": "cre\u{202E}ated", "title": "a\u{200B}b"},
        }),
    });
    let (_, buf) = screen(&ops, 100, 30, &Theme::colour());
    for cell in buf.content() {
        for c in cell.symbol().chars() {
            assert!(
                !c.is_control() && !('\u{200B}'..='\u{206F}').contains(&c),
                "{c:?} reached the terminal"
            );
        }
    }
}

#[test]
fn shift_o_in_the_marketplace_opens_it() {
    let mut app = common::signed_in();
    let effects = tix_tui::app::update(
        &mut app,
        tix_tui::app::Action::Key(KeyEvent::new(KeyCode::Char('O'), KeyModifiers::SHIFT)),
    );
    assert_eq!(effects, vec![tix_tui::app::Effect::OpenOps]);
}

#[test]
fn what_it_says_when_nothing_answers() {
    let mut ops = Ops::new("http://127.0.0.1:9", "http://127.0.0.1:9");
    ops.apply(Msg::Readiness(Err(
        "http://127.0.0.1:9/readyz: cannot connect".into(),
    )));
    ops.apply(Msg::Metrics(
        Err("http://127.0.0.1:9/metrics: cannot connect".into()),
        Duration::from_secs(1),
    ));
    ops.apply(Msg::Tail(TailState::Off(
        "No key for bus client \"cli\"".into(),
    )));
    let (text, _) = screen(&ops, 100, 30, &Theme::colour());
    assert!(
        text.contains("gateway: http://127.0.0.1:9/readyz: cannot connect"),
        "{text}"
    );
    assert!(
        text.contains("bus metrics: http://127.0.0.1:9/metrics: cannot connect"),
        "{text}"
    );
    assert!(text.contains("○ bus (down)"), "{text}");
    assert!(text.contains("No key for bus client"), "{text}");
}

/// Collects what the feed says until `done` holds for the model, or fails after 30 s.
async fn feed_until(
    ops: &mut Ops,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>,
    what: &str,
    done: impl Fn(&Ops) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(ops) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => ops.apply(m),
            _ => panic!("{what}: not seen in 30 s; the screen knew {ops:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fed_from_a_stack_it_shows_every_process_the_traffic_the_groups_and_the_events() {
    let stack = Stack::start(&ALL);
    let cfg = Config {
        gateway: stack.url("gateway"),
        bus_metrics: stack.bus_metrics.clone(),
        bus: stack.bus.endpoint.clone(),
        bus_client: "cli".into(),
        bus_key_file: Some(stack.bus.key_file("cli")),
        every: Duration::from_millis(200),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _feed = ops::feed::start(&cfg, tx);
    let mut ops = Ops::new(&cfg.gateway, &cfg.bus_metrics);
    feed_until(&mut ops, &mut rx, "the tail following", |o| {
        o.tail == TailState::Following
    })
    .await;

    // Traffic: a purchase.
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Ops demo", 12.0).await;
    let order = api.reserve_when_known(&buyer, &ticket).await;
    let (s, v) = api.pay(&buyer, &order, "tok_visa").await;
    assert_eq!(s, 201, "{v}");

    let names = [
        "gateway",
        "auth",
        "tickets",
        "orders",
        "expiration",
        "payments",
        "bus",
    ];
    feed_until(&mut ops, &mut rx, "every process ready", |o| {
        names.iter().all(|n| {
            o.processes
                .iter()
                .any(|p| p.name == *n && p.state == ProcessState::Ready)
        })
    })
    .await;
    let subjects = [
        "ticket:created",
        "order:created",
        "ticket:updated",
        "payment:created",
    ];
    feed_until(&mut ops, &mut rx, "the purchase's events", |o| {
        subjects
            .iter()
            .all(|s| o.events.iter().any(|e| e.subject == *s))
    })
    .await;
    feed_until(&mut ops, &mut rx, "the purchase's counts and a rate", |o| {
        subjects
            .iter()
            .all(|s| o.subjects.get(*s).is_some_and(|x| x.total >= 1.0))
            && o.subjects.values().any(|s| s.rates.iter().any(|r| *r > 0))
            && ["orders", "tickets", "payments", "expiration"]
                .iter()
                .all(|g| o.groups.contains_key(*g))
    })
    .await;
    let paid = ops
        .events
        .iter()
        .find(|e| e.subject == "payment:created")
        .unwrap();
    assert_eq!(paid.producer, "payments");
    assert!(
        paid.summary.contains(&format!("orderId={}", &order[..8])),
        "{paid:?}"
    );

    for (w, h) in [(100, 30), (40, 12)] {
        let (text, _) = screen(&ops, w, h, &Theme::colour());
        assert!(text.contains("tix ops"), "{w}x{h}:\n{text}");
        if w == 100 {
            for n in names {
                assert!(text.contains(&format!("● {n}")), "{n} at {w}x{h}:\n{text}");
            }
            for s in ["order:created", "payment:created"] {
                assert!(text.contains(s), "{s} at {w}x{h}:\n{text}");
            }
            assert!(text.contains("orders") && text.contains("lag"), "{text}");
        } else {
            // The compact layout: every section is there, each with the stack's own rows.
            for heading in ["Events per second", "Groups", "Latest events"] {
                assert!(text.contains(heading), "{heading} at {w}x{h}:\n{text}");
            }
            assert!(text.contains("● gateway"), "{w}x{h}:\n{text}");
            assert!(
                ops.subjects
                    .keys()
                    .any(|s| text.contains(&s[..s.len().min(12)])),
                "no subject at {w}x{h}:\n{text}"
            );
            assert!(
                ops.groups.keys().any(|g| text.contains(g.as_str())),
                "no group at {w}x{h}:\n{text}"
            );
        }
    }
}
