//! `scripts/stack` and `scripts/smoke`, as a newcomer runs them: a whole stack on
//! non-default ports, a purchase through the CLI, and nothing left running afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repo root")
        .to_path_buf()
}

/// A base port with the seven ports above it free.
fn free_base() -> u16 {
    for _ in 0..50 {
        let base = tix_testkit::free_port();
        if base > 60_000 {
            continue;
        }
        if (0..7).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of ports");
}

fn script(name: &str, args: &[&str], data: &Path, base: u16) -> std::process::Output {
    Command::new(repo().join("scripts").join(name))
        .args(args)
        .env("TIX_DATA_DIR", data)
        .env("TIX_PORT_BASE", base.to_string())
        .env("TIX_BIN_DIR", tix_testkit::bin_dir())
        .env_remove("TIX_API")
        .env_remove("TIX_CONFIG_DIR")
        .output()
        .expect("running a script")
}

fn alive(pid: &str) -> bool {
    Command::new("ps")
        .args(["-p", pid])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn the_scripts_run_a_stack_on_other_ports_pass_the_smoke_test_and_clean_up() {
    let data = tempfile::tempdir().unwrap();
    let base = free_base();
    let up = script("stack", &["up", "--seed"], data.path(), base);
    let log = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(up.status.success(), "{}", log(&up));
    assert!(
        log(&up).contains(&format!("http://127.0.0.1:{base}")),
        "{}",
        log(&up)
    );
    let pids: Vec<String> = std::fs::read_dir(data.path().join("run"))
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(pids.len(), 7, "the bus and six services");

    let status = script("stack", &["status"], data.path(), base);
    assert!(status.status.success(), "{}", log(&status));
    let smoke = script("smoke", &[], data.path(), base);
    assert!(smoke.status.success(), "{}", log(&smoke));
    assert!(log(&smoke).contains("OK"));

    let down = script("stack", &["down"], data.path(), base);
    assert!(down.status.success(), "{}", log(&down));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let left: Vec<&String> = pids.iter().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    let status = script("stack", &["status"], data.path(), base);
    assert_eq!(status.status.code(), Some(1), "status says it is down");
}
