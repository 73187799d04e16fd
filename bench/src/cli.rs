//! `tix-cli-bench`: wall time of `tix tickets list --json` against a running stack, from
//! process start to exit, over repeated runs.
//!
//! ```text
//! cargo build --release --workspace --bins && target/release/tix-cli-bench --runs 20
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use tix_testkit::{Stack, TEST_JWT_SECRET, bin};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Tickets on sale (the list shows up to 50).
    #[arg(long, default_value_t = 50)]
    tickets: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stack = Stack::start_with_env(&["auth", "tickets", "gateway"], &[("TIX_LOG", "warn")]);
    let api = stack.url("gateway");
    let keys = tix_common::auth::JwtKeys::new(TEST_JWT_SECRET, Duration::from_secs(3600))?;
    let token = keys.sign("seller", "seller@bench.io")?.0;
    for i in 0..args.tickets {
        seed::post_ticket(&format!("{}/api/tickets", stack.url("tickets")), &token, i)?;
    }
    let config = tempfile::tempdir()?;
    let tix = bin("tix");
    let run = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let out = Command::new(&tix)
            .args(["tickets", "list", "--json"])
            .env("TIX_API", &api)
            .env("TIX_CONFIG_DIR", config.path())
            .output()?;
        let took = started.elapsed();
        anyhow::ensure!(
            out.status.success(),
            "tix failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        anyhow::ensure!(
            list.as_array().map(Vec::len) == Some(args.tickets.min(50)),
            "unexpected list"
        );
        Ok(took)
    };
    run()?; // warm the page cache and the connection path
    let mut times: Vec<Duration> = (0..args.runs).map(|_| run()).collect::<Result<_, _>>()?;
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "tix tickets list --json ({} tickets listed): median {:.1} ms, min {:.1} ms, max {:.1} ms over {} runs",
        args.tickets.min(50),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
    Ok(())
}

/// Seeding over plain HTTP/1.1 from this synchronous program: a few POSTs need no client
/// library or runtime.
mod seed {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn post_ticket(url: &str, token: &str, i: usize) -> anyhow::Result<()> {
        {
            let rest = url.trim_start_matches("http://");
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let body = format!("{{\"title\":\"Bench show {i}\",\"price\":{}}}", 10 + i % 40);
            let mut s = TcpStream::connect(host)?;
            write!(
                s,
                "POST /{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            let mut resp = String::new();
            s.read_to_string(&mut resp)?;
            anyhow::ensure!(resp.starts_with("HTTP/1.1 201"), "seeding failed: {resp}");
            Ok(())
        }
    }
}
