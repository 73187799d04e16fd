//! How people see values, shared by the CLI's text output and the TUI. Money has its
//! own [`tix_api::Money::display`].

/// The last 8 characters of an id: enough to tell sellers apart in a table.
pub fn short_id(id: &str) -> String {
    let n = id.chars().count();
    id.chars().skip(n.saturating_sub(8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_keep_the_end() {
        assert_eq!(short_id("seller-0000aaaa"), "0000aaaa");
        assert_eq!(short_id("ann"), "ann");
    }
}
