//! `tix-bus completions` and `tix-bus man` into a pipe whose reader went away (`| head -1`):
//! the output ends quietly, with success, as it does for `tix`.

use std::process::{Command, Stdio};

/// Runs `tix-bus ARGS` with stdout a pipe whose read end is already closed; its exit code
/// and stderr.
fn into_a_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tix-bus"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stderr) = into_a_closed_pipe(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        assert_eq!(stderr, "", "{shell}");
    }
}

#[test]
fn the_manual_page_into_a_closed_pipe_ends_quietly() {
    let (code, stderr) = into_a_closed_pipe(&["man"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");
}
