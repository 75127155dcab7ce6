//! Rule values and their parser: addresses, networks, `all`, host names and `@set` references.
//!
//! Nothing here knows about Rocket or DNS: a [`Rule`] is what one entry of
//! `rules = [...]` says, parsed and normalized. Host names stay names until
//! the resolver turns them into addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// What a rule (or the default) does with a matching client: let it in or refuse it.
///
/// ```
/// use rocket_allow::Verdict;
/// assert_eq!("deny".parse::<Verdict>().unwrap(), Verdict::Deny);
/// assert_eq!(Verdict::default(), Verdict::Allow);
/// assert_eq!(Verdict::Allow.to_string(), "allow");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Admit the request; it reaches the app's routes.
    #[default]
    Allow,
    /// Refuse the request with 403; no route runs.
    Deny,
}

impl Verdict {
    /// `"allow"` or `"deny"`, as written in the configuration.
    ///
    /// ```
    /// assert_eq!(rocket_allow::Verdict::Deny.as_str(), "deny");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Verdict::Allow),
            "deny" => Ok(Verdict::Deny),
            other => Err(format!("`{other}` is neither \"allow\" nor \"deny\"")),
        }
    }
}

/// The parsed value of a rule (or of a trusted proxy): which addresses it names.
///
/// ```
/// use rocket_allow::Target;
/// assert_eq!(Target::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
/// assert_eq!(Target::parse("::1").unwrap().to_string(), "::1/128");
/// assert_eq!(Target::parse("ALL").unwrap(), Target::All);
/// assert!(matches!(Target::parse("proxy.example.com").unwrap(), Target::Host(_)));
/// assert!(Target::parse("10.0.0.0/33").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One network (a single address is a /32 or /128), host bits cleared.
    Net(IpNet),
    /// Every IPv4 and every IPv6 address.
    All,
    /// A host name, lower-cased, without a trailing dot: all its A and AAAA records.
    Host(String),
    /// `@name`: every entry of the named address set (built in, or from `[allow.sets]`).
    Set(String),
    /// `country:XX`: every network the country database gives the ISO 3166-1 alpha-2 code
    /// (kept upper-case).
    Country(String),
    /// `asn:N`: every network the ASN database gives the autonomous system number.
    Asn(u32),
}

/// Why a rule value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// The value is empty or only white space.
    Empty,
    /// `address/prefix` with a prefix longer than the address (33+ for IPv4, 129+ for IPv6).
    PrefixOutOfRange {
        /// The value as written.
        value: String,
        /// The largest prefix the address family allows.
        max: u8,
    },
    /// Neither an address, a network, `all`, nor a valid host name.
    Invalid {
        /// The value as written.
        value: String,
    },
    /// A `country:` or `asn:` value that names no country or AS number.
    Geo {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        message: &'static str,
    },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Empty => f.write_str("the value is empty"),
            TargetError::PrefixOutOfRange { value, max } => {
                write!(f, "`{value}`: prefix out of range (0 to {max} for this address family)")
            }
            TargetError::Geo { value, message } => write!(f, "`{value}`: {message}"),
            TargetError::Invalid { value } => write!(
                f,
                "`{value}` is neither an IP address, a network (address/prefix), `all`, a valid host name, nor a set (`@name`)"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

impl Target {
    /// Parses a rule value: `all`, `address`, `address/prefix`, a host name or `@set`.
    ///
    /// Host bits of a network are cleared (`10.1.2.3/8` is `10.0.0.0/8`; see
    /// [`Target::host_bits_set`]). An IPv6 network inside the IPv4-mapped range
    /// `::ffff:0:0/96` becomes the IPv4 network it maps, because mapped clients are
    /// matched as IPv4.
    ///
    /// ```
    /// use rocket_allow::Target;
    /// assert_eq!(Target::parse("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
    /// assert!(Target::parse("1.2.3").is_err()); // not an address, and numeric names are refused
    /// assert_eq!(Target::parse("@office").unwrap(), Target::Set("office".into()));
    /// assert!(Target::parse("@no spaces").is_err());
    /// assert_eq!(Target::parse("country:de").unwrap(), Target::Country("DE".into()));
    /// assert_eq!(Target::parse("asn:64496").unwrap(), Target::Asn(64496));
    /// assert!(Target::parse("country:ZZ").is_err());
    /// assert!(Target::parse("asn:4294967296").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Target, TargetError> {
        let v = value.trim();
        if v.is_empty() {
            return Err(TargetError::Empty);
        }
        if v.eq_ignore_ascii_case("all") {
            return Ok(Target::All);
        }
        let invalid = || TargetError::Invalid {
            value: value.to_string(),
        };
        if let Some(geo) = parse_geo(v) {
            return geo.map_err(|message| TargetError::Geo {
                value: value.to_string(),
                message,
            });
        }
        if let Some(name) = v.strip_prefix('@') {
            return if is_set_name(name) {
                Ok(Target::Set(name.to_string()))
            } else {
                Err(invalid())
            };
        }
        if let Some((addr, prefix)) = v.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
            // Only plain decimal digits: `+8` or ` 8` are not prefixes.
            if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid());
            }
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
            let net = IpNet::new(addr, prefix).map_err(|_| TargetError::PrefixOutOfRange {
                value: value.to_string(),
                max,
            })?;
            return Ok(Target::Net(unmap(net.trunc())));
        }
        if let Ok(addr) = v.parse::<IpAddr>() {
            return Ok(Target::Net(unmap(IpNet::from(addr))));
        }
        if is_host_name(v) {
            return Ok(Target::Host(v.trim_end_matches('.').to_ascii_lowercase()));
        }
        Err(invalid())
    }

    /// Whether `value` is a network written with host bits set (`10.1.2.3/8`),
    /// which [`Target::parse`] accepts and normalizes; the fairing warns about it.
    ///
    /// ```
    /// use rocket_allow::Target;
    /// assert!(Target::host_bits_set("10.1.2.3/8"));
    /// assert!(!Target::host_bits_set("10.0.0.0/8"));
    /// assert!(!Target::host_bits_set("10.1.2.3"));
    /// ```
    pub fn host_bits_set(value: &str) -> bool {
        value
            .trim()
            .parse::<IpNet>()
            .map(|net| net.trunc() != net)
            .unwrap_or(false)
    }

    /// The networks this target covers, or `None` for a host name (which needs resolving)
    /// or a set (which needs expanding).
    ///
    /// ```
    /// use rocket_allow::Target;
    /// assert_eq!(Target::All.networks().unwrap().len(), 2);
    /// assert!(Target::parse("example.com").unwrap().networks().is_none());
    /// ```
    pub fn networks(&self) -> Option<Vec<IpNet>> {
        match self {
            Target::Net(net) => Some(vec![*net]),
            Target::All => Some(vec![
                IpNet::V4(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("0 is a valid prefix")),
                IpNet::V6(Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 0).expect("0 is a valid prefix")),
            ]),
            Target::Host(_) | Target::Set(_) | Target::Country(_) | Target::Asn(_) => None,
        }
    }
}

/// Set names: letters, digits, `_` and `-`, 1 to 64 of them.
pub(crate) fn is_set_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Net(net) => net.fmt(f),
            Target::All => f.write_str("all"),
            Target::Host(name) => f.write_str(name),
            Target::Set(name) => write!(f, "@{name}"),
            Target::Country(code) => write!(f, "country:{code}"),
            Target::Asn(n) => write!(f, "asn:{n}"),
        }
    }
}

/// `country:XX` (any case) or `asn:N` (decimal, 0 to 4294967295; `AS64496` is accepted
/// too, as registries write it): `None` when the value has neither prefix.
fn parse_geo(v: &str) -> Option<Result<Target, &'static str>> {
    let (kind, rest) = v.split_once(':')?;
    if kind.eq_ignore_ascii_case("country") {
        let code = rest.to_ascii_uppercase();
        return Some(if crate::country_codes::is_country_code(&code) {
            Ok(Target::Country(code))
        } else {
            Err("not an ISO 3166-1 alpha-2 country code (such as `DE` or `US`)")
        });
    }
    if kind.eq_ignore_ascii_case("asn") {
        let digits = rest
            .strip_prefix("AS")
            .or_else(|| rest.strip_prefix("as"))
            .unwrap_or(rest);
        let ok =
            !digits.is_empty() && digits.len() <= 10 && digits.bytes().all(|b| b.is_ascii_digit());
        return Some(match digits.parse::<u32>() {
            Ok(n) if ok => Ok(Target::Asn(n)),
            _ => Err("not an AS number from 0 to 4294967295"),
        });
    }
    None
}

/// `::ffff:a.b.c.d/n` (n >= 96) is the IPv4 network `a.b.c.d/(n-96)`: clients in that
/// range are matched as IPv4, so an IPv6 rule there would otherwise never match.
fn unmap(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(
                Ipv4Net::new(v4, v6.prefix_len() - 96).expect("prefix - 96 is at most 32"),
            ),
            None => net,
        },
        _ => net,
    }
}

/// RFC 1123 host names: labels of letters, digits and inner hyphens, at most 63 bytes each
/// and 253 in all; the last label must not be all digits, so a mistyped address such as
/// `10.0.0.256` is refused instead of being looked up in DNS.
fn is_host_name(v: &str) -> bool {
    let name = v.strip_suffix('.').unwrap_or(v);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.split('.').all(label_ok)
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
}

/// One entry of the ordered rule list: a verdict and the addresses it applies to.
///
/// ```
/// use rocket_allow::{Rule, Verdict};
/// let rule = Rule::allow("10.1.2.3/8").unwrap();
/// assert_eq!(rule.verdict, Verdict::Allow);
/// assert_eq!(rule.written, "10.1.2.3/8");
/// assert_eq!(rule.target.to_string(), "10.0.0.0/8");
/// assert_eq!(rule.to_string(), "allow 10.1.2.3/8");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What a match does.
    pub verdict: Verdict,
    /// The value as the configuration wrote it (shown in the access log).
    pub written: String,
    /// The parsed, normalized value.
    pub target: Target,
}

impl Rule {
    /// Parses `value` into a rule with the given verdict.
    ///
    /// ```
    /// use rocket_allow::{Rule, Verdict};
    /// assert!(Rule::new(Verdict::Deny, "all").is_ok());
    /// assert!(Rule::new(Verdict::Deny, "not an address").is_err());
    /// ```
    pub fn new(verdict: Verdict, value: &str) -> Result<Rule, TargetError> {
        Ok(Rule {
            verdict,
            written: value.to_string(),
            target: Target::parse(value)?,
        })
    }

    /// An `allow` rule: `{ allow = value }`.
    ///
    /// ```
    /// assert!(rocket_allow::Rule::allow("2001:db8::/32").is_ok());
    /// ```
    pub fn allow(value: &str) -> Result<Rule, TargetError> {
        Rule::new(Verdict::Allow, value)
    }

    /// A `deny` rule: `{ deny = value }`.
    ///
    /// ```
    /// assert!(rocket_allow::Rule::deny("0.0.0.0/0").is_ok());
    /// ```
    pub fn deny(value: &str) -> Result<Rule, TargetError> {
        Rule::new(Verdict::Deny, value)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verdict, self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Target {
        Target::Net(s.parse().unwrap())
    }

    #[test]
    fn single_addresses_become_full_length_networks() {
        assert_eq!(Target::parse("127.0.0.1").unwrap(), net("127.0.0.1/32"));
        assert_eq!(
            Target::parse(" 2001:db8::1 ").unwrap(),
            net("2001:db8::1/128")
        );
    }

    #[test]
    fn networks_are_normalized() {
        assert_eq!(Target::parse("10.1.2.3/8").unwrap(), net("10.0.0.0/8"));
        assert_eq!(
            Target::parse("2001:db8::1/32").unwrap(),
            net("2001:db8::/32")
        );
        assert_eq!(Target::parse("0.0.0.0/0").unwrap(), net("0.0.0.0/0"));
        assert_eq!(Target::parse("::/0").unwrap(), net("::/0"));
        assert!(Target::host_bits_set("2001:db8::1/32"));
    }

    #[test]
    fn mapped_networks_become_ipv4() {
        assert_eq!(
            Target::parse("::ffff:192.0.2.7").unwrap(),
            net("192.0.2.7/32")
        );
        assert_eq!(Target::parse("::ffff:0:0/96").unwrap(), net("0.0.0.0/0"));
        // Wider than the mapped range: stays IPv6.
        assert_eq!(
            Target::parse("::ffff:0:0/95").unwrap(),
            net("::fffe:0:0/95")
        );
        // `::1` is not mapped.
        assert_eq!(Target::parse("::1").unwrap(), net("::1/128"));
    }

    #[test]
    fn all_in_any_case() {
        for v in ["all", "ALL", " All "] {
            assert_eq!(Target::parse(v).unwrap(), Target::All);
        }
    }

    #[test]
    fn prefixes_out_of_range() {
        for (v, max) in [("10.0.0.0/33", 32), ("::/129", 128), ("1.2.3.4/255", 32)] {
            assert_eq!(
                Target::parse(v),
                Err(TargetError::PrefixOutOfRange {
                    value: v.into(),
                    max
                })
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        for v in [
            "10.0.0.256",
            "1.2.3",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "/8",
            "host_name.example",
            "-bad.example",
            "bad-.example",
            "a..b",
            "fe80::1%eth0",
            "1.2.3.4:80",
            "http://example.com",
            "exa mple.com",
            &"a".repeat(64),
            &format!("{}.com", "a.".repeat(130)),
        ] {
            assert!(
                matches!(Target::parse(v), Err(TargetError::Invalid { .. })),
                "{v} was accepted"
            );
        }
        assert_eq!(Target::parse("  "), Err(TargetError::Empty));
    }

    #[test]
    fn host_names() {
        assert_eq!(
            Target::parse("Proxy.Example.COM.").unwrap(),
            Target::Host("proxy.example.com".into())
        );
        assert_eq!(
            Target::parse("localhost").unwrap(),
            Target::Host("localhost".into())
        );
        assert_eq!(
            Target::parse("a1-b.example").unwrap(),
            Target::Host("a1-b.example".into())
        );
    }

    #[test]
    fn errors_name_the_value() {
        let e = Target::parse("nope!").unwrap_err().to_string();
        assert!(e.contains("`nope!`"), "{e}");
        let e = Target::parse("10.0.0.0/40").unwrap_err().to_string();
        assert!(
            e.contains("`10.0.0.0/40`") && e.contains("prefix out of range"),
            "{e}"
        );
    }
}
