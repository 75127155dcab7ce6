//! [`AllowHandle::source_status`] and [`AllowHandle::log_lines_lost`]: how the sources of
//! addresses and the access log are doing, for a status page (the admin page shows them).

use std::time::SystemTime;

use super::handle::AllowHandle;
use crate::config::SetConfig;

/// How one source of addresses last refreshed, from [`AllowHandle::source_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SourceStatus {
    /// `"file"` (a list file), `"url"` (a URL list) or `"dns"` (the rules' host names).
    pub kind: &'static str,
    /// The set's name (`""` for host names).
    pub name: String,
    /// The file's path, or the URL without credentials or query; `""` for host names.
    pub location: String,
    /// The last refresh that worked since ignite (`None`: none yet; what ignite read
    /// stands). Serialized as RFC 3339.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::timestamp::serialize_opt")
    )]
    pub last_ok: Option<SystemTime>,
    /// When the last refresh failed (the last good list stays), and why.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::timestamp::serialize_opt")
    )]
    pub last_error_at: Option<SystemTime>,
    /// Why it failed.
    pub last_error: Option<String>,
}

/// `scheme://host[:port]/path`: what a URL list's URL may show (no user, password or query,
/// where a token may be).
fn shown_url(url: &str) -> String {
    match rocket::http::uri::Absolute::parse(url) {
        Ok(abs) => {
            let host = abs
                .authority()
                .map(|a| match a.port() {
                    Some(port) => format!("{}:{port}", a.host()),
                    None => a.host().to_string(),
                })
                .unwrap_or_default();
            format!("{}://{host}{}", abs.scheme(), abs.path())
        }
        Err(_) => "(not shown)".into(),
    }
}

impl AllowHandle {
    /// The list files, URL lists and host names the rules use, each with its last good
    /// refresh and last error since ignite.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// assert!(handle.source_status().is_empty()); // inline rules only
    /// ```
    pub fn source_status(&self) -> Vec<SourceStatus> {
        let shared = &self.shared;
        let status = |kind, name: &str, location: String| {
            let state = shared.sources.get(name);
            let (last_error_at, last_error) = state.last_error.unzip();
            SourceStatus {
                kind,
                name: name.to_string(),
                location,
                last_ok: state.last_ok,
                last_error_at,
                last_error,
            }
        };
        let mut all: Vec<SourceStatus> = shared
            .spec
            .set_kinds
            .iter()
            .filter_map(|(name, set)| match set {
                SetConfig::Inline(_) => None,
                SetConfig::File { file } => Some(status("file", name, file.display().to_string())),
                SetConfig::Url { url, .. } => Some(status("url", name, shown_url(url))),
            })
            .collect();
        if shared.sources.has_dns() {
            all.push(status("dns", "", String::new()));
        }
        all
    }

    /// Access log lines dropped at a full queue or not written since the app started
    /// (what `rocket_allow_log_lines_lost_total` counts); 0 without an access log.
    pub fn log_lines_lost(&self) -> u64 {
        self.shared.log.as_ref().map_or(0, |l| l.lines_lost())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_credentials_and_query() {
        assert_eq!(
            super::shown_url("https://user:secret@lists.example:8443/a/b.txt?token=x"),
            "https://lists.example:8443/a/b.txt"
        );
    }
}
