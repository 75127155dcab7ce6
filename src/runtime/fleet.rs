//! The fleet store's view of this instance ([`Local`]): changes other instances made,
//! applied to the same tables requests read, and recorded like local ones (`from the
//! fleet`).

use std::sync::atomic::Ordering;

use ipnet::IpNet;

use super::audit;
use crate::config::SetConfig;
use crate::decide::{describe_ban, Shared};
use crate::rules::Target;
use crate::store::Local;

const FLEET: Option<&str> = Some("the fleet");

impl Local for Shared {
    fn bans(&self) -> Vec<(IpNet, u64, Option<String>)> {
        self.bans.entries()
    }

    fn ban(&self, target: IpNet, expires: u64, reason: Option<&str>) {
        // This instance's own change coming back (or one it holds already): recorded once.
        if self.bans.holds(target, expires, reason) {
            return;
        }
        let ban = self.bans.ban_at(target, expires, reason);
        audit::record(self, FLEET, &describe_ban(&ban));
    }

    fn unban(&self, target: IpNet) {
        if self.bans.unban(target) {
            audit::record(self, FLEET, &format!("unban {target}"));
        }
    }

    fn holds(&self, target: IpNet, expires: u64, reason: Option<&str>) -> bool {
        self.bans.holds(target, expires, reason)
    }

    fn count(&self) -> usize {
        self.bans.len()
    }

    fn load(&self, target: IpNet, ban: Option<(u64, Option<&str>)>) -> bool {
        match ban {
            Some((expires, reason)) => self.bans.load(target, expires, reason),
            None => self.bans.unban(target),
        }
    }

    fn load_all(&self, bans: &[(IpNet, u64, Option<String>)]) -> usize {
        self.bans.reserve(bans.iter().map(|(target, _, _)| *target));
        self.bans.load_all(bans)
    }

    fn synced(&self, added: usize, lifted: usize) {
        if added + lifted > 0 {
            self.bans.loaded();
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
