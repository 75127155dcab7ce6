//! The full read: every record in Redis, made this instance's state. Redis serves the pages
//! and one thread parses them while a second decodes the previous page, so the decoding
//! overlaps the waiting; then what differs is found, and only that is changed.

use std::collections::HashSet;
use std::sync::mpsc;

use ipnet::IpNet;
use redis::Connection;

use super::record::{decode, Kind, Record};
use super::sync::{apply, connection_failed, err, malformed, Keys, SCAN};
use super::{now_ms, Local, Store};
use crate::background::Priority;

/// Pages in flight between the reader and the decoder: enough to ride out an uneven page,
/// few enough that a slow decoder holds back the reading (memory stays bounded).
const IN_FLIGHT: usize = 4;

/// One HSCAN page: the hash it came from and its fields and values, flat.
struct Page {
    kind: Kind,
    hash: String,
    flat: Vec<String>,
}

/// What a full read found different from this instance's state.
#[derive(Default)]
struct Diff {
    /// Bans in force in Redis that this instance does not hold as they are.
    bans: Vec<(IpNet, u64, Option<String>)>,
    /// Bans this instance holds that Redis does not.
    lifts: Vec<IpNet>,
    /// Sets and modes, as recorded.
    others: Vec<Record>,
}

/// Reads every record and makes this instance hold exactly what Redis holds: bans added,
/// renewed and lifted; sets and modes as recorded. A read that fails part way changes
/// nothing.
///
/// The reading, decoding and comparing (a million records) run at background priority on
/// a resync, on the CPU the requests leave; only the changes found are made at normal
/// priority, because they take the ban table's write locks, which a preempted
/// low-priority thread would hold while requests wait.
pub(super) fn read_all(
    store: &Store,
    con: &mut Connection,
    keys: &Keys,
    local: &dyn Local,
) -> Result<(), String> {
    // A resync of an instance that has a good state runs in the background. The first sync
    // does not (a busy core would keep the instance out of the fleet for minutes), nor
    // any with `on_unavailable = "refuse"` (the read's time counts as staleness there).
    // From here, a local change written to Redis may have been missed by the read.
    *store.written.lock().unwrap_or_else(|e| e.into_inner()) = Some(HashSet::new());
    let priority = if store.gate.urgent() {
        Priority::Normal
    } else {
        Priority::Background
    };
    let diff = crate::background::run("rocket-allow-store-read", priority, || {
        let (pages, inbox) = mpsc::sync_channel::<Page>(IN_FLIGHT);
        let (records, scanned) = crate::background::alongside(
            "rocket-allow-store-decode",
            priority,
            move || decode_pages(inbox),
            // The sender goes with this closure: when it ends, however, the decoder ends too.
            move || scan(con, keys, pages),
        )
        .map_err(|e| format!("cannot start the decoder: {e}"))?;
        scanned?;
        Ok::<_, String>(compare(local, records))
    })
    .map_err(|e| format!("cannot start the full read: {e}"));
    match diff {
        Ok(Ok(diff)) => make_local(store, local, diff),
        Ok(Err(e)) | Err(e) => {
            *store.written.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Err(e);
        }
    }
    Ok(())
}

/// Sends every page of our hashes to the decoder; an error when a page cannot be read.
fn scan(con: &mut Connection, keys: &Keys, pages: mpsc::SyncSender<Page>) -> Result<(), String> {
    for kind in Kind::ALL {
        let hash = keys.hash(kind);
        let mut cursor: u64 = 0;
        loop {
            let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("HSCAN")
                .arg(&hash)
                .arg(cursor)
                .arg("COUNT")
                .arg(SCAN)
                .query(con);
            let (next, flat) = match scanned {
                Ok(page) => page,
                Err(e) if connection_failed(&e) => return Err(err(e)),
                // Not a hash (someone else's key): nothing of this kind can be read from
                // it; the instance keeps what it has of this kind.
                Err(e) => {
                    malformed(&hash, &err(e));
                    if kind == Kind::Bans {
                        return Err(format!("`{hash}` cannot be read; bans unchanged"));
                    }
                    break;
                }
            };
            let page = Page {
                kind,
                hash: hash.clone(),
                flat,
            };
            if pages.send(page).is_err() {
                return Err("the decoder stopped".into());
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// Decodes pages until the reader is done; malformed entries are skipped and logged.
fn decode_pages(inbox: mpsc::Receiver<Page>) -> Vec<Record> {
    let mut records = Vec::new();
    for page in inbox {
        for pair in page.flat.chunks(2) {
            let [field, value] = pair else { continue };
            match decode(page.kind, field, value) {
                Ok(r) => records.push(r),
                Err(e) => malformed(&format!("{} {field}", page.hash), &e),
            }
        }
    }
    records
}

/// What differs between `records` and this instance's state (read only: takes no write
/// lock).
fn compare(local: &dyn Local, records: Vec<Record>) -> Diff {
    let now = now_ms();
    let mut diff = Diff::default();
    // A cold instance holds nothing to lift: no targets kept, no set built.
    let held_any = local.count() > 0;
    let (mut remote, mut targets) = (0, Vec::new());
    for record in records {
        match record {
            Record::Ban {
                target,
                expires,
                reason,
                ..
            } if expires > now => {
                remote += 1;
                if held_any {
                    targets.push(target);
                }
                if !local.holds(target, expires, reason.as_deref()) {
                    diff.bans.push((target, expires, reason));
                }
            }
            Record::Ban { .. } | Record::Lifted { .. } => {}
            other => diff.others.push(other),
        }
    }
    // What this instance holds and Redis does not was lifted (or expired) elsewhere. When
    // it holds every ban of Redis exactly, and as many, there is none; otherwise (a ban
    // lifted and another made count the same) every held target is looked up.
    if held_any && (!diff.bans.is_empty() || local.count() != remote) {
        let remote: HashSet<IpNet> = targets.into_iter().collect();
        diff.lifts = local
            .bans()
            .into_iter()
            .map(|(target, _, _)| target)
            .filter(|t| !remote.contains(t))
            .collect();
    }
    diff
}

/// Makes the changes a full read found, but to targets with a change of this instance's
/// still queued or written during the read (they keep their local state: it is Redis's
/// newest, or will be).
fn make_local(store: &Store, local: &dyn Local, diff: Diff) {
    let written = store
        .written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    let queued: HashSet<(Kind, String)> = store
        .queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|c| (c.kind, c.field.clone()))
        .chain(written)
        .collect();
    let free = |kind: Kind, field: String| queued.is_empty() || !queued.contains(&(kind, field));
    let mut bans = diff.bans;
    if !queued.is_empty() {
        bans.retain(|(target, _, _)| free(Kind::Bans, target.to_string()));
    }
    let added = local.load_all(&bans);
    let mut lifted = 0;
    for target in &diff.lifts {
        if free(Kind::Bans, target.to_string()) && local.load(*target, None) {
            lifted += 1;
        }
    }
    for other in diff.others {
        let (kind, field) = match &other {
            Record::Set { name, .. } => (Kind::Sets, name.clone()),
            Record::Mode { policy, .. } => (Kind::Modes, policy.clone()),
            Record::Ban { .. } | Record::Lifted { .. } => continue,
        };
        if free(kind, field) {
            apply(local, other);
        }
    }
    local.synced(added, lifted);
}
