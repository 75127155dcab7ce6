//! What the admin page shows of the decisions: a bounded ring of the most recent refusals
//! and would-be refusals, and decisions per minute for the last hour.
//!
//! Fed from the one decision path, so it must cost next to nothing there: counting a
//! decision is one clock read and one atomic add into the calling thread's shard (as rule
//! hits are counted); keeping a refusal copies it into a slot made at ignite, reusing the
//! slot's strings (so no allocation once a slot has been used), and skips the slot rather
//! than wait if a reader holds it. Nothing here ever blocks a request.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use rocket::Request;

use super::hits::{shard_of_this_thread, MAX_SHARDS};
use crate::log::By;
use crate::rules::Verdict;

/// Bytes of a path or user agent kept (cut at a character boundary): a client cannot make
/// the ring grow.
const TEXT_MAX: usize = 256;

/// Minutes of history per minute counter: the last hour.
pub(crate) const MINUTES: usize = 60;

/// One decision, as the decision path hands it over.
pub(crate) struct Seen {
    pub policy: usize,
    pub rule: Option<usize>,
    pub by: By,
    pub verdict: Verdict,
    pub enforced: bool,
    pub status: u16,
    pub client: Option<IpAddr>,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
    /// The ban that refused it.
    pub ban: Option<IpNet>,
}

/// A kept refusal or would-be refusal.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// Milliseconds since the Unix epoch; 0 for a slot never used.
    pub at_ms: u64,
    /// The order it came in (several can share a millisecond).
    pub seq: usize,
    pub client: Option<IpAddr>,
    pub peer: Option<IpAddr>,
    pub policy: usize,
    pub rule: Option<usize>,
    pub by: By,
    /// `false` for a would-be refusal (report mode).
    pub enforced: bool,
    pub status: u16,
    pub ban: Option<IpNet>,
    pub method: &'static str,
    /// Path and query, at most [`TEXT_MAX`] bytes.
    pub path: String,
    /// At most [`TEXT_MAX`] bytes; empty when none was sent.
    pub user_agent: String,
}

impl Kept {
    fn empty() -> Kept {
        Kept {
            at_ms: 0,
            seq: 0,
            client: None,
            peer: None,
            policy: 0,
            rule: None,
            by: By::Default,
            enforced: true,
            status: 0,
            ban: None,
            method: "",
            path: String::new(),
            user_agent: String::new(),
        }
    }
}

/// A page of kept refusals ([`Recent::page`]).
pub(crate) struct KeptPage {
    /// Kept refusals in all.
    pub total: usize,
    /// Newest first.
    pub rows: Vec<Kept>,
    /// Whether older ones follow the last row.
    pub more: bool,
}

/// Decisions of one minute: allowed, refused, would-be refused.
struct Minute {
    /// Which minute (since the epoch) the counts are of.
    stamp: AtomicU64,
    counts: [AtomicU64; 3],
}

/// Counts of one minute, oldest first in [`Recent::per_minute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PerMinute {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub allowed: u64,
    pub refused: u64,
    pub would_refuse: u64,
}

/// The ring and the minute counters of one app.
pub(crate) struct Recent {
    slots: Box<[Mutex<Kept>]>,
    next: AtomicUsize,
    /// Per thread shard: [`MINUTES`] minutes each.
    minutes: Box<[Box<[Minute]>]>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Copies `parts` into `dst` (cleared first), at most [`TEXT_MAX`] bytes.
fn set_text(dst: &mut String, parts: &[&str]) {
    dst.clear();
    for part in parts {
        let room = TEXT_MAX - dst.len();
        let mut end = part.len().min(room);
        while !part.is_char_boundary(end) {
            end -= 1;
        }
        dst.push_str(&part[..end]);
    }
}

impl Recent {
    /// Keeps the last `kept` refusals (0: none).
    pub fn new(kept: usize) -> Recent {
        let shards = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_SHARDS);
        let minute = || Minute {
            stamp: AtomicU64::new(0),
            counts: Default::default(),
        };
        Recent {
            slots: (0..kept).map(|_| Mutex::new(Kept::empty())).collect(),
            next: AtomicUsize::new(0),
            minutes: (0..shards)
                .map(|_| (0..MINUTES).map(|_| minute()).collect())
                .collect(),
        }
    }

    /// Counts a decision, and keeps it if it is a refusal or would-be refusal.
    #[inline]
    pub fn record(&self, req: &Request<'_>, seen: Seen) {
        let at_ms = now_ms();
        let kind = match (seen.verdict, seen.enforced) {
            (Verdict::Allow, _) => 0,
            (Verdict::Deny, true) => 1,
            (Verdict::Deny, false) => 2,
        };
        self.count(at_ms / 60_000, kind);
        if kind != 0 && !self.slots.is_empty() {
            self.keep(req, seen, at_ms);
        }
    }

    fn count(&self, minute: u64, kind: usize) {
        let shard = &self.minutes[shard_of_this_thread(self.minutes.len())];
        let cell = &shard[(minute % MINUTES as u64) as usize];
        let stamp = cell.stamp.load(Ordering::Acquire);
        // The first decision of a new minute in this slot starts it from zero. (A thread of
        // the same shard counting at that very moment may lose one count: a chart's worth.)
        if stamp != minute
            && cell
                .stamp
                .compare_exchange(stamp, minute, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            for c in &cell.counts {
                c.store(0, Ordering::Relaxed);
            }
        }
        cell.counts[kind].fetch_add(1, Ordering::Relaxed);
    }

    fn keep(&self, req: &Request<'_>, seen: Seen, at_ms: u64) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let mut slot = match self.slots[seq % self.slots.len()].try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // A reader (or a writer a whole ring ahead) has it: skip rather than wait.
            Err(TryLockError::WouldBlock) => return,
        };
        let uri = req.uri();
        let query = uri.query().map(|q| q.as_str());
        let path: &[&str] = match query {
            Some(q) => &[uri.path().as_str(), "?", q],
            None => &[uri.path().as_str()],
        };
        set_text(&mut slot.path, path);
        // Found by walking the few headers: a lookup by name hashes it (SipHash), which
        // cost more than all the rest of this function.
        let agent = req
            .headers()
            .iter()
            .find(|h| h.name() == "User-Agent")
            .map(|h| h.value);
        set_text(&mut slot.user_agent, &[agent.as_deref().unwrap_or("")]);
        slot.at_ms = at_ms;
        slot.seq = seq;
        slot.client = seen.client;
        slot.peer = seen.peer;
        slot.policy = seen.policy;
        slot.rule = seen.rule;
        slot.by = seen.by;
        slot.enforced = seen.enforced;
        slot.status = seen.status;
        slot.ban = seen.ban;
        slot.method = req.method().as_str();
    }

    /// The kept refusals, newest first.
    #[cfg(test)]
    pub fn kept(&self) -> Vec<Kept> {
        self.page(None, usize::MAX, |_| {}).rows
    }

    /// The newest `n` kept refusals older than `before` (a [`Kept::seq`]; from the newest
    /// without), newest first, and how many are kept in all; `each` is told the client of
    /// every kept refusal (for the most refused). One pass over the ring that copies out
    /// only the page: at `recent = 100000` a copy of the whole ring is tens of MB per view.
    pub fn page(
        &self,
        before: Option<usize>,
        n: usize,
        mut each: impl FnMut(Option<IpAddr>),
    ) -> KeptPage {
        // (seq, slot) of every kept refusal in the page's range.
        let mut order: Vec<(usize, usize)> = Vec::new();
        let mut total = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            let k = slot.lock().unwrap_or_else(|e| e.into_inner());
            if k.at_ms == 0 {
                continue;
            }
            total += 1;
            each(k.client);
            if before.is_none_or(|b| k.seq < b) {
                order.push((k.seq, i));
            }
        }
        let following = order.len();
        if order.len() > n {
            order.select_nth_unstable_by_key(n, |&(seq, _)| std::cmp::Reverse(seq));
            order.truncate(n);
        }
        order.sort_unstable_by_key(|&(seq, _)| std::cmp::Reverse(seq));
        let rows = order
            .iter()
            .filter_map(|&(seq, i)| {
                let k = self.slots[i].lock().unwrap_or_else(|e| e.into_inner());
                // Taken by a newer refusal since the pass above: not this page's.
                (k.seq == seq).then(|| k.clone())
            })
            .collect();
        KeptPage {
            total,
            rows,
            more: following > n,
        }
    }

    /// Decisions per minute over the last hour, oldest first, this minute last.
    pub fn per_minute(&self) -> Vec<PerMinute> {
        let now = now_ms() / 60_000;
        (now + 1 - MINUTES as u64..=now)
            .map(|minute| {
                let mut sum = [0u64; 3];
                for shard in self.minutes.iter() {
                    let cell = &shard[(minute % MINUTES as u64) as usize];
                    if cell.stamp.load(Ordering::Acquire) == minute {
                        for (s, c) in sum.iter_mut().zip(&cell.counts) {
                            *s += c.load(Ordering::Relaxed);
                        }
                    }
                }
                PerMinute {
                    minute,
                    allowed: sum[0],
                    refused: sum[1],
                    would_refuse: sum[2],
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Seen {
        Seen {
            policy: 0,
            rule: Some(0),
            by: By::Rule,
            verdict: Verdict::Deny,
            enforced: true,
            status: 403,
            client: Some([192, 0, 2, 1].into()),
            peer: None,
            ban: None,
        }
    }

    #[test]
    fn a_slot_a_reader_holds_is_skipped_not_waited_for() {
        let client = rocket::local::blocking::Client::untracked(rocket::build()).unwrap();
        let req = client.get("/x?y");
        let recent = Recent::new(1);
        let held = recent.slots[0].lock().unwrap();
        // Waiting here would never end: the lock is held on this very thread.
        recent.record(req.inner(), refused());
        drop(held);
        assert!(recent.kept().is_empty());
        recent.record(req.inner(), refused());
        assert_eq!(recent.kept()[0].path, "/x?y");
        // Both were counted for the chart, kept or not.
        let now = recent.per_minute();
        assert_eq!(now.iter().map(|m| m.refused).sum::<u64>(), 2);
    }

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        let mut s = String::new();
        let long = "é".repeat(200);
        set_text(&mut s, &[&long]);
        assert!(s.len() <= TEXT_MAX && s.len() >= TEXT_MAX - 1);
        assert!(s.chars().all(|c| c == 'é'));
        set_text(&mut s, &["/a", "?", "b"]);
        assert_eq!(s, "/a?b");
    }
}
