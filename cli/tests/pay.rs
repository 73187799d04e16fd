//! Paying: card numbers only from a masked prompt or standard input (never argv), and
//! what `pay` says when the order is slow to complete or was cancelled first. Against a
//! stand-in gateway, which records the token each payment carried.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Pty, paying_api, run, signed_in, tix};
use tix_api::OrderStatus;

/// The `token` of every payment the stand-in gateway received.
fn tokens(seen: &std::sync::Mutex<Vec<common::Request>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/api/payments")
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            body["token"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn a_card_number_is_read_from_standard_input_and_sent_as_digits() {
    let (api, seen) = paying_api(OrderStatus::Complete);
    let dir = tempfile::tempdir().unwrap();
    signed_in(dir.path(), &api);
    let r = run(
        tix(&api, dir.path()),
        &["pay", "o1"],
        Some("4242 4242-4242 4242\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("Paid order o1 (payment p1)"),
        "{}",
        r.stdout
    );
    assert_eq!(tokens(&seen), ["4242424242424242"]);
}

#[test]
fn a_card_number_on_the_command_line_is_refused_and_not_repeated() {
    let (api, seen) = paying_api(OrderStatus::Complete);
    let dir = tempfile::tempdir().unwrap();
    signed_in(dir.path(), &api);
    for args in [
        &["pay", "o1", "--card", "4242424242424242"][..],
        &["pay", "o1", "--card=4242 4242 4242 4242"],
        &["buy", "t1", "--card", "4242", "4242", "4242", "4242"],
        &["pay", "o1", "--token", "4242 4242 4242 4242"],
        // Not a flag at all: clap would say "unexpected argument '4242…'".
        &["pay", "o1", "4242424242424242"],
        &["pay", "o1", "4242 4242 4242 4242"],
        &["pay", "o1", "4242", "4242", "4242", "4242"],
        &["buy", "4242-4242-4242-4242"],
        &["--json", "pay", "--token=4242424242424242", "o1"],
    ] {
        let r = run(tix(&api, dir.path()), args, None);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("card numbers are not taken as arguments")
                && r.stderr.contains("shell history")
                && r.stderr.contains("tix pay ORDER < card.txt"),
            "says why and how: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("4242"), "never echoed: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
    assert!(tokens(&seen).is_empty(), "nothing was paid");
    // Sandbox tokens stay flags; garbage on stdin is not a card.
    let r = run(
        tix(&api, dir.path()),
        &["pay", "o1", "--token", "tok_visa"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(tix(&api, dir.path()), &["pay", "o1"], Some("not a card\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a card number"), "{}", r.stderr);
    assert_eq!(tokens(&seen), ["tok_visa"]);
}

#[test]
fn on_a_terminal_the_card_prompt_hides_the_digits_and_argv_holds_none() {
    let (api, seen) = paying_api(OrderStatus::Complete);
    let dir = tempfile::tempdir().unwrap();
    signed_in(dir.path(), &api);
    let args = ["pay", "o1"];
    let mut pty = Pty::spawn(&api, dir.path(), &args);
    pty.wait_for("Card number (hidden):", Duration::from_secs(30));
    // The process as `ps` shows it, while it holds the prompt.
    let pid = pty.child.process_id().expect("a pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(&argv[1..], &args, "{argv:?}");
    pty.writer.write_all(b"4242 4242 4242 4242\r").unwrap();
    pty.writer.flush().unwrap();
    assert_eq!(pty.exit_code(Duration::from_secs(30)), 0, "{}", pty.text());
    let screen = pty.text();
    assert!(screen.contains("Paid order o1"), "{screen}");
    assert!(!screen.contains("4242"), "the digits were echoed: {screen}");
    assert_eq!(tokens(&seen), ["4242424242424242"], "the card was used");
}

#[test]
fn pay_says_when_the_order_is_catching_up_and_when_it_was_cancelled_first() {
    let dir = tempfile::tempdir().unwrap();

    // The payment is accepted but the order never catches up within the wait.
    let (api, _) = paying_api(OrderStatus::Created);
    signed_in(dir.path(), &api);
    let started = Instant::now();
    let r = run(
        tix(&api, dir.path()),
        &["pay", "o1", "--token", "tok_visa", "--wait", "1"],
        None,
    );
    assert_eq!(r.code, 0, "the payment went through: {}", r.stderr);
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert_eq!(r.stdout.trim(), "Paid order o1 (payment p1).");
    assert!(
        r.stderr.contains("payment p1 is confirmed")
            && r.stderr
                .contains("order o1 still shows created and is catching up"),
        "{}",
        r.stderr
    );

    // The order was cancelled before the payment reached it: orders rejects the payment
    // and payments refunds it; the buyer is told so, and the exit code is not 0.
    let (api, _) = paying_api(OrderStatus::Cancelled);
    signed_in(dir.path(), &api);
    let r = run(
        tix(&api, dir.path()),
        &["pay", "o1", "--token", "tok_visa"],
        None,
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("order o1 was cancelled")
            && r.stderr.contains("refunded")
            && r.stderr.contains("tix payments show p1"),
        "{}",
        r.stderr
    );
}
