//! Bans as versioned records, merged: a record from elsewhere (the fleet store, a full
//! read) is applied only if it is newer than what this instance holds for its target, be
//! that a ban or a lift. Absence is never a lift: only a lift record lifts. So a record
//! applied twice, late or out of order changes nothing, and every replica ends with the
//! newest record of each target.

use std::collections::HashMap;

use ipnet::IpNet;

use super::table::NEVER;
use super::version::Version;
use super::{now_ms, Ban, Bans, MAX_EXPIRY_MS};

/// How long a lift is kept at least (7 days): an instance away for less cannot bring back
/// the ban it lifted.
pub(crate) const LIFTED_KEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// A lifted ban, kept as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lift {
    pub version: Version,
    /// Until when it is kept (Unix ms; [`NEVER`]: for as long as the ban it lifted could
    /// have lasted, which for a ban until lifted is for ever).
    pub keep: u64,
}

impl Lift {
    /// The lift made at `version` of a ban ending at `lifted` (if one was held): kept 7
    /// days, or as long as that ban would have lasted.
    pub fn of(version: Version, lifted: Option<u64>) -> Lift {
        Lift {
            version,
            keep: version
                .ms
                .saturating_add(LIFTED_KEEP_MS)
                .max(lifted.unwrap_or(0)),
        }
    }
}

/// What a record says of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Banned until `expires` (Unix ms, [`NEVER`] until lifted).
    Ban {
        expires: u64,
        reason: Option<String>,
    },
    Lifted {
        keep: u64,
    },
}

/// One target's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub target: IpNet,
    pub version: Version,
    pub state: State,
}

/// What this instance holds for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    Ban { version: Version, expires: u64 },
    Lifted(Lift),
}

impl Held {
    pub fn version(&self) -> Version {
        match self {
            Held::Ban { version, .. } => *version,
            Held::Lifted(lift) => lift.version,
        }
    }
}

/// What merging a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Merged {
    /// Not newer than what is held: nothing changed.
    Older,
    /// A ban made or changed (expiry or reason).
    Banned(Ban),
    /// The same ban under a newer version (nothing to tell).
    Renewed,
    /// Lifted; whether a ban was in force.
    Lifted(bool),
}

impl Bans {
    /// What this instance holds for exactly `target`.
    pub fn held(&self, target: IpNet) -> Option<Held> {
        let target = target.trunc();
        if let Some(f) = self.store.table.get(target) {
            return Some(Held::Ban {
                version: f.version,
                expires: f.expires,
            });
        }
        self.store
            .lock_lifted()
            .get(&target)
            .map(|lift| Held::Lifted(*lift))
    }

    /// Applies a record made elsewhere if it is newer than what is held for its target.
    pub fn merge(&self, record: Record) -> Merged {
        let target = record.target.trunc();
        let now = now_ms();
        let mut lifted = self.store.lock_lifted();
        let held = self.held_version(target, &lifted);
        if held.is_some_and(|h| h >= record.version) {
            return Merged::Older;
        }
        let lift = match record.state {
            State::Ban { expires, reason } if expires > now => {
                let (found, changed) =
                    self.store
                        .put(target, expires, reason.as_deref(), record.version);
                lifted.remove(&target);
                drop(lifted);
                self.changed();
                return if changed {
                    Merged::Banned(self.store.ban(found))
                } else {
                    Merged::Renewed
                };
            }
            // A ban renewed to end before now ends here too, as a lift would.
            State::Ban { expires, .. } => Lift::of(record.version, Some(expires)),
            State::Lifted { keep } => Lift {
                version: record.version,
                keep,
            },
        };
        let kept = self.store.keep_lifts && lift.keep > now;
        if kept {
            lifted.insert(target, lift);
        }
        let old = self.store.table.remove(target);
        drop(lifted);
        match old {
            Some(old) => {
                self.store.labels.release(old.label);
                self.changed();
                Merged::Lifted(old.expires > now)
            }
            None => {
                // A lift kept is a record the bans file holds too.
                if kept {
                    self.changed();
                }
                Merged::Lifted(false)
            }
        }
    }

    /// [`Bans::merge`] for many records at once (a full read: one record per target, as a
    /// hash holds them): bans go in a shard of the table at a time. How many bans were added or changed, and how many lifted. Tells
    /// the saver and the gauge once.
    pub fn merge_all(&self, records: Vec<Record>) -> (usize, usize) {
        let now = now_ms();
        let labels = &self.store.labels;
        let table = &self.store.table;
        let mut lifted = self.store.lock_lifted();
        let (mut bans, mut lifts) = (Vec::new(), Vec::new());
        for r in records {
            let target = r.target.trunc();
            if self
                .held_version(target, &lifted)
                .is_some_and(|h| h >= r.version)
            {
                continue;
            }
            match r.state {
                State::Ban { expires, reason } if expires > now => {
                    bans.push((target, expires, reason, r.version));
                }
                // A ban that ended: a lift of what is held, if anything is.
                State::Ban { expires, .. } => {
                    if table.get(target).is_some() || lifted.contains_key(&target) {
                        lifts.push((target, Lift::of(r.version, Some(expires))));
                    }
                }
                State::Lifted { keep } => lifts.push((
                    target,
                    Lift {
                        version: r.version,
                        keep,
                    },
                )),
            }
        }
        // One hold per distinct reason (a million bans give a handful).
        let mut counts: HashMap<Option<&str>, usize> = HashMap::new();
        for (_, _, reason, _) in &bans {
            *counts.entry(reason.as_deref()).or_default() += 1;
        }
        let held: HashMap<Option<&str>, u32> = counts
            .into_iter()
            .map(|(reason, n)| (reason, labels.hold_n(reason, n)))
            .collect();
        let batch: Vec<(IpNet, u64, u32, Version)> = bans
            .iter()
            .map(|(target, expires, reason, version)| {
                let expires = if *expires > MAX_EXPIRY_MS {
                    NEVER
                } else {
                    *expires
                };
                (*target, expires, held[&reason.as_deref()], *version)
            })
            .collect();
        table.reserve(batch.iter().map(|b| b.0));
        let mut added = 0;
        table.insert_all(&batch, |i, old| {
            if let Some(old) = old {
                labels.release(old.label);
            }
            let (_, expires, label, _) = batch[i];
            added += usize::from(!old.is_some_and(|o| o.expires == expires && o.label == label));
        });
        if !lifted.is_empty() {
            for (target, _, _, _) in &bans {
                lifted.remove(target);
            }
        }
        let (mut gone, mut kept) = (0, false);
        for (target, lift) in lifts {
            if self.store.keep_lifts && lift.keep > now {
                lifted.insert(target, lift);
                kept = true;
            }
            if let Some(old) = table.remove(target) {
                labels.release(old.label);
                gone += usize::from(old.expires > now);
            }
        }
        drop(lifted);
        if added + gone > 0 || kept {
            self.changed();
        }
        (added, gone)
    }

    /// Every record this instance holds: the bans in force and the lifts kept.
    pub fn records(&self) -> Vec<Record> {
        let now = now_ms();
        let mut out = Vec::with_capacity(self.store.table.len());
        self.store.table.each(|f| {
            if f.expires > now {
                out.push(Record {
                    target: f.target,
                    version: f.version,
                    state: State::Ban {
                        expires: f.expires,
                        reason: self.store.labels.text(f.label),
                    },
                });
            }
        });
        for (target, lift) in self.store.lock_lifted().iter() {
            out.push(Record {
                target: *target,
                version: lift.version,
                state: State::Lifted { keep: lift.keep },
            });
        }
        out
    }

    /// The record held for exactly `target`: a ban in force or a kept lift.
    pub fn record(&self, target: IpNet) -> Option<Record> {
        let target = target.trunc();
        if let Some(f) = self.store.table.get(target) {
            return (f.expires > now_ms()).then(|| Record {
                target,
                version: f.version,
                state: State::Ban {
                    expires: f.expires,
                    reason: self.store.labels.text(f.label),
                },
            });
        }
        self.store.lock_lifted().get(&target).map(|lift| Record {
            target,
            version: lift.version,
            state: State::Lifted { keep: lift.keep },
        })
    }

    /// How many records this instance holds (bans, expired ones until swept, and lifts).
    pub fn record_count(&self) -> usize {
        self.store.table.len() + self.store.lock_lifted().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ms: u64) -> Version {
        Version {
            ms,
            instance: 1,
            seq: 0,
        }
    }

    fn ban(target: &str, version: Version) -> Record {
        Record {
            target: target.parse().unwrap(),
            version,
            state: State::Ban {
                expires: NEVER,
                reason: None,
            },
        }
    }

    fn lift(target: &str, version: Version) -> Record {
        Record {
            target: target.parse().unwrap(),
            version,
            state: State::Lifted { keep: NEVER },
        }
    }

    #[test]
    fn the_newer_record_wins_in_any_order_and_any_number_of_times() {
        let now = now_ms();
        let records = [
            ban("192.0.2.1/32", v(now - 3)),
            lift("192.0.2.1/32", v(now - 2)),
            ban("192.0.2.2/32", v(now - 2)),
            lift("192.0.2.2/32", v(now - 3)),
            ban("192.0.2.3/32", v(now - 1)),
        ];
        // Every order of the records, each applied twice.
        let mut orders = vec![vec![0, 1, 2, 3, 4]];
        orders.push(vec![4, 3, 2, 1, 0]);
        orders.push(vec![1, 0, 3, 2, 4]);
        for order in orders {
            let bans = Bans::open(None, |_| {}, true).unwrap();
            for &i in order.iter().chain(&order) {
                bans.merge(records[i].clone());
            }
            let ip = |s: &str| s.parse().unwrap();
            assert!(bans.check(ip("192.0.2.1")).is_none(), "{order:?}");
            assert!(bans.check(ip("192.0.2.2")).is_some(), "{order:?}");
            assert!(bans.check(ip("192.0.2.3")).is_some(), "{order:?}");
            // In bulk, one record per target a call (as a full read has them).
            let bulk = Bans::open(None, |_| {}, true).unwrap();
            // (Even indices are one record per target; so are odd ones.)
            let (even, odd): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| i % 2 == 0);
            let parts = if order[0] % 2 == 0 {
                [even.clone(), odd, even]
            } else {
                [odd.clone(), even, odd]
            };
            for part in parts {
                bulk.merge_all(part.iter().map(|&i| records[i].clone()).collect());
            }
            let mut a = bans.records();
            let mut b = bulk.records();
            a.sort_by_key(|r| r.target);
            b.sort_by_key(|r| r.target);
            assert_eq!(a, b, "{order:?}");
        }
    }

    #[test]
    fn a_change_made_here_is_newer_than_any_record_held() {
        let bans = Bans::open(None, |_| {}, true).unwrap();
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        let (_, made) = bans.ban_at(net, NEVER, Some("x"));
        assert_eq!(bans.merge(lift("192.0.2.0/24", v(1))), Merged::Older);
        let (in_force, lift) = bans.unban(net);
        assert!(in_force && lift.version > made);
        assert_eq!(
            lift.keep, NEVER,
            "kept as long as the ban could have lasted"
        );
        assert_eq!(bans.held(net), Some(Held::Lifted(lift)));
        assert_eq!(bans.merge(ban("192.0.2.0/24", made)), Merged::Older);
        assert!(bans.check("192.0.2.1".parse().unwrap()).is_none());
    }
}
