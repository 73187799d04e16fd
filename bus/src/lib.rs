//! The tix event bus.
//!
//! `tix-bus` is a broker process on a ZeroMQ ROUTER socket that keeps every event in a
//! SQLite log (`bus.db`) and hands it to durable queue groups, with acks, redelivery,
//! dead letters and heartbeats — the guarantees NATS Streaming gave the course app.
//! Services talk to it through [`Client`].
//!
//! Where to start reading:
//! - [`protocol`]: the messages on the wire;
//! - [`store`]: the log on disk and the group-commit writer;
//! - `broker::core`: the single-threaded state machine (groups, sessions, timers);
//! - [`client`]: the connection driver services use.

pub mod broker;
pub mod client;
pub mod protocol;
pub mod store;

pub use broker::{Broker, BrokerConfig};
pub use client::{Client, ClientOptions, Delivery, Error, Stats, Subscription};
pub use protocol::SubscribeOptions;
