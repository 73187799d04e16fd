//! The inbox consumer and the outbox relay against a real `tix-bus` process and a real
//! SQLite file: what a busy database, a poison event, a refused subscription and an event
//! the bus will never take do to them, and what `/healthz` says meanwhile.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tix_api::Money;
use tix_api::events::{Envelope, Event, TicketCreated};
use tix_api::health::{Check, Health, HealthStatus};
use tix_bus_client::{Client, ClientOptions, SubscribeOptions};
use tix_common::db::{Db, DbError, Durability, EVENTS_SCHEMA};
use tix_common::health::{CONSUMER_STUCK_AFTER, Monitor, PartKind};
use tix_common::inbox::{self, Handler, Outcome, Pruning};
use tix_common::outbox::{self, OUTBOX_DEAD_SCHEMA, OUTBOX_REBUILD};
use tix_testkit::Bus;
use tix_testkit::events::{WAIT, connect, next_event, test_key};
use tix_testkit::eventually;

const SUBJECT: &str = "ticket:created";

fn ticket(title: &str) -> Envelope {
    Envelope::new(
        "tickets",
        Event::TicketCreated(TicketCreated {
            id: title.to_string(),
            title: title.to_string(),
            price_cents: Money::from_cents(100),
            user_id: "seller".into(),
            version: 0,
        }),
    )
}

/// Records each event's title; refuses (a handler error: the event's fault) a "poison" one.
fn recorder() -> Handler {
    Arc::new(|c: &Connection, env: &Envelope| {
        let Event::TicketCreated(t) = &env.event else {
            anyhow::bail!("unexpected event");
        };
        if t.title.starts_with("poison") {
            anyhow::bail!("cannot apply {}", t.title);
        }
        c.execute("INSERT INTO applied (title) VALUES (?1)", [&t.title])?;
        Ok(Outcome::Applied)
    })
}

/// A consuming service in miniature: its database, its bus client, its monitor.
struct Consumer {
    _dir: tempfile::TempDir,
    db: Db,
    monitor: Monitor,
    task: tokio::task::JoinHandle<()>,
    link: tokio::task::JoinHandle<()>,
}

impl Consumer {
    fn start(bus: &Bus, opts: SubscribeOptions) -> Consumer {
        Self::start_pruning(bus, opts, Pruning::new(Duration::from_secs(86_400)))
    }

    fn start_pruning(bus: &Bus, opts: SubscribeOptions, pruning: Pruning) -> Consumer {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &dir.path().join("svc.db"),
            Durability::Normal,
            &[
                EVENTS_SCHEMA,
                "CREATE TABLE applied (title TEXT NOT NULL);",
                inbox::PRUNE_SCHEMA,
            ],
        )
        .unwrap();
        let client = Client::connect(
            ClientOptions::new(&bus.endpoint, tix_testkit::TEST_BUS_CLIENT).with_key(test_key()),
        );
        let monitor = Monitor::default();
        monitor.set_group(&opts.group);
        let link = monitor.watch_bus(&client);
        let task = tokio::spawn(inbox::run_consumer(
            db.clone(),
            client,
            opts.into(),
            recorder(),
            monitor.part(PartKind::Consumer),
            pruning,
        ));
        Consumer {
            _dir: dir,
            db,
            monitor,
            task,
            link,
        }
    }

    async fn applied(&self) -> Vec<String> {
        self.db
            .read(|c| -> Result<Vec<String>, DbError> {
                let mut st = c.prepare("SELECT title FROM applied ORDER BY title")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap()
    }

    async fn remembered(&self) -> i64 {
        self.db
            .read(|c| -> Result<i64, DbError> {
                Ok(c.query_row("SELECT count(*) FROM inbox", [], |r| r.get(0))?)
            })
            .await
            .unwrap()
    }

    async fn check(&self, part: &str) -> (HealthStatus, Check) {
        let h: Health = self.monitor.report("svc").await;
        (h.status, h.checks.unwrap()[part].clone())
    }

    /// Takes the database's write lock from another connection, as a busy neighbour (or a
    /// stuck backup) would: every write of the consumer fails with `database is locked`
    /// until the returned connection lets go.
    fn lock(&self) -> Connection {
        let c = Connection::open(self.db.path()).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        c
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.task.abort();
        self.link.abort();
    }
}

fn group(name: &str, ack_wait_ms: u64, max_deliveries: u32) -> SubscribeOptions {
    let mut o = SubscribeOptions::new(name, &[SUBJECT]);
    o.ack_wait_ms = ack_wait_ms;
    o.max_deliveries = max_deliveries;
    o
}

async fn publish(bus: &Client, env: &Envelope) {
    bus.publish(env.id.clone(), SUBJECT, env.to_json())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_longer_than_the_delivery_budget_dead_letters_nothing() {
    let bus = Bus::start();
    let test = connect(&bus.endpoint, "test").await;
    // A budget of 2 deliveries × 500 ms: an unacked event would be a dead letter after 1 s.
    let svc = Consumer::start(&bus, group("svc", 500, 2));
    publish(&test, &ticket("before")).await;
    eventually("the first event is applied", WAIT, || async {
        svc.applied().await == ["before"]
    })
    .await;

    let lock = svc.lock();
    let started = std::time::Instant::now();
    for t in ["a", "b", "c"] {
        publish(&test, &ticket(t)).await;
    }
    // The first write waits out SQLite's busy timeout (5 s) and fails; the consumer keeps
    // the events, tries again with backoff, and health names it once it is stuck.
    eventually("health says the consumer is stuck", WAIT, || async {
        let (status, c) = svc.check("consumer").await;
        status == HealthStatus::Degraded
            && c.status == HealthStatus::Degraded
            && c.reason.as_deref().unwrap_or("").contains("locked")
    })
    .await;
    assert!(started.elapsed() > CONSUMER_STUCK_AFTER);
    let g = test.stats().await.unwrap().group("svc").cloned().unwrap();
    assert_eq!(
        (g.pending, g.redelivered, g.dead_letters),
        (3, 0, 0),
        "held all along for {:?} (the budget is 1 s) without a delivery counted",
        started.elapsed()
    );

    drop(lock);
    eventually(
        "every event is applied once the lock is gone",
        WAIT,
        || async { svc.applied().await == ["a", "b", "before", "c"] },
    )
    .await;
    eventually("health is ok again", WAIT, || async {
        svc.check("consumer").await.0 == HealthStatus::Ok
    })
    .await;
    let g = test.stats().await.unwrap().group("svc").cloned().unwrap();
    assert_eq!((g.pending, g.redelivered, g.dead_letters), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_still_uses_up_deliveries_and_the_dead_letter_shows_in_health() {
    let bus = Bus::start();
    let test = connect(&bus.endpoint, "test").await;
    let svc = Consumer::start(&bus, group("svc", 200, 2));
    for t in ["a", "poison-1", "b"] {
        publish(&test, &ticket(t)).await;
    }
    eventually("the good events are applied", WAIT, || async {
        svc.applied().await == ["a", "b"]
    })
    .await;
    eventually(
        "the poison event is a dead letter, counted in health",
        WAIT,
        || async { svc.check("consumer").await.1.dead_letters == Some(1) },
    )
    .await;
    let dead = test.dead_letters(Some("svc")).await.unwrap();
    assert_eq!(
        (dead.len(), dead[0].deliveries),
        (1, 2),
        "it used its deliveries"
    );
    // A dead letter is for an operator to look at; the consumer itself works.
    assert_eq!(svc.check("consumer").await.0, HealthStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_retried_until_the_bus_takes_it() {
    let bus = Bus::start();
    let test = connect(&bus.endpoint, "test").await;
    // Another deployment holds the group with other options: the broker refuses the
    // consumer's subscription while that member lives.
    let other = test.subscribe(group("svc", 60_000, 10)).await.unwrap();
    let svc = Consumer::start(&bus, group("svc", 500, 2));
    eventually("health says why the consumer cannot join", WAIT, || async {
        svc.check("consumer").await.1.status == HealthStatus::Degraded
    })
    .await;
    let (_, c) = svc.check("consumer").await;
    assert!(
        c.reason.as_deref().unwrap_or("").contains("other options"),
        "{c:?}"
    );
    drop(other);
    publish(&test, &ticket("a")).await;
    eventually(
        "the consumer joined and applied the event",
        WAIT,
        || async { svc.applied().await == ["a"] },
    )
    .await;
    assert_eq!(svc.check("consumer").await.0, HealthStatus::Ok);
}

/// A publishing service in miniature: its database with an outbox and its relay.
struct Relay {
    _dir: tempfile::TempDir,
    db: Db,
    monitor: Monitor,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(bus: &Bus, migrations: &[&str]) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("svc.db"), Durability::Normal, migrations).unwrap();
        let client = connect(&bus.endpoint, "relay").await;
        let monitor = Monitor::default();
        monitor.set_db(&db);
        let task = tokio::spawn(outbox::run_relay(
            db.clone(),
            client,
            monitor.part(PartKind::Outbox),
        ));
        Relay {
            _dir: dir,
            db,
            monitor,
            task,
        }
    }

    async fn enqueue(&self, events: Vec<Envelope>) {
        self.db
            .write(move |c| -> Result<(), DbError> {
                for e in &events {
                    outbox::enqueue(c, e)?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }

    async fn check(&self) -> Check {
        self.monitor.report("svc").await.checks.unwrap()["outbox"].clone()
    }

    /// Whether the relay's health gives a reason that says `what`.
    async fn says(&self, what: &str) -> bool {
        self.check().await.reason.is_some_and(|r| r.contains(what))
    }

    fn rows(&self, sql: &str) -> Vec<String> {
        let c = Connection::open(self.db.path()).unwrap();
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_bus_refuses_for_good_goes_to_outbox_dead_and_the_rest_are_published() {
    let bus = Bus::start_with(&["--max-event-bytes", "1000"]);
    let test = connect(&bus.endpoint, "test").await;
    let mut sub = test
        .subscribe(SubscribeOptions::new("test", &[SUBJECT]))
        .await
        .unwrap();
    // The outbox as every service has it.
    let relay = Relay::start(&bus, &[EVENTS_SCHEMA, OUTBOX_DEAD_SCHEMA, OUTBOX_REBUILD]).await;
    let huge = ticket(&"x".repeat(2000));
    let huge_id = huge.id.clone();
    relay
        .enqueue(vec![ticket("first"), huge, ticket("behind")])
        .await;
    let titles = [next_event(&mut sub).await, next_event(&mut sub).await].map(|e| match e.event {
        Event::TicketCreated(t) => t.title,
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(titles, ["first", "behind"]);
    eventually("the outbox is empty", WAIT, || async {
        relay.check().await.waiting == Some(0)
    })
    .await;
    assert_eq!(relay.rows("SELECT id FROM outbox_dead"), [huge_id]);
    let error = relay.rows("SELECT error FROM outbox_dead");
    assert!(error[0].contains("the bus takes at most 1000"), "{error:?}");
    let c = relay.check().await;
    assert_eq!((c.status, c.dead), (HealthStatus::Ok, Some(1)));
}

fn title(env: Envelope) -> String {
    match env.event {
        Event::TicketCreated(t) => t.title,
        other => panic!("unexpected {other:?}"),
    }
}

/// The broker killed with events committed before and after: the publishes made while it
/// is gone fail (the relay's health says so), the relay deletes no row the broker did not
/// take, and once a broker is back on the same data every event reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_whose_publish_failed_are_kept_and_published_once_the_broker_is_back() {
    let mut bus = Bus::start();
    let relay = Relay::start(&bus, &[EVENTS_SCHEMA, OUTBOX_DEAD_SCHEMA, OUTBOX_REBUILD]).await;
    let want: Vec<String> = (0..80).map(|i| format!("e{i:02}")).collect();
    let (before, during) = want.split_at(40);
    for t in before {
        relay.enqueue(vec![ticket(t)]).await;
    }
    bus.proc.kill9();
    for t in during {
        relay.enqueue(vec![ticket(t)]).await;
    }
    eventually("the relay reports that publishing fails", WAIT, || {
        relay.says("publishing failed")
    })
    .await;
    assert!(
        relay.rows("SELECT subject FROM outbox").len() >= during.len(),
        "what the broker did not take is still in the outbox"
    );
    tokio::task::block_in_place(|| bus.crash_and_restart(&[]));
    let test = connect(&bus.endpoint, "test").await;
    // A new group starts at the beginning of the log: it sees what the broker stored.
    let mut sub = test
        .subscribe(SubscribeOptions::new("late", &[SUBJECT]))
        .await
        .unwrap();
    let mut got = std::collections::BTreeSet::new();
    while got.len() < want.len() {
        got.insert(title(next_event(&mut sub).await));
    }
    assert_eq!(got.into_iter().collect::<Vec<_>>(), want);
    eventually("the outbox is empty", WAIT, || async {
        relay.check().await.waiting == Some(0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_outbox_dead_table_a_refused_event_stays_and_health_says_why() {
    let bus = Bus::start_with(&["--max-event-bytes", "1000"]);
    let relay = Relay::start(&bus, &[EVENTS_SCHEMA]).await;
    relay
        .enqueue(vec![
            ticket("first"),
            ticket(&"x".repeat(2000)),
            ticket("behind"),
        ])
        .await;
    eventually("the relay reports it cannot move the event", WAIT, || {
        relay.says("outbox_dead")
    })
    .await;
    // Nothing lost: the refused event and the one behind it wait; the first went out.
    assert_eq!(relay.rows("SELECT subject FROM outbox").len(), 2);
    assert!(!relay.task.is_finished(), "the relay goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_ids_are_forgotten_past_their_retention_and_not_before() {
    let bus = Bus::start();
    let publisher = connect(&bus.endpoint, "test").await;
    // Retention 0: every id may go once the consumer has been in the group twice its ack
    // wait (0.4 s); it looks every 0.2 s. The other keeps a day's worth.
    let forgetful = Consumer::start_pruning(
        &bus,
        group("forgetful", 200, 5),
        Pruning::new(Duration::ZERO).every(Duration::from_millis(200)),
    );
    let keeper = Consumer::start(&bus, group("keeper", 200, 5));
    for title in ["a", "b", "c"] {
        publish(&publisher, &ticket(title)).await;
    }
    for c in [&forgetful, &keeper] {
        eventually("all three applied", WAIT, || async {
            c.applied().await.len() == 3
        })
        .await;
    }
    // Ids are kept at least a second (they are stamped in whole seconds), then go.
    eventually("the forgetful consumer's inbox emptied", WAIT, || async {
        forgetful.remembered().await == 0
    })
    .await;
    assert_eq!(forgetful.applied().await, ["a", "b", "c"], "effects stay");
    assert_eq!(keeper.remembered().await, 3, "a day's retention keeps them");
}

/// A database with full durability, and a handler that records each event's subject with
/// the `synchronous` setting its transaction commits with.
fn level_recorder(dir: &std::path::Path) -> (Db, Handler) {
    let db = Db::open(
        &dir.join("svc.db"),
        Durability::Full,
        &[
            EVENTS_SCHEMA,
            "CREATE TABLE applied (subject TEXT NOT NULL, synchronous INTEGER NOT NULL);",
        ],
    )
    .unwrap();
    let handler: Handler = Arc::new(|c: &Connection, env: &Envelope| {
        let level: i64 = c.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        c.execute(
            "INSERT INTO applied (subject, synchronous) VALUES (?1, ?2)",
            (env.event.subject().as_str(), level),
        )?;
        Ok(Outcome::Applied)
    });
    (db, handler)
}

/// What [`level_recorder`]'s handler recorded, in order.
async fn levels(db: &Db) -> Vec<(String, i64)> {
    db.read(|c| -> Result<Vec<(String, i64)>, DbError> {
        let mut st = c.prepare("SELECT subject, synchronous FROM applied ORDER BY rowid")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
    .await
    .unwrap()
}

/// A batch of nothing but the group's optional subjects (events the service only saves work
/// with, as expiration's `payment:created`) is committed without an fsync; one of another
/// subject is synced before it is acked. The handler reads the setting its transaction
/// commits with. Each event is applied before the next is published, so each is a batch of
/// its own (how a mixed batch is committed is `inbox.rs`'s unit test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_batches_of_optional_subjects_are_committed_unsynced() {
    use tix_api::events::TicketUpdated;
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, handler) = level_recorder(dir.path());
    let client = Client::connect(
        ClientOptions::new(&bus.endpoint, tix_testkit::TEST_BUS_CLIENT).with_key(test_key()),
    );
    let group = inbox::Group {
        opts: SubscribeOptions::new("svc", &["ticket:created", "ticket:updated"]),
        optional: vec!["ticket:updated".to_string()],
        local: Vec::new(),
    };
    let publisher = connect(&bus.endpoint, "publisher").await;
    let publish = async |env: Envelope| {
        let subject = env.event.subject().as_str();
        publisher
            .publish(env.id.clone(), subject, env.to_json())
            .await
            .unwrap();
    };
    let consumer = tokio::spawn(inbox::run_consumer(
        db.clone(),
        client,
        group,
        handler,
        Monitor::default().part(PartKind::Consumer),
        Pruning::new(Duration::from_secs(86_400)),
    ));
    fn updated() -> Envelope {
        Envelope::new(
            "tickets",
            Event::TicketUpdated(TicketUpdated {
                id: "t".into(),
                title: "t".into(),
                price_cents: Money::from_cents(100),
                user_id: "seller".into(),
                version: 1,
                order_id: None,
            }),
        )
    }
    let applied = || levels(&db);
    for (n, env) in [ticket("t"), updated(), ticket("t"), updated()]
        .into_iter()
        .enumerate()
    {
        publish(env).await;
        eventually("the event applied", WAIT, || async {
            applied().await.len() == n + 1
        })
        .await;
    }
    let full = 2;
    let normal = 1;
    assert_eq!(
        applied().await,
        [
            ("ticket:created".to_string(), full),
            ("ticket:updated".to_string(), normal),
            ("ticket:created".to_string(), full),
            ("ticket:updated".to_string(), normal),
        ]
    );
    consumer.abort();
}

/// A batch of nothing but the group's local subjects (events that change only the service's
/// own state, as payments' order replica) is committed without an fsync, and acked only
/// once a sync has carried it to the disk: with the writer's own sync an hour away, the
/// events stay pending at the bus (their ack wait is a minute) until a synced commit comes;
/// then with the writer's own. A batch with another subject in it is synced and acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_local_subjects_commit_unsynced_and_are_acked_once_synced() {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, handler) = level_recorder(dir.path());
    let mut opts = SubscribeOptions::new("svc", &["ticket:created", "ticket:updated"]);
    opts.ack_wait_ms = 60_000;
    let group = inbox::Group {
        local: vec!["ticket:updated".to_string()],
        ..inbox::Group::from(opts)
    };
    let publisher = connect(&bus.endpoint, "publisher").await;
    db.sync_lazy_within(Duration::from_secs(3600));
    let consumer = tokio::spawn(inbox::run_consumer(
        db.clone(),
        Client::connect(
            ClientOptions::new(&bus.endpoint, tix_testkit::TEST_BUS_CLIENT).with_key(test_key()),
        ),
        group,
        handler,
        Monitor::default().part(PartKind::Consumer),
        Pruning::new(Duration::from_secs(86_400)),
    ));
    let updated = |version: i64| {
        Envelope::new(
            "tickets",
            Event::TicketUpdated(tix_api::events::TicketUpdated {
                id: "t".into(),
                title: "t".into(),
                price_cents: Money::from_cents(100),
                user_id: "seller".into(),
                version,
                order_id: None,
            }),
        )
    };
    let applied = || levels(&db);
    // One at a time, each applied before the next is published: a batch each.
    for (n, env) in [ticket("t"), updated(1), updated(2)]
        .into_iter()
        .enumerate()
    {
        let subject = env.event.subject().as_str();
        publisher
            .publish(env.id.clone(), subject, env.to_json())
            .await
            .unwrap();
        eventually("the event applied", WAIT, || async {
            applied().await.len() == n + 1
        })
        .await;
    }
    let (full, normal) = (2, 1);
    assert_eq!(
        applied().await,
        [
            ("ticket:created".to_string(), full),
            ("ticket:updated".to_string(), normal),
            ("ticket:updated".to_string(), normal),
        ]
    );
    let pending = async || {
        let stats = publisher.stats().await.unwrap();
        stats.group("svc").map(|g| g.pending)
    };
    // An ack sent at once would have reached the bus long before this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pending().await, Some(2), "the lazy batches wait for a sync");
    db.write(|c| -> Result<usize, DbError> {
        Ok(c.execute(
            "INSERT INTO applied (subject, synchronous) VALUES ('other', 2)",
            [],
        )?)
    })
    .await
    .unwrap();
    eventually("acked once a synced commit carried them", WAIT, || async {
        pending().await == Some(0)
    })
    .await;

    // The writer's own sync, when nothing else comes.
    db.sync_lazy_within(Duration::from_millis(10));
    let env = updated(3);
    publisher
        .publish(env.id.clone(), "ticket:updated", env.to_json())
        .await
        .unwrap();
    eventually("applied", WAIT, || async { applied().await.len() == 5 }).await;
    eventually("acked after the writer's own sync", WAIT, || async {
        pending().await == Some(0)
    })
    .await;
    assert_eq!(db.own_syncs(), 1);
    consumer.abort();
}
