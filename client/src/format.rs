//! How people see values, shared by the CLI's text output and the TUI. Money has its
//! own [`tix_api::Money::display`].

use time::OffsetDateTime;
use time::macros::format_description;
use tix_api::UnixMillis;

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
