//! `[allow.dns]`: the resolver for host-name rules and how often names are refreshed.

use std::net::{IpAddr, SocketAddr};

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::bounds::{de_max_ttl_secs, de_min_ttl_secs, de_timeout_secs};
use super::rule_list::Loose;

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
                })
                .and_then(|a| match a.port() {
                    0 => Err(de::Error::custom(format!(
                        "[{i}]: `{s}`: port 0 is not a port a server listens on"
                    ))),
                    _ => Ok(a),
                }),
            other => Err(de::Error::custom(format!(
                "[{i}]: found {}; expected a string \"address:port\" or \"address\"",
                other.describe()
            ))),
        })
        .collect()
}
