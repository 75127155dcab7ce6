//! `[allow.auto_ban.<name>]`: ban a client after more than `max` events (refusals,
//! response statuses, or strikes the app counts) within a sliding window.

use serde::Deserialize;

use super::rule_list::de_targets;
use super::Mode;
use crate::rules::Target;

/// One automatic-ban rule, `[allow.auto_ban.<name>]` (the name is used in logs, metrics,
/// [`AllowHandle::strike`](crate::AllowHandle::strike) and a ban's origin
/// `auto_ban <name>`).
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowConfig, AutoBanOn};
///
/// let figment = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = []
///     [allow.auto_ban.scanners]
///     on = "status"
///     statuses = [404, 405]
///     max = 20
///     window_secs = 60
///     ban_secs = 600
/// "#));
/// let config = AllowConfig::from_figment(&figment).unwrap();
/// let rule = &config.auto_ban["scanners"];
/// assert_eq!(rule.on, AutoBanOn::Status);
/// assert_eq!((rule.ipv6_prefix, rule.max_tracked), (64, 100_000));
/// assert_eq!(rule.max_ban_secs, None); // every ban lasts ban_secs
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoBanConfig {
    /// What counts as an event. Required.
    pub on: AutoBanOn,
    /// With `on = "status"`: the response statuses that count (100 to 599). Required then,
    /// refused otherwise.
    #[serde(default)]
    pub statuses: Vec<u16>,
    /// Only requests at or below these paths count (segment-wise, as policy paths).
    /// Default: every path. Strikes are counted wherever the app calls `strike`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// A client is banned at the event that makes more than `max` events within the last
    /// `window_secs`. Required, 1 to 10000.
    pub max: u32,
    /// The sliding window, 1 to 604800 seconds (7 days). Required.
    pub window_secs: u64,
    /// How long a ban lasts, 1 to 31536000 seconds (a year). Required.
    pub ban_secs: u64,
    /// A client banned again by this rule, less than `max_ban_secs` after its last ban
    /// ended, gets twice the last ban, up to `max_ban_secs`. Default: none (every ban lasts
    /// `ban_secs`). At least `ban_secs`, at most a year.
    #[serde(default)]
    pub max_ban_secs: Option<u64>,
    /// IPv6 clients are counted and banned by their network of this prefix length, 1 to
    /// 128. Default 64 (an attacker rotating through its /64 is one client); 128 counts
    /// single addresses.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Never counted or banned (rule values: addresses, networks, host names, `@sets`).
    /// Trusted proxies and `@loopback` never are either. Default: none.
    #[serde(default, deserialize_with = "de_targets")]
    pub exempt: Vec<Target>,
    /// `"enforce"` (default) bans; `"report"` records `would ban <client> by auto_ban
    /// <name>` (log, metric) and bans nobody.
    #[serde(default)]
    pub mode: Mode,
    /// Clients tracked at once, 1 to 10000000; the least recently seen are dropped (and
    /// their counts forgotten). Default 100000.
    #[serde(default = "default_max_tracked")]
    pub max_tracked: usize,
}

/// What an automatic-ban rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoBanOn {
    /// Requests rocket-allow refused (by a rule, a policy's default or a path that cannot be
    /// judged; not refusals by a ban, nor those whose client could not be known).
    Refusals,
    /// Responses with one of `statuses`, to requests rocket-allow admitted.
    Status,
    /// Calls to [`AllowHandle::strike`](crate::AllowHandle::strike).
    Strikes,
}

fn default_ipv6_prefix() -> u8 {
    64
}

fn default_max_tracked() -> usize {
    100_000
}

/// Checks one rule; the error is `(key, message)` with the key under `allow.auto_ban.<name>`.
pub(super) fn validate(
    name: &str,
    rule: &AutoBanConfig,
    sets: &crate::sets::Sets,
) -> Result<(), (String, String)> {
    let key = format!("allow.auto_ban.{name}");
    let err = |k: &str, m: String| Err((format!("{key}.{k}"), m));
    if !crate::rules::is_set_name(name) {
        return Err((
            key,
            "a rule name is 1 to 64 letters, digits, `_` or `-`".into(),
        ));
    }
    match rule.on {
        AutoBanOn::Status if rule.statuses.is_empty() => {
            return err("statuses", "is required with on = \"status\"".into())
        }
        AutoBanOn::Refusals | AutoBanOn::Strikes if !rule.statuses.is_empty() => {
            return err(
                "statuses",
                "is only for on = \"status\" (this rule counts something else)".into(),
            )
        }
        _ => {}
    }
    for (i, s) in rule.statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            return err(
                &format!("statuses[{i}]"),
                format!("{s} is not a status (100 to 599)"),
            );
        }
    }
    for (i, path) in rule.paths.iter().enumerate() {
        if let Err(m) = super::policies::policy_path_segments(path) {
            return err(&format!("paths[{i}]"), m);
        }
    }
    let bounds: [(&str, u64, u64, u64); 4] = [
        ("max", u64::from(rule.max), 1, 10_000),
        ("window_secs", rule.window_secs, 1, 604_800),
        ("ban_secs", rule.ban_secs, 1, 31_536_000),
        (
            "max_tracked",
            u64::try_from(rule.max_tracked).unwrap_or(u64::MAX),
            1,
            10_000_000,
        ),
    ];
    for (k, n, lo, hi) in bounds {
        if !(lo..=hi).contains(&n) {
            return err(k, format!("{n} is not within {lo} to {hi}"));
        }
    }
    if let Some(m) = rule.max_ban_secs {
        if !(rule.ban_secs..=31_536_000).contains(&m) {
            return err(
                "max_ban_secs",
                format!("{m} is not within ban_secs ({}) to 31536000", rule.ban_secs),
            );
        }
    }
    if !(1..=128).contains(&rule.ipv6_prefix) {
        return err(
            "ipv6_prefix",
            format!("{} is not within 1 to 128", rule.ipv6_prefix),
        );
    }
    for (i, t) in rule.exempt.iter().enumerate() {
        sets.check(t).or_else(|m| err(&format!("exempt[{i}]"), m))?;
    }
    Ok(())
}
