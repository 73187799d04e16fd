//! The broker's memory stays bounded by its configuration under ordinary traffic: a long
//! publish/consume run against a real `tix-bus` process, watching its resident memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tix_testkit::Bus;
use tix_testkit::events::{connect, group};

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The broker's event cache here (`TIX_MEMORY_TEST_CACHE_BYTES` to measure with another).
fn cache_bytes() -> u64 {
    std::env::var("TIX_MEMORY_TEST_CACHE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8 << 20)
}
const PUBLISHERS: usize = 4;
/// Publishes each publisher keeps in flight: small, so most `PUB` messages carry one event,
/// the way services publish (each event its own receive read on the broker).
const WINDOW: usize = 4;

/// Publishes and consumes a few hundred thousand small events (`TIX_MEMORY_TEST_EVENTS`),
/// one group acking all of them, and checks the broker's resident memory: once the event
/// cache (8 MiB here) has filled,
/// it must stay flat (the last third of the run grows less than 10 % over the first
/// third's level), and stay within twice the cache (plus 8 MiB) over what an idle broker
/// holds.
/// Before the fix each cached event kept its whole receive buffer alive (4 KiB or more for
/// a 100-byte event) and memory rose far past the cache's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_flat_over_a_long_publish_and_consume_run() {
    let total: usize = std::env::var("TIX_MEMORY_TEST_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let cache = cache_bytes();
    let bus = Bus::start_with(&[
        "--cache-bytes",
        &cache.to_string(),
        "--durability",
        "normal",
    ]);
    let pid = bus.proc.pid();
    let consumer = connect(&bus.endpoint, "memory-consumer").await;
    let mut o = group("memory", &["mem"]);
    o.max_in_flight = 1024;
    let mut sub = consumer.subscribe(o).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(pid);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };

    let start = Instant::now();
    let payload = bytes::Bytes::from(vec![b'm'; 100]);
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let c = connect(&bus.endpoint, &format!("memory-publisher-{p}")).await;
        let payload = payload.clone();
        publishers.push(tokio::spawn(async move {
            let mut inflight = FuturesUnordered::new();
            for i in 0..total / PUBLISHERS {
                if inflight.len() >= WINDOW {
                    let r: tix_bus_client::client::Result<()> = inflight.next().await.unwrap();
                    r.unwrap();
                }
                inflight.push(c.publish(format!("p{p}-{i:07}"), "mem", payload.clone()));
            }
            while let Some(r) = inflight.next().await {
                r.unwrap();
            }
            c.close().await;
        }));
    }
    for i in 0..total {
        let d = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap_or_else(|_| panic!("delivery {i} of {total} within 30 s"))
            .expect("subscription open");
        d.ack_nowait().unwrap();
    }
    for p in publishers {
        p.await.unwrap();
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();

    // Skip the warm-up (the cache filling): judge the rest in thirds.
    let steady = &samples[samples.len() / 4..];
    let third = steady.len() / 3;
    assert!(third > 0, "too few samples: {samples:?}");
    let first = *steady[..third].iter().max().unwrap();
    let last = *steady[steady.len() - third..].iter().max().unwrap();
    let peak = *samples.iter().max().unwrap();
    eprintln!(
        "{total} events in {elapsed:.1?}: broker RSS idle {idle} KiB, first third {first} KiB, \
         last third {last} KiB, peak {peak} KiB ({} samples)",
        samples.len()
    );
    assert!(
        last * 10 <= first * 11,
        "the broker's memory kept growing: {first} KiB → {last} KiB (samples {samples:?})"
    );
    let budget = idle + 2 * cache / 1024 + 8 * 1024;
    assert!(
        peak <= budget,
        "the broker holds {peak} KiB with an {} KiB cache (idle {idle} KiB, budget {budget} KiB)",
        cache / 1024
    );
}
