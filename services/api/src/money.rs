//! Money: integer cents inside, the API's decimal number of currency units on the wire.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in integer cents. On the wire it is a JSON number in currency units
/// (`2000` → `20`, `2050` → `20.5`); floats exist only in that text, never in arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a number is not an amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("more than 2 decimals")]
    TooPrecise,
    #[error("out of range")]
    OutOfRange,
    #[error("not a decimal number")]
    NotANumber,
}

impl Money {
    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    /// Reads a JSON number of currency units exactly: `20.1` is 2010 cents, `10.005` is
    /// refused rather than rounded.
    pub fn from_number(n: &serde_json::Number) -> Result<Money, MoneyError> {
        if let Some(i) = n.as_i64() {
            return i.checked_mul(100).map(Money).ok_or(MoneyError::OutOfRange);
        }
        let Some(f) = n.as_f64() else {
            return Err(MoneyError::OutOfRange); // a u64 beyond i64
        };
        let scaled = f * 100.0;
        let rounded = scaled.round();
        // 20.1 * 100 is 2010.0000000000002: allow float noise, not a third decimal.
        if (scaled - rounded).abs() > 1e-6 * scaled.abs().max(1.0) {
            return Err(MoneyError::TooPrecise);
        }
        if rounded.abs() < 9.0e15 {
            Ok(Money(rounded as i64))
        } else {
            Err(MoneyError::OutOfRange)
        }
    }

    /// The wire form: a whole number when there are no cents, else a decimal.
    pub fn to_number(self) -> serde_json::Number {
        if self.0 % 100 == 0 {
            serde_json::Number::from(self.0 / 100)
        } else {
            serde_json::Number::from_f64(self.0 as f64 / 100.0)
                .expect("cents over 100 are always finite")
        }
    }

    /// `$1,234.50`: grouped, two decimals, for people.
    pub fn display(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let cents = self.0.unsigned_abs();
        let digits = (cents / 100).to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{sign}${grouped}.{:02}", cents % 100)
    }
}

/// Plain decimal, as a user types it: `20`, `20.50`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let c = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", c / 100, c % 100)
    }
}

/// Parses what a person types (`12`, `12.5`, `.5`, `12.50`, `$1,250.00`) without going
/// through a float. Commas are accepted only between groups of three digits, so `12,50`
/// (a decimal comma) is refused rather than read as 1250.
impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Money, MoneyError> {
        let s = s.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let s = s.strip_prefix('$').unwrap_or(s);
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        let groups: Vec<&str> = whole.split(',').collect();
        let grouped_well = groups.len() == 1
            || (!groups[0].is_empty()
                && groups[0].len() <= 3
                && groups[1..].iter().all(|g| g.len() == 3));
        let whole = groups.concat();
        if !grouped_well
            || !digits(&whole)
            || !digits(frac)
            || (whole.is_empty() && frac.is_empty())
        {
            return Err(MoneyError::NotANumber);
        }
        if frac.len() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        let units: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::OutOfRange)?
        };
        let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
        let cents = units
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac))
            .ok_or(MoneyError::OutOfRange)?;
        Ok(Money(if neg { -cents } else { cents }))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_number().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        Money::from_number(&n).map_err(serde::de::Error::custom)
    }
}

/// Serde for `Money` as integer cents, the way events carry it (`"priceCents": 2050`).
pub(crate) mod cents {
    use super::Money;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(m.cents())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        i64::deserialize(d).map(Money::from_cents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(cents: i64) -> String {
        serde_json::to_string(&Money::from_cents(cents)).unwrap()
    }

    #[test]
    fn the_wire_form_is_a_number_of_currency_units() {
        assert_eq!(wire(2000), "20");
        assert_eq!(wire(2050), "20.5");
        assert_eq!(wire(1), "0.01");
        assert_eq!(wire(100_000_000), "1000000");
    }

    #[test]
    fn numbers_are_read_exactly_or_refused() {
        let read = |s: &str| serde_json::from_str::<Money>(s).map(Money::cents);
        assert_eq!(read("20").unwrap(), 2000);
        assert_eq!(read("20.1").unwrap(), 2010);
        assert_eq!(read("0.01").unwrap(), 1);
        assert!(read("10.005").is_err(), "a third decimal is refused");
        assert!(read("1e300").is_err());
        assert!(read("18446744073709551615").is_err());
        assert!(read("\"20\"").is_err(), "a string is not a number");
    }

    #[test]
    fn every_amount_survives_the_round_trip() {
        for cents in [1, 99, 100, 101, 2010, 12345, 99_999_999, 100_000_000] {
            let back: Money = serde_json::from_str(&wire(cents)).unwrap();
            assert_eq!(back.cents(), cents);
        }
    }

    #[test]
    fn people_see_grouped_dollars_and_cents() {
        assert_eq!(Money::from_cents(2500).display(), "$25.00");
        assert_eq!(Money::from_cents(123450).display(), "$1,234.50");
        assert_eq!(Money::from_cents(10).display(), "$0.10");
        assert_eq!(Money::from_cents(100_000_000).display(), "$1,000,000.00");
        assert_eq!(Money::from_cents(2050).to_string(), "20.50");
    }

    #[test]
    fn typed_amounts_are_parsed_without_floats() {
        let p = |s: &str| s.parse::<Money>().map(Money::cents);
        assert_eq!(p("12"), Ok(1200));
        assert_eq!(p("12.5"), Ok(1250));
        assert_eq!(p(" 12.50 "), Ok(1250));
        assert_eq!(p("$1,250.00"), Ok(125000));
        assert_eq!(p("0.07"), Ok(7));
        assert_eq!(p("12.505"), Err(MoneyError::TooPrecise));
        assert_eq!(p(".5"), Ok(50));
        assert_eq!(p("12."), Ok(1200));
        assert_eq!(p("12,50"), Err(MoneyError::NotANumber), "a decimal comma");
        assert_eq!(p("1,2500"), Err(MoneyError::NotANumber));
        assert_eq!(p(",250"), Err(MoneyError::NotANumber));
        assert_eq!(p("."), Err(MoneyError::NotANumber));
        assert_eq!(p("1e3"), Err(MoneyError::NotANumber));
        assert_eq!(p("abc"), Err(MoneyError::NotANumber));
        assert_eq!(p(""), Err(MoneyError::NotANumber));
        assert_eq!(p("99999999999999999999"), Err(MoneyError::OutOfRange));
    }
}
