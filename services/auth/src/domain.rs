//! Credentials that can only exist valid: parse, don't validate.

use tix_common::FieldError;
use tix_common::text::hidden;

/// A normalised (trimmed, lowercased) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, FieldError> {
        let email = raw.trim().to_lowercase();
        let invalid = || FieldError::new("email", "Email must be valid");
        if email.is_empty()
            || email.len() > 254
            || email.chars().any(|c| c.is_whitespace() || hidden(c))
        {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A public display name: trimmed, 1 to 40 characters, nothing invisible, and not an
/// email address (it is shown to everyone; an address there would leak one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX: usize = 40;

    pub fn parse(raw: &str) -> Result<DisplayName, FieldError> {
        let name = raw.trim();
        let n = name.chars().count();
        if n == 0 || n > Self::MAX {
            return Err(FieldError::new(
                "displayName",
                format!(
                    "Display name must be between 1 and {} characters",
                    Self::MAX
                ),
            ));
        }
        if name.chars().any(tix_common::text::hidden_in_text) {
            return Err(FieldError::new(
                "displayName",
                "Display name must not contain control or invisible characters",
            ));
        }
        if name.contains('@') {
            return Err(FieldError::new(
                "displayName",
                "Display name must not contain @ (it is shown to everyone)",
            ));
        }
        // What the clients show for the viewer's own tickets, and what they show for a
        // ticket whose seller has no name (the first eight characters of an id): a name
        // must not pass for either.
        let hex8 = name.len() == 8 && name.chars().all(|c| c.is_ascii_hexdigit());
        if name.eq_ignore_ascii_case("you") || hex8 {
            return Err(FieldError::new(
                "displayName",
                "Display name is reserved: choose another",
            ));
        }
        Ok(DisplayName(name.to_string()))
    }

    /// The name of an account that chose none: the email's local part, cut to fit.
    pub fn from_email(email: &Email) -> DisplayName {
        let local = tix_common::auth::default_display_name(email.as_str());
        DisplayName(local.chars().take(Self::MAX).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of acceptable length (in characters, not bytes).
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(raw: &str) -> Result<Password, FieldError> {
        let n = raw.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(FieldError::new(
                "password",
                format!(
                    "Password must be between {} and {} characters",
                    Self::MIN,
                    Self::MAX
                ),
            ));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "", "ann", "ann@", "@x.io", "a@b", "a b@x.io", "a@@x.io", "a@x..io", "a@.x.io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Looks like someone else's address, or carries what a terminal would act on.
        for hidden in [
            "eve\u{202E}moc.liam@x.io",
            "ann\u{2066}@x.io",
            "a\u{200B}nn@x.io",
            "ann@x\u{FEFF}.io",
            "ann\u{0}@x.io",
            "ann\u{1b}[31m@x.io",
            "ann\u{7f}@x.io",
            "ann\u{E0041}@x.io",
            "ann\u{AD}@x.io",
        ] {
            assert!(Email::parse(hidden).is_err(), "{hidden:?} accepted");
        }
        // Addresses in other scripts are addresses.
        assert!(Email::parse("jürgen@bücher.de").is_ok());
        assert!(Email::parse("用户@例子.中国").is_ok());
    }

    #[test]
    fn display_names_are_trimmed_visible_and_not_addresses() {
        assert_eq!(DisplayName::parse("  Ana B  ").unwrap().as_str(), "Ana B");
        assert_eq!(DisplayName::parse("Ana ❤️").unwrap().as_str(), "Ana ❤️");
        assert_eq!(
            DisplayName::parse("東京のチケット屋 🎫").unwrap().as_str(),
            "東京のチケット屋 🎫"
        );
        assert_eq!(
            DisplayName::parse(&"é".repeat(40))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            40
        );
        for bad in [
            "",
            "   ",
            &"x".repeat(41),
            "a\u{202E}b",
            "tab\there",
            "ana@mail.com",
        ] {
            let e = DisplayName::parse(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("displayName"), "{bad:?}");
        }
        let email = Email::parse("Long.Name+tag@Example.com").unwrap();
        assert_eq!(DisplayName::from_email(&email).as_str(), "long.name+tag");
    }

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(
            Password::parse(&"é".repeat(128)).is_ok(),
            "counted in characters"
        );
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }
}
