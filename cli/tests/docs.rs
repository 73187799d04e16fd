//! What `tix` says about itself, with no stack and no session: man pages, completion
//! scripts, and usage lines that do not change with the environment.

mod common;

use common::{run, tix};

const NOWHERE: &str = "http://127.0.0.1:1";

#[test]
fn the_man_page_goes_to_stdout_and_a_page_per_command_to_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(tix(NOWHERE, dir.path()), &["man"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(".ie"),
        "roff: {}",
        &r.stdout[..80.min(r.stdout.len())]
    );
    assert!(r.stdout.contains(".TH tix 1"), "{}", r.stdout);
    assert!(r.stdout.contains("sales"), "lists the commands");

    let out = dir.path().join("man1");
    let r = run(
        tix(NOWHERE, dir.path()),
        &["man", "--out-dir", out.to_str().unwrap()],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for page in [
        "tix.1",
        "tix-pay.1",
        "tix-sales.1",
        "tix-tickets-list.1",
        "tix-man.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page}: {text}");
    }
    let pay = std::fs::read_to_string(out.join("tix-pay.1")).unwrap();
    assert!(
        pay.contains("tok_visa"),
        "the page has the help's examples: {pay}"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "_tix()"),
        ("zsh", "#compdef tix"),
        ("fish", "complete -c tix"),
    ] {
        let r = run(tix(NOWHERE, dir.path()), &["completions", shell], None);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains(marker), "{shell}: {}", r.stdout);
        assert!(
            r.stdout.contains("sales"),
            "{shell}: knows the new commands"
        );
    }
}

#[test]
fn a_set_tix_api_does_not_show_up_in_usage_lines() {
    let dir = tempfile::tempdir().unwrap();
    // `tix` sets TIX_API, as a user's shell profile would.
    let r = run(
        tix(NOWHERE, dir.path()),
        &["tickets", "create", "--title", "x"],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Usage: tix tickets create --title <TITLE> --price <PRICE>\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("--api"), "{}", r.stderr);
}
