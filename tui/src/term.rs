//! Terminal setup and restore, through ratatui's own `try_init`/`restore` (raw mode, the
//! alternate screen, and a panic hook that restores them), plus what tix adds on top:
//! mouse capture and bracketed paste. Those two are turned off on a normal exit, on an
//! error and on a panic (by a hook that runs before ratatui's), so a crash never leaves
//! the shell raw or printing escape codes for every mouse move.

use std::io::stdout;

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

pub fn init() -> std::io::Result<Term> {
    let terminal = ratatui::try_init()?;
    // Chained in front of ratatui's hook, which then restores the rest and prints the
    // panic on the normal screen.
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        undo_extras();
        ratatui_hook(info);
    }));
    if let Err(e) = execute!(stdout(), EnableMouseCapture, EnableBracketedPaste) {
        restore();
        return Err(e);
    }
    Ok(terminal)
}
