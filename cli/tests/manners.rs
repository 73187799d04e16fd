//! Manners: output into a closed pipe ends quietly with success; every kind of connection
//! failure says what really failed (with the stack hint only where it helps); a spinner
//! turns on a terminal during slow waits and never reaches pipes or `--json`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{NOT_FOUND, Pty, Run, fake_api, run, ticket, tix};

/// A gateway with many tickets for sale, more than any pipe buffer holds.
fn many_tickets() -> String {
    let list: Vec<_> = (0..2000)
        .map(|i| ticket(&format!("t{i}"), &format!("Show {i}"), 1000 + i, "Ann"))
        .collect();
    let list = serde_json::to_string(&list).unwrap();
    fake_api(move |r| {
        if r.path.starts_with("/api/tickets") {
            (200, list.clone())
        } else {
            (NOT_FOUND.0, NOT_FOUND.1.into())
        }
    })
    .0
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_success() {
    let api = many_tickets();
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--json", "tickets", "list", "--all"][..],
        &["tickets", "list", "--all"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        // Nobody will ever read: like `tix … | head -c 100` after head has exited.
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("tix"))
            .args(args)
            .env("TIX_API", &api)
            .env("TIX_CONFIG_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "{args:?}: nothing on stderr"
        );
    }
}

/// Runs `tix tickets list` against `api`, giving up on requests after a second.
fn list(api: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    run(
        tix(api, dir.path()),
        &["--timeout", "1", "tickets", "list"],
        None,
    )
}

fn assert_failed(r: &Run, says: &[&str]) {
    assert_eq!(r.code, 7, "{}", r.stderr);
    for s in says {
        assert!(r.stderr.contains(s), "{s:?} in: {}", r.stderr);
    }
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn a_host_that_does_not_resolve_is_named() {
    let r = list("http://tix-nowhere.invalid");
    assert_failed(
        &r,
        &[
            "error: cannot reach the tix API at http://tix-nowhere.invalid: cannot resolve tix-nowhere.invalid",
            "check the host name in --api / TIX_API",
        ],
    );
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);
    assert!(!r.stderr.contains("scripts/stack up"), "{}", r.stderr);
}

#[test]
fn https_to_a_plain_http_port_is_a_tls_failure() {
    let (api, _) = fake_api(|_| (NOT_FOUND.0, NOT_FOUND.1.into()));
    let api = api.replace("http://", "https://");
    let r = list(&api);
    assert_failed(
        &r,
        &[
            &format!("error: cannot reach the tix API at {api}: TLS handshake failed"),
            "A local stack is plain http://",
        ],
    );
    assert!(!r.stderr.contains("scripts/stack up"), "{}", r.stderr);
}

#[test]
fn a_gateway_that_never_answers_times_out_after_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    // Accepts, then holds every connection without a byte in answer.
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let r = list(&api);
    assert_failed(
        &r,
        &[
            &format!("error: the tix API at {api} timed out: no answer within 1 s"),
            "--timeout / TIX_TIMEOUT",
        ],
    );
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);
    // The environment sets it too; a bad value is a usage error.
    let dir = tempfile::tempdir().unwrap();
    let mut c = tix(&api, dir.path());
    c.env("TIX_TIMEOUT", "1");
    let r = run(c, &["tickets", "list"], None);
    assert_failed(&r, &["no answer within 1 s"]);
    let mut c = tix(&api, dir.path());
    c.env("TIX_TIMEOUT", "soon");
    let r = run(c, &["tickets", "list"], None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("TIX_TIMEOUT"), "{}", r.stderr);
}

#[test]
fn a_closed_port_is_refused_and_only_then_the_stack_hint_is_given() {
    let api = format!("http://127.0.0.1:{}", tix_testkit::free_port());
    let r = list(&api);
    assert_failed(
        &r,
        &[
            &format!("error: cannot reach the tix API at {api} (connection refused)"),
            "is the stack running? Start it with `scripts/stack up`",
        ],
    );
}

#[test]
fn a_5xx_says_the_service_failed_with_its_own_message() {
    let (api, _) = fake_api(|_| {
        (
            503,
            r#"{"errors":[{"message":"The tickets service is unavailable"}]}"#.into(),
        )
    });
    let r = list(&api);
    assert_failed(
        &r,
        &["error: the tix API failed (503): The tickets service is unavailable"],
    );
    assert!(!r.stderr.contains("scripts/stack up"), "{}", r.stderr);
}

/// A gateway that takes `delay` to answer the ticket list.
fn slow_tickets(delay: Duration) -> String {
    let list = serde_json::to_string(&[ticket("t1", "Jazz", 900, "Ann")]).unwrap();
    fake_api(move |r| {
        if r.path.starts_with("/api/tickets") {
            std::thread::sleep(delay);
            (200, list.clone())
        } else {
            (NOT_FOUND.0, NOT_FOUND.1.into())
        }
    })
    .0
}

#[test]
fn piped_output_never_carries_a_spinner() {
    let api = slow_tickets(Duration::from_millis(800));
    let dir = tempfile::tempdir().unwrap();
    for args in [&["tickets", "list"][..], &["--json", "tickets", "list"]] {
        let r = run(tix(&api, dir.path()), args, None);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("Jazz"), "{}", r.stdout);
        for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains('\r') && !text.contains('\u{1b}'),
                "{args:?}: spinner bytes on {name}: {text:?}"
            );
        }
        assert!(r.stderr.is_empty(), "{}", r.stderr);
    }
}

#[test]
fn on_a_terminal_a_slow_wait_shows_a_spinner_but_not_with_json() {
    let api = slow_tickets(Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let mut pty = Pty::spawn(&api, dir.path(), &["tickets", "list"]);
    pty.wait_for("Loading tickets…", Duration::from_secs(30));
    assert_eq!(pty.exit_code(Duration::from_secs(30)), 0, "{}", pty.text());
    assert!(pty.text().contains("Jazz"), "{}", pty.text());

    let mut pty = Pty::spawn(&api, dir.path(), &["--json", "tickets", "list"]);
    assert_eq!(pty.exit_code(Duration::from_secs(30)), 0, "{}", pty.text());
    let screen = pty.text();
    assert!(screen.contains(r#""title":"Jazz""#), "{screen}");
    assert!(!screen.contains("Loading"), "{screen}");
}
