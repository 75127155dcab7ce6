//! The full read: every record in Redis, made this instance's state. Redis serves the pages
//! and this thread parses them while a second thread decodes the previous page, so the
//! decoding overlaps the waiting (a cold instance with a million bans is in sync in about
//! 2 s instead of 3).

use std::collections::HashSet;
use std::sync::mpsc;

use ipnet::IpNet;
use redis::Connection;

use super::record::{decode, Kind, Record};
use super::sync::{apply, connection_failed, err, malformed, Keys, SCAN};
use super::{now_ms, Local, Store};

/// Pages in flight between the reader and the decoder: enough to ride out an uneven page,
/// few enough that a slow decoder holds back the reading (memory stays bounded).
const IN_FLIGHT: usize = 4;

/// One HSCAN page: the hash it came from and its fields and values, flat.
struct Page {
    kind: Kind,
    hash: String,
    flat: Vec<String>,
}

/// Reads every record and makes this instance hold exactly what Redis holds: bans added,
/// renewed and lifted; sets and modes as recorded. A read that fails part way changes
/// nothing.
pub(super) fn read_all(
    store: &Store,
    con: &mut Connection,
    keys: &Keys,
    local: &dyn Local,
) -> Result<(), String> {
    let (pages, inbox) = mpsc::sync_channel::<Page>(IN_FLIGHT);
    let (records, scanned) = crate::background::alongside(
        "rocket-allow-store-decode",
        move || decode_pages(inbox),
        // The sender goes with this closure: when it ends, however, the decoder ends too.
        move || scan(con, keys, pages),
    )
    .map_err(|e| format!("cannot start the decoder: {e}"))?;
    scanned?;
    make_local(store, local, &records);
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

/// Makes the local state what `records` say, changing only what differs.
fn make_local(store: &Store, local: &dyn Local, records: &[Record]) {
    // Targets with a change still queued keep their local state until it is written.
    let queued: HashSet<String> = store
        .queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|c| c.field.clone())
        .collect();
    let free = |t: &IpNet| queued.is_empty() || !queued.contains(&t.to_string());
    let now = now_ms();
    local.reserve(&mut in_force(records, now));
    let (mut added, mut lifted, mut remote_count) = (0, 0, 0);
    for record in records {
        match record {
            Record::Ban {
                target,
                expires,
                reason,
                ..
            } if *expires > now => {
                remote_count += 1;
                // Only what differs is changed: a resync of an unchanged fleet writes nothing.
                if free(target) && local.load(*target, Some((*expires, reason.as_deref()))) {
                    added += 1;
                }
            }
            Record::Ban { .. } | Record::Lifted { .. } => {}
            other => apply(local, other.clone()),
        }
    }
    // What this instance holds and Redis does not was lifted (or expired) elsewhere; the
    // count says whether there is any (the table holds exactly Redis's bans otherwise).
    if local.count() != remote_count {
        let remote: HashSet<IpNet> = in_force(records, now).collect();
        for (target, _, _) in local.bans() {
            if !remote.contains(&target) && free(&target) && local.load(target, None) {
                lifted += 1;
            }
        }
    }
    local.synced(added, lifted);
}

/// The targets of the bans in force at `now` among `records`.
fn in_force(records: &[Record], now: u64) -> impl Iterator<Item = IpNet> + '_ {
    records.iter().filter_map(move |r| match r {
        Record::Ban {
            target, expires, ..
        } if *expires > now => Some(*target),
        _ => None,
    })
}
