//! Where the operations screen's numbers come from, each on a task of its own so a slow
//! source never holds up another: the gateway's `/readyz` (every process behind it), the
//! broker's metrics port (rates, groups, clients), and an ephemeral consumer of every
//! subject on the bus (the latest events), which needs a bus key.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::model::{Msg, TailState};
use super::prom;

/// Where to look.
#[derive(Debug, Clone)]
pub struct Config {
    /// The gateway's base URL.
    pub gateway: String,
    /// The broker's metrics base URL (`--metrics-addr`).
    pub bus_metrics: String,
    /// The bus endpoint, the client to authenticate as, and its key file (else
    /// `TIX_BUS_KEY`, else `$TIX_DATA_DIR/keys/<client>.key`).
    pub bus: String,
    pub bus_client: String,
    pub bus_key_file: Option<PathBuf>,
    /// How often readiness and metrics are asked.
    pub every: Duration,
}

/// The running sources; dropping it stops them.
#[derive(Debug)]
pub struct Feed {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub fn start(cfg: &Config, tx: UnboundedSender<Msg>) -> Feed {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("a client with these settings builds");
    let tasks = vec![
        tokio::spawn(readiness(http, cfg.gateway.clone(), cfg.every, tx.clone())),
        tokio::spawn(metrics(
            // A connection per scrape: the broker's metrics port closes connections after
            // a bounded time, and a pooled one it has closed would fail the next scrape.
            reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .connect_timeout(Duration::from_secs(1))
                .pool_max_idle_per_host(0)
                .build()
                .expect("a client with these settings builds"),
            cfg.bus_metrics.clone(),
            cfg.every,
            tx.clone(),
        )),
        tokio::spawn(tail(cfg.clone(), tx)),
    ];
    Feed { tasks }
}

fn reason(url: &str, e: &reqwest::Error) -> String {
    let why = if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_decode() {
        "unexpected answer".to_string()
    } else {
        // The innermost cause says most (e.g. "connection closed before message completed").
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        cause.to_string()
    };
    format!("{url}: {why}")
}

async fn readiness(http: reqwest::Client, base: String, every: Duration, tx: UnboundedSender<Msg>) {
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A 503 is an answer: the body says which process is not ready.
        let r = match http.get(&url).send().await {
            Ok(resp) => resp
                .json::<tix_api::health::Health>()
                .await
                .map_err(|e| reason(&url, &e)),
            Err(e) => Err(reason(&url, &e)),
        };
        if tx.send(Msg::Readiness(r)).is_err() {
            return;
        }
    }
}

async fn metrics(http: reqwest::Client, base: String, every: Duration, tx: UnboundedSender<Msg>) {
    let url = format!("{}/metrics", base.trim_end_matches('/'));
    let mut tick = tokio::time::interval(every);
    // A slow scrape delays the next one rather than firing a burst of quick ones, whose
    // tiny intervals would turn one event into a huge rate.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The counters' baseline is the last scrape that was read: a rate after a failed one
    // spans the whole gap.
    let mut last_read = Instant::now();
    loop {
        tick.tick().await;
        let r = match http.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => resp
                .text()
                .await
                .map(|t| prom::parse(&t))
                .map_err(|e| reason(&url, &e)),
            Ok(resp) => Err(format!("{url}: {}", resp.status())),
            Err(e) => Err(reason(&url, &e)),
        };
        let now = Instant::now();
        let since = now - last_read;
        if r.is_ok() {
            last_read = now;
        }
        if tx.send(Msg::Metrics(r, since)).is_err() {
            return;
        }
    }
}

async fn tail(cfg: Config, tx: UnboundedSender<Msg>) {
    let fallback = tix_bus_client::key::local_key_file(&cfg.bus_client);
    let off = |why: String| {
        let _ = tx.send(Msg::Tail(TailState::Off(why)));
    };
    let key = match tix_bus_client::key::resolve(cfg.bus_key_file.as_deref(), Some(&fallback)) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return off(format!(
                "No key for bus client {:?}: set TIX_BUS_KEY or TIX_BUS_KEY_FILE, or run from the directory holding {} (scripts/stack writes it).",
                cfg.bus_client,
                fallback.display()
            ));
        }
        Err(e) => return off(format!("Bus key: {e}")),
    };
    let mut opts = tix_bus_client::ClientOptions::new(&cfg.bus, &cfg.bus_client);
    opts.key = Some(key);
    let bus = tix_bus_client::Client::connect(opts);
    // The client reconnects by itself; the screen says "connecting" until it is in.
    if let Err(e) = bus.wait_connected(Duration::from_secs(3600)).await {
        return off(format!(
            "The bus at {} refused client {:?}: {e}",
            cfg.bus, cfg.bus_client
        ));
    }
    // The `cli` client may consume groups named `tix-tail-*` (bus-policy.toml).
    let group = format!(
        "tix-tail-ops-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut opts = tix_bus_client::SubscribeOptions::new(group, &["*"]);
    // Only new events, and nothing left behind on the broker.
    opts.ephemeral = true;
    let mut sub = match bus.subscribe(opts).await {
        Ok(s) => s,
        Err(e) => return off(format!("The bus refused the subscription: {e}")),
    };
    let _ = tx.send(Msg::Tail(TailState::Following));
    while let Some(d) = sub.next().await {
        let _ = d.ack_nowait();
        let envelope = serde_json::from_slice(&d.payload).unwrap_or(serde_json::Value::Null);
        let msg = Msg::Event {
            subject: d.subject.clone(),
            envelope,
        };
        if tx.send(msg).is_err() {
            break;
        }
    }
    bus.close().await;
}
