//! The real `tix-tui` binary in a pseudo-terminal against the real stack: sign in through
//! the form, open a ticket, buy it with tok_visa, and see the payment complete — once with
//! a single ticket, once scrolling past the first page of 60 to buy from the second.
//!
//! What the terminal shows is rebuilt from the output by a small screen model (cursor
//! moves, text, clears), since ratatui redraws only the cells that change and a word on
//! screen need not appear whole in the byte stream.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};
use tix_client::{ApiClient, TicketQuery};
use tix_testkit::{ALL, Stack, bin};

const COLS: usize = 100;
const ROWS: usize = 30;

/// The screen as a terminal would show it.
struct Screen {
    cells: Vec<Vec<char>>,
    x: usize,
    y: usize,
    /// Bytes of a UTF-8 character or an escape sequence cut by a read.
    pending: Vec<u8>,
}

impl Screen {
    fn new() -> Screen {
        Screen {
            cells: vec![vec![' '; COLS]; ROWS],
            x: 0,
            y: 0,
            pending: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let data = std::mem::take(&mut self.pending);
        let valid = match std::str::from_utf8(&data) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = std::str::from_utf8(&data[..valid]).unwrap();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\u{1b}' => {
                    let Some(&(_, next)) = chars.peek() else {
                        self.pending = data[at..].to_vec();
                        return;
                    };
                    chars.next();
                    if next != '[' {
                        continue;
                    }
                    let mut params = String::new();
                    let mut done = false;
                    for (_, d) in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            self.csi(&params, d);
                            done = true;
                            break;
                        }
                        params.push(d);
                    }
                    if !done {
                        self.pending = data[at..].to_vec();
                        return;
                    }
                }
                '\r' => self.x = 0,
                '\n' => self.y = (self.y + 1).min(ROWS - 1),
                c if c.is_control() => {}
                c => {
                    if self.x < COLS && self.y < ROWS {
                        self.cells[self.y][self.x] = c;
                    }
                    self.x += 1;
                }
            }
        }
        self.pending.extend_from_slice(&data[valid..]);
    }

    fn csi(&mut self, params: &str, action: char) {
        let n: Vec<usize> = params
            .split(';')
            .map(|p| p.trim_start_matches('?').parse().unwrap_or(0))
            .collect();
        match action {
            'H' | 'f' => {
                self.y = n.first().copied().unwrap_or(1).max(1) - 1;
                self.x = n.get(1).copied().unwrap_or(1).max(1) - 1;
            }
            'J' if n.first() == Some(&2) => self.cells = vec![vec![' '; COLS]; ROWS],
            'K' if self.y < ROWS => {
                for c in &mut self.cells[self.y][self.x.min(COLS)..] {
                    *c = ' ';
                }
            }
            _ => {}
        }
    }

    fn text(&self) -> String {
        self.cells
            .iter()
            .map(|r| r.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `tix-tui` in a pseudo-terminal: keys in, the screen out.
struct Tui {
    child: Box<dyn Child + Send + Sync>,
    keys: Box<dyn Write + Send>,
    screen: Arc<Mutex<Screen>>,
    /// Everything written to the terminal, escape sequences and all.
    raw: Arc<Mutex<Vec<u8>>>,
    _config: tempfile::TempDir,
}

impl Tui {
    fn start(api: &str) -> Tui {
        let config = tempfile::tempdir().unwrap();
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS as u16,
                cols: COLS as u16,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(bin("tix-tui"));
        cmd.env("TIX_API", api);
        cmd.env("TIX_CONFIG_DIR", config.path());
        cmd.env("TERM", "xterm-256color");
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let keys = pair.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(Screen::new()));
        let sink = screen.clone();
        let raw: Arc<Mutex<Vec<u8>>> = Arc::default();
        let log = raw.clone();
        std::thread::spawn(move || {
            let _master = pair.master;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().feed(&buf[..n]);
                log.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Tui {
            child,
            keys,
            screen,
            raw,
            _config: config,
        }
    }

    fn press(&mut self, s: &str) {
        self.keys.write_all(s.as_bytes()).unwrap();
        self.keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }

    fn wait_for(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.screen.lock().unwrap().text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen = self.screen.lock().unwrap().text();
        panic!("{needle:?} never appeared; the screen:\n{seen}");
    }

    fn sign_in(&mut self, email: &str) {
        self.wait_for("Sign in", Duration::from_secs(10));
        self.press(email);
        self.press("\t");
        self.press("password-123");
        self.press("\t"); // → Name (for signing up only)
        self.press("\t"); // → [ Sign in ]
        self.press("\r");
    }

    /// Quits with `q` and checks the exit status; returns what was written to the
    /// terminal and the config dir.
    fn quit(mut self) -> (Vec<u8>, tempfile::TempDir) {
        self.press("q");
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "tix-tui did not quit on q");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success());
        let raw = self.raw.lock().unwrap().clone();
        (raw, self._config)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_buyer_signs_in_and_buys_a_ticket_in_the_terminal() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    runtime().block_on(async {
        let c = ApiClient::new(&api, None);
        let seller = c
            .signup("seller@pty.test", "password-123", Some("Gala Co"))
            .await
            .unwrap();
        c.signup("buyer@pty.test", "password-123", None)
            .await
            .unwrap();
        ApiClient::new(&api, Some(seller.token))
            .create_ticket("Pty Gala", tix_api::Money::from_cents(4200))
            .await
            .unwrap();
    });

    let mut tui = Tui::start(&api);
    tui.sign_in("buyer@pty.test");
    tui.wait_for("Pty Gala", Duration::from_secs(10));
    tui.wait_for("Gala Co", Duration::from_secs(10)); // the seller, by name
    tui.press("\r"); // open the ticket
    tui.wait_for("[ Buy ]", Duration::from_secs(10));
    tui.press("b");
    tui.wait_for("Card or token", Duration::from_secs(10));
    // Pasted (bracketed paste), with the newline a copied line often carries.
    tui.press("\u{1b}[200~tok_visa\n\u{1b}[201~");
    tui.press("\r");
    tui.wait_for("Payment complete", Duration::from_secs(15));
    let (raw, config) = tui.quit();
    // Signing in with the TUI saved the session the CLI uses too.
    assert!(config.path().join("session-default.json").exists());
    // Mouse capture and bracketed paste were turned on, and off again on the way out.
    let raw = String::from_utf8_lossy(&raw);
    for (on, off) in [
        ("\u{1b}[?1000h", "\u{1b}[?1000l"),
        ("\u{1b}[?2004h", "\u{1b}[?2004l"),
    ] {
        let (on, off) = (raw.find(on), raw.rfind(off));
        assert!(on.is_some() && off.is_some() && on < off, "{on:?} {off:?}");
    }
}

#[test]
fn a_buyer_scrolls_past_the_first_page_and_buys_from_the_second() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    let rt = runtime();
    let first_page: Vec<String> = rt.block_on(async {
        let c = ApiClient::new(&api, None);
        let seller = c
            .signup("pager@pty.test", "password-123", None)
            .await
            .unwrap();
        c.signup("scroller@pty.test", "password-123", None)
            .await
            .unwrap();
        let seller = ApiClient::new(&api, Some(seller.token));
        for i in 0..60 {
            seller
                .create_ticket(
                    &format!("Paged {i:02}"),
                    tix_api::Money::from_cents(1000 + i),
                )
                .await
                .unwrap();
        }
        let q = TicketQuery {
            limit: Some(50),
            ..Default::default()
        };
        let page = c.tickets(&q).await.unwrap();
        assert_eq!(page.len(), 50);
        page.into_iter().map(|t| t.id).collect()
    });

    let mut tui = Tui::start(&api);
    tui.sign_in("scroller@pty.test");
    tui.wait_for("1 of 50+", Duration::from_secs(10));
    tui.press("\u{1b}[F"); // End: the last row loaded, which asks for the next page
    tui.wait_for("50 of 60", Duration::from_secs(10));
    tui.press("\u{1b}[6~"); // PageDown, into the second page
    tui.press("\u{1b}[F"); // End
    tui.wait_for("60 of 60", Duration::from_secs(10));
    // A click (SGR mouse report) on the footer's "? help" opens the help; another closes it.
    tui.press("\u{1b}[<0;2;30M\u{1b}[<0;2;30m");
    tui.wait_for("any key closes", Duration::from_secs(10));
    tui.press("\u{1b}[<0;2;30M\u{1b}[<0;2;30m");
    tui.press("\r");
    tui.wait_for("[ Buy ]", Duration::from_secs(10));
    tui.press("b");
    tui.wait_for("Card or token", Duration::from_secs(10));
    tui.press("tok_visa");
    tui.press("\r");
    tui.wait_for("Payment complete", Duration::from_secs(15));
    tui.quit();

    let bought = rt.block_on(async {
        let c = ApiClient::new(&api, None);
        let buyer = c.signin("scroller@pty.test", "password-123").await.unwrap();
        ApiClient::new(&api, Some(buyer.token))
            .orders()
            .await
            .unwrap()
    });
    assert_eq!(bought.len(), 1);
    assert!(
        !first_page.contains(&bought[0].ticket.id),
        "{} was on the first page",
        bought[0].ticket.title
    );
}
