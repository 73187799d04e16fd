//! `tix-tui`: buying tickets in the terminal.
//!
//! The Elm shape, as in ratatui's templates: [`app::App`] is all the state; an
//! [`app::Action`] (a key, a tick, an answer from the API) changes it through
//! [`app::update`], which returns [`app::Effect`]s (network calls) for `main` to run in
//! background tasks, whose results come back as actions; [`ui::render`] only draws.
//! `update` touches neither the terminal nor the network, so every key is testable
//! without either.
//!
//! # Layout
//!
//! | file | job |
//! |---|---|
//! | [`app`] | the state, the messages, navigation (back stack), the keys that work everywhere, and `update`, which routes the rest to a screen |
//! | [`screens`] | one module per screen: its state, its keys, the answers it handles, its drawing |
//! | [`widgets`] | what screens share: the paged list, text inputs and forms, themes, click targets, and [`widgets::clean`], which every string from the server goes through before it is drawn |
//! | [`pointer`](mod@pointer) | mouse clicks, the wheel and paste, turned into what keys do |
//! | [`ui`] | the frame: title bar, status bar, the screen's body between them, help on top |
//! | [`term`] | terminal setup (ratatui's `init`/`restore`, mouse, paste), restored on exit, error or panic (which then ends the program, whatever thread or task it was in) |
//! | [`cli`] | flags, the theme choice, `--man` and `--completions` |
//! | `main.rs` | the event loop: keys, mouse, paste, ticks, running effects with the HTTP client |
//!
//! # Where to start
//!
//! Read [`app::update`] and the [`app::Screen`] enum, then the module of the screen you
//! care about, e.g. [`screens::market`] (the home screen). To add a screen: a variant in
//! `Screen`, a module in `screens/` with `on_key` and `render`, and one arm each in
//! `app::on_key`, `ui::render`, the title bar and `help::Footer` (and in `App::typing` /
//! `App::refresh` if it has a text input or data to reload); its keys go in `help::KEYS`.
//!
//! The mouse never has handlers of its own: drawing records what can be clicked
//! ([`widgets::hits`]) and a click becomes the key it stands for, a row selection, or a
//! form focus, so mouse and keyboard cannot drift apart.
//!
//! Tests: `tests/update.rs` drives `update` key by key, `tests/render.rs` snapshots screens
//! on ratatui's `TestBackend`, `tests/hostile.rs` draws hostile server text,
//! `tests/pty.rs` runs the real binary against the real stack.

pub mod app;
pub mod cli;
pub mod ops;
pub mod pointer;
pub mod screens;
pub mod term;
pub mod ui;
pub mod widgets;
