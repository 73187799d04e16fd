//! Terminal setup and restore, through ratatui's own `try_init`/`restore` (raw mode, the
//! alternate screen, and a panic hook that restores them), plus what tix adds on top:
//! mouse capture and bracketed paste. Those two are turned off on a normal exit, on an
//! error and on a panic (by a hook that runs before ratatui's), so a crash never leaves
//! the shell raw or printing escape codes for every mouse move.
//!
//! Any panic ends the program, wherever it happens. The hook runs on the panicking
//! thread before unwinding, and a panic in a `tokio::spawn`ed task is caught by tokio
//! (the task's `JoinHandle` reports it) *after* the hook ran: if the hook only restored
//! the terminal, the event loop would go on drawing full-screen frames into a cooked
//! terminal, with raw mode and the alternate screen gone. So the hook restores, lets
//! ratatui's hook (and through it the default one) print the message, and then exits with
//! 101, the code of a panicking `main`.

use std::io::stdout;
use std::panic::PanicHookInfo;

use ratatui::DefaultTerminal;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use ratatui::crossterm::execute;

pub type Term = DefaultTerminal;

/// What tix turned on beyond ratatui; safe to call more than once.
fn undo_extras() {
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste, Show);
}

pub fn restore() {
    undo_extras();
    ratatui::restore();
}

/// A panic hook, as [`std::panic::set_hook`] takes it.
pub type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The hook [`init`] installs, its parts passed in so a test can watch them: `undo`
/// (what tix turned on), then `previous` (ratatui's hook: the rest of the terminal, then
/// the message), then `exit(101)`, so a panic on any thread or task ends the program
/// rather than leaving it running on a restored terminal.
pub fn panic_hook(undo: fn(), previous: Hook, exit: fn(i32)) -> Hook {
    Box::new(move |info| {
        undo();
        previous(info);
        exit(101);
    })
}

fn exit(code: i32) {
    std::process::exit(code);
}

pub fn init() -> std::io::Result<Term> {
    let terminal = ratatui::try_init()?;
    // Chained in front of ratatui's hook, which then restores the rest and prints the
    // panic on the normal screen.
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(panic_hook(undo_extras, ratatui_hook, exit));
    if let Err(e) = execute!(stdout(), EnableMouseCapture, EnableBracketedPaste) {
        restore();
        return Err(e);
    }
    Ok(terminal)
}
