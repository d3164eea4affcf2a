//! Wall-clock time as Unix milliseconds: numeric in DynamoDB (so conditions can compare
//! it), RFC 3339 when shown to people. The clock is always passed in, never read inside
//! a decision, so decisions are pure and tests choose the time.
//!
//! It reads either form: a number of milliseconds, or an RFC 3339 string such as the
//! `$$.State.EnteredTime` a state machine passes (`2026-11-23T20:04:53.123Z`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl<'de> Deserialize<'de> for UnixMillis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UnixMillis;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("Unix milliseconds or an RFC 3339 time")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<UnixMillis, E> {
                Ok(UnixMillis(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<UnixMillis, E> {
                u64::try_from(v)
                    .map(UnixMillis)
                    .map_err(|_| E::custom("a time before 1970"))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UnixMillis, E> {
                UnixMillis::parse_rfc3339(v)
                    .ok_or_else(|| E::custom(format!("`{v}` is not an RFC 3339 time")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

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

    /// Parses an RFC 3339 time (`Z` offset, any fraction of a second).
    pub fn parse_rfc3339(text: &str) -> Option<UnixMillis> {
        let t = humantime::parse_rfc3339_weak(text).ok()?;
        let since = t.duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(since.as_millis()).ok().map(UnixMillis)
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
    fn reads_numbers_and_rfc3339_strings() {
        let n: UnixMillis = serde_json::from_str("1795464293123").unwrap();
        let s: UnixMillis = serde_json::from_str("\"2026-11-23T20:04:53.123Z\"").unwrap();
        assert_eq!(n, UnixMillis(1_795_464_293_123));
        assert_eq!(s, n);
        assert!(serde_json::from_str::<UnixMillis>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<UnixMillis>("-5").is_err());
        assert_eq!(serde_json::to_string(&n).unwrap(), "1795464293123");
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
