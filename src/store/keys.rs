//! The store's names in Redis (keys under the prefix, the channel) and its limits.

use std::time::Duration;

use super::record::Kind;

/// How long a connect, a command or a read may take.
pub(super) const TIMEOUT: Duration = Duration::from_secs(2);
/// Fields read per HSCAN (and log entries per replayed page, records per write-back).
pub(super) const SCAN: usize = 10_000;

/// The keys and channel under the configured prefix.
pub(super) struct Keys {
    pub epoch: String,
    pub expiry: String,
    pub channel: String,
    pub log: String,
    /// How many changes Redis took (see [`super::Store::counted`]).
    pub seq: String,
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            epoch: format!("{prefix}:epoch"),
            expiry: format!("{prefix}:expiry"),
            channel: format!("{prefix}:changes"),
            log: format!("{prefix}:log"),
            seq: format!("{prefix}:seq"),
            prefix: format!("{prefix}:"),
        }
    }

    pub(super) fn hash(&self, kind: Kind) -> String {
        format!("{}{}", self.prefix, kind.name())
    }
}
