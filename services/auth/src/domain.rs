//! Credentials that can only exist valid: parse, don't validate.

use tix_common::FieldError;

/// A normalised (trimmed, lowercased) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, FieldError> {
        let email = raw.trim().to_lowercase();
        let invalid = || FieldError::new("email", "Email must be valid");
        if email.is_empty() || email.len() > 254 || email.chars().any(char::is_whitespace) {
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
