//! The broker and the services as processes: each on a free port, sharing one temporary
//! data dir, torn down (SIGKILL) when the handle drops.
//!
//! Authentication is on, as in production: the broker's data dir gets keys and a policy
//! from `tix-bus init-policy` (each service with its production rights), plus the client
//! [`TEST_BUS_CLIENT`], which may do anything and publish as any producer, for the tests'
//! own bus clients. Each service started here gets its own key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{Proc, bin, free_port};

/// The bus client the tests' own connections authenticate as: every right, any producer.
pub const TEST_BUS_CLIENT: &str = "test";
/// Its key (hex), the same in every test broker's policy.
pub const TEST_BUS_KEY: &str = "7465737420627573206b6579206e6f7420666f722070726f64756374696f6e21";

/// Endpoints of the brokers this process started with `--insecure-no-auth`, so the tests'
/// clients connect to them without a key (a client with one refuses such a broker).
static INSECURE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Whether the broker at `endpoint` was started here with `--insecure-no-auth`.
pub fn is_insecure(endpoint: &str) -> bool {
    INSECURE
        .lock()
        .map(|l| l.iter().any(|e| e == endpoint))
        .unwrap_or(false)
}

/// A `tix-bus` broker process with its data dir.
#[derive(Debug)]
pub struct Bus {
    pub proc: Proc,
    /// `tcp://127.0.0.1:<port>`.
    pub endpoint: String,
    /// `http://127.0.0.1:<port>` of `/metrics` and `/healthz`, when started with
    /// `--metrics-addr`.
    pub metrics: Option<String>,
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
        // Port 0: the broker binds whatever the kernel gives it and says which. A port
        // found free first and bound later can be taken by another test in between.
        let mut bus = Self::start_in(tmp.path(), 0, extra);
        bus._tmp = Some(tmp);
        bus
    }

    /// A broker on `port` (0: any free one) using `data_dir` (which the caller keeps).
    /// Unless `extra` has `--insecure-no-auth`, the data dir gets keys and a policy first,
    /// when it has none.
    pub fn start_in(data_dir: &Path, port: u16, extra: &[&str]) -> Bus {
        if !extra.contains(&"--insecure-no-auth") {
            init_policy(data_dir);
        }
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
        // Printed right after the endpoint when the broker serves metrics.
        let metrics = extra.contains(&"--metrics-addr").then(|| {
            let line = proc.wait_for_line("tix-bus metrics on ", Duration::from_secs(20));
            line.strip_prefix("tix-bus metrics on ")
                .expect("the line is exactly the documented one")
                .to_string()
        });
        if let Ok(mut insecure) = INSECURE.lock() {
            insecure.retain(|e| e != &endpoint);
            if extra.contains(&"--insecure-no-auth") {
                insecure.push(endpoint.clone());
            }
        }
        Bus {
            proc,
            endpoint,
            metrics,
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

    /// The file holding `client`'s key (`keys/<client>.key` in the data dir).
    pub fn key_file(&self, client: &str) -> PathBuf {
        key_file(&self.data_dir, client)
    }

    /// `client`'s key, hex.
    pub fn key(&self, client: &str) -> String {
        if client == TEST_BUS_CLIENT {
            return TEST_BUS_KEY.to_string();
        }
        let file = self.key_file(client);
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
            .trim()
            .to_string()
    }

    /// Runs `tix-bus <args> --endpoint <this broker>` as an operator types it: the operator's
    /// key is found in the broker's data dir.
    pub fn operator(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(bin("tix-bus"))
            .args(args)
            .args(["--endpoint", &self.endpoint])
            .env("TIX_DATA_DIR", &self.data_dir)
            .output()
            .expect("running tix-bus")
    }

    /// The broker's policy file.
    pub fn policy_file(&self) -> PathBuf {
        self.data_dir.join("bus-policy.toml")
    }

    /// kill -9 the broker, then start a new one on the same port and data dir (serving
    /// metrics only when `extra` says where: `metrics` follows).
    pub fn crash_and_restart(&mut self, extra: &[&str]) {
        self.proc.kill9();
        let tmp = self._tmp.take();
        let next = Bus::start_in(&self.data_dir, self.port(), extra);
        self.proc = next.proc;
        self.metrics = next.metrics;
        self._tmp = tmp;
    }
}

fn key_file(data_dir: &Path, client: &str) -> PathBuf {
    data_dir.join("keys").join(format!("{client}.key"))
}

/// Keys and a policy for every tix client and [`TEST_BUS_CLIENT`], once per data dir.
fn init_policy(data_dir: &Path) {
    let policy = data_dir.join("bus-policy.toml");
    if policy.exists() {
        return;
    }
    let dir = data_dir.to_string_lossy().into_owned();
    let out = std::process::Command::new(bin("tix-bus"))
        .args(["init-policy", "--data-dir", &dir])
        .output()
        .expect("running tix-bus init-policy");
    assert!(
        out.status.success(),
        "tix-bus init-policy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let test_client = format!(
        "\n[clients.{TEST_BUS_CLIENT}]\nkey = \"{TEST_BUS_KEY}\"\npublish = [\"*\"]\n\
         consume = [\"*\"]\ngroups = [\"*\"]\nproducers = [\"*\"]\noperator = true\n"
    );
    let mut text = std::fs::read_to_string(&policy).expect("reading the policy");
    text.push_str(&test_client);
    std::fs::write(&policy, text).expect("writing the policy");
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
    /// The broker's metrics port: `http://127.0.0.1:<port>` (`/metrics`, `/healthz`).
    pub bus_metrics: String,
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
        // The broker's metrics port, as scripts/stack runs it: the operations screen and
        // the metrics tests read it. Both ports are the kernel's choice (see `start_with`).
        let bus = Bus::start_in(&data_dir, 0, &["--metrics-addr", "127.0.0.1:0"]);
        let bus_metrics = bus.metrics.clone().expect("started with --metrics-addr");
        let mut envs: Vec<(String, String)> = vec![
            ("TIX_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            (
                "TIX_DATA_DIR".into(),
                data_dir.to_string_lossy().into_owned(),
            ),
            ("TIX_BUS_URL".into(), bus.endpoint.clone()),
            ("TIX_DB_DURABILITY".into(), "normal".into()),
            // The gateway runs on 127.0.0.1: auth believes its X-Forwarded-For, as in
            // scripts/stack. Tests that call auth directly come from other addresses.
            ("TIX_TRUSTED_PROXIES".into(), "127.0.0.1".into()),
        ];
        envs.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut stack = Stack {
            bus,
            bus_metrics,
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
        let key_file = self.bus.key_file(name).to_string_lossy().into_owned();
        let mut envs = self.env_refs();
        if !envs.iter().any(|(k, _)| k.starts_with("TIX_BUS_KEY")) {
            envs.push(("TIX_BUS_KEY_FILE", &key_file));
        }
        let svc = Service::spawn(
            &format!("tix-{name}"),
            vec!["--port".into(), port.to_string()],
            &envs,
            &self.data_dir,
        );
        self.services.retain(|(n, _)| n != name);
        self.services.push((name.to_string(), svc));
    }

    fn start_gateway(&mut self, port: u16) {
        let mut args = vec!["--port".to_string(), port.to_string()];
        // Expiration serves no routes, but its health is the gateway's too.
        for name in SERVICES.iter().chain(&["expiration"]) {
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

    /// Sets (or replaces) an environment variable for the services started from now on,
    /// e.g. before a [`Stack::restart`].
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.to_string(), value.to_string()));
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

/// Every process of tix, the gateway last.
pub const ALL: [&str; 6] = [
    "auth",
    "tickets",
    "orders",
    "expiration",
    "payments",
    "gateway",
];
