//! Text from the server never reaches the terminal as control sequences: an escape
//! sequence (OSC 52 writes the clipboard) or a right-to-left override in a title, a name
//! or an error body shows as U+FFFD in text output, while `--json` keeps it exactly. And
//! the viewer's own tickets are marked where no seller name can imitate the mark.

mod common;

use common::{NOT_FOUND, fake_api, json, run, signed_in, ticket, tix};

const RLO_TITLE: &str = "\u{202E}evil";
const OSC52: &str = "\u{1b}]52;c;AAAA\u{7}";

fn assert_clean(text: &str) {
    assert!(text.contains('\u{FFFD}'), "replaced: {text:?}");
    for bad in ['\u{1b}', '\u{7}', '\u{202E}'] {
        assert!(
            !text.contains(bad),
            "{bad:?} reached the terminal: {text:?}"
        );
    }
}

fn hostile_api() -> String {
    let mut t = ticket("t1", RLO_TITLE, 2_500, OSC52);
    t.seller_name = format!("Eve{OSC52}");
    let one = serde_json::to_string(&t).unwrap();
    let list = serde_json::to_string(&[t]).unwrap();
    let error = serde_json::json!({"errors": [{
        "message": format!("Bad{OSC52}\nerror: forged line \u{202E}"),
        "field": "title"
    }]})
    .to_string();
    let (api, _) = fake_api(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/tickets") => (200, list.clone()),
        ("GET", "/api/tickets/t1") => (200, one.clone()),
        ("GET", "/api/tickets/bad") => (400, error.clone()),
        ("GET", "/api/tickets/down") => (503, error.clone()),
        _ => (NOT_FOUND.0, NOT_FOUND.1.into()),
    });
    api
}

#[test]
fn titles_and_names_are_printed_without_their_control_characters() {
    let api = hostile_api();
    let dir = tempfile::tempdir().unwrap();
    for args in [&["tickets", "list"][..], &["tickets", "show", "t1"]] {
        let r = run(tix(&api, dir.path()), args, None);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_clean(&r.stdout);
        assert!(r.stdout.contains("\u{FFFD}evil"), "{}", r.stdout);
        assert!(
            r.stdout.contains("Eve\u{FFFD}]52;c;AAAA\u{FFFD}"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn json_keeps_the_servers_text_exactly() {
    let api = hostile_api();
    let dir = tempfile::tempdir().unwrap();
    let r = run(tix(&api, dir.path()), &["--json", "tickets", "list"], None);
    let list = json(&r);
    assert_eq!(list[0]["title"], RLO_TITLE);
    assert_eq!(list[0]["sellerName"], format!("Eve{OSC52}"));
    // The override as it came; ESC and BEL escaped by JSON itself, never replaced.
    assert!(r.stdout.contains('\u{202E}'), "{:?}", r.stdout);
    assert!(!r.stdout.contains('\u{FFFD}'), "{:?}", r.stdout);
    let r = run(
        tix(&api, dir.path()),
        &["--json", "tickets", "show", "t1"],
        None,
    );
    assert_eq!(json(&r)["title"], RLO_TITLE);
}

#[test]
fn error_messages_are_printed_without_their_control_characters() {
    let api = hostile_api();
    let dir = tempfile::tempdir().unwrap();
    for (id, code) in [("bad", 5), ("down", 7)] {
        for json in [false, true] {
            let mut args = vec!["tickets", "show", id];
            if json {
                args.insert(0, "--json");
            }
            let r = run(tix(&api, dir.path()), &args, None);
            assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
            assert_clean(&r.stderr);
            assert!(
                r.stderr.contains("Bad\u{FFFD}]52;c;AAAA\u{FFFD}"),
                "{}",
                r.stderr
            );
            // A line break in the server's message cannot forge a line of our own.
            assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
            assert!(r.stdout.is_empty(), "{}", r.stdout);
        }
    }
}

#[test]
fn a_seller_called_you_is_not_shown_as_the_viewer() {
    let mut own = ticket("t-own", "Mine", 1_000, "Ann");
    own.user_id = "u1".into(); // the signed-in user (common::signed_in)
    let other = ticket("t-other", "Theirs", 1_000, "you");
    let list = serde_json::to_string(&[own, other]).unwrap();
    let (api, _) = fake_api(move |r| match r.path.as_str() {
        "/api/tickets" => (200, list.clone()),
        _ => (NOT_FOUND.0, NOT_FOUND.1.into()),
    });
    let dir = tempfile::tempdir().unwrap();
    signed_in(dir.path(), &api);
    let r = run(tix(&api, dir.path()), &["tickets", "list"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "ID       TITLE   PRICE   SELLER  MINE  STATE",
            "t-own    Mine    $10.00  Ann     yes   on sale",
            "t-other  Theirs  $10.00  you           on sale",
        ],
        "{}",
        r.stdout
    );
}
