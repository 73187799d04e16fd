//! Text that other people will read in a terminal: what may not be in it.

/// Characters that change how text looks without being seen: control characters, and
/// Unicode's invisible format characters — bidirectional overrides and isolates (which can
/// show `moc.liam@eve` as `eve@mail.com`, or reverse the rest of a table row), zero-width
/// joiners and spaces, the soft hyphen, the byte-order mark, tag characters. Letters of any
/// script, and emoji, stay allowed.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}')
}

/// [`hidden`], for text shown rather than compared (titles, display names): variation
/// selectors are allowed there, since emoji need them (`❤️` is U+2764 U+FE0F) and they
/// only choose how the character before them is drawn. An email keeps refusing them: two
/// addresses must not look alike.
pub fn hidden_in_text(c: char) -> bool {
    hidden(c) && !matches!(c, '\u{FE00}'..='\u{FE0F}')
}

#[cfg(test)]
mod tests {
    use super::{hidden, hidden_in_text};

    #[test]
    fn text_takes_variation_selectors_and_nothing_else_hidden() {
        assert!("I ❤️ NY ☀️".chars().all(|c| !hidden_in_text(c)));
        assert!(hidden('\u{FE0F}'));
        for c in ['\u{202E}', '\u{200B}', '\u{1b}'] {
            assert!(hidden_in_text(c), "{c:?}");
        }
    }

    #[test]
    fn hidden_characters_are_found_and_letters_are_not() {
        for c in [
            '\u{1b}',
            '\n',
            '\u{202E}',
            '\u{2066}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{E0041}',
        ] {
            assert!(hidden(c), "{c:?}");
        }
        for c in ['a', 'é', '東', 'я', '🎫', ' ', '@'] {
            assert!(!hidden(c), "{c:?}");
        }
    }
}
