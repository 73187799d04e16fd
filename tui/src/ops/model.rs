//! What the operations screen knows: each process's readiness, the event rate of each
//! subject over the last minutes, each group's lag and dead letters, and the latest
//! events. Fed by [`super::feed`] through [`Msg`]s; drawn by [`super::view`]. No I/O here,
//! so every transition is testable with made-up input.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde_json::Value;
use tix_api::health::{Health, HealthStatus, UpstreamStatus};

use super::prom::Sample;

/// Seconds of rate history kept per subject (the sparklines' width at most).
pub const HISTORY: usize = 120;
/// Latest events kept.
pub const EVENTS: usize = 200;

/// What the feed reports.
#[derive(Debug, Clone)]
pub enum Msg {
    /// The gateway's `/readyz`: every process behind it (a 503 is an answer too).
    Readiness(Result<Health, String>),
    /// One scrape of the broker's `/metrics`, and the time since the previous one.
    Metrics(Result<Vec<Sample>, String>, Duration),
    /// An event seen by the tail: its subject and envelope.
    Event { subject: String, envelope: Value },
    /// Where the tail stands.
    Tail(TailState),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailState {
    Connecting,
    Following,
    /// Not configured or refused: why, and how to fix it.
    Off(String),
}

/// One process and whether it can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub name: String,
    pub state: ProcessState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessState {
    Ready,
    /// It answers but is not ready: the failing checks.
    NotReady(String),
    Down,
    Unknown,
}

/// A subject's rate history (events per second, newest last) and its total.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    pub rates: VecDeque<u64>,
    pub total: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub lag: u64,
    pub pending: u64,
    pub dead: u64,
}

/// A line of the event list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// `HH:MM:SS` of `occurredAt` (UTC), as published.
    pub at: String,
    pub subject: String,
    pub producer: String,
    /// The id of the request that caused it, when one did.
    pub request: Option<String>,
    /// The payload's identifying fields, e.g. `id=… status=created`.
    pub summary: String,
}

#[derive(Debug, Clone)]
pub struct Ops {
    /// Where the numbers come from, for the title.
    pub gateway: String,
    pub bus_metrics: String,
    pub processes: Vec<Process>,
    pub readiness_error: Option<String>,
    pub subjects: BTreeMap<String, Subject>,
    pub groups: BTreeMap<String, Group>,
    pub clients: Option<u64>,
    pub metrics_error: Option<String>,
    pub events: VecDeque<EventLine>,
    pub tail: TailState,
    /// Frozen: new numbers and events are still taken in, the screen does not move.
    pub paused: bool,
    /// How far the event list is scrolled back from the newest (0: following).
    pub scroll: usize,
    /// Whether a scrape has been read: the first one only sets the counters' baseline.
    scraped: bool,
}

impl Ops {
    pub fn new(gateway: &str, bus_metrics: &str) -> Ops {
        Ops {
            gateway: gateway.to_string(),
            bus_metrics: bus_metrics.to_string(),
            processes: Vec::new(),
            readiness_error: None,
            subjects: BTreeMap::new(),
            groups: BTreeMap::new(),
            clients: None,
            metrics_error: None,
            events: VecDeque::new(),
            tail: TailState::Connecting,
            paused: false,
            scroll: 0,
            scraped: false,
        }
    }

    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Readiness(r) => self.readiness(r),
            Msg::Metrics(r, since) => self.metrics(r, since),
            Msg::Event { subject, envelope } => self.event(&subject, &envelope),
            Msg::Tail(t) => self.tail = t,
        }
    }

    fn readiness(&mut self, r: Result<Health, String>) {
        match r {
            Ok(h) => {
                self.readiness_error = None;
                let mut procs = vec![Process {
                    name: h.service.clone(),
                    state: ProcessState::Ready,
                }];
                for (name, u) in h.upstreams.unwrap_or_default() {
                    let state = match (u.status, u.health) {
                        (UpstreamStatus::Down, _) => ProcessState::Down,
                        (UpstreamStatus::Up, Some(HealthStatus::Ok)) => ProcessState::Ready,
                        (UpstreamStatus::Up, _) => ProcessState::NotReady(failing(&u.checks)),
                    };
                    procs.push(Process { name, state });
                }
                // The bus is not behind the gateway: its row comes from the metrics port.
                if let Some(bus) = self.processes.iter().find(|p| p.name == "bus") {
                    procs.push(bus.clone());
                }
                self.processes = procs;
            }
            Err(e) => {
                self.readiness_error = Some(e);
                for p in self.processes.iter_mut().filter(|p| p.name != "bus") {
                    p.state = ProcessState::Unknown;
                }
            }
        }
    }

    fn set_bus(&mut self, state: ProcessState) {
        match self.processes.iter_mut().find(|p| p.name == "bus") {
            Some(p) => p.state = state,
            None => self.processes.push(Process {
                name: "bus".into(),
                state,
            }),
        }
    }

    fn metrics(&mut self, r: Result<Vec<Sample>, String>, since: Duration) {
        let samples = match r {
            Ok(s) => s,
            Err(e) => {
                self.metrics_error = Some(e);
                self.set_bus(ProcessState::Down);
                return;
            }
        };
        self.metrics_error = None;
        self.set_bus(ProcessState::Ready);
        let secs = since.as_secs_f64();
        for s in &samples {
            match s.name.as_str() {
                "tix_bus_published_events_total" => {
                    let Some(subject) = s.label("subject") else {
                        continue;
                    };
                    let sub = self.subjects.entry(subject.to_string()).or_default();
                    // The first scrape is only a baseline (its counts are since the
                    // broker started); a subject new after that published all of its
                    // count since the last scrape. A counter that went down means the
                    // broker restarted: all it counts now is new.
                    if self.scraped && secs > 0.0 {
                        let delta = if s.value >= sub.total {
                            s.value - sub.total
                        } else {
                            s.value
                        };
                        push_rate(&mut sub.rates, (delta / secs).round() as u64);
                    }
                    sub.total = s.value;
                }
                // Tails (`tix events tail`, this screen) are not the system's consumers.
                _ if s.label("group").is_some_and(|g| g.starts_with("tix-tail-")) => {}
                "tix_bus_group_lag_events" => group(&mut self.groups, s).lag = count(s.value),
                "tix_bus_group_pending_events" => {
                    group(&mut self.groups, s).pending = count(s.value)
                }
                "tix_bus_group_dead_letters" => group(&mut self.groups, s).dead = count(s.value),
                "tix_bus_connected_clients" => self.clients = Some(count(s.value)),
                _ => {}
            }
        }
        // Subjects that published nothing this second still move along.
        let seen: Vec<&str> = samples
            .iter()
            .filter(|s| s.name == "tix_bus_published_events_total")
            .filter_map(|s| s.label("subject"))
            .collect();
        for (name, sub) in self.subjects.iter_mut() {
            if !seen.contains(&name.as_str()) {
                push_rate(&mut sub.rates, 0);
            }
        }
        self.scraped = true;
    }

    fn event(&mut self, subject: &str, e: &Value) {
        let at = e["occurredAt"]
            .as_str()
            .and_then(|t| t.get(11..19))
            .unwrap_or("--:--:--")
            .to_string();
        let line = EventLine {
            at,
            subject: subject.to_string(),
            producer: e["producer"].as_str().unwrap_or("?").to_string(),
            request: e["correlationId"].as_str().map(str::to_string),
            summary: summary(e),
        };
        self.events.push_back(line);
        if self.events.len() > EVENTS {
            self.events.pop_front();
        }
        // Scrolled back: keep looking at the same lines while new ones arrive.
        if self.scroll > 0 {
            self.scroll = (self.scroll + 1).min(self.events.len().saturating_sub(1));
        }
    }

    /// Events per second of every subject over the last `n` seconds, summed: the
    /// headline rate.
    pub fn total_rate(&self) -> u64 {
        self.subjects.values().filter_map(|s| s.rates.back()).sum()
    }

    pub fn scroll_back(&mut self, n: usize) {
        self.scroll = (self.scroll + n).min(self.events.len().saturating_sub(1));
    }

    pub fn scroll_forward(&mut self, n: usize) {
        self.scroll = self.scroll.saturating_sub(n);
    }
}

fn push_rate(rates: &mut VecDeque<u64>, r: u64) {
    rates.push_back(r);
    if rates.len() > HISTORY {
        rates.pop_front();
    }
}

fn group<'a>(groups: &'a mut BTreeMap<String, Group>, s: &Sample) -> &'a mut Group {
    groups
        .entry(s.label("group").unwrap_or("?").to_string())
        .or_default()
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v as u64
    } else {
        0
    }
}

fn failing(checks: &Option<BTreeMap<String, tix_api::health::Check>>) -> String {
    let names: Vec<&str> = checks
        .iter()
        .flatten()
        .filter(|(_, c)| c.status != HealthStatus::Ok)
        .map(|(n, _)| n.as_str())
        .collect();
    if names.is_empty() {
        "not ready".into()
    } else {
        names.join(", ")
    }
}

/// The fields that tell one event from another, in a fixed order, ids cut to 8 characters.
fn summary(e: &Value) -> String {
    let data = e.get("data").unwrap_or(e);
    let mut parts = Vec::new();
    for key in [
        "id", "orderId", "ticketId", "status", "title", "price", "amount",
    ] {
        let v = match &data[key] {
            Value::String(s) if key == "id" || key.ends_with("Id") => {
                s.chars().take(8).collect::<String>()
            }
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        parts.push(format!("{key}={v}"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(subject: &str, v: f64) -> Sample {
        Sample {
            name: "tix_bus_published_events_total".into(),
            labels: vec![("subject".into(), subject.into())],
            value: v,
        }
    }

    #[test]
    fn rates_are_per_second_differences_and_idle_subjects_show_zero() {
        let mut ops = Ops::new("gw", "bus");
        let sec = Duration::from_secs(1);
        ops.apply(Msg::Metrics(Ok(vec![counter("a", 10.0)]), sec));
        assert!(
            ops.subjects["a"].rates.is_empty(),
            "no rate from one reading"
        );
        ops.apply(Msg::Metrics(
            Ok(vec![counter("a", 16.0)]),
            Duration::from_secs(2),
        ));
        ops.apply(Msg::Metrics(
            Ok(vec![counter("a", 16.0), counter("b", 1.0)]),
            sec,
        ));
        assert_eq!(ops.subjects["a"].rates, [3, 0]);
        // A broker restart resets the counter: what it counts now is all new.
        ops.apply(Msg::Metrics(Ok(vec![counter("a", 2.0)]), sec));
        assert_eq!(ops.subjects["a"].rates, [3, 0, 2]);
        assert_eq!(
            ops.subjects["b"].rates,
            [1, 0],
            "new after the baseline: all of it is new; then absent: 0/s"
        );
        assert_eq!(ops.processes[0].name, "bus");
        assert_eq!(ops.processes[0].state, ProcessState::Ready);
        ops.apply(Msg::Metrics(Err("refused".into()), sec));
        assert_eq!(ops.processes[0].state, ProcessState::Down);
        assert_eq!(ops.metrics_error.as_deref(), Some("refused"));
    }

    #[test]
    fn the_event_list_is_bounded_and_holds_still_while_scrolled_back() {
        let mut ops = Ops::new("gw", "bus");
        let e = serde_json::json!({"producer":"orders","occurredAt":"2026-11-26T14:02:03.5Z",
            "correlationId":"req-1","data":{"id":"0193a5c2-7f7e","status":"created"}});
        for _ in 0..EVENTS + 5 {
            ops.apply(Msg::Event {
                subject: "order:created".into(),
                envelope: e.clone(),
            });
        }
        assert_eq!(ops.events.len(), EVENTS);
        let line = ops.events.back().unwrap();
        assert_eq!(line.at, "14:02:03");
        assert_eq!(line.summary, "id=0193a5c2 status=created");
        assert_eq!(line.request.as_deref(), Some("req-1"));
        ops.scroll_back(3);
        ops.apply(Msg::Event {
            subject: "x".into(),
            envelope: e,
        });
        assert_eq!(ops.scroll, 4);
        ops.scroll_forward(10);
        assert_eq!(ops.scroll, 0);
    }
}
