//! How people see values, shared by the CLI's text output and the TUI.

/// `$1,234.50`.
pub fn money(price: f64) -> String {
    let cents = (price * 100.0).round() as i64;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{frac:02}")
}

/// The last 8 characters of an id: enough to tell sellers apart in a table.
pub fn short_id(id: &str) -> String {
    let n = id.chars().count();
    id.chars().skip(n.saturating_sub(8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_grouped_with_two_decimals() {
        assert_eq!(money(25.0), "$25.00");
        assert_eq!(money(1234.5), "$1,234.50");
        assert_eq!(money(0.1), "$0.10");
        assert_eq!(money(1_000_000.0), "$1,000,000.00");
    }

    #[test]
    fn short_ids_keep_the_end() {
        assert_eq!(short_id("seller-0000aaaa"), "0000aaaa");
        assert_eq!(short_id("ann"), "ann");
    }
}
