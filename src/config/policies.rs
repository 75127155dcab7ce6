//! `[allow.policies.<name>]`, `[allow.sets]` and `reject_status`: more than one rule list,
//! chosen by path or by a route's guard, and checks that every `@set` reference resolves.

use std::collections::{BTreeMap, HashMap};

use rocket::http::uri::Origin;
use serde::Deserialize;

use super::rule_list::{de_rules, de_set_map};
use super::AllowConfig;
use crate::rules::{Rule, Target, Verdict};
use crate::sets::Sets;

/// One named policy: its own rules, default and refusal status, applied by the fairing to
/// the requests under its `paths` and by the `Allowed<P>` guard of any route.
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::AllowConfig;
///
/// let figment = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = []
///     [allow.policies.admin]
///     paths = ["/admin"]
///     rules = [{ allow = "@loopback" }, { deny = "all" }]
///     reject_status = 404
/// "#));
/// let config = AllowConfig::from_figment(&figment).unwrap();
/// let admin = &config.policies["admin"];
/// assert_eq!(admin.paths, ["/admin"]);
/// assert_eq!(admin.reject_status, Some(404));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Paths the fairing applies this policy to, instead of the app-wide rules: a request at
    /// or below one of them (segment-wise, as Rocket's router sees the path); the longest
    /// matching path of any policy wins. Default: none (the policy is used by guards only).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The ordered rules, as at top level. Required (may be empty).
    #[serde(deserialize_with = "de_rules")]
    pub rules: Vec<Rule>,
    /// Verdict when no rule matches. Default `"allow"`.
    #[serde(default)]
    pub default: Verdict,
    /// Status of refusals, any 4xx. Default: the top-level `reject_status`.
    #[serde(default)]
    pub reject_status: Option<u16>,
    /// `"enforce"` or `"report"` (see [`Mode`](crate::Mode)). Default: the top-level `mode`.
    #[serde(default)]
    pub mode: Option<super::Mode>,
    /// What a request under this policy's paths from a trusted proxy without the client
    /// header gets (see [`MissingHeader`](crate::MissingHeader)): `"peer"` here lets the
    /// proxy's own health check reach `/healthz` while the rest of the app refuses it.
    /// Default: the top-level `missing_header`.
    #[serde(default)]
    pub missing_header: Option<super::MissingHeader>,
}

impl PolicyConfig {
    /// A policy with these rules, no paths, default allow, the app-wide refusal status.
    ///
    /// ```
    /// use rocket_allow::{PolicyConfig, Rule};
    /// let p = PolicyConfig::new(vec![Rule::allow("@loopback").unwrap(), Rule::deny("all").unwrap()]);
    /// assert!(p.paths.is_empty());
    /// ```
    pub fn new(rules: Vec<Rule>) -> PolicyConfig {
        PolicyConfig {
            paths: Vec::new(),
            rules,
            default: Verdict::Allow,
            reject_status: None,
            mode: None,
            missing_header: None,
        }
    }
}

/// One named set of `[allow.sets]`: its entries, or where they come from.
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowConfig, SetConfig};
///
/// let figment = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = [{ allow = "@office" }]
///     [allow.sets]
///     office = ["203.0.113.0/24"]
///     cloudflare = { file = "lists/cloudflare.txt" }
/// "#));
/// let config = AllowConfig::from_figment(&figment).unwrap();
/// assert!(matches!(config.sets["office"], SetConfig::Inline(_)));
/// assert!(matches!(config.sets["cloudflare"], SetConfig::File { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetConfig {
    /// `name = ["203.0.113.0/24", "@other", ...]`: anything a rule value may be.
    Inline(Vec<Target>),
    /// `name = { file = "path" }`: a list file, one entry a line (anything a rule value may
    /// be except `@sets`), `#` comments; read at ignite and reloaded when it changes.
    File {
        /// The list file; relative paths are relative to the working directory.
        file: std::path::PathBuf,
    },
    /// `name = { url = "https://...", refresh_secs = 3600, on_error = "fail", timeout_secs
    /// = 10, allow_shrink = false }`: a list in the same format, fetched at ignite and every
    /// `refresh_secs` (a failed fetch sooner), with conditional requests (ETag /
    /// Last-Modified). Needs the `url-lists` feature (default).
    Url {
        /// An `http://` or `https://` URL.
        url: String,
        /// Seconds between fetches, 1 to 604800. Default 3600.
        refresh_secs: u64,
        /// What a failed fetch at ignite does: `"fail"` (default) fails ignite, `"warn"` starts
        /// with the set empty. A failed refresh always keeps the last good list.
        on_error: OnError,
        /// Seconds a fetch may take, 1 to 300. Default 10.
        timeout_secs: u64,
        /// Whether a fetched list may be empty, or lose more than half of the entries of the
        /// last good list. Default `false`: such a fetch is a failed one (at ignite, an
        /// empty list then follows `on_error`).
        allow_shrink: bool,
    },
}

/// What a URL list that cannot be fetched at ignite does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Ignite fails, naming the set and the error (default).
    #[default]
    Fail,
    /// The app starts with the set empty, and a warning.
    Warn,
}

/// `[allow.sets]`: name → entries or source.
pub(super) fn de_sets<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, SetConfig>, D::Error> {
    de_set_map(d)
}

/// The sets' entries as far as the configuration knows them: inline entries, and nothing
/// yet for sets whose entries come from elsewhere.
pub(crate) fn known_entries(sets: &BTreeMap<String, SetConfig>) -> BTreeMap<String, Vec<Target>> {
    sets.iter()
        .map(|(name, set)| match set {
            SetConfig::Inline(entries) => (name.clone(), entries.clone()),
            SetConfig::File { .. } | SetConfig::Url { .. } => (name.clone(), Vec::new()),
        })
        .collect()
}

/// A path as Rocket's router sees it: its non-empty, percent-decoded segments, so that
/// `/admin`, `//%61dmin/` and `/admin/` are the same path.
pub(crate) fn policy_path_segments(path: &str) -> Result<Vec<String>, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    let origin = Origin::parse(path).map_err(|e| format!("`{path}` is not a URI path: {e}"))?;
    if origin.query().is_some() {
        return Err(format!(
            "`{path}` has a query; a policy path is a path only"
        ));
    }
    Ok(origin.path().segments().map(str::to_string).collect())
}

/// The forms a policy path is matched in: its decoded segments (as requests are seen),
/// and its segments as written when they differ (as Rocket matches a route written with
/// `%20` in it).
pub(crate) fn policy_path_forms(path: &str) -> Vec<Vec<String>> {
    let Ok(decoded) = policy_path_segments(path) else {
        return Vec::new();
    };
    let raw: Vec<String> = Origin::parse(path)
        .map(|o| {
            o.path()
                .raw_segments()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_str().to_string())
                .collect()
        })
        .unwrap_or_default();
    if raw == decoded || raw.is_empty() {
        vec![decoded]
    } else {
        vec![decoded, raw]
    }
}

/// Everything about sets, policies and statuses that serde cannot check: `(key, message)`.
pub(super) fn validate(config: &AllowConfig) -> Result<(), (String, String)> {
    check_status("allow.reject_status", config.reject_status)?;
    let sets = Sets::build(&known_entries(&config.sets))?;
    let refs = |key: &str, rules: &[Rule]| {
        rules.iter().enumerate().try_for_each(|(i, r)| {
            sets.check(&r.target).map_err(|m| {
                (
                    format!("{key}[{i}]"),
                    format!("{} = \"{}\": {m}", r.verdict, r.written),
                )
            })
        })
    };
    refs("allow.rules", &config.rules)?;
    for (i, t) in config.trusted_proxies.iter().enumerate() {
        sets.check(t)
            .map_err(|m| (format!("allow.trusted_proxies[{i}]"), m))?;
    }
    for (name, rule) in &config.auto_ban {
        super::auto_ban::validate(name, rule, &sets)?;
    }
    let mut owners: HashMap<Vec<String>, (&str, &str)> = HashMap::new();
    for (name, policy) in &config.policies {
        let key = format!("allow.policies.{name}");
        if !crate::rules::is_set_name(name) {
            return Err((
                key,
                "a policy name is 1 to 64 letters, digits, `_` or `-`".into(),
            ));
        }
        refs(&format!("{key}.rules"), &policy.rules)?;
        if let Some(status) = policy.reject_status {
            check_status(&format!("{key}.reject_status"), status)?;
        }
        for (i, path) in policy.paths.iter().enumerate() {
            let at = format!("{key}.paths[{i}]");
            policy_path_segments(path).map_err(|m| (at.clone(), m))?;
            for segments in policy_path_forms(path) {
                if let Some((other, other_path)) = owners.get(&segments) {
                    if *other != name.as_str() {
                        return Err((
                            at,
                            format!(
                                "`{path}` is also a path of policy `{other}` (as \
                                 `{other_path}`); a path belongs to one policy"
                            ),
                        ));
                    }
                }
                owners.insert(segments, (name, path));
            }
        }
    }
    Ok(())
}

fn check_status(key: &str, status: u16) -> Result<(), (String, String)> {
    if (400..500).contains(&status) {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("must be a 4xx status (400 to 499), found {status}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_segments_as_the_router_sees_them() {
        assert_eq!(policy_path_segments("/admin").unwrap(), ["admin"]);
        assert_eq!(policy_path_segments("//%61dmin/").unwrap(), ["admin"]);
        assert_eq!(policy_path_segments("/a%2Fb/c").unwrap(), ["a/b", "c"]);
        assert!(policy_path_segments("/").unwrap().is_empty());
        assert!(policy_path_segments("admin").is_err());
        assert!(policy_path_segments("/admin?x=1").is_err());
    }
}
