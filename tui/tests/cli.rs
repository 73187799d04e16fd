//! The binary's own documentation: `--man` prints a man page and `--completions` a
//! completion script, both from the flags' definitions, without touching the terminal.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tix-tui"))
        .args(args)
        // Set in the environment, as they may well be: they must not get in the way.
        .env("TIX_THEME", "mono")
        .env("TIX_API", "http://127.0.0.1:1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn man_prints_a_roff_page_with_every_flag() {
    let (ok, page, err) = run(&["--man"]);
    assert!(ok, "{err}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH tix-tui"),
        "{page}"
    );
    for flag in ["api", "profile", "theme", "completions", "TIX_THEME"] {
        assert!(page.contains(flag), "{flag} missing from the man page");
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (ok, script, err) = run(&["--completions", shell]);
        assert!(ok, "{shell}: {err}");
        assert!(script.contains("tix-tui"), "{shell}");
        assert!(script.contains("theme"), "{shell}");
    }
    let (ok, _, err) = run(&["--completions", "tcsh"]);
    assert!(!ok);
    assert!(err.contains("tcsh"), "{err}");
}

#[test]
fn an_unknown_theme_is_refused_with_the_choices() {
    let (ok, _, err) = run(&["--theme", "neon", "--man"]);
    assert!(!ok);
    assert!(err.contains("default") && err.contains("mono"), "{err}");
}

/// `tix-tui --man | head -1`: the reader goes away early. That is success, quietly, not
/// "Error: Broken pipe" (man) or a panic (completions).
#[test]
fn a_closed_pipe_is_not_an_error() {
    for args in [
        &["--man"][..],
        &["--completions", "bash"],
        &["--completions", "zsh"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_tix-tui"))
            .args(args)
            .env("TIX_THEME", "mono")
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}
