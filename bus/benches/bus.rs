//! Bus benchmarks against a real `tix-bus` process (release build), fsync on every commit.
//!
//! ```text
//! cargo bench -p tix-bus --bench bus                     # everything, durability full
//! cargo bench -p tix-bus --bench bus -- --durability normal --events 100000
//! ```
//! Prints one line per measurement; docs/benchmarks.md keeps the medians of several runs.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use tix_bus_client::{Client, ClientOptions, SubscribeOptions};
use tix_testkit::Bus;

struct Args {
    events: usize,
    durability: String,
    window: usize,
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        events: 200_000,
        durability: "full".into(),
        window: 8192,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--events" => a.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--window" => a.window = it.next().and_then(|v| v.parse().ok()).expect("--window N"),
            "--durability" => a.durability = it.next().expect("--durability full|normal"),
            "--only" => a.only = it.next(),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

async fn client(endpoint: &str) -> Client {
    let mut o = ClientOptions::new(endpoint, "bench");
    o.request_timeout = Duration::from_secs(30);
    o.max_batch = 2048;
    let c = Client::connect(o);
    c.wait_connected(Duration::from_secs(10)).await.unwrap();
    c
}

fn payload(fill: u8) -> Vec<u8> {
    vec![fill; 256]
}

/// Publishes `n` events keeping `window` in flight; returns events/s.
async fn pipelined_publish(c: &Client, prefix: &str, n: usize, window: usize) -> f64 {
    let body = bytes::Bytes::from(payload(b'x'));
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
        "tix-bus bench: durability={} events={} window={} (256-byte payloads)",
        a.durability, a.events, a.window
    );

    if run("publish") {
        let bus = Bus::start_with(&["--durability", &a.durability]);
        let c = client(&bus.endpoint).await;
        pipelined_publish(&c, "warm", 20_000, a.window).await;
        let rate = pipelined_publish(&c, "p", a.events, a.window).await;
        report(
            "pipelined durable publish",
            format!("{rate:>10.0} events/s"),
        );
    }

    if run("sync") {
        let bus = Bus::start_with(&["--durability", &a.durability]);
        let c = client(&bus.endpoint).await;
        let mut h = Histogram::<u64>::new(3).unwrap();
        let n = 5_000;
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            c.publish(format!("s{i}"), "bench", payload(b's'))
                .await
                .unwrap();
            h.record(t.elapsed().as_micros() as u64).unwrap();
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        report(
            "synchronous publish",
            format!("{rate:>10.0} events/s  {}", pct(&h)),
        );
    }

    if run("consume") {
        let bus = Bus::start_with(&["--durability", &a.durability]);
        let c = client(&bus.endpoint).await;
        pipelined_publish(&c, "c", a.events, a.window).await;
        let mut o = SubscribeOptions::new("consumers", &["bench"]);
        o.max_in_flight = 8192;
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
        report(
            "consume + ack (one member)",
            format!("{rate:>10.0} events/s"),
        );
    }

    if run("latency") {
        let bus = Bus::start_with(&["--durability", &a.durability]);
        let publisher = client(&bus.endpoint).await;
        let consumer = client(&bus.endpoint).await;
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
                let sent = u64::from_le_bytes(d.payload[..8].try_into().unwrap());
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
            let mut body = payload(b'l');
            body[..8].copy_from_slice(&(origin.elapsed().as_micros() as u64).to_le_bytes());
            inflight.push(publisher.publish(format!("l{i}"), "bench", body));
            while let Some(Some(r)) = futures::FutureExt::now_or_never(inflight.next()) {
                r.unwrap();
            }
        }
        while let Some(r) = inflight.next().await {
            r.unwrap();
        }
        let h = recv.await.unwrap();
        report("end to end publish → delivered @2k/s", pct(&h));
    }
}
