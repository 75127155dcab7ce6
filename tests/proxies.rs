//! Behind reverse proxies: the real client address, and no way to spoof it.

mod common;

use common::*;
use proptest::prelude::*;
use rocket::http::Status;
use rocket::local::blocking::Client;

/// Proxies live in 10.0.0.0/8 and on ::1; only 203.0.113.0/24 and 2001:db8::/32 may enter.
/// The proxies themselves are not allowed either.
fn proxied(header: &str) -> String {
    format!(
        r#"
        [default.allow]
        default = "deny"
        trusted_proxies = ["10.0.0.0/8", "::1"]
        client_ip_header = "{header}"
        rules = [{{ allow = "203.0.113.0/24" }}, {{ allow = "2001:db8::/32" }}, {{ deny = "all" }}]
        "#
    )
}

const SPOOFS: &[(&str, &str)] = &[
    ("X-Forwarded-For", "203.0.113.5"),
    ("Forwarded", "for=203.0.113.5"),
    ("X-Real-IP", "203.0.113.5"),
    ("CF-Connecting-IP", "203.0.113.5"),
    ("True-Client-IP", "203.0.113.5"),
];

#[test]
fn without_trusted_proxies_every_header_is_ignored() {
    let client = client(app(r#"
        [default.allow]
        default = "deny"
        rules = [{ allow = "203.0.113.0/24" }]
    "#));
    for h in SPOOFS {
        assert_eq!(
            status(&client, "192.0.2.1:1", &[*h]),
            Status::Forbidden,
            "{h:?}"
        );
        assert_eq!(
            status(&client, "10.0.0.1:1", &[*h]),
            Status::Forbidden,
            "{h:?}"
        );
    }
    // And an allowed client stays allowed whatever it claims.
    assert_eq!(
        status(&client, "203.0.113.9:1", &[("X-Real-IP", "192.0.2.1")]),
        Status::Ok
    );
}

#[test]
fn untrusted_peers_cannot_spoof_any_header_kind() {
    for header in [
        "X-Forwarded-For",
        "Forwarded",
        "X-Real-IP",
        "CF-Connecting-IP",
    ] {
        let client = client(app(&proxied(header)));
        for h in SPOOFS {
            assert_eq!(
                status(&client, "192.0.2.1:1", &[*h]),
                Status::Forbidden,
                "{header}: {h:?}"
            );
            assert_eq!(
                status(&client, "[2001:db9::1]:1", &[*h]),
                Status::Forbidden,
                "{header}: {h:?}"
            );
        }
    }
}

#[test]
fn x_forwarded_for_chains() {
    let client = client(app(&proxied("X-Forwarded-For")));
    let ok = |peer, xff| status(&client, peer, &[("X-Forwarded-For", xff)]);
    // One proxy: the client is the rightmost entry.
    assert_eq!(ok("10.0.0.1:1", "203.0.113.5"), Status::Ok);
    assert_eq!(ok("10.0.0.1:1", "192.0.2.5"), Status::Forbidden);
    // Several trusted hops are skipped.
    assert_eq!(
        ok("10.0.0.1:1", "203.0.113.5, 10.0.0.2, 10.9.9.9"),
        Status::Ok
    );
    // A spoofed leftmost entry is never believed: the rightmost untrusted one decides.
    assert_eq!(
        ok("10.0.0.1:1", "203.0.113.5, 192.0.2.66, 10.0.0.2"),
        Status::Forbidden
    );
    // Several header lines are one list, in order.
    let lines = [
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-For", "192.0.2.1, 10.0.0.3"),
    ];
    assert_eq!(status(&client, "10.0.0.1:1", &lines), Status::Forbidden);
    let lines = [
        ("X-Forwarded-For", "192.0.2.1"),
        ("X-Forwarded-For", "203.0.113.5, 10.0.0.3"),
    ];
    assert_eq!(status(&client, "10.0.0.1:1", &lines), Status::Ok);
    // Every hop trusted: the leftmost is the client (here a proxy, which is not allowed).
    assert_eq!(ok("10.0.0.1:1", "10.0.0.7, 10.0.0.8"), Status::Forbidden);
    // IPv6 proxy and client.
    assert_eq!(ok("[::1]:1", "2001:db8::7"), Status::Ok);
    // No header from a trusted proxy: the proxy itself is the client.
    assert_eq!(status(&client, "10.0.0.1:1", &[]), Status::Forbidden);
}

#[test]
fn all_trusted_chain_takes_the_leftmost() {
    let client = client(app(r#"
        [default.allow]
        default = "deny"
        trusted_proxies = ["10.0.0.0/8"]
        rules = [{ allow = "10.0.0.7" }]
    "#));
    assert_eq!(
        status(
            &client,
            "10.0.0.1:1",
            &[("X-Forwarded-For", "10.0.0.7, 10.0.0.8")]
        ),
        Status::Ok
    );
    assert_eq!(
        status(
            &client,
            "10.0.0.1:1",
            &[("X-Forwarded-For", "10.0.0.8, 10.0.0.7")]
        ),
        Status::Forbidden
    );
}

#[test]
fn malformed_empty_and_huge_headers_are_refused() {
    let client = client(app(&proxied("X-Forwarded-For")));
    let huge_trusted = vec!["10.0.0.9"; 10_000].join(",");
    for bad in [
        "",
        "garbage",
        "203.0.113.5:99999",
        "203.0.113.5,",
        ",",
        "203.0.113.5;x",
        "\u{7f}",
        &huge_trusted,
    ] {
        assert_eq!(
            status(&client, "10.0.0.1:1", &[("X-Forwarded-For", bad)]),
            Status::Forbidden,
            "{bad:?}"
        );
    }
    // A huge spoofed prefix does not hide the real client the proxy appended.
    let huge_spoof = format!("{}, 203.0.113.5", vec!["192.0.2.1"; 10_000].join(","));
    assert_eq!(
        status(&client, "10.0.0.1:1", &[("X-Forwarded-For", &huge_spoof)]),
        Status::Ok
    );
    // Never a fallback to the peer: a client must not pass as its (admitted) proxy.
    let allow_peer = client_allowing_proxy();
    assert_eq!(
        status(&allow_peer, "10.0.0.1:1", &[("X-Forwarded-For", "garbage")]),
        Status::Forbidden
    );
}

fn client_allowing_proxy() -> Client {
    client(app(r#"
        [default.allow]
        default = "deny"
        trusted_proxies = ["10.0.0.0/8"]
        rules = [{ allow = "10.0.0.1" }]
    "#))
}

#[test]
fn mapped_addresses_in_peers_and_headers() {
    let client = client(app(&proxied("X-Forwarded-For")));
    assert_eq!(
        status(
            &client,
            "[::ffff:10.0.0.1]:1",
            &[("X-Forwarded-For", "::ffff:203.0.113.5")]
        ),
        Status::Ok
    );
    assert_eq!(
        status(
            &client,
            "[::ffff:10.0.0.1]:1",
            &[("X-Forwarded-For", "203.0.113.5, ::ffff:10.2.2.2")]
        ),
        Status::Ok
    );
    assert_eq!(
        status(
            &client,
            "[::ffff:192.0.2.1]:1",
            &[("X-Forwarded-For", "203.0.113.5")]
        ),
        Status::Forbidden
    );
}

#[test]
fn forwarded_header() {
    let client = client(app(&proxied("Forwarded")));
    let fwd = |v| status(&client, "10.0.0.1:1", &[("Forwarded", v)]);
    assert_eq!(fwd("for=203.0.113.5"), Status::Ok);
    assert_eq!(fwd(r#"for="[2001:db8:cafe::17]:4711""#), Status::Ok);
    assert_eq!(
        fwd(r#"for="203.0.113.5:4711";proto=https;by=10.0.0.1"#),
        Status::Ok
    );
    assert_eq!(
        fwd("for=192.0.2.1, for=203.0.113.5, for=10.0.0.2"),
        Status::Ok
    );
    assert_eq!(fwd("for=203.0.113.5, for=192.0.2.1"), Status::Forbidden);
    // Unknown and obfuscated hops stop the walk: the spoofable address left of them is never used.
    assert_eq!(fwd("for=203.0.113.5, for=unknown"), Status::Forbidden);
    assert_eq!(
        fwd("for=203.0.113.5, for=_hidden, for=10.0.0.2"),
        Status::Forbidden
    );
    // Malformed: unquoted IPv6, bad port, unclosed quote.
    for bad in [
        "for=2001:db8::1",
        "for=203.0.113.5:99999",
        "for=\"203.0.113.5",
        "for=",
    ] {
        assert_eq!(fwd(bad), Status::Forbidden, "{bad}");
    }
}

#[test]
fn single_address_headers() {
    for header in ["X-Real-IP", "CF-Connecting-IP"] {
        let client = client(app(&proxied(header)));
        let one = |v| status(&client, "10.0.0.1:1", &[(header, v)]);
        assert_eq!(one("203.0.113.5"), Status::Ok, "{header}");
        assert_eq!(one("2001:db8::5"), Status::Ok, "{header}");
        assert_eq!(one("192.0.2.5"), Status::Forbidden, "{header}");
        // A list or a port where one address belongs: refused.
        assert_eq!(one("203.0.113.5, 192.0.2.5"), Status::Forbidden, "{header}");
        assert_eq!(one("203.0.113.5:80"), Status::Forbidden, "{header}");
        // X-Forwarded-For is not read when another header is configured.
        assert_eq!(
            status(&client, "10.0.0.1:1", &[("X-Forwarded-For", "203.0.113.5")]),
            Status::Forbidden
        );
    }
}

#[test]
fn log_shows_client_and_peer() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}\naccess_log = \"{}\"",
        proxied("X-Forwarded-For"),
        dir.path().join("a.log").display()
    );
    let client = client(app(&toml));
    status(
        &client,
        "10.0.0.1:1",
        &[("X-Forwarded-For", "203.0.113.5, 10.0.0.2")],
    );
    status(&client, "10.0.0.1:1", &[("X-Forwarded-For", "garbage")]);
    drop(client);
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[1].contains("- 203.0.113.5 via 10.0.0.1 allowed by rule #0"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(
            "-   ERROR - unknown-address via 10.0.0.1 denied (403) by unreadable client address \
             [malformed forwarding header entry from a trusted proxy] GET "
        ),
        "{}",
        lines[2]
    );
}

fn arb_untrusted_peer() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>()
            .prop_filter("not a trusted proxy", |a| a[0] != 10)
            .prop_map(|a| format!("{}:1", std::net::Ipv4Addr::from(a))),
        any::<u128>()
            .prop_map(std::net::Ipv6Addr::from)
            .prop_filter("not a trusted proxy", |a| {
                *a != std::net::Ipv6Addr::LOCALHOST
                    && a.to_ipv4_mapped().is_none_or(|v4| v4.octets()[0] != 10)
            })
            .prop_map(|a| format!("[{a}]:1")),
        Just("203.0.113.9:1".to_string()),
        Just("[2001:db8::9]:1".to_string()),
    ]
}

fn arb_header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,64}",
        "(for=)?(203\\.0\\.113\\.[0-9]{1,3}|10\\.0\\.0\\.[0-9]|\"\\[2001:db8::[0-9a-f]{1,4}\\]:[0-9]{1,5}\"|unknown|_x)(, ?)?",
        prop::collection::vec("(203\\.0\\.113\\.[0-9]{1,3}|10\\.0\\.0\\.1|::1|2001:db8::1|garbage)", 0..6)
            .prop_map(|v| v.join(", ")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever headers an untrusted peer sends, the verdict is the one its address alone gets.
    #[test]
    fn no_header_from_an_untrusted_peer_changes_the_verdict(
        peer in arb_untrusted_peer(),
        header_kind in 0usize..4,
        headers in prop::collection::vec(
            (prop::sample::select(vec!["X-Forwarded-For", "Forwarded", "X-Real-IP", "CF-Connecting-IP"]), arb_header_value()),
            0..4,
        ),
    ) {
        thread_local! {
            static CLIENTS: Vec<Client> = ["X-Forwarded-For", "Forwarded", "X-Real-IP", "CF-Connecting-IP"]
                .iter()
                .map(|h| client(app(&proxied(h))))
                .collect();
        }
        CLIENTS.with(|clients| {
            let client = &clients[header_kind];
            let alone = status(client, &peer, &[]);
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let with = status(client, &peer, &pairs);
            prop_assert_eq!(alone, with, "peer {} headers {:?}", peer, pairs);
            Ok(())
        })?;
    }
}
