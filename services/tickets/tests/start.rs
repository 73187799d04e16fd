//! A service that cannot start says why in one line and exits non-zero: no backtrace even
//! when `RUST_BACKTRACE` asks for one, no colour codes in what goes to a file or a pipe.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tix_testkit::{TEST_JWT_SECRET, bin, free_port};

#[test]
fn a_port_in_use_is_one_clear_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    // Someone else holds the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut child = Command::new(bin("tix-tickets"))
        .args(["--port", &port])
        .env("TIX_JWT_SECRET", TEST_JWT_SECRET)
        .env("TIX_DATA_DIR", dir.path())
        .env("TIX_BUS_URL", format!("tcp://127.0.0.1:{}", free_port()))
        .env("TIX_BUS_KEY", "00".repeat(32))
        .env("RUST_BACKTRACE", "full")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tix-tickets kept running on a taken port"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("tix-tickets: ") && last.contains(&port) && last.contains("in use"),
        "{stderr}"
    );
    for noise in ["backtrace", "Backtrace", "Error: ", "\u{1b}["] {
        assert!(!stderr.contains(noise), "{noise:?} in {stderr}");
    }
}

/// `--workers` (`TIX_WORKERS`) sizes the runtime, as the service says when it starts
/// serving; 0 is refused before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_has_the_workers_asked_for_and_none_is_refused() {
    let out = Command::new(bin("tix-tickets"))
        .args(["--workers", "0", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--workers"), "{stderr}");

    for workers in ["1", "2"] {
        let mut stack = tix_testkit::Stack::start_with_env(
            &["tickets"],
            &[("TIX_WORKERS", workers), ("TIX_LOG", "info")],
        );
        let r = reqwest::get(format!("{}/api/tickets", stack.url("tickets")))
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let tickets = stack.service("tickets");
        let said = format!("workers={workers}");
        tix_testkit::eventually(
            "the service says how many workers it runs",
            Duration::from_secs(10),
            || {
                let found = tickets.proc.log_tail().contains(&said);
                async move { found }
            },
        )
        .await;
    }
}
