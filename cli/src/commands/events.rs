//! `events tail`: watching the bus directly (not through the gateway), to see the
//! services talk to each other while debugging or demoing.

use std::path::Path;
use std::time::Duration;

use crate::ctx::{Ctx, emit};
use crate::failure::{Failure, Outcome};
use crate::output;

/// Which events to show.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only these subjects (all when empty).
    pub subjects: Vec<String>,
    /// Only events with this correlation id.
    pub request: Option<String>,
}

pub async fn tail(
    ctx: &Ctx,
    Filter { subjects, request }: Filter,
    endpoint: &str,
    client: &str,
    key_file: Option<&Path>,
) -> Outcome {
    // The key scripts/stack leaves for this client, when no other is given.
    let fallback = tix_bus_client::key::local_key_file(client);
    let key = tix_bus_client::key::resolve(key_file, Some(&fallback))
        .map_err(|e| Failure::local(anyhow::anyhow!(e)))?;
    let mut opts = tix_bus_client::ClientOptions::new(endpoint, client);
    opts.key = key;
    let bus = tix_bus_client::Client::connect(opts);
    bus.wait_connected(Duration::from_secs(3))
        .await
        .map_err(|e| match e {
            tix_bus_client::Error::Refused(why) => Failure::local(anyhow::anyhow!(
                "the event bus refused client {client}: {}\nhint: its key goes in TIX_BUS_KEY, --bus-key-file, or {}",
                tix_client::format::printable(&why.to_string()),
                fallback.display()
            )),
            _ => Failure::BusUnreachable {
                endpoint: endpoint.to_string(),
            },
        })?;
    // A fresh, ephemeral consumer: only new events, and nothing left behind on the broker.
    let mut opts =
        tix_bus_client::SubscribeOptions::new(format!("tix-tail-{}", uuid::Uuid::now_v7()), &["*"]);
    if !subjects.is_empty() {
        opts.subjects = subjects;
    }
    opts.ephemeral = true;
    let mut sub = bus.subscribe(opts).await.map_err(Failure::local)?;
    // For people at a terminal, and on stderr so piped output holds only events.
    if !ctx.json {
        eprintln!("Following new events on {endpoint} (Ctrl-C to stop)…");
    }
    loop {
        tokio::select! {
            d = sub.next() => {
                let Some(d) = d else { break };
                let _ = d.ack_nowait();
                let event: serde_json::Value = serde_json::from_slice(&d.payload).unwrap_or(serde_json::Value::Null);
                if request.as_deref().is_some_and(|r| event["correlationId"].as_str() != Some(r)) {
                    continue;
                }
                let line = if ctx.json {
                    event.to_string()
                } else {
                    output::event(&d.subject, &event)
                };
                // A closed pipe ends the tail like Ctrl-C: quietly, the group left behind.
                if emit(&line).is_err() {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    bus.close().await;
    Ok(())
}
