//! `tix-http-bench`: requests/s and latency of the tix HTTP services at N connections,
//! directly and through the gateway, next to a bare axum handler doing the same SQLite work
//! (the ceiling), all measured in one run on the same machine.
//!
//! ```text
//! cargo build --release --workspace --bins && target/release/tix-http-bench
//! target/release/tix-http-bench --duration 5s --connections 64 --only get
//! ```
//! The services run as separate release processes (durability full, logs at warn); the
//! load comes from this process over loopback, one HTTP/1.1 keep-alive connection per
//! simulated client.

mod http1;
mod procfs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Value, json};
use tix_testkit::{Proc, Stack, TEST_JWT_SECRET};

// The ceiling (this binary, `ceiling-server`) allocates as the services do: the best known
// way includes the allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "tix-http-bench",
    about = "Load the tix HTTP services and compare with a bare axum + SQLite ceiling"
)]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// How long each measurement runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Only `get` or only `post`.
    #[arg(long)]
    only: Option<String>,
    /// SQLite durability of the services and the ceiling alike: `full` (fsync every commit)
    /// or `normal`.
    #[arg(long, default_value = "full")]
    durability: String,
    /// The services' log filter (`TIX_LOG`): `warn` keeps the access log out of the way;
    /// `info` is what a deployment runs with.
    #[arg(long, default_value = "warn")]
    log: String,
    /// The services' log format (`TIX_LOG_FORMAT`).
    #[arg(long, value_enum, default_value = "text")]
    log_format: tix_common::config::LogFormat,
    /// nginx, run in front of tickets as the reference proxy (one worker, keep-alive
    /// upstream, no access log); looked up on `PATH`, skipped with a note when absent.
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
    /// Threads of the ceiling's runtime.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    ceiling_workers: u16,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Internal: serve the bare ceiling handlers (started by the benchmark itself).
    CeilingServer {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "full")]
        durability: String,
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let workers = match args.mode {
        Some(Mode::CeilingServer { workers, .. }) => workers,
        None => 2,
    };
    let rt = tix_common::service::runtime(workers)?;
    match args.mode {
        Some(Mode::CeilingServer {
            ref data_dir,
            ref durability,
            ..
        }) => rt.block_on(ceiling_server(data_dir.clone(), durability.clone())),
        None => rt.block_on(run(args)),
    }
}

// ---- the ceiling: the same SQL as the tickets service, with nothing around it ----------
//
// The best known way to do the same work, not a straw man: reads on connections of their
// own (WAL lets them run beside the writer), and every write on one dedicated writer
// thread that takes all the writes waiting and commits them in one transaction (group
// commit: one fsync for many requests), answering each when its commit is durable.

type Write = (String, String, i64, tokio::sync::oneshot::Sender<bool>);

#[derive(Clone)]
struct Ceiling {
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    writes: std::sync::mpsc::Sender<Write>,
}

fn ceiling_conn(path: &std::path::Path, durability: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", durability.to_uppercase())?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

async fn ceiling_server(data_dir: PathBuf, durability: String) -> anyhow::Result<()> {
    let path = data_dir.join("ceiling.db");
    let writer = ceiling_conn(&path, &durability)?;
    writer.execute_batch(
        // The tickets service's table as it stands after its migrations: the same columns,
        // the same CHECK, and the index its sellers' listings need, which every insert
        // maintains (services/tickets/src/store.rs).
        "CREATE TABLE IF NOT EXISTS tickets (id TEXT PRIMARY KEY, title TEXT NOT NULL,
            price_cents INTEGER NOT NULL CHECK (price_cents > 0), user_id TEXT NOT NULL,
            version INTEGER NOT NULL, order_id TEXT, created_at INTEGER NOT NULL,
            seller_name TEXT NOT NULL DEFAULT '');
         CREATE INDEX IF NOT EXISTS tickets_user ON tickets (user_id, id);
         CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
            subject TEXT NOT NULL, payload BLOB NOT NULL, created_at INTEGER NOT NULL);",
    )?;
    let readers = (0..4)
        .map(|_| ceiling_conn(&path, &durability).map(Mutex::new))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (writes, queue) = std::sync::mpsc::channel::<Write>();
    std::thread::spawn(move || group_commit(writer, &queue));
    let state = Ceiling {
        readers: Arc::new(readers),
        next_reader: Arc::default(),
        writes,
    };
    let app = axum::Router::new()
        .route("/api/tickets", axum::routing::post(ceiling_create))
        .route("/api/tickets/{id}", axum::routing::get(ceiling_show))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("ceiling listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The writer thread: waits for a write, takes every other one waiting, commits them all
/// in one transaction, then answers each.
fn group_commit(mut conn: Connection, queue: &std::sync::mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let ok = conn
            .transaction()
            .and_then(|tx| {
                for (id, title, cents, _) in &batch {
                    let event = json!({"id": uuid::Uuid::now_v7().to_string(), "subject": "ticket:created",
                        "data": {"id": id, "title": title, "price": *cents as f64 / 100.0, "userId": "u", "version": 0, "orderId": null}});
                    tx.prepare_cached("INSERT INTO tickets VALUES (?1, ?2, ?3, 'u', 0, NULL, unixepoch(), 'seller')")?
                        .execute((id, title, cents))?;
                    tx.prepare_cached("INSERT INTO outbox (id, subject, payload, created_at) VALUES (?1, 'ticket:created', ?2, unixepoch())")?
                        .execute((event["id"].as_str(), event.to_string()))?;
                }
                tx.commit()
            })
            .is_ok();
        for (.., done) in batch {
            let _ = done.send(ok);
        }
    }
}

async fn ceiling_show(
    State(db): State<Ceiling>,
    Path(id): Path<String>,
) -> axum::response::Response {
    let i = db
        .next_reader
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % db.readers.len();
    let row = {
        let c = db.readers[i].lock().expect("lock");
        c.prepare_cached("SELECT id, title, price_cents, user_id, version, order_id FROM tickets WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([&id], |r| {
                    Ok(json!({"id": r.get::<_, String>(0)?, "title": r.get::<_, String>(1)?,
                        "price": r.get::<_, i64>(2)? as f64 / 100.0, "userId": r.get::<_, String>(3)?,
                        "version": r.get::<_, i64>(4)?, "orderId": r.get::<_, Option<String>>(5)?}))
                })
                .optional()
            })
    };
    match row {
        Ok(Some(v)) => axum::Json(v).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ceiling_create(
    State(db): State<Ceiling>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    let (Some(title), Some(price)) = (body["title"].as_str(), body["price"].as_f64()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = uuid::Uuid::now_v7().to_string();
    let cents = (price * 100.0).round() as i64;
    let (done, committed) = tokio::sync::oneshot::channel();
    if db
        .writes
        .send((id.clone(), title.to_string(), cents, done))
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    match committed.await {
        Ok(true) => (
            StatusCode::CREATED,
            axum::Json(json!({"id": id, "title": title, "price": price, "userId": "u", "version": 0, "orderId": null})),
        )
            .into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

// ---- the load generator -------------------------------------------------------------------

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    post: bool,
    token: String,
    ids: Arc<Vec<String>>,
}

struct Outcome {
    rps: f64,
    hist: Histogram<u64>,
    errors: u64,
}

async fn load(t: Target, connections: usize, duration: Duration) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn_no in 0..connections {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut send = http1::connect(t.addr).await?;
            let mut hist = Histogram::<u64>::new(3)?;
            let mut errors = 0u64;
            let mut i = conn_no;
            let body = Bytes::from_static(br#"{"title":"Bench night","price":12.5}"#);
            while Instant::now() < deadline {
                let req = if t.post {
                    Request::post("/api/tickets")
                        .header("host", "bench")
                        .header("content-type", "application/json")
                        .header("authorization", format!("Bearer {}", t.token))
                        .body(Full::new(body.clone()))?
                } else {
                    let id = &t.ids[i % t.ids.len()];
                    Request::get(format!("/api/tickets/{id}"))
                        .header("host", "bench")
                        .body(Full::new(Bytes::new()))?
                };
                i += connections;
                send.ready().await?;
                let sent = Instant::now();
                let resp = send.send_request(req).await?;
                let ok = resp.status().is_success();
                resp.into_body().collect().await?;
                hist.record(sent.elapsed().as_micros() as u64)?;
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((hist, errors))
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    for task in tasks {
        let (h, e) = task.await??;
        hist.add(h)?;
        errors += e;
    }
    let rps = hist.len() as f64 / started.elapsed().as_secs_f64();
    Ok(Outcome { rps, hist, errors })
}

/// nginx proxying to `upstream` the way the gateway does: one process, keep-alive
/// connections to the upstream, the client's address in X-Forwarded-For, a request id sent
/// on and given back (`$request_id`, as the gateway's `X-Request-Id`), no access log.
struct Nginx {
    proc: Proc,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn start_nginx(bin: &std::path::Path, upstream: SocketAddr) -> anyhow::Result<Option<Nginx>> {
    let found = if bin.components().count() > 1 {
        bin.is_file().then(|| bin.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .chain([PathBuf::from("/usr/sbin")])
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| d.join(bin))
                .find(|p| p.is_file())
        })
    };
    let Some(bin) = found else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    let port = tix_testkit::free_port();
    // `master_process off`: one process doing all the work, as the gateway is one process,
    // and its CPU is read from one pid.
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         keepalive_requests 100000000;\n\
         upstream tickets {{ server {upstream}; keepalive 128; keepalive_requests 100000000; }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
         proxy_pass http://tickets;\n      proxy_http_version 1.1;\n\
         proxy_set_header Connection \"\";\n\
         proxy_set_header X-Forwarded-For $remote_addr;\n\
         proxy_set_header X-Forwarded-Proto http;\n\
         proxy_set_header X-Request-Id $request_id;\n\
         add_header X-Request-Id $request_id always;\n    }}\n  }}\n}}\n"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let conf_arg = conf_path.to_string_lossy().into_owned();
    let prefix = format!("{d}/");
    let err = format!("{d}/error.log");
    let mut proc = Proc::spawn(
        "nginx",
        &bin,
        &["-p", &prefix, "-e", &err, "-c", &conf_arg],
        dir.path(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        let error_log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        anyhow::ensure!(
            !proc.has_exited(),
            "nginx exited: {} {error_log}",
            proc.log_tail()
        );
        anyhow::ensure!(
            Instant::now() < deadline,
            "nginx did not start listening: {} {error_log}",
            proc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(Nginx {
        proc,
        addr,
        _dir: dir,
    }))
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("an http://ip:port URL")
}

async fn seed(addr: SocketAddr, token: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut send = http1::connect(addr).await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"title": format!("Seeded show {i}"), "price": 10 + i % 90}).to_string();
        let req = Request::post("/api/tickets")
            .header("host", "bench")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body)))?;
        send.ready().await?;
        let resp = send.send_request(req).await?;
        anyhow::ensure!(
            resp.status() == StatusCode::CREATED,
            "seeding got {}",
            resp.status()
        );
        let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    Ok(ids)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut stack = Stack::start_with_env(
        &["auth", "tickets", "gateway"],
        &[
            ("TIX_DB_DURABILITY", args.durability.as_str()),
            ("TIX_LOG", args.log.as_str()),
            ("TIX_LOG_FORMAT", args.log_format.as_str()),
        ],
    );
    let tmp = tempfile::tempdir()?;
    let me = std::env::current_exe()?;
    let mut ceiling = Proc::spawn(
        "ceiling",
        &me,
        &[
            "ceiling-server",
            "--data-dir",
            &tmp.path().to_string_lossy(),
            "--durability",
            &args.durability,
            "--workers",
            &args.ceiling_workers.to_string(),
        ],
        tmp.path(),
    );
    let line = ceiling.wait_for_line("listening on", Duration::from_secs(10));
    let ceiling_url = line.rsplit(' ').next().unwrap_or_default().to_string();

    let keys = tix_common::auth::JwtKeys::new(TEST_JWT_SECRET, Duration::from_secs(3600))?;
    let token = keys.sign("bench-user", "bench@x.io")?.0;
    let tickets = addr_of(&stack.url("tickets"));
    let gateway = addr_of(&stack.url("gateway"));
    let ceiling_addr = addr_of(&ceiling_url);
    let nginx = match start_nginx(&args.nginx, tickets) {
        Ok(Some(n)) => Some(n),
        Ok(None) => {
            println!(
                "(nginx not found as {}: the reference proxy row is skipped; apt-get install nginx-light)",
                args.nginx.display()
            );
            None
        }
        Err(e) => {
            println!("(nginx did not start, so its row is skipped: {e:#})");
            None
        }
    };
    let ids = Arc::new(seed(tickets, &token, 1000).await?);
    let ceiling_ids = Arc::new(seed(ceiling_addr, &token, 1000).await?);

    println!(
        "tix-http-bench: {} connections, {:?} each, durability={}, logs {} as {}",
        args.connections, args.duration, args.durability, args.log, args.log_format
    );
    println!(
        "{:<36} {:>10} {:>9} {:>9} {:>7} {:>11} {:>9}",
        "", "req/s", "p50 µs", "p99 µs", "errors", "CPU µs/req", "proxy's"
    );
    for post in [false, true] {
        let kind = if post { "post" } else { "get" };
        if args.only.as_deref().is_some_and(|o| o != kind) {
            continue;
        }
        let label = if post {
            "POST /api/tickets"
        } else {
            "GET /api/tickets/:id"
        };
        let ceiling_pid = ceiling.pid();
        let tickets_pid = stack.service("tickets").proc.pid();
        let gateway_pid = stack.service("gateway").proc.pid();
        let mut targets = vec![
            (
                "ceiling (axum + SQLite group commit)",
                ceiling_addr,
                ceiling_ids.clone(),
                vec![ceiling_pid],
            ),
            ("tickets, direct", tickets, ids.clone(), vec![tickets_pid]),
            (
                "tickets, through the gateway",
                gateway,
                ids.clone(),
                vec![gateway_pid, tickets_pid],
            ),
        ];
        if let Some(n) = &nginx {
            targets.push((
                "tickets, through nginx",
                n.addr,
                ids.clone(),
                vec![n.proc.pid(), tickets_pid],
            ));
        }
        for (name, addr, ids, pids) in targets {
            let t = Target {
                addr,
                post,
                token: token.clone(),
                ids,
            };
            let cpu = |pid: u32| procfs::cpu_time(&pid.to_string()).unwrap_or_default();
            let cpu_before: Vec<Duration> = pids.iter().map(|p| cpu(*p)).collect();
            let o = load(t, args.connections, args.duration).await?;
            // CPU the serving processes spent per request: unlike req/s, it does not move
            // with what else shares the cores (the load generator included).
            let per_request = |i: usize| {
                cpu(pids[i]).saturating_sub(cpu_before[i]).as_secs_f64() * 1e6
                    / o.hist.len().max(1) as f64
            };
            let cpu_us: Vec<f64> = (0..pids.len()).map(per_request).collect();
            // A proxy's own share is its first process's.
            let proxy = if pids.len() > 1 {
                format!("{:.1}", cpu_us[0])
            } else {
                "-".to_string()
            };
            println!(
                "{:<36} {:>10.0} {:>9} {:>9} {:>7} {:>11.1} {:>9}",
                format!("{label} — {name}"),
                o.rps,
                o.hist.value_at_quantile(0.5),
                o.hist.value_at_quantile(0.99),
                o.errors,
                cpu_us.iter().sum::<f64>(),
                proxy
            );
        }
    }
    Ok(())
}
