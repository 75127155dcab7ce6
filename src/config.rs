//! The `[allow]` configuration: serde types, their defaults, and validation.
//!
//! Read from Rocket's figment under the key `allow` (so `[default.allow]` in
//! Rocket.toml, `ROCKET_ALLOW='{...}'`, or any other figment provider), or built in
//! code and handed to [`AllowFairing::custom`](crate::AllowFairing::custom).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use rocket::figment::{self, Figment};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::Error;
use crate::rules::{Rule, Target, Verdict};

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
    /// How host names are resolved and refreshed. Default: the system resolver.
    #[serde(default)]
    pub dns: DnsConfig,
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
            dns: DnsConfig::default(),
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
            let mut message = e.kind.to_string();
            // Element errors start with their index, `[2]: ...`, which belongs to the key.
            if let Some(rest) = message.strip_prefix('[') {
                if let Some((index, rest)) = rest.split_once("]: ") {
                    key = format!("{key}[{index}]");
                    message = rest.to_string();
                }
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
        }
        let h = &self.client_ip_header;
        if h.is_empty() || !h.bytes().all(is_header_name_byte) {
            return invalid(
                "client_ip_header",
                format!("`{h}` is not a valid HTTP header name"),
            );
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
        Ok(())
    }
}

/// The range of a numeric key and how its errors read. Deserializing refuses what the type
/// cannot hold (negative numbers, floats, strings) with the same wording that
/// [`AllowConfig::validate`] uses for the range, so a key reads the same either way.
struct Bound {
    /// The key below `allow`.
    key: &'static str,
    min: u64,
    max: u64,
    /// What serde says was expected when the value is not an integer at all.
    expecting: &'static str,
    /// The message for a value below `min`, before `, found N`.
    too_small: &'static str,
    /// The message for a value above `max`, before `, found N`.
    too_large: &'static str,
}

const MAX_BYTES: Bound = Bound {
    key: "access_log.max_bytes",
    min: 1,
    max: 1 << 40,
    expecting: "a whole number of bytes from 1 to 1099511627776 (1 TiB)",
    too_small: "must be a positive number of bytes",
    too_large: "must be at most 1099511627776 bytes (1 TiB)",
};

const BACKUP_COUNT: Bound = Bound {
    key: "access_log.backup_count",
    min: 0,
    max: 100_000,
    expecting: "a whole number of files from 0 to 100000",
    too_small: "must not be negative",
    too_large: "must be at most 100000 files",
};

const QUEUE_LINES: Bound = Bound {
    key: "access_log.queue_lines",
    min: 1,
    max: 10_000_000,
    expecting: "a whole number of lines from 1 to 10000000",
    too_small: "must be at least 1 line",
    too_large: "must be at most 10000000 lines",
};

const TIMEOUT_SECS: Bound = Bound {
    key: "dns.timeout_secs",
    min: 1,
    max: 300,
    expecting: "a whole number of seconds from 1 to 300",
    too_small: "must be at least 1 second",
    too_large: "must be at most 300 seconds (5 minutes)",
};

const MIN_TTL_SECS: Bound = Bound {
    key: "dns.min_ttl_secs",
    min: 0,
    max: 604_800,
    expecting: "a whole number of seconds from 0 to 604800 (7 days)",
    too_small: "must not be negative",
    too_large: "must be at most 604800 seconds (7 days)",
};

const MAX_TTL_SECS: Bound = Bound {
    key: "dns.max_ttl_secs",
    min: 1,
    max: 604_800,
    expecting: "a whole number of seconds from 1 to 604800 (7 days)",
    too_small: "must be at least 1 second",
    too_large: "must be at most 604800 seconds (7 days)",
};

impl Bound {
    /// `Err(message)` unless `min <= n <= max`; the message quotes `n`.
    fn check(&self, n: i128) -> Result<(), String> {
        if n < i128::from(self.min) {
            Err(format!("{}, found {n}", self.too_small))
        } else if n > i128::from(self.max) {
            Err(format!("{}, found {n}", self.too_large))
        } else {
            Ok(())
        }
    }

    /// Reads any integer and checks it against the range; anything else is a type error
    /// saying what is expected.
    fn deserialize<'de, D: Deserializer<'de>>(&'static self, d: D) -> Result<u64, D::Error> {
        struct V(&'static Bound);
        impl V {
            fn check<E: de::Error>(&self, n: i128) -> Result<u64, E> {
                self.0.check(n).map_err(E::custom)?;
                // In range, so it fits; the fallback only keeps this free of panics.
                u64::try_from(n).map_err(|_| E::custom(format!("{}, found {n}", self.0.too_large)))
            }
        }
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.expecting)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
                self.check(n.into())
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
                self.check(n.into())
            }
            fn visit_i128<E: de::Error>(self, n: i128) -> Result<u64, E> {
                self.check(n)
            }
            fn visit_u128<E: de::Error>(self, n: u128) -> Result<u64, E> {
                match i128::try_from(n) {
                    Ok(n) => self.check(n),
                    Err(_) => Err(E::custom(format!("{}, found {n}", self.0.too_large))),
                }
            }
        }
        d.deserialize_any(V(self))
    }
}

fn de_max_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    MAX_BYTES.deserialize(d).map(Some)
}

fn de_backup_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = BACKUP_COUNT.deserialize(d)?;
    usize::try_from(n)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{}, found {n}", BACKUP_COUNT.too_large)))
}

fn de_queue_lines<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = QUEUE_LINES.deserialize(d)?;
    usize::try_from(n)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{}, found {n}", QUEUE_LINES.too_large)))
}

fn de_timeout_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    TIMEOUT_SECS.deserialize(d)
}

fn de_min_ttl_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    MIN_TTL_SECS.deserialize(d)
}

fn de_max_ttl_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    MAX_TTL_SECS.deserialize(d)
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

/// What happens to a decision line when the access log writer is a full queue behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFull {
    /// The line is dropped and counted; the log says how many (default). Requests never wait.
    #[default]
    Drop,
    /// The request waits until the writer has room: no line is lost to a full queue.
    Block,
}

/// Layout of access log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Flask-Allow's layout: `time - LEVEL - client verdict by rule ... method url user-agent`.
    #[default]
    Text,
    /// One JSON object a line, the same fields by name.
    Json,
}

/// `access_log = "path"` or the `[allow.access_log]` table.
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowConfig, LogFormat};
///
/// let short = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = []
///     access_log = "access.log"
/// "#));
/// let log = AllowConfig::from_figment(&short).unwrap().access_log.unwrap();
/// assert_eq!(log.max_bytes, 5_242_880);
/// assert_eq!(log.backup_count, 7);
/// assert_eq!(log.format, LogFormat::Text);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// The log file; rotated files are `path.1` (newest) to `path.N`.
    pub path: PathBuf,
    /// Rotate before a line would make the file larger than this many bytes: 1 to
    /// 1099511627776 (1 TiB). Default 5242880 (5 MiB).
    pub max_bytes: u64,
    /// Rotated files to keep, 0 to 100000; the oldest beyond this is deleted. Default 7. `0`
    /// never rotates (the file grows without bound), as Python's RotatingFileHandler.
    pub backup_count: usize,
    /// `"text"` (default) or `"json"`.
    pub format: LogFormat,
    /// `"drop"` (default) or `"block"`: what to do when the writer is a full queue behind.
    pub on_full: OnFull,
    /// How many lines may wait for the writer thread, 1 to 10000000. Default 128000
    /// (about 32 MiB of queued lines at most).
    pub queue_lines: usize,
}

impl AccessLogConfig {
    /// Flask-Allow's defaults for `path`: 5 MiB files, 7 backups, text lines.
    ///
    /// ```
    /// let log = rocket_allow::AccessLogConfig::new("access.log");
    /// assert_eq!(log.backup_count, 7);
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> AccessLogConfig {
        AccessLogConfig {
            path: path.into(),
            max_bytes: 5_242_880,
            backup_count: 7,
            format: LogFormat::Text,
            on_full: OnFull::Drop,
            queue_lines: 128_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessLogTable {
    path: PathBuf,
    #[serde(default, deserialize_with = "de_max_bytes")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de_backup_count")]
    backup_count: Option<usize>,
    #[serde(default)]
    format: LogFormat,
    #[serde(default)]
    on_full: OnFull,
    #[serde(default, deserialize_with = "de_queue_lines")]
    queue_lines: Option<usize>,
}

impl<'de> Deserialize<'de> for AccessLogConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AccessLogConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a file path, or a table with `path`, `max_bytes`, `backup_count`, `format`, `on_full`, `queue_lines`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AccessLogConfig::new(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let t = AccessLogTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let defaults = AccessLogConfig::new(t.path);
                Ok(AccessLogConfig {
                    max_bytes: t.max_bytes.unwrap_or(defaults.max_bytes),
                    backup_count: t.backup_count.unwrap_or(defaults.backup_count),
                    format: t.format,
                    on_full: t.on_full,
                    queue_lines: t.queue_lines.unwrap_or(defaults.queue_lines),
                    ..defaults
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// What to do at ignite with a host name that does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnresolved {
    /// Ignite fails, naming the host (default).
    #[default]
    Fail,
    /// Start anyway; the rule matches nothing until the name resolves. Dangerous for `deny`
    /// rules: the addresses they should refuse are let through meanwhile.
    Warn,
}

/// `[allow.dns]`: how host-name rules and trusted proxies are resolved and kept fresh.
///
/// ```
/// let dns = rocket_allow::DnsConfig::default();
/// assert!(dns.nameservers.is_empty()); // the system configuration
/// assert_eq!((dns.timeout_secs, dns.min_ttl_secs, dns.max_ttl_secs), (2, 30, 3600));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// `"address:port"` (or `"address"` for port 53), queried over UDP and TCP. Default: empty,
    /// which means the system configuration (/etc/resolv.conf and /etc/hosts).
    #[serde(deserialize_with = "de_nameservers")]
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout in seconds, 1 to 300 (5 minutes). Default 2.
    #[serde(deserialize_with = "de_timeout_secs")]
    pub timeout_secs: u64,
    /// Refresh a name no more often than this many seconds, whatever its TTL: 0 to 604800
    /// (7 days), and not more than `max_ttl_secs`. Default 30.
    #[serde(deserialize_with = "de_min_ttl_secs")]
    pub min_ttl_secs: u64,
    /// Refresh a name at least this often, in seconds, whatever its TTL: 1 to 604800
    /// (7 days). Default 3600 (1 hour).
    #[serde(deserialize_with = "de_max_ttl_secs")]
    pub max_ttl_secs: u64,
    /// `"fail"` (default) or `"warn"`.
    pub on_unresolved: OnUnresolved,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout_secs: 2,
            min_ttl_secs: 30,
            max_ttl_secs: 3600,
            on_unresolved: OnUnresolved::Fail,
        }
    }
}

fn de_nameservers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let list = Vec::<Loose>::deserialize(d)?;
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| match raw {
            Loose::Str(s) => s
                .parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    de::Error::custom(format!("[{i}]: `{s}` is not an address or address:port"))
                }),
            other => Err(de::Error::custom(format!(
                "[{i}]: found {}; expected a string \"address:port\" or \"address\"",
                other.describe()
            ))),
        })
        .collect()
}

/// One element of a list as read, before it is checked: kept loose so that every
/// error can name the element's index.
enum Loose {
    Str(String),
    Table(Vec<(String, Loose)>),
    Other(String),
}

impl Loose {
    fn describe(&self) -> String {
        match self {
            Loose::Str(s) => format!("string \"{s}\""),
            Loose::Table(_) => "a table".into(),
            Loose::Other(kind) => kind.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
                Ok(Loose::Str(v.into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Loose, E> {
                Ok(Loose::Str(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
                Ok(Loose::Other(format!("boolean {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose, E> {
                Ok(Loose::Other(format!("integer {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose, E> {
                Ok(Loose::Other(format!("integer {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose, E> {
                Ok(Loose::Other(format!("number {v}")))
            }
            fn visit_char<E: de::Error>(self, v: char) -> Result<Loose, E> {
                Ok(Loose::Str(v.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
                Ok(Loose::Other("nothing".into()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Loose, E> {
                Ok(Loose::Other("nothing".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other("a list".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Loose>()? {
                    entries.push((k, v));
                }
                Ok(Loose::Table(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A rule table must be exactly `{ allow = "..." }` or `{ deny = "..." }`.
fn rule_from_loose(index: usize, raw: Loose) -> Result<Rule, String> {
    let at = format!("[{index}]");
    let shape = "a rule is one table with one key, `{ allow = \"...\" }` or `{ deny = \"...\" }`";
    let entries = match raw {
        Loose::Table(entries) => entries,
        other => return Err(format!("{at}: found {}; {shape}", other.describe())),
    };
    if let Some((key, _)) = entries.iter().find(|(k, _)| k != "allow" && k != "deny") {
        return Err(format!("{at}: unknown key `{key}`; {shape}"));
    }
    match entries.len() {
        0 => Err(format!("{at}: empty table; {shape}")),
        1 => {
            let (key, value) = entries.into_iter().next().expect("one entry");
            let verdict: Verdict = key.parse().expect("key checked above");
            match value {
                Loose::Str(s) => {
                    Rule::new(verdict, &s).map_err(|e| format!("{at}: {key} = \"{s}\": {e}"))
                }
                other => Err(format!(
                    "{at}: {key} must be a string, found {}",
                    other.describe()
                )),
            }
        }
        _ => Err(format!(
            "{at}: has both `allow` and `deny`; write one rule per table \
             (TOML tables do not keep key order, so which comes first cannot be known)"
        )),
    }
}

fn de_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Rule>, D::Error> {
    let list = Vec::<Loose>::deserialize(d)?;
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| rule_from_loose(i, raw).map_err(de::Error::custom))
        .collect()
}

fn de_targets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Target>, D::Error> {
    let list = Vec::<Loose>::deserialize(d)?;
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| match raw {
            Loose::Str(s) => {
                Target::parse(&s).map_err(|e| de::Error::custom(format!("[{i}]: {e}")))
            }
            other => Err(de::Error::custom(format!(
                "[{i}]: found {}; expected an address, network or host name string",
                other.describe()
            ))),
        })
        .collect()
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
            load("allow.rules = []\nallow.dns = { nameservers = [\"dns.example\"] }").unwrap_err();
        assert!(
            e.contains("dns.nameservers[0]") && e.contains("dns.example"),
            "{e}"
        );
    }
}
