//! Wall-clock time as Unix milliseconds: numeric in DynamoDB (so conditions can compare
//! it), RFC 3339 when shown to people. The clock is always passed in, never read inside
//! a decision, so decisions are pure and tests choose the time.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The current time.
    pub fn now() -> UnixMillis {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// This time plus a duration, saturating.
    pub fn plus(self, d: Duration) -> UnixMillis {
        UnixMillis(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// RFC 3339 with milliseconds (`2026-11-23T20:04:53.123Z`): fixed width, so it sorts
    /// as text, which is what sort keys need.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(self.0)).to_string()
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_rfc3339_that_sorts_as_time() {
        let a = UnixMillis(1_795_464_293_123);
        assert_eq!(a.rfc3339(), "2026-11-23T20:04:53.123Z");
        let b = UnixMillis(1_795_464_293_999 + 9_000);
        assert!(a.rfc3339() < b.rfc3339());
        assert_eq!(UnixMillis(5).rfc3339(), "1970-01-01T00:00:00.005Z");
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixMillis(10).since(UnixMillis(20)), 0);
        assert_eq!(
            UnixMillis(u64::MAX).plus(Duration::from_secs(1)),
            UnixMillis(u64::MAX)
        );
        assert_eq!(
            UnixMillis(1000).plus(Duration::from_millis(500)),
            UnixMillis(1500)
        );
    }
}
