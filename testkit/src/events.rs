//! The bus as a test sees it: a connected client, events published the way a service
//! publishes them, deliveries awaited with a deadline, and silence asserted.

use std::time::Duration;

use tix_api::events::{Envelope, Event, OrderCreated, OrderStatus, OrderTicket};
use tix_api::{Money, UnixMillis};
use tix_bus_client::{Client, ClientOptions, Delivery, SubscribeOptions, Subscription};

/// How long a test waits for a delivery or a connection before it fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// A client connected to `endpoint`, patient enough for a loaded test machine but quick to
/// notice a broker that went away.
pub async fn connect(endpoint: &str, name: &str) -> Client {
    let mut opts = ClientOptions::new(endpoint, name);
    opts.heartbeat = Duration::from_millis(200);
    opts.request_timeout = Duration::from_secs(3);
    opts.max_backoff = Duration::from_millis(300);
    let c = Client::connect(opts);
    c.wait_connected(WAIT).await.expect("connecting to the bus");
    c
}

/// A durable group on `subjects` with the default options.
pub fn group(name: &str, subjects: &[&str]) -> SubscribeOptions {
    SubscribeOptions::new(name, subjects)
}

/// Publishes as a service would: the bus id is the envelope id.
pub async fn publish(bus: &Client, env: &Envelope) {
    bus.publish(env.id.clone(), env.subject().as_str(), env.to_json())
        .await
        .expect("the bus took the event");
}

/// Publishes `n` small events `<prefix>-00000…` at once; their ids.
pub async fn publish_n(c: &Client, prefix: &str, subject: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        ids.push(id.clone());
        calls.push(c.publish(id, subject.to_string(), format!("{{\"n\":{i}}}")));
    }
    for r in futures::future::join_all(calls).await {
        r.expect("publish acked");
    }
    ids
}

/// The next delivery, failing the test if none comes within [`WAIT`].
pub async fn next_delivery(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within the wait")
        .expect("the subscription is open")
}

/// The next event, acked and parsed.
pub async fn next_event(sub: &mut Subscription) -> Envelope {
    let d = next_delivery(sub).await;
    d.ack_nowait().expect("acking");
    Envelope::from_bus(&d.subject, &d.payload).expect("a valid event")
}

/// Fails the test if anything is delivered within `quiet`.
pub async fn assert_quiet(sub: &mut Subscription, quiet: Duration) {
    if let Ok(Some(d)) = tokio::time::timeout(quiet, sub.next()).await {
        panic!(
            "expected nothing, got seq {} ({} deliveries) {} {}",
            d.seq,
            d.deliveries,
            d.subject,
            String::from_utf8_lossy(&d.payload)
        );
    }
}

/// `order:created` as orders publishes it: `buyer` holds `ticket` at `price_cents` until
/// `expires_at`.
pub fn order_created(
    order: &str,
    ticket: &str,
    buyer: &str,
    price_cents: i64,
    expires_at: UnixMillis,
) -> Envelope {
    Envelope::new(
        "orders",
        Event::OrderCreated(OrderCreated {
            id: order.into(),
            status: OrderStatus::Created,
            user_id: buyer.into(),
            expires_at,
            version: 0,
            ticket: OrderTicket {
                id: ticket.into(),
                price_cents: Money::from_cents(price_cents),
            },
        }),
    )
}

/// Fifteen minutes from now: an order's usual hold.
pub fn in_fifteen_minutes() -> UnixMillis {
    UnixMillis::now().after(Duration::from_secs(15 * 60))
}
