//! One module per screen, each with everything about that screen: its state, its keys, the
//! API answers it handles and its drawing. To change a screen, you read one file.
//!
//! The same shape in every module, so they read alike:
//! - `on_key(app, …, key) -> (Nav, Vec<Effect>)`: the screen's keys. The screen's
//!   per-visit state (a form, a reservation) is passed in by value and handed back inside
//!   the `Nav` (in `app.rs`), which says where to go next.
//! - `on_<action>(app, result) -> Vec<Effect>`: an answer from the API, named after its
//!   [`Action`](crate::app::Action) variant.
//! - `render(frame, area, …)`: draws the screen into the body area; reads, never writes.

pub mod help;
pub mod market;
pub mod my_tickets;
pub mod orders;
pub mod reservation;
pub mod sales;
pub mod sign_in;
pub mod ticket;
pub mod ticket_form;
