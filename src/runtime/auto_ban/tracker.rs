//! The clients one automatic-ban rule tracks: for each, the times of its recent events (a
//! true sliding window: at most `max` times are kept), and its last ban (for escalation).
//! Bounded: at most `max_tracked` clients, the least recently seen dropped first.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use lru::LruCache;

/// Shards, each with its own lock, so that requests on different cores rarely meet.
const SHARDS: usize = 16;

/// One client's state.
#[derive(Default)]
struct Client {
    /// Times (ms, monotonic) of its events still inside the window, oldest first.
    events: VecDeque<u64>,
    /// Its last ban by this rule: when it ends (ms, monotonic) and how long it was (s).
    last_ban: Option<(u64, u64)>,
}

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// Still within the limit.
    Below,
    /// More than `max` events within the window: the count was reset; ban for this long
    /// (seconds), with this many events seen.
    Over { secs: u64, events: usize },
}

/// How a rule counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max: usize,
    pub window_ms: u64,
    pub ban_secs: u64,
    pub max_ban_secs: Option<u64>,
}

pub(crate) struct Tracker {
    shards: Vec<Mutex<LruCache<u128, Client>>>,
    tracked: AtomicUsize,
    limits: Limits,
}

impl Tracker {
    pub fn new(limits: Limits, max_tracked: usize) -> Tracker {
        let shards = SHARDS.min(max_tracked.max(1));
        // Each shard holds its share; together exactly `max_tracked` (the first shards take
        // the remainder).
        let shards = (0..shards)
            .map(|i| {
                let cap = max_tracked / shards + usize::from(i < max_tracked % shards);
                Mutex::new(LruCache::new(
                    NonZeroUsize::new(cap.max(1)).unwrap_or(NonZeroUsize::MIN),
                ))
            })
            .collect();
        Tracker {
            shards,
            tracked: AtomicUsize::new(0),
            limits,
        }
    }

    fn shard(&self, key: u128) -> &Mutex<LruCache<u128, Client>> {
        // Keys are addresses: mix the bits so neighbours spread over the shards.
        let h = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.shards[(h >> 32) as usize % self.shards.len()]
    }

    /// Counts one event of `key` at `now` (ms, monotonic).
    pub fn event(&self, key: u128, now: u64) -> Counted {
        let l = self.limits;
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        // A new client takes the place of the least recently seen one when the shard is full.
        if !shard.contains(&key) && shard.push(key, Client::default()).is_none() {
            self.tracked.fetch_add(1, Ordering::Relaxed);
        }
        let Some(client) = shard.get_mut(&key) else {
            return Counted::Below;
        };
        // Events `window_ms` or more ago have left the window.
        while client
            .events
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= l.window_ms)
        {
            client.events.pop_front();
        }
        if client.events.len() < l.max {
            client.events.push_back(now);
            return Counted::Below;
        }
        // This event makes max + 1 within the window.
        let events = client.events.len() + 1;
        client.events = VecDeque::new();
        let secs = match (client.last_ban, l.max_ban_secs) {
            // A repeat offender: its last ban ended less than max_ban_secs ago.
            (Some((ended, last)), Some(cap)) if now < ended.saturating_add(cap * 1000) => {
                last.saturating_mul(2).min(cap)
            }
            _ => l.ban_secs,
        };
        client.last_ban = Some((now.saturating_add(secs * 1000), secs));
        Counted::Over { secs, events }
    }

    /// Records a ban made for `key` elsewhere (by the fleet), for escalation here.
    pub fn banned(&self, key: u128, now: u64, secs: u64) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = shard.get_mut(&key) {
            c.events.clear();
            c.last_ban = Some((now.saturating_add(secs * 1000), secs));
        }
    }

    /// Forgets one client (an operator lifted its ban).
    pub fn forget_one(&self, key: u128) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.pop(&key).is_some() {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets every client whose key `inside` says is covered (an operator lifted a ban on
    /// a network).
    pub fn forget(&self, inside: impl Fn(u128) -> bool) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<u128> = shard
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| inside(*k))
                .collect();
            for k in gone {
                shard.pop(&k);
            }
        }
        self.recount();
    }

    fn recount(&self) {
        let n = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum();
        self.tracked.store(n, Ordering::Relaxed);
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(max: usize, window_ms: u64, max_ban: Option<u64>) -> Tracker {
        Tracker::new(
            Limits {
                max,
                window_ms,
                ban_secs: 10,
                max_ban_secs: max_ban,
            },
            100,
        )
    }

    /// Events at `times`; the index of the first that goes over, if any.
    fn first_over(t: &Tracker, times: &[u64]) -> Option<usize> {
        times
            .iter()
            .position(|&at| matches!(t.event(1, at), Counted::Over { .. }))
    }

    #[test]
    fn banned_at_the_event_that_makes_more_than_max_in_the_window_and_never_before() {
        // max 3 in 1000 ms: at every alignment of four events against the window, the
        // fourth goes over exactly when all four fall within 1000 ms.
        for offset in 0..1000u64 {
            for gap in [0u64, 1, 100, 333, 334, 500] {
                let start = 10_000 + offset;
                let times: Vec<u64> = (0..4).map(|i| start + i * gap).collect();
                let t = tracker(3, 1000, None);
                let over = first_over(&t, &times);
                let within = times[3] - times[0] < 1000;
                assert_eq!(over.is_some(), within, "offset {offset} gap {gap}");
                if within {
                    assert_eq!(over, Some(3));
                }
            }
        }
    }

    #[test]
    fn a_fixed_window_boundary_lets_no_burst_through() {
        // 3 events just before a "minute" boundary and 3 just after: a fixed window would
        // see 3 + 3; the sliding one sees 4 at the fourth.
        let t = tracker(3, 60_000, None);
        assert_eq!(
            first_over(&t, &[59_997, 59_998, 59_999, 60_000, 60_001]),
            Some(3)
        );
    }

    #[test]
    fn old_events_leave_the_window() {
        let t = tracker(2, 1000, None);
        // A steady 2 per second never goes over.
        let times: Vec<u64> = (0..100).map(|i| 5000 + i * 500).collect();
        assert_eq!(first_over(&t, &times), None);
    }

    #[test]
    fn repeat_offenders_escalate_up_to_the_cap_and_are_forgiven_later() {
        let t = tracker(1, 1000, Some(35));
        let mut bans = Vec::new();
        let mut now = 0;
        for _ in 0..5 {
            assert_eq!(t.event(1, now), Counted::Below);
            match t.event(1, now + 1) {
                Counted::Over { secs, events } => {
                    assert_eq!(events, 2);
                    bans.push(secs);
                    now += secs * 1000 + 1; // the ban ends; it comes back
                }
                Counted::Below => panic!("not over"),
            }
        }
        assert_eq!(bans, [10, 20, 35, 35, 35]);
        // Clean for longer than max_ban_secs after the last ban ended: back to ban_secs.
        now += 36_000;
        t.event(1, now);
        assert!(matches!(t.event(1, now), Counted::Over { secs: 10, .. }));
    }

    #[test]
    fn at_most_max_tracked_clients_the_least_recently_seen_dropped() {
        let t = Tracker::new(
            Limits {
                max: 2,
                window_ms: 1000,
                ban_secs: 1,
                max_ban_secs: None,
            },
            64,
        );
        for key in 0..10_000u128 {
            t.event(key, 1);
        }
        assert!(t.tracked() <= 64, "{}", t.tracked());
        t.forget(|_| true);
        assert_eq!(t.tracked(), 0);
    }
}
