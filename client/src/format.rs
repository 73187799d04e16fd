//! How people see values, shared by the CLI's text output and the TUI. Money has its
//! own [`tix_api::Money::display`].

use std::borrow::Cow;

use time::OffsetDateTime;
use time::macros::format_description;
use tix_api::UnixMillis;

/// Text from the server, made safe to print on a terminal: every control character
/// (Unicode Cc: ESC, BEL, CR, newlines, …), every format character (Cf: the bidi
/// overrides and isolates U+202A–U+202E and U+2066–U+2069, zero-width characters
/// U+200B–U+200F, U+2060–U+206F, U+FEFF, the soft hyphen U+00AD, U+061C, the tags
/// U+E0000–U+E007F, …), the line and paragraph separators U+2028/U+2029 and the Hangul
/// fillers drawn as blank space become U+FFFD (�), one character for one (so cursor
/// positions and widths stay right). An escape sequence in a title or an error body could
/// otherwise write the clipboard or retitle the window, and a right-to-left override
/// reverse a row. Only for text meant for people: `--json` keeps the server's bytes
/// exactly. Borrows when there is nothing to replace (the TUI draws every frame).
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.chars().any(unsafe_char) {
        Cow::Owned(
            s.chars()
                .map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// [`clean`], owned.
pub fn printable(s: &str) -> String {
    clean(s).into_owned()
}

/// Whether `c` must not reach a terminal as it is: see [`clean`].
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Cf, the whole category as of Unicode 16.
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
                // Zl, Zp: a line break in the middle of a cell.
                | '\u{2028}'
                | '\u{2029}'
                // Letters drawn as blank space, a favourite for invisible names.
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
        )
}

/// The last 8 characters of an id: enough to tell sellers apart in a table.
pub fn short_id(id: &str) -> String {
    let n = id.chars().count();
    id.chars().skip(n.saturating_sub(8)).collect()
}

/// An instant as short as it can be while still clear next to `now`: `14:32 UTC` today,
/// `25 Nov 14:32 UTC` this year, `25 Nov 2025` before. Always UTC (and says so): the
/// clients do not read the machine's time zone.
pub fn moment(at: UnixMillis, now: OffsetDateTime) -> String {
    let (at, now) = (at.to_datetime(), now.to_offset(time::UtcOffset::UTC));
    let text = if at.date() == now.date() {
        at.format(format_description!("[hour]:[minute] UTC"))
    } else if at.year() == now.year() {
        at.format(format_description!(
            "[day padding:none] [month repr:short] [hour]:[minute] UTC"
        ))
    } else {
        at.format(format_description!(
            "[day padding:none] [month repr:short] [year]"
        ))
    };
    text.unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_replaces_controls_and_invisibles_one_for_one() {
        assert!(matches!(clean("Zoë — 🎟 ok"), Cow::Borrowed(_)));
        for bad in [
            '\u{1b}',
            '\u{7}',
            '\r',
            '\n',
            '\t',
            '\u{7f}',
            '\u{9b}',
            '\u{AD}',
            '\u{61C}',
            '\u{200B}',
            '\u{200D}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{2028}',
            '\u{3164}',
        ] {
            let s = format!("a{bad}b");
            assert_eq!(clean(&s), "a\u{FFFD}b", "{:?}", bad);
        }
        assert_eq!(clean("\u{1b}]52;c;AAAA\u{7}"), "\u{FFFD}]52;c;AAAA\u{FFFD}");
    }

    #[test]
    fn control_and_format_characters_are_replaced() {
        assert_eq!(
            printable("\u{1b}]52;c;AAAA\u{7}ok\n"),
            "\u{FFFD}]52;c;AAAA\u{FFFD}ok\u{FFFD}"
        );
        for c in [
            '\u{202E}',
            '\u{2066}',
            '\u{200B}',
            '\u{200F}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{061C}',
            '\u{E0041}',
            '\u{2028}',
            '\u{9B}',
            '\u{7F}',
            '\u{0}',
        ] {
            assert_eq!(
                printable(&format!("a{c}b")),
                "a\u{FFFD}b",
                "U+{:04X}",
                c as u32
            );
        }
        // Letters, accents, CJK, emoji (with its variation selector) and spaces stay.
        let fine = "Café 東京 🎸 ❤\u{FE0F} São Paulo";
        assert_eq!(printable(fine), fine);
    }

    #[test]
    fn short_ids_keep_the_end() {
        assert_eq!(short_id("seller-0000aaaa"), "0000aaaa");
        assert_eq!(short_id("ann"), "ann");
    }

    #[test]
    fn moments_are_as_short_as_they_can_be() {
        // 2027-01-15T08:00:00Z
        let now = UnixMillis::new(1_800_000_000_000).to_datetime();
        let ago = |s: i64| UnixMillis::from(now - time::Duration::seconds(s));
        assert_eq!(moment(ago(28 * 60), now), "07:32 UTC");
        assert_eq!(moment(ago(86_400), now), "14 Jan 08:00 UTC");
        assert_eq!(moment(ago(40 * 86_400), now), "6 Dec 2026");
        let local = now.to_offset(time::UtcOffset::from_hms(-9, 0, 0).unwrap());
        assert_eq!(
            moment(ago(60), local),
            "07:59 UTC",
            "compared in UTC, whatever the offset `now` carries"
        );
    }
}
