//! Chainable setters for [`AllowConfig`] built in code (every field is public too, so
//! `AllowConfig { mode: Mode::Report, ..AllowConfig::new(rules) }` works as well).

use std::path::PathBuf;

use super::{AccessLogConfig, AllowConfig, MissingHeader, Mode, PolicyConfig, SetConfig};
use crate::rules::{Target, Verdict};

impl AllowConfig {
    /// Sets the verdict when no rule matches.
    ///
    /// ```
    /// use rocket_allow::{AllowConfig, Mode, PolicyConfig, Rule, Target, Verdict};
    /// let config = AllowConfig::new(vec![Rule::allow("@office").unwrap()])
    ///     .with_default(Verdict::Deny)
    ///     .with_set("office", vec![Target::parse("192.0.2.0/24").unwrap()])
    ///     .with_trusted_proxies(vec![Target::parse("10.0.0.1").unwrap()])
    ///     .with_policy("admin", PolicyConfig::new(vec![Rule::allow("@loopback").unwrap()]))
    ///     .with_mode(Mode::Report)
    ///     .with_access_log("access.log")
    ///     .with_bans_file("bans.txt");
    /// assert!(config.validate().is_ok());
    /// assert_eq!(config.default, Verdict::Deny);
    /// ```
    pub fn with_default(mut self, default: Verdict) -> AllowConfig {
        self.default = default;
        self
    }

    /// Adds (or replaces) an inline set.
    pub fn with_set(mut self, name: &str, entries: Vec<Target>) -> AllowConfig {
        self.sets
            .insert(name.to_string(), SetConfig::Inline(entries));
        self
    }

    /// Sets the trusted proxies.
    pub fn with_trusted_proxies(mut self, proxies: Vec<Target>) -> AllowConfig {
        self.trusted_proxies = proxies;
        self
    }

    /// Sets the header trusted proxies put the client in.
    pub fn with_client_ip_header(mut self, header: &str) -> AllowConfig {
        self.client_ip_header = header.to_string();
        self
    }

    /// Sets what a trusted proxy's request without the header gets.
    pub fn with_missing_header(mut self, missing: MissingHeader) -> AllowConfig {
        self.missing_header = missing;
        self
    }

    /// Adds (or replaces) a named policy.
    pub fn with_policy(mut self, name: &str, policy: PolicyConfig) -> AllowConfig {
        self.policies.insert(name.to_string(), policy);
        self
    }

    /// Sets the mode of the app-wide rules (and of policies without their own).
    pub fn with_mode(mut self, mode: Mode) -> AllowConfig {
        self.mode = mode;
        self
    }

    /// Writes the access log to `path` with Flask-Allow's defaults.
    pub fn with_access_log(mut self, path: impl Into<PathBuf>) -> AllowConfig {
        self.access_log = Some(AccessLogConfig::new(path));
        self
    }

    /// Keeps runtime bans in `path` across restarts.
    pub fn with_bans_file(mut self, path: impl Into<PathBuf>) -> AllowConfig {
        self.bans.file = Some(path.into());
        self
    }
}
