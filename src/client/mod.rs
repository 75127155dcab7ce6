//! Which address is the client: the TCP peer, unless a trusted proxy vouches for another.
//!
//! Nothing a client sends can change the address unless the TCP peer is a trusted
//! proxy. Then the configured header is read from the right (the end the proxies
//! append to), line by line from the last one back, skipping trusted hops; the first
//! untrusted address is the client, as nginx's `real_ip_recursive on` does. Anything
//! unreadable on that walk refuses the request ([`Unreadable`]): a client must never be
//! able to pass as its proxy by garbling the header. Text to the left of the entry that
//! decides is never parsed. No Rocket types here.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::decide::matcher::Matcher;

mod forwarded;
mod hops;

use forwarded::{forwarded_proto, parse_forwarded_element, rsplit_elements};

/// The most hops read from a list header before giving up (and refusing the request).
/// Only trusted hops can make a walk this long, so no client can trigger it.
pub const MAX_HOPS: usize = 32;

/// Which header a trusted proxy reports the client in, and so how it is parsed.
///
/// ```
/// use rocket_allow::ClientIpHeader;
/// assert_eq!(ClientIpHeader::from_name("x-forwarded-for"), ClientIpHeader::XForwardedFor);
/// assert_eq!(ClientIpHeader::from_name("Forwarded"), ClientIpHeader::Forwarded);
/// assert_eq!(ClientIpHeader::from_name("CF-Connecting-IP").name(), "CF-Connecting-IP");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`: a list, proxies append on the right.
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`: a list of elements.
    Forwarded,
    /// A header holding exactly one address (`X-Real-IP`, `CF-Connecting-IP`, ...), taken as it is.
    Single(String),
}

impl ClientIpHeader {
    /// Chooses the parser by header name (case-insensitive).
    ///
    /// ```
    /// use rocket_allow::ClientIpHeader;
    /// assert!(matches!(ClientIpHeader::from_name("X-Real-IP"), ClientIpHeader::Single(_)));
    /// ```
    pub fn from_name(name: &str) -> ClientIpHeader {
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            ClientIpHeader::XForwardedFor
        } else if name.eq_ignore_ascii_case("forwarded") {
            ClientIpHeader::Forwarded
        } else {
            ClientIpHeader::Single(name.to_string())
        }
    }

    /// The header name to read.
    ///
    /// ```
    /// assert_eq!(rocket_allow::ClientIpHeader::Forwarded.name(), "Forwarded");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            ClientIpHeader::XForwardedFor => "X-Forwarded-For",
            ClientIpHeader::Forwarded => "Forwarded",
            ClientIpHeader::Single(name) => name,
        }
    }
}

/// The address a decision is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client: the peer, or the address a trusted proxy reported.
    pub ip: IpAddr,
    /// The TCP peer (IPv4-mapped addresses shown as IPv4).
    pub peer: IpAddr,
    /// Whether `ip` was read from the forwarding header.
    pub from_header: bool,
    /// Why the header was not fully used, when that matters for the log.
    pub note: Option<&'static str>,
}

impl ClientAddr {
    /// The peer itself is the client (IPv4-mapped addresses shown as IPv4).
    ///
    /// ```
    /// let c = rocket_allow::ClientAddr::from_peer("::ffff:192.0.2.1".parse().unwrap());
    /// assert_eq!((c.ip.to_string(), c.from_header), ("192.0.2.1".into(), false));
    /// ```
    pub fn from_peer(peer: IpAddr) -> ClientAddr {
        ClientAddr::peer(peer.to_canonical(), None)
    }

    fn peer(peer: IpAddr, note: Option<&'static str>) -> ClientAddr {
        ClientAddr {
            ip: peer,
            peer,
            from_header: false,
            note,
        }
    }

    fn header(ip: IpAddr, peer: IpAddr, note: Option<&'static str>) -> ClientAddr {
        ClientAddr {
            ip,
            peer,
            from_header: true,
            note,
        }
    }
}

/// Why a trusted proxy's header could not be read up to the client. The request is
/// refused: deciding on the proxy's own address instead would let a client that garbles
/// the header pass as its proxy.
///
/// ```
/// use rocket_allow::{client_addr, ClientIpHeader, Matcher, Unreadable, Verdict};
/// let trusted = Matcher::new(Verdict::Deny, [(Verdict::Allow, vec!["10.0.0.0/8".parse().unwrap()])]);
/// let peer = "10.0.0.1".parse().unwrap();
/// let xff = ClientIpHeader::XForwardedFor;
/// assert_eq!(client_addr(peer, &xff, &[], &trusted), Err(Unreadable::Missing));
/// assert!(matches!(client_addr(peer, &xff, &["garbage"], &trusted), Err(Unreadable::Malformed(_))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The header is absent. Rocket drops a header value that is not valid UTF-8 before any
    /// fairing sees it, so this may be a header a client spoiled; `missing_header = "peer"`
    /// decides such requests on the proxy's address instead.
    Missing,
    /// The header could not be read up to the client; says what was wrong.
    Malformed(&'static str),
}

impl Unreadable {
    /// The reason, for the log line.
    ///
    /// ```
    /// assert!(rocket_allow::Unreadable::Missing.reason().contains("no client address header"));
    /// ```
    pub fn reason(self) -> &'static str {
        match self {
            Unreadable::Missing => "no client address header from a trusted proxy",
            Unreadable::Malformed(reason) => reason,
        }
    }
}

/// Finds the client address of a request from its TCP `peer`, the values of the
/// configured header (every occurrence, in order) and the trusted proxies.
///
/// ```
/// use rocket_allow::{client_addr, ClientIpHeader, Matcher, Verdict};
/// let trusted = Matcher::new(Verdict::Deny, [(Verdict::Allow, vec!["10.0.0.0/8".parse().unwrap()])]);
/// let xff = ClientIpHeader::XForwardedFor;
///
/// // A trusted proxy's report is believed, walking from the right past trusted hops.
/// let c = client_addr("10.0.0.1".parse().unwrap(), &xff, &["1.1.1.1, 203.0.113.9, 10.0.0.2"], &trusted);
/// assert_eq!(c.unwrap().ip.to_string(), "203.0.113.9");
///
/// // Text left of the client is never read.
/// let c = client_addr("10.0.0.1".parse().unwrap(), &xff, &["garbage", "203.0.113.9:4711"], &trusted);
/// assert_eq!(c.unwrap().ip.to_string(), "203.0.113.9");
///
/// // An untrusted peer's header is ignored.
/// let c = client_addr("192.0.2.1".parse().unwrap(), &xff, &["127.0.0.1"], &trusted);
/// assert_eq!(c.unwrap().ip.to_string(), "192.0.2.1");
/// ```
pub fn client_addr(
    peer: IpAddr,
    header: &ClientIpHeader,
    values: &[&str],
    trusted: &Matcher,
) -> Result<ClientAddr, Unreadable> {
    client_addr_at(peer, header, values, trusted, None)
}

/// [`client_addr`] with `trusted_hops`: with `Some(n)`, the client is the `n`-th address
/// from the right of a list header (1 = the rightmost) instead of the first untrusted one.
/// The peer must still be trusted; a single-address header is read as [`client_addr`] does.
///
/// ```
/// use rocket_allow::{client_addr_at, ClientIpHeader, Matcher, Verdict};
/// let trusted = Matcher::new(Verdict::Deny, [(Verdict::Allow, vec!["10.0.0.0/8".parse().unwrap()])]);
/// let xff = ClientIpHeader::XForwardedFor;
/// let peer = "10.0.0.1".parse().unwrap();
/// // Google Cloud's load balancer appends `<client>, <lb>`: the client is 2nd from the right.
/// let c = client_addr_at(peer, &xff, &["1.1.1.1, 203.0.113.9, 35.191.0.1"], &trusted, Some(2));
/// assert_eq!(c.unwrap().ip.to_string(), "203.0.113.9");
/// // Fewer addresses than the hop count: refused.
/// assert!(client_addr_at(peer, &xff, &["35.191.0.1"], &trusted, Some(2)).is_err());
/// ```
pub fn client_addr_at(
    peer: IpAddr,
    header: &ClientIpHeader,
    values: &[&str],
    trusted: &Matcher,
    hops: Option<usize>,
) -> Result<ClientAddr, Unreadable> {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return Ok(ClientAddr::peer(peer, None));
    }
    if values.is_empty() {
        return Err(Unreadable::Missing);
    }
    match header {
        ClientIpHeader::Single(_) => match values {
            [one] => parse_bare(one)
                .map(|ip| ClientAddr::header(ip.to_canonical(), peer, None))
                .ok_or(Unreadable::Malformed(
                    "unreadable client address header from a trusted proxy",
                )),
            _ => Err(Unreadable::Malformed(
                "client address header sent more than once",
            )),
        },
        ClientIpHeader::XForwardedFor => {
            let list = values
                .iter()
                .rev()
                .flat_map(|v| v.rsplit(','))
                .map(|e| parse_listed(e).map(Node::Addr));
            match hops {
                Some(n) => hops::at_hop(peer, list, n),
                None => walk(peer, trusted, list),
            }
        }
        ClientIpHeader::Forwarded => {
            let list = values
                .iter()
                .rev()
                .flat_map(|v| rsplit_elements(v))
                .map(|e| e.and_then(parse_forwarded_element));
            match hops {
                Some(n) => hops::at_hop(peer, list, n),
                None => walk(peer, trusted, list),
            }
        }
    }
}

/// What a trusted proxy says about the scheme the browser used: `Some(true)` for `https`,
/// `Some(false)` for `http`, `None` when it says neither. Read from the values of
/// `X-Forwarded-Proto` (every occurrence, in order: the rightmost entry, the nearest proxy's,
/// decides), or, when there is none, from the `proto=` of the rightmost `Forwarded` element.
/// The caller checks that the TCP peer is a trusted proxy: anyone can send either header.
pub(crate) fn proxied_https(x_forwarded_proto: &[&str], forwarded: &[&str]) -> Option<bool> {
    let said = match (x_forwarded_proto.last(), forwarded.last()) {
        (Some(line), _) => line
            .rsplit(',')
            .next()?
            .trim_matches([' ', '\t'])
            .to_string(),
        (None, Some(line)) => forwarded_proto(rsplit_elements(line).first().copied()??)?,
        (None, None) => return None,
    };
    if said.eq_ignore_ascii_case("https") {
        Some(true)
    } else if said.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

/// One hop of a list header, as read.
pub(super) enum Node {
    Addr(IpAddr),
    /// `for=unknown`, `for=_hidden`, or an element without `for=`: no address, and no way past it.
    Opaque,
}

/// Walks hops from the right; `None` items are unreadable.
fn walk(
    peer: IpAddr,
    trusted: &Matcher,
    hops: impl Iterator<Item = Option<Node>>,
) -> Result<ClientAddr, Unreadable> {
    let mut last = None;
    for (n, hop) in hops.enumerate() {
        if n >= MAX_HOPS {
            return Err(Unreadable::Malformed(
                "forwarding header longer than 32 trusted hops",
            ));
        }
        match hop {
            None => {
                return Err(Unreadable::Malformed(
                    "malformed forwarding header entry from a trusted proxy",
                ))
            }
            Some(Node::Opaque) => {
                return match last {
                    Some(ip) => Ok(ClientAddr::header(
                        ip,
                        peer,
                        Some("unknown or obfuscated forwarding hop; decided on the last readable address"),
                    )),
                    None => Err(Unreadable::Malformed(
                        "unknown or obfuscated client address from a trusted proxy",
                    )),
                };
            }
            Some(Node::Addr(ip)) => {
                let ip = ip.to_canonical();
                if !trusted.contains(ip) {
                    return Ok(ClientAddr::header(ip, peer, None));
                }
                last = Some(ip);
            }
        }
    }
    // Every hop is a trusted proxy: the leftmost is the client.
    last.map(|ip| ClientAddr::header(ip, peer, None))
        .ok_or(Unreadable::Malformed("empty forwarding header"))
}

/// An address with no port: `192.0.2.1`, `2001:db8::1` or `[2001:db8::1]`.
fn parse_bare(s: &str) -> Option<IpAddr> {
    let s = s.trim_matches([' ', '\t']);
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    s.parse().ok()
}

/// A list-header entry: an address, or `192.0.2.1:4711` / `[2001:db8::1]:4711` as some
/// cloud balancers (Azure Application Gateway) write; the port is ignored.
fn parse_listed(s: &str) -> Option<IpAddr> {
    parse_bare(s).or_else(|| {
        s.trim_matches([' ', '\t'])
            .parse::<SocketAddr>()
            .ok()
            .map(|a| a.ip())
    })
}

#[cfg(test)]
mod tests;
