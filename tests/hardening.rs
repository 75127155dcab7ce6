//! Refusals that must hold against an attacker: every method, garbled forwarding headers
//! (including bytes Rocket drops before a fairing sees them), and fairings attached after ours.
//! Where the local client cannot express the input, raw bytes go to a launched app over TCP.

mod common;

use std::sync::atomic::Ordering;

use common::http::serve;
use common::*;
use rocket::fairing::AdHoc;
use rocket::http::{Header, Method, Status};
use rocket::{head, routes, State};

#[head("/<_..>")]
fn head_any(hits: &State<Hits>) -> &'static str {
    hits.0.fetch_add(1, Ordering::SeqCst);
    "head route ran"
}

#[head("/<a>/<b>", rank = 1)]
fn head_two(a: &str, b: &str, hits: &State<Hits>) -> &'static str {
    let _ = (a, b);
    hits.0.fetch_add(1, Ordering::SeqCst);
    "head route ran"
}

#[rocket::route(GET, uri = "/<_..>", rank = 50)]
fn get_any(hits: &State<Hits>) -> &'static str {
    hits.0.fetch_add(1, Ordering::SeqCst);
    "route ran"
}

#[rocket::post("/<_..>")]
fn post_any(hits: &State<Hits>) -> &'static str {
    hits.0.fetch_add(1, Ordering::SeqCst);
    "post route ran"
}

const LOCALHOST_ONLY: &str = r#"
[default.allow]
rules = [{ allow = "127.0.0.1" }, { deny = "all" }]
"#;

#[test]
fn refused_head_never_reaches_head_routes_local_client() {
    let client = client(app(LOCALHOST_ONLY).mount("/", routes![head_any, head_two]));
    // The HEAD routes really serve an allowed client...
    let ok = client.head("/a/b").remote(addr("127.0.0.1:1")).dispatch();
    assert_eq!(ok.status(), Status::Ok);
    assert_eq!(hits(&client), 1);
    // ...and never a refused one, whatever the path.
    for path in ["/", "/a", "/a/b", "/a/b/c", "/__rocket_allow/refused"] {
        let res = client.head(path).remote(addr("192.0.2.1:1")).dispatch();
        assert_eq!(res.status(), Status::Forbidden, "HEAD {path}");
        assert!(res.into_string().unwrap_or_default().is_empty());
    }
    assert_eq!(hits(&client), 1);
}

#[test]
fn refused_head_never_reaches_head_routes_over_http() {
    // Over TCP the peer is 127.0.0.1; this app refuses it.
    let server = serve(
        app("[default.allow]\nrules = [{ deny = \"127.0.0.1\" }]")
            .mount("/", routes![head_any, head_two, get_any]),
    );
    for path in ["/", "/a", "/a/b", "/x/y/z"] {
        let res = server.request("HEAD", path, &[]);
        assert_eq!(res.status, 403, "HEAD {path}: {res:?}");
        assert!(res.body.is_empty(), "{res:?}");
    }
    let rocket = server
        .stop()
        .expect("clean shutdown")
        .expect("no connection outstanding");
    assert_eq!(rocket.state::<Hits>().unwrap().0.load(Ordering::SeqCst), 0);
}

/// The proxy (10.0.0.1 locally, 127.0.0.1 over TCP) is itself admitted: Flask-Allow's use case.
fn proxy_admitted(header: &str, extra: &str) -> String {
    format!(
        r#"
        [default.allow]
        trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
        client_ip_header = "{header}"
        rules = [{{ allow = "10.0.0.0/8" }}, {{ allow = "127.0.0.1" }}, {{ allow = "198.51.100.0/24" }}, {{ deny = "all" }}]
        {extra}
        "#
    )
}

/// The proxy is trusted but not admitted: a 200 proves the client was read from the header.
fn proxy_refused(header: &str) -> String {
    format!(
        r#"
        [default.allow]
        trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
        client_ip_header = "{header}"
        rules = [{{ allow = "198.51.100.0/24" }}, {{ deny = "all" }}]
        "#
    )
}

#[test]
fn invalid_utf8_in_forwarding_header_is_refused_over_http() {
    let server = serve(app(&proxy_admitted("X-Forwarded-For", "")).mount("/", routes![get_any]));
    // The client sent `\xff`; its proxy appended the address it saw. Rocket drops the header.
    let res = server.request("GET", "/", &[b"X-Forwarded-For: \xff, 203.0.113.5"]);
    assert_eq!(res.status, 403, "{res:?}");
    // A readable one still works both ways.
    let res = server.request("GET", "/", &[b"X-Forwarded-For: 203.0.113.5"]);
    assert_eq!(res.status, 403, "{res:?}");
    let res = server.request("GET", "/", &[b"X-Forwarded-For: 198.51.100.7"]);
    assert_eq!(res.status, 200, "{res:?}");
    // A client's broken line does not spoil the line its proxy added after it.
    let res = server.request(
        "GET",
        "/",
        &[
            b"X-Forwarded-For: \xff\xfe",
            b"X-Forwarded-For: 198.51.100.7",
        ],
    );
    assert_eq!(res.status, 200, "{res:?}");
    let rocket = server
        .stop()
        .expect("clean shutdown")
        .expect("no connection outstanding");
    assert_eq!(rocket.state::<Hits>().unwrap().0.load(Ordering::SeqCst), 2);
}

#[test]
fn unreadable_headers_from_a_trusted_proxy_are_refused() {
    let cases: &[(&str, &[&str])] = &[
        ("X-Forwarded-For", &[""]),
        ("X-Forwarded-For", &[" "]),
        ("X-Forwarded-For", &["garbage"]),
        ("X-Forwarded-For", &["1.2.3.4,"]),
        ("X-Forwarded-For", &["203.0.113.5:99999"]),
        ("X-Forwarded-For", &[&vec!["10.0.0.5"; 40].join(",")]),
        ("Forwarded", &["for=\""]),
        ("Forwarded", &["for=unknown"]),
        ("Forwarded", &["for=_hidden"]),
        ("Forwarded", &["proto=https"]),
        ("Forwarded", &["for=203.0.113.5, for=\""]),
        ("Forwarded", &["for=\"\\"]),
        ("X-Real-IP", &["203.0.113.5", "203.0.113.6"]),
        ("X-Real-IP", &["garbage"]),
        ("X-Real-IP", &[""]),
    ];
    for (header, values) in cases {
        let client = client(app(&proxy_admitted(header, "")));
        let mut req = client.get("/").remote(addr("10.0.0.1:1"));
        for v in *values {
            req.add_header(Header::new(header.to_string(), v.to_string()));
        }
        assert_eq!(
            req.dispatch().status(),
            Status::Forbidden,
            "{header}: {values:?}"
        );
    }
}

#[test]
fn forwarded_is_read_from_the_last_line_back() {
    // The proxy is not admitted here, so a 200 can only come from reading the client.
    let client = client(app(&proxy_refused("Forwarded")));
    let ok = |values: &[&str]| {
        let mut req = client.get("/").remote(addr("10.0.0.1:1"));
        for v in values {
            req.add_header(Header::new("Forwarded", v.to_string()));
        }
        req.dispatch().status()
    };
    // Broken client text to the left of the entry that decides never matters.
    assert_eq!(ok(&["for=\"", "for=198.51.100.7"]), Status::Ok);
    assert_eq!(ok(&["for=\", for=198.51.100.7"]), Status::Ok);
    assert_eq!(ok(&["for=\"\\", "for=198.51.100.7"]), Status::Ok);
    assert_eq!(ok(&["for=\", for=203.0.113.5"]), Status::Forbidden);
    assert_eq!(ok(&["for=\"", "for=203.0.113.5"]), Status::Forbidden);
    // Quoted IPv6 with a port, and a comma inside a quoted value to the right.
    assert_eq!(ok(&["garbage\"", "for=198.51.100.7;x=\"a,b\""]), Status::Ok);
}

#[test]
fn missing_header_from_a_trusted_proxy_is_refused_unless_configured() {
    let client1 = client(app(&proxy_admitted("X-Forwarded-For", "")));
    assert_eq!(status(&client1, "10.0.0.1:1", &[]), Status::Forbidden);
    // An untrusted (but admitted) peer without the header is fine.
    assert_eq!(status(&client1, "198.51.100.9:1", &[]), Status::Ok);
    let client2 = client(app(&proxy_admitted(
        "X-Forwarded-For",
        "missing_header = \"peer\"",
    )));
    assert_eq!(status(&client2, "10.0.0.1:1", &[]), Status::Ok);
    // Opting in changes nothing for garbled headers.
    assert_eq!(
        status(&client2, "10.0.0.1:1", &[("X-Forwarded-For", "garbage")]),
        Status::Forbidden
    );
    let err = ignite_error(
        app(&proxy_admitted(
            "X-Forwarded-For",
            "missing_header = \"maybe\"",
        )),
        &["allow.missing_header"],
    );
    assert!(err.contains("maybe"), "{err}");
}

#[test]
fn ports_in_list_headers_from_trusted_proxies() {
    let client = client(app(&proxy_refused("X-Forwarded-For")));
    for v in [
        "198.51.100.7:4711",
        "[2001:db8::1]:4711, 198.51.100.7:80",
        "203.0.113.5, 198.51.100.7:4711",
    ] {
        assert_eq!(
            status(&client, "10.0.0.1:1", &[("X-Forwarded-For", v)]),
            Status::Ok,
            "{v}"
        );
    }
    for v in ["203.0.113.5:4711", "198.51.100.7, [2001:db8::1]:4711"] {
        assert_eq!(
            status(&client, "10.0.0.1:1", &[("X-Forwarded-For", v)]),
            Status::Forbidden,
            "{v}"
        );
    }
}

/// A URL prefixer and a method override, attached after AllowFairing.
fn rewriters() -> [AdHoc; 2] {
    [
        AdHoc::on_request("prefixer", |req, _| {
            Box::pin(async move {
                let uri = format!("/app{}", req.uri());
                req.set_uri(rocket::http::uri::Origin::parse_owned(uri).unwrap());
            })
        }),
        AdHoc::on_request("method override", |req, _| {
            Box::pin(async move {
                if let Some(m) = req.headers().get_one("X-HTTP-Method-Override") {
                    if let Ok(m) = m.parse::<Method>() {
                        req.set_method(m);
                    }
                }
            })
        }),
    ]
}

#[test]
fn fairings_attached_after_ours_cannot_undo_a_refusal() {
    let [prefix, method] = rewriters();
    let rocket = app(LOCALHOST_ONLY)
        .attach(prefix)
        .attach(method)
        .mount("/app", routes![get_any, post_any]);
    let client = client(rocket);
    // The rewriters work for an allowed client...
    let ok = client
        .get("/x")
        .header(Header::new("X-HTTP-Method-Override", "POST"))
        .remote(addr("127.0.0.1:1"))
        .dispatch();
    assert_eq!(ok.into_string().unwrap(), "post route ran");
    assert_eq!(hits(&client), 1);
    // ...and cannot route a refused one anywhere.
    for (method, path) in [
        (Method::Get, "/x"),
        (Method::Post, "/x"),
        (Method::Get, "/__rocket_allow/refused"),
    ] {
        for ov in ["", "POST", "GET", "PUT"] {
            let mut req = client.req(method, path).remote(addr("192.0.2.1:1"));
            if !ov.is_empty() {
                req.add_header(Header::new("X-HTTP-Method-Override", ov));
            }
            let res = req.dispatch();
            assert_eq!(res.status(), Status::Forbidden, "{method} {path} {ov}");
            assert_eq!(res.into_string().unwrap(), "custom 403 page");
        }
    }
    assert_eq!(hits(&client), 1);
}

#[test]
fn trusted_proxies_wider_than_anyone_should_trust_warn_at_ignite() {
    let _client = client(app(r#"
        [default.allow]
        trusted_proxies = ["10.0.0.0/8", "all", "::/0", "0.0.0.0/0", "128.0.0.0/1"]
        rules = []
    "#));
    for (i, entry) in [
        (1, "`all`"),
        (2, "`::/0`"),
        (3, "`0.0.0.0/0`"),
        (4, "`128.0.0.0/1`"),
    ] {
        let key = format!("allow.trusted_proxies[{i}]");
        let lines = logged(&key);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(entry) && l.contains("any client")),
            "{key}: {lines:?}"
        );
    }
    assert!(logged("allow.trusted_proxies[0]").is_empty());
}
