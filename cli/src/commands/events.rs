//! `events tail`: watching the bus directly (not through the gateway), to see the
//! services talk to each other while debugging or demoing.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};
use crate::output;

pub async fn tail(ctx: &Ctx, subjects: Vec<String>, endpoint: &str) -> Outcome {
    let bus =
        tix_bus_client::Client::connect(tix_bus_client::ClientOptions::new(endpoint, "tix-cli"));
    bus.wait_connected(Duration::from_secs(3))
        .await
        .map_err(|_| Failure::BusUnreachable {
            endpoint: endpoint.to_string(),
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
                if ctx.json {
                    println!("{event}");
                } else {
                    println!("{}", output::event(&d.subject, &event));
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    bus.close().await;
    Ok(())
}
