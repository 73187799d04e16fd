//! What a process leaves on disk and where it takes its secrets from, as an operator who
//! starts it by hand would see it: data directories 0700 and databases 0600 whatever the
//! umask, and secrets only from the environment or a file (never a flag, which `ps` shows).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tix_testkit::{Api, Proc, TEST_JWT_SECRET, User, bin, free_port};

/// The variables secrets come from: a spawned process gets none of them from the test's
/// own environment, only those the test passes.
const SECRET_VARS: [&str; 4] = [
    "TIX_JWT_SECRET",
    "TIX_JWT_SECRET_FILE",
    "TIX_STRIPE_SECRET_KEY",
    "TIX_STRIPE_SECRET_KEY_FILE",
];

/// Starts `name` with this umask — `sh -c SCRIPT <program> <args>…` — and waits until it
/// listens; the process and the address it printed. The script first creates `probe`, to
/// show that the umask was in force.
fn spawn(
    name: &str,
    umask: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    logs: &Path,
    probe: &Path,
) -> (Proc, String) {
    let unset: Vec<&str> = SECRET_VARS
        .into_iter()
        .filter(|v| !envs.iter().any(|(k, _)| k == v))
        .collect();
    let script = format!(
        "umask {umask} && : > \"$TIX_UMASK_PROBE\" && unset {} && exec \"$0\" \"$@\"",
        unset.join(" ")
    );
    let program = bin(name);
    let program = program.to_str().expect("a UTF-8 path");
    let mut argv = vec!["-c", script.as_str(), program];
    argv.extend_from_slice(args);
    let probe = probe.to_str().expect("a UTF-8 path");
    let mut all_envs = vec![("TIX_UMASK_PROBE", probe)];
    all_envs.extend_from_slice(envs);
    let mut proc = Proc::spawn_env(name, Path::new("/bin/sh"), &argv, &all_envs, logs);
    let line = proc.wait_for_line("listening on", Duration::from_secs(30));
    let address = line.rsplit(' ').next().unwrap_or_default().to_string();
    (proc, address)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The modes of a data dir, of the parent it had to create, and of a database's files.
fn assert_private(made: &Path, data: &Path, db: &str) {
    assert_eq!(mode(made), 0o700, "{}", made.display());
    assert_eq!(mode(data), 0o700, "{}", data.display());
    for suffix in ["", "-wal", "-shm"] {
        let file = data.join(format!("{db}{suffix}"));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

const UMASKS: [(&str, u32); 2] = [("022", 0o644), ("000", 0o666)];

#[test]
fn a_service_keeps_its_data_dir_and_database_private_whatever_the_umask() {
    for (umask, probe_mode) in UMASKS {
        let tmp = tempfile::tempdir().unwrap();
        let made = tmp.path().join("var");
        let data = made.join("tix");
        let probe = tmp.path().join("probe");
        let bus = format!("tcp://127.0.0.1:{}", free_port());
        let data_str = data.to_str().unwrap();
        let (_tickets, _) = spawn(
            "tix-tickets",
            umask,
            &["--port", "0"],
            &[
                ("TIX_JWT_SECRET", TEST_JWT_SECRET),
                ("TIX_DATA_DIR", data_str),
                ("TIX_BUS_URL", &bus),
            ],
            &tmp.path().join("logs"),
            &probe,
        );
        assert_eq!(mode(&probe), probe_mode, "umask {umask} was in force");
        assert_private(&made, &data, "tickets.db");
    }
}

#[test]
fn the_broker_keeps_its_data_dir_and_bus_db_private_whatever_the_umask() {
    for (umask, probe_mode) in UMASKS {
        let tmp = tempfile::tempdir().unwrap();
        let made = tmp.path().join("var");
        let data = made.join("bus");
        let probe = tmp.path().join("probe");
        // Its keys and policy first, made under the same umask, as an operator would.
        let init = Command::new("/bin/sh")
            .args(["-c", &format!("umask {umask} && exec \"$0\" \"$@\"")])
            .arg(bin("tix-bus"))
            .args(["init-policy", "--data-dir", data.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        let (_bus, _) = spawn(
            "tix-bus",
            umask,
            &[
                "--bind",
                "tcp://127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
            &tmp.path().join("logs"),
            &probe,
        );
        assert_eq!(mode(&probe), probe_mode, "umask {umask} was in force");
        assert_private(&made, &data, "bus.db");
        assert_eq!(mode(&data.join("keys")), 0o700);
        assert_eq!(mode(&data.join("keys/orders.key")), 0o600);
        assert_eq!(mode(&data.join("bus-policy.toml")), 0o600);
    }
}

#[test]
fn an_existing_shared_data_dir_is_left_alone_but_a_loose_database_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shared");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // As a version without these rules left it: the umask's 0644.
    let db = data.join("tickets.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bus = format!("tcp://127.0.0.1:{}", free_port());
    let logs = tmp.path().join("logs");
    let (tickets, _) = spawn(
        "tix-tickets",
        "022",
        &["--port", "0", "--data-dir", data.to_str().unwrap()],
        &[("TIX_JWT_SECRET", TEST_JWT_SECRET), ("TIX_BUS_URL", &bus)],
        &logs,
        &tmp.path().join("probe"),
    );
    assert_eq!(
        mode(&data),
        0o755,
        "a directory that existed is not chmodded"
    );
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(&data.join(format!("tickets.db{suffix}"))), 0o600);
    }
    drop(tickets);
    let log = std::fs::read_to_string(logs.join("tix-tickets.log")).unwrap();
    assert!(
        log.contains("the data directory is open to its group or others"),
        "{log}"
    );
}

/// Runs a program that must not start (with `envs` and none of the secrets' variables of
/// the test's own environment): its exit code, stdout and stderr.
fn refused(name: &str, args: &[&str], envs: &[(&str, &str)], data: &Path) -> (i32, String, String) {
    let bus = format!("tcp://127.0.0.1:{}", free_port());
    let mut command = Command::new(bin(name));
    for var in SECRET_VARS {
        command.env_remove(var);
    }
    let child = command
        .args(args)
        .env("TIX_DATA_DIR", data)
        .env("TIX_BUS_URL", &bus)
        .env("TIX_PAYMENT_PROVIDER", "stripe")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_deadline(child, name);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_with_deadline(mut child: std::process::Child, name: &str) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} kept running: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_secret_given_as_a_flag_is_refused_with_what_to_use_instead() {
    let secret = "flag-secret-0123456789abcdef-0123456789abcdef";
    let cases: [(&str, &[&str], &str, &str); 4] = [
        (
            "tix-tickets",
            &["--port", "0", "--jwt-secret", secret],
            "--jwt-secret",
            "TIX_JWT_SECRET",
        ),
        (
            "tix-tickets",
            &["--port", "0", &format!("--jwt-secret={secret}")],
            "--jwt-secret",
            "TIX_JWT_SECRET",
        ),
        // Expiration signs nothing, and is told all the same.
        (
            "tix-expiration",
            &["--port", "0", "--jwt-secret", secret],
            "--jwt-secret",
            "TIX_JWT_SECRET",
        ),
        (
            "tix-payments",
            &["--port", "0", "--stripe-secret-key", secret],
            "--stripe-secret-key",
            "TIX_STRIPE_SECRET_KEY",
        ),
    ];
    for (name, args, flag, env) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (code, stdout, stderr) = refused(name, args, &[], &data);
        let what = format!("{name} {args:?}: exit {code}, stderr:\n{stderr}");
        assert_eq!(code, 2, "{what}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {what}");
        assert!(
            stderr.contains(&format!("{flag} is refused"))
                && stderr.contains("(ps)")
                && stderr.contains(env)
                && stderr.contains(&format!("{flag}-file")),
            "{what}"
        );
        assert!(
            !stderr.contains(secret),
            "the secret is not repeated: {what}"
        );
        assert!(!stdout.contains("listening"), "{what}");
        assert!(!data.exists(), "nothing was opened: {what}");
    }
}

fn secret_file(dir: &Path, contents: &str) -> PathBuf {
    let file = dir.join("jwt-secret");
    std::fs::write(&file, contents).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwt_secret_comes_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = secret_file(tmp.path(), &format!("{TEST_JWT_SECRET}\n"));
    let file_str = file.to_str().unwrap();
    let bus = format!("tcp://127.0.0.1:{}", free_port());
    let data = tmp.path().join("data");
    let data_str = data.to_str().unwrap();
    let logs = tmp.path().join("logs");
    let probe = tmp.path().join("probe");
    let body = json!({ "title": "Jazz", "price": 25 });
    let env = [("TIX_DATA_DIR", data_str), ("TIX_BUS_URL", bus.as_str())];
    // The flag, then its environment twin.
    let by_flag = ["--port", "0", "--jwt-secret-file", file_str];
    let by_env = [("TIX_JWT_SECRET_FILE", file_str), env[0], env[1]];
    for (args, envs) in [
        (&by_flag[..], &env[..]),
        (&["--port", "0"][..], &by_env[..]),
    ] {
        let (tickets, url) = spawn("tix-tickets", "022", args, envs, &logs, &probe);
        let api = Api::at(&url);
        let seller = User::new("alice");
        let (status, answer) = api
            .call("POST", "/api/tickets", Some(&seller), Some(body.clone()))
            .await;
        assert_eq!(
            status, 201,
            "a token signed with the file's secret: {answer}"
        );
        let mut forged = seller.clone();
        forged.token.push('x');
        let (status, _) = api
            .call("POST", "/api/tickets", Some(&forged), Some(body.clone()))
            .await;
        assert_eq!(status, 401);
        drop(tickets);
    }

    // Given twice, or an empty file: it does not start, and says why.
    let cases: [(&[(&str, &str)], &str); 2] = [
        (&[("TIX_JWT_SECRET", TEST_JWT_SECRET)], "given twice"),
        (&[], "empty"),
    ];
    for (i, (envs, why)) in cases.into_iter().enumerate() {
        if i == 1 {
            secret_file(tmp.path(), "\n");
        }
        let fresh = tmp.path().join(format!("refused-{i}"));
        let (code, _, stderr) = refused("tix-tickets", &by_flag, envs, &fresh);
        assert!(code != 0 && stderr.contains(why), "exit {code}: {stderr}");
        assert!(!stderr.contains(TEST_JWT_SECRET), "{stderr}");
    }
}
