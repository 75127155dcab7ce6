//! Versions of runtime changes (a ban, a lift, a set's entries, a mode): the time the change
//! was made (Unix ms), the instance that made it and that instance's sequence number,
//! compared in that order. Every replica (this instance's memory, its bans file, the fleet
//! store) keeps the newer of two records for the same target, so a change is applied
//! any number of times, in any order, with one result.

use std::sync::Mutex;

/// A change's version; the newer record wins. `Version::ZERO` is "made before anything":
/// a ban from a bans file written before versions existed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Version {
    /// Unix ms when it was made, on the making instance's clock.
    pub ms: u64,
    /// The making instance (random per process).
    pub instance: u32,
    /// That instance's count of changes made in the same millisecond or before.
    pub seq: u32,
}

impl Version {
    /// Older than every real change.
    pub const ZERO: Version = Version {
        ms: 0,
        instance: 0,
        seq: 0,
    };

    /// As the bans file writes it: `ms.instance.seq`.
    pub fn text(&self) -> String {
        format!("{}.{}.{}", self.ms, self.instance, self.seq)
    }

    /// Reads [`Version::text`].
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let mut next = || parts.next().filter(|t| digits(t));
        let v = Version {
            ms: next()?.parse().ok()?,
            instance: next()?.parse().ok()?,
            seq: next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(v)
    }

    /// Packed in four words (a ban table entry).
    pub fn words(&self) -> [u32; 4] {
        [
            (self.ms >> 32) as u32,
            self.ms as u32,
            self.instance,
            self.seq,
        ]
    }

    /// Unpacks [`Version::words`].
    pub fn from_words(w: [u32; 4]) -> Version {
        Version {
            ms: u64::from(w[0]) << 32 | u64::from(w[1]),
            instance: w[2],
            seq: w[3],
        }
    }
}

/// Hands out this instance's versions: each newer than the one before, even if the wall
/// clock steps back.
pub(crate) struct Clock {
    instance: u32,
    last: Mutex<(u64, u32)>,
}

impl Clock {
    /// A clock with a random instance number (from the OS's random source).
    pub fn new() -> Clock {
        let mut bytes = [0u8; 4];
        // Without a random source, the time's low bits still tell instances apart.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = (super::now_ms() as u32 ^ std::process::id()).to_le_bytes();
        }
        Clock {
            instance: u32::from_le_bytes(bytes),
            last: Mutex::new((0, 0)),
        }
    }

    /// This instance's number in versions.
    pub fn instance(&self) -> u32 {
        self.instance
    }

    /// A version for a change made now.
    pub fn next(&self) -> Version {
        self.after(None)
    }

    /// A version for a change made now, after `held` (the record it replaces, which another
    /// instance whose clock runs ahead may have dated later than now): a change made here
    /// is newer than every record this instance held when it was made.
    pub fn after(&self, held: Option<Version>) -> Version {
        let floor = held.map_or(0, |h| h.ms.saturating_add(1));
        let now = super::now_ms().max(floor);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = if now > last.0 {
            (now, 0)
        } else if last.1 == u32::MAX {
            (last.0 + 1, 0)
        } else {
            (last.0, last.1 + 1)
        };
        Version {
            ms: last.0,
            instance: self.instance,
            seq: last.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_time_then_instance_then_sequence() {
        let v = |ms, instance, seq| Version { ms, instance, seq };
        assert!(v(2, 0, 0) > v(1, 9, 9));
        assert!(v(1, 2, 0) > v(1, 1, 9));
        assert!(v(1, 1, 2) > v(1, 1, 1));
        assert!(Version::ZERO < v(0, 0, 1));
        for x in [v(1_700_000_000_123, 4_000_000_000, 7), Version::ZERO] {
            assert_eq!(Version::parse(&x.text()), Some(x));
            assert_eq!(Version::from_words(x.words()), x);
        }
        for bad in [
            "",
            "1.2",
            "1.2.3.4",
            "1..3",
            "a.b.c",
            "1.2.-3",
            "1.99999999999.0",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_version_after_a_record_from_the_future_is_newer_still() {
        let clock = Clock::new();
        let ahead = Version {
            ms: super::super::now_ms() + 3_600_000,
            instance: u32::MAX,
            seq: u32::MAX,
        };
        let v = clock.after(Some(ahead));
        assert!(v > ahead);
        assert!(clock.next() > v, "and the clock goes on from there");
        assert!(clock.after(Some(Version::ZERO)) > v);
    }

    #[test]
    fn a_clock_only_goes_forward() {
        let clock = Clock::new();
        let mut last = Version::ZERO;
        for _ in 0..10_000 {
            let v = clock.next();
            assert!(v > last);
            assert_eq!(v.instance, clock.instance());
            last = v;
        }
    }
}
