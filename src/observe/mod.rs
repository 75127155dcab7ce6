//! What rocket-allow reports about itself besides the access log: metrics through the
//! `metrics` facade (the app installs the exporter) and hits per rule ([`hits`]).
//!
//! Handles are made once and kept: a decision increments a counter it already holds, so
//! with no recorder installed a decision costs one atomic load and nothing else. Decision
//! counters are made on first use, so a policy's series appear once it decides something.
//! Install the recorder before the app ignites: the other handles are made at ignite, and
//! the `metrics` facade binds a handle to the recorder in place when it is made.

pub(crate) mod hits;
pub(crate) mod recent;
pub(crate) mod sources;

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};

use crate::log::By;
use crate::rules::Verdict;

/// Decisions, by policy, verdict, enforced and what decided.
pub const DECISIONS: &str = "rocket_allow_decisions_total";
/// Access log lines dropped at a full queue or not written.
pub const LOG_LINES_LOST: &str = "rocket_allow_log_lines_lost_total";
/// Failed refreshes of a source (`dns`, `file`, `url`).
pub const REFRESH_FAILURES: &str = "rocket_allow_refresh_failures_total";
/// Refreshes of a source that changed what is compiled.
pub const RELOADS: &str = "rocket_allow_reloads_total";
/// Networks compiled, per policy.
pub const RULES: &str = "rocket_allow_rules";
/// Runtime bans in the table.
pub const BANS: &str = "rocket_allow_bans";

/// Where a reload or a failed refresh came from (the `source` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Dns = 0,
    File = 1,
    // Without the `url-lists` feature nothing fetches, but the label stays the same.
    #[cfg_attr(not(feature = "url-lists"), allow(dead_code))]
    Url = 2,
}

const SOURCES: [&str; 3] = ["dns", "file", "url"];

/// Every `by` label value, in [`By`] order.
const BY: [By; 6] = [
    By::Rule,
    By::Default,
    By::Ban,
    By::Header,
    By::Path,
    By::Store,
];

/// Decision counters of one policy: verdict × enforced × by.
type PolicyCounters = [OnceLock<Counter>; 2 * 2 * BY.len()];

/// The metric handles of one app.
pub(crate) struct Metrics {
    /// The `policy` label of each policy (`""` for the app-wide rules), in spec order.
    labels: Vec<String>,
    decisions: Vec<PolicyCounters>,
    log_lines_lost: Counter,
    refresh_failures: [Counter; 3],
    reloads: [Counter; 3],
    rules: Vec<Gauge>,
    bans: Gauge,
}

impl Metrics {
    /// Describes the metrics and makes the handles of the app's policies (names in spec
    /// order, `None` for the app-wide rules).
    pub fn new<'a>(policies: impl Iterator<Item = Option<&'a str>>) -> Metrics {
        describe_counter!(DECISIONS, "Requests decided, by policy, verdict, whether the verdict was enforced, and what decided");
        describe_counter!(
            LOG_LINES_LOST,
            "Access log lines dropped at a full queue or that failed to be written"
        );
        describe_counter!(REFRESH_FAILURES, "Refreshes of a host name, list file or URL list that failed (the last good list stays)");
        describe_counter!(
            RELOADS,
            "Refreshes of a host name, list file or URL list that changed the compiled rules"
        );
        describe_gauge!(RULES, "Networks compiled, per policy");
        describe_gauge!(BANS, "Runtime bans in the table");
        let labels: Vec<String> = policies.map(|p| p.unwrap_or("").to_string()).collect();
        let per_source = |name: &'static str| SOURCES.map(|s| counter!(name, "source" => s));
        Metrics {
            decisions: labels.iter().map(|_| Default::default()).collect(),
            rules: labels
                .iter()
                .map(|p| gauge!(RULES, "policy" => p.clone()))
                .collect(),
            labels,
            log_lines_lost: counter!(LOG_LINES_LOST),
            refresh_failures: SOURCES
                .map(|s| counter!(REFRESH_FAILURES, "source" => s, "set" => "")),
            reloads: per_source(RELOADS),
            bans: gauge!(BANS),
        }
    }

    /// Counts one decision.
    #[inline]
    pub fn decision(&self, policy: usize, verdict: Verdict, enforced: bool, by: By) {
        let v = usize::from(verdict == Verdict::Deny);
        let e = usize::from(enforced);
        let b = BY.iter().position(|x| *x == by).unwrap_or(0);
        let cell = &self.decisions[policy][(v * 2 + e) * BY.len() + b];
        cell.get_or_init(|| {
            counter!(DECISIONS,
                "policy" => self.labels[policy].clone(),
                "verdict" => verdict.as_str(),
                "enforced" => if enforced { "true" } else { "false" },
                "by" => by.as_str())
        })
        .increment(1);
    }

    /// The counter of lost access log lines (handed to the log's writer).
    pub fn log_lines_lost(&self) -> Counter {
        self.log_lines_lost.clone()
    }

    /// Counts a failed refresh of `set` (`""` for host names, which are refreshed
    /// together). Failures are rare, so a set's handle is made when it first fails.
    pub fn refresh_failed(&self, source: Source, set: &str, n: u64) {
        if set.is_empty() {
            self.refresh_failures[source as usize].increment(n);
        } else {
            counter!(REFRESH_FAILURES, "source" => SOURCES[source as usize], "set" => set.to_string())
                .increment(n);
        }
    }

    /// Counts a refresh that changed what is compiled.
    pub fn reloaded(&self, source: Source) {
        self.reloads[source as usize].increment(1);
    }

    /// Sets the networks compiled for each policy.
    pub fn rules(&self, networks: impl Iterator<Item = usize>) {
        for (gauge, n) in self.rules.iter().zip(networks) {
            gauge.set(n as f64);
        }
    }

    /// What sets the number of runtime bans (handed to the ban table, which knows when).
    pub fn bans(&self) -> impl Fn(usize) + Send + Sync + 'static {
        let gauge = self.bans.clone();
        move |n| gauge.set(n as f64)
    }
}
