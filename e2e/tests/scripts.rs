//! `scripts/stack` and `scripts/smoke`, as a newcomer runs them: a whole stack on
//! non-default ports, a purchase through the CLI, a process killed and started again by its
//! supervisor, a second stack refused on taken ports, and nothing left running afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The processes of a stack, as `scripts/stack` names them.
const PROCESSES: [&str; 7] = [
    "bus",
    "auth",
    "tickets",
    "orders",
    "payments",
    "expiration",
    "gateway",
];

/// One stack at a time: each is seven processes and their supervisors, on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repo root")
        .to_path_buf()
}

/// A base port with the eight ports above it free (gateway … bus, bus metrics).
fn free_base() -> u16 {
    for _ in 0..50 {
        let base = tix_testkit::free_port();
        if base > 60_000 {
            continue;
        }
        if (0..8).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of ports");
}

fn log(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether a process runs (a zombie, dead but not yet reaped by init, does not).
fn alive(pid: &str) -> bool {
    Command::new("ps")
        .args(["-o", "stat=", "-p", pid])
        .output()
        .map(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().starts_with('Z'))
        .unwrap_or(false)
}

/// A stack in its own data dir; dropping it runs `scripts/stack down`, so a failing test
/// leaves nothing running.
struct Stack {
    data: tempfile::TempDir,
    base: u16,
    env: Vec<(String, String)>,
}

impl Stack {
    fn new() -> Stack {
        Stack::on(free_base())
    }

    fn on(base: u16) -> Stack {
        Stack {
            data: tempfile::tempdir().unwrap(),
            base,
            env: Vec::new(),
        }
    }

    fn with_env(mut self, key: &str, value: &str) -> Stack {
        self.env.push((key.into(), value.into()));
        self
    }

    fn dir(&self) -> PathBuf {
        // As the script spells it: absolute, without symlinks.
        self.data.path().canonicalize().unwrap()
    }

    fn script(&self, name: &str, args: &[&str]) -> Output {
        Command::new(repo().join("scripts").join(name))
            .args(args)
            .env("TIX_DATA_DIR", self.data.path())
            .env("TIX_PORT_BASE", self.base.to_string())
            .env("TIX_BIN_DIR", tix_testkit::bin_dir())
            .env_remove("TIX_API")
            .env_remove("TIX_CONFIG_DIR")
            .env_remove("TIX_STACK_SKIP_PORT_CHECK")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("running a script")
    }

    fn stack(&self, args: &[&str]) -> Output {
        self.script("stack", args)
    }

    fn up(&self, args: &[&str]) {
        let mut all = vec!["up"];
        all.extend_from_slice(args);
        let up = self.stack(&all);
        assert!(up.status.success(), "{}", log(&up));
    }

    /// What `run/<file>` holds (a pid), if it is there.
    fn run_file(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir().join("run").join(file))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn pid(&self, name: &str) -> String {
        self.run_file(&format!("{name}.pid"))
            .unwrap_or_else(|| panic!("no pid file for {name}"))
    }

    fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// `status`'s line for a process: (state, restarts).
    fn status_of(&self, name: &str) -> (String, String) {
        let out = self.stack(&["status"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in: {text}"))
            .to_string();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[2] == "not" {
            ("not ready".into(), fields[4].into())
        } else {
            (fields[2].into(), fields[3].into())
        }
    }

    /// Every process still running that was started for this stack's data dir (`up`
    /// exports TIX_DATA_DIR to the supervisors and everything they start).
    fn processes(&self) -> Vec<String> {
        let wanted = format!("TIX_DATA_DIR={}", self.dir().display());
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
                let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                // A zombie has no command line: it runs nothing.
                if !cmd.trim().is_empty() {
                    found.push(format!("{name}: {cmd}"));
                }
            }
        }
        found
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stack(&["down"]);
    }
}

fn eventually(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_scripts_run_a_stack_on_other_ports_pass_the_smoke_test_and_clean_up() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::new();
    let up = stack.stack(&["up", "--seed"]);
    assert!(up.status.success(), "{}", log(&up));
    assert!(
        log(&up).contains(&format!("http://127.0.0.1:{}", stack.base)),
        "{}",
        log(&up)
    );
    let pids: Vec<String> = PROCESSES.iter().map(|p| stack.pid(p)).collect();
    let supervisors: Vec<String> = PROCESSES
        .iter()
        .map(|p| {
            stack
                .run_file(&format!("{p}.supervisor.pid"))
                .unwrap_or_else(|| panic!("no supervisor pid file for {p}"))
        })
        .collect();
    for pid in pids.iter().chain(&supervisors) {
        assert!(alive(pid), "{pid} is not running");
    }

    let status = stack.stack(&["status"]);
    assert!(status.status.success(), "{}", log(&status));
    for name in PROCESSES {
        let (state, restarts) = stack.status_of(name);
        assert!(
            state == "ready" || state == "up",
            "{name}: {}",
            log(&status)
        );
        assert_eq!(restarts, "0", "{name}: {}", log(&status));
    }
    let smoke = stack.script("smoke", &[]);
    assert!(smoke.status.success(), "{}", log(&smoke));
    assert!(log(&smoke).contains("OK"));

    // `logs orders`: the end of orders' own log, as it is.
    let logs = stack.stack(&["logs", "orders", "-n", "5"]);
    assert!(logs.status.success(), "{}", log(&logs));
    let printed = String::from_utf8_lossy(&logs.stdout).to_string();
    let file = stack.log_of("orders");
    assert!(!printed.trim().is_empty(), "logs orders printed nothing");
    assert!(printed.lines().count() <= 5, "{printed}");
    for line in printed.lines() {
        assert!(file.contains(line), "not in orders.log: {line}");
    }
    // `logs`: every process, each line prefixed with its name.
    let all = stack.stack(&["logs", "-n", "3"]);
    assert!(all.status.success(), "{}", log(&all));
    let all = String::from_utf8_lossy(&all.stdout).to_string();
    for name in PROCESSES {
        assert!(
            all.lines().any(|l| l.starts_with(&format!("{name} "))),
            "no {name} lines in: {all}"
        );
    }

    let down = stack.stack(&["down"]);
    assert!(down.status.success(), "{}", log(&down));
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<&String> = pids
        .iter()
        .chain(&supervisors)
        .filter(|p| alive(p))
        .collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert_eq!(stack.processes(), Vec::<String>::new(), "left running");
    let status = stack.stack(&["status"]);
    assert_eq!(status.status.code(), Some(1), "status says it is down");
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .lines()
            .skip(1)
            .all(|l| l.split_whitespace().nth(2) == Some("down")),
        "{}",
        log(&status)
    );
}

#[test]
fn a_killed_service_is_started_again_by_its_supervisor_and_purchases_still_complete() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::new();
    stack.up(&[]);
    let old = stack.pid("orders");
    let supervisor = stack.run_file("orders.supervisor.pid").unwrap();
    let killed = Command::new("kill").args(["-9", &old]).status().unwrap();
    assert!(killed.success());

    // A new process under the same supervisor, ready, and counted.
    eventually("orders has a new pid", Duration::from_secs(20), || {
        stack
            .run_file("orders.pid")
            .is_some_and(|p| p != old && alive(&p))
    });
    let new = stack.pid("orders");
    eventually(
        "status shows orders ready again",
        Duration::from_secs(30),
        || {
            let (state, _) = stack.status_of("orders");
            state == "ready" || state == "up"
        },
    );
    let (_, restarts) = stack.status_of("orders");
    assert_eq!(restarts, "1");
    assert!(!alive(&old));
    assert_eq!(stack.run_file("orders.supervisor.pid").unwrap(), supervisor);
    for name in [
        "bus",
        "auth",
        "tickets",
        "payments",
        "expiration",
        "gateway",
    ] {
        assert_eq!(stack.status_of(name).1, "0", "{name} was not restarted");
    }

    // Why, when and what next: in orders' log and in the supervisor's.
    let why = format!("orders (pid {old}) was killed by SIGKILL (signal 9)");
    for file in ["orders", "supervisor"] {
        let text = stack.log_of(file);
        assert!(text.contains(&why), "{file}.log lacks {why:?}:\n{text}");
        assert!(
            text.contains("starting it again in 0.5s (restart 1)"),
            "{text}"
        );
        assert!(
            text.contains(&format!("orders started again (pid {new}, restart 1)")),
            "{text}"
        );
    }

    let smoke = stack.script("smoke", &[]);
    assert!(smoke.status.success(), "{}", log(&smoke));
    assert!(log(&smoke).contains("OK"));
    assert_eq!(stack.pid("orders"), new, "orders did not die again");

    // `down` stops supervisors first: nothing comes back.
    let down = stack.stack(&["down"]);
    assert!(down.status.success(), "{}", log(&down));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stack.processes(), Vec::<String>::new(), "left running");
}

#[test]
fn a_second_stack_on_taken_ports_fails_naming_the_port_and_leaves_the_first_alone() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let first = Stack::new();
    first.up(&[]);
    let pids: Vec<String> = PROCESSES.iter().map(|p| first.pid(p)).collect();

    // Every port taken: refused before anything starts, naming the first taken port (the
    // bus's) and who holds it.
    let second = Stack::on(first.base);
    let up = second.stack(&["up"]);
    assert_eq!(up.status.code(), Some(1), "{}", log(&up));
    let err = String::from_utf8_lossy(&up.stderr).to_string();
    let bus_port = first.base + 6;
    assert!(
        err.contains(&format!("port {bus_port} is already in use")),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", pids[0])), "{err}");
    assert!(!log(&up).contains("All up"), "{}", log(&up));
    assert_eq!(second.processes(), Vec::<String>::new());

    // One port taken, and the check before starting skipped: orders cannot listen, and
    // `up` sees that orders' port is answered by (or held by) another process.
    let orders_port = (first.base + 3).to_string();
    let third = Stack::new()
        .with_env("TIX_ORDERS_PORT", &orders_port)
        .with_env("TIX_STACK_SKIP_PORT_CHECK", "1");
    let up = third.stack(&["up"]);
    assert_eq!(up.status.code(), Some(1), "{}", log(&up));
    let err = String::from_utf8_lossy(&up.stderr).to_string();
    assert!(
        err.contains(&format!(
            "orders did not start: port {orders_port} is held by another process"
        )),
        "{err}"
    );
    assert!(!log(&up).contains("All up"), "{}", log(&up));
    // It stopped what it had started.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(third.processes(), Vec::<String>::new(), "left running");

    // The first stack: the same processes, all healthy.
    let now: Vec<String> = PROCESSES.iter().map(|p| first.pid(p)).collect();
    assert_eq!(now, pids);
    let status = first.stack(&["status"]);
    assert!(status.status.success(), "{}", log(&status));
    let smoke = first.script("smoke", &[]);
    assert!(smoke.status.success(), "{}", log(&smoke));
}
