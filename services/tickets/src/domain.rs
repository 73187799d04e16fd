//! Ticket fields that can only exist valid.

use serde_json::Value;
use tix_api::{Money, MoneyError};
use tix_common::FieldError;

/// A ticket's title: trimmed, 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub const MAX: usize = 200;

    pub fn parse(v: Option<&Value>) -> Result<Title, FieldError> {
        let err = |m: &str| FieldError::new("title", m);
        match v {
            None | Some(Value::Null) => Err(err("Title is required")),
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() {
                    Err(err("Title is required"))
                } else if t.chars().count() > Self::MAX {
                    Err(err("Title must be at most 200 characters"))
                } else if t.chars().any(tix_common::text::hidden_in_text) {
                    // Bidi overrides and invisible characters too: a title is shown to
                    // everyone, and could reverse the rest of a row or pass for another.
                    Err(err(
                        "Title must not contain control or invisible characters",
                    ))
                } else {
                    Ok(Title(t.to_string()))
                }
            }
            Some(_) => Err(err("Title must be a string")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ticket's price: greater than 0, at most 1,000,000.00, at most 2 decimals, given as a
/// JSON number of currency units or as a string holding a plain decimal (`"12.50"`: what
/// a web form sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(Money);

impl Price {
    pub const MAX_CENTS: i64 = 100_000_000;

    pub fn parse(v: Option<&Value>) -> Result<Price, FieldError> {
        let err = |m: &str| FieldError::new("price", m);
        let money = match v {
            None | Some(Value::Null) => return Err(err("Price is required")),
            Some(Value::Number(n)) => Money::from_number(n),
            Some(Value::String(s)) if is_plain_decimal(s.trim()) => s.trim().parse(),
            Some(_) => return Err(err("Price must be a number")),
        };
        match money {
            Err(MoneyError::TooPrecise) => Err(err("Price must have at most 2 decimals")),
            Err(_) => Err(err("Price must be at most 1000000")),
            Ok(m) if m.cents() <= 0 => Err(err("Price must be greater than 0")),
            Ok(m) if m.cents() <= Self::MAX_CENTS => Ok(Price(m)),
            Ok(_) => Err(err("Price must be at most 1000000")),
        }
    }

    /// A price read back from the database, where only valid prices are written.
    pub fn from_cents(c: i64) -> Price {
        Price(Money::from_cents(c))
    }

    pub fn cents(self) -> i64 {
        self.0.cents()
    }

    pub fn money(self) -> Money {
        self.0
    }
}

/// `12`, `12.5`, `-3`, `.5`: digits with at most one point, nothing else (no currency sign,
/// grouping, exponent or spaces inside) — so a string is read exactly as the same number
/// would be.
fn is_plain_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    (!whole.is_empty() || !frac.is_empty())
        && whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn price(v: Value) -> Result<i64, String> {
        Price::parse(Some(&v))
            .map(|p| p.cents())
            .map_err(|e| e.message)
    }

    #[test]
    fn prices_become_cents() {
        assert_eq!(price(json!(20)), Ok(2000));
        assert_eq!(price(json!(20.1)), Ok(2010));
        assert_eq!(price(json!(0.01)), Ok(1));
        assert_eq!(price(json!(1000000)), Ok(100_000_000));
        // A web form's price, as a string: the same rules, read without a float.
        assert_eq!(price(json!("12.50")), Ok(1250));
        assert_eq!(price(json!(" 12 ")), Ok(1200));
        assert_eq!(price(json!(".5")), Ok(50));
        assert_eq!(price(json!("0.07")), Ok(7));
    }

    #[test]
    fn bad_prices_say_why() {
        assert!(price(json!(0)).unwrap_err().contains("greater than 0"));
        assert!(price(json!(-5)).unwrap_err().contains("greater than 0"));
        assert!(price(json!(10.005)).unwrap_err().contains("2 decimals"));
        for not_a_number in [
            "", " ", "ten", "$10", "1,000", "1e3", "10.5.1", ".", "-", "0x10",
        ] {
            assert!(
                price(json!(not_a_number)).unwrap_err().contains("number"),
                "{not_a_number:?}"
            );
        }
        assert!(price(json!("0")).unwrap_err().contains("greater than 0"));
        assert!(
            price(json!("-2.50"))
                .unwrap_err()
                .contains("greater than 0")
        );
        assert!(price(json!("10.005")).unwrap_err().contains("2 decimals"));
        assert!(price(json!("1000000.01")).unwrap_err().contains("at most"));
        assert!(
            price(json!("99999999999999999999999"))
                .unwrap_err()
                .contains("at most")
        );
        assert!(price(json!(true)).unwrap_err().contains("number"));
        assert!(price(json!(1e300)).unwrap_err().contains("at most"));
        assert!(price(json!(u64::MAX)).unwrap_err().contains("at most"));
        assert!(Price::parse(None).unwrap_err().message.contains("required"));
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(
            Title::parse(Some(&json!("  Show "))).unwrap().as_str(),
            "Show"
        );
        assert!(Title::parse(Some(&json!("   "))).is_err());
        assert!(Title::parse(Some(&json!(5))).is_err());
        assert!(Title::parse(Some(&json!("x".repeat(201)))).is_err());
        assert!(Title::parse(None).is_err());
    }

    #[test]
    fn titles_hide_nothing() {
        assert_eq!(
            Title::parse(Some(&json!("東京 🎫 Live"))).unwrap().as_str(),
            "東京 🎫 Live"
        );
        assert!(
            Title::parse(Some(&json!("I ❤️ NY"))).is_ok(),
            "emoji with a variation selector"
        );
        // A bidi override would reverse the rest of a table row on some terminals; an
        // escape would reach the terminal; a zero-width space makes a look-alike.
        for bad in [
            "Show\u{202E}00.52$",
            "a\u{1b}]52;c;AAAA\u{7}",
            "Tay\u{200B}lor",
            "x\u{2066}y",
        ] {
            let e = Title::parse(Some(&json!(bad))).unwrap_err();
            assert_eq!(
                e.message, "Title must not contain control or invisible characters",
                "{bad:?}"
            );
        }
    }
}
