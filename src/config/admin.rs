//! `[allow.admin]`: who may use the admin page (`rocket_allow::admin::routes()`), whether it
//! may change anything, and how many recent refusals it keeps.

use serde::Deserialize;

/// The most recent decisions the admin page can be asked to keep.
const MAX_RECENT: usize = 100_000;

/// The policy the admin page requires when `[allow.admin] policy` is not set: it admits
/// 127.0.0.1 and ::1 only, always enforced. Defining a policy of this name replaces it.
pub const BUILTIN_ADMIN_POLICY: &str = "rocket-allow-admin";

/// `[allow.admin]`: the admin page's settings.
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::AllowConfig;
///
/// let figment = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = []
///     [allow.policies.ops]
///     rules = [{ allow = "10.1.0.0/16" }, { deny = "all" }]
///     [allow.admin]
///     policy = "ops"
///     read_only = true
/// "#));
/// let admin = AllowConfig::from_figment(&figment).unwrap().admin;
/// assert_eq!(admin.policy.as_deref(), Some("ops"));
/// assert!(admin.read_only);
/// assert_eq!(admin.recent, 1000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The policy every admin route requires (an `[allow.policies.<name>]`). Default: a
    /// built-in one ([`BUILTIN_ADMIN_POLICY`]) that admits 127.0.0.1 and ::1 only.
    #[serde(default)]
    pub policy: Option<String>,
    /// `true`: the page shows everything and changes nothing (no forms, every POST
    /// refused). Default `false`.
    #[serde(default)]
    pub read_only: bool,
    /// Refusals and would-be refusals kept for the page's "recent" view, 0 to 100000
    /// (0 keeps none). Default 1000.
    #[serde(default = "default_recent")]
    pub recent: usize,
    /// Host names the page answers to besides IP literals and `localhost` (any case, port
    /// ignored): the names a remote operator's browser uses. Any other `Host` is refused
    /// with 403, so a page an attacker rebinds to the app's address by DNS cannot read or
    /// post to it. Default none.
    #[serde(default)]
    pub hosts: Vec<String>,
}

fn default_recent() -> usize {
    1000
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            policy: None,
            read_only: false,
            recent: default_recent(),
            hosts: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// The name of the policy the admin routes require.
    pub fn policy_name(&self) -> &str {
        self.policy.as_deref().unwrap_or(BUILTIN_ADMIN_POLICY)
    }

    /// `recent` within bounds and `policy` naming a configured policy: `(key, message)`.
    pub(super) fn validate(&self, config: &super::AllowConfig) -> Result<(), (String, String)> {
        if self.recent > MAX_RECENT {
            return Err((
                "allow.admin.recent".into(),
                format!("{} is more than {MAX_RECENT}", self.recent),
            ));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            let name = host.strip_suffix('.').unwrap_or(host);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err((
                    format!("allow.admin.hosts[{i}]"),
                    format!("`{host}` is not a host name (no scheme, port or path)"),
                ));
            }
        }
        match &self.policy {
            Some(name) if !config.policies.contains_key(name) => Err((
                "allow.admin.policy".into(),
                format!("`{name}` is not configured under [allow.policies]"),
            )),
            _ => Ok(()),
        }
    }
}
