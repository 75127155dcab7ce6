//! `trusted_hops`: the README's set-ups table (Google Cloud HTTPS load balancer, AWS ALB,
//! Cloudflare in front of an ALB, nginx), each through a launched app with the headers
//! those balancers send, and what the wrong hop count does (off by one either way).

mod common;

use common::http::{serve, Server};
use common::*;
use rocket::{get, routes};
use rocket_allow::{AllowFairing, ClientIp};

/// The client the app decided on.
#[get("/who")]
fn who(ip: ClientIp) -> String {
    ip.to_string()
}

/// The balancer is 127.0.0.2; clients that reach the app directly are 127.0.0.3.
fn launch(hops: Option<usize>, header: &str) -> Server {
    let hops = hops.map_or(String::new(), |n| format!("trusted_hops = {n}"));
    serve(
        rocket::custom(figment(&format!(
            r#"
            [default.allow]
            trusted_proxies = ["127.0.0.2"]
            client_ip_header = "{header}"
            {hops}
            rules = []
            "#
        )))
        .attach(AllowFairing::fairing())
        .mount("/", routes![who]),
    )
}

/// The client the app sees for a request from the balancer carrying `value`, or the
/// refusal status.
fn seen(server: &Server, header: &str, value: &str) -> Result<String, u16> {
    let line = format!("{header}: {value}");
    let res = server.request_from("127.0.0.2", "GET", "/who", &[line.as_bytes()]);
    match res.status {
        200 => Ok(res.body),
        other => Err(other),
    }
}

/// One row of the set-ups table: what the balancer chain delivers for a client at
/// 203.0.113.9 that sent `X-Forwarded-For: 6.6.6.6` itself.
struct SetUp {
    name: &'static str,
    header: &'static str,
    hops: usize,
    /// The header as it reaches the app.
    value: &'static str,
    /// The same without the client's own header.
    honest: &'static str,
    /// The address one hop too few gives (a balancer: every client looks the same).
    too_few: &'static str,
}

const SET_UPS: &[SetUp] = &[
    SetUp {
        name: "Google Cloud HTTPS load balancer",
        header: "X-Forwarded-For",
        hops: 2,
        value: "6.6.6.6, 203.0.113.9, 34.120.0.1",
        honest: "203.0.113.9, 34.120.0.1",
        too_few: "34.120.0.1",
    },
    SetUp {
        name: "AWS ALB",
        header: "X-Forwarded-For",
        hops: 1,
        value: "6.6.6.6, 203.0.113.9",
        honest: "203.0.113.9",
        too_few: "",
    },
    SetUp {
        name: "Cloudflare, then an AWS ALB",
        header: "X-Forwarded-For",
        hops: 2,
        value: "6.6.6.6, 203.0.113.9, 172.70.1.1",
        honest: "203.0.113.9, 172.70.1.1",
        too_few: "172.70.1.1",
    },
    SetUp {
        name: "nginx ($proxy_add_x_forwarded_for)",
        header: "X-Forwarded-For",
        hops: 1,
        value: "6.6.6.6, 203.0.113.9",
        honest: "203.0.113.9",
        too_few: "",
    },
    SetUp {
        name: "a proxy appending RFC 7239 Forwarded",
        header: "Forwarded",
        hops: 1,
        value: "for=6.6.6.6, for=203.0.113.9",
        honest: "for=203.0.113.9",
        too_few: "",
    },
];

#[test]
fn each_set_up_finds_the_client_and_the_wrong_count_does_not() {
    for s in SET_UPS {
        let right = launch(Some(s.hops), s.header);
        assert_eq!(
            seen(&right, s.header, s.value).as_deref(),
            Ok("203.0.113.9"),
            "{}",
            s.name
        );
        assert_eq!(
            seen(&right, s.header, s.honest).as_deref(),
            Ok("203.0.113.9"),
            "{}",
            s.name
        );
        // A client reaching the app directly is itself, whatever it sends.
        let line = format!("{}: 203.0.113.9", s.header);
        let direct = right.request_from("127.0.0.3", "GET", "/who", &[line.as_bytes()]);
        assert_eq!(direct.body, "127.0.0.3", "{}", s.name);
        right.stop().unwrap();

        // One too many: the client picks its address (the value it sent), and a client that
        // sent none is refused (fewer addresses than the count).
        let over = launch(Some(s.hops + 1), s.header);
        assert_eq!(
            seen(&over, s.header, s.value).as_deref(),
            Ok("6.6.6.6"),
            "{}",
            s.name
        );
        assert_eq!(seen(&over, s.header, s.honest), Err(403), "{}", s.name);
        over.stop().unwrap();

        // One too few: a balancer's own address (every client the same), or 0, which
        // ignite refuses.
        if s.hops > 1 {
            let under = launch(Some(s.hops - 1), s.header);
            assert_eq!(
                seen(&under, s.header, s.value).as_deref(),
                Ok(s.too_few),
                "{}",
                s.name
            );
            under.stop().unwrap();
        }
    }
}

#[test]
fn the_walk_cannot_serve_a_balancer_whose_addresses_are_not_listed() {
    // Google Cloud without a hop count: its front ends' addresses are not in
    // trusted_proxies, so the walk stops at the balancer's entry.
    let walk = launch(None, "X-Forwarded-For");
    assert_eq!(
        seen(&walk, "X-Forwarded-For", SET_UPS[0].value).as_deref(),
        Ok("34.120.0.1")
    );
    walk.stop().unwrap();
}

#[test]
fn unreadable_hops_are_refused() {
    let s = launch(Some(2), "X-Forwarded-For");
    // Garbage at or right of the counted hop: refused. Left of it: never read.
    assert_eq!(
        seen(&s, "X-Forwarded-For", "203.0.113.9, garbage"),
        Err(403)
    );
    assert_eq!(seen(&s, "X-Forwarded-For", "garbage, 34.120.0.1"), Err(403));
    assert_eq!(
        seen(&s, "X-Forwarded-For", "gar\"bage, 203.0.113.9, 34.120.0.1").as_deref(),
        Ok("203.0.113.9")
    );
    assert_eq!(seen(&s, "X-Forwarded-For", ""), Err(403));
    // Lines are one list, as for the walk.
    let lines: [&[u8]; 2] = [
        b"X-Forwarded-For: 6.6.6.6, 203.0.113.9",
        b"X-Forwarded-For: 34.120.0.1",
    ];
    assert_eq!(
        s.request_from("127.0.0.2", "GET", "/who", &lines).body,
        "203.0.113.9"
    );
    s.stop().unwrap();
    let f = launch(Some(1), "Forwarded");
    assert_eq!(
        seen(&f, "Forwarded", "for=203.0.113.9, for=unknown"),
        Err(403)
    );
    assert_eq!(
        seen(&f, "Forwarded", "for=\"[2001:db8::1]:4711\"").as_deref(),
        Ok("2001:db8::1")
    );
    f.stop().unwrap();
}

#[test]
fn ignite_refuses_counts_it_cannot_use() {
    for (extra, needles) in [
        (
            "trusted_hops = 0",
            &["allow.trusted_hops", "0 is not within 1 to 32"][..],
        ),
        ("trusted_hops = 33", &["allow.trusted_hops", "33"]),
        (
            "trusted_hops = 1\nclient_ip_header = \"X-Real-IP\"",
            &["allow.trusted_hops", "X-Real-IP"],
        ),
    ] {
        ignite_error(
            rocket::custom(figment(&format!(
                "[default.allow]\nrules = []\ntrusted_proxies = [\"10.0.0.1\"]\n{extra}"
            )))
            .attach(AllowFairing::fairing()),
            needles,
        );
    }
}

#[test]
fn the_count_decides_even_where_the_walk_would_skip_trusted_entries() {
    let s = serve(
        rocket::custom(figment(
            r#"
            [default.allow]
            trusted_proxies = ["127.0.0.2", "34.120.0.0/16"]
            trusted_hops = 1
            rules = []
            "#,
        ))
        .attach(AllowFairing::fairing())
        .mount("/", routes![who]),
    );
    // The walk would skip 34.120.0.1 (trusted) and take 203.0.113.9; the count takes the
    // rightmost. trusted_proxies only says which peers' headers are read.
    assert_eq!(
        seen(&s, "X-Forwarded-For", "203.0.113.9, 34.120.0.1").as_deref(),
        Ok("34.120.0.1")
    );
    s.stop().unwrap();
}

/// What Rocket's own `client_ip()` (its `IpAddr` guard) says: what other crates see.
#[get("/rocket")]
fn rocket_ip(ip: std::net::IpAddr) -> String {
    ip.to_string()
}

#[test]
fn an_attacker_cannot_pick_the_counted_hop_nor_what_other_crates_see() {
    let s = serve(
        rocket::custom(figment(
            r#"
            [default.allow]
            trusted_proxies = ["127.0.0.2"]
            trusted_hops = 2
            rules = [{ deny = "203.0.113.66" }]
            "#,
        ))
        .attach(AllowFairing::fairing())
        .mount("/", routes![who, rocket_ip]),
    );
    let xff = |v: &str| seen(&s, "X-Forwarded-For", v);
    // Thousands of entries the client wrote: only the two on the right are read.
    let long = format!("{}203.0.113.9, 34.120.0.1", "1.1.1.1, ".repeat(3000));
    assert_eq!(xff(&long).as_deref(), Ok("203.0.113.9"));
    // Empty entries, zones and junk at or right of the counted hop: refused.
    for bad in [
        "203.0.113.9,, 34.120.0.1",
        "203.0.113.9, 34.120.0.1,",
        ", 34.120.0.1",
        "fe80::1%eth0, 34.120.0.1",
        "203.0.113.9, 34.120.0.1 x",
        "203.0.113.9 34.120.0.1",
        "34.120.0.1",
    ] {
        assert_eq!(xff(bad), Err(403), "{bad:?}");
    }
    // Ports and brackets as balancers write them; IPv4-mapped is IPv4.
    assert_eq!(
        xff("[2001:db8::5]:443, 34.120.0.1").as_deref(),
        Ok("2001:db8::5")
    );
    assert_eq!(
        xff("203.0.113.9:5555, 34.120.0.1").as_deref(),
        Ok("203.0.113.9")
    );
    assert_eq!(xff("::ffff:203.0.113.66, 34.120.0.1"), Err(403));
    // A line Rocket drops (not UTF-8) leaves no header: refused, not decided on the peer.
    let res = s.request_from(
        "127.0.0.2",
        "GET",
        "/who",
        &[b"X-Forwarded-For: 203.0.113.9, \xff, 34.120.0.1"],
    );
    assert_eq!(res.status, 403);
    // A client reaching the app directly: its header is not read at all.
    let direct = s.request_from(
        "127.0.0.3",
        "GET",
        "/who",
        &[b"X-Forwarded-For: 203.0.113.9, 34.120.0.1"],
    );
    assert_eq!(direct.body, "127.0.0.3");
    // What Rocket's client_ip() says: the client decided on, whatever X-Real-IP says.
    for (from, headers) in [
        (
            "127.0.0.2",
            &[
                &b"X-Forwarded-For: 6.6.6.6, 203.0.113.9, 34.120.0.1"[..],
                b"X-Real-IP: 6.6.6.6",
            ][..],
        ),
        (
            "127.0.0.2",
            &[
                b"X-Real-IP: 6.6.6.6",
                b"X-Forwarded-For: 203.0.113.9, 34.120.0.1",
                b"X-Real-IP: 7.7.7.7",
            ],
        ),
        (
            "127.0.0.2",
            &[
                b"x-real-ip: 6.6.6.6",
                b"X-Forwarded-For: 203.0.113.9, 34.120.0.1",
            ],
        ),
    ] {
        let res = s.request_from(from, "GET", "/rocket", headers);
        assert_eq!(
            (res.status, res.body.as_str()),
            (200, "203.0.113.9"),
            "{headers:?}"
        );
    }
    for headers in [
        &[&b"X-Real-IP: 6.6.6.6"[..]][..],
        &[b"X-Real-IP: 127.0.0.3"],
    ] {
        let res = s.request_from("127.0.0.3", "GET", "/rocket", headers);
        assert_eq!((res.status, res.body.as_str()), (200, "127.0.0.3"));
    }
    s.stop().unwrap();
}
