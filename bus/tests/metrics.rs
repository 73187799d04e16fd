//! The broker's metrics port (docs/bus.md, "Metrics"): a real `tix-bus` with
//! `--metrics-addr`, driven by a real client, scraped over HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use prometheus_parse::{LineInfo, Scrape, Value};
use tix_testkit::events::{WAIT, connect, group, next_delivery, publish_n};
use tix_testkit::{Bus, bin, eventually};

/// A broker serving metrics on a free port, and that port's address.
fn start() -> (Bus, SocketAddr) {
    // `Bus::start_with` reads the address from the documented line, `tix-bus metrics on
    // http://<addr>`, printed right after the "listening on" one.
    let bus = Bus::start_with(&["--metrics-addr", "127.0.0.1:0", "--durability", "full"]);
    let addr = bus
        .metrics
        .as_deref()
        .and_then(|url| url.strip_prefix("http://"))
        .expect("the metrics line names an http:// URL")
        .parse()
        .expect("an address");
    (bus, addr)
}

/// A plain HTTP/1.1 request; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connecting to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("reading the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// GET /metrics, checked to be well-formed text and parsed.
fn scrape(addr: SocketAddr) -> Scrape {
    let (status, content_type, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    for line in body.lines() {
        let understood =
            line.starts_with('#') || matches!(LineInfo::parse(line), LineInfo::Sample { .. });
        assert!(understood, "not a sample or a comment: {line:?}\n{body}");
    }
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The value of `metric` (with `label`, when given), if the scrape has it.
fn value(s: &Scrape, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is not a single number: {other:?}"),
        })
}

fn group_value(s: &Scrape, metric: &str, group: &str) -> Option<f64> {
    value(s, metric, Some(("group", group)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_published_and_show_a_group_moving() {
    let (bus, addr) = start();
    let c = connect(&bus.endpoint, "t").await;
    publish_n(&c, "t", "ticket:created", 5).await;
    publish_n(&c, "o", "order:created", 3).await;
    // A duplicate id is acked but not stored: not counted.
    c.publish("t-00000", "ticket:created", "{}").await.unwrap();

    let mut o = group("orders", &["ticket:created"]);
    o.max_in_flight = 2;
    let mut sub = c.subscribe(o).await.unwrap();
    let first = next_delivery(&mut sub).await;
    let second = next_delivery(&mut sub).await;
    // Two delivered and held, three to come.
    eventually("the group holding two, three behind", WAIT, || async move {
        let s = tokio::task::spawn_blocking(move || scrape(addr))
            .await
            .unwrap();
        group_value(&s, "tix_bus_group_pending_events", "orders") == Some(2.0)
            && group_value(&s, "tix_bus_group_lag_events", "orders") == Some(3.0)
    })
    .await;

    first.ack().await.unwrap();
    second.ack().await.unwrap();
    let (third, fourth) = (next_delivery(&mut sub).await, next_delivery(&mut sub).await);
    third.ack().await.unwrap();
    fourth.ack().await.unwrap();
    // The last one held: nothing left behind, one pending.
    let last = next_delivery(&mut sub).await;
    eventually(
        "the group caught up with one pending",
        WAIT,
        || async move {
            let s = tokio::task::spawn_blocking(move || scrape(addr))
                .await
                .unwrap();
            group_value(&s, "tix_bus_group_pending_events", "orders") == Some(1.0)
                && group_value(&s, "tix_bus_group_lag_events", "orders") == Some(0.0)
        },
    )
    .await;

    let s = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .unwrap();
    let published = |subject| {
        value(
            &s,
            "tix_bus_published_events_total",
            Some(("subject", subject)),
        )
    };
    assert_eq!(published("ticket:created"), Some(5.0));
    assert_eq!(published("order:created"), Some(3.0));
    assert_eq!(
        group_value(&s, "tix_bus_group_redelivered_events_total", "orders"),
        Some(0.0)
    );
    assert_eq!(
        group_value(&s, "tix_bus_group_dead_letters", "orders"),
        Some(0.0)
    );
    let commits = value(&s, "tix_bus_commit_duration_seconds_count", None).unwrap();
    assert!(commits > 0.0, "commits counted: {commits}");
    let fsyncs = value(&s, "tix_bus_fsync_duration_seconds_count", None).unwrap();
    // Every commit here is synced (acks waited for are too), so each is in both.
    assert_eq!(fsyncs, commits, "one COMMIT timed per group commit");
    let histogram = s
        .samples
        .iter()
        .find(|x| x.metric == "tix_bus_commit_duration_seconds")
        .expect("the commit histogram's buckets");
    assert!(matches!(histogram.value, Value::Histogram(ref b) if b.len() >= 10));
    assert!(value(&s, "tix_bus_connected_clients", None).unwrap() >= 1.0);
    assert!(value(&s, "tix_bus_connections", None).unwrap() >= 1.0);
    assert_eq!(value(&s, "tix_bus_log_events", None), Some(8.0));
    last.ack().await.unwrap();
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_the_process_and_anything_else_is_not_found() {
    let (bus, addr) = start();
    let (status, content_type, body) = http(addr, "GET", "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = health
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{health}");
    assert_eq!(health["service"], "bus");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["pid"].as_u64(), Some(u64::from(bus.proc.pid())));
    let instance = uuid::Uuid::parse_str(health["instance"].as_str().unwrap()).unwrap();
    assert_eq!(instance.get_version_num(), 7);
    // The same instance for the process's lifetime.
    let (_, _, again) = http(addr, "GET", "/healthz");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&again).unwrap(),
        health
    );

    for (method, path) in [
        ("GET", "/"),
        ("GET", "/metrics/x"),
        ("POST", "/metrics"),
        ("DELETE", "/healthz"),
    ] {
        let (status, _, body) = http(addr, method, path);
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"error": "Not found"}),
            "{method} {path}"
        );
    }
}

#[test]
fn a_metrics_port_in_use_fails_the_start_with_one_line_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_string_lossy().into_owned();
    let init = std::process::Command::new(bin("tix-bus"))
        .args(["init-policy", "--data-dir", &data_dir])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");

    let out = std::process::Command::new(bin("tix-bus"))
        .args([
            "--bind",
            "tcp://127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--metrics-addr",
            &addr,
        ])
        .env_remove("TIX_BUS_METRICS_ADDR")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("tix-bus: "), "{stderr}");
    assert!(lines[0].contains(&addr), "names {addr}: {stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "nothing announced: {out:?}"
    );
    drop(taken);
}

/// `--log-format json` (the flag, not only its `TIX_LOG_FORMAT` twin) makes every log line
/// one JSON object, fields at the top level as the services write them; the default is
/// text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_format_flag_makes_every_log_line_a_json_object() {
    let json = Bus::start_with(&["--log-format", "json", "--log", "info"]);
    let text = Bus::start_with(&["--log", "info"]);
    for bus in [&json, &text] {
        // A session's start is logged.
        let c = connect(&bus.endpoint, "t").await;
        c.stats().await.unwrap();
    }
    let lines = |bus: &Bus| -> Vec<String> {
        bus.proc
            .log_text()
            .lines()
            // What main prints for scripts, not a log line.
            .filter(|l| !l.is_empty() && !l.starts_with("listening on"))
            .map(str::to_string)
            .collect()
    };
    let logged: Vec<serde_json::Value> = lines(&json)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        logged
            .iter()
            .any(|v| v["message"] == "session opened" && v["client"] == "test"),
        "the session's start: {logged:?}"
    );
    let listening = logged
        .iter()
        .find(|v| v["message"] == "tix-bus listening")
        .unwrap_or_else(|| panic!("no listening line: {logged:?}"));
    assert_eq!(listening["level"], "INFO", "{listening}");
    assert_eq!(listening["endpoint"], json.endpoint.as_str(), "{listening}");

    let logged = lines(&text);
    let listening = logged
        .iter()
        .find(|l| l.contains("tix-bus listening"))
        .unwrap_or_else(|| panic!("no listening line: {logged:?}"));
    assert!(
        serde_json::from_str::<serde_json::Value>(listening).is_err(),
        "{listening}"
    );
}
