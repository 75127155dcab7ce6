//! The fleet store's view of this instance ([`Local`]): changes other instances made,
//! applied to the same tables requests read, and recorded like local ones (`from the
//! fleet`).

use std::sync::atomic::Ordering;

use ipnet::IpNet;

use super::audit;
use crate::config::SetConfig;
use crate::decide::bans::{Held, Merged, Record};
use crate::decide::{describe_ban, Shared};
use crate::rules::Target;
use crate::store::Local;

const FLEET: Option<&str> = Some("the fleet");

impl Local for Shared {
    fn held(&self, target: IpNet) -> Option<Held> {
        self.bans.held(target)
    }

    fn record(&self, target: IpNet) -> Option<Record> {
        self.bans.record(target)
    }

    fn records(&self) -> Vec<Record> {
        self.bans.records()
    }

    fn record_count(&self) -> usize {
        self.bans.record_count()
    }

    fn merge(&self, record: Record) {
        let target = record.target;
        match self.bans.merge(record) {
            Merged::Banned(ban) => audit::record(self, FLEET, &describe_ban(&ban)),
            Merged::Lifted(in_force) => {
                // Forgiven on the fleet: counted again from zero here too.
                if let Some(forget) = self.on_fleet_lift.get() {
                    forget(target);
                }
                if in_force {
                    audit::record(self, FLEET, &format!("unban {target}"));
                }
            }
            Merged::Older | Merged::Renewed => {}
        }
    }

    fn merge_all(&self, records: Vec<Record>) -> (usize, usize) {
        self.bans.merge_all(records)
    }

    fn synced(&self, added: usize, lifted: usize) {
        if added + lifted > 0 {
            audit::record(
                self,
                FLEET,
                &format!("full resync: {added} bans added or renewed, {lifted} lifted"),
            );
        }
    }

    fn set(&self, name: &str, entries: &[String]) {
        // Only inline sets change at run time: a record naming another set is ignored.
        if !matches!(self.spec.set_kinds.get(name), Some(SetConfig::Inline(_))) {
            log::warn!(target: "rocket_allow",
                "rocket-allow: fleet store: `{name}` is not an inline set here; ignored");
            return;
        }
        let targets: Result<Vec<Target>, String> = entries
            .iter()
            .map(|e| Target::parse(e).map_err(|m| format!("`{e}`: {m}")))
            .collect();
        match targets.and_then(|t| self.replace_set(name, t)) {
            Ok(true) => audit::record(
                self,
                FLEET,
                &format!("replace_set {name}: {} entries", entries.len()),
            ),
            Ok(false) => {}
            Err(e) => log::warn!(target: "rocket_allow",
                "rocket-allow: fleet store: set `{name}` not changed: {e}"),
        }
    }

    fn mode(&self, policy: &str, enforce: bool) {
        let index = if policy.is_empty() {
            Some(crate::decide::spec::APP_WIDE)
        } else {
            self.spec.policy_named(policy)
        };
        let Some(index) = index else {
            return;
        };
        let spec = &self.spec.policies[index];
        if spec.enforced.swap(enforce, Ordering::Relaxed) != enforce {
            let name = spec.name.as_deref().unwrap_or("(app-wide)");
            let mode = if enforce { "enforce" } else { "report" };
            audit::record(self, FLEET, &format!("mode of policy {name}: {mode}"));
        }
    }
}
