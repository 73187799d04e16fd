//! Rates as operators write them (`BURST/PER_MINUTE`) and `governor`'s refusals as the
//! API's `429` with `Retry-After`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use governor::clock::{Clock, DefaultClock, QuantaInstant};

/// A rate: `per_minute` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub per_minute: u32,
}

impl Rate {
    pub fn quota(self) -> Quota {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("max(1) is not zero");
        Quota::per_minute(nz(self.per_minute)).allow_burst(nz(self.burst))
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `BURST/PER_MINUTE`, e.g. `5/10`.
    fn from_str(s: &str) -> Result<Rate, String> {
        let (b, m) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected BURST/PER_MINUTE, e.g. 5/10"))?;
        let n = |x: &str| {
            x.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{x:?} is not a positive whole number"))
        };
        Ok(Rate {
            burst: n(b)?,
            per_minute: n(m)?,
        })
    }
}

/// How long until a limiter that said no will say yes.
pub fn wait_time(not_until: &governor::NotUntil<QuantaInstant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_written_burst_slash_per_minute() {
        assert_eq!(
            "5/10".parse::<Rate>(),
            Ok(Rate {
                burst: 5,
                per_minute: 10
            })
        );
        assert!("5".parse::<Rate>().is_err());
        assert!("0/10".parse::<Rate>().is_err());
        assert!("a/b".parse::<Rate>().is_err());
    }
}
