//! The real `tix-tui` binary in a pseudo-terminal against the real stack: sign in through
//! the form, open the ticket, buy it with tok_visa, and see the payment complete.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use tix_client::ApiClient;
use tix_testkit::{ALL, Stack, bin};

/// The screen's text so far, escape sequences removed.
fn text(raw: &[u8]) -> String {
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

fn wait_for(screen: &Arc<Mutex<Vec<u8>>>, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if text(&screen.lock().unwrap()).contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = text(&screen.lock().unwrap());
    let tail: String = seen
        .chars()
        .rev()
        .take(1500)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    panic!("{needle:?} never appeared; the end of the screen output:\n{tail}");
}

#[test]
fn a_buyer_signs_in_and_buys_a_ticket_in_the_terminal() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = ApiClient::new(&api, None);
        let seller = c.signup("seller@pty.test", "password-123").await.unwrap();
        c.signup("buyer@pty.test", "password-123").await.unwrap();
        ApiClient::new(&api, Some(seller.token))
            .create_ticket("Pty Gala", tix_api::Money::from_cents(4200))
            .await
            .unwrap();
    });

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().to_path_buf();
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 30,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(bin("tix-tui"));
    cmd.env("TIX_API", &api);
    cmd.env("TIX_CONFIG_DIR", &config);
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut keys = pair.master.take_writer().unwrap();
    let screen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut press = |s: &str| {
        keys.write_all(s.as_bytes()).unwrap();
        keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };

    wait_for(&screen, "Sign in", Duration::from_secs(10));
    press("buyer@pty.test");
    press("\t");
    press("password-123");
    press("\t"); // → [ Sign in ]
    press("\r");
    wait_for(&screen, "Pty Gala", Duration::from_secs(10));
    press("\r"); // open the ticket
    wait_for(&screen, "b / Enter: buy", Duration::from_secs(10));
    press("b");
    wait_for(&screen, "Card or token", Duration::from_secs(10));
    press("tok_visa");
    press("\r");
    wait_for(&screen, "Payment complete", Duration::from_secs(15));
    press("q");

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tix-tui did not quit on q");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    // Signing in with the TUI saved the session the CLI uses too.
    assert!(config.join("session-default.json").exists());
}
