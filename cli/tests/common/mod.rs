//! What the `tix` integration tests share: the binary with its own config dir, a run's
//! outcome, signing up through the CLI, and a stand-in gateway for answers the real stack
//! cannot be made to give on demand.
#![allow(dead_code)] // each test file uses its own part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

/// `tix` with its own config dir and `api` as the gateway.
pub fn tix(api: &str, config: &Path) -> Command {
    let mut c = Command::cargo_bin("tix").expect("the tix binary");
    c.env("TIX_API", api)
        .env("TIX_CONFIG_DIR", config)
        .env_remove("TIX_PROFILE")
        .env_remove("TIX_TIMEOUT")
        .env_remove("COLUMNS")
        .timeout(Duration::from_secs(60));
    c
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut c: Command, args: &[&str], stdin: Option<&str>) -> Run {
    c.args(args);
    if let Some(s) = stdin {
        c.write_stdin(s.to_string());
    }
    let out = c.output().expect("tix runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn json(r: &Run) -> Value {
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    // Exactly one JSON document on stdout, nothing else.
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {:?}", r.stdout))
}

pub fn signup(api: &str, config: &Path, profile: &str, email: &str) {
    let r = run(
        tix(api, config),
        &[
            "--profile",
            profile,
            "signup",
            "--email",
            email,
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A session file for the default profile, as if `tix signin` had been run against `api`.
/// `tix --profile PROFILE --json tickets create …`: the ticket it put on sale.
#[allow(dead_code)]
pub fn sell(api: &str, config: &Path, profile: &str, title: &str, price: &str) -> Value {
    let r = run(
        tix(api, config),
        &[
            "--profile",
            profile,
            "--json",
            "tickets",
            "create",
            "--title",
            title,
            "--price",
            price,
        ],
        None,
    );
    assert_eq!(r.code, 0, "selling {title}: {}", r.stderr);
    json(&r)
}

pub fn signed_in(config: &Path, api: &str) {
    let session = serde_json::json!({"api": api, "email": "ann@example.com",
        "userId": "u1", "token": "not-a-jwt"});
    std::fs::write(config.join("session-default.json"), session.to_string()).unwrap();
}

/// One request as the stand-in gateway saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// A stand-in for the gateway: answers each request with `answer(request)`, a status and
/// a JSON body, one connection at a time, until the test ends. Returns its URL and every
/// request it saw.
pub fn fake_api(
    answer: impl Fn(&Request) -> (u16, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut parts = request.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = Request {
                method,
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, body) = answer(&request);
            log.lock().unwrap().push(request);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

pub const NOT_FOUND: (u16, &str) = (404, r#"{"errors":[{"message":"Not found"}]}"#);

/// A ticket as the API shows it.
pub fn ticket(id: &str, title: &str, cents: i64, seller: &str) -> tix_api::Ticket {
    tix_api::Ticket {
        id: id.into(),
        order_id: None,
        price: tix_api::Money::from_cents(cents),
        seller_name: seller.into(),
        title: title.into(),
        user_id: format!("user-{seller}"),
        version: 0,
    }
}

/// Order `o1` for ticket `t1` ("Jazz", $10.00) in `status`, as JSON.
pub fn order_json(status: tix_api::OrderStatus) -> String {
    use tix_api::{Money, Order, OrderTicket, UnixMillis};
    serde_json::to_string(&Order {
        expires_at: UnixMillis::now().after(Duration::from_secs(600)),
        id: "o1".into(),
        paid_at: None,
        status,
        ticket: OrderTicket {
            id: "t1".into(),
            price: Money::from_cents(1000),
            title: "Jazz".into(),
            version: 0,
        },
        user_id: "u1".into(),
        version: 0,
    })
    .unwrap()
}

/// Payment `p1` of $10.00 for order `o1`, succeeded, as JSON.
pub fn payment_json() -> String {
    use tix_api::{Money, Payment, PaymentStatus, UnixMillis};
    serde_json::to_string(&Payment {
        amount: Money::from_cents(1000),
        created_at: UnixMillis::now(),
        id: "p1".into(),
        order_id: "o1".into(),
        reason: None,
        refunded_at: None,
        status: PaymentStatus::Succeeded,
    })
    .unwrap()
}

/// A stand-in gateway where paying for order `o1` succeeds and the order then shows
/// `status`; every other request is a 404.
pub fn paying_api(status: tix_api::OrderStatus) -> (String, Arc<Mutex<Vec<Request>>>) {
    let (order, payment) = (order_json(status), payment_json());
    fake_api(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/payments") => (201, payment.clone()),
        ("GET", "/api/orders/o1") => (200, order.clone()),
        _ => (NOT_FOUND.0, NOT_FOUND.1.into()),
    })
}

/// The screen's text so far, escape sequences removed (each replaced by a space).
pub fn screen_text(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte; other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// `tix` in a pseudo-terminal (stdin, stdout and stderr all the terminal), with the
/// session dir and API given; what it writes is collected in the returned buffer.
pub struct Pty {
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    pub writer: Box<dyn Write + Send>,
    pub screen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    pub fn spawn(api: &str, config: &Path, args: &[&str]) -> Pty {
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 100,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(assert_cmd::cargo::cargo_bin("tix"));
        cmd.args(args);
        cmd.env("TIX_API", api);
        cmd.env("TIX_CONFIG_DIR", config);
        cmd.env_remove("TIX_PROFILE");
        cmd.env_remove("TIX_TIMEOUT");
        cmd.env_remove("COLUMNS");
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let sink = screen.clone();
        std::thread::spawn(move || {
            // The master must outlive the child: dropping it hangs the terminal up.
            let _master = pair.master;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            writer,
            screen,
        }
    }

    pub fn text(&self) -> String {
        screen_text(&self.screen.lock().unwrap())
    }

    pub fn wait_for(&self, needle: &str, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self.text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{needle:?} never appeared; the screen:\n{}", self.text());
    }

    /// Waits for the process to end; its exit code.
    pub fn exit_code(&mut self, within: Duration) -> u32 {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take in the last bytes.
                std::thread::sleep(Duration::from_millis(200));
                return status.exit_code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tix never ended; the screen:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
