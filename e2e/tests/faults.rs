//! Purchases while processes die: nothing lost, nothing applied twice, and the services end
//! up agreeing (checked in their own SQLite files).

use std::time::{Duration, Instant};

use tix_e2e::assert_consistent_within;
use tix_testkit::{ALL, Api, Bus, Stack, User, eventually};

/// Reserve and pay, retrying like a patient client through 502s and refused connections.
/// Returns the paid order's id.
async fn buy(api: &Api, buyer: &User, ticket: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let pause = || tokio::time::sleep(Duration::from_millis(100));
    let order_id = loop {
        if Instant::now() > deadline {
            return Err(format!("{}: could not reserve", buyer.id));
        }
        let (s, v) = api.reserve(buyer, ticket).await;
        match s {
            201 => break v["id"].as_str().unwrap_or_default().to_string(),
            400 => {
                // Maybe our own earlier attempt went through and only its answer was lost.
                let (s, mine) = api.call("GET", "/api/orders", Some(buyer), None).await;
                if s != 200 {
                    pause().await;
                    continue;
                }
                let own = mine
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|o| o["ticket"]["id"] == ticket && o["status"] != "cancelled");
                match own {
                    Some(o) => break o["id"].as_str().unwrap_or_default().to_string(),
                    None => return Err(format!("{}: ticket taken: {v}", buyer.id)),
                }
            }
            _ => pause().await,
        }
    };
    loop {
        if Instant::now() > deadline {
            return Err(format!("{}: could not pay {order_id}", buyer.id));
        }
        let (s, v) = api.pay(buyer, &order_id, "tok_visa").await;
        match (s, v["errors"][0]["message"].as_str()) {
            (201, _) | (400, Some("Order already paid")) => return Ok(order_id),
            (400, Some(m)) if m.contains("cancelled") => {
                return Err(format!("{order_id} cancelled"));
            }
            _ => pause().await,
        }
    }
}

async fn buy_all(api: &Api, tickets: &[String]) -> Vec<Result<String, String>> {
    futures::future::join_all(tickets.iter().enumerate().map(|(i, t)| {
        let api = api.clone();
        let t = t.clone();
        async move {
            // A stream, not a burst: buyers arrive over a second or so.
            tokio::time::sleep(Duration::from_millis(40 * i as u64)).await;
            buy(&api, &User::new(&format!("buyer{i}")), &t).await
        }
    }))
    .await
}

async fn all_complete(api: &Api, paid: &[Result<String, String>]) -> bool {
    for (i, r) in paid.iter().enumerate() {
        let id = r.as_ref().expect("every purchase went through");
        if api.order(&User::new(&format!("buyer{i}")), id).await["status"] != "complete" {
            return false;
        }
    }
    true
}

async fn tickets(api: &Api, n: usize) -> Vec<String> {
    let seller = User::new("seller");
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            api.create_ticket(&seller, &format!("Seat {i}"), 10.0 + i as f64)
                .await,
        );
    }
    out
}

/// 30 purchases as a stream while `names` are killed with SIGKILL 400 ms in and started
/// again 700 ms later: every purchase goes through and completes once, and the services'
/// databases end up agreeing.
async fn purchases_survive_killing(stack: &mut Stack, names: &[&str]) {
    let api = Api::new(stack);
    let tickets = tickets(&api, 30).await;
    let buyers = buy_all(&api, &tickets);
    let chaos = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        for name in names {
            stack.kill(name);
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        for name in names {
            stack.restart(name);
        }
    };
    let (paid, ()) = tokio::join!(buyers, chaos);
    for r in &paid {
        assert!(r.is_ok(), "{r:?}");
    }
    eventually("every order is complete", Duration::from_secs(20), || {
        all_complete(&api, &paid)
    })
    .await;
    assert_consistent_within(&stack.data_dir, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_orders_mid_stream_loses_nothing_and_applies_nothing_twice() {
    let mut stack = Stack::start(&ALL);
    purchases_survive_killing(&mut stack, &["orders"]).await;
}

/// With `--durability full` (the default; the other tests run `normal`), consumers commit
/// batches of replica rows and timers without an fsync and ack them once a later sync has
/// carried them (docs/events.md, "When a consumer syncs"). Payments and expiration, whose
/// `order:created` batches are such, are killed with SIGKILL mid-stream: every purchase
/// still completes once, the databases agree, and every group ends with nothing left
/// pending at the bus (each held ack was sent, by a later commit's sync or the writer's own).
/// A SIGKILL keeps the page cache, so this checks that held acks are sent and nothing is
/// applied twice, not durability itself: that an ack waits for the sync is checked in
/// `services/common` (the writer's unit tests and `tests/events.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_full_durability_killing_consumers_that_ack_after_a_later_sync_loses_nothing() {
    let mut stack = Stack::start_with_env(&ALL, &[("TIX_DB_DURABILITY", "full")]);
    purchases_survive_killing(&mut stack, &["payments", "expiration"]).await;
    let bus = tix_testkit::events::connect(&stack.bus.endpoint, "test").await;
    eventually(
        "every group acked everything",
        Duration::from_secs(20),
        || async {
            let stats = bus.stats().await.unwrap();
            ["tickets", "orders", "payments", "expiration"]
                .iter()
                .all(|g| {
                    stats
                        .group(g)
                        .is_some_and(|g| g.pending == 0 && g.dead_letters == 0)
                })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_during_purchases_delays_them_and_loses_nothing() {
    let mut stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let tickets = tickets(&api, 20).await;
    let port = stack.bus.port();
    let dir = stack.data_dir.clone();
    let buyers = buy_all(&api, &tickets);
    let chaos = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack.bus.proc.kill9();
        // Reservations keep succeeding meanwhile: orders writes its outbox, not the bus.
        tokio::time::sleep(Duration::from_secs(3)).await;
        stack.bus = Bus::start_in(&dir, port, &[]);
    };
    let (paid, ()) = tokio::join!(buyers, chaos);
    for r in &paid {
        assert!(r.is_ok(), "{r:?}");
    }
    eventually("every order is complete", Duration::from_secs(20), || {
        all_complete(&api, &paid)
    })
    .await;
    assert_consistent_within(&dir, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_that_fell_due_while_expiration_was_down_fires_when_it_returns() {
    let mut stack = Stack::start_with_env(&ALL, &[("TIX_ORDER_TTL", "2s")]);
    let api = Api::new(&stack);
    let (seller, buyer) = (User::new("seller"), User::new("buyer"));
    let ticket = api.create_ticket(&seller, "Timer", 5.0).await;
    let (s, order) = api.reserve(&buyer, &ticket).await;
    assert_eq!(s, 201);
    let order_id = order["id"].as_str().unwrap().to_string();
    // Let expiration store the timer, then take it down past the deadline.
    eventually("the timer is stored", Duration::from_secs(10), || {
        let n = tix_e2e::rows(
            &stack.data_dir,
            "expiration.db",
            "SELECT count(*) FROM timers",
        );
        async move { n[0][0] == 1 }
    })
    .await;
    stack.kill("expiration");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        api.order(&buyer, &order_id).await["status"],
        "created",
        "nobody expired it yet"
    );
    stack.restart("expiration");
    eventually(
        "the overdue order is cancelled",
        Duration::from_secs(10),
        || async { api.order(&buyer, &order_id).await["status"] == "cancelled" },
    )
    .await;
    eventually(
        "the ticket is released",
        Duration::from_secs(10),
        || async { api.ticket(&ticket).await["orderId"].is_null() },
    )
    .await;
}
