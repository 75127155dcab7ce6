//! Hits per rule, for [`AllowHandle::rule_hits`](crate::AllowHandle::rule_hits): which
//! rules match, how often and when last, so an operator can find rules that never do.
//!
//! Counting must not make request threads contend, so every thread counts into a shard of
//! its own (threads are spread over the shards round-robin) and a read sums the shards.
//! The last hit time is shared, but only written when it changes (once a second at most
//! per rule), so a hot rule's cache line is not written on every request.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// At most this many shards: beyond it, memory (8 bytes per rule per shard) costs more
/// than the contention it saves (threads sharing a shard only contend on the same rule at
/// the same moment), and rules stay within 100 bytes each on any machine.
pub(super) const MAX_SHARDS: usize = 4;

/// Per-rule hit counters of every policy.
pub(crate) struct RuleHits {
    /// Where each policy's rules start in a shard; one more entry at the end.
    offsets: Vec<usize>,
    shards: Box<[Shard]>,
    /// Seconds since the Unix epoch of each rule's last hit; 0 for never. (Seconds in 32
    /// bits last until 2106, and keep the cost per rule down at 100,000 rules.)
    last: Box<[AtomicU32]>,
}

/// One thread group's counts. Each shard is an allocation of its own, so two shards never
/// share a cache line except at their ends.
struct Shard(Box<[AtomicU64]>);

/// Which shard this thread counts into (assigned on first use).
pub(super) fn shard_of_this_thread(shards: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        s.get() % shards
    })
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl RuleHits {
    /// Counters for policies with these numbers of rules, one shard per core (at most
    /// [`MAX_SHARDS`]).
    pub fn new(rules_per_policy: impl Iterator<Item = usize>) -> RuleHits {
        let mut offsets = vec![0];
        for n in rules_per_policy {
            offsets.push(offsets.last().copied().unwrap_or(0) + n);
        }
        let total = offsets.last().copied().unwrap_or(0);
        let shards = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_SHARDS);
        RuleHits {
            offsets,
            shards: (0..shards).map(|_| Shard(zeros(total))).collect(),
            last: (0..total).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Counts a hit of rule `rule` of policy `policy`.
    #[inline]
    pub fn hit(&self, policy: usize, rule: usize) {
        let i = self.offsets[policy] + rule;
        let shard = &self.shards[shard_of_this_thread(self.shards.len())];
        shard.0[i].fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs().clamp(1, u64::from(u32::MAX)) as u32);
        if self.last[i].load(Ordering::Relaxed) != now {
            self.last[i].store(now, Ordering::Relaxed);
        }
    }

    /// Hits of each rule of `policy` so far, and when the last was.
    pub fn read(&self, policy: usize) -> Vec<(u64, Option<SystemTime>)> {
        (self.offsets[policy]..self.offsets[policy + 1])
            .map(|i| {
                let count = self
                    .shards
                    .iter()
                    .map(|s| s.0[i].load(Ordering::Relaxed))
                    .sum();
                let last = match self.last[i].load(Ordering::Relaxed) {
                    0 => None,
                    secs => Some(UNIX_EPOCH + Duration::from_secs(secs.into())),
                };
                (count, last)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_threads_are_exact() {
        let hits = RuleHits::new([3, 2].into_iter());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        hits.hit(0, 2);
                        hits.hit(1, 0);
                    }
                });
            }
        });
        let app = hits.read(0);
        assert_eq!(app.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 0, 80_000]);
        assert!(app[0].1.is_none() && app[2].1.is_some());
        assert_eq!(hits.read(1)[0].0, 80_000);
        assert_eq!(hits.read(1)[1].0, 0);
    }
}
