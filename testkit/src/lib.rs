//! The one test-support library of the workspace: every crate's tests start what they need
//! and talk to it through these helpers, so no test file declares its own.
//!
//! - [`process`] and [`stack`]: the real tix processes, each on a free port with its own
//!   temporary data dir, logs kept in that dir, killed when the handle drops. Binaries are
//!   found next to the test executable (`target/<profile>/`), which is where
//!   `cargo test --workspace` builds them; `TIX_BIN_DIR` overrides that.
//! - [`api`]: signed-in users (tokens minted with the stacks' secret, as auth would) and a
//!   client that answers `(status, JSON)` whatever happens, for testing failure paths.
//! - [`wait`]: [`eventually`], for what happens asynchronously.
//! - [`events`] (feature `bus`): publishing events as a service would and awaiting them.
//!   Behind a feature so crates whose tests never touch the bus (the TUI) do not build the
//!   bus client.
//! - [`stripe`] (feature `stripe`): [`StripeDouble`], an HTTP server that answers like
//!   Stripe's Charges and Refunds API, with faults to inject, for testing the payments
//!   service's Stripe client and what it does when a charge's outcome is unknown.

pub mod api;
#[cfg(feature = "bus")]
pub mod events;
pub mod process;
pub mod stack;
#[cfg(feature = "stripe")]
pub mod stripe;
pub mod wait;

pub use api::{Api, User, field, message};
pub use process::{Proc, bin, bin_dir, free_port};
pub use stack::{
    ALL, Bus, SERVICES, Service, Stack, TEST_BUS_CLIENT, TEST_BUS_KEY, TEST_JWT_SECRET,
};
#[cfg(feature = "stripe")]
pub use stripe::{ChargeRecord, Fault, RefundRecord, StripeDouble};
pub use wait::eventually;
