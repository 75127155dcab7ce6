//! Runtime bans: addresses and networks refused in every policy, before any rule, until
//! they expire or are lifted. Kept apart from the compiled rules, so a ban never recompiles
//! them, and in a table of their own ([`table`]) built for a million bans: a check, a ban,
//! a renewal and an unban each touch one entry, and expired bans cost nothing (a lookup
//! skips them, a sweeper thread removes them by itself).
//!
//! With `[allow.bans] file`, changes are saved by a thread of its own ([`file`]), and the
//! file is read back at ignite.

mod file;
mod labels;
mod merge;
mod table;
pub(crate) mod version;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::rules::Target;
use labels::Labels;
pub(crate) use merge::{Held, Lift, Merged, Record, State};
use table::{Found, Table, NEVER};
use version::{Clock, Version};

/// One ban, as [`AllowHandle::bans`](crate::AllowHandle::bans) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Ban {
    /// The network banned (a single address is a /32 or /128).
    pub target: IpNet,
    /// When it ends; `None` for a ban until lifted (also one whose end would fall after
    /// the year 9999, which no date can show). Serialized as RFC 3339.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::timestamp::serialize_opt")
    )]
    pub expires: Option<SystemTime>,
    /// Why, if a reason was given.
    pub reason: Option<String>,
    /// Who made it, when not the app's own calls: `auto_ban <rule>` for an automatic ban
    /// (also when another instance of the fleet made it). `None` for a ban made through
    /// [`AllowHandle`](crate::AllowHandle) or read from the bans file without one.
    pub origin: Option<String>,
}

impl Ban {
    /// When it ends, printable as RFC 3339; `None` until lifted.
    ///
    /// ```
    /// use rocket_allow::Ban;
    /// let ban = Ban {
    ///     target: "192.0.2.0/24".parse().unwrap(),
    ///     expires: None,
    ///     reason: None,
    ///     origin: None,
    /// };
    /// assert!(ban.expires_at().is_none());
    /// ```
    pub fn expires_at(&self) -> Option<crate::Timestamp> {
        self.expires.map(crate::Timestamp)
    }
}

/// A page of bans, from [`Bans::page`].
pub(crate) struct Page {
    /// The page, ordered by target.
    pub bans: Vec<Ban>,
    /// How many bans in force were accepted, before the page's start or not.
    pub total: usize,
    /// How many of them come after the page's start (the page's own included).
    pub following: usize,
}

/// The last millisecond of the year 9999: the latest expiry a date can show. A ban meant
/// to end later is a ban until lifted.
pub(crate) const MAX_EXPIRY_MS: u64 = 253_402_300_799_999;

/// What is told of each expired ban.
type Told = Box<dyn Fn(&Ban) + Send + Sync>;

/// The bans: the table and the reasons, shared with the threads that sweep and save them.
struct Store {
    table: Table,
    labels: Labels,
    /// Told of every ban the sweeper removes (the audit trail), once the app set it.
    on_expiry: std::sync::OnceLock<Told>,
    /// Lifted bans (with a fleet store: they are records too, so that an older ban cannot
    /// come back), and the lock every versioned change takes: a change is compared with
    /// what is held and made in one step.
    lifted: Mutex<HashMap<IpNet, Lift>>,
    /// Whether lifts are kept (only a fleet store needs them).
    keep_lifts: bool,
    clock: Arc<Clock>,
    /// The fleet store's other records read from the file, until it takes them.
    records_read: Mutex<Vec<String>>,
    /// What the fleet store has to keep in the file besides bans (sets and modes).
    records: std::sync::OnceLock<Records>,
}

/// The fleet store's other records, as lines of JSON.
type Records = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// The bans and the threads that keep them.
pub(crate) struct Bans {
    store: Arc<Store>,
    saver: Option<file::Saver>,
    /// Told how many bans the table holds after every change and sweep (the gauge).
    count: Arc<dyn Fn(usize) + Send + Sync>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(NEVER))
}

/// When a ban given for `ttl` from now ends (Unix ms): rounded up to the millisecond;
/// past [`MAX_EXPIRY_MS`], never (`u64::MAX`).
pub(crate) fn expiry(ttl: Option<Duration>) -> u64 {
    let Some(ttl) = ttl else {
        return NEVER;
    };
    let ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(NEVER);
    match now_ms().checked_add(ms) {
        Some(at) if at <= MAX_EXPIRY_MS => at,
        _ => NEVER,
    }
}

/// Separates an origin from the reason in a label's text (`auto_ban scanners` U+001F
/// `21 responses 404 in 60 s`): one text travels through the table, the bans file and the
/// fleet store. Reasons given by the app have their control characters replaced
/// ([`clean_reason`]), so they cannot fake an origin.
const ORIGIN_MARK: char = '\u{1f}';

/// The label text for a ban made by `origin` (an automatic ban) with `reason`.
pub(crate) fn tagged(origin: &str, reason: &str) -> String {
    cap_reason(&format!("{origin}{ORIGIN_MARK}{reason}")).into_owned()
}

/// The longest reason a ban keeps, in bytes (origin included): longer ones are cut, ending
/// in `…`. Every replica (the bans file, the fleet store) holds the same text.
pub(crate) const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to [`MAX_REASON_BYTES`] at a character boundary, ending in `…` when cut.
pub(crate) fn cap_reason(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_REASON_BYTES {
        return text.into();
    }
    let mut end = MAX_REASON_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// A reason as the app gave it, with control characters (which could break a bans-file
/// line or fake an origin) replaced by spaces, cut to [`MAX_REASON_BYTES`].
pub(crate) fn clean_reason(reason: &str) -> std::borrow::Cow<'_, str> {
    let reason = cap_reason(reason);
    if reason.chars().any(char::is_control) {
        reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .into()
    } else {
        reason
    }
}

/// Splits a label's text into origin and reason.
fn untag(text: Option<String>) -> (Option<String>, Option<String>) {
    match text {
        Some(t) => match t.split_once(ORIGIN_MARK) {
            Some((origin, reason)) => (
                Some(origin.to_string()),
                Some(reason.to_string()).filter(|r| !r.is_empty()),
            ),
            None => (None, Some(t)),
        },
        None => (None, None),
    }
}

impl Store {
    /// Adds or replaces a ban (an expiry past [`MAX_EXPIRY_MS`] is until lifted): the entry
    /// as put, and whether it differs from the one it replaced. The caller holds `lifted`.
    fn put(
        &self,
        target: IpNet,
        expires: u64,
        reason: Option<&str>,
        version: Version,
    ) -> (Found, bool) {
        let expires = if expires > MAX_EXPIRY_MS {
            NEVER
        } else {
            expires
        };
        let label = self.labels.hold(reason);
        let old = self.table.insert(target, expires, label, version);
        if let Some(old) = old {
            self.labels.release(old.label);
        }
        let found = Found {
            target: target.trunc(),
            expires,
            label,
            version,
        };
        let same = old.is_some_and(|o| o.expires == expires && o.label == label);
        (found, !same)
    }

    fn lock_lifted(&self) -> std::sync::MutexGuard<'_, HashMap<IpNet, Lift>> {
        self.lifted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ban(&self, f: Found) -> Ban {
        let (origin, reason) = untag(self.labels.text(f.label));
        Ban {
            target: f.target,
            expires: (f.expires != NEVER).then(|| UNIX_EPOCH + Duration::from_millis(f.expires)),
            reason,
            origin,
        }
    }

    /// The whole table (and the lifts kept) as the bans file's text.
    fn text(&self) -> String {
        let now = now_ms();
        let mut out = String::with_capacity(self.table.len() * 60);
        out.push_str(file::HEADER);
        self.table.each(|f| {
            if f.expires > now {
                let reason = self.labels.text(f.label);
                file::write_line(&mut out, f.target, f.expires, f.version, reason.as_deref());
            }
        });
        for (target, lift) in self.lock_lifted().iter() {
            file::write_lift(&mut out, *target, lift);
        }
        if let Some(records) = self.records.get() {
            for record in records() {
                file::write_record(&mut out, &record);
            }
        }
        out
    }
}

impl Bans {
    /// Bans read from `file` (expired ones dropped), saved there after every change;
    /// `count` is told how many bans the table holds whenever that changes. With
    /// `keep_lifts` (a fleet store), lifted bans are kept as records too.
    pub fn open(
        file: Option<&Path>,
        count: impl Fn(usize) + Send + Sync + 'static,
        keep_lifts: bool,
    ) -> Result<Bans, String> {
        // Absolute, so saving keeps working if the app changes directory.
        let file = file
            .map(|f| std::path::absolute(f).map_err(|e| format!("`{}`: {e}", f.display())))
            .transpose()?;
        if let Some(dir) = file.as_deref().and_then(Path::parent) {
            if !dir.is_dir() {
                return Err(format!("the directory `{}` does not exist", dir.display()));
            }
        }
        let store = Arc::new(Store {
            table: Table::new(),
            labels: Labels::default(),
            on_expiry: std::sync::OnceLock::new(),
            lifted: Mutex::new(HashMap::new()),
            keep_lifts,
            clock: Arc::new(Clock::new()),
            records_read: Mutex::new(Vec::new()),
            records: std::sync::OnceLock::new(),
        });
        if let Some(path) = &file {
            let now = now_ms();
            let contents = file::read(path)?;
            if keep_lifts {
                *store.records_read.lock().unwrap_or_else(|e| e.into_inner()) = contents.records;
            }
            let mut lifted = store.lock_lifted();
            for line in contents.lines {
                match line.lift {
                    Some(lift) if keep_lifts && lift.keep > now => {
                        lifted.insert(line.target, lift);
                    }
                    Some(_) => {}
                    None if line.expires > now => {
                        store.put(
                            line.target,
                            line.expires,
                            line.reason.as_deref(),
                            line.version,
                        );
                    }
                    None => {}
                }
            }
        }
        let saver = match file {
            Some(path) => {
                let s = store.clone();
                Some(file::Saver::start(path, move || s.text())?)
            }
            None => None,
        };
        let count: Arc<dyn Fn(usize) + Send + Sync> = Arc::new(count);
        sweep(Arc::downgrade(&store), count.clone())?;
        count(store.table.len());
        Ok(Bans {
            store,
            saver,
            count,
        })
    }

    /// The ban covering `ip`, if one is in force (the most specific, if several are).
    pub fn check(&self, ip: IpAddr) -> Option<Ban> {
        if self.store.table.len() == 0 {
            return None;
        }
        let found = self.store.table.find(ip, now_ms())?;
        Some(self.store.ban(found))
    }

    /// Adds (or renews) a ban ending at `expires` (Unix ms, `u64::MAX` until lifted; past
    /// [`MAX_EXPIRY_MS`] is until lifted too), effective for the next request: a change made
    /// here, newer than any record held. The ban as made, and its version.
    pub fn ban_at(&self, target: IpNet, expires: u64, reason: Option<&str>) -> (Ban, Version) {
        let target = target.trunc();
        let mut lifted = self.store.lock_lifted();
        let version = self.store.clock.after(self.held_version(target, &lifted));
        let (found, _) = self.store.put(target, expires, reason, version);
        lifted.remove(&target);
        drop(lifted);
        self.changed();
        (self.store.ban(found), version)
    }

    /// Lifts a ban here (a change made here, newer than any record held): whether one was
    /// in force, and the lift as a record (kept, with a fleet store, as long as the ban it
    /// lifts could have lasted, and at least 7 days).
    pub fn unban(&self, target: IpNet) -> (bool, Lift) {
        let target = target.trunc();
        let mut lifted = self.store.lock_lifted();
        let version = self.store.clock.after(self.held_version(target, &lifted));
        let old = self.store.table.remove(target);
        let lift = Lift::of(version, old.map(|o| o.expires));
        if self.store.keep_lifts {
            lifted.insert(target, lift);
        }
        drop(lifted);
        let Some(old) = old else {
            // Nothing held here, but the lift is a record to keep (the bans file too).
            if self.store.keep_lifts {
                self.changed();
            }
            return (false, lift);
        };
        self.store.labels.release(old.label);
        self.changed();
        (old.expires > now_ms(), lift)
    }

    /// The fleet store's other records the bans file held at ignite (once: they are
    /// handed over).
    pub fn take_records(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .store
                .records_read
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Has the bans file keep what `records` gives besides bans (the fleet store's sets
    /// and modes), from the next save on; [`Bans::records_changed`] asks for one.
    pub fn keep_records(&self, records: impl Fn() -> Vec<String> + Send + Sync + 'static) {
        let _ = self.store.records.set(Box::new(records));
    }

    /// Says that the records kept by [`Bans::keep_records`] changed: they are saved.
    pub fn records_changed(&self) {
        if let Some(saver) = &self.saver {
            saver.changed();
        }
    }

    /// The version of what is held for `target` (the caller holds `lifted`).
    fn held_version(&self, target: IpNet, lifted: &HashMap<IpNet, Lift>) -> Option<Version> {
        self.store
            .table
            .get(target)
            .map(|f| f.version)
            .or_else(|| lifted.get(&target).map(|l| l.version))
    }

    /// The clock that versions this instance's changes (the fleet store versions set and
    /// mode changes with it too).
    pub fn clock(&self) -> Arc<Clock> {
        self.store.clock.clone()
    }

    fn changed(&self) {
        (self.count)(self.store.table.len());
        if let Some(saver) = &self.saver {
            saver.changed();
        }
    }

    /// The bans in force, ordered by target.
    pub fn list(&self) -> Vec<Ban> {
        let mut out = self.some(usize::MAX);
        out.sort_by_key(|b| b.target);
        out
    }

    /// A page of the bans in force that `keep` accepts (given the target, the label, which
    /// is the same for bans of the same origin and reason, the origin and the reason),
    /// ordered by target: at most `limit` of those whose target comes after
    /// `after`. One pass over the table holding `limit` entries, one text per distinct
    /// reason, and the page's bans made at the end: no copy of the table, no sort of it.
    pub fn page(
        &self,
        after: Option<IpNet>,
        limit: usize,
        mut keep: impl FnMut(IpNet, u32, Option<&str>, Option<&str>) -> bool,
    ) -> Page {
        let now = now_ms();
        let after = after.map(|a| a.trunc());
        // Each distinct label's (origin, reason), read once.
        let mut texts: HashMap<u32, (Option<String>, Option<String>)> = HashMap::new();
        // The `limit` smallest targets after `after` so far, the largest on top.
        let mut heap: std::collections::BinaryHeap<(IpNet, u64, u32)> =
            std::collections::BinaryHeap::with_capacity(limit.min(self.len()).saturating_add(1));
        let (mut total, mut following) = (0, 0);
        self.store.table.each(|f| {
            if f.expires <= now {
                return;
            }
            let (origin, reason) = texts
                .entry(f.label)
                .or_insert_with(|| untag(self.store.labels.text(f.label)));
            if !keep(f.target, f.label, origin.as_deref(), reason.as_deref()) {
                return;
            }
            total += 1;
            if after.is_some_and(|a| f.target <= a) {
                return;
            }
            following += 1;
            if heap.len() < limit {
                heap.push((f.target, f.expires, f.label));
            } else if heap.peek().is_some_and(|top| f.target < top.0) {
                heap.pop();
                heap.push((f.target, f.expires, f.label));
            }
        });
        let bans = heap
            .into_sorted_vec()
            .into_iter()
            .map(|(target, expires, label)| {
                self.store.ban(Found {
                    target,
                    expires,
                    label,
                    version: Version::ZERO,
                })
            })
            .collect();
        Page {
            bans,
            total,
            following,
        }
    }

    /// At most `n` of the bans in force, in no order.
    pub fn some(&self, n: usize) -> Vec<Ban> {
        let now = now_ms();
        let mut out = Vec::with_capacity(self.store.table.len().min(n));
        self.store.table.each(|f| {
            if f.expires > now && out.len() < n {
                out.push(self.store.ban(f));
            }
        });
        out
    }

    /// How many bans the table holds (expired ones until the sweeper's next look).
    pub fn len(&self) -> usize {
        self.store.table.len()
    }

    /// Has `f` told of every ban that expires from now on (once; later calls are ignored).
    pub fn on_expiry(&self, f: impl Fn(&Ban) + Send + Sync + 'static) {
        let _ = self.store.on_expiry.set(Box::new(f));
    }

    /// Waits until every change made before the call is in the bans file (at once without
    /// one); `Ok` once a save of the current state went in, else the error of the save that
    /// failed (the saver keeps trying, with backoff).
    pub fn flush(&self) -> Result<(), String> {
        self.saver.as_ref().map_or(Ok(()), file::Saver::flush)
    }
}

/// Starts the thread that removes expired bans: it looks four times a second (a look
/// before the first expiry costs one atomic load) and ends once the bans are gone.
fn sweep(store: Weak<Store>, count: Arc<dyn Fn(usize) + Send + Sync>) -> Result<(), String> {
    // Normal priority, like the saver: it takes shards' locks.
    std::thread::Builder::new()
        .name("rocket-allow-ban-sweeper".into())
        .spawn(move || {
            for tick in 1u64.. {
                std::thread::sleep(Duration::from_millis(250));
                let Some(store) = store.upgrade() else {
                    return;
                };
                let before = store.table.len();
                let now = now_ms();
                // Kept lifts last days: a look a minute is plenty.
                if store.keep_lifts && tick % 240 == 0 {
                    store.lock_lifted().retain(|_, lift| lift.keep > now);
                }
                store.table.sweep(now, |found| {
                    if let Some(told) = store.on_expiry.get() {
                        told(&store.ban(found));
                    }
                    store.labels.release(found.label)
                });
                if store.table.len() != before {
                    count(store.table.len());
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the thread that removes expired bans: {e}"))
}

/// Parses a ban target: an address or a network.
pub(crate) fn parse_target(target: &str) -> Result<IpNet, String> {
    match Target::parse(target) {
        Ok(Target::Net(net)) => Ok(net),
        Ok(other) => Err(format!(
            "`{other}`: a ban is an address or a network, not `all`, a host name or a set"
        )),
        Err(e) => Err(e.to_string()),
    }
}
