//! `tix-tui`: interactive buying in the terminal.
//!
//! The Elm shape: [`app::App`] is the state, [`app::Action`]s change it through
//! [`app::update`] (pure: no terminal, no network, so every key is testable), which returns
//! [`app::Effect`]s — network calls that `main` runs in background tasks and whose results
//! come back as actions. [`ui::render`] only draws. [`term`] owns terminal setup and restore.

pub mod app;
pub mod term;
pub mod ui;
