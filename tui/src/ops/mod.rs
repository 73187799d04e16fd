//! The live operations screen (`tix-tui --ops`, or `o` from the marketplace): each
//! process's readiness, events per second per subject, each group's lag and dead letters,
//! and the latest events scrolling by — the system at work, for someone demoing or
//! watching it.
//!
//! | file | job |
//! |---|---|
//! | [`model`] | what the screen knows, changed only by [`Msg`]s (testable without I/O) |
//! | [`feed`] | the tasks that ask the gateway, the broker's metrics port and the bus |
//! | [`prom`] | reading Prometheus text |
//! | [`view`] | drawing |

pub mod feed;
pub mod model;
pub mod prom;
pub mod view;

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{
    self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind,
};
use tokio::sync::mpsc;

pub use feed::Config;
pub use model::{Msg, Ops};

use crate::widgets::theme::Theme;

/// What the person at the terminal does, as the screen needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Key(KeyEvent),
    /// The mouse wheel: up is back in time.
    Wheel {
        up: bool,
    },
    Resize,
}

/// What an input does to the screen; `false` when it leaves.
pub fn on_input(ops: &mut Ops, input: Input) -> bool {
    match input {
        Input::Key(k) => match k.code {
            KeyCode::Char('q') | KeyCode::Esc => return false,
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return false,
            KeyCode::Char('p') | KeyCode::Char(' ') => ops.paused = !ops.paused,
            KeyCode::Up | KeyCode::Char('k') => ops.scroll_back(1),
            KeyCode::Down | KeyCode::Char('j') => ops.scroll_forward(1),
            KeyCode::PageUp => ops.scroll_back(10),
            KeyCode::PageDown => ops.scroll_forward(10),
            KeyCode::End | KeyCode::Char('G') => ops.scroll = 0,
            _ => {}
        },
        Input::Wheel { up: true } => ops.scroll_back(3),
        Input::Wheel { up: false } => ops.scroll_forward(3),
        Input::Resize => {}
    }
    true
}

/// Reads the terminal's events on a thread of their own (crossterm's reads block).
pub fn spawn_input() -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        loop {
            let input = match event::poll(Duration::from_millis(250)) {
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => Input::Key(k),
                    Ok(Event::Mouse(m)) => match m.kind {
                        MouseEventKind::ScrollUp => Input::Wheel { up: true },
                        MouseEventKind::ScrollDown => Input::Wheel { up: false },
                        _ => continue,
                    },
                    Ok(Event::Resize(..)) => Input::Resize,
                    Ok(_) => continue,
                    Err(_) => break,
                },
                Ok(false) => {
                    if tx.is_closed() {
                        break;
                    }
                    continue;
                }
                Err(_) => break,
            };
            if tx.send(input).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs the screen until the person leaves it (q, Esc, Ctrl-C) or the input ends.
pub async fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    cfg: &Config,
    theme: &Theme,
    input: &mut mpsc::UnboundedReceiver<Input>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _feed = feed::start(cfg, tx);
    let mut ops = Ops::new(&cfg.gateway, &cfg.bus_metrics);
    // What is drawn: the live state, or the one frozen when paused.
    let mut frozen: Option<Ops> = None;
    // Bursts of events are drawn at most ten times a second.
    let mut frame = tokio::time::interval(Duration::from_millis(100));
    let mut dirty = true;
    loop {
        tokio::select! {
            Some(msg) = rx.recv() => {
                ops.apply(msg);
                dirty = true;
            }
            i = input.recv() => {
                let Some(i) = i else { return Ok(()) };
                if !on_input(&mut ops, i) {
                    return Ok(());
                }
                frozen = ops.paused.then(|| frozen.take().unwrap_or_else(|| ops.clone()));
                if let Some(f) = frozen.as_mut() {
                    // Scrolling a paused screen moves through what was frozen.
                    f.scroll = ops.scroll.min(f.events.len().saturating_sub(1));
                    f.paused = true;
                }
                dirty = true;
            }
            _ = frame.tick() => {
                if dirty {
                    let shown = frozen.as_ref().unwrap_or(&ops);
                    terminal.draw(|f| view::render(f, f.area(), shown, theme))?;
                    dirty = false;
                }
            }
        }
    }
}
