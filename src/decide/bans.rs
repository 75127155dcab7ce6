//! Runtime bans: addresses and networks refused in every policy, before any rule, until
//! they expire or are lifted. Kept apart from the compiled rules, so a ban never recompiles
//! them: a ban rebuilds only the (small) ban table and swaps it in.
//!
//! With `[allow.bans] file`, every change is saved by a thread of its own (temporary file,
//! fsync, rename, fsync of the directory), and the file is read back at ignite.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::decide::matcher::Matcher;
use crate::rules::{Target, Verdict};

/// One ban, as [`AllowHandle::bans`](crate::AllowHandle::bans) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The network banned (a single address is a /32 or /128).
    pub target: IpNet,
    /// When it ends; `None` for a ban until lifted.
    pub expires: Option<SystemTime>,
    /// Why, if a reason was given.
    pub reason: Option<String>,
}

/// The table the request path reads: the bans compiled into a matcher, plus the few added
/// since (scanned), so that adding a ban costs a short copy, not a recompile; the recent
/// ones are folded into the matcher once there are [`RECENT`] of them.
#[derive(Clone)]
struct Table {
    matcher: Arc<Matcher>,
    bans: Arc<Vec<Ban>>,
    recent: Vec<Ban>,
}

/// Bans kept outside the matcher before it is rebuilt: few, since every request scans them.
const RECENT: usize = 16;

/// The bans and their table.
pub(crate) struct Bans {
    list: Arc<Mutex<BTreeMap<IpNet, Ban>>>,
    table: ArcSwap<Table>,
    /// Wakes the thread that saves the list (it reads the newest list itself).
    saver: Option<Mutex<mpsc::Sender<()>>>,
}

impl Bans {
    /// Bans read from `file` (expired ones dropped), saved there on every change.
    pub fn open(file: Option<&Path>) -> Result<Bans, String> {
        let mut list = BTreeMap::new();
        // Absolute, so saving keeps working if the app changes directory.
        let file = file
            .map(|f| std::path::absolute(f).map_err(|e| format!("`{}`: {e}", f.display())))
            .transpose()?;
        let file = file.as_deref();
        if let Some(dir) = file.and_then(Path::parent) {
            if !dir.is_dir() {
                return Err(format!("the directory `{}` does not exist", dir.display()));
            }
        }
        if let Some(path) = file {
            let now = SystemTime::now();
            for ban in read(path)? {
                if ban.expires.is_none_or(|e| e > now) {
                    list.insert(ban.target, ban);
                }
            }
        }
        let table = ArcSwap::from_pointee(compile(&list));
        let list = Arc::new(Mutex::new(list));
        let saver = file.map(|path| Mutex::new(saver(path.to_path_buf(), list.clone())));
        Ok(Bans { list, table, saver })
    }

    /// The ban covering `ip`, if one is in force.
    pub fn check(&self, ip: IpAddr) -> Option<Ban> {
        let table = self.table.load();
        if table.bans.is_empty() && table.recent.is_empty() {
            return None;
        }
        let ip = ip.to_canonical();
        // The clock is read only when a ban covers the address.
        let in_force =
            |b: &&Ban| b.target.contains(&ip) && b.expires.is_none_or(|e| e > SystemTime::now());
        if let Some(b) = table.recent.iter().rev().find(in_force) {
            return Some(b.clone());
        }
        let index = table.matcher.decide(ip).rule?;
        let ban = &table.bans[index];
        if ban.expires.is_none_or(|e| e > SystemTime::now()) {
            return Some(ban.clone());
        }
        // The first ban covering `ip` has expired; another, overlapping one may not have.
        table.bans.iter().find(in_force).cloned()
    }

    /// Adds (or renews) a ban. Effective for the next request.
    pub fn ban(&self, target: IpNet, ttl: Option<Duration>, reason: Option<String>) {
        let ban = Ban {
            target,
            // A ttl too large for the clock is a ban until lifted.
            expires: ttl.and_then(|t| SystemTime::now().checked_add(t)),
            reason,
        };
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let renewed = list.insert(target, ban.clone()).is_some();
        let old = self.table.load();
        if renewed || old.recent.len() >= RECENT {
            self.rebuild(&mut list);
            drop(list);
            self.save();
        } else {
            let mut table = Table::clone(&old);
            table.recent.push(ban);
            self.table.store(Arc::new(table));
            drop(list);
            self.save();
        }
    }

    /// Lifts a ban; whether there was one.
    pub fn unban(&self, target: IpNet) -> bool {
        let mut removed = false;
        self.change(|list| removed = list.remove(&target).is_some());
        removed
    }

    /// How many bans the table holds (expired ones included until the next change).
    pub fn len(&self) -> usize {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The bans in force.
    pub fn list(&self) -> Vec<Ban> {
        let now = SystemTime::now();
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.values()
            .filter(|b| b.expires.is_none_or(|e| e > now))
            .cloned()
            .collect()
    }

    /// Applies a change, then recompiles and saves.
    fn change(&self, f: impl FnOnce(&mut BTreeMap<IpNet, Ban>)) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut list);
        self.rebuild(&mut list);
        drop(list);
        self.save();
    }

    /// Drops expired bans, compiles the rest into a new table and swaps it in.
    fn rebuild(&self, list: &mut BTreeMap<IpNet, Ban>) {
        let now = SystemTime::now();
        list.retain(|_, b| b.expires.is_none_or(|e| e > now));
        self.table.store(Arc::new(compile(list)));
    }

    /// Has the list saved, off the caller's thread.
    fn save(&self) {
        if let Some(saver) = &self.saver {
            let _ = saver.lock().unwrap_or_else(|e| e.into_inner()).send(());
        }
    }
}

fn compile(list: &BTreeMap<IpNet, Ban>) -> Table {
    let bans: Vec<Ban> = list.values().cloned().collect();
    let matcher = Matcher::new(
        Verdict::Allow,
        bans.iter().map(|b| (Verdict::Deny, [b.target])),
    );
    Table {
        matcher: Arc::new(matcher),
        bans: Arc::new(bans),
        recent: Vec::new(),
    }
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

/// The file: one ban a line, `network expires-unix-seconds-or-- reason...`.
fn read(path: &Path) -> Result<Vec<Ban>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, line)| {
            let bad = |m: &str| format!("{}:{}: `{line}`: {m}", path.display(), i + 1);
            let mut parts = line.splitn(3, ' ');
            let target = parse_target(parts.next().unwrap_or("")).map_err(|m| bad(&m))?;
            let expires = match parts.next() {
                Some("-") | None => None,
                Some(secs) => Some(
                    UNIX_EPOCH
                        .checked_add(Duration::from_secs(
                            secs.parse().map_err(|_| bad("expiry is not a number"))?,
                        ))
                        .ok_or_else(|| bad("expiry is too far in the future"))?,
                ),
            };
            let reason = parts.next().map(str::to_string).filter(|r| !r.is_empty());
            Ok(Ban {
                target,
                expires,
                reason,
            })
        })
        .collect()
}

/// Starts the thread that saves the bans: woken by each change, it writes the newest list
/// (changes made meanwhile are saved together).
fn saver(path: PathBuf, list: Arc<Mutex<BTreeMap<IpNet, Ban>>>) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let _ = std::thread::Builder::new()
        .name("rocket-allow-bans".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                let bans: Vec<Ban> = list
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect();
                if let Err(e) = save(&path, &bans) {
                    log::error!(target: "rocket_allow",
                        "rocket-allow: cannot save bans to `{}`: {e}", path.display());
                }
            }
        });
    tx
}

/// Writes the whole list to a temporary file, fsyncs it, renames it over the file and
/// fsyncs the directory: the file is always either the old list or the new one.
fn save(path: &Path, bans: &[Ban]) -> std::io::Result<()> {
    let mut text = String::new();
    for b in bans {
        let expires = match b.expires {
            None => "-".to_string(),
            Some(e) => e
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .unwrap_or_else(|_| "0".into()),
        };
        let reason: String = b
            .reason
            .as_deref()
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        text.push_str(&format!("{} {expires} {reason}\n", b.target));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
