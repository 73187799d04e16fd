//! The `tix` binary against the real stack (every service a process), as a user or a
//! script would drive it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Run, json, run, sell, signup, tix};
use serde_json::Value;
use tix_testkit::{ALL, Stack};

#[test]
fn two_users_sell_and_buy_through_the_cli_only() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    signup(&api, cfg, "seller", "seller@example.com");
    signup(&api, cfg, "buyer", "buyer@example.com");

    let t = sell(&api, cfg, "seller", "Jazz night", "25.5");
    let ticket = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["price"], 25.5);

    // People get a table with money; scripts get JSON.
    let r = run(
        tix(&api, cfg),
        &["tickets", "list", "--search", "jazz"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Jazz night") && r.stdout.contains("$25.50"),
        "{}",
        r.stdout
    );
    let mine = json(&run(
        tix(&api, cfg),
        &["--profile", "seller", "--json", "tickets", "list", "--mine"],
        None,
    ));
    assert_eq!(mine.as_array().unwrap().len(), 1);

    let bought = json(&run(
        tix(&api, cfg),
        &[
            "--profile",
            "buyer",
            "--json",
            "buy",
            &ticket,
            "--token",
            "tok_visa",
        ],
        None,
    ));
    let order = bought["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(bought["payment"]["status"], "succeeded");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = json(&run(
            tix(&api, cfg),
            &["--profile", "buyer", "--json", "orders", "show", &order],
            None,
        ));
        if o["status"] == "complete" {
            break;
        }
        assert!(Instant::now() < deadline, "order never completed: {o}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = run(
        tix(&api, cfg),
        &["--profile", "buyer", "orders", "list"],
        None,
    );
    assert!(
        r.stdout.contains("paid") && r.stdout.contains("Jazz night"),
        "{}",
        r.stdout
    );
    let me = json(&run(
        tix(&api, cfg),
        &["--profile", "buyer", "--json", "whoami"],
        None,
    ));
    assert_eq!(me["email"], "buyer@example.com");
}

#[test]
fn every_exit_code_means_what_the_help_says() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();

    // 2: usage.
    assert_eq!(
        run(tix(&api, cfg), &["tickets", "create", "--title", "x"], None).code,
        2
    );
    // 3: not signed in.
    let r = run(tix(&api, cfg), &["orders", "list"], None);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("tix signin"), "{}", r.stderr);
    signup(&api, cfg, "default", "ann@example.com");
    signup(&api, cfg, "bob", "bob@example.com");
    let r = run(tix(&api, cfg), &["pay", "some-order"], Some(""));
    assert_eq!(r.code, 2, "a card is required: {}", r.stderr);
    assert!(r.stderr.contains("no card number"), "{}", r.stderr);
    // 4: not found.
    let r = run(tix(&api, cfg), &["tickets", "show", "no-such-ticket"], None);
    assert_eq!((r.code, r.stderr.trim()), (4, "error: Not found"));
    // 5: refused by a rule — the server's own message on stderr.
    let r = run(
        tix(&api, cfg),
        &["tickets", "create", "--title", "Free", "--price", "0"],
        None,
    );
    assert_eq!(r.code, 5);
    assert!(
        r.stderr.contains("Price must be greater than 0"),
        "{}",
        r.stderr
    );
    let r = run(
        tix(&api, cfg),
        &["signup", "--email", "ann@example.com", "--password-stdin"],
        Some("whatever123\n"),
    );
    assert_eq!(r.code, 5);
    assert!(r.stderr.contains("Email in use"), "{}", r.stderr);
    // 3 again: someone else's ticket.
    let t = json(&run(
        tix(&api, cfg),
        &[
            "--json", "tickets", "create", "--title", "Ann's", "--price", "10",
        ],
        None,
    ));
    let ticket = t["id"].as_str().unwrap().to_string();
    let r = run(
        tix(&api, cfg),
        &[
            "--profile",
            "bob",
            "tickets",
            "update",
            &ticket,
            "--price",
            "1",
        ],
        None,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    // 6: declined, and it says what happened to the order.
    let r = run(
        tix(&api, cfg),
        &["--profile", "bob", "buy", &ticket],
        Some("4000 0000 0000 0002\n"),
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("declined") && r.stderr.contains("cancelled"),
        "{}",
        r.stderr
    );
    // 5: already reserved. Bob's order was cancelled, and `buy` waited for that, so he
    // reserves the ticket again at once; then Cy cannot.
    let r = run(
        tix(&api, cfg),
        &["--profile", "bob", "orders", "create", &ticket],
        None,
    );
    assert_eq!(r.code, 0, "released after the decline: {}", r.stderr);
    signup(&api, cfg, "cy", "cy@example.com");
    let r = run(
        tix(&api, cfg),
        &["--profile", "cy", "orders", "create", &ticket],
        None,
    );
    assert_eq!(r.code, 5);
    assert!(
        r.stderr.contains("Ticket is already reserved"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_session_file_is_private_and_signout_removes_it() {
    let stack = Stack::start(&["auth", "gateway"]);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tix");
    signup(&api, &cfg, "default", "dee@example.com");
    let file = cfg.join("session-default.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["email"], "dee@example.com");
    assert_eq!(saved["api"], api.as_str());
    // Sign in again from a script, on a second profile: sessions live side by side.
    let r = run(
        tix(&api, &cfg),
        &[
            "--profile",
            "work",
            "signin",
            "--email",
            "DEE@example.com",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(cfg.join("session-work.json").exists());
    let r = run(tix(&api, &cfg), &["signout"], None);
    assert_eq!(r.code, 0);
    assert!(!file.exists(), "signout removes the session");
    assert!(
        cfg.join("session-work.json").exists(),
        "other profiles keep theirs"
    );
    assert_eq!(run(tix(&api, &cfg), &["whoami"], None).code, 3);
    // A wrong password: refused with the server's message, no session written.
    let r = run(
        tix(&api, &cfg),
        &["signin", "--email", "dee@example.com", "--password-stdin"],
        Some("wrong password\n"),
    );
    assert_eq!(r.code, 5);
    assert!(r.stderr.contains("Invalid credentials"));
    assert!(!file.exists());
}

#[test]
fn with_the_stack_down_it_says_where_it_looked_and_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("http://127.0.0.1:{}", tix_testkit::free_port());
    let r = run(tix(&api, dir.path()), &["tickets", "list"], None);
    assert_eq!(r.code, 7);
    assert!(r.stderr.contains(&api), "{}", r.stderr);
    assert!(r.stderr.contains("scripts/stack up"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let r = run(tix(&api, dir.path()), &["status"], None);
    assert_eq!(r.code, 7);
}

#[test]
fn status_reports_each_service_and_a_missing_one_is_exit_7() {
    let stack = Stack::start(&["auth", "tickets", "gateway"]);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let r = run(tix(&api, dir.path()), &["--json", "status"], None);
    assert_eq!(r.code, 7, "orders and payments are not running");
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["upstreams"]["auth"]["status"], "up");
    assert_eq!(v["upstreams"]["orders"]["status"], "down");
}

#[test]
fn completions_and_help_need_no_stack() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        tix("http://127.0.0.1:1", dir.path()),
        &["completions", "bash"],
        None,
    );
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("_tix"), "a bash completion script");
    let r = run(tix("http://127.0.0.1:1", dir.path()), &["--help"], None);
    assert!(r.stdout.contains("Exit codes:") && r.stdout.contains("payment declined"));
}

#[test]
fn a_session_is_renewed_as_it_is_used_and_signing_out_revokes_it() {
    // Sessions of 4 s: past 2 s, any command renews the token first.
    let stack = Stack::start_with_env(&["auth", "gateway"], &[("TIX_SESSION_TTL", "4s")]);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tix");
    signup(&api, &cfg, "default", "ren@example.com");
    let token = || -> String {
        let text = std::fs::read_to_string(cfg.join("session-default.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = token();
    assert_eq!(run(tix(&api, &cfg), &["whoami"], None).code, 0);
    assert_eq!(token(), first, "a young token is kept");
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(run(tix(&api, &cfg), &["whoami"], None).code, 0);
    let renewed = token();
    assert_ne!(renewed, first, "past half its life the token was renewed");
    // A copy of the session (another terminal, a stolen file) works until sign-out…
    let copy = std::fs::read_to_string(cfg.join("session-default.json")).unwrap();
    std::fs::write(cfg.join("session-copy.json"), copy).unwrap();
    let whoami_copy = || run(tix(&api, &cfg), &["--profile", "copy", "whoami"], None);
    assert_eq!(whoami_copy().code, 0);
    // …which revokes the session on the server, so the copy is refused too.
    assert_eq!(run(tix(&api, &cfg), &["signout"], None).code, 0);
    let r = whoami_copy();
    assert_eq!(r.code, 3, "the revoked session is nobody: {}", r.stderr);
}

/// Near the session's longest life every renewal ends at the session's end. `tix` renews
/// until one fails to move the end, then no more (it would come due again halfway to the
/// same end, over and over). Tokens of 8 s in sessions of 12 s; each wait is counted from
/// the token's own times, and each step has over 3 s before the token it checks ends.
#[test]
fn renewals_stop_once_the_session_is_at_its_end() {
    let stack = Stack::start_with_env(
        &["auth", "gateway"],
        &[("TIX_SESSION_TTL", "8s"), ("TIX_SESSION_MAX_AGE", "12s")],
    );
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tix");
    signup(&api, &cfg, "default", "end@example.com");
    let saved = || -> Value {
        let text = std::fs::read_to_string(cfg.join("session-default.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let token = || saved()["token"].as_str().unwrap().to_string();
    let times = |t: &str| tix_client::session::token_times(t).expect("a token's times");
    let sleep_until = |unix: f64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        std::thread::sleep(Duration::from_secs_f64((unix - now).max(0.0)));
    };
    let whoami = || assert_eq!(run(tix(&api, &cfg), &["whoami"], None).code, 0);
    let first = token();
    let (iat, exp) = times(&first);
    let end = iat + 12;
    sleep_until((iat + (exp - iat) / 2) as f64 + 0.3);
    whoami();
    let second = token();
    assert_ne!(second, first, "renewed past half its life");
    assert_eq!(times(&second).1, end, "the renewal ends with the session");
    assert_eq!(saved().get("atEnd"), None, "that renewal moved the end");
    let (iat, exp) = times(&second);
    sleep_until((iat + (exp - iat) / 2) as f64 + 0.3);
    whoami();
    let third = token();
    assert_ne!(third, second, "renewed again: the end might have moved");
    assert_eq!(
        saved()["atEnd"],
        true,
        "it did not: the session is at its end"
    );
    whoami();
    assert_eq!(token(), third, "no renewal once at the end");
}

#[test]
fn buy_and_pay_return_once_the_order_shows_complete_and_payments_are_receipts() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    signup(&api, cfg, "seller", "seller@example.com");
    signup(&api, cfg, "buyer", "buyer@example.com");
    let sell = |title: &str, price: &str| -> String {
        sell(&api, cfg, "seller", title, price)["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let buyer = |args: &[&str]| -> Run {
        let mut all = vec!["--profile", "buyer"];
        all.extend_from_slice(args);
        run(tix(&api, cfg), &all, None)
    };

    // `tix buy X && tix orders show O`: never `created`, whatever the events are doing.
    let mut orders = Vec::new();
    for (i, price) in ["10", "20.5", "30"].into_iter().enumerate() {
        let ticket = sell(&format!("Show {i}"), price);
        let bought = json(&buyer(&["--json", "buy", &ticket, "--token", "tok_visa"]));
        let order = bought["order"]["id"].as_str().unwrap().to_string();
        assert_eq!(bought["order"]["status"], "complete", "{bought}");
        assert_eq!(bought["payment"]["status"], "succeeded", "{bought}");
        let o = json(&buyer(&["--json", "orders", "show", &order]));
        assert_eq!(o["status"], "complete", "right after buy: {o}");
        assert!(o["paidAt"].is_string(), "{o}");
        orders.push(order);
    }
    let r = buyer(&["orders", "show", &orders[0]]);
    assert!(
        r.stdout.contains("paid ") && r.stdout.contains(" UTC"),
        "says when it was paid: {}",
        r.stdout
    );

    // `tix pay` too, and its text says the order is paid.
    let ticket = sell("Matinee", "12");
    let o = json(&buyer(&["--json", "orders", "create", &ticket]));
    let order = o["id"].as_str().unwrap().to_string();
    assert_eq!(o["paidAt"], Value::Null);
    let r = run(
        tix(&api, cfg),
        &["--profile", "buyer", "pay", &order],
        Some("4242 4242 4242 4242\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("Paid order {order}")) && r.stdout.contains(": paid "),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("catching up"), "{}", r.stderr);
    assert_eq!(
        json(&buyer(&["--json", "orders", "show", &order]))["status"],
        "complete"
    );

    // The receipts: newest first, the price agreed, the order each paid for.
    let list = json(&buyer(&["--json", "payments", "list"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!(list[0]["orderId"], order.as_str());
    assert_eq!(list[0]["amount"], 12);
    assert_eq!(list[2]["amount"], 20.5);
    assert!(list.iter().all(|p| p["status"] == "succeeded"), "{list:?}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    let shown = json(&buyer(&["--json", "payments", "show", &id]));
    assert_eq!(&shown, &list[0]);
    let r = buyer(&["payments", "show", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("$12.00") && r.stdout.contains("succeeded") && r.stdout.contains(&order),
        "{}",
        r.stdout
    );
    let r = buyer(&["payments", "list"]);
    assert!(
        r.stdout.starts_with("ID") && r.stdout.lines().count() == 5,
        "{}",
        r.stdout
    );
    // Someone else's payment is not the seller's to see.
    let r = run(
        tix(&api, cfg),
        &["--profile", "seller", "payments", "show", &id],
        None,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = run(
        tix(&api, cfg),
        &["--profile", "seller", "payments", "list"],
        None,
    );
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "No payments."),
        "{}",
        r.stderr
    );
}

#[test]
fn events_tail_without_a_bus_says_which_setting_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("tcp://127.0.0.1:{}", tix_testkit::free_port());
    let r = run(
        tix("http://127.0.0.1:9", dir.path()),
        &["events", "tail", "--bus", &nowhere],
        None,
    );
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot reach the event bus at {nowhere}"))
            && r.stderr.contains("TIX_BUS_URL")
            && !r.stderr.contains("TIX_API"),
        "{}",
        r.stderr
    );
}
