//! [`Timestamp`]: a point in time that prints as RFC 3339 (UTC, to the millisecond), for
//! the times the runtime API returns, without another crate.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A `SystemTime` that displays (and, with the `serde` feature, serializes) as RFC 3339 in
/// UTC: `2026-11-25T10:00:00.000Z`. Times before 1970 or after the year 9999 print as `-`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use rocket_allow::Timestamp;
/// let t = Timestamp(UNIX_EPOCH + Duration::from_millis(1_796_139_510_250));
/// assert_eq!(t.to_string(), "2026-12-01T15:38:30.250Z");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.duration_since(UNIX_EPOCH).ok().and_then(|d| {
            let nanos = i128::try_from(d.as_nanos()).ok()?;
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
            let format = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(format).ok()
        });
        f.write_str(shown.as_deref().unwrap_or("-"))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Serializes an optional `SystemTime` field as an RFC 3339 string (or null).
#[cfg(feature = "serde")]
pub(crate) fn serialize_opt<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&Timestamp(*t)),
        None => s.serialize_none(),
    }
}
