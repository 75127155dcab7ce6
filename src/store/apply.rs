//! Applying one record from Redis (a message, a replayed entry, a full read's set or mode).

use super::record::{Change, Kind, Record};
use super::{Local, Store};

/// Applies one record from Redis if it is newer than the one held.
pub(super) fn apply(store: &Store, local: &dyn Local, record: Record) {
    match record {
        Record::Ban(r) => local.merge(r),
        Record::Set {
            name,
            entries,
            version,
        } => {
            let held = Change::set(&name, &entries, version, "");
            if store.take_other(Kind::Sets, &name, held) {
                local.set(&name, &entries);
            }
        }
        Record::Mode {
            policy,
            enforce,
            version,
        } => {
            let held = Change::mode(&policy, enforce, version, "");
            if store.take_other(Kind::Modes, &policy, held) {
                local.mode(&policy, enforce);
            }
        }
    }
}
