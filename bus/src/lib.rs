//! The tix event bus's broker.
//!
//! `tix-bus` is a broker process on a ZeroMQ ROUTER socket that keeps every event in a
//! SQLite log (`bus.db`) and hands it to durable queue groups, with acks, redelivery,
//! dead letters and heartbeats — the guarantees NATS Streaming gave the course app.
//! Services talk to it through the `tix-bus-client` crate, which also holds the wire
//! protocol; this crate is the broker alone.
//!
//! Where to start reading:
//! - [`store`]: the log on disk and the group-commit writer;
//! - `broker::core`: the single-threaded state machine (groups, sessions, timers);
//! - `broker::cmd`: one module per request of the protocol;
//! - [`policy`] and `broker::auth`: who may connect, and what each client may do.

pub mod broker;
pub mod policy;
pub mod store;

pub use broker::{Broker, BrokerConfig};
