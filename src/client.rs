//! Which address is the client: the TCP peer, unless a trusted proxy vouches for another.
//!
//! Nothing a client sends can change the address unless the TCP peer is a trusted
//! proxy. Then the configured header is read from the right (the end the proxies
//! append to), skipping trusted hops, and the first untrusted address is the client,
//! as nginx's `real_ip_recursive on` does. Anything unreadable on that walk makes the
//! decision fall back to the peer, with a note for the log. No Rocket types here.

use std::net::{IpAddr, Ipv6Addr};

use crate::matcher::Matcher;

/// The most addresses read from a list header before giving up (and deciding on the peer).
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
    /// Why the header was not (fully) used, when that matters for the log.
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
/// assert_eq!(c.ip.to_string(), "203.0.113.9");
///
/// // An untrusted peer's header is ignored.
/// let c = client_addr("192.0.2.1".parse().unwrap(), &xff, &["127.0.0.1"], &trusted);
/// assert_eq!(c.ip.to_string(), "192.0.2.1");
/// ```
pub fn client_addr(
    peer: IpAddr,
    header: &ClientIpHeader,
    values: &[&str],
    trusted: &Matcher,
) -> ClientAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) || values.is_empty() {
        return ClientAddr::peer(peer, None);
    }
    match header {
        ClientIpHeader::Single(_) => match values {
            [one] => match parse_bare(one) {
                Some(ip) => ClientAddr::header(ip, peer, None),
                None => ClientAddr::peer(
                    peer,
                    Some("unreadable client address header; decided on the peer"),
                ),
            },
            _ => ClientAddr::peer(
                peer,
                Some("client address header sent more than once; decided on the peer"),
            ),
        },
        ClientIpHeader::XForwardedFor => walk(
            peer,
            trusted,
            values
                .iter()
                .rev()
                .flat_map(|v| v.rsplit(','))
                .map(|e| parse_bare(e).map(Node::Addr)),
        ),
        ClientIpHeader::Forwarded => {
            // Elements are split forward (commas may sit inside quoted strings), then walked backwards.
            let mut elements = Vec::new();
            for v in values {
                match split_outside_quotes(v, b',') {
                    Some(parts) => elements.extend(parts),
                    None => {
                        return ClientAddr::peer(
                            peer,
                            Some("malformed Forwarded header; decided on the peer"),
                        )
                    }
                }
            }
            walk(
                peer,
                trusted,
                elements.into_iter().rev().map(parse_forwarded_element),
            )
        }
    }
}

/// One hop of a list header, as read.
enum Node {
    Addr(IpAddr),
    /// `for=unknown`, `for=_hidden`, or an element without `for=`: no address, and no way past it.
    Opaque,
}

/// Walks hops from the right; `None` items are unreadable.
fn walk(peer: IpAddr, trusted: &Matcher, hops: impl Iterator<Item = Option<Node>>) -> ClientAddr {
    let mut last = peer;
    let mut read_any = false;
    for (n, hop) in hops.enumerate() {
        if n >= MAX_HOPS {
            return ClientAddr::peer(
                peer,
                Some("forwarding header longer than 32 trusted hops; decided on the peer"),
            );
        }
        match hop {
            None => {
                return ClientAddr::peer(
                    peer,
                    Some("malformed forwarding header; decided on the peer"),
                )
            }
            Some(Node::Opaque) => {
                let note = Some(
                    "unknown or obfuscated forwarding hop; decided on the last readable address",
                );
                return if read_any {
                    ClientAddr::header(last, peer, note)
                } else {
                    ClientAddr::peer(peer, note)
                };
            }
            Some(Node::Addr(ip)) => {
                let ip = ip.to_canonical();
                if !trusted.contains(ip) {
                    return ClientAddr::header(ip, peer, None);
                }
                last = ip;
                read_any = true;
            }
        }
    }
    // Every hop is a trusted proxy: the leftmost is the client.
    if read_any {
        ClientAddr::header(last, peer, None)
    } else {
        ClientAddr::peer(peer, Some("empty forwarding header; decided on the peer"))
    }
}

/// An address with no port: `192.0.2.1`, `2001:db8::1` or `[2001:db8::1]`.
fn parse_bare(s: &str) -> Option<IpAddr> {
    let s = s.trim_matches([' ', '\t']);
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    s.parse().ok()
}

/// Splits on `sep` outside double-quoted strings (with `\` escapes). `None` if a quote is unclosed.
fn split_outside_quotes(s: &str, sep: u8) -> Option<Vec<&str>> {
    let bytes = s.as_bytes();
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if !quoted && b == sep {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if quoted || escaped {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// One RFC 7239 element (`for=...;proto=...;by=...`): its `for` node, if readable.
fn parse_forwarded_element(element: &str) -> Option<Node> {
    let element = element.trim_matches([' ', '\t']);
    if element.is_empty() {
        return None;
    }
    let mut node = None;
    for pair in split_outside_quotes(element, b';')? {
        let (name, value) = pair.trim_matches([' ', '\t']).split_once('=')?;
        if !name.eq_ignore_ascii_case("for") {
            continue;
        }
        if node.is_some() {
            return None; // two `for=` in one element: which is meant cannot be known
        }
        node = Some(parse_forwarded_node(&unquote(value)?)?);
    }
    Some(node.unwrap_or(Node::Opaque))
}

/// The value of a parameter: a token, or a quoted string with `\` escapes removed.
fn unquote(value: &str) -> Option<String> {
    match value.strip_prefix('"') {
        None if value.is_empty() || value.contains('"') => None,
        None => Some(value.to_string()),
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next()? } else { c });
            }
            Some(out)
        }
    }
}

/// RFC 7239 `node = nodename [ ":" node-port ]`.
fn parse_forwarded_node(node: &str) -> Option<Node> {
    if node.eq_ignore_ascii_case("unknown") {
        return Some(Node::Opaque);
    }
    if let Some(obf) = node.strip_prefix('_') {
        return is_obfuscated(obf).then_some(Node::Opaque);
    }
    let (addr, port) = if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (IpAddr::V6(v6.parse().ok()?), port)
    } else {
        match node.split_once(':') {
            // A second colon means an unbracketed IPv6 address, which RFC 7239 forbids.
            Some((v4, port)) => (IpAddr::V4(v4.parse().ok()?), Some(port)),
            None => (IpAddr::V4(node.parse().ok()?), None),
        }
    };
    if let Some(port) = port {
        let ok = match port.strip_prefix('_') {
            Some(obf) => is_obfuscated(obf),
            None => {
                (1..=5).contains(&port.len())
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u16>().is_ok()
            }
        };
        if !ok {
            return None;
        }
    }
    Some(Node::Addr(addr))
}

/// `obfnode`/`obfport` after the underscore: ALPHA / DIGIT / "." / "_" / "-".
fn is_obfuscated(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Verdict;

    fn trusted(nets: &[&str]) -> Matcher {
        Matcher::new(
            Verdict::Deny,
            nets.iter()
                .map(|n| (Verdict::Allow, vec![n.parse::<ipnet::IpNet>().unwrap()])),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(peer: &str, values: &[&str]) -> ClientAddr {
        client_addr(
            ip(peer),
            &ClientIpHeader::XForwardedFor,
            values,
            &trusted(&["10.0.0.0/8", "::1/128"]),
        )
    }

    fn fwd(peer: &str, values: &[&str]) -> ClientAddr {
        client_addr(
            ip(peer),
            &ClientIpHeader::Forwarded,
            values,
            &trusted(&["10.0.0.0/8", "::1/128"]),
        )
    }

    #[test]
    fn untrusted_peer_ignores_headers() {
        let c = xff("192.0.2.1", &["127.0.0.1"]);
        assert_eq!(
            (c.ip, c.from_header, c.note),
            (ip("192.0.2.1"), false, None)
        );
        let c = client_addr(
            ip("192.0.2.1"),
            &ClientIpHeader::from_name("X-Real-IP"),
            &["127.0.0.1"],
            &trusted(&[]),
        );
        assert_eq!(c.ip, ip("192.0.2.1"));
    }

    #[test]
    fn xff_walks_right_to_left_skipping_trusted() {
        assert_eq!(
            xff("10.0.0.1", &["198.51.100.1, 203.0.113.9, 10.0.0.7"]).ip,
            ip("203.0.113.9")
        );
        // Occurrences are one list, in order.
        assert_eq!(
            xff("10.0.0.1", &["198.51.100.1", "203.0.113.9,10.0.0.7"]).ip,
            ip("203.0.113.9")
        );
        // All trusted: the leftmost.
        let c = xff("10.0.0.1", &["10.0.0.9, 10.0.0.8"]);
        assert_eq!((c.ip, c.from_header), (ip("10.0.0.9"), true));
        // Garbage left of the client is never read.
        assert_eq!(
            xff("10.0.0.1", &["garbage, 203.0.113.9"]).ip,
            ip("203.0.113.9")
        );
    }

    #[test]
    fn xff_malformed_falls_back_to_peer() {
        for v in [
            "",
            " ",
            "garbage",
            "203.0.113.9:80",
            "1.2.3.4,",
            "203.0.113.9, 10.0.0.2:1",
        ] {
            let c = xff("10.0.0.1", &[v]);
            assert_eq!((c.ip, c.from_header), (ip("10.0.0.1"), false), "{v:?}");
            assert!(c.note.is_some());
        }
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let c = xff("::ffff:10.0.0.1", &["::ffff:203.0.113.9"]);
        assert_eq!((c.ip, c.peer), (ip("203.0.113.9"), ip("10.0.0.1")));
        // And a mapped trusted hop is skipped.
        assert_eq!(
            xff("::1", &["203.0.113.9, ::ffff:10.1.1.1"]).ip,
            ip("203.0.113.9")
        );
    }

    #[test]
    fn long_trusted_chains_stop() {
        let chain = vec!["10.0.0.5"; MAX_HOPS + 1].join(",");
        let c = xff("10.0.0.1", &[&chain]);
        assert_eq!(c.ip, ip("10.0.0.1"));
        // A long untrusted prefix is fine: the walk ends at the first untrusted address.
        let long = format!("{},203.0.113.9", vec!["1.1.1.1"; 10_000].join(","));
        assert_eq!(xff("10.0.0.1", &[&long]).ip, ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_rfc7239() {
        assert_eq!(fwd("10.0.0.1", &["for=192.0.2.43"]).ip, ip("192.0.2.43"));
        assert_eq!(
            fwd("10.0.0.1", &[r#"for="[2001:db8:cafe::17]:4711""#]).ip,
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd("10.0.0.1", &[r#"For="192.0.2.43:47011";proto=https"#]).ip,
            ip("192.0.2.43")
        );
        assert_eq!(
            fwd(
                "10.0.0.1",
                &["for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http"]
            )
            .ip,
            ip("198.51.100.17")
        );
        assert_eq!(
            fwd("10.0.0.1", &[r#"for=192.0.2.43;x="a,b", for=10.0.0.3"#]).ip,
            ip("192.0.2.43")
        );
    }

    #[test]
    fn forwarded_unknown_and_obfuscated_stop_the_walk() {
        // Rightmost is opaque: nothing could be read, so the peer.
        let c = fwd("10.0.0.1", &["for=192.0.2.1, for=unknown"]);
        assert_eq!((c.ip, c.from_header), (ip("10.0.0.1"), false));
        assert!(c.note.is_some());
        // Behind a trusted hop: that hop is the last readable address; 192.0.2.1 is never believed.
        let c = fwd("10.0.0.1", &["for=192.0.2.1, for=_hidden, for=10.0.0.4"]);
        assert_eq!((c.ip, c.from_header), (ip("10.0.0.4"), true));
        let c = fwd("10.0.0.1", &["for=192.0.2.1, proto=https"]);
        assert_eq!(c.ip, ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_malformed() {
        for v in [
            "for=",
            "for=\"192.0.2.1",
            "for=2001:db8::1",
            "for=\"[2001:db8::1\"",
            "for=192.0.2.1:99999",
            "for=192.0.2.1:",
            "for=[2001:db8::1]x",
            "for=_",
            "for=_bad!",
            "for=1.1.1.1;for=2.2.2.2",
            "for=1.1.1.1,,for=10.0.0.2",
            "garbage",
        ] {
            let c = fwd("10.0.0.1", &[v]);
            assert_eq!((c.ip, c.from_header), (ip("10.0.0.1"), false), "{v:?}");
        }
    }

    #[test]
    fn single_address_headers() {
        let h = ClientIpHeader::from_name("X-Real-IP");
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &["203.0.113.9"], &t).ip,
            ip("203.0.113.9")
        );
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &[" 2001:db8::1 "], &t).ip,
            ip("2001:db8::1")
        );
        // Trusted or not, the value is taken as it is.
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &["10.9.9.9"], &t).ip,
            ip("10.9.9.9")
        );
        for bad in [
            &["1.2.3.4:80"][..],
            &["a, b"],
            &["1.2.3.4", "5.6.7.8"],
            &["1.2.3.4,5.6.7.8"],
        ] {
            assert_eq!(
                client_addr(ip("10.0.0.1"), &h, bad, &t).ip,
                ip("10.0.0.1"),
                "{bad:?}"
            );
        }
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any header content from an untrusted peer leaves the peer as the client.
        #[test]
        fn untrusted_peer_is_always_the_client(
            peer in any::<u32>().prop_filter("untrusted", |a| a >> 24 != 10),
            kind in 0usize..3,
            values in prop::collection::vec(".{0,80}", 0..4),
        ) {
            let header = [ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded, ClientIpHeader::from_name("X-Real-IP")];
            let peer = IpAddr::from(std::net::Ipv4Addr::from(peer));
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let c = client_addr(peer, &header[kind], &values, &trusted(&["10.0.0.0/8"]));
            prop_assert_eq!((c.ip, c.from_header), (peer, false));
        }

        /// From a trusted peer, arbitrary content never panics and yields the peer or an address
        /// that literally appears in the header.
        #[test]
        fn trusted_peer_never_panics_or_invents(
            kind in 0usize..3,
            values in prop::collection::vec(".{0,80}", 0..4),
        ) {
            let header = [ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded, ClientIpHeader::from_name("X-Real-IP")];
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let c = client_addr(ip("10.0.0.1"), &header[kind], &values, &trusted(&["10.0.0.0/8"]));
            prop_assert!(c.ip == ip("10.0.0.1") || c.from_header);
        }
    }
}
