//! The record every runtime change leaves: a tracing event (target `rocket_allow::audit`)
//! and a line in the access log, with who made it when the app said so
//! ([`AllowHandle::acting_as`](crate::AllowHandle::acting_as)).

use std::sync::Arc;

use crate::decide::bans::Ban;
use crate::decide::{describe_ban, Shared};
use crate::log::EscapedDisplay;

/// Bans restored at ignite that get a line each; the rest are counted in one line (a
/// million restored bans must not write a million lines at every start).
const RESTORED_LINES: usize = 10_000;

/// Records one change: `message` says what changed (`ban 192.0.2.7/32 until lifted: x`),
/// `who` who made it. Both hold text from outside (a ban's reason, from a form or another
/// instance; a name given to `acting_as`): the event and the line escape it as the access
/// log escapes request text, so that neither splits nor reorders what a reader shows.
pub(crate) fn record(shared: &Shared, who: Option<&str>, message: &str) {
    let message = match who {
        Some(who) => format!("{message} (by {who})"),
        None => message.to_string(),
    };
    tracing::info!(
        target: "rocket_allow::audit",
        change = %EscapedDisplay(&message),
        "rule change"
    );
    if let Some(log) = &shared.log {
        log.notice("INFO", &message);
    }
}

/// At ignite: records the bans restored from the bans file, has every expiry recorded from
/// now on, and writes one summary line of what was loaded to Rocket's log.
pub(crate) fn at_ignite(shared: &Arc<Shared>) {
    let restored = shared.bans.len();
    for ban in shared.bans.some(RESTORED_LINES) {
        record(shared, None, &format!("restored {}", describe_ban(&ban)));
    }
    if restored > RESTORED_LINES {
        let more = restored - RESTORED_LINES;
        record(
            shared,
            None,
            &format!("restored {more} more bans (not listed one by one)"),
        );
    }
    let weak = Arc::downgrade(shared);
    shared.bans.on_expiry(move |ban: &Ban| {
        if let Some(shared) = weak.upgrade() {
            record(&shared, None, &format!("expired {}", describe_ban(ban)));
        }
    });
    let spec = &shared.spec;
    let rules: usize = spec.policies.iter().map(|p| p.rules.len()).sum();
    let networks: usize = shared.generation.load().network_counts().sum();
    let log = shared
        .log
        .as_ref()
        .map_or("none".to_string(), |l| format!("`{}`", l.path().display()));
    let watched = shared
        .watched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    #[cfg(feature = "url-lists")]
    let urls = shared.urls.lock().unwrap_or_else(|e| e.into_inner()).len();
    #[cfg(not(feature = "url-lists"))]
    let urls = 0;
    log::info!(
        target: "rocket_allow",
        "rocket-allow: {} policies ({} named), {rules} rules, {networks} networks compiled; \
         {} trusted proxy entries; access log {log}; {} bans restored; {watched} list files \
         watched, {urls} URL lists",
        spec.policies.len(),
        spec.policies.len() - 1,
        spec.trusted.len(),
        restored,
    );
}
