//! Bus benchmarks against a real `tix-bus` process (release build), `--durability full`
//! (every publish fsynced before its `PUBACK`).
//!
//! ```text
//! cargo bench -p tix-bus --bench bus                     # everything, durability full
//! cargo bench -p tix-bus --bench bus -- --durability normal --events 100000
//! cargo bench -p tix-bus --bench bus -- --auth on         # only with authentication (default: off, then on)
//! ```
//! Prints one line per measurement; docs/benchmarks.md keeps the medians of several runs.
//! Each measurement runs against a fresh broker without authentication (`--insecure-no-auth`,
//! clients without a key) and then with it (the policy `tix-bus init-policy` writes, every
//! message sealed, each published event's `producer` checked), so the cost of
//! authentication is read off one run.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use tix_bus_client::{BusKey, Client, ClientOptions, SubscribeOptions};
use tix_testkit::{Bus, TEST_BUS_CLIENT, TEST_BUS_KEY};

struct Args {
    events: usize,
    durability: String,
    window: usize,
    only: Option<String>,
    /// Without authentication, with it, or both (in that order).
    auth: Vec<bool>,
}

fn args() -> Args {
    let mut a = Args {
        events: 200_000,
        durability: "full".into(),
        window: 8192,
        only: None,
        auth: vec![false, true],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--events" => a.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--window" => a.window = it.next().and_then(|v| v.parse().ok()).expect("--window N"),
            "--durability" => a.durability = it.next().expect("--durability full|normal"),
            "--only" => a.only = it.next(),
            "--auth" => {
                a.auth = match it.next().as_deref() {
                    Some("on") => vec![true],
                    Some("off") => vec![false],
                    _ => vec![false, true],
                }
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// A broker with a fresh data dir; `auth`: with its policy, or `--insecure-no-auth`.
fn broker(durability: &str, auth: bool) -> Bus {
    let mut flags = vec!["--durability", durability];
    if !auth {
        flags.push("--insecure-no-auth");
    }
    Bus::start_with(&flags)
}

/// A client of the tests' identity: with its key when the broker checks keys.
async fn client(endpoint: &str, auth: bool) -> Client {
    let mut o = ClientOptions::new(endpoint, TEST_BUS_CLIENT);
    if auth {
        o.key = Some(BusKey::from_hex(TEST_BUS_KEY).unwrap());
    }
    o.request_timeout = Duration::from_secs(30);
    o.max_batch = 2048;
    let c = Client::connect(o);
    c.wait_connected(Duration::from_secs(10)).await.unwrap();
    c
}

/// A 256-byte event envelope, as services publish them (so the broker's `producer` check
/// reads real JSON), carrying `t` as 20 digits at bytes 6..26.
fn payload(t: u64) -> Vec<u8> {
    let head = format!(r#"{{"t":"{t:020}","producer":"test","pad":""#);
    let pad = 256 - head.len() - 2;
    let mut out = head.into_bytes();
    out.extend(std::iter::repeat_n(b'x', pad));
    out.extend_from_slice(br#""}"#);
    out
}

fn sent_at(payload: &[u8]) -> u64 {
    std::str::from_utf8(&payload[6..26])
        .unwrap()
        .parse()
        .unwrap()
}

/// Publishes `n` events keeping `window` in flight; returns events/s.
async fn pipelined_publish(c: &Client, prefix: &str, n: usize, window: usize) -> f64 {
    let body = bytes::Bytes::from(payload(0));
    let start = Instant::now();
    let mut inflight: FuturesUnordered<_> = FuturesUnordered::new();
    for i in 0..n {
        if inflight.len() >= window {
            let r: tix_bus_client::client::Result<()> = inflight.next().await.unwrap();
            r.unwrap();
        }
        inflight.push(c.publish(format!("{prefix}{i}"), "bench", body.clone()));
    }
    while let Some(r) = inflight.next().await {
        r.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The CPU that authentication adds to one event, without the network: the client seals a
/// `PUB` of `batch` events, the broker opens it, checks the client's rights and each
/// event's `producer`, seals its `PUBACK`, and the client opens that. Returns ns per event.
fn auth_cpu(batch: usize) -> f64 {
    use bytes::Bytes;
    use tix_bus_client::protocol::Request;
    use tix_bus_client::protocol::auth::{Direction, SessionMac, nonce};
    let key = BusKey::from_hex(TEST_BUS_KEY).unwrap();
    let (b, c) = (nonce(), nonce());
    let client = SessionMac::derive(&key, &b, &c, "bench");
    let broker = SessionMac::derive(&key, &b, &c, "bench");
    let policy = tix_bus::policy::Policy::parse(&format!(
        "[clients.bench]\nkey = \"{TEST_BUS_KEY}\"\npublish = [\"bench\"]\nproducers = [\"test\"]\n"
    ))
    .unwrap();
    let perms = policy.client("bench").unwrap().clone();
    let body = Bytes::from(payload(0));
    let mut msg = vec![Bytes::from_static(b"PUB"), Bytes::from_static(&[1; 8])];
    for i in 0..batch {
        msg.extend([
            Bytes::from(format!("e{i}")),
            Bytes::from_static(b"bench"),
            body.clone(),
        ]);
    }
    let ack = vec![
        Bytes::from_static(b"PUBACK"),
        Bytes::from_static(&[1; 8]),
        Bytes::from_static(&[1; 4]),
    ];
    let rounds = (200_000 / batch).max(200);
    let start = Instant::now();
    for seq in 0..rounds as u64 {
        let mut sent = msg.clone();
        sent.push(client.seal(Direction::ToBroker, seq, &msg));
        broker.open(Direction::ToBroker, seq, &mut sent).unwrap();
        let request = Request::parse(&sent).unwrap();
        perms.authorize(&request).unwrap();
        let mut reply = ack.clone();
        reply.push(broker.seal(Direction::ToClient, seq, &ack));
        client.open(Direction::ToClient, seq, &mut reply).unwrap();
    }
    let with = start.elapsed();
    // The same without authentication: the parse alone.
    let start = Instant::now();
    for _ in 0..rounds {
        let sent = msg.clone();
        std::hint::black_box(Request::parse(&sent).unwrap());
    }
    let without = start.elapsed();
    (with.saturating_sub(without)).as_nanos() as f64 / (rounds * batch) as f64
}

/// CPU time (ns) the threads of process `pid` (`"self"` for this one) have used so far,
/// from the scheduler's per-thread accounting, which counts in nanoseconds where
/// `/proc/<pid>/stat` counts in 10 ms ticks.
fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn report(name: &str, value: String) {
    println!("{name:<44} {value}");
}

fn pct(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:>6} µs  p99 {:>6} µs  max {:>6} µs",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let run = |name: &str| a.only.as_deref().is_none_or(|o| o == name);
    println!(
        "tix-bus bench: durability={} events={} window={} (256-byte JSON payloads)",
        a.durability, a.events, a.window
    );

    // Off and on one after the other for each measurement, so drift of the machine (disk,
    // other load) falls on both alike.
    if run("auth-cpu") && a.auth.contains(&true) {
        for batch in [1, 64, 2048] {
            report(
                &format!("authentication CPU per event (PUB of {batch})"),
                format!("{:>10.0} ns", auth_cpu(batch)),
            );
        }
    }
    for m in ["publish", "sync", "consume", "latency"] {
        for &auth in &a.auth {
            let tag = if auth { "[auth]" } else { "[no auth]" };
            if m == "publish" && run(m) {
                let bus = broker(&a.durability, auth);
                let c = client(&bus.endpoint, auth).await;
                pipelined_publish(&c, "warm", 20_000, a.window).await;
                let rate = pipelined_publish(&c, "p", a.events, a.window).await;
                report(
                    format!("{} {}", "pipelined durable publish", tag).as_str(),
                    format!("{rate:>10.0} events/s"),
                );
            }

            if m == "sync" && run(m) {
                let bus = broker(&a.durability, auth);
                let c = client(&bus.endpoint, auth).await;
                let mut h = Histogram::<u64>::new(3).unwrap();
                let n = 5_000;
                let start = Instant::now();
                for i in 0..n {
                    let t = Instant::now();
                    c.publish(format!("s{i}"), "bench", payload(0))
                        .await
                        .unwrap();
                    h.record(t.elapsed().as_micros() as u64).unwrap();
                }
                let rate = n as f64 / start.elapsed().as_secs_f64();
                report(
                    format!("{} {}", "synchronous publish", tag).as_str(),
                    format!("{rate:>10.0} events/s  {}", pct(&h)),
                );
            }

            if m == "consume" && run(m) {
                let bus = broker(&a.durability, auth);
                let c = client(&bus.endpoint, auth).await;
                pipelined_publish(&c, "c", a.events, a.window).await;
                let mut o = SubscribeOptions::new("consumers", &["bench"]);
                o.max_in_flight = 8192;
                let broker_pid = bus.proc.pid().to_string();
                let cpu_before = (cpu_ns(&broker_pid), cpu_ns("self"));
                let start = Instant::now();
                let mut sub = c.subscribe(o).await.unwrap();
                for i in 0..a.events {
                    let d = sub.next().await.unwrap();
                    if i + 1 == a.events {
                        d.ack().await.unwrap(); // the last ack confirmed: every earlier one is durable too
                    } else {
                        d.ack_nowait().unwrap();
                    }
                }
                let rate = a.events as f64 / start.elapsed().as_secs_f64();
                // Threads that ended during the phase drop out of the sum: never below 0.
                let per_event =
                    |before: u64, after: u64| after.saturating_sub(before) / a.events as u64;
                let broker_ns = per_event(cpu_before.0, cpu_ns(&broker_pid));
                let consumer_ns = per_event(cpu_before.1, cpu_ns("self"));
                report(
                    format!("{} {}", "consume + ack (one member)", tag).as_str(),
                    format!(
                        "{rate:>10.0} events/s  CPU per event: broker {broker_ns} ns, consumer {consumer_ns} ns"
                    ),
                );
            }

            if m == "latency" && run(m) {
                let bus = broker(&a.durability, auth);
                let publisher = client(&bus.endpoint, auth).await;
                let consumer = client(&bus.endpoint, auth).await;
                let mut sub = consumer
                    .subscribe(SubscribeOptions::new("latency", &["bench"]))
                    .await
                    .unwrap();
                let rate = 2_000u64;
                let n = 20_000usize;
                let origin = Instant::now();
                let recv = tokio::spawn(async move {
                    let mut h = Histogram::<u64>::new(3).unwrap();
                    for _ in 0..n {
                        let d = sub.next().await.unwrap();
                        let sent = sent_at(&d.payload);
                        let now = origin.elapsed().as_micros() as u64;
                        h.record(now.saturating_sub(sent)).unwrap();
                        d.ack_nowait().unwrap();
                    }
                    h
                });
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut inflight = FuturesUnordered::new();
                for i in 0..n {
                    tick.tick().await;
                    let body = payload(origin.elapsed().as_micros() as u64);
                    inflight.push(publisher.publish(format!("l{i}"), "bench", body));
                    while let Some(Some(r)) = futures::FutureExt::now_or_never(inflight.next()) {
                        r.unwrap();
                    }
                }
                while let Some(r) = inflight.next().await {
                    r.unwrap();
                }
                let h = recv.await.unwrap();
                report(
                    format!("{} {}", "end to end publish → delivered @2k/s", tag).as_str(),
                    pct(&h),
                );
            }
        }
    }
}
