//! The ban table: one hash table per prefix length in use, each split into shards under
//! their own lock. A lookup is one probe per prefix length in use (longest first), however
//! many bans there are and whatever has expired; a ban, renewal or unban changes one entry
//! under one shard's lock; nothing is ever rebuilt whole.
//!
//! An entry is the masked address, the expiry (Unix milliseconds) and a label (the interned
//! reason): 16 bytes for IPv4, 28 for IPv6, so a million bans fit in 64 MB with the hash
//! tables' slack.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

use hashbrown::HashTable;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

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
}

impl<K> Entry<K> {
    fn expires(&self) -> u64 {
        u64::from(self.expires[0]) << 32 | u64::from(self.expires[1])
    }
}

fn split(ms: u64) -> [u32; 2] {
    [(ms >> 32) as u32, ms as u32]
}

/// What a lookup or a listing finds: the ban's network, expiry and label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub target: IpNet,
    pub expires: u64,
    pub label: u32,
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

    /// Adds or replaces the ban on `target`; the expiry and label of the one it replaced,
    /// if any.
    pub fn insert(&self, target: IpNet, expires: u64, label: u32) -> Option<(u64, u32)> {
        let old = match target.trunc() {
            IpNet::V4(n) => {
                let len = u32::from(n.prefix_len());
                let level = self.level(&self.v4[len as usize], &self.v4_lens, len);
                self.put(level, u32::from(n.network()), expires, label)
            }
            IpNet::V6(n) => {
                let len = u32::from(n.prefix_len());
                let word = &self.v6_lens[(len / 64) as usize];
                let level = self.level(&self.v6[len as usize], word, len % 64);
                self.put(level, v6_words(u128::from(n.network())), expires, label)
            }
        };
        // An atomic write per insert shows in a full resync of a million bans: skipped
        // when it could not change anything.
        if expires != NEVER {
            self.next_expiry.fetch_min(expires, Ordering::AcqRel);
        }
        old
    }

    /// Makes room for `nets` at once (a full resync puts a million bans: growing each
    /// shard as they come rehashes every entry several times). Only what is missing is
    /// reserved: a table that holds them already does not grow.
    pub fn reserve(&self, nets: impl Iterator<Item = IpNet>) {
        let (mut v4, mut v6) = ([0usize; 33], [0usize; 129]);
        for net in nets {
            match net {
                IpNet::V4(n) => v4[usize::from(n.prefix_len())] += 1,
                IpNet::V6(n) => v6[usize::from(n.prefix_len())] += 1,
            }
        }
        for (len, &n) in v4.iter().enumerate().filter(|(_, &n)| n > 0) {
            let level = self.level(&self.v4[len], &self.v4_lens, len as u32);
            self.reserve_in(level, n);
        }
        for (len, &n) in v6.iter().enumerate().filter(|(_, &n)| n > 0) {
            let word = &self.v6_lens[len / 64];
            let level = self.level(&self.v6[len], word, len as u32 % 64);
            self.reserve_in(level, n);
        }
    }

    fn reserve_in<K: Key>(&self, level: &Level<K>, n: usize) {
        // Hashing spreads them evenly, give or take a few percent.
        let per_shard = n / SHARDS + n / SHARDS / 16 + 1;
        for shard in level.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            let missing = per_shard.saturating_sub(shard.table.len());
            shard
                .table
                .reserve(missing, |e| self.hasher.hash_one(e.key));
        }
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
    ) -> Option<(u64, u32)> {
        let hash = self.hasher.hash_one(key);
        let mut shard = level.shard(hash).write().unwrap_or_else(|e| e.into_inner());
        let old = self.put_in(&mut shard, hash, key, expires, label);
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
    ) -> Option<(u64, u32)> {
        shard.next_expiry = shard.next_expiry.min(expires);
        let entry = Entry {
            key,
            expires: split(expires),
            label,
        };
        if let Some(e) = shard.table.find_mut(hash, |e| e.key == key) {
            let old = std::mem::replace(e, entry);
            return Some((old.expires(), old.label));
        }
        shard
            .table
            .insert_unique(hash, entry, |e| self.hasher.hash_one(e.key));
        None
    }

    /// Adds or replaces many bans at once (target, expiry, label), a shard at a time: each
    /// shard's table stays in the cache while its entries go in, and is locked once (a
    /// full resync puts a million bans: one by one, each was a cache miss). `replaced` is
    /// told, for each entry's index in `batch`, what it replaced.
    pub fn insert_all(
        &self,
        batch: &[(IpNet, u64, u32)],
        mut replaced: impl FnMut(usize, Option<(u64, u32)>),
    ) {
        // (level: 0..=32 for IPv4, 33.. for IPv6; shard; hash; index in the batch)
        let mut order: Vec<(u8, u16, u64, u32)> = batch
            .iter()
            .enumerate()
            .map(|(i, (target, _, _))| {
                let (level, hash) = match target.trunc() {
                    IpNet::V4(n) => (n.prefix_len(), self.hasher.hash_one(u32::from(n.network()))),
                    IpNet::V6(n) => (
                        33 + n.prefix_len(),
                        self.hasher.hash_one(v6_words(u128::from(n.network()))),
                    ),
                };
                (level, shard_index(hash) as u16, hash, i as u32)
            })
            .collect();
        // Stable: two entries for one target go in in the batch's order.
        order.sort_by_key(|&(level, shard, _, _)| (level, shard));
        let (mut added, mut earliest) = (0, NEVER);
        for run in order.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (level, shard) = (u32::from(run[0].0), usize::from(run[0].1));
            let (n, first) = if level <= 32 {
                let level = self.level(&self.v4[level as usize], &self.v4_lens, level);
                self.put_run(
                    &level.shards[shard],
                    run,
                    batch,
                    &mut replaced,
                    |t| match t {
                        IpNet::V4(n) => u32::from(n.network()),
                        IpNet::V6(_) => unreachable!("sorted by level"),
                    },
                )
            } else {
                let len = level - 33;
                let word = &self.v6_lens[(len / 64) as usize];
                let level = self.level(&self.v6[len as usize], word, len % 64);
                self.put_run(
                    &level.shards[shard],
                    run,
                    batch,
                    &mut replaced,
                    |t| match t {
                        IpNet::V6(n) => v6_words(u128::from(n.network())),
                        IpNet::V4(_) => unreachable!("sorted by level"),
                    },
                )
            };
            added += n;
            earliest = earliest.min(first);
        }
        self.len.fetch_add(added, Ordering::Relaxed);
        if earliest != NEVER {
            self.next_expiry.fetch_min(earliest, Ordering::AcqRel);
        }
    }

    /// Puts one shard's run of [`insert_all`](Self::insert_all)'s batch under one lock:
    /// how many were new, and the earliest expiry.
    fn put_run<K: Key>(
        &self,
        shard: &RwLock<Shard<K>>,
        run: &[(u8, u16, u64, u32)],
        batch: &[(IpNet, u64, u32)],
        replaced: &mut impl FnMut(usize, Option<(u64, u32)>),
        key: impl Fn(IpNet) -> K,
    ) -> (usize, u64) {
        let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
        let (mut added, mut earliest) = (0, NEVER);
        for &(_, _, hash, i) in run {
            let (target, expires, label) = batch[i as usize];
            let old = self.put_in(&mut shard, hash, key(target.trunc()), expires, label);
            added += usize::from(old.is_none());
            earliest = earliest.min(expires);
            replaced(i as usize, old);
        }
        (added, earliest)
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
                .map(|e| (e.expires(), e.label)),
            IpNet::V6(n) => self
                .probe(
                    &self.v6[usize::from(n.prefix_len())],
                    v6_words(u128::from(n.network())),
                    0,
                )
                .map(|e| (e.expires(), e.label)),
        }?;
        Some(Found {
            target,
            expires: e.0,
            label: e.1,
        })
    }

    /// Removes the ban on exactly `target`; its label, if there was one.
    pub fn remove(&self, target: IpNet) -> Option<(u64, u32)> {
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

    fn take<K: Key>(&self, level: &OnceLock<Level<K>>, key: K) -> Option<(u64, u32)> {
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
        Some((entry.expires(), entry.label))
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: every ban in a list, the most specific one in force wins.
    fn model(bans: &[(IpNet, u64)], ip: IpAddr, now: u64) -> Option<IpNet> {
        let ip = ip.to_canonical();
        bans.iter()
            .filter(|(n, e)| n.contains(&ip) && *e > now)
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(n, _)| *n)
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (0u32..8, 20u8..=32).prop_map(|(a, p)| {
                IpNet::from(
                    Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | a << 6), p)
                        .unwrap()
                        .trunc(),
                )
            }),
            (0u128..8, 116u8..=128).prop_map(|(a, p)| {
                let addr = Ipv6Addr::from(0x2001_0db8u128 << 96 | a << 7);
                IpNet::from(Ipv6Net::new(addr, p).unwrap().trunc())
            }),
            (0u32..8, 0u8..=2).prop_map(|(a, p)| {
                IpNet::from(Ipv4Net::new(Ipv4Addr::from(a), p).unwrap().trunc())
            }),
        ]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Ban(IpNet, u64),
        Unban(IpNet),
        Sweep(u64),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn agrees_with_a_list_of_bans(
            ops in prop::collection::vec(prop_oneof![
                (arb_net(), prop_oneof![Just(NEVER), 1u64..20]).prop_map(|(n, e)| Op::Ban(n, e)),
                arb_net().prop_map(Op::Unban),
                (0u64..20).prop_map(Op::Sweep),
            ], 0..60),
            probes in prop::collection::vec((0u32..600, 0u128..1100, 0u64..20), 1..40),
        ) {
            let table = Table::new();
            let mut list: Vec<(IpNet, u64)> = Vec::new();
            let mut swept_at = 0;
            for op in ops {
                match op {
                    Op::Ban(n, e) => {
                        let had = list.iter().any(|b| b.0 == n);
                        list.retain(|b| b.0 != n);
                        list.push((n, e));
                        prop_assert_eq!(table.insert(n, e, 7).is_some(), had);
                    }
                    Op::Unban(n) => {
                        let had = list.iter().position(|b| b.0 == n).map(|i| list.remove(i));
                        prop_assert_eq!(table.remove(n).map(|r| r.0), had.map(|b| b.1));
                    }
                    Op::Sweep(now) => {
                        let now = now.max(swept_at);
                        swept_at = now;
                        let mut labels = 0;
                        table.sweep(now, |f| { assert_eq!(f.label, 7); labels += 1 });
                        let before = list.len();
                        list.retain(|b| b.1 > now);
                        prop_assert_eq!(labels, before - list.len());
                    }
                }
                prop_assert_eq!(table.len(), list.len());
            }
            for (a4, a6, now) in probes {
                let now = now.max(swept_at);
                for ip in [
                    IpAddr::from(Ipv4Addr::from(0x0a00_0000 | a4)),
                    IpAddr::from(Ipv4Addr::from(a4)),
                    IpAddr::from(Ipv4Addr::from(0x0a00_0000 | a4).to_ipv6_mapped()),
                    IpAddr::from(Ipv6Addr::from(0x2001_0db8u128 << 96 | a6)),
                ] {
                    prop_assert_eq!(table.find(ip, now).map(|f| f.target), model(&list, ip, now), "{}", ip);
                }
            }
            let mut all = Vec::new();
            table.each(|f| all.push((f.target, f.expires)));
            all.sort();
            list.sort();
            prop_assert_eq!(all, list);
        }
    }

    #[test]
    fn reserving_room_changes_nothing_but_capacity() {
        let table = Table::new();
        let nets: Vec<IpNet> = (0..5000u32)
            .map(|i| match i % 2 {
                0 => Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32)
                    .unwrap()
                    .into(),
                _ => Ipv6Net::new(Ipv6Addr::from(u128::from(i) << 64), 64)
                    .unwrap()
                    .into(),
            })
            .collect();
        table.reserve(nets.iter().copied());
        assert_eq!(table.len(), 0);
        assert_eq!(table.find("10.0.0.0".parse().unwrap(), 0), None);
        for (i, net) in nets.iter().enumerate() {
            assert_eq!(table.insert(*net, NEVER, i as u32), None);
        }
        // Held already: reserving again (a resync of the same bans) grows nothing.
        let capacity = |t: &Table| {
            let mut c = 0;
            for level in t.v4.iter().filter_map(OnceLock::get) {
                c += level
                    .shards
                    .iter()
                    .map(|s| s.read().unwrap().table.capacity())
                    .sum::<usize>();
            }
            for level in t.v6.iter().filter_map(OnceLock::get) {
                c += level
                    .shards
                    .iter()
                    .map(|s| s.read().unwrap().table.capacity())
                    .sum::<usize>();
            }
            c
        };
        let before = capacity(&table);
        table.reserve(nets.iter().copied());
        assert_eq!(capacity(&table), before);
        assert_eq!(table.len(), 5000);
        for (i, net) in nets.iter().enumerate() {
            let f = table.find(net.network(), 1).expect("banned");
            assert_eq!((f.target, f.label), (*net, i as u32));
        }
    }

    #[test]
    fn inserting_all_at_once_is_inserting_one_by_one() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let (all, one) = (Table::new(), Table::new());
        for t in [&all, &one] {
            assert_eq!(t.insert(net("10.0.0.1/32"), 50, 1), None);
        }
        let batch = [
            (net("10.0.0.1/32"), NEVER, 2),
            (net("10.0.0.0/8"), 40, 3),
            (net("2001:db8::/64"), NEVER, 4),
            (net("2001:db8::/64"), 30, 5),
            (net("2001:db8::1/128"), NEVER, 6),
        ];
        let mut seen = vec![None; batch.len()];
        all.insert_all(&batch, |i, old| seen[i] = Some(old));
        let mut want = Vec::new();
        for (target, expires, label) in batch {
            want.push(Some(one.insert(target, expires, label)));
        }
        // The same final table; each entry saw what it replaced (the two on 2001:db8::/64
        // in their order in the batch).
        assert_eq!(seen, want);
        assert_eq!(all.len(), one.len());
        for ip in [
            "10.0.0.1",
            "10.1.2.3",
            "2001:db8::1",
            "2001:db8::2",
            "192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(all.find(ip, 35), one.find(ip, 35), "{ip}");
        }
        // The earliest expiry is known to the sweeper.
        let mut swept = Vec::new();
        all.sweep(35, |f| swept.push(f.target));
        assert_eq!(swept, [net("2001:db8::/64")]);
    }

    #[test]
    fn entries_are_small() {
        assert_eq!(std::mem::size_of::<Entry<u32>>(), 16);
        assert_eq!(std::mem::size_of::<Entry<[u32; 4]>>(), 28);
    }
}
