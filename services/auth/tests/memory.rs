//! Auth's memory stays bounded whatever the burst of sign-ups and sign-ins: argon2's
//! 19 MiB per hash lives in one reused buffer per hashing thread (src/hashing.rs). Before,
//! 40 concurrent sign-ups left the process at 748 MB resident, never returned.

use std::time::Duration;

use serde_json::json;
use tix_testkit::Stack;

/// Peak resident memory (`VmHWM`) of a process, in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_sign_ups_and_sign_ins_leave_memory_bounded() {
    // Limits out of the way: every request of the burst is hashed (none is refused before
    // it reaches argon2), and up to 200 wait for a core at once.
    let mut stack = Stack::start_with_env(
        &["auth"],
        &[
            ("TIX_SIGNUP_PER_ADDRESS", "10000/100000"),
            ("TIX_SIGNUP_GLOBAL", "10000/100000"),
            ("TIX_SIGNIN_PER_ADDRESS", "10000/100000"),
            ("TIX_SIGNIN_GLOBAL", "10000/100000"),
            ("TIX_HASH_QUEUE", "200"),
        ],
    );
    let url = stack.url("auth");
    let pid = stack.service("auth").proc.pid();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let idle = peak_mib(pid);

    for round in 0..3 {
        // Sign-ups (a hash each), then sign-ins of the same accounts and of unknown ones
        // (a check each), all at once.
        let ups = (0..40).map(|i| {
            let (http, url) = (&http, &url);
            async move {
                http.post(format!("{url}/api/users/signup"))
                    .json(
                        &json!({"email": format!("u{round}-{i}@x.io"), "password": "password-123"}),
                    )
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        });
        let statuses = futures::future::join_all(ups).await;
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
        let ins = (0..40).map(|i| {
            let (http, url) = (&http, &url);
            let email = if i % 2 == 0 {
                format!("u{round}-{i}@x.io")
            } else {
                format!("nobody-{round}-{i}@x.io")
            };
            async move {
                http.post(format!("{url}/api/users/signin"))
                    .json(&json!({"email": email, "password": "password-123"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        });
        let statuses = futures::future::join_all(ins).await;
        for (i, s) in statuses.iter().enumerate() {
            let expected = if i % 2 == 0 { 200 } else { 400 };
            assert_eq!(*s, expected, "sign-in {i} of round {round}");
        }
    }
    // 240 argon2 computations, 40 at a time: one 19 MiB buffer per hashing thread (one
    // per core) and the process's own ~10 MiB. A generous bound, far below the 748 MB of
    // one allocation per blocking-pool thread.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let peak = peak_mib(pid);
    let bound = 40 + 24 * cores;
    eprintln!("auth: idle {idle} MiB, peak {peak} MiB after 240 argon2 computations");
    assert!(
        peak <= bound,
        "auth peaked at {peak} MiB after the bursts (idle {idle} MiB, bound {bound} MiB for {cores} cores)"
    );
}
