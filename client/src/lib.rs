//! The typed client of the tix HTTP API, shared by the `tix` CLI and the `tix-tui` terminal
//! UI: the one place that knows URLs and error shapes. The bodies themselves are the
//! contract's types ([`tix_api`]), the same ones the services answer with.
//!
//! - [`client`]: [`ApiClient`], one method per API call;
//! - [`error`]: [`ClientError`], classified by [`Kind`] (and [`Network`] when nothing
//!   answered), with the server's `Retry-After`;
//! - [`format`]: ids as people read them (CLI tables and TUI screens);
//! - [`session`]: the signed-in session saved per profile in the user's config dir (0600).
//!
//! It pulls in neither the bus nor SQLite: `cargo tree -p tix-tui` stays small.

pub mod client;
pub mod error;
pub mod format;
pub mod session;

pub use client::{ApiClient, DEFAULT_TIMEOUT, TicketQuery};
pub use error::{ClientError, Kind, Network};
