//! How each source of addresses last went (list files, URL lists, host names): the last
//! good refresh and the last error, for
//! [`AllowHandle::source_status`](crate::AllowHandle::source_status) and the admin page.
//! Written off the request path only, by the threads that refresh.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// One source's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub last_ok: Option<SystemTime>,
    pub last_error: Option<(SystemTime, String)>,
}

/// State by key: a set's name, or `""` for host names.
#[derive(Default)]
pub(crate) struct Sources(Mutex<BTreeMap<String, State>>);

impl Sources {
    /// The table; `dns`: the configuration has host names (refreshed under key `""`).
    pub fn new(dns: bool) -> Sources {
        let sources = Sources::default();
        if dns {
            sources.with("", |_| {});
        }
        sources
    }

    /// Whether host names are refreshed.
    pub fn has_dns(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key("")
    }

    /// A refresh of `key` that worked (whether or not it changed anything).
    pub fn ok(&self, key: &str) {
        self.with(key, |s| s.last_ok = Some(SystemTime::now()));
    }

    /// A refresh of `key` that failed, and why.
    pub fn failed(&self, key: &str, why: &str) {
        self.with(key, |s| {
            s.last_error = Some((SystemTime::now(), why.to_string()))
        });
    }

    fn with(&self, key: &str, f: impl FnOnce(&mut State)) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(key.to_string()).or_default());
    }

    /// The state of `key` (the default if it never refreshed).
    pub fn get(&self, key: &str) -> State {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned().unwrap_or_default()
    }
}
