//! Attack pass over issue 27's fixes (items 1, 3, 4, 7, 8, 9) on launched apps, raw HTTP.

mod common;

use common::admin::*;
use common::http::serve;

/// Item 3: a ban the page makes must never refuse the operator. IPv6 supernets and
/// IPv4-embedding prefixes whose `contains(127.0.0.1)` is false as an `IpNet`, but that the
/// ban table may still match 127.0.0.1 through (mapped space).
#[test]
fn no_v6_spelling_of_a_ban_locks_the_operator_out() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    for target in [
        "::/0",
        "::/1",
        "::/8",
        "::/80",
        "::ffff:0:0/95",
        "::ffff:7f00:0/104",
        "::ffff:127.0.0.1/128",
        "::7f00:1",
        "::127.0.0.0/104",
        "64:ff9b::7f00:1",
        "2002:7f00:1::/48",
        "127.0.0.1/0",
        "127.0.0.1/8",
    ] {
        let page = get(&server, "127.0.0.1", "/allow/bans");
        assert_eq!(page.status, 200, "locked out before {target}");
        let (cookie, token) = login(&page);
        let body = format!(
            "csrf={token}&target={}&duration=3600&reason=x",
            target.replace('/', "%2F").replace(':', "%3A")
        );
        let r = post_from_page(&server, "/allow/bans", &body, &cookie);
        let after = get(&server, "127.0.0.1", "/allow/").status;
        for b in allow.bans() {
            let _ = allow.unban(&b.target.to_string());
        }
        assert_eq!(
            after, 200,
            "ban {target} (answer {}) locked the operator out",
            r.status
        );
    }
    server.stop().unwrap();
}

/// Item 8: a token is bound to its cookie: no reuse across cookies, no case games, no
/// empty/short tokens; `Origin: null` and foreign schemes are refused.
#[test]
fn tokens_do_not_cross_cookies_and_null_origin_is_refused() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    let a = get(&server, "127.0.0.1", "/allow/bans");
    let b = get(&server, "127.0.0.1", "/allow/bans");
    let (ca, ta) = login(&a);
    let (cb, tb) = login(&b);
    assert_ne!(ca, cb);
    assert_ne!(ta, tb);
    let ban = |token: &str, cookie: &str, extra: &[String]| {
        let body = format!("csrf={token}&target=127.0.0.66&duration=60&reason=x");
        let mut h = vec![format!("Cookie: rocket_allow_csrf={cookie}")];
        h.extend_from_slice(extra);
        post(&server, "127.0.0.1", "/allow/bans", &body, &h).status
    };
    let origin = format!("Origin: http://127.0.0.1:{}", server.port);
    // Cross-cookie, upper-cased cookie/token, the cookie itself as token, empty token.
    for (t, c) in [
        (ta.clone(), cb.clone()),
        (tb.clone(), ca.clone()),
        (ta.to_uppercase(), ca.clone()),
        (ta.clone(), ca.to_uppercase()),
        (ca.clone(), ca.clone()),
        (String::new(), ca.clone()),
        (String::new(), String::new()),
        (ta[..32].to_string(), ca.clone()),
    ] {
        assert_eq!(
            ban(&t, &c, std::slice::from_ref(&origin)),
            403,
            "token {t} cookie {c}"
        );
        assert!(allow.bans().is_empty());
    }
    // Right pair, wrong origins.
    for o in [
        "Origin: null".to_string(),
        format!("Origin: https://127.0.0.1:{}", server.port),
        format!("Origin: http://127.0.0.1:{}.evil", server.port),
        "Origin: http://127.0.0.1".to_string(),
        format!("Origin: http://localhost:{}", server.port),
    ] {
        assert_eq!(ban(&ta, &ca, std::slice::from_ref(&o)), 403, "{o}");
        assert!(allow.bans().is_empty(), "{o}");
    }
    // Untrusted peer says https: the cookie stays plain, the https origin is refused.
    let spoof = [
        "X-Forwarded-Proto: https".to_string(),
        "Forwarded: for=127.0.0.1;proto=https".to_string(),
    ];
    let page = form_request(
        &server,
        "127.0.0.1",
        "GET",
        &format!("127.0.0.1:{}", server.port),
        "/allow/bans",
        "",
        &spoof,
    );
    assert!(!page.head.contains("Secure"), "{}", page.head);
    let mut h = spoof.to_vec();
    h.push(format!("Origin: https://127.0.0.1:{}", server.port));
    assert_eq!(ban(&ta, &ca, &h), 403);
    // The right pair and origin work.
    assert_eq!(ban(&ta, &ca, &[origin]), 303);
    server.stop().unwrap();
}

/// Item 4: `after=` values: bad ones are a 400 with the value as text, huge ones are fine.
#[test]
fn after_values_are_bounded_and_escaped() {
    let server = serve(admin_app(OPEN));
    for _ in 0..5 {
        assert_eq!(get(&server, "127.0.0.66", "/x").status, 403);
    }
    for (after, page_status) in [
        ("-1", 400),
        ("18446744073709551616", 400),
        ("99999999999999999999999999999", 400),
        ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", 400),
        ("", 400),
        ("1e3", 400),
        ("18446744073709551615", 200),
        ("0", 200),
        ("%2B3", 200),
        ("%203%20", 200),
    ] {
        let p = get(
            &server,
            "127.0.0.1",
            &format!("/allow/refused?after={after}"),
        );
        assert_eq!(p.status, page_status, "{after}: {}", p.body);
        assert!(!p.body.contains("<script>"), "{after}");
        let j = get(
            &server,
            "127.0.0.1",
            &format!("/allow/api/refused?after={after}"),
        );
        assert_eq!(j.status, page_status, "api {after}: {}", j.body);
        // JSON may carry the text; it must be served as JSON that no browser sniffs.
        assert!(
            header(&j, "Content-Type").is_some_and(|t| t.starts_with("application/json"))
                && header(&j, "X-Content-Type-Options") == Some("nosniff"),
            "{after}: {}",
            j.head
        );
        if page_status == 200 {
            assert_eq!(
                header(&j, "X-Total-Count"),
                Some("5"),
                "{after}: {}",
                j.head
            );
        }
    }
    let j = get(&server, "127.0.0.1", "/allow/api/refused?after=0");
    assert!(j.body.contains(r#""recent":[]"#), "{}", j.body);
    assert!(j.body.contains(r#""more":false"#), "{}", j.body);
    server.stop().unwrap();
}

/// Item 1 and the page's methods: a refused client gets nothing from HEAD/OPTIONS on the
/// new JSON route, nor with `after=`.
#[test]
fn refused_clients_get_nothing_from_the_paged_routes() {
    let server = serve(admin_app(OPS_ONLY));
    for method in ["GET", "HEAD", "OPTIONS", "POST"] {
        for path in [
            "/allow/api/refused",
            "/allow/api/refused?after=18446744073709551615",
            "/allow/refused?after=1",
            "/allow/api/bans?after=0.0.0.0",
        ] {
            let r = server.request_from("127.0.0.1", method, path, &[]);
            assert!(
                r.status != 200 && !r.body.contains("\"total\""),
                "{method} {path}: {r:?}"
            );
        }
    }
    server.stop().unwrap();
}

/// Sends `n` pipelined keep-alive requests from `from` on one connection; returns how many
/// answers were 403.
fn pipeline(port: u16, from: &str, n: usize, path: &str) -> usize {
    use std::io::{Read, Write};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = (from.parse::<std::net::IpAddr>().unwrap(), 0).into();
    socket.bind(&local.into()).unwrap();
    let server: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&server.into()).unwrap();
    let mut w: std::net::TcpStream = socket.into();
    w.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut r = w.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut count = 0;
        let mut tail = Vec::new();
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    tail.extend_from_slice(&buf[..k]);
                    let text = String::from_utf8_lossy(&tail).into_owned();
                    count += text.matches("HTTP/1.1 403").count();
                    let keep = tail.len().min(16);
                    tail = tail[tail.len() - keep..].to_vec();
                    // Drop matches already counted from the kept tail.
                    if String::from_utf8_lossy(&tail).contains("HTTP/1.1 403") {
                        tail.clear();
                    }
                }
            }
        }
        count
    });
    let one = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {}\r\n\r\n",
        "u".repeat(300)
    );
    let mut batch = String::new();
    for i in 0..n {
        if i + 1 == n {
            batch.push_str(&one.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"));
        } else {
            batch.push_str(&one);
        }
        if batch.len() > 1 << 16 || i + 1 == n {
            if w.write_all(batch.as_bytes()).is_err() {
                break;
            }
            batch.clear();
        }
    }
    reader.join().unwrap()
}

/// Item 4 at the documented maximum: `recent = 100000` filled by one client; every view is
/// capped (1,000 rows), paged without overlap, totals right, and views do not stall others.
#[test]
fn a_full_ring_of_100000_is_viewed_a_page_at_a_time() {
    let server = serve(admin_app(
        r#"
[default.allow]
rules = [{ deny = "127.0.0.66" }]
[default.allow.admin]
recent = 100000
"#,
    ));
    let port = server.port;
    let t0 = std::time::Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || pipeline(port, "127.0.0.66", 26_000, "/x?q=1")))
        .collect();
    let refused: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    eprintln!("filled: {refused} refusals in {:?}", t0.elapsed());
    let j = get(&server, "127.0.0.1", "/allow/api/refused");
    assert_eq!(j.status, 200);
    assert_eq!(header(&j, "X-Total-Count"), Some("100000"), "{}", j.head);
    let v: serde_json::Value = serde_json::from_str(&j.body).unwrap();
    let rows = v["recent"].as_array().unwrap();
    assert_eq!(rows.len(), 1000);
    assert_eq!(v["more"], true);
    assert_eq!(v["total"], 100000);
    let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1] + 1),
        "not contiguous newest-first"
    );
    let last = *seqs.last().unwrap();
    let j2 = get(
        &server,
        "127.0.0.1",
        &format!("/allow/api/refused?after={last}"),
    );
    let v2: serde_json::Value = serde_json::from_str(&j2.body).unwrap();
    let rows2 = v2["recent"].as_array().unwrap();
    assert_eq!(rows2.len(), 1000);
    assert_eq!(
        rows2[0]["seq"].as_u64().unwrap(),
        last - 1,
        "page 2 does not follow page 1"
    );
    // The oldest page: fewer rows, `more` false, then an empty one.
    let oldest = seqs[0] + 1 - 100000;
    let j3 = get(
        &server,
        "127.0.0.1",
        &format!("/allow/api/refused?after={}", oldest + 500),
    );
    let v3: serde_json::Value = serde_json::from_str(&j3.body).unwrap();
    assert_eq!(
        v3["recent"].as_array().unwrap().len(),
        500,
        "{}",
        &j3.body[..200]
    );
    assert_eq!(v3["more"], false);
    // Sizes and times per view, with a bystander measured during two concurrent views.
    let t = std::time::Instant::now();
    let html = get(&server, "127.0.0.1", "/allow/refused");
    let html_time = t.elapsed();
    eprintln!(
        "html {} bytes in {html_time:?}; json {} bytes",
        html.body.len(),
        j.body.len()
    );
    assert!(html.body.len() < 3_000_000, "{} bytes", html.body.len());
    assert!(j.body.len() < 1_000_000, "{} bytes", j.body.len());
    assert!(html.body.contains("100000 kept."), "no total shown");
    let views: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                common::http::send_from(
                    port,
                    "127.0.0.1",
                    b"GET /allow/refused HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                )
                .unwrap()
                .status
            })
        })
        .collect();
    let t = std::time::Instant::now();
    let by = common::http::send_from(
        port,
        "127.0.0.7",
        b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let bystander = t.elapsed();
    for v in views {
        assert_eq!(v.join().unwrap(), 200);
    }
    eprintln!("bystander {} in {bystander:?}", by.status);
    assert!(
        bystander < std::time::Duration::from_secs(2),
        "{bystander:?}"
    );
    server.stop().unwrap();
}

/// Item 3 with a chain of trusted proxies (CDN 127.0.0.5 -> nginx 127.0.0.2): a ban on any
/// hop the operator's request came through must not be made if it refuses the operator.
#[test]
fn a_ban_on_a_middle_proxy_of_the_chain_does_not_lock_the_operator_out() {
    for extra in [
        "",
        "trusted_hops = 2\nclient_ip_header = \"X-Forwarded-For\"\n",
    ] {
        let server = serve(admin_app(&format!(
            r#"
[default.allow]
trusted_proxies = ["127.0.0.2", "127.0.0.5"]
{extra}rules = [{{ deny = "127.0.0.66" }}]
[default.allow.policies.ops]
rules = [{{ allow = "192.0.2.10" }}, {{ deny = "all" }}]
[default.allow.admin]
policy = "ops"
"#
        )));
        let allow = server.allow.clone().unwrap();
        let via: Vec<String> = vec!["X-Forwarded-For: 192.0.2.10, 127.0.0.5".into()];
        let load = || {
            form_request(
                &server,
                "127.0.0.2",
                "GET",
                &format!("127.0.0.1:{}", server.port),
                "/allow/bans",
                "",
                &via,
            )
        };
        let page = load();
        assert_eq!(page.status, 200, "{extra}: {page:?}");
        let (cookie, token) = login(&page);
        for target in ["127.0.0.5", "127.0.0.4/30"] {
            let body = format!("csrf={token}&target={target}&duration=3600&reason=x");
            let mut h = via.clone();
            h.extend(same_origin(&server, &cookie));
            let r = post(&server, "127.0.0.2", "/allow/bans", &body, &h);
            let after = load().status;
            eprintln!("{extra:?} ban {target}: {} then page {after}", r.status);
            for b in allow.bans() {
                let _ = allow.unban(&b.target.to_string());
            }
            assert_eq!(
                after, 200,
                "{extra}: ban {target} ({}) locked the operator out",
                r.status
            );
        }
        server.stop().unwrap();
    }
}

/// Item 1 at run time: `AllowHandle::set_mode` puts the admin policy (configured or
/// built-in) or the app in report mode; the page stays shut to whom the policy refuses.
#[test]
fn report_mode_set_at_run_time_never_opens_the_page() {
    use rocket_allow::Mode;
    for (toml, refused, policy) in [
        (OPS_ONLY, "127.0.0.1", Some("ops")),
        (OPS_ONLY, "127.0.0.1", None),
        (OPEN, "127.0.0.9", Some(rocket_allow::BUILTIN_ADMIN_POLICY)),
        (OPEN, "127.0.0.9", None),
    ] {
        let server = serve(admin_app(toml));
        let allow = server.allow.clone().unwrap();
        allow.set_mode(policy, Mode::Report).unwrap();
        for method in ["GET", "HEAD", "OPTIONS"] {
            for path in PAGES
                .iter()
                .chain(["/allow/api/refused", "/allow/api/bans"].iter())
            {
                let r = server.request_from(refused, method, path, &[]);
                assert!(
                    r.status >= 400 && !r.head.contains("rocket_allow_csrf"),
                    "{policy:?} {method} {path} from {refused}: {r:?}"
                );
            }
        }
        let r = post(
            &server,
            refused,
            "/allow/bans",
            "csrf=x&target=127.0.0.66&duration=1",
            &[],
        );
        assert!(r.status >= 400, "{r:?}");
        assert!(allow.bans().is_empty());
        server.stop().unwrap();
    }
}

/// Items 7 and 9: scheme words from a trusted proxy in their odd spellings, and Host names
/// a rebinding page could use; each must be read as docs/proxies.md says.
#[test]
fn proxy_scheme_spellings_and_rebinding_hosts() {
    let server = serve(admin_app(
        r#"
[default.allow]
trusted_proxies = ["127.0.0.2"]
rules = []
[default.allow.policies.ops]
rules = [{ allow = "192.0.2.10" }, { deny = "all" }]
[default.allow.admin]
policy = "ops"
hosts = ["admin.example.com"]
"#,
    ));
    let load = |from: &str, host: &str, extra: &[&str]| {
        let mut h: Vec<String> = vec!["X-Forwarded-For: 192.0.2.10".into()];
        h.extend(extra.iter().map(|s| s.to_string()));
        form_request(&server, from, "GET", host, "/allow/", "", &h)
    };
    let secure = |r: &common::http::Response| {
        r.head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: rocket_allow_csrf")
                && l.contains("Secure")
        })
    };
    for (extra, https) in [
        (&["X-Forwarded-Proto: HTTPS"][..], true),
        (&["X-Forwarded-Proto: http, https"][..], true),
        (&["X-Forwarded-Proto: https, http"][..], false),
        (
            &["X-Forwarded-Proto: https", "X-Forwarded-Proto: http"][..],
            false,
        ),
        (&["X-Forwarded-Proto: https "][..], true),
        (
            &[
                "X-Forwarded-Proto: wss",
                "Forwarded: for=192.0.2.10;proto=https",
            ][..],
            false,
        ),
        (&["Forwarded: for=192.0.2.10;proto=\"https\""][..], true),
        (
            &["Forwarded: for=192.0.2.10;proto=https, for=192.0.2.10;proto=http"][..],
            false,
        ),
        (
            &["Forwarded: for=192.0.2.10;proto=https;proto=https"][..],
            false,
        ),
        (&["Forwarded: proto=https"][..], true),
    ] {
        let r = load("127.0.0.2", "admin.example.com", extra);
        assert_eq!(r.status, 200, "{extra:?}: {r:?}");
        assert_eq!(secure(&r), https, "{extra:?}: {}", r.head);
    }
    // Names a rebinding page could use: refused before any cookie is set.
    for host in [
        "admin.example.com.evil.com",
        "evil.admin.example.com",
        "127.0.0.1.nip.io",
        "localhost.evil.com",
        "2130706433",
        "0x7f.0.0.1",
        "127.1",
        "admin.example.com@evil.com",
    ] {
        let r = load("127.0.0.2", host, &["X-Forwarded-Proto: https"]);
        assert!(
            r.status == 403 || r.status == 400,
            "Host {host}: {} {}",
            r.status,
            r.head
        );
        assert!(
            !r.head.contains("rocket_allow_csrf"),
            "Host {host}: {}",
            r.head
        );
    }
    for host in [
        "ADMIN.example.com",
        "admin.example.com.",
        "admin.example.com:8443",
        "[::1]",
        "foo.localhost",
    ] {
        assert_eq!(load("127.0.0.2", host, &[]).status, 200, "Host {host}");
    }
    server.stop().unwrap();
}
