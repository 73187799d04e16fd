//! Against the real stack: sellers named by their display names, `tix sales` after real
//! purchases, the ticket free again right after a declined card, and a rate-limited
//! sign-up told when to try again.

mod common;

use common::{json, run, sell, signup, tix};
use tix_testkit::{ALL, Stack};

#[test]
fn sellers_see_what_they_sold_and_buyers_see_their_name() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    let r = run(
        tix(&api, cfg),
        &[
            "--profile",
            "seller",
            "signup",
            "--email",
            "ann.smith@example.com",
            "--name",
            "Ann's Tickets",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("others see you as Ann's Tickets"),
        "{}",
        r.stdout
    );
    signup(&api, cfg, "buyer", "bo.buyer@example.com");
    let me = json(&run(
        tix(&api, cfg),
        &["--profile", "buyer", "--json", "whoami"],
        None,
    ));
    assert_eq!(
        me["displayName"], "bo.buyer",
        "the email's local part by default"
    );

    let as_ = |profile: &str, args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--profile", profile];
        all.extend_from_slice(args);
        run(tix(&api, cfg), &all, stdin)
    };
    let mut tickets = Vec::new();
    for (title, price) in [("Jazz night", "25.5"), ("Opera", "10")] {
        let t = json(&as_(
            "seller",
            &[
                "--json", "tickets", "create", "--title", title, "--price", price,
            ],
            None,
        ));
        tickets.push(t["id"].as_str().unwrap().to_string());
    }
    // The buyer sees the seller by name; ids stay in --json.
    let r = as_("buyer", &["tickets", "list"], None);
    assert!(r.stdout.contains("Ann's Tickets"), "{}", r.stdout);
    let seller_id = json(&as_("seller", &["--json", "whoami"], None))["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!r.stdout.contains(&seller_id), "{}", r.stdout);
    let list = json(&as_("buyer", &["--json", "tickets", "list"], None));
    assert_eq!(list[0]["userId"], seller_id.as_str());
    assert_eq!(list[0]["sellerName"], "Ann's Tickets");
    let r = as_("buyer", &["tickets", "show", &tickets[0]], None);
    assert!(r.stdout.contains("Ann's Tickets"), "{}", r.stdout);

    for t in &tickets {
        json(&as_(
            "buyer",
            &["--json", "buy", t, "--token", "tok_visa"],
            None,
        ));
    }
    // The seller: newest first, the amounts paid, the totals over all sales.
    let sales = json(&as_("seller", &["--json", "sales"], None));
    assert_eq!(sales["count"], 2, "{sales}");
    assert_eq!(sales["total"], 35.5, "{sales}");
    assert_eq!(sales["sales"][0]["ticket"]["title"], "Opera", "{sales}");
    assert_eq!(sales["sales"][0]["amount"], 10, "{sales}");
    assert_eq!(sales["sales"][1]["amount"], 25.5, "{sales}");
    let r = as_("seller", &["sales"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    assert!(
        lines[0].starts_with("TICKET") && lines[1].starts_with("Opera"),
        "{}",
        r.stdout
    );
    assert!(
        lines[2].contains("Jazz night") && lines[2].contains("$25.50"),
        "{}",
        r.stdout
    );
    assert_eq!(lines[3], "2 sold, total $35.50");
    let r = as_("seller", &["sales", "--limit", "1", "--offset", "1"], None);
    assert!(
        r.stdout.contains("Jazz night") && !r.stdout.contains("Opera"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with("2 sold, total $35.50 (1 shown)\n"),
        "{}",
        r.stdout
    );

    // The buyer sold nothing; nobody signed in is told to sign in.
    let r = as_("buyer", &["sales"], None);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "No sales yet."),
        "{}",
        r.stderr
    );
    assert_eq!(json(&as_("buyer", &["--json", "sales"], None))["count"], 0);
    let r = as_("nobody", &["sales"], None);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("tix signin"), "{}", r.stderr);
}

#[test]
fn after_a_declined_card_the_ticket_can_be_bought_again_at_once() {
    let stack = Stack::start(&ALL);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    signup(&api, cfg, "seller", "seller@example.com");
    signup(&api, cfg, "buyer", "buyer@example.com");
    let buyer = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--profile", "buyer"];
        all.extend_from_slice(args);
        run(tix(&api, cfg), &all, stdin)
    };
    let t = sell(&api, cfg, "seller", "Gala", "40");
    let ticket = t["id"].as_str().unwrap().to_string();
    // Declined again and again, each retry straight after: the race the wait closes.
    for round in 0..4 {
        let o = json(&buyer(&["--json", "orders", "create", &ticket], None));
        let order = o["id"].as_str().unwrap().to_string();
        let r = buyer(&["pay", &order], Some("4000 0000 0000 0002\n"));
        assert_eq!(r.code, 6, "round {round}: {}", r.stderr);
        assert!(
            r.stderr.contains("payment declined")
                && r.stderr.contains(&format!("order {order} is cancelled"))
                && r.stderr.contains("it can be bought again now"),
            "round {round}: {}",
            r.stderr
        );
    }
    let r = buyer(&["buy", &ticket, "--token", "tok_chargeDeclined"], None);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("it can be bought again now"),
        "{}",
        r.stderr
    );
    let bought = json(&buyer(
        &["--json", "buy", &ticket, "--token", "tok_visa"],
        None,
    ));
    assert_eq!(bought["order"]["status"], "complete", "{bought}");
}

#[test]
fn a_rate_limited_sign_up_says_when_to_try_again() {
    // One sign-up per address per minute: the second is turned away for about a minute.
    let stack = Stack::start_with_env(&["auth", "gateway"], &[("TIX_SIGNUP_PER_ADDRESS", "1/1")]);
    let api = stack.url("gateway");
    let dir = tempfile::tempdir().unwrap();
    signup(&api, dir.path(), "first", "first@example.com");
    let r = run(
        tix(&api, dir.path()),
        &[
            "--profile",
            "second",
            "signup",
            "--email",
            "second@example.com",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    let seconds: u64 = r
        .stderr
        .split("try again in ")
        .nth(1)
        .and_then(|rest| rest.split(" s").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("says when to try again: {}", r.stderr));
    assert!((1..=60).contains(&seconds), "{}", r.stderr);
    assert!(!dir.path().join("session-second.json").exists());
}
