//! Many bans at once, for a full read of the fleet store: room made in advance, and the
//! bans put a shard at a time.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::RwLock;

use ipnet::IpNet;

use super::{shard_index, v6_words, Key, Level, Old, Shard, Table, NEVER, SHARDS};
use crate::decide::bans::version::Version;

impl Table {
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

    /// Adds or replaces many bans at once (target, expiry, label, version), a shard at a time: each
    /// shard's table stays in the cache while its entries go in, and is locked once (a
    /// full resync puts a million bans: one by one, each was a cache miss). `replaced` is
    /// told, for each entry's index in `batch`, what it replaced.
    pub fn insert_all(
        &self,
        batch: &[(IpNet, u64, u32, Version)],
        mut replaced: impl FnMut(usize, Option<Old>),
    ) {
        // (level: 0..=32 for IPv4, 33.. for IPv6; shard; hash; index in the batch)
        let mut order: Vec<(u8, u16, u64, u32)> = batch
            .iter()
            .enumerate()
            .map(|(i, (target, _, _, _))| {
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
        batch: &[(IpNet, u64, u32, Version)],
        replaced: &mut impl FnMut(usize, Option<Old>),
        key: impl Fn(IpNet) -> K,
    ) -> (usize, u64) {
        let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
        let (mut added, mut earliest) = (0, NEVER);
        for &(_, _, hash, i) in run {
            let (target, expires, label, version) = batch[i as usize];
            let old = self.put_in(
                &mut shard,
                hash,
                key(target.trunc()),
                expires,
                label,
                version,
            );
            added += usize::from(old.is_none());
            earliest = earliest.min(expires);
            replaced(i as usize, old);
        }
        (added, earliest)
    }
}
