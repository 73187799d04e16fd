//! `tix-purchase-bench`: purchases per second end to end (reserve + pay through the
//! gateway, many buyers over many tickets), the latency of each call, the time from a
//! reservation to the ticket showing as reserved, and the oversell count of repeated races.
//!
//! ```text
//! cargo build --release --workspace --bins && target/release/tix-purchase-bench
//! target/release/tix-purchase-bench --tickets 4000 --buyers 64 --races 20
//! target/release/tix-purchase-bench --tickets 2000 --buyers 4 --races 1 --legs
//! ```

mod http1;
mod procfs;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use procfs::{cpu_time, peak_rss_kib};
use tix_api::events::{Envelope, Event};
use tix_bus_client::{BusKey, Client, ClientOptions, SubscribeOptions};
use tix_testkit::{ALL, Stack, TEST_BUS_CLIENT, TEST_BUS_KEY, TEST_JWT_SECRET};

// The load generator shares the two cores with what it measures: it allocates as the
// services do.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "tix-purchase-bench")]
struct Args {
    /// Tickets on sale (each is bought once).
    #[arg(long, default_value_t = 2000)]
    tickets: usize,
    /// Concurrent buyers.
    #[arg(long, default_value_t = 64)]
    buyers: usize,
    /// Races of 100 buyers for one ticket, to count oversells.
    #[arg(long, default_value_t = 10)]
    races: usize,
    /// `full` (fsync every commit) or `normal`.
    #[arg(long, default_value = "full")]
    durability: String,
    /// How long an order holds its ticket (orders' `TIX_ORDER_TTL`). With a short one the
    /// bench waits until every sold order's hold has run out and reports what the stack
    /// spent meanwhile: the part of a purchase that comes back when its timer falls due.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    order_ttl: Duration,
    /// Also watch `order:created`, to split each reservation's path to "reserved" in two
    /// (orders' half, tickets' half) and report the slowest 1 %'s legs. Off by default: the
    /// extra delivery per purchase costs the bus and the bench a little CPU.
    #[arg(long)]
    legs: bool,
}

/// The `Authorization` header of `user`.
fn bearer(user: &str) -> String {
    let keys =
        tix_common::auth::JwtKeys::new(TEST_JWT_SECRET, Duration::from_secs(3600)).expect("keys");
    let token = keys
        .sign(user, &format!("{user}@bench.io"))
        .expect("sign")
        .0;
    format!("Bearer {token}")
}

/// One buyer's connection to the gateway ([`http1`]: a general-purpose client's pool,
/// redirects and header maps were a tenth of the sale's CPU, spent by the load generator
/// rather than the stack it measures).
struct Conn {
    send: SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        Ok(Conn {
            send: http1::connect(addr).await?,
        })
    }

    /// `POST path` with a JSON body; the status and the body, or status 0 when the call
    /// failed (the connection is opened again for the next one).
    async fn post(
        &mut self,
        addr: SocketAddr,
        path: &str,
        bearer: &str,
        body: String,
    ) -> (u16, Bytes) {
        if self.send.ready().await.is_err() {
            // Closed while idle: nothing went out on it, so the call goes on a new one.
            match Conn::open(addr).await {
                Ok(fresh) => *self = fresh,
                Err(_) => return (0, Bytes::new()),
            }
        }
        match self.exchange(path, bearer, body).await {
            Ok(answer) => answer,
            Err(_) => {
                if let Ok(fresh) = Conn::open(addr).await {
                    *self = fresh;
                }
                (0, Bytes::new())
            }
        }
    }

    async fn exchange(
        &mut self,
        path: &str,
        bearer: &str,
        body: String,
    ) -> anyhow::Result<(u16, Bytes)> {
        let req = hyper::Request::post(path)
            .header("host", "bench")
            .header("content-type", "application/json")
            .header("authorization", bearer)
            .body(Full::new(Bytes::from(body)))?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }
}

/// The `id` of a JSON object, or "" when there is none.
fn id_of(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(body)
        .map(|v| v.id)
        .unwrap_or_default()
}

fn pct(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:>6} µs  p99 {:>6} µs",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99)
    )
}

// One thread: the load generator shares the two cores with the stack it measures, and
// a second worker only added wake-ups between its own threads (futex and context switches
// were a fifth of its CPU).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ttl = humantime::format_duration(args.order_ttl).to_string();
    let mut stack = Stack::start_with_env(
        &ALL,
        &[
            ("TIX_DB_DURABILITY", args.durability.as_str()),
            ("TIX_ORDER_TTL", ttl.as_str()),
            ("TIX_LOG", "warn"),
            // Each bench buyer buys dozens of tickets back to back, far beyond what one
            // person does: the anti-hoarding limits would measure themselves.
            ("TIX_ORDERS_PER_USER", "1000000/1000000"),
            ("TIX_MAX_ACTIVE_ORDERS", "1000000"),
        ],
    );
    let gw: SocketAddr = stack.url("gateway").trim_start_matches("http://").parse()?;
    let seller = bearer("seller");

    // Tickets for sale, created concurrently, then given time to reach the orders replica.
    let next = Arc::new(AtomicUsize::new(0));
    let created = futures::future::try_join_all((0..16).map(|_| {
        let (seller, next, n) = (seller.clone(), next.clone(), args.tickets + args.races);
        async move {
            let mut conn = Conn::open(gw).await?;
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let body = r#"{"title":"Bench seat","price":42.5}"#.to_string();
                let (s, v) = conn.post(gw, "/api/tickets", &seller, body).await;
                anyhow::ensure!(
                    s == 201,
                    "creating a ticket: {s} {}",
                    String::from_utf8_lossy(&v)
                );
                mine.push(id_of(&v));
            }
            anyhow::Ok(mine)
        }
    }))
    .await?;
    let ids: Vec<String> = created.into_iter().flatten().collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (race_ids, sale_ids) = ids.split_at(args.races);

    // Watch the bus: when did each ticket show as reserved?
    let bus = Client::connect(
        ClientOptions::new(&stack.bus.endpoint, TEST_BUS_CLIENT)
            .with_key(BusKey::from_hex(TEST_BUS_KEY)?),
    );
    bus.wait_connected(Duration::from_secs(5)).await?;
    let subjects: &[&str] = if args.legs {
        &["ticket:updated", "order:created"]
    } else {
        &["ticket:updated"]
    };
    let mut watch = SubscribeOptions::new("bench-watch", subjects);
    watch.ephemeral = true;
    watch.max_in_flight = 4096;
    let mut sub = bus.subscribe(watch).await?;
    let reserved_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // When each order's `order:created` was seen on the bus: splits the reservation's
    // path in two, orders' half (commit, relay, the bus) and tickets' half.
    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ordered_at: Arc<Mutex<HashMap<String, Stamps>>> = Arc::default();
    let watcher = {
        let (reserved_at, created_at) = (reserved_at.clone(), created_at.clone());
        tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                let _ = d.ack_nowait();
                let seen = match Envelope::from_bus(&d.subject, &d.payload) {
                    Ok(Envelope {
                        event: Event::TicketUpdated(t),
                        ..
                    }) if t.order_id.is_some() => Some((&reserved_at, t.id)),
                    Ok(Envelope {
                        event: Event::OrderCreated(o),
                        ..
                    }) => Some((&created_at, o.ticket.id)),
                    _ => None,
                };
                if let Some((at, ticket)) = seen {
                    at.lock()
                        .expect("lock")
                        .entry(ticket)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };

    // The sale: each buyer takes the next ticket, reserves it and pays.
    let sale = Arc::new(sale_ids.to_vec());
    let cursor = Arc::new(AtomicUsize::new(0));
    let cpu_before = cpu_of_each(&mut stack);
    // On stderr, so that a profiler can be started on the sale alone (and bench/wal-frames
    // can copy the databases in the middle of it).
    eprintln!("sale: started, data in {}", stack.data_dir.display());
    let started = Instant::now();
    let results = futures::future::try_join_all((0..args.buyers).map(|b| {
        let (sale, cursor, ordered_at) = (sale.clone(), cursor.clone(), ordered_at.clone());
        async move {
            let auth = bearer(&format!("buyer{b}"));
            let mut reserve = Histogram::<u64>::new(3).expect("hist");
            let mut pay = Histogram::<u64>::new(3).expect("hist");
            let mut failed = 0u64;
            let mut conn = Conn::open(gw).await?;
            loop {
                let i = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(ticket) = sale.get(i) else { break };
                let t = Instant::now();
                let body = format!(r#"{{"ticketId":"{ticket}"}}"#);
                let (s, order) = conn.post(gw, "/api/orders", &auth, body).await;
                reserve
                    .record(t.elapsed().as_micros() as u64)
                    .expect("record");
                if s != 201 {
                    failed += 1;
                    continue;
                }
                let stamps = Stamps {
                    sent: t,
                    answered: Instant::now(),
                };
                ordered_at
                    .lock()
                    .expect("lock")
                    .insert(ticket.clone(), stamps);
                let t = Instant::now();
                let body = format!(r#"{{"orderId":"{}","token":"tok_visa"}}"#, id_of(&order));
                let (s, _) = conn.post(gw, "/api/payments", &auth, body).await;
                pay.record(t.elapsed().as_micros() as u64).expect("record");
                if s != 201 {
                    failed += 1;
                }
            }
            anyhow::Ok((reserve, pay, failed))
        }
    }))
    .await?;
    let elapsed = started.elapsed();
    eprintln!("sale: ended");
    // The events a sale set off (payments completing orders, tickets following) are still
    // being applied: let them settle before reading what each process spent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_after = cpu_of_each(&mut stack);
    let mut reserve = Histogram::<u64>::new(3)?;
    let mut pay = Histogram::<u64>::new(3)?;
    let mut failed = 0;
    for (r, p, f) in results {
        reserve.add(r)?;
        pay.add(p)?;
        failed += f;
    }

    // Races: 100 buyers at once for one ticket, several times.
    let mut oversold = 0;
    let mut race_winners = Vec::new();
    for (r, ticket) in race_ids.iter().enumerate() {
        let outcomes = futures::future::join_all((0..100).map(|b| {
            let ticket = ticket.clone();
            async move {
                let Ok(mut conn) = Conn::open(gw).await else {
                    return 0;
                };
                let body = format!(r#"{{"ticketId":"{ticket}"}}"#);
                let auth = bearer(&format!("racer{r}-{b}"));
                conn.post(gw, "/api/orders", &auth, body).await.0
            }
        }))
        .await;
        let won = outcomes.iter().filter(|s| **s == 201).count();
        race_winners.push(won);
        oversold += won.saturating_sub(1);
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher.abort();
    let mut to_reserved = Histogram::<u64>::new(3)?;
    let mut legs = Legs::default();
    {
        let ordered = ordered_at.lock().expect("lock");
        let reserved = reserved_at.lock().expect("lock");
        let created = created_at.lock().expect("lock");
        for (ticket, stamps) in ordered.iter() {
            if let Some(t1) = reserved.get(ticket) {
                to_reserved.record(t1.saturating_duration_since(stamps.sent).as_micros() as u64)?;
                if let Some(seen) = created.get(ticket) {
                    legs.add(stamps, *seen, *t1);
                }
            }
        }
    }
    let bought = sale_ids.len() as u64 - failed.min(sale_ids.len() as u64);
    println!(
        "tix-purchase-bench: {} tickets, {} buyers, durability={}",
        sale_ids.len(),
        args.buyers,
        args.durability
    );
    println!(
        "purchases (reserve + pay) {:>10.0} /s   ({} bought, {} failed calls, {:.2} s)",
        bought as f64 / elapsed.as_secs_f64(),
        bought,
        failed,
        elapsed.as_secs_f64()
    );
    println!("POST /api/orders           {}", pct(&reserve));
    println!("POST /api/payments         {}", pct(&pay));
    println!(
        "reserve → ticket reserved  {}   ({} seen)",
        pct(&to_reserved),
        to_reserved.len()
    );
    if args.legs {
        println!("{}", legs.report());
    }
    println!(
        "races of 100 buyers        {} races, winners per race {:?}, oversold {}",
        race_ids.len(),
        race_winners,
        oversold
    );
    // Where a purchase's CPU goes, process by process, the bench's own load included (it
    // shares the 2 cores): the profile behind docs/benchmarks.md's "CPU per purchase".
    println!(
        "CPU µs per purchase        {}",
        cpu_per(&cpu_before, &cpu_after, bought)
    );
    // What comes back once the holds run out (only with a TTL short enough to wait for):
    // from after the races to a second after the last sold order's hold. The first hold
    // must not run out before that reading: a TTL of 10 s or more leaves room for it.
    if args.order_ttl <= Duration::from_secs(120) {
        let first_due = started + args.order_ttl;
        let last_due = started + elapsed + args.order_ttl + Duration::from_secs(1);
        let cpu_races_done = cpu_of_each(&mut stack);
        anyhow::ensure!(
            Instant::now() < first_due,
            "--order-ttl {ttl} ran out before the races were over: make it longer"
        );
        tokio::time::sleep_until(last_due.into()).await;
        let cpu_later = cpu_of_each(&mut stack);
        println!(
            "CPU µs per purchase later  {} (until its hold of {ttl} ran out)",
            cpu_per(&cpu_races_done, &cpu_later, bought)
        );
    }
    // What each process needed at its peak (its resident high-water mark): the figures
    // behind the Kubernetes manifests' memory requests and limits (docs/deploy.md).
    let mut peaks = vec![("bus".to_string(), peak_rss_kib(stack.bus.proc.pid()))];
    for name in ALL {
        peaks.push((
            name.to_string(),
            peak_rss_kib(stack.service(name).proc.pid()),
        ));
    }
    let peaks: Vec<String> = peaks
        .iter()
        .map(|(n, kib)| match kib {
            Some(k) => format!("{n} {:.0} MiB", *k as f64 / 1024.0),
            None => format!("{n} ?"),
        })
        .collect();
    println!("peak RSS (VmHWM)           {}", peaks.join(", "));
    // Disk per purchase: every SQLite file (with its WAL) in the data dir, the figures
    // behind docs/operations.md's "Disk".
    let purchases = (bought + race_ids.len() as u64).max(1);
    let mut files = Vec::new();
    collect_dbs(&stack.data_dir, &mut files);
    files.sort();
    let sizes: Vec<String> = files
        .iter()
        .map(|(name, bytes)| format!("{name} {} B", bytes / purchases))
        .collect();
    println!("disk per purchase          {}", sizes.join(", "));
    Ok(())
}

/// When a reservation was sent and when its answer came back.
struct Stamps {
    sent: Instant,
    answered: Instant,
}

/// One reservation's times, in µs from when it was sent (the last from `order:created`).
struct Leg {
    reserved: u64,
    answered: u64,
    created: u64,
    then_reserved: u64,
}

/// A reservation's path to "reserved" in two legs, for every reservation and for the
/// slowest 1 %: where the tail is made.
#[derive(Default)]
struct Legs {
    each: Vec<Leg>,
}

impl Legs {
    fn add(&mut self, s: &Stamps, created: Instant, reserved: Instant) {
        let us = |from: Instant, to: Instant| to.saturating_duration_since(from).as_micros() as u64;
        self.each.push(Leg {
            reserved: us(s.sent, reserved),
            answered: us(s.sent, s.answered),
            created: us(s.sent, created),
            then_reserved: us(created, reserved),
        });
    }

    /// The median of each leg over all reservations and over the slowest 1 % of them.
    fn report(&mut self) -> String {
        if self.each.is_empty() {
            return "legs                       (none seen)".into();
        }
        self.each.sort_unstable_by_key(|l| l.reserved);
        let median = |rows: &[Leg], leg: fn(&Leg) -> u64| {
            let mut v: Vec<u64> = rows.iter().map(leg).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        let slowest = &self.each[self.each.len() * 99 / 100..];
        let line = |rows: &[Leg]| {
            format!(
                "answered {:>6} µs, order:created seen {:>6} µs, then reserved {:>6} µs later",
                median(rows, |l| l.answered),
                median(rows, |l| l.created),
                median(rows, |l| l.then_reserved)
            )
        };
        format!(
            "legs (medians), all        {}\nlegs, slowest 1 % ({:>4})   {}",
            line(&self.each),
            slowest.len(),
            line(slowest)
        )
    }
}

/// What each process spent between two readings, per purchase, and the total.
fn cpu_per(
    before: &[(String, Option<Duration>)],
    after: &[(String, Option<Duration>)],
    bought: u64,
) -> String {
    let mut total = 0u64;
    let per: Vec<String> = before
        .iter()
        .zip(after)
        .map(|((name, b), (_, a))| match (b, a) {
            (Some(b), Some(a)) => {
                let us = a.saturating_sub(*b).as_micros() as u64 / bought.max(1);
                total += us;
                format!("{name} {us}")
            }
            _ => format!("{name} ?"),
        })
        .collect();
    format!("{} (total {total})", per.join(", "))
}

/// CPU time used so far by the bus, every service and this bench, in that order.
fn cpu_of_each(stack: &mut Stack) -> Vec<(String, Option<Duration>)> {
    let mut each = vec![(
        "bus".to_string(),
        cpu_time(&stack.bus.proc.pid().to_string()),
    )];
    for name in ALL {
        let pid = stack.service(name).proc.pid().to_string();
        each.push((name.to_string(), cpu_time(&pid)));
    }
    each.push(("bench".to_string(), cpu_time("self")));
    each
}

/// Every `*.db` under `dir` with the bytes it and its `-wal` hold.
fn collect_dbs(dir: &std::path::Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            collect_dbs(&path, out);
        } else if path.extension().is_some_and(|x| x == "db") {
            let wal = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, len + wal));
        }
    }
}
