//! Colour themes. Every style a screen uses comes from the [`Theme`] on the app, so a
//! monochrome terminal (or `NO_COLOR`) gets the same screens with emphasis by bold and
//! reverse video alone.

use ratatui::style::{Color, Modifier, Style};

/// The styles of one theme, by what they mean rather than how they look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub name: &'static str,
    /// The " tix " tag in the title bar.
    pub brand: Style,
    /// The cursor row of a list, the focused button of a form.
    pub selected: Style,
    /// Buttons that are not focused.
    pub button: Style,
    pub error: Style,
    pub ok: Style,
    /// Hints and secondary text.
    pub dim: Style,
    /// The status bar.
    pub bar: Style,
    /// Key names in the footer and the help.
    pub key: Style,
    pub header: Style,
    /// What marks the viewer's own tickets (with the ★ column): a style no text from the
    /// server can take, so a seller named "you" is not mistaken for the viewer.
    pub mine: Style,
}

/// The names `--theme` accepts, in the order `--help` lists them.
pub const NAMES: &[&str] = &["default", "mono"];

impl Theme {
    pub fn colour() -> Theme {
        Theme {
            name: "default",
            brand: Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            button: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            error: Style::new().fg(Color::Red),
            ok: Style::new().fg(Color::Green),
            dim: Style::new().fg(Color::DarkGray),
            bar: Style::new().bg(Color::DarkGray),
            key: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            header: Style::new().add_modifier(Modifier::BOLD),
            mine: Style::new()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        }
    }

    /// No colour at all: what `NO_COLOR` asks for.
    pub fn mono() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let reversed = Style::new().add_modifier(Modifier::REVERSED);
        Theme {
            name: "mono",
            brand: reversed.add_modifier(Modifier::BOLD),
            selected: reversed,
            button: bold,
            error: bold,
            ok: bold,
            dim: Style::new(),
            bar: reversed,
            key: bold,
            header: bold,
            mine: bold.add_modifier(Modifier::UNDERLINED),
        }
    }

    pub fn by_name(name: &str) -> Option<Theme> {
        match name {
            "default" => Some(Theme::colour()),
            "mono" => Some(Theme::mono()),
            _ => None,
        }
    }

    /// The theme asked for: `--theme`/`TIX_THEME` when given (an explicit choice wins, as
    /// no-color.org recommends), else monochrome when `NO_COLOR` is set and not empty.
    pub fn choose(asked: Option<&str>, no_color: Option<&str>) -> Result<Theme, String> {
        match asked {
            Some(name) => Theme::by_name(name)
                .ok_or_else(|| format!("unknown theme {name:?}: one of {}", NAMES.join(", "))),
            None if no_color.is_some_and(|v| !v.is_empty()) => Ok(Theme::mono()),
            None => Ok(Theme::colour()),
        }
    }
}

impl Default for Theme {
    fn default() -> Theme {
        Theme::colour()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_picks_mono_unless_a_theme_is_asked_for() {
        assert_eq!(Theme::choose(None, None).unwrap().name, "default");
        assert_eq!(Theme::choose(None, Some("")).unwrap().name, "default");
        assert_eq!(Theme::choose(None, Some("1")).unwrap().name, "mono");
        assert_eq!(
            Theme::choose(Some("default"), Some("1")).unwrap().name,
            "default"
        );
        assert!(Theme::choose(Some("neon"), None).is_err());
    }
}
