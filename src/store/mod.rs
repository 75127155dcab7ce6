//! The fleet store (`[allow.store]`): runtime bans, inline sets changed at run time and
//! policy modes, shared by every instance of the app through Redis.
//!
//! - **Redis holds the truth**: a hash per kind (`<prefix>:bans`, `:sets`, `:modes`), each
//!   field a JSON record with the time it was made (Unix ms) and the instance that made it;
//!   a sorted set (`<prefix>:expiry`) says when each ban or lifted-ban record may go, and
//!   instances prune it, so nothing grows forever.
//! - **Changes travel by pub/sub** (`<prefix>:changes`), written and published by one Lua
//!   script that keeps the newer record: the change made later wins, wherever it was made.
//! - **The request path never waits**: a change applies locally at once and is queued for
//!   this module's thread, which writes it; incoming changes are applied to the same local
//!   tables the requests read.
//! - **Outages lose nothing**: every (re)connect resynchronises in full (messages published
//!   while away are lost); local changes made meanwhile wait in the queue and are written
//!   first; a Redis that comes back empty (its `<prefix>:epoch` gone) is filled again
//!   from the instance's own state. A failed or malformed read is "no change", never "no
//!   bans".
//!
//! The request path reads only [`Gate`] (one atomic load, and only with
//! `on_unavailable = "refuse"`).

mod acl;
mod apply;
mod failure;
mod keys;
mod read;
mod record;
mod sync;
mod write;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::config::{OnUnavailable, StoreConfig};
use crate::decide::bans::{self, version::Clock, Lift};

pub(crate) mod counts;
pub(crate) use record::Change;
use record::Kind;

/// Metric names.
pub const STORE_UP: &str = "rocket_allow_store_up";
/// Seconds since the last good sync.
pub const STORE_SYNC_AGE: &str = "rocket_allow_store_sync_age_seconds";
/// Failed store operations (connects, reads, writes, malformed records).
pub const STORE_ERRORS: &str = "rocket_allow_store_errors_total";

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// This instance's own state as the store sees it: a replica of the fleet's records.
pub(crate) trait Local: Send + Sync {
    /// What is held for exactly `target`.
    fn held(&self, target: IpNet) -> Option<bans::Held>;
    /// The record held for exactly `target` (a ban in force or a kept lift).
    fn record(&self, target: IpNet) -> Option<bans::Record>;
    /// Every record held (to write back what Redis lacks).
    fn records(&self) -> Vec<bans::Record>;
    /// How many records are held.
    fn record_count(&self) -> usize;
    /// Applies a record from elsewhere if it is newer than what is held (recorded in the
    /// audit trail as the fleet's).
    fn merge(&self, record: bans::Record);
    /// [`Local::merge`] for a full read's records: one summary line, not one each. How
    /// many bans were added or changed, and how many lifted.
    fn merge_all(&self, records: Vec<bans::Record>) -> (usize, usize);
    /// Records a summary of what a full resync changed.
    fn synced(&self, added: usize, lifted: usize);
    /// Replaces an inline set's entries (invalid ones are logged and change nothing).
    fn set(&self, name: &str, entries: &[String]);
    /// Switches a policy's mode (`""`: the app-wide rules).
    fn mode(&self, policy: &str, enforce: bool);
}

/// What the request path asks: whether to refuse because the store has been away too long.
pub(crate) struct Gate {
    refuse_after: Option<u64>,
    /// Unix ms of the last good sync; 0 before the first.
    last_sync: AtomicU64,
}

impl Gate {
    /// With `on_unavailable = "refuse"`: whether the last good sync is older than
    /// `max_stale_secs` (an instance that never synced refuses until it does).
    #[inline]
    pub fn refusing(&self) -> bool {
        match self.refuse_after {
            None => false,
            Some(max) => now_ms().saturating_sub(self.last_sync.load(Ordering::Relaxed)) > max,
        }
    }

    /// Whether a full read must not wait for idle CPU: before the first good sync, and
    /// always with `on_unavailable = "refuse"`.
    fn urgent(&self) -> bool {
        self.refuse_after.is_some() || self.last_sync.load(Ordering::Relaxed) == 0
    }
}

/// How the store is doing, from [`AllowHandle::store_status`](crate::AllowHandle::store_status).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StoreStatus {
    /// Whether the instance is connected and subscribed.
    pub connected: bool,
    /// How long ago the last good sync was; `None` before the first.
    pub last_sync_age: Option<Duration>,
    /// Local changes waiting to be written to Redis.
    pub pending: usize,
    /// This instance's name in records (`host-pid-random`).
    pub instance: String,
    /// The last error Redis answered a write or a check with (out of memory, a missing
    /// ACL permission, a read-only replica...), while it lasts: changes stay queued and
    /// are retried until Redis takes them. `None` when the last write went in.
    pub last_error: Option<String>,
}

/// The store's shared state: the queue of local changes, the gate and the status.
pub(crate) struct Store {
    pub config: StoreConfig,
    pub instance: String,
    pub gate: Arc<Gate>,
    /// Local changes not yet in Redis, oldest first; one being written stays at the front
    /// until it is in.
    queue: Mutex<VecDeque<Change>>,
    /// This instance's replica of the sets' and modes' records (changed here, or applied
    /// from elsewhere): what a full read compares with, and writes back when Redis lost it.
    others: Mutex<std::collections::HashMap<(Kind, String), Change>>,
    /// The highest count of changes (`<prefix>:seq`) this instance read from Redis or got
    /// back from its own writes: a Redis that counts fewer on a reconnect lost changes (a
    /// restore from an older snapshot, a replica promoted before it had them), and is
    /// merged with in full. Messages never raise it: anyone can publish.
    trusted: AtomicU64,
    /// The last error Redis answered with, while it lasts.
    last_error: Mutex<Option<String>>,
    /// Versions this instance's changes.
    clock: Arc<Clock>,
    /// Told when a set's or mode's record held here changed (the bans file keeps them).
    on_change: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    wake: Condvar,
    connected: AtomicBool,
    /// Set when the app is gone: the thread ends.
    stopped: AtomicBool,
}

impl Store {
    /// The store for `config` (not connected yet: see [`Store::start`]); its changes are
    /// versioned by `clock` (the ban table's).
    pub fn new(config: StoreConfig, clock: Arc<Clock>) -> Arc<Store> {
        let refuse_after = (config.on_unavailable == OnUnavailable::Refuse)
            .then(|| config.max_stale_secs.saturating_mul(1000));
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "instance".into());
        let tag = clock.instance();
        metrics::describe_gauge!(STORE_UP, "1 while the fleet store is connected, else 0");
        metrics::describe_gauge!(
            STORE_SYNC_AGE,
            "Seconds since the fleet store's last good sync"
        );
        metrics::describe_counter!(
            STORE_ERRORS,
            "Failed fleet store operations: connects, reads, writes, malformed records"
        );
        Arc::new(Store {
            instance: format!("{host}-{}-{tag:08x}", std::process::id()),
            gate: Arc::new(Gate {
                refuse_after,
                last_sync: AtomicU64::new(0),
            }),
            config,
            queue: Mutex::new(VecDeque::new()),
            others: Mutex::default(),
            trusted: AtomicU64::new(0),
            last_error: Mutex::new(None),
            clock,
            on_change: std::sync::OnceLock::new(),
            wake: Condvar::new(),
            connected: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        })
    }

    /// Starts the thread that keeps this instance and Redis in step. It holds `local`
    /// weakly and ends once the app is gone.
    pub fn start(self: &Arc<Store>, local: std::sync::Weak<dyn Local>) -> std::io::Result<()> {
        let (store, weak) = (self.clone(), local.clone());
        std::thread::Builder::new()
            .name("rocket-allow-store-write".into())
            .spawn(move || write::write_loop(&store, &weak))?;
        let store = self.clone();
        std::thread::Builder::new()
            .name("rocket-allow-store".into())
            .spawn(move || sync::run(&store, &local))
            .map(drop)
    }

    /// Queues a change made on this instance (already applied locally) for Redis.
    pub fn push(&self, change: Change) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(change);
        self.wake.notify_all();
    }

    /// Queues a ban made here (at `version`).
    pub fn ban(
        &self,
        target: IpNet,
        expires: u64,
        reason: Option<&str>,
        version: bans::version::Version,
    ) {
        self.push(Change::ban(
            target,
            expires,
            reason,
            version,
            &self.instance,
        ));
    }

    /// Queues a ban lifted here.
    pub fn unban(&self, target: IpNet, lift: Lift) {
        self.push(Change::unban(target, lift, &self.instance));
    }

    /// Queues an inline set's new entries, unless they are what this instance holds
    /// already (nothing is written for a set replaced by itself).
    pub fn set(&self, name: &str, entries: &[String]) {
        self.other(Kind::Sets, name, |version, origin| {
            Change::set(name, entries, version, origin)
        });
    }

    /// Queues a policy's new mode (`""`: the app-wide rules), unless it is the mode held.
    pub fn mode(&self, policy: &str, enforce: bool) {
        self.other(Kind::Modes, policy, |version, origin| {
            Change::mode(policy, enforce, version, origin)
        });
    }

    fn other(
        &self,
        kind: Kind,
        field: &str,
        make: impl Fn(bans::version::Version, &str) -> Change,
    ) {
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        let key = (kind, field.to_string());
        let change = make(self.clock.next(), &self.instance);
        // The same value as held (its version and origin aside): nothing to write.
        if let Some(held) = others.get(&key) {
            if same_value(&held.value, &change.value) {
                return;
            }
        }
        others.insert(key, change.clone());
        drop(others);
        self.changed();
        self.push(change);
    }

    fn changed(&self) {
        if let Some(f) = self.on_change.get() {
            f();
        }
    }

    /// Has `f` told whenever a set's or mode's record held here changes.
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_change.set(Box::new(f));
    }

    /// The sets' and modes' records held here, as lines for the bans file.
    pub fn file_records(&self) -> Vec<String> {
        self.others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(Change::message)
            .collect()
    }

    /// Applies the sets' and modes' records a bans file kept (at ignite, before the first
    /// sync): changes made here before a restart are the newest records until Redis has
    /// newer ones.
    pub fn restore(&self, local: &dyn Local, lines: Vec<String>) {
        for line in lines {
            match record::decode_message(&line) {
                Ok((_, r)) => apply::apply(self, local, r),
                Err(e) => log::warn!(target: "rocket_allow",
                    "rocket-allow: bans file: a set or mode record skipped: {e}"),
            }
        }
    }

    /// Whether a set's or mode's record from elsewhere is newer than the one held; if so it
    /// is held from now on (the caller applies it).
    fn take_other(&self, kind: Kind, field: &str, change: Change) -> bool {
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        let key = (kind, field.to_string());
        if others
            .get(&key)
            .is_some_and(|held| held.version >= change.version)
        {
            return false;
        }
        others.insert(key, change);
        drop(others);
        self.changed();
        true
    }

    /// Notes a count of changes Redis gave.
    fn counted(&self, n: u64) {
        self.trusted.fetch_max(n, Ordering::Relaxed);
    }

    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// How the store is doing.
    pub fn status(&self) -> StoreStatus {
        let last = self.gate.last_sync.load(Ordering::Relaxed);
        StoreStatus {
            connected: self.connected.load(Ordering::Relaxed),
            last_sync_age: (last > 0).then(|| Duration::from_millis(now_ms().saturating_sub(last))),
            pending: self.queue.lock().unwrap_or_else(|e| e.into_inner()).len(),
            instance: self.instance.clone(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Ends the thread (at shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.notify_all();
    }
}

/// Whether two records' JSON texts say the same, their versions and origins aside.
fn same_value(a: &str, b: &str) -> bool {
    let strip = |t: &str| {
        serde_json::from_str::<serde_json::Value>(t)
            .ok()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    for k in ["m", "i", "s", "o"] {
                        o.remove(k);
                    }
                }
                v
            })
    };
    strip(a).is_some_and(|a| Some(a) == strip(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_resync_in_good_state_waits_for_idle_cpu() {
        let gate = |refuse_after, last_sync| Gate {
            refuse_after,
            last_sync: AtomicU64::new(last_sync),
        };
        assert!(gate(None, 0).urgent(), "the first sync");
        assert!(!gate(None, now_ms()).urgent(), "a resync");
        assert!(gate(Some(300_000), now_ms()).urgent(), "refuse mode");
    }
}
