//! Starts the real tix processes for tests: each on a free port, with its own temporary
//! data dir, logs kept in that dir, and torn down (SIGKILL) when the handle drops.
//!
//! Binaries are found next to the test executable (`target/<profile>/`), which is where
//! `cargo test --workspace` builds them; `TIX_BIN_DIR` overrides that.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the workspace's binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TIX_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>; a binary in target/<profile>
    // (a bench tool) finds its siblings where it is.
    let exe = std::env::current_exe().expect("the executable has a path");
    let dir = exe.parent().expect("exe has a parent");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary, failing the test with a hint when it is not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
    stdout: Option<mpsc::Receiver<String>>,
}

impl Proc {
    /// Spawns `bin` with `args`; stderr goes to `<log_dir>/<name>.log`, stdout lines are
    /// readable with [`Proc::next_line`].
    pub fn spawn(name: &str, bin: &Path, args: &[&str], log_dir: &Path) -> Proc {
        Self::spawn_env(name, bin, args, &[], log_dir)
    }

    /// Like [`Proc::spawn`], with extra environment variables (secrets go here, not in
    /// arguments that `ps` shows).
    pub fn spawn_env(
        name: &str,
        bin: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        log_dir: &Path,
    ) -> Proc {
        std::fs::create_dir_all(log_dir).expect("creating the log dir");
        let log = log_dir.join(format!("{name}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("opening the log");
        let mut child = Command::new(bin)
            .args(args)
            .env("TIX_LOG", "info,tix_bus=debug")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            log,
            stdout: Some(rx),
        }
    }

    /// The next line the process printed, or `None` after `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.stdout.as_ref()?.recv_timeout(timeout).ok()
    }

    /// Waits for a stdout line containing `needle`, panicking with the log after `timeout`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(l) if l.contains(needle) => return l,
                Some(_) => {}
                None => {
                    let state = match self.child.try_wait() {
                        Ok(Some(status)) => format!("exited ({status}) before printing"),
                        _ => format!("did not print within {timeout:?}"),
                    };
                    panic!(
                        "{} {state} {needle:?}; is the binary current (`cargo build --bins`)? its log:\n{}",
                        self.name,
                        self.log_tail()
                    )
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`, …).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// SIGTERM, then waits for the exit; returns whether it exited by itself in time.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        self.signal("TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        false
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly on some systems.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tix-bus` broker process with its data dir.
#[derive(Debug)]
pub struct Bus {
    pub proc: Proc,
    /// `tcp://127.0.0.1:<port>`.
    pub endpoint: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Bus {
    /// A broker on a free port with a fresh temporary data dir.
    pub fn start() -> Bus {
        Self::start_with(&[])
    }

    /// Like [`Bus::start`], with extra flags.
    pub fn start_with(extra: &[&str]) -> Bus {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut bus = Self::start_in(tmp.path(), free_port(), extra);
        bus._tmp = Some(tmp);
        bus
    }

    /// A broker on `port` using `data_dir` (which the caller keeps).
    pub fn start_in(data_dir: &Path, port: u16, extra: &[&str]) -> Bus {
        let bind = format!("tcp://127.0.0.1:{port}");
        let dir = data_dir.to_string_lossy().into_owned();
        let mut args = vec!["--bind", &bind, "--data-dir", &dir];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn("tix-bus", &bin("tix-bus"), &args, data_dir);
        let line = proc.wait_for_line("listening on", Duration::from_secs(20));
        let endpoint = line
            .rsplit(' ')
            .next()
            .expect("the line ends with the endpoint")
            .to_string();
        Bus {
            proc,
            endpoint,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("endpoint has a port")
    }

    /// kill -9 the broker, then start a new one on the same port and data dir.
    pub fn crash_and_restart(&mut self, extra: &[&str]) {
        self.proc.kill9();
        let tmp = self._tmp.take();
        let next = Bus::start_in(&self.data_dir, self.port(), extra);
        self.proc = next.proc;
        self._tmp = tmp;
    }
}

/// The JWT secret test stacks share, so tests can mint and check tokens.
pub const TEST_JWT_SECRET: &str = "tix-test-secret-not-for-production-0123456789";

/// An HTTP service process (`tix-auth`, `tix-tickets`, …) and its base URL.
#[derive(Debug)]
pub struct Service {
    pub proc: Proc,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Service {
    fn spawn(bin: &str, args: Vec<String>, envs: &[(&str, &str)], log_dir: &Path) -> Service {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proc = Proc::spawn_env(bin, &self::bin(bin), &argv, envs, log_dir);
        let line = proc.wait_for_line("listening on", Duration::from_secs(30));
        let url = line
            .rsplit(' ')
            .next()
            .expect("ends with the URL")
            .to_string();
        Service { proc, url }
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }
}

/// The services behind the gateway; a [`Stack`] can also run `"expiration"`.
pub const SERVICES: [&str; 4] = ["auth", "tickets", "orders", "payments"];

/// A broker plus services as separate processes, sharing one temporary data dir.
#[derive(Debug)]
pub struct Stack {
    pub bus: Bus,
    pub data_dir: PathBuf,
    services: Vec<(String, Service)>,
    envs: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
}

impl Stack {
    /// Starts the broker and the named services (`"auth"`, `"tickets"`, …, `"gateway"`),
    /// the gateway last, pointed at the others (a service not started is an address where
    /// nothing listens).
    pub fn start(names: &[&str]) -> Stack {
        Self::start_with_env(names, &[])
    }

    /// Like [`Stack::start`], with extra environment for every service.
    pub fn start_with_env(names: &[&str], extra_env: &[(&str, &str)]) -> Stack {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().to_path_buf();
        let bus = Bus::start_in(&data_dir, free_port(), &[]);
        let mut envs: Vec<(String, String)> = vec![
            ("TIX_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            (
                "TIX_DATA_DIR".into(),
                data_dir.to_string_lossy().into_owned(),
            ),
            ("TIX_BUS_URL".into(), bus.endpoint.clone()),
            ("TIX_DB_DURABILITY".into(), "normal".into()),
        ];
        envs.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut stack = Stack {
            bus,
            data_dir,
            services: Vec::new(),
            envs,
            _tmp: tmp,
        };
        for name in names.iter().filter(|n| **n != "gateway") {
            stack.start_service(name, 0);
        }
        if names.contains(&"gateway") {
            stack.start_gateway(0);
        }
        stack
    }

    fn env_refs(&self) -> Vec<(&str, &str)> {
        self.envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn start_service(&mut self, name: &str, port: u16) {
        let svc = Service::spawn(
            &format!("tix-{name}"),
            vec!["--port".into(), port.to_string()],
            &self.env_refs(),
            &self.data_dir,
        );
        self.services.retain(|(n, _)| n != name);
        self.services.push((name.to_string(), svc));
    }

    fn start_gateway(&mut self, port: u16) {
        let mut args = vec!["--port".to_string(), port.to_string()];
        for name in SERVICES {
            let url = self
                .services
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.url.clone())
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", free_port()));
            args.push(format!("--{name}-url"));
            args.push(url);
        }
        let svc = Service::spawn("tix-gateway", args, &self.env_refs(), &self.data_dir);
        self.services.retain(|(n, _)| n != "gateway");
        self.services.push(("gateway".into(), svc));
    }

    /// The service's process and URL.
    pub fn service(&mut self, name: &str) -> &mut Service {
        &mut self
            .services
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not running in this stack"))
            .1
    }

    pub fn url(&self, name: &str) -> String {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.url.clone())
            .unwrap_or_else(|| panic!("{name} is not running in this stack"))
    }

    /// kill -9 a service.
    pub fn kill(&mut self, name: &str) {
        self.service(name).proc.kill9();
    }

    /// Starts a killed (or running: it is killed first) service again on its port and data.
    pub fn restart(&mut self, name: &str) {
        let port = {
            let s = self.service(name);
            s.proc.kill9();
            s.port()
        };
        if name == "gateway" {
            self.start_gateway(port);
        } else {
            self.start_service(name, port);
        }
    }
}
