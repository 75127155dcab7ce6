//! The client address: unit tests of the header walk.
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

fn xff(peer: &str, values: &[&str]) -> Result<ClientAddr, Unreadable> {
    client_addr(
        ip(peer),
        &ClientIpHeader::XForwardedFor,
        values,
        &trusted(&["10.0.0.0/8", "::1/128"]),
    )
}

fn fwd(peer: &str, values: &[&str]) -> Result<ClientAddr, Unreadable> {
    client_addr(
        ip(peer),
        &ClientIpHeader::Forwarded,
        values,
        &trusted(&["10.0.0.0/8", "::1/128"]),
    )
}

#[test]
fn untrusted_peer_ignores_headers() {
    let c = xff("192.0.2.1", &["127.0.0.1"]).unwrap();
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
    assert_eq!(c.unwrap().ip, ip("192.0.2.1"));
}

#[test]
fn xff_walks_right_to_left_skipping_trusted() {
    assert_eq!(
        xff("10.0.0.1", &["198.51.100.1, 203.0.113.9, 10.0.0.7"])
            .unwrap()
            .ip,
        ip("203.0.113.9")
    );
    // Occurrences are one list, in order.
    assert_eq!(
        xff("10.0.0.1", &["198.51.100.1", "203.0.113.9,10.0.0.7"])
            .unwrap()
            .ip,
        ip("203.0.113.9")
    );
    // All trusted: the leftmost.
    let c = xff("10.0.0.1", &["10.0.0.9, 10.0.0.8"]).unwrap();
    assert_eq!((c.ip, c.from_header), (ip("10.0.0.9"), true));
    // Garbage left of the client is never read.
    assert_eq!(
        xff("10.0.0.1", &["garbage, 203.0.113.9"]).unwrap().ip,
        ip("203.0.113.9")
    );
}

#[test]
fn xff_unreadable_is_refused() {
    for v in [
        "",
        " ",
        "garbage",
        "203.0.113.9:99999",
        "203.0.113.9:",
        "1.2.3.4,",
    ] {
        assert!(
            matches!(xff("10.0.0.1", &[v]), Err(Unreadable::Malformed(_))),
            "{v:?}"
        );
    }
}

#[test]
fn mapped_addresses_are_ipv4() {
    let c = xff("::ffff:10.0.0.1", &["::ffff:203.0.113.9"]).unwrap();
    assert_eq!((c.ip, c.peer), (ip("203.0.113.9"), ip("10.0.0.1")));
    // And a mapped trusted hop is skipped.
    assert_eq!(
        xff("::1", &["203.0.113.9, ::ffff:10.1.1.1"]).unwrap().ip,
        ip("203.0.113.9")
    );
}

#[test]
fn long_trusted_chains_stop() {
    let chain = vec!["10.0.0.5"; MAX_HOPS + 1].join(",");
    assert!(xff("10.0.0.1", &[&chain]).is_err());
    // A long untrusted prefix is fine: the walk ends at the first untrusted address.
    let long = format!("{},203.0.113.9", vec!["1.1.1.1"; 10_000].join(","));
    assert_eq!(xff("10.0.0.1", &[&long]).unwrap().ip, ip("203.0.113.9"));
}

#[test]
fn forwarded_rfc7239() {
    assert_eq!(
        fwd("10.0.0.1", &["for=192.0.2.43"]).unwrap().ip,
        ip("192.0.2.43")
    );
    assert_eq!(
        fwd("10.0.0.1", &[r#"for="[2001:db8:cafe::17]:4711""#])
            .unwrap()
            .ip,
        ip("2001:db8:cafe::17")
    );
    assert_eq!(
        fwd("10.0.0.1", &[r#"For="192.0.2.43:47011";proto=https"#])
            .unwrap()
            .ip,
        ip("192.0.2.43")
    );
    assert_eq!(
        fwd(
            "10.0.0.1",
            &["for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http"]
        )
        .unwrap()
        .ip,
        ip("198.51.100.17")
    );
    assert_eq!(
        fwd("10.0.0.1", &[r#"for=192.0.2.43;x="a,b", for=10.0.0.3"#])
            .unwrap()
            .ip,
        ip("192.0.2.43")
    );
}

#[test]
fn forwarded_unknown_and_obfuscated_stop_the_walk() {
    // Rightmost is opaque: nothing could be read, so refused.
    assert!(fwd("10.0.0.1", &["for=192.0.2.1, for=unknown"]).is_err());
    // Behind a trusted hop: that hop is the last readable address; 192.0.2.1 is never believed.
    let c = fwd("10.0.0.1", &["for=192.0.2.1, for=_hidden, for=10.0.0.4"]).unwrap();
    assert_eq!((c.ip, c.from_header), (ip("10.0.0.4"), true));
    assert!(c.note.is_some());
    assert!(fwd("10.0.0.1", &["for=192.0.2.1, proto=https"]).is_err());
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
        assert!(fwd("10.0.0.1", &[v]).is_err(), "{v:?}");
    }
}

#[test]
fn single_address_headers() {
    let h = ClientIpHeader::from_name("X-Real-IP");
    let t = trusted(&["10.0.0.0/8"]);
    let one = |values: &[&str]| client_addr(ip("10.0.0.1"), &h, values, &t);
    assert_eq!(one(&["203.0.113.9"]).unwrap().ip, ip("203.0.113.9"));
    assert_eq!(one(&[" 2001:db8::1 "]).unwrap().ip, ip("2001:db8::1"));
    // Trusted or not, the value is taken as it is.
    assert_eq!(one(&["10.9.9.9"]).unwrap().ip, ip("10.9.9.9"));
    assert_eq!(one(&[]), Err(Unreadable::Missing));
    for bad in [
        &["1.2.3.4:80"][..],
        &["a, b"],
        &[""],
        &["1.2.3.4", "5.6.7.8"],
        &["1.2.3.4,5.6.7.8"],
    ] {
        assert!(matches!(one(bad), Err(Unreadable::Malformed(_))), "{bad:?}");
    }
}

#[test]
fn list_headers_accept_ports() {
    assert_eq!(
        xff("10.0.0.1", &["203.0.113.9:4711"]).unwrap().ip,
        ip("203.0.113.9")
    );
    assert_eq!(
        xff("10.0.0.1", &["[2001:db8::1]:4711"]).unwrap().ip,
        ip("2001:db8::1")
    );
    assert_eq!(
        xff("10.0.0.1", &["203.0.113.9, 10.0.0.3:80"]).unwrap().ip,
        ip("203.0.113.9")
    );
}

#[test]
fn the_nearest_proxy_says_the_scheme() {
    assert_eq!(proxied_https(&["https"], &[]), Some(true));
    assert_eq!(proxied_https(&["HTTP"], &[]), Some(false));
    // The rightmost entry of the last line: the proxy nearest the app.
    assert_eq!(proxied_https(&["http, https"], &[]), Some(true));
    assert_eq!(proxied_https(&["https", " http "], &[]), Some(false));
    assert_eq!(proxied_https(&["ftp"], &[]), None);
    assert_eq!(proxied_https(&[""], &[]), None);
    // X-Forwarded-Proto, when sent, decides; else Forwarded's last element.
    assert_eq!(
        proxied_https(&["http"], &["for=1.2.3.4;proto=https"]),
        Some(false)
    );
    assert_eq!(
        proxied_https(
            &[],
            &["for=1.2.3.4;proto=http, for=5.6.7.8;Proto=\"https\""]
        ),
        Some(true)
    );
    assert_eq!(proxied_https(&[], &["proto=https, for=5.6.7.8"]), None);
    assert_eq!(proxied_https(&[], &["proto=https;proto=http"]), None);
    // Text left of the nearest element is never read.
    assert_eq!(proxied_https(&[], &["for=\"x, proto=https"]), Some(true));
    assert_eq!(proxied_https(&[], &[]), None);
}

use proptest::prelude::*;

fn headers() -> [ClientIpHeader; 3] {
    [
        ClientIpHeader::XForwardedFor,
        ClientIpHeader::Forwarded,
        ClientIpHeader::from_name("X-Real-IP"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any header content from an untrusted peer leaves the peer as the client.
    #[test]
    fn untrusted_peer_is_always_the_client(
        peer in any::<u32>().prop_filter("untrusted", |a| a >> 24 != 10),
        kind in 0usize..3,
        values in prop::collection::vec(".{0,80}", 0..4),
    ) {
        let peer = IpAddr::from(std::net::Ipv4Addr::from(peer));
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let c = client_addr(peer, &headers()[kind], &values, &trusted(&["10.0.0.0/8"])).unwrap();
        prop_assert_eq!((c.ip, c.from_header), (peer, false));
    }

    /// From a trusted peer, arbitrary content never panics, and never yields the proxy
    /// itself: either an address read from the header, or a refusal.
    #[test]
    fn trusted_peer_never_panics_or_passes_as_the_proxy(
        kind in 0usize..3,
        values in prop::collection::vec(".{0,80}", 0..4),
    ) {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        if let Ok(c) = client_addr(ip("10.0.0.1"), &headers()[kind], &values, &trusted(&["10.0.0.0/8"])) {
            prop_assert!(c.from_header);
        }
    }

    /// Whatever a client writes, the entry its proxy appends (same line or a line of its
    /// own) decides.
    #[test]
    fn the_proxys_entry_decides_whatever_the_client_wrote(
        junk in prop::collection::vec(any::<char>(), 0..60),
        client in any::<u32>().prop_filter("untrusted", |a| a >> 24 != 10),
        forwarded in any::<bool>(),
        own_line in any::<bool>(),
    ) {
        let junk: String = junk.into_iter().collect();
        let client = IpAddr::from(std::net::Ipv4Addr::from(client));
        let entry = if forwarded { format!("for={client}") } else { client.to_string() };
        let header = if forwarded { ClientIpHeader::Forwarded } else { ClientIpHeader::XForwardedFor };
        let joined = format!("{junk}, {entry}");
        let values: Vec<&str> = if own_line { vec![&junk, &entry] } else { vec![&joined] };
        let c = client_addr(ip("10.0.0.1"), &header, &values, &trusted(&["10.0.0.0/8"]));
        prop_assert_eq!(c.map(|c| c.ip), Ok(client));
    }
}
