//! Helpers shared by the bus's behaviour tests.

#![allow(dead_code)]

use std::time::Duration;

use tix_bus_client::{Client, ClientOptions, Delivery, SubscribeOptions, Subscription};

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn client(endpoint: &str, name: &str) -> Client {
    let mut opts = ClientOptions::new(endpoint, name);
    opts.heartbeat = Duration::from_millis(200);
    opts.request_timeout = Duration::from_secs(3);
    opts.max_backoff = Duration::from_millis(300);
    let c = Client::connect(opts);
    c.wait_connected(WAIT).await.expect("connecting to the bus");
    c
}

pub fn opts(group: &str, subjects: &[&str]) -> SubscribeOptions {
    SubscribeOptions::new(group, subjects)
}

/// The next delivery, failing the test if none comes within `WAIT`.
pub async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within the wait")
        .expect("subscription open")
}

/// Asserts that nothing is delivered for `quiet`.
pub async fn assert_quiet(sub: &mut Subscription, quiet: Duration) {
    if let Ok(Some(d)) = tokio::time::timeout(quiet, sub.next()).await {
        panic!(
            "expected nothing, got seq {} ({} deliveries) id {}",
            d.seq, d.deliveries, d.id
        );
    }
}

pub async fn publish_n(c: &Client, prefix: &str, subject: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        ids.push(id.clone());
        let body = format!("{{\"n\":{i}}}");
        calls.push(c.publish(id, subject.to_string(), body));
    }
    for r in futures::future::join_all(calls).await {
        r.expect("publish acked");
    }
    ids
}

/// Polls `cond` every 50 ms until it holds or `WAIT` passes.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
