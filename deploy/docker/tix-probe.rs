//! `tix-probe`: the container image's HEALTHCHECK. The runtime image has no shell and no
//! curl, so this is the whole check: one `GET /healthz` over plain HTTP/1.0 to the process
//! running in the same container; exit 0 on a 200 answer within 2 s, 1 otherwise.
//!
//! Built by the Dockerfile with `rustc` alone (the standard library, no crates), so it is
//! not a workspace member and costs the image ~400 KiB.
//!
//! Which port: the first argument (`tix-probe 4002`, or a full `http://host:port/path`),
//! else `TIX_PROBE_URL`, else the process that is PID 1 in the container (the image's
//! command) and the variable that moves its port — the same defaults as the binaries:
//!
//! | PID 1 | port |
//! |---|---|
//! | tix-auth, tix-tickets, tix-orders, tix-payments, tix-expiration | `TIX_<NAME>_PORT`, else 4001…4005 |
//! | tix-gateway | `TIX_GATEWAY_PORT`, else 8080 |
//! | tix-bus | the port of `TIX_BUS_METRICS_ADDR` (its HTTP `/healthz`); none: not checkable |
//!
//! `/healthz` is liveness: 200 while the process serves, whatever its bus link
//! (docs/operations.md, "Health"). Use `/readyz` explicitly for readiness.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    match target().and_then(|url| check(&url).map(|()| url)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("tix-probe: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The URL to ask: `http://host:port/path`.
fn target() -> Result<String, String> {
    let given = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TIX_PROBE_URL").ok().filter(|v| !v.is_empty()));
    if let Some(given) = given {
        if given.chars().all(|c| c.is_ascii_digit()) {
            return Ok(format!("http://127.0.0.1:{given}/healthz"));
        }
        return Ok(given);
    }
    let cmdline = std::fs::read("/proc/1/cmdline").map_err(|e| format!("reading /proc/1/cmdline: {e}"))?;
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let program = String::from_utf8_lossy(argv0);
    let program = program.rsplit('/').next().unwrap_or_default();
    let port = |var: &str, default: u16| -> String {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let port = match program {
        "tix-auth" => port("TIX_AUTH_PORT", 4001),
        "tix-tickets" => port("TIX_TICKETS_PORT", 4002),
        "tix-orders" => port("TIX_ORDERS_PORT", 4003),
        "tix-payments" => port("TIX_PAYMENTS_PORT", 4004),
        "tix-expiration" => port("TIX_EXPIRATION_PORT", 4005),
        "tix-gateway" => port("TIX_GATEWAY_PORT", 8080),
        "tix-bus" => {
            let addr = std::env::var("TIX_BUS_METRICS_ADDR").unwrap_or_default();
            match addr.rsplit_once(':') {
                Some((_, p)) if !p.is_empty() => p.to_string(),
                _ => return Err("tix-bus runs without TIX_BUS_METRICS_ADDR: it has no HTTP /healthz to probe".into()),
            }
        }
        other => return Err(format!("PID 1 is {other:?}, not a tix process: give the port or URL as the argument")),
    };
    Ok(format!("http://127.0.0.1:{port}/healthz"))
}

/// GET the URL; Ok when it answers 200.
fn check(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).ok();
    stream.set_write_timeout(Some(TIMEOUT)).ok();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    // The status line is all we need ("HTTP/1.1 200 OK"); 64 bytes hold it.
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("{url}: {e}")),
        }
        if head[..got].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("{url} answered {:?}", line.lines().next().unwrap_or("nothing")))
    }
}
