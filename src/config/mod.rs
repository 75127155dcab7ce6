//! The `[allow]` configuration: serde types, their defaults, and validation.
//!
//! Read from Rocket's figment under the key `allow` (so `[default.allow]` in
//! Rocket.toml, `ROCKET_ALLOW='{...}'`, or any other figment provider), or built in
//! code and handed to [`AllowFairing::custom`](crate::AllowFairing::custom).

use std::collections::BTreeMap;

use rocket::figment::{self, Figment};
use serde::Deserialize;

use crate::error::Error;
use crate::rules::{Rule, Target, Verdict};

mod access_log;
mod admin;
mod auto_ban;
mod bounds;
mod builder;
mod dns;
mod geoip;
mod policies;
mod rule_list;
mod store;

pub use access_log::{AccessLogConfig, LogFormat, OnFull};
pub use admin::{AdminConfig, BUILTIN_ADMIN_POLICY};
pub use auto_ban::{AutoBanConfig, AutoBanOn};
use bounds::{BACKUP_COUNT, MAX_BYTES, MAX_TTL_SECS, MIN_TTL_SECS, QUEUE_LINES, TIMEOUT_SECS};
pub use dns::{DnsConfig, OnUnresolved};
pub use geoip::GeoipConfig;
pub(crate) use policies::{known_entries, policy_path_forms};
pub use policies::{OnError, PolicyConfig, SetConfig};
pub use store::{OnUnavailable, StoreConfig};

use rule_list::{de_rules, de_targets};

/// The figment key the fairing reads: `[default.allow]` in Rocket.toml.
pub const CONFIG_KEY: &str = "allow";

/// The whole `[allow]` table. Only `rules` is required.
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowConfig, Verdict};
///
/// let figment = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = [{ allow = "127.0.0.1" }, { deny = "all" }]
/// "#));
/// let config = AllowConfig::from_figment(&figment).unwrap();
/// assert_eq!(config.rules.len(), 2);
/// assert_eq!(config.default, Verdict::Allow);
/// assert!(config.access_log.is_none());
/// assert_eq!(config.client_ip_header, "X-Forwarded-For");
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    /// Verdict when no rule matches: `"allow"` or `"deny"`. Default `"allow"`, as Flask-Allow.
    #[serde(default)]
    pub default: Verdict,
    /// The ordered rules, `[{ allow = "..." }, { deny = "..." }, ...]`; the first match decides.
    /// Required (an empty list is allowed: then `default` decides every request).
    #[serde(deserialize_with = "de_rules")]
    pub rules: Vec<Rule>,
    /// Where to write the access log; default: no access log.
    #[serde(default)]
    pub access_log: Option<AccessLogConfig>,
    /// Peers whose forwarding header is believed (same value syntax as rules). Default: none,
    /// so every forwarding header is ignored and the client is the TCP peer.
    #[serde(default, deserialize_with = "de_targets")]
    pub trusted_proxies: Vec<Target>,
    /// The header a trusted proxy puts the client address in. Default `"X-Forwarded-For"`.
    #[serde(default = "default_client_ip_header")]
    pub client_ip_header: String,
    /// What to do when a trusted proxy sends no `client_ip_header` at all: `"refuse"`
    /// (default) or `"peer"` (decide on the proxy's own address, for proxies that send
    /// health checks of their own). Rocket drops header values that are not valid UTF-8,
    /// so a missing header may be one a client made unreadable.
    #[serde(default)]
    pub missing_header: MissingHeader,
    /// With a list `client_ip_header`: the client is the N-th address from the right of the
    /// header a trusted proxy sends (1 = the rightmost), instead of the first address that
    /// is not a trusted proxy. 1 to 32. Default: none (the walk).
    #[serde(default)]
    pub trusted_hops: Option<usize>,
    /// After deciding, make `Request::client_ip()` and `Request::remote()` return the client
    /// decided on, so every other crate sees the vetted address. Default `true`.
    #[serde(default = "default_true")]
    pub publish_client_ip: bool,
    /// How host names are resolved and refreshed. Default: the system resolver.
    #[serde(default)]
    pub dns: DnsConfig,
    /// `[allow.geoip]`: the databases `country:` and `asn:` values are read from. Default: none.
    #[serde(default)]
    pub geoip: GeoipConfig,
    /// Status of refusals by the app-wide rules (and of policies without their own): any
    /// 4xx, answered by the app's catcher for it. Default 403.
    #[serde(default = "default_reject_status")]
    pub reject_status: u16,
    /// Named address sets, `@name` in any rule or trusted-proxy entry. Default: none (the
    /// built-in `@loopback`, `@private`, `@link_local`, `@cgnat` always exist).
    #[serde(default, deserialize_with = "policies::de_sets")]
    pub sets: BTreeMap<String, SetConfig>,
    /// Named policies, applied by path and by `Allowed<P>` guards. Default: none.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// `[allow.bans]`: where runtime bans are kept across restarts. Default: nowhere.
    #[serde(default)]
    pub bans: BansConfig,
    /// `[allow.store]`: a Redis shared by every instance of the app (bans, set changes and
    /// modes reach every instance within milliseconds). Default: none.
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// `"enforce"` (default): refusals are refused. `"report"`: every request is decided and
    /// recorded as usual, but one that would be refused is admitted, and its log line,
    /// tracing event and metrics say `enforced: false`. Applies to the app-wide rules and
    /// to every policy without a `mode` of its own. Runtime bans and `.`/`..` paths under
    /// path-scoped policies are always enforced.
    #[serde(default)]
    pub mode: Mode,
    /// Count hits per rule for [`AllowHandle::rule_hits`](crate::AllowHandle::rule_hits).
    /// Default `true`; the counters are per thread, so counting adds no contention.
    #[serde(default = "default_true")]
    pub rule_hits: bool,
    /// `[allow.auto_ban.<name>]`: ban clients after repeated refusals, error statuses or
    /// strikes. Default: none.
    #[serde(default)]
    pub auto_ban: BTreeMap<String, AutoBanConfig>,
    /// `[allow.admin]`: the admin page (`rocket_allow::admin::routes()`). Default: the
    /// built-in loopback-only policy, changes allowed, 1000 recent refusals kept.
    #[serde(default)]
    pub admin: AdminConfig,
}

/// Whether refusals are carried out, or only recorded (`mode` at top level or per policy).
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowConfig, Mode};
///
/// let figment = Figment::new().merge(Toml::string(r#"
///     [allow]
///     mode = "report"
///     rules = [{ allow = "10.0.0.0/8" }, { deny = "all" }]
///     [allow.policies.admin]
///     mode = "enforce"
///     rules = [{ allow = "@loopback" }, { deny = "all" }]
/// "#));
/// let config = AllowConfig::from_figment(&figment).unwrap();
/// assert_eq!(config.mode, Mode::Report);
/// assert_eq!(config.policies["admin"].mode, Some(Mode::Enforce));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refusals are refused (default).
    #[default]
    Enforce,
    /// Refusals are recorded as would-be refusals and the request is admitted.
    Report,
}

fn default_true() -> bool {
    true
}

/// `[allow.bans]`.
///
/// ```
/// let bans = rocket_allow::BansConfig::default();
/// assert!(bans.file.is_none()); // bans last until the app stops
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BansConfig {
    /// The file runtime bans are saved to on every change and restored from at ignite
    /// (expired ones dropped). Default: none.
    #[serde(default)]
    pub file: Option<std::path::PathBuf>,
}

fn default_reject_status() -> u16 {
    403
}

fn default_client_ip_header() -> String {
    "X-Forwarded-For".into()
}

impl AllowConfig {
    /// A configuration with these rules and every other key at its default.
    ///
    /// ```
    /// use rocket_allow::{AllowConfig, Rule};
    /// let config = AllowConfig::new(vec![Rule::allow("127.0.0.1").unwrap(), Rule::deny("all").unwrap()]);
    /// assert!(config.validate().is_ok());
    /// ```
    pub fn new(rules: Vec<Rule>) -> AllowConfig {
        AllowConfig {
            default: Verdict::default(),
            rules,
            access_log: None,
            trusted_proxies: Vec::new(),
            client_ip_header: default_client_ip_header(),
            missing_header: MissingHeader::default(),
            trusted_hops: None,
            publish_client_ip: true,
            dns: DnsConfig::default(),
            geoip: GeoipConfig::default(),
            reject_status: default_reject_status(),
            sets: BTreeMap::new(),
            policies: BTreeMap::new(),
            bans: BansConfig::default(),
            store: None,
            mode: Mode::default(),
            rule_hits: true,
            auto_ban: BTreeMap::new(),
            admin: AdminConfig::default(),
        }
    }

    /// Reads and validates the `allow` table of a figment (Rocket's, or one of your own).
    ///
    /// ```
    /// use rocket::figment::{Figment, providers::{Format, Toml}};
    /// use rocket_allow::AllowConfig;
    ///
    /// let bad = Figment::new().merge(Toml::string(r#"allow.rules = [{ allow = "10.0.0.0/33" }]"#));
    /// let err = AllowConfig::from_figment(&bad).unwrap_err().to_string();
    /// assert!(err.contains("rules[0]") && err.contains("10.0.0.0/33"), "{err}");
    ///
    /// let missing = Figment::new();
    /// assert!(AllowConfig::from_figment(&missing).unwrap_err().to_string().contains("allow"));
    /// ```
    pub fn from_figment(figment: &Figment) -> Result<AllowConfig, Error> {
        let value = figment.find_value(CONFIG_KEY).map_err(|e| Error::Invalid {
            key: CONFIG_KEY.into(),
            message: match e.kind {
                figment::error::Kind::MissingField(_) => {
                    "missing: add an `[default.allow]` table with `rules = [...]` to Rocket.toml \
                     (or set ROCKET_ALLOW)"
                        .into()
                }
                // A source that does not parse (such as a TOML integer beyond i64): say so,
                // with figment's location, rather than call the table missing.
                _ => e.to_string(),
            },
        })?;
        let config: AllowConfig = value.deserialize().map_err(|e| {
            // figment's own path for `extract_inner` errors comes out reversed
            // ("default.rules.allow"), so the key is rebuilt here from the inner path.
            let mut key = CONFIG_KEY.to_string();
            for part in &e.path {
                key.push('.');
                key.push_str(part);
            }
            let mut message = kind_message(&e.kind);
            // Element errors start with their index, `[2]: ...` (or `name[2]: ...` in a table
            // of lists), which belongs to the key.
            if let Some((element, rest)) = element_prefix(&message) {
                key.push_str(&element);
                message = rest.to_string();
            }
            if let Some(md) = figment.get_metadata(value.tag()) {
                let from = md
                    .source
                    .as_ref()
                    .map_or_else(|| md.name.to_string(), |s| s.to_string());
                message = format!("{message} (in {from})");
            }
            Error::Invalid { key, message }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: the range of every numeric key (given in each field's
    /// documentation), a non-empty log path, the header name, and that `min_ttl_secs` is not
    /// more than `max_ttl_secs`. [`from_figment`](Self::from_figment) calls it, and so does
    /// [`AllowFairing::custom`](crate::AllowFairing::custom) at ignite.
    ///
    /// ```
    /// use rocket_allow::{AllowConfig, AccessLogConfig};
    /// let mut config = AllowConfig::new(vec![]);
    /// config.access_log = Some(AccessLogConfig { max_bytes: 0, ..AccessLogConfig::new("a.log") });
    /// assert!(config.validate().unwrap_err().to_string().contains("max_bytes"));
    ///
    /// let mut config = AllowConfig::new(vec![]);
    /// config.dns.max_ttl_secs = u64::MAX;
    /// assert_eq!(
    ///     config.validate().unwrap_err().to_string(),
    ///     "allow.dns.max_ttl_secs: must be at most 604800 seconds (7 days), found 18446744073709551615",
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |key: &str, message: String| {
            Err(Error::Invalid {
                key: format!("{CONFIG_KEY}.{key}"),
                message,
            })
        };
        if let Some(log) = &self.access_log {
            // usize to i128 is lossless on every platform Rust supports.
            for (bound, n) in [
                (&MAX_BYTES, i128::from(log.max_bytes)),
                (&BACKUP_COUNT, log.backup_count as i128),
                (&QUEUE_LINES, log.queue_lines as i128),
            ] {
                bound
                    .check(n)
                    .or_else(|message| invalid(bound.key, message))?;
            }
            if log.path.as_os_str().is_empty() {
                return invalid("access_log.path", "must not be empty".into());
            }
            if log.format == LogFormat::Json {
                for (key, set) in [
                    ("formatter", log.formatter.is_some()),
                    ("datefmt", log.datefmt.is_some()),
                    ("utc", !log.utc),
                ] {
                    if set {
                        return invalid(
                            &format!("access_log.{key}"),
                            format!(
                                "lays out text lines, and {CONFIG_KEY}.access_log.format is \
                                 \"json\" (whose `timestamp` is always RFC 3339 UTC): remove \
                                 one of the two keys"
                            ),
                        );
                    }
                }
            } else {
                crate::log::Template::parse(
                    log.formatter.as_deref(),
                    log.datefmt.as_deref(),
                    log.utc,
                )
                .map_err(|(key, message)| Error::Invalid {
                    key: format!("{CONFIG_KEY}.{key}"),
                    message,
                })?;
            }
        }
        if let Some(store) = &self.store {
            if !(1..=86_400).contains(&store.max_stale_secs) {
                return invalid(
                    "store.max_stale_secs",
                    format!("{} is not within 1 to 86400", store.max_stale_secs),
                );
            }
            if store.prefix.is_empty() || store.prefix.contains(char::is_whitespace) {
                return invalid(
                    "store.prefix",
                    format!("`{}` must be non-empty, without spaces", store.prefix),
                );
            }
            if let Err((key, message)) = store.client() {
                return invalid(key, message);
            }
        }
        let h = &self.client_ip_header;
        if h.is_empty() || !h.bytes().all(is_header_name_byte) {
            return invalid(
                "client_ip_header",
                format!("`{h}` is not a valid HTTP header name"),
            );
        }
        if let Some(n) = self.trusted_hops {
            if !(1..=crate::client::MAX_HOPS).contains(&n) {
                return invalid("trusted_hops", format!("{n} is not within 1 to 32"));
            }
            if let crate::client::ClientIpHeader::Single(name) =
                crate::client::ClientIpHeader::from_name(h)
            {
                return invalid(
                    "trusted_hops",
                    format!(
                        "counts addresses in a list header, and client_ip_header `{name}` holds \
                         one: use \"X-Forwarded-For\" or \"Forwarded\", or remove trusted_hops"
                    ),
                );
            }
        }
        let dns = &self.dns;
        for (bound, n) in [
            (&TIMEOUT_SECS, dns.timeout_secs),
            (&MIN_TTL_SECS, dns.min_ttl_secs),
            (&MAX_TTL_SECS, dns.max_ttl_secs),
        ] {
            bound
                .check(i128::from(n))
                .or_else(|message| invalid(bound.key, message))?;
        }
        if dns.min_ttl_secs > dns.max_ttl_secs {
            return invalid(
                "dns.min_ttl_secs",
                format!(
                    "{} is more than max_ttl_secs ({})",
                    dns.min_ttl_secs, dns.max_ttl_secs
                ),
            );
        }
        policies::validate(self).map_err(|(key, message)| Error::Invalid { key, message })?;
        self.admin
            .validate(self)
            .map_err(|(key, message)| Error::Invalid { key, message })
    }
}

/// figment's message for an error, without the doubled backticks it writes around serde's
/// own lists of what was expected (``expected ``enforce` or `report```).
fn kind_message(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    let one_of = |expected: &[&str]| match expected {
        [] => "nothing is allowed here".to_string(),
        [one] => format!("expected `{one}`"),
        [first @ .., last] => {
            let first: Vec<String> = first.iter().map(|e| format!("`{e}`")).collect();
            format!("expected {} or `{last}`", first.join(", "))
        }
    };
    match kind {
        Kind::UnknownVariant(found, expected) => {
            format!("unknown value `{found}`, {}", one_of(expected))
        }
        Kind::UnknownField(found, expected) => {
            format!("unknown key `{found}`, {}", one_of(expected))
        }
        other => other.to_string(),
    }
}

/// `[2]: rest`, `name[2]: rest` or `name.key: rest` at the start of a message: the key
/// suffix (`[2]`, `.name[2]`, `.name.key`) and the rest.
fn element_prefix(message: &str) -> Option<(String, &str)> {
    let (head, rest) = message.split_once(": ")?;
    let (name, index) = match head.split_once('[') {
        Some((name, index)) => (name, Some(index.strip_suffix(']')?)),
        None => (head, None),
    };
    let name_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    let index_ok = index.is_none_or(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
    // Without an index, only a dotted key is taken (serde's own messages have no dots there).
    if !name_ok || !index_ok || (index.is_none() && !name.contains('.')) {
        return None;
    }
    let dot = if name.is_empty() { "" } else { "." };
    let index = index.map(|i| format!("[{i}]")).unwrap_or_default();
    Some((format!("{dot}{name}{index}"), rest))
}

/// RFC 9110 `token` characters: what a header name may contain.
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a request from a trusted proxy without the client address header gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingHeader {
    /// Refused, with a note in the log line (default): the header may have been dropped
    /// because a client put a byte in it that is not valid UTF-8.
    #[default]
    Refuse,
    /// Decided on the proxy's own address, as 0.1 did.
    Peer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::{Format, Toml};

    fn load(toml: &str) -> Result<AllowConfig, String> {
        AllowConfig::from_figment(&Figment::new().merge(Toml::string(toml)))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn full_table() {
        let c = load(
            r#"
            [allow]
            default = "deny"
            rules = [{ allow = "127.0.0.1" }, { allow = "proxy.example.com" }, { deny = "all" }]
            trusted_proxies = ["10.0.0.0/8", "::1"]
            client_ip_header = "Forwarded"
            [allow.access_log]
            path = "x.log"
            max_bytes = 100
            backup_count = 0
            format = "json"
            [allow.dns]
            nameservers = ["127.0.0.1:5353", "::1"]
            timeout_secs = 1
            min_ttl_secs = 1
            max_ttl_secs = 2
            on_unresolved = "warn"
            "#,
        )
        .unwrap();
        assert_eq!(c.default, Verdict::Deny);
        assert_eq!(c.rules[1].target, Target::Host("proxy.example.com".into()));
        assert_eq!(c.trusted_proxies.len(), 2);
        let log = c.access_log.unwrap();
        assert_eq!(
            (log.max_bytes, log.backup_count, log.format),
            (100, 0, LogFormat::Json)
        );
        assert_eq!(c.dns.nameservers[1], "[::1]:53".parse().unwrap());
        assert_eq!(c.dns.on_unresolved, OnUnresolved::Warn);
    }

    #[test]
    fn non_string_values_name_the_index() {
        let e = load(r#"allow.rules = [{ allow = "::1" }, { deny = 5 }]"#).unwrap_err();
        assert!(
            e.contains("rules[1]: deny must be a string, found integer 5"),
            "{e}"
        );
        let e = load(r#"allow.rules = ["127.0.0.1"]"#).unwrap_err();
        assert!(e.contains("rules[0]: found string \"127.0.0.1\""), "{e}");
        let e = load(
            r#"allow.rules = [{ allow = "::1" }]
                        allow.trusted_proxies = ["::1", "nope!"]"#,
        )
        .unwrap_err();
        assert!(
            e.contains("trusted_proxies[1]") && e.contains("`nope!`"),
            "{e}"
        );
    }

    #[test]
    fn validation() {
        let e = load(
            r#"allow.rules = []
                        allow.client_ip_header = "X Forwarded""#,
        )
        .unwrap_err();
        assert!(
            e.contains("allow.client_ip_header") && e.contains("`X Forwarded`"),
            "{e}"
        );
        let e = load("allow.rules = []\nallow.dns = { min_ttl_secs = 10, max_ttl_secs = 5 }")
            .unwrap_err();
        assert!(e.contains("allow.dns.min_ttl_secs"), "{e}");
        let e =
            load("allow.rules = []\nallow.dns = { nameservers = [\"1.2.3.4:0\"] }").unwrap_err();
        assert!(
            e.contains("dns.nameservers[0]") && e.contains("port 0"),
            "{e}"
        );
        let e =
            load("allow.rules = []\nallow.dns = { nameservers = [\"dns.example\"] }").unwrap_err();
        assert!(
            e.contains("dns.nameservers[0]") && e.contains("dns.example"),
            "{e}"
        );
    }
}
