//! The full read: every record in Redis merged with this instance's, both ways. Redis
//! serves the pages and one thread parses them while a second decodes the previous page,
//! so the decoding overlaps the waiting; then each record is compared with what this
//! instance holds: a newer one from Redis is applied here, a newer one held here (or one
//! Redis lacks: it lost it, to a restore, a failover or an outage) is written back.
//! Absence is never a lift.

use std::collections::HashSet;
use std::sync::mpsc;

use ipnet::IpNet;
use redis::Connection;

use super::apply::apply;
use super::failure::{connection_failed, err, malformed, Failure};
use super::keys::{Keys, SCAN};
use super::record::{decode, Change, Kind, Record};
use super::write::write_back;
use super::{Local, Store};
use crate::background::Priority;
use crate::decide::bans;

/// Pages in flight between the reader and the decoder: enough to ride out an uneven page,
/// few enough that a slow decoder holds back the reading (memory stays bounded).
const IN_FLIGHT: usize = 4;

/// One HSCAN page: the hash it came from and its fields and values, flat, as bytes (a field
/// that is not UTF-8 is one bad record, not a failed page).
struct Page {
    kind: Kind,
    hash: String,
    flat: Vec<Vec<u8>>,
}

/// What a full read found.
#[derive(Default)]
struct Diff {
    /// Records newer in Redis than here (or not held here).
    newer: Vec<bans::Record>,
    /// Targets whose record here is newer than Redis's, or that Redis lacks.
    back: Vec<IpNet>,
    /// Sets and modes, as recorded.
    others: Vec<Record>,
}

/// Reads every record and merges: newer records from Redis are applied here, newer ones
/// held here are written back. A read that fails part way changes nothing.
///
/// The reading, decoding and comparing (a million records) run at background priority on
/// a resync, on the CPU the requests leave; only the changes found are made at normal
/// priority, because they take the ban table's write locks, which a preempted
/// low-priority thread would hold while requests wait.
pub(super) fn read_all(
    store: &Store,
    con: &mut Connection,
    write: &str,
    keys: &Keys,
    local: &dyn Local,
) -> Result<(), Failure> {
    // A resync of an instance that has a good state runs in the background. The first sync
    // does not (a busy core would keep the instance out of the fleet for minutes), nor
    // any with `on_unavailable = "refuse"` (the read's time counts as staleness there).
    let priority = if store.gate.urgent() {
        Priority::Normal
    } else {
        Priority::Background
    };
    let reading = &mut *con;
    let diff = crate::background::run("rocket-allow-store-read", priority, || {
        let (pages, inbox) = mpsc::sync_channel::<Page>(IN_FLIGHT);
        let (records, scanned) = crate::background::alongside(
            "rocket-allow-store-decode",
            priority,
            move || decode_pages(inbox),
            // The sender goes with this closure: when it ends, however, the decoder ends too.
            move || scan(reading, keys, pages),
        )
        .map_err(|e| Failure::from(format!("cannot start the decoder: {e}")))?;
        scanned?;
        Ok::<_, Failure>(compare(local, records))
    })
    .map_err(|e| Failure::from(format!("cannot start the full read: {e}")))??;
    let (added, lifted) = local.merge_all(diff.newer);
    for other in diff.others {
        apply(store, local, other);
    }
    // What Redis lacks, from this instance: the records as held now (a change made here
    // since the comparison is newer still, and goes as it is).
    let mut back: Vec<Change> = diff
        .back
        .into_iter()
        .filter_map(|target| local.record(target))
        .map(|r| Change::of(&r, &store.instance))
        .collect();
    back.extend(
        store
            .others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned(),
    );
    let written = write_back(store, con, write, keys, &back)?;
    local.synced(added, lifted);
    if written > 0 {
        log::info!(target: "rocket_allow",
            "rocket-allow: fleet store: wrote back {written} records Redis lacked or held older");
    }
    Ok(())
}

/// Sends every page of our hashes to the decoder; an error when a page cannot be read.
fn scan(con: &mut Connection, keys: &Keys, pages: mpsc::SyncSender<Page>) -> Result<(), Failure> {
    for kind in Kind::ALL {
        let hash = keys.hash(kind);
        let mut cursor: u64 = 0;
        loop {
            let scanned: redis::RedisResult<(u64, Vec<Vec<u8>>)> = redis::cmd("HSCAN")
                .arg(&hash)
                .arg(cursor)
                .arg("COUNT")
                .arg(SCAN)
                .query(con);
            let (next, flat) = match scanned {
                Ok(page) => page,
                Err(e) if connection_failed(&e) => return Err(e.into()),
                // Not a hash (someone else's key): nothing of this kind can be read from
                // it; the instance keeps what it has of this kind.
                Err(e) => {
                    malformed(&hash, &err(e));
                    if kind == Kind::Bans {
                        return Err(format!("`{hash}` cannot be read; bans unchanged").into());
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
                return Err(String::from("the decoder stopped").into());
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
            let (Ok(f), Ok(v)) = (std::str::from_utf8(field), std::str::from_utf8(value)) else {
                let shown = String::from_utf8_lossy(field);
                malformed(&format!("{} {shown}", page.hash), "not UTF-8");
                continue;
            };
            match decode(page.kind, f, v) {
                Ok(r) => records.push(r),
                Err(e) => malformed(&format!("{} {f}", page.hash), &e),
            }
        }
    }
    records
}

/// Compares `records` with this instance's (read only: takes no write lock).
fn compare(local: &dyn Local, records: Vec<Record>) -> Diff {
    let mut diff = Diff::default();
    // A cold instance holds nothing to write back: no targets kept, no set built.
    let held_any = local.record_count() > 0;
    let (mut matched, mut targets) = (0, Vec::new());
    for record in records {
        match record {
            Record::Ban(r) => {
                let held = if held_any {
                    targets.push(r.target);
                    local.held(r.target)
                } else {
                    None
                };
                match held.map(|h| h.version()) {
                    Some(h) if h > r.version => {
                        matched += 1;
                        diff.back.push(r.target);
                    }
                    Some(h) => {
                        matched += 1;
                        if h < r.version {
                            diff.newer.push(r);
                        }
                    }
                    None => diff.newer.push(r),
                }
            }
            other => diff.others.push(other),
        }
    }
    // What this instance holds and Redis does not is written back (Redis lost it). When
    // every record held met its own in Redis, there is none.
    if held_any && matched < local.record_count() {
        let remote: HashSet<IpNet> = targets.into_iter().collect();
        diff.back.extend(
            local
                .records()
                .into_iter()
                .map(|r| r.target)
                .filter(|t| !remote.contains(t)),
        );
    }
    diff
}
