//! The range of every numeric key, and errors that name the key and say what is allowed.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// The range of a numeric key and how its errors read. Deserializing refuses what the type
/// cannot hold (negative numbers, floats, strings) with the same wording that
/// [`AllowConfig::validate`] uses for the range, so a key reads the same either way.
pub(super) struct Bound {
    /// The key below `allow`.
    pub(super) key: &'static str,
    min: u64,
    max: u64,
    /// What serde says was expected when the value is not an integer at all.
    expecting: &'static str,
    /// The message for a value below `min`, before `, found N`.
    too_small: &'static str,
    /// The message for a value above `max`, before `, found N`.
    pub(super) too_large: &'static str,
}

pub(super) const MAX_BYTES: Bound = Bound {
    key: "access_log.max_bytes",
    min: 1,
    max: 1 << 40,
    expecting: "a whole number of bytes from 1 to 1099511627776 (1 TiB)",
    too_small: "must be a positive number of bytes",
    too_large: "must be at most 1099511627776 bytes (1 TiB)",
};

pub(super) const BACKUP_COUNT: Bound = Bound {
    key: "access_log.backup_count",
    min: 0,
    max: 100_000,
    expecting: "a whole number of files from 0 to 100000",
    too_small: "must not be negative",
    too_large: "must be at most 100000 files",
};

pub(super) const QUEUE_LINES: Bound = Bound {
    key: "access_log.queue_lines",
    min: 1,
    max: 1_000_000,
    expecting: "a whole number of lines from 1 to 1000000",
    too_small: "must be at least 1 line",
    too_large: "must be at most 1000000 lines",
};

pub(super) const TIMEOUT_SECS: Bound = Bound {
    key: "dns.timeout_secs",
    min: 1,
    max: 300,
    expecting: "a whole number of seconds from 1 to 300",
    too_small: "must be at least 1 second",
    too_large: "must be at most 300 seconds (5 minutes)",
};

pub(super) const MIN_TTL_SECS: Bound = Bound {
    key: "dns.min_ttl_secs",
    min: 1,
    max: 604_800,
    expecting: "a whole number of seconds from 1 to 604800 (7 days)",
    too_small: "must be at least 1 second",
    too_large: "must be at most 604800 seconds (7 days)",
};

pub(super) const MAX_TTL_SECS: Bound = Bound {
    key: "dns.max_ttl_secs",
    min: 1,
    max: 604_800,
    expecting: "a whole number of seconds from 1 to 604800 (7 days)",
    too_small: "must be at least 1 second",
    too_large: "must be at most 604800 seconds (7 days)",
};

impl Bound {
    /// `Err(message)` unless `min <= n <= max`; the message quotes `n`.
    pub(super) fn check(&self, n: i128) -> Result<(), String> {
        if n < i128::from(self.min) {
            Err(format!("{}, found {n}", self.too_small))
        } else if n > i128::from(self.max) {
            Err(format!("{}, found {n}", self.too_large))
        } else {
            Ok(())
        }
    }

    /// Reads any integer and checks it against the range; anything else is a type error
    /// saying what is expected.
    fn deserialize<'de, D: Deserializer<'de>>(&'static self, d: D) -> Result<u64, D::Error> {
        struct V(&'static Bound);
        impl V {
            fn check<E: de::Error>(&self, n: i128) -> Result<u64, E> {
                self.0.check(n).map_err(E::custom)?;
                // In range, so it fits; the fallback only keeps this free of panics.
                u64::try_from(n).map_err(|_| E::custom(format!("{}, found {n}", self.0.too_large)))
            }
        }
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.expecting)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
                self.check(n.into())
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
                self.check(n.into())
            }
            fn visit_i128<E: de::Error>(self, n: i128) -> Result<u64, E> {
                self.check(n)
            }
            fn visit_u128<E: de::Error>(self, n: u128) -> Result<u64, E> {
                match i128::try_from(n) {
                    Ok(n) => self.check(n),
                    Err(_) => Err(E::custom(format!("{}, found {n}", self.0.too_large))),
                }
            }
        }
        d.deserialize_any(V(self))
    }
}

pub(super) fn de_max_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    MAX_BYTES.deserialize(d).map(Some)
}

pub(super) fn de_backup_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = BACKUP_COUNT.deserialize(d)?;
    usize::try_from(n)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{}, found {n}", BACKUP_COUNT.too_large)))
}

pub(super) fn de_queue_lines<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = QUEUE_LINES.deserialize(d)?;
    usize::try_from(n)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{}, found {n}", QUEUE_LINES.too_large)))
}

pub(super) fn de_timeout_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    TIMEOUT_SECS.deserialize(d)
}

pub(super) fn de_min_ttl_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    MIN_TTL_SECS.deserialize(d)
}

pub(super) fn de_max_ttl_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    MAX_TTL_SECS.deserialize(d)
}
