//! The ban table: one hash table per prefix length in use, each split into shards under
//! their own lock. A lookup is one probe per prefix length in use (longest first), however
//! many bans there are and whatever has expired; a ban, renewal or unban changes one entry
//! under one shard's lock; nothing is ever rebuilt whole.
//!
//! An entry is the masked address, the expiry (Unix milliseconds), a label (the interned
//! reason) and the ban's version (which of two records for one target is newer): 32 bytes
//! for IPv4, 44 for IPv6, so a million bans fit in about 80 MB with the hash tables' slack.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

use hashbrown::HashTable;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::version::Version;

mod bulk;

/// The expiry of a ban until lifted.
pub(crate) const NEVER: u64 = u64::MAX;

/// Shards per prefix length: small enough that growing one (a rehash of its entries under
/// its lock) takes well under a millisecond at a million bans.
const SHARDS: usize = 256;

/// A key: the network address, masked to the level's prefix length.
trait Key: Copy + Eq + Hash {}
impl Key for u32 {}
impl Key for [u32; 4] {}

/// One ban in the table. `u32` words keep the entry 4-byte aligned (no padding).
#[derive(Clone, Copy)]
struct Entry<K> {
    key: K,
    expires: [u32; 2],
    label: u32,
    version: [u32; 4],
}

impl<K> Entry<K> {
    fn expires(&self) -> u64 {
        u64::from(self.expires[0]) << 32 | u64::from(self.expires[1])
    }

    fn old(&self) -> Old {
        Old {
            expires: self.expires(),
            label: self.label,
            version: Version::from_words(self.version),
        }
    }
}

/// What an insert replaced or a removal took: the expiry, label and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Old {
    pub expires: u64,
    pub label: u32,
    pub version: Version,
}

fn split(ms: u64) -> [u32; 2] {
    [(ms >> 32) as u32, ms as u32]
}

/// What a lookup or a listing finds: the ban's network, expiry, label and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub target: IpNet,
    pub expires: u64,
    pub label: u32,
    pub version: Version,
}

struct Shard<K> {
    table: HashTable<Entry<K>>,
    /// No entry expires before this (it may be earlier than the true first expiry).
    next_expiry: u64,
}

/// The bans of one prefix length.
struct Level<K> {
    shards: Box<[RwLock<Shard<K>>]>,
}

impl<K: Key> Level<K> {
    fn new() -> Level<K> {
        Level {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        table: HashTable::new(),
                        next_expiry: NEVER,
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard<K>> {
        &self.shards[shard_index(hash)]
    }
}

/// The shard of a key's hash: not the top bits (hashbrown's tags) nor the low ones (its
/// bucket index).
fn shard_index(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// The bans by prefix length, and what the sweeper needs to know.
pub(crate) struct Table {
    hasher: RandomState,
    v4: [OnceLock<Level<u32>>; 33],
    v6: [OnceLock<Level<[u32; 4]>>; 129],
    /// Bit `l` set once a level of prefix length `l` exists (levels are never dropped).
    v4_lens: AtomicU64,
    v6_lens: [AtomicU64; 3],
    /// Entries, expired ones included until swept.
    len: AtomicUsize,
    /// No entry expires before this (a hint for the sweeper, never late).
    next_expiry: AtomicU64,
}

fn v6_words(a: u128) -> [u32; 4] {
    [
        (a >> 96) as u32,
        (a >> 64) as u32,
        (a >> 32) as u32,
        a as u32,
    ]
}

fn v6_from_words(w: [u32; 4]) -> u128 {
    u128::from(w[0]) << 96 | u128::from(w[1]) << 64 | u128::from(w[2]) << 32 | u128::from(w[3])
}

fn mask4(a: u32, len: u32) -> u32 {
    a & u32::MAX.checked_shl(32 - len).unwrap_or(0)
}

fn mask6(a: u128, len: u32) -> u128 {
    a & u128::MAX.checked_shl(128 - len).unwrap_or(0)
}

impl Table {
    pub fn new() -> Table {
        Table {
            hasher: RandomState::new(),
            v4: std::array::from_fn(|_| OnceLock::new()),
            v6: std::array::from_fn(|_| OnceLock::new()),
            v4_lens: AtomicU64::new(0),
            v6_lens: Default::default(),
            len: AtomicUsize::new(0),
            next_expiry: AtomicU64::new(NEVER),
        }
    }

    /// Entries held, expired ones included until the next sweep.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The most specific ban covering `ip` that is in force at `now` (Unix ms).
    pub fn find(&self, ip: IpAddr, now: u64) -> Option<Found> {
        if self.len() == 0 {
            return None;
        }
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let mut lens = self.v4_lens.load(Ordering::Acquire);
                while lens != 0 {
                    let len = 63 - lens.leading_zeros();
                    lens &= !(1 << len);
                    let key = mask4(a, len);
                    if let Some(f) = self.probe(&self.v4[len as usize], key, now) {
                        let net = Ipv4Net::new(Ipv4Addr::from(key), len as u8).expect("len <= 32");
                        return Some(found(net.into(), f));
                    }
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for word in (0..3).rev() {
                    let mut lens = self.v6_lens[word].load(Ordering::Acquire);
                    while lens != 0 {
                        let bit = 63 - lens.leading_zeros();
                        lens &= !(1 << bit);
                        let len = word as u32 * 64 + bit;
                        let key = mask6(a, len);
                        if let Some(f) = self.probe(&self.v6[len as usize], v6_words(key), now) {
                            let net = Ipv6Net::new(Ipv6Addr::from(key), len as u8).expect("<= 128");
                            return Some(found(net.into(), f));
                        }
                    }
                }
            }
        }
        None
    }

    fn probe<K: Key>(&self, level: &OnceLock<Level<K>>, key: K, now: u64) -> Option<Entry<K>> {
        let level = level.get()?;
        let hash = self.hasher.hash_one(key);
        let shard = level.shard(hash).read().unwrap_or_else(|e| e.into_inner());
        shard
            .table
            .find(hash, |e| e.key == key)
            .filter(|e| e.expires() > now)
            .copied()
    }

    /// Adds or replaces the ban on `target`; what it replaced, if anything.
    pub fn insert(&self, target: IpNet, expires: u64, label: u32, version: Version) -> Option<Old> {
        let old = match target.trunc() {
            IpNet::V4(n) => {
                let len = u32::from(n.prefix_len());
                let level = self.level(&self.v4[len as usize], &self.v4_lens, len);
                self.put(level, u32::from(n.network()), expires, label, version)
            }
            IpNet::V6(n) => {
                let len = u32::from(n.prefix_len());
                let word = &self.v6_lens[(len / 64) as usize];
                let level = self.level(&self.v6[len as usize], word, len % 64);
                self.put(
                    level,
                    v6_words(u128::from(n.network())),
                    expires,
                    label,
                    version,
                )
            }
        };
        // An atomic write per insert shows in a full resync of a million bans: skipped
        // when it could not change anything.
        if expires != NEVER {
            self.next_expiry.fetch_min(expires, Ordering::AcqRel);
        }
        old
    }

    fn level<'a, K: Key>(
        &self,
        slot: &'a OnceLock<Level<K>>,
        lens: &AtomicU64,
        bit: u32,
    ) -> &'a Level<K> {
        let level = slot.get_or_init(Level::new);
        // Bits are never cleared: once set, no atomic write is needed.
        if lens.load(Ordering::Acquire) & (1 << bit) == 0 {
            lens.fetch_or(1 << bit, Ordering::AcqRel);
        }
        level
    }

    fn put<K: Key>(
        &self,
        level: &Level<K>,
        key: K,
        expires: u64,
        label: u32,
        version: Version,
    ) -> Option<Old> {
        let hash = self.hasher.hash_one(key);
        let mut shard = level.shard(hash).write().unwrap_or_else(|e| e.into_inner());
        let old = self.put_in(&mut shard, hash, key, expires, label, version);
        if old.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        old
    }

    /// Puts an entry in a locked shard; the one it replaced. The caller counts new ones.
    fn put_in<K: Key>(
        &self,
        shard: &mut Shard<K>,
        hash: u64,
        key: K,
        expires: u64,
        label: u32,
        version: Version,
    ) -> Option<Old> {
        shard.next_expiry = shard.next_expiry.min(expires);
        let entry = Entry {
            key,
            expires: split(expires),
            label,
            version: version.words(),
        };
        if let Some(e) = shard.table.find_mut(hash, |e| e.key == key) {
            return Some(std::mem::replace(e, entry).old());
        }
        shard
            .table
            .insert_unique(hash, entry, |e| self.hasher.hash_one(e.key));
        None
    }

    /// The entry for exactly `target`, expired or not.
    pub fn get(&self, target: IpNet) -> Option<Found> {
        let target = target.trunc();
        let e = match target {
            IpNet::V4(n) => self
                .probe(
                    &self.v4[usize::from(n.prefix_len())],
                    u32::from(n.network()),
                    0,
                )
                .map(|e| e.old()),
            IpNet::V6(n) => self
                .probe(
                    &self.v6[usize::from(n.prefix_len())],
                    v6_words(u128::from(n.network())),
                    0,
                )
                .map(|e| e.old()),
        }?;
        Some(Found {
            target,
            expires: e.expires,
            label: e.label,
            version: e.version,
        })
    }

    /// Removes the ban on exactly `target`; what it held, if there was one.
    pub fn remove(&self, target: IpNet) -> Option<Old> {
        match target.trunc() {
            IpNet::V4(n) => self.take(
                &self.v4[usize::from(n.prefix_len())],
                u32::from(n.network()),
            ),
            IpNet::V6(n) => self.take(
                &self.v6[usize::from(n.prefix_len())],
                v6_words(u128::from(n.network())),
            ),
        }
    }

    fn take<K: Key>(&self, level: &OnceLock<Level<K>>, key: K) -> Option<Old> {
        let hash = self.hasher.hash_one(key);
        let mut shard = level
            .get()?
            .shard(hash)
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let (entry, _) = shard
            .table
            .find_entry(hash, |e| e.key == key)
            .ok()?
            .remove();
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(entry.old())
    }

    /// Every entry, expired ones included; one shard's lock at a time.
    pub fn each(&self, mut f: impl FnMut(Found)) {
        for (len, level) in self.v4.iter().enumerate() {
            each_in(level, |e: &Entry<u32>| {
                let net = Ipv4Net::new(Ipv4Addr::from(e.key), len as u8).expect("len <= 32");
                f(found(net.into(), *e))
            });
        }
        for (len, level) in self.v6.iter().enumerate() {
            each_in(level, |e: &Entry<[u32; 4]>| {
                let net = Ipv6Net::new(Ipv6Addr::from(v6_from_words(e.key)), len as u8)
                    .expect("len <= 128");
                f(found(net.into(), *e))
            });
        }
    }

    /// Removes the entries expired at `now`, handing each to `removed`. Only shards that
    /// may hold one are locked for writing; nothing is done before the first expiry.
    pub fn sweep(&self, now: u64, mut removed: impl FnMut(Found)) {
        if self.next_expiry.load(Ordering::Acquire) > now {
            return;
        }
        // Each shard's next expiry is folded back in as it is passed; an insert meanwhile
        // lowers it after its shard has been updated, so no expiry is ever missed.
        self.next_expiry.store(NEVER, Ordering::Release);
        let mut gone = 0;
        for (len, level) in self.v4.iter().enumerate() {
            gone += self.sweep_level(level, now, &mut |e: &Entry<u32>| {
                let net = Ipv4Net::new(Ipv4Addr::from(e.key), len as u8).expect("len <= 32");
                removed(found(net.into(), *e))
            });
        }
        for (len, level) in self.v6.iter().enumerate() {
            gone += self.sweep_level(level, now, &mut |e: &Entry<[u32; 4]>| {
                let net = Ipv6Net::new(Ipv6Addr::from(v6_from_words(e.key)), len as u8)
                    .expect("len <= 128");
                removed(found(net.into(), *e))
            });
        }
        self.len.fetch_sub(gone, Ordering::Relaxed);
    }

    fn sweep_level<K: Key>(
        &self,
        level: &OnceLock<Level<K>>,
        now: u64,
        removed: &mut impl FnMut(&Entry<K>),
    ) -> usize {
        let Some(level) = level.get() else {
            return 0;
        };
        let mut gone = 0;
        for shard in level.shards.iter() {
            let due = shard.read().unwrap_or_else(|e| e.into_inner()).next_expiry <= now;
            let next = if due {
                let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
                let mut next = NEVER;
                shard.table.retain(|e| {
                    let expires = e.expires();
                    if expires > now {
                        next = next.min(expires);
                        true
                    } else {
                        removed(e);
                        gone += 1;
                        false
                    }
                });
                shard.next_expiry = next;
                next
            } else {
                shard.read().unwrap_or_else(|e| e.into_inner()).next_expiry
            };
            self.next_expiry.fetch_min(next, Ordering::AcqRel);
        }
        gone
    }
}

fn found<K>(target: IpNet, e: Entry<K>) -> Found {
    Found {
        target,
        expires: e.expires(),
        label: e.label,
        version: Version::from_words(e.version),
    }
}

fn each_in<K: Key>(level: &OnceLock<Level<K>>, mut f: impl FnMut(&Entry<K>)) {
    let Some(level) = level.get() else {
        return;
    };
    for shard in level.shards.iter() {
        for e in shard.read().unwrap_or_else(|e| e.into_inner()).table.iter() {
            f(e);
        }
    }
}

#[cfg(test)]
mod tests;
