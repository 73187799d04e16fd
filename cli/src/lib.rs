//! The typed client of the tix HTTP API, shared by the `tix` CLI and the `tix-tui` terminal
//! UI: the one place that knows URLs, bodies and error shapes.
//!
//! - [`client`]: [`client::ApiClient`], one method per API call, errors classified by kind;
//! - [`format`]: money and ids as people read them (CLI tables and TUI screens);
//! - [`session`]: the signed-in session saved per profile in the user's config dir (0600).

pub mod client;
pub mod format;
pub mod session;
