//! `tix-abuse-bench`: how long a normal user's sign-in takes while one address floods auth
//! with sign-ups, next to the same sign-ins with no flood, measured in one run against a
//! release `tix-auth` process with its default limits.
//!
//! ```text
//! cargo build --release -p tix-bench -p tix-auth -p tix-bus && target/release/tix-abuse-bench
//! target/release/tix-abuse-bench --duration 20s --rate 2000
//! ```
//! The normal user signs up from 127.0.0.3, then signs in back to back (one at a time) for
//! each phase: first alone (baseline), then while a flooder on 127.0.0.2 sends sign-ups
//! with fresh emails at a fixed rate, open loop (a ticker spawns each request without
//! waiting for earlier answers, so a slow server does not lower the offered rate).

mod procfs;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use procfs::{cpu_time, peak_rss_kib};
use serde_json::json;
use tix_testkit::Stack;

const ABOUT: &str = "Sign-in latency of a normal user while one address floods auth with sign-ups";

const LONG_ABOUT: &str = "\
Sign-in latency of a normal user while one address floods auth with sign-ups.

Starts the broker and a release tix-auth process (logs at warn, the auth service's default
limits) and, in one run:
  1. signs up one normal user from 127.0.0.3;
  2. baseline: the user signs in back to back (one request at a time, the next when the
     last is answered) for --duration, with no other load;
  3. flood: the same, while a flooder on 127.0.0.2 sends --rate sign-ups per second with
     fresh emails, open loop: a ticker spawns each request without waiting for answers.

Sign-ins are limited per client address (default 20 at once, then 60 a minute), so one
address signing in back to back is refused after 20. The user's sign-ins therefore rotate
over --addresses loopback addresses from 127.0.0.3 up (100 addresses: 100 sign-ins a
second, more than auth's global sign-in limit of 50 a second): every sign-in passes the
same checks as a real user's, with auth's limits left at their defaults. Only answered
200s are timed; any other answer is counted as refused and printed. --rate 0 runs the
second phase without a flood, as a control. auth inherits this process's environment:
TIX_SIGNUP_*, TIX_SIGNIN_* or TIX_HASH_QUEUE set there change its limits, and the report's
first line says so.

Reports per phase the sign-ins done and their p50/p90/p99/max latency; for the flood, the
sign-ups offered and answered by status; and auth's peak RSS (VmHWM) and CPU time. Needs
the release binaries next to this one (or in TIX_BIN_DIR):
  cargo build --release -p tix-bench -p tix-auth -p tix-bus";

#[derive(Debug, Parser)]
#[command(name = "tix-abuse-bench", about = ABOUT, long_about = LONG_ABOUT)]
struct Args {
    /// How long each phase (baseline, flood) runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Sign-ups per second the flooder offers from 127.0.0.2 (0: no flood, a control run
    /// that shows how much the second phase differs from the first by itself).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Loopback addresses the normal user's sign-ins rotate over (127.0.0.3 and up), so
    /// auth's per-address sign-in limit (60 a minute each) does not refuse them.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=252))]
    addresses: u8,
    /// auth's SQLite durability: `full` (fsync every commit) or `normal`.
    #[arg(long, default_value = "full")]
    durability: String,
    /// Instead of the flood: N sign-ups sent at once with the limits raised so every one
    /// is hashed, reporting the time, auth's CPU and its peak resident memory.
    #[arg(long, default_value_t = 0)]
    burst: usize,
}

const PASSWORD: &str = "normal-user-password-1";
const USER_EMAIL: &str = "normal.user@bench.io";

/// A client whose requests come from `from`, as another machine's would.
fn client_from(from: IpAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// What the normal user's sign-ins got in one phase.
struct SignIns {
    /// Latency of the answered 200s, µs.
    ok: Histogram<u64>,
    /// Other answers by status (0: no answer).
    refused: BTreeMap<u16, u64>,
    elapsed: Duration,
}

/// Signs the user in back to back for `duration`, each sign-in from the next address.
async fn sign_ins(
    clients: &[reqwest::Client],
    cursor: &mut usize,
    url: &str,
    duration: Duration,
) -> anyhow::Result<SignIns> {
    let mut ok = Histogram::<u64>::new(3)?;
    let mut refused = BTreeMap::new();
    let body = json!({"email": USER_EMAIL, "password": PASSWORD});
    let started = Instant::now();
    while started.elapsed() < duration {
        let http = &clients[*cursor % clients.len()];
        *cursor += 1;
        let sent = Instant::now();
        let status = match http.post(url).json(&body).send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
            Err(_) => 0,
        };
        let took = sent.elapsed();
        if status == 200 {
            ok.record(took.as_micros() as u64)?;
        } else {
            *refused.entry(status).or_default() += 1;
        }
    }
    Ok(SignIns {
        ok,
        refused,
        elapsed: started.elapsed(),
    })
}

/// What the flooder's sign-ups got.
struct Flood {
    offered: u64,
    /// Answers by status (0: no answer: connection error or timeout).
    answers: BTreeMap<u16, u64>,
    /// Time to answer, µs, whatever the status.
    latency: Histogram<u64>,
    /// The ticker's actual offered rate.
    offered_per_s: f64,
}

/// Offers `rate` sign-ups per second for `duration` from `http`, each spawned on its tick,
/// then waits (up to 30 s) for the answers still out.
async fn flood(
    http: reqwest::Client,
    url: String,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Flood> {
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    // A late tick is made up at once: the offered rate does not depend on the server.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut out = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let (http, url) = (http.clone(), url.clone());
        out.spawn(async move {
            let body =
                json!({"email": format!("flood-{i}@bench.io"), "password": "flood-password-1"});
            let sent = Instant::now();
            let status = match http.post(&url).json(&body).send().await {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            (status, sent.elapsed())
        });
    }
    let offered_per_s = total as f64 / started.elapsed().as_secs_f64();
    let mut answers = BTreeMap::new();
    let mut latency = Histogram::<u64>::new(3)?;
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(r) = out.join_next().await {
            if let Ok((status, took)) = r {
                *answers.entry(status).or_default() += 1;
                let _ = latency.record(took.as_micros() as u64);
            }
        }
    })
    .await;
    let unanswered = out.len() as u64;
    if unanswered > 0 {
        *answers.entry(0).or_default() += unanswered;
    }
    out.abort_all();
    Ok(Flood {
        offered: total,
        answers,
        latency,
        offered_per_s,
    })
}

/// "default limits", or which limits auth inherits from this process's environment.
fn limits_note() -> String {
    let set: Vec<String> = std::env::vars()
        .filter(|(k, _)| {
            ["TIX_SIGNUP_", "TIX_SIGNIN_", "TIX_HASH_QUEUE"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if set.is_empty() {
        "default limits".into()
    } else {
        format!("limits from the environment: {}", set.join(" "))
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn statuses(m: &BTreeMap<u16, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(s, n)| match s {
            0 => format!("{n} unanswered"),
            s => format!("{n}× {s}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(phase: &str, s: &SignIns) {
    let h = &s.ok;
    println!(
        "{:<9} {:>8} {:>7.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}   {}",
        phase,
        h.len(),
        h.len() as f64 / s.elapsed.as_secs_f64(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        statuses(&s.refused)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.burst > 0 {
        return burst(&args).await;
    }
    let mut stack = Stack::start_with_env(
        &["auth"],
        &[
            ("TIX_DB_DURABILITY", args.durability.as_str()),
            ("TIX_LOG", "warn"),
        ],
    );
    let auth = stack.url("auth");
    let pid = stack.service("auth").proc.pid();
    let (signup, signin) = (
        format!("{auth}/api/users/signup"),
        format!("{auth}/api/users/signin"),
    );
    let users = (0..args.addresses)
        .map(|i| client_from(IpAddr::from([127, 0, 0, 3 + i])))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let flooder = client_from(IpAddr::from([127, 0, 0, 2]))?;

    let r = users[0]
        .post(&signup)
        .json(&json!({"email": USER_EMAIL, "password": PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status() == 201,
        "the normal user's sign-up got {}",
        r.status()
    );
    // Warm up: one sign-in from every address opens its connection.
    for http in &users {
        let r = http
            .post(&signin)
            .json(&json!({"email": USER_EMAIL, "password": PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "a warm-up sign-in got {}", r.status());
    }
    let mut cursor = 0;

    let cpu0 = cpu_time(&pid.to_string());
    let baseline = sign_ins(&users, &mut cursor, &signin, args.duration).await?;
    let cpu1 = cpu_time(&pid.to_string());
    let rss_baseline = peak_rss_kib(pid);

    let me0 = cpu_time("self");
    let flooding = tokio::spawn(flood(flooder, signup, args.rate, args.duration));
    let under_flood = sign_ins(&users, &mut cursor, &signin, args.duration).await?;
    let flood = flooding.await??;
    let cpu2 = cpu_time(&pid.to_string());
    let me1 = cpu_time("self");
    let rss_end = peak_rss_kib(pid);

    println!(
        "tix-abuse-bench: release tix-auth, {}, durability={}, {:?} per phase",
        limits_note(),
        args.durability,
        args.duration
    );
    println!(
        "normal user: sequential sign-ins rotating over 127.0.0.3–127.0.0.{}; flooder: {} sign-ups/s from 127.0.0.2, open loop",
        2 + args.addresses,
        args.rate
    );
    println!();
    println!(
        "{:<9} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8}   refused",
        "sign-ins", "done", "/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    row("baseline", &baseline);
    row("flood", &under_flood);
    println!();
    println!(
        "flood sign-ups: {} offered ({:.0}/s); answered 201: {}  429: {}  503: {}  other: {}  unanswered: {}",
        flood.offered,
        flood.offered_per_s,
        flood.answers.get(&201).unwrap_or(&0),
        flood.answers.get(&429).unwrap_or(&0),
        flood.answers.get(&503).unwrap_or(&0),
        flood
            .answers
            .iter()
            .filter(|(s, _)| ![0, 201, 429, 503].contains(*s))
            .map(|(_, n)| n)
            .sum::<u64>(),
        flood.answers.get(&0).unwrap_or(&0),
    );
    println!(
        "flood answer time: p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        ms(flood.latency.value_at_quantile(0.5)),
        ms(flood.latency.value_at_quantile(0.99)),
        ms(flood.latency.max())
    );
    let spent = |a: Option<Duration>, b: Option<Duration>| b.zip(a).map(|(b, a)| b - a);
    println!(
        "auth process: peak RSS (VmHWM) {} after the baseline, {} at the end; CPU {} in the baseline, {} in the flood",
        mib(rss_baseline),
        mib(rss_end),
        secs(spent(cpu0, cpu1)),
        secs(spent(cpu1, cpu2)),
    );
    println!(
        "this process (load generator) CPU in the flood: {}",
        secs(spent(me0, me1))
    );
    let refused: u64 = baseline
        .refused
        .values()
        .chain(under_flood.refused.values())
        .sum();
    if refused > 0 {
        println!(
            "note: {refused} of the normal user's sign-ins were refused (not timed); see the refused column"
        );
    }
    Ok(())
}

/// `--burst N`: N sign-ups at once, every one admitted and hashed.
async fn burst(args: &Args) -> anyhow::Result<()> {
    let n = args.burst.to_string();
    let quota = format!("{n}/{n}");
    let mut stack = Stack::start_with_env(
        &["auth"],
        &[
            ("TIX_DB_DURABILITY", args.durability.as_str()),
            ("TIX_LOG", "warn"),
            ("TIX_SIGNUP_PER_ADDRESS", quota.as_str()),
            ("TIX_SIGNUP_GLOBAL", quota.as_str()),
            ("TIX_HASH_QUEUE", n.as_str()),
        ],
    );
    let signup = format!("{}/api/users/signup", stack.url("auth"));
    let pid = stack.service("auth").proc.pid();
    let http = client_from(IpAddr::from([127, 0, 0, 2]))?;
    let idle = peak_rss_kib(pid);
    let cpu0 = cpu_time(&pid.to_string());
    let started = Instant::now();
    let answers = futures::future::join_all((0..args.burst).map(|i| {
        let (http, signup) = (&http, &signup);
        async move {
            http.post(signup)
                .json(&json!({"email": format!("burst{i}@x.io"), "password": PASSWORD}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let cpu = cpu_time(&pid.to_string())
        .zip(cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let created = answers.iter().filter(|s| **s == 201).count();
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
    println!(
        "tix-abuse-bench --burst: release tix-auth, durability={}, {} sign-ups at once",
        args.durability, args.burst
    );
    println!(
        "created {created} of {} in {:.2} s ({:.0}/s); auth CPU {:.2} s ({:.1} ms per sign-up)",
        args.burst,
        elapsed.as_secs_f64(),
        created as f64 / elapsed.as_secs_f64(),
        cpu.map_or(0.0, |c| c.as_secs_f64()),
        cpu.map_or(0.0, |c| c.as_secs_f64() * 1000.0 / args.burst as f64),
    );
    println!(
        "auth peak RSS: {} idle, {} after the burst",
        mib(idle),
        mib(peak_rss_kib(pid))
    );
    Ok(())
}
