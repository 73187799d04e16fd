//! Instants as unix milliseconds: what the databases store and what expiry compares.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant in unix milliseconds (UTC). Stored as an integer; on the wire it is RFC 3339
/// text (`2026-11-26T05:31:00.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(i64);

impl UnixMillis {
    pub const fn new(ms: i64) -> UnixMillis {
        UnixMillis(ms)
    }

    pub fn now() -> UnixMillis {
        UnixMillis::from(OffsetDateTime::now_utc())
    }

    pub const fn as_i64(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating.
    pub fn after(self, d: Duration) -> UnixMillis {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        UnixMillis(self.0.saturating_add(ms))
    }

    /// How long from `self` until `later`; zero when `later` is not later.
    pub fn until(self, later: UnixMillis) -> Duration {
        Duration::from_millis(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn to_rfc3339(self) -> String {
        self.to_datetime().format(&Rfc3339).unwrap_or_default()
    }
}

impl From<OffsetDateTime> for UnixMillis {
    fn from(t: OffsetDateTime) -> UnixMillis {
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        UnixMillis(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for UnixMillis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for UnixMillis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UnixMillis, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OffsetDateTime::parse(&s, &Rfc3339)
            .map(UnixMillis::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_rfc3339_with_milliseconds() {
        let t = UnixMillis::new(1_800_000_000_123);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "\"2027-01-15T08:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<UnixMillis>(&s).unwrap(), t);
        let whole = UnixMillis::new(1_800_000_000_000);
        assert_eq!(whole.to_rfc3339(), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn offsets_are_read_as_the_same_instant() {
        let t: UnixMillis = serde_json::from_str("\"2027-01-15T09:00:00.123+01:00\"").unwrap();
        assert_eq!(t, UnixMillis::new(1_800_000_000_123));
        assert!(serde_json::from_str::<UnixMillis>("\"tomorrow\"").is_err());
    }

    #[test]
    fn durations_saturate() {
        let t = UnixMillis::new(1_000);
        assert_eq!(t.after(Duration::from_secs(2)), UnixMillis::new(3_000));
        assert_eq!(
            t.until(UnixMillis::new(3_500)),
            Duration::from_millis(2_500)
        );
        assert_eq!(t.until(UnixMillis::new(0)), Duration::ZERO);
        assert_eq!(
            UnixMillis::new(i64::MAX).after(Duration::MAX),
            UnixMillis::new(i64::MAX)
        );
    }
}
