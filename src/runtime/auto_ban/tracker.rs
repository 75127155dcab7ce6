//! The clients one automatic-ban rule tracks: for each, the times of its recent events (a
//! true sliding window: at most `max` times are kept), and apart, the bans it made (for
//! escalation).
//! Bounded: at most `max_tracked` clients, the least recently seen dropped first (in each of
//! the shards, chosen by a hash keyed at random, so that nobody can aim at one); memory
//! grows with the clients seen, not with `max_tracked`.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use lru::LruCache;

/// How long after a ban its client's events are not counted (the burst that made it).
const QUIET_MS: u64 = 1_000;

/// Shards, each with its own lock, so that requests on different cores rarely meet.
const SHARDS: usize = 16;

/// One client's events: their times (ms, monotonic) still inside the window, oldest first.
type Events = VecDeque<u64>;

/// One shard: the clients' events (least recently seen dropped first), and the last ban
/// each client got from this rule: when it ends (ms, monotonic) and how long it was (s).
/// Bans are kept apart from the events, so that a flood of other clients pushing a banned
/// client out does not reset its escalation; each entry is one ban this rule made, dropped
/// once it can no longer escalate.
struct Shard {
    events: LruCache<u128, Events>,
    bans: std::collections::HashMap<u128, (u64, u64)>,
    /// `bans` is pruned when it grows past this.
    prune_at: usize,
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
    /// Unbounded caches kept at `cap` by hand: `LruCache::new` would allocate the whole
    /// `max_tracked` up front.
    shards: Vec<Mutex<Shard>>,
    cap: Vec<usize>,
    tracked: AtomicUsize,
    limits: Limits,
    /// Chooses a client's shard; see [`index`](Self::index).
    hasher: RandomState,
}

impl Tracker {
    pub fn new(limits: Limits, max_tracked: usize) -> Tracker {
        let shards = SHARDS.min(max_tracked.max(1));
        // Each shard holds its share; together exactly `max_tracked` (the first shards take
        // the remainder).
        let cap = (0..shards)
            .map(|i| (max_tracked / shards + usize::from(i < max_tracked % shards)).max(1))
            .collect();
        Tracker {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        events: LruCache::unbounded(),
                        bans: std::collections::HashMap::new(),
                        prune_at: 64,
                    })
                })
                .collect(),
            cap,
            tracked: AtomicUsize::new(0),
            limits,
            hasher: RandomState::new(),
        }
    }

    /// The shard of `key`, by a hash keyed at random for each tracker (SipHash with the
    /// process's random keys). Not a fixed hash: each shard drops its own least recently
    /// seen client once it holds its share of `max_tracked`, so with a hash anyone can
    /// compute, a client choosing its addresses (a /48 holds 65,536 /64s) could pick
    /// `max_tracked / 16` that fall in the shard of the client it wants out (its own, for
    /// attempts without end) and push it out with a sixteenth of `max_tracked`. Keyed, the
    /// shards cannot be computed: whatever addresses it picks land in the shards at random,
    /// and pushing a client out takes about `max_tracked` distinct clients, as with one
    /// least-recently-seen order over all of them.
    fn index(&self, key: u128) -> usize {
        (self.hasher.hash_one(key) >> 32) as usize % self.shards.len()
    }

    fn shard(&self, key: u128) -> &Mutex<Shard> {
        &self.shards[self.index(key)]
    }

    /// Counts one event of `key` at `now` (ms, monotonic); `escalate`: a ban it makes
    /// counts for the next one's length (not in report mode, which bans nobody).
    pub fn event(&self, key: u128, now: u64, escalate: bool) -> Counted {
        let l = self.limits;
        let i = self.index(key);
        let mut guard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *guard;
        let last_ban = shard.bans.get(&key).copied();
        // Events just after a ban (the burst that made it, still arriving while the ban is
        // on its way to the table and the fleet) are not counted: one burst makes one ban.
        // Later ones are counted: the caller checks the ban table first, and a ban an
        // operator shortened or lifted must not leave the client uncounted.
        if last_ban.is_some_and(|(ends, secs)| {
            let made = ends.saturating_sub(secs * 1000);
            now < ends && now < made + QUIET_MS
        }) {
            return Counted::Below;
        }
        let events = self.events_of(&mut shard.events, i, key, now);
        if events.len() < l.max {
            events.push_back(now);
            return Counted::Below;
        }
        // This event makes max + 1 within the window.
        let seen = events.len() + 1;
        *events = Events::new();
        let secs = match (last_ban, l.max_ban_secs) {
            // A repeat offender: its last ban ended less than max_ban_secs ago.
            (Some((ended, last)), Some(cap)) if now < ended.saturating_add(cap * 1000) => {
                last.saturating_mul(2).min(cap)
            }
            _ => l.ban_secs,
        };
        if escalate {
            self.keep_ban(shard, key, now, secs);
        }
        Counted::Over { secs, events: seen }
    }

    /// `key`'s events still inside the window at `now`, the client added (in the place of
    /// the least recently seen one when the shard is full) if it was not tracked.
    fn events_of<'a>(
        &self,
        lru: &'a mut LruCache<u128, Events>,
        i: usize,
        key: u128,
        now: u64,
    ) -> &'a mut Events {
        if !lru.contains(&key) {
            if lru.len() >= self.cap[i] {
                lru.pop_lru();
            } else {
                self.tracked.fetch_add(1, Ordering::Relaxed);
            }
        }
        let events = lru.get_or_insert_mut(key, Events::new);
        trim(events, now, self.limits.window_ms);
        events
    }

    /// Keeps the ban `key` got (for escalation), dropping those that can no longer escalate
    /// whenever the shard's list has doubled.
    fn keep_ban(&self, shard: &mut Shard, key: u128, now: u64, secs: u64) {
        shard
            .bans
            .insert(key, (now.saturating_add(secs * 1000), secs));
        if shard.bans.len() >= shard.prune_at {
            let keep = self.limits.max_ban_secs.unwrap_or(0) * 1000;
            shard
                .bans
                .retain(|_, (ends, _)| now < ends.saturating_add(keep));
            shard.prune_at = (shard.bans.len() * 2).max(64);
        }
    }

    /// Records an event the fleet counts (with a store, while Redis answers): kept so
    /// that, should Redis stop answering, this instance decides on everything it saw
    /// ([`check`](Self::check)), never acted on here. At most `max + 1` times are kept.
    pub fn record(&self, key: u128, now: u64) {
        let l = self.limits;
        let i = self.index(key);
        let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        let events = self.events_of(&mut shard.events, i, key, now);
        events.push_back(now);
        while events.len() > l.max + 1 {
            events.pop_front();
        }
    }

    /// Whether `key` is over the limit now by what this instance recorded (events the
    /// fleet could not take): then as [`event`](Self::event) going over.
    pub fn check(&self, key: u128, now: u64, escalate: bool) -> Counted {
        let l = self.limits;
        let over = {
            let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
            shard.events.get_mut(&key).is_some_and(|events| {
                trim(events, now, l.window_ms);
                events.len() > l.max
            })
        };
        if !over {
            return Counted::Below;
        }
        // The last recorded event goes over, as it would have here.
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(events) = shard.events.get_mut(&key) {
            events.pop_back();
        }
        drop(shard);
        self.event(key, now, escalate)
    }

    /// Records a ban made for `key` elsewhere (by the fleet), for escalation here.
    pub fn banned(&self, key: u128, now: u64, secs: u64) {
        let mut guard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *guard;
        if let Some(events) = shard.events.get_mut(&key) {
            events.clear();
        }
        self.keep_ban(shard, key, now, secs);
    }

    /// Forgets one client (an operator lifted its ban).
    pub fn forget_one(&self, key: u128) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.bans.remove(&key);
        if shard.events.pop(&key).is_some() {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets every client whose key `inside` says is covered (an operator lifted a ban on
    /// a network).
    pub fn forget(&self, inside: impl Fn(u128) -> bool) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<u128> = shard
                .events
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| inside(*k))
                .collect();
            for k in gone {
                shard.events.pop(&k);
            }
            shard.bans.retain(|k, _| !inside(*k));
        }
        self.recount();
    }

    fn recount(&self) {
        let n = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).events.len())
            .sum();
        self.tracked.store(n, Ordering::Relaxed);
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }
}

/// Drops the events `window_ms` or more before `now`: they have left the window.
fn trim(events: &mut Events, now: u64, window_ms: u64) {
    while events
        .front()
        .is_some_and(|&t| now.saturating_sub(t) >= window_ms)
    {
        events.pop_front();
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
            .position(|&at| matches!(t.event(1, at, true), Counted::Over { .. }))
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
            assert_eq!(t.event(1, now, true), Counted::Below);
            match t.event(1, now + 1, true) {
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
        t.event(1, now, true);
        assert!(matches!(
            t.event(1, now, true),
            Counted::Over { secs: 10, .. }
        ));
    }

    /// Was a finding (issue 26, 11): the shard a client fell in came from a fixed public
    /// hash, so an attacker with a /48 (65,536 /64s, each a client) could pick the /64s
    /// that share its own /64's shard: 100 of them (a sixteenth of `max_tracked = 1600`)
    /// pushed its count out before every fourth attempt, and it was never banned. The
    /// same /64s, picked the same way, no longer reach it.
    #[test]
    fn an_attacker_choosing_its_addresses_cannot_push_its_own_count_out() {
        // The hash the shards were chosen by, as anyone could read it in the source.
        let public_shard = |key: u128| {
            let h = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (h >> 32) as usize % SHARDS
        };
        let slash48: u128 = 0x2001_0db8_0bad << 80;
        let own = slash48;
        let decoys: Vec<u128> = (1..=0xffffu128)
            .map(|i| slash48 | i << 64)
            .filter(|&k| public_shard(k) == public_shard(own))
            .take(100)
            .collect();
        assert_eq!(decoys.len(), 100);
        let t = Tracker::new(
            Limits {
                max: 3,
                window_ms: 60_000,
                ban_secs: 60,
                max_ban_secs: None,
            },
            1600,
        );
        let mut now = 1;
        for attempt in 1..=4 {
            now += 1;
            let counted = t.event(own, now, true);
            if attempt < 4 {
                assert_eq!(counted, Counted::Below, "attempt {attempt}");
            } else {
                assert!(
                    matches!(counted, Counted::Over { events: 4, .. }),
                    "the fourth attempt, after the decoys: {counted:?}"
                );
            }
            for &decoy in &decoys {
                t.event(decoy, now, true);
            }
        }
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
            t.event(key, 1, true);
        }
        assert!(t.tracked() <= 64, "{}", t.tracked());
        t.forget(|_| true);
        assert_eq!(t.tracked(), 0);
    }
}
