//! The broker's policy: which clients exist, the key of each, and what each may do
//! (docs/bus.md, "Permissions"). It is a TOML file in the data dir, `bus-policy.toml`,
//! mode 0600 since it holds every key:
//!
//! ```toml
//! [clients.orders]
//! key = "3f1c…"                       # hex, 32 bytes; or keys = ["new…", "old…"] to rotate
//! publish = ["order:created", "order:cancelled", "payment:rejected"]
//! consume = ["ticket:created", "payment:created"]
//! groups = ["orders"]
//!
//! [clients.operator]
//! key = "…"
//! consume = ["*"]
//! groups = ["tail-*"]
//! operator = true                     # STATS, DLQ, REPLAY, DROP, REWIND, DISCARD
//! ```
//! `stats = true` grants `STATS` alone (counters, no payloads): services read their group's
//! dead-letter count with it for `/healthz`.
//! A name in a list is exact, `*` (anything), or ends in `*` (a prefix: `tail-*`). The
//! events a client publishes may name no `producer` but its own, unless its `producers`
//! list says otherwise.
//!
//! Every permission is checked here, in [`Permissions::authorize`], called once per request
//! by the broker's dispatch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use tix_bus_client::protocol::Request;
use tix_bus_client::protocol::auth::BusKey;

/// The file's name in the data dir.
pub const FILE_NAME: &str = "bus-policy.toml";

/// The policy as loaded: one entry per client name.
#[derive(Debug, Default)]
pub struct Policy {
    clients: HashMap<String, Arc<Permissions>>,
}

/// One client's keys and rights.
#[derive(Debug)]
pub struct Permissions {
    pub name: Arc<str>,
    /// One key, or two while it is being replaced.
    pub keys: Vec<BusKey>,
    publish: Patterns,
    consume: Patterns,
    groups: Patterns,
    producers: Patterns,
    stats: bool,
    operator: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    clients: HashMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    key: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    consume: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    producers: Option<Vec<String>>,
    #[serde(default)]
    stats: bool,
    #[serde(default)]
    operator: bool,
}

impl Policy {
    /// Reads the policy file, tightening it to 0600 first (it holds every client's key).
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        tix_files::tighten_private_file(path)
            .with_context(|| format!("reading the bus policy {}", path.display()))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the bus policy {}", path.display()))?;
        Policy::parse(&text).with_context(|| format!("in the bus policy {}", path.display()))
    }

    /// Parses the policy's text; every mistake is an error naming its client.
    pub fn parse(text: &str) -> anyhow::Result<Policy> {
        let file: File = toml::from_str(text)?;
        let mut clients = HashMap::new();
        for (name, e) in file.clients {
            let keys: Vec<BusKey> = e
                .key
                .iter()
                .chain(&e.keys)
                .map(|k| BusKey::from_hex(k))
                .collect::<Result<_, _>>()
                .with_context(|| format!("client {name:?}"))?;
            anyhow::ensure!(!keys.is_empty(), "client {name:?} has no key");
            let producers = e.producers.unwrap_or_else(|| vec![name.clone()]);
            let perms = Permissions {
                name: Arc::from(name.as_str()),
                keys,
                publish: Patterns::new(e.publish),
                consume: Patterns::new(e.consume),
                groups: Patterns::new(e.groups),
                producers: Patterns::new(producers),
                stats: e.stats,
                operator: e.operator,
            };
            clients.insert(name, Arc::new(perms));
        }
        Ok(Policy { clients })
    }

    /// The named client's entry.
    pub fn client(&self, name: &str) -> Option<&Arc<Permissions>> {
        self.clients.get(name)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl Permissions {
    /// Whether this client may make `request`; the refusal says why, for its `ERR`.
    /// The handshake and heartbeats (`HELLO`, `AUTH`, `PING`, `BYE`) are always allowed.
    pub fn authorize(&self, request: &Request) -> Result<(), String> {
        match request {
            Request::Hello(..) | Request::Auth(..) | Request::Ping | Request::Bye => Ok(()),
            Request::Publish(_, events) => {
                for e in events {
                    let subject = String::from_utf8_lossy(&e.subject);
                    if !self.publish.allows(&subject) {
                        return Err(format!(
                            "not allowed: client {} may not publish {subject}",
                            self.name
                        ));
                    }
                    match claimed_producer(&e.payload) {
                        Ok(None) => {}
                        Ok(Some(p)) if self.producers.allows(&p) => {}
                        Ok(Some(p)) => {
                            return Err(format!(
                                "not allowed: client {} may not publish as producer {p:?} (event {})",
                                self.name,
                                String::from_utf8_lossy(&e.id)
                            ));
                        }
                        Err(why) => {
                            return Err(format!(
                                "refused: event {} {why}",
                                String::from_utf8_lossy(&e.id)
                            ));
                        }
                    }
                }
                Ok(())
            }
            Request::Subscribe(_, opts) => {
                self.group(&opts.group)?;
                for s in &opts.subjects {
                    // `*` asks for every subject: only a client allowed every subject gets it.
                    let allowed = if s == "*" {
                        self.consume.everything()
                    } else {
                        self.consume.allows(s)
                    };
                    if !allowed {
                        return Err(format!(
                            "not allowed: client {} may not consume {s}",
                            self.name
                        ));
                    }
                }
                Ok(())
            }
            Request::Unsubscribe(_, group)
            | Request::Ack(_, group, _)
            | Request::Nak(_, group, _)
            | Request::Touch(_, group, _) => self.group(group),
            Request::Stats(_) if self.stats => Ok(()),
            Request::Stats(_)
            | Request::DeadLetters(..)
            | Request::Replay(..)
            | Request::DropGroup(..)
            | Request::Rewind(..)
            | Request::Discard(..) => {
                if self.operator {
                    Ok(())
                } else {
                    Err(format!(
                        "not allowed: client {} may not make operator requests",
                        self.name
                    ))
                }
            }
        }
    }

    fn group(&self, group: &str) -> Result<(), String> {
        if self.groups.allows(group) {
            Ok(())
        } else {
            Err(format!(
                "not allowed: client {} may not use group {group}",
                self.name
            ))
        }
    }
}

/// A client of a tix deployment and its rights, as `tix-bus init-policy` writes them.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub name: &'static str,
    pub publish: &'static [&'static str],
    pub consume: &'static [&'static str],
    pub groups: &'static [&'static str],
    /// `STATS` only: the services count their dead letters for `/healthz`.
    pub stats: bool,
    pub operator: bool,
}

const fn client(
    name: &'static str,
    publish: &'static [&'static str],
    consume: &'static [&'static str],
    groups: &'static [&'static str],
) -> Template {
    Template {
        name,
        publish,
        consume,
        groups,
        stats: true,
        operator: false,
    }
}

/// Every client of a tix deployment. Keep in step with the events table in
/// docs/architecture.md.
pub const TIX_CLIENTS: &[Template] = &[
    client("auth", &["session:revoked"], &[], &[]),
    client(
        "tickets",
        &["ticket:created", "ticket:updated"],
        &["order:created", "order:cancelled", "session:revoked"],
        &["tickets"],
    ),
    client(
        "orders",
        &["order:created", "order:cancelled", "payment:rejected"],
        &[
            "ticket:created",
            "ticket:updated",
            "expiration:complete",
            "payment:created",
            "payment:failed",
            "session:revoked",
        ],
        &["orders"],
    ),
    client(
        "expiration",
        &["expiration:complete"],
        &["order:created", "payment:created"],
        &["expiration"],
    ),
    client(
        "payments",
        &["payment:created", "payment:failed", "payment:refunded"],
        &[
            "order:created",
            "order:cancelled",
            "payment:rejected",
            "session:revoked",
        ],
        &["payments"],
    ),
    // `tix-bus stats|dead-letters|replay|tail`.
    Template {
        operator: true,
        ..client("operator", &[], &["*"], &["tail-*"])
    },
    // `tix events tail`.
    Template {
        stats: false,
        ..client("cli", &[], &["*"], &["tix-tail-*"])
    },
];

/// What [`init`] did.
#[derive(Debug, Default)]
pub struct Init {
    /// Key files written (clients that had none).
    pub new_keys: Vec<PathBuf>,
    /// Whether the policy file was written (it was missing).
    pub wrote_policy: bool,
    pub policy: PathBuf,
}

/// Gives every client of [`TIX_CLIENTS`] a key file in `<data-dir>/keys/` (0600; an
/// existing one is kept) and writes `<data-dir>/bus-policy.toml` (0600) from them when it
/// does not exist. Running it again changes nothing; to rotate a key see
/// docs/operations.md.
pub fn init(data_dir: &Path) -> anyhow::Result<Init> {
    let keys_dir = data_dir.join("keys");
    tix_files::ensure_private_dir(&keys_dir)
        .with_context(|| format!("creating {}", keys_dir.display()))?;
    let mut out = Init {
        policy: data_dir.join(FILE_NAME),
        ..Init::default()
    };
    let mut text = String::from(
        "# tix-bus policy: each client's key (hex) and what it may do. Mode 0600: it holds\n\
         # every key. Written by `tix-bus init-policy`; edit it, then SIGHUP the broker.\n\
         # Format and meaning: docs/bus.md (\"Permissions\").\n",
    );
    for t in TIX_CLIENTS {
        let name = t.name;
        let file = tix_bus_client::key::key_file_in(data_dir, name);
        let key = if file.exists() {
            tix_bus_client::key::read_key_file(&file)?
        } else {
            let key = BusKey::generate();
            write_private(&file, &format!("{}\n", key.to_hex()))?;
            out.new_keys.push(file);
            key
        };
        let list = |l: &[&str]| {
            let quoted: Vec<String> = l.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        text.push_str(&format!(
            "\n[clients.{name}]\nkey = \"{}\"\npublish = {}\nconsume = {}\ngroups = {}\n",
            key.to_hex(),
            list(t.publish),
            list(t.consume),
            list(t.groups),
        ));
        if t.operator {
            text.push_str("operator = true\n");
        } else if t.stats {
            text.push_str("stats = true\n");
        }
    }
    if !out.policy.exists() {
        Policy::parse(&text).context("the generated policy does not parse")?;
        write_private(&out.policy, &text)?;
        out.wrote_policy = true;
    }
    Ok(out)
}

/// Writes a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    tix_files::ensure_private_file(path)
        .and_then(|()| std::fs::write(path, text))
        .with_context(|| format!("writing {}", path.display()))
}

/// Names as the policy lists them: exact, `*`, or a prefix ending in `*`.
#[derive(Debug)]
struct Patterns(Vec<String>);

impl Patterns {
    fn new(list: Vec<String>) -> Self {
        Patterns(list)
    }

    fn allows(&self, name: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    }

    fn everything(&self) -> bool {
        self.0.iter().any(|p| p == "*")
    }
}

/// The `producer` an event's payload names, read as little as it takes: a payload whose
/// first character (after JSON whitespace) is `{` is a JSON object — every consumer reads
/// it as one — so it must be one, and each top-level `producer` in it must be a string;
/// anything else is opaque bytes no consumer takes for an event envelope, and names no one.
fn claimed_producer(payload: &[u8]) -> Result<Option<String>, &'static str> {
    let first = payload
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Ok(None);
    }
    match serde_json::from_slice::<Claim>(payload) {
        Ok(Claim(p)) => Ok(p),
        Err(_) => Err("is not a valid JSON object with at most one string producer"),
    }
}

/// A JSON object's `producer`: other keys are skipped unread, a second `producer` or one
/// that is not a string is an error (so two parsers cannot disagree on which one counts).
struct Claim(Option<String>);

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Claim;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Claim, A::Error> {
                let mut producer: Option<String> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "producer" {
                        if producer.is_some() {
                            return Err(serde::de::Error::duplicate_field("producer"));
                        }
                        producer = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(Claim(producer))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tix_bus_client::protocol::{SubscribeOptions, WireEvent};

    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn policy() -> Policy {
        Policy::parse(&format!(
            r#"
            [clients.orders]
            key = "{KEY}"
            publish = ["order:created", "order:cancelled"]
            consume = ["ticket:created", "payment:*"]
            groups = ["orders"]

            [clients.operator]
            keys = ["{KEY}", "{KEY}"]
            consume = ["*"]
            groups = ["tail-*"]
            operator = true

            [clients.relay]
            key = "{KEY}"
            publish = ["*"]
            producers = ["orders", "tickets"]
            "#
        ))
        .unwrap()
    }

    fn publish(subject: &str, payload: &str) -> Request {
        Request::Publish(
            1,
            vec![WireEvent {
                id: Bytes::from_static(b"e1"),
                subject: Bytes::copy_from_slice(subject.as_bytes()),
                payload: Bytes::copy_from_slice(payload.as_bytes()),
            }],
        )
    }

    fn sub(group: &str, subjects: &[&str]) -> Request {
        Request::Subscribe(1, SubscribeOptions::new(group, subjects))
    }

    #[test]
    fn a_client_publishes_only_its_subjects_under_its_own_name() {
        let p = policy();
        let orders = p.client("orders").unwrap();
        let own = r#"{"id":"e1","producer":"orders","data":{"x":"\"producer\":\"payments\""}}"#;
        assert_eq!(orders.authorize(&publish("order:created", own)), Ok(()));
        assert_eq!(
            orders.authorize(&publish("order:created", "opaque")),
            Ok(())
        );
        assert_eq!(
            orders.authorize(&publish("order:created", r#"{"n":1}"#)),
            Ok(())
        );
        let err = orders
            .authorize(&publish("payment:created", own))
            .unwrap_err();
        assert!(err.contains("may not publish payment:created"), "{err}");
        for forged in [
            r#"{"producer":"payments"}"#,
            r#" {"producer":"orders","producer":"payments"}"#,
            r#"{"produc\u0065r":"payments"}"#,
            r#"{"producer":7}"#,
            r#"{"producer":"orders"} trailing"#,
            r#"{"producer":"orders""#,
        ] {
            assert!(
                orders.authorize(&publish("order:created", forged)).is_err(),
                "{forged}"
            );
        }
        let relay = p.client("relay").unwrap();
        let theirs = r#"{"producer":"tickets"}"#;
        assert_eq!(relay.authorize(&publish("ticket:created", theirs)), Ok(()));
        let err = relay
            .authorize(&publish("x", r#"{"producer":"relay"}"#))
            .unwrap_err();
        assert!(err.contains("as producer \"relay\""), "{err}");
    }

    #[test]
    fn a_client_joins_only_its_groups_for_its_subjects() {
        let p = policy();
        let orders = p.client("orders").unwrap();
        assert_eq!(
            orders.authorize(&sub("orders", &["ticket:created"])),
            Ok(())
        );
        assert_eq!(
            orders.authorize(&sub("orders", &["payment:failed"])),
            Ok(())
        );
        assert!(
            orders
                .authorize(&sub("payments", &["ticket:created"]))
                .is_err()
        );
        assert!(
            orders
                .authorize(&sub("orders", &["order:created"]))
                .is_err()
        );
        assert!(orders.authorize(&sub("orders", &["*"])).is_err());
        let ack = Request::Ack(1, "payments".into(), vec![1]);
        assert!(
            orders
                .authorize(&ack)
                .unwrap_err()
                .contains("group payments")
        );
        assert_eq!(
            orders.authorize(&Request::Ack(1, "orders".into(), vec![1])),
            Ok(())
        );

        let op = p.client("operator").unwrap();
        assert_eq!(op.authorize(&sub("tail-123", &["*"])), Ok(()));
        assert!(op.authorize(&sub("orders", &["*"])).is_err());
    }

    #[test]
    fn operator_requests_need_the_operator_right() {
        let p = policy();
        let err = p
            .client("orders")
            .unwrap()
            .authorize(&Request::Stats(1))
            .unwrap_err();
        assert!(err.contains("operator"), "{err}");
        assert_eq!(
            p.client("operator").unwrap().authorize(&Request::Stats(1)),
            Ok(())
        );
        let counter =
            Policy::parse(&format!("[clients.c]\nkey = \"{KEY}\"\nstats = true\n")).unwrap();
        let c = counter.client("c").unwrap();
        assert_eq!(c.authorize(&Request::Stats(1)), Ok(()));
        let dlq = Request::DeadLetters(1, Default::default());
        assert!(c.authorize(&dlq).unwrap_err().contains("operator"));
        // Forgetting a group is the operator's alone, whatever groups a client may use.
        let drop = Request::DropGroup(
            1,
            tix_bus_client::protocol::DropGroupRequest {
                group: "orders".into(),
                force: true,
            },
        );
        assert!(c.authorize(&drop).unwrap_err().contains("operator"));
        let orders = p.client("orders").unwrap();
        assert!(orders.authorize(&drop).unwrap_err().contains("operator"));
        assert_eq!(p.client("operator").unwrap().authorize(&drop), Ok(()));
        // So is moving a group back, even for the service that consumes it.
        let rewind = Request::Rewind(
            1,
            tix_bus_client::protocol::RewindRequest {
                group: "orders".into(),
                since_ms: 0,
            },
        );
        assert!(orders.authorize(&rewind).unwrap_err().contains("operator"));
        assert_eq!(p.client("operator").unwrap().authorize(&rewind), Ok(()));
        let discard = Request::Discard(
            1,
            tix_bus_client::protocol::DiscardRequest {
                group: "orders".into(),
                seqs: None,
            },
        );
        assert!(orders.authorize(&discard).unwrap_err().contains("operator"));
        assert_eq!(p.client("operator").unwrap().authorize(&discard), Ok(()));
        assert_eq!(p.client("operator").unwrap().keys.len(), 2);
    }

    #[test]
    fn init_writes_keys_and_a_policy_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = init(dir.path()).unwrap();
        assert!(first.wrote_policy);
        assert_eq!(first.new_keys.len(), TIX_CLIENTS.len());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first.policy), 0o600);
        assert_eq!(mode(&first.new_keys[0]), 0o600);
        let p = Policy::load(&first.policy).unwrap();
        let orders_key =
            tix_bus_client::key::read_key_file(&dir.path().join("keys/orders.key")).unwrap();
        assert_eq!(p.client("orders").unwrap().keys, vec![orders_key]);
        assert!(p.client("operator").unwrap().operator);
        let again = init(dir.path()).unwrap();
        assert!(!again.wrote_policy && again.new_keys.is_empty());
    }

    #[test]
    fn mistakes_in_the_file_are_errors() {
        let no_key = Policy::parse("[clients.a]\npublish = [\"x\"]\n").unwrap_err();
        assert!(format!("{no_key:#}").contains("no key"), "{no_key:#}");
        let short = Policy::parse("[clients.a]\nkey = \"abcd\"\n").unwrap_err();
        assert!(format!("{short:#}").contains("at least"), "{short:#}");
        let typo = Policy::parse(&format!("[clients.a]\nkey = \"{KEY}\"\npublsh = []\n"));
        assert!(typo.is_err());
        assert!(Policy::parse("").unwrap().is_empty());
    }
}
