//! The client side of the tix event bus: the wire [`protocol`] and the [`Client`] that
//! services, the CLI's event tail and the operator commands use to talk to `tix-bus`.
//!
//! It depends on neither SQLite nor the broker, so everything that only talks to the bus
//! compiles without them. Where to start reading:
//! - [`protocol`]: every message on the wire, and the JSON bodies of the rare requests;
//! - [`client`]: the handles callers hold ([`Client`], [`Subscription`], [`Delivery`]);
//! - [`protocol::auth`]: the handshake and the seal on every message; [`key`]: where a
//!   client's key comes from;
//! - `driver`: the one task per client that owns the socket, batches, heartbeats and
//!   reconnects.

pub mod client;
mod driver;
pub mod key;
pub mod protocol;

pub use client::{Client, ClientOptions, Delivery, Error, Result, Subscription};
pub use protocol::auth::BusKey;
pub use protocol::{DeadLetter, GroupStats, Stats, SubscribeOptions};
