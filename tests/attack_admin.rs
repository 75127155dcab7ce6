//! An attacker's (or a bad day's) pass over the admin page on a launched app: one click
//! that would lock the operator out of the page, and the page with many bans.

mod common;

use common::admin::*;
use common::http::serve;

#[test]
fn a_ban_that_would_refuse_the_operator_is_not_made_nor_offered() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    // A refused neighbour: the page lists it and its /24, which holds the operator too.
    assert_eq!(get(&server, "127.0.0.66", "/").status, 403);
    let page = get(&server, "127.0.0.1", "/allow/refused");
    assert!(page.body.contains("127.0.0.0/24"), "{}", page.body);
    assert!(
        !page.body.contains(r#"name="target" value="127.0.0.0/24""#),
        "a one-click ban of the operator's own network: {}",
        page.body
    );
    assert!(page.body.contains(r#"name="target" value="127.0.0.66""#));
    let (cookie, token) = login(&page);
    for target in [
        "127.0.0.0/24",
        "127.0.0.1",
        "0.0.0.0/0",
        "::ffff:127.0.0.1",
        "::ffff:0:0/96",
    ] {
        let body = format!("csrf={token}&target={target}&duration=3600&reason=oops");
        let r = post_from_page(&server, "/allow/bans", &body, &cookie);
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(r.body.contains("you"), "{target}: {}", r.body);
        assert!(allow.bans().is_empty(), "{target}: {:?}", allow.bans());
        assert_eq!(get(&server, "127.0.0.1", "/allow/").status, 200, "{target}");
    }
    // Bans that leave the operator in are made as always.
    let body = format!("csrf={token}&target=127.0.0.66&duration=3600&reason=probing");
    assert_eq!(
        post_from_page(&server, "/allow/bans", &body, &cookie).status,
        303
    );
    assert!(allow.is_banned("127.0.0.66".parse().unwrap()).is_some());
    assert_eq!(get(&server, "127.0.0.1", "/allow/").status, 200);
    server.stop().unwrap();
}

#[test]
fn the_bans_page_and_json_show_a_bounded_number_of_bans_and_search_finds_the_rest() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    // 3,000 bans (an automatic ban rule under a scan makes far more).
    for i in 0..3000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        allow.ban(&ip.to_string(), None).unwrap();
    }
    allow
        .ban_with_reason("192.0.2.0/24", None, Some("needle"))
        .unwrap();
    let page = get(&server, "127.0.0.1", "/allow/bans");
    assert_eq!(page.status, 200);
    let rows = page.body.matches(r#"<code class="target">"#).count();
    assert_eq!(rows, 1000, "rows shown");
    assert!(page.body.contains("3001 bans"), "{}", &page.body[..2000]);
    let json = get(&server, "127.0.0.1", "/allow/api/bans");
    let list: Vec<serde_json::Value> = serde_json::from_str(&json.body).unwrap();
    assert_eq!(list.len(), 1000);
    assert_eq!(header(&json, "x-total-count"), Some("3001"));
    // Search reaches every ban, shown or not.
    let found = get(&server, "127.0.0.1", "/allow/bans?q=needle");
    assert_eq!(found.body.matches(r#"<code class="target">"#).count(), 1);
    assert!(found.body.contains("192.0.2.0/24"));
    let found = get(&server, "127.0.0.1", "/allow/api/bans?q=10.0.11.183");
    let list: Vec<serde_json::Value> = serde_json::from_str(&found.body).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(header(&found, "x-total-count"), Some("1"));
    server.stop().unwrap();
}

/// A browser on the operator's machine that opened a page of `host` (a name an attacker
/// controls, rebound to 127.0.0.1 after the page loaded): to the browser the admin page is
/// then same-origin with the attacker's page, so it sends its fetch metadata, Origin and
/// cookie as for the page's own forms.
fn rebound(
    server: &common::http::Server,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
    extra: &[String],
) -> common::http::Response {
    let host = format!("{host}:{}", server.port);
    let mut headers = vec![
        format!("Origin: http://{host}"),
        "Sec-Fetch-Site: same-origin".to_string(),
    ];
    headers.extend_from_slice(extra);
    form_request(server, "127.0.0.1", method, &host, path, body, &headers)
}

#[test]
fn a_page_rebound_to_loopback_by_dns_can_neither_read_nor_change_anything() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    allow
        .ban_with_reason("192.0.2.1", None, Some("secret"))
        .unwrap();
    for host in ["attacker.example", "attacker.example.", "127.0.0.1.nip.io"] {
        // Reading: the page, the JSON and its token.
        for path in ["/allow/bans", "/allow/api/bans", "/allow/"] {
            let r = rebound(&server, host, "GET", path, "", &[]);
            assert_eq!(r.status, 403, "{host} {path}: {r:?}");
            assert!(
                !r.body.contains("secret") && !r.head.contains("rocket_allow_csrf"),
                "{r:?}"
            );
        }
        // Changing, with a token the page would have handed out.
        let token = "ab".repeat(32);
        let body = format!("csrf={token}&target=192.0.2.1");
        let cookie = [format!("Cookie: rocket_allow_csrf={token}")];
        let r = rebound(&server, host, "POST", "/allow/unban", &body, &cookie);
        assert_eq!(r.status, 403, "{host}: {r:?}");
        assert!(
            allow.is_banned("192.0.2.1".parse().unwrap()).is_some(),
            "{host}"
        );
    }
    // The operator's own ways in: IP literals, localhost, *.localhost, any case and port.
    for host in [
        "127.0.0.1",
        "[::1]",
        "localhost",
        "LocalHost.",
        "admin.localhost",
    ] {
        let r = rebound(&server, host, "GET", "/allow/bans", "", &[]);
        assert_eq!(r.status, 200, "{host}: {r:?}");
    }
    server.stop().unwrap();
}

#[test]
fn host_names_of_a_remote_admin_page_are_listed_in_admin_hosts() {
    let server = serve(admin_app(&format!(
        "{OPEN}\n[default.allow.admin]\nhosts = [\"Admin.Example.com\"]\n"
    )));
    assert_eq!(
        rebound(&server, "admin.example.com", "GET", "/allow/", "", &[]).status,
        200
    );
    assert_eq!(
        rebound(&server, "admin.example.com.", "GET", "/allow/", "", &[]).status,
        200
    );
    assert_eq!(
        rebound(&server, "attacker.example", "GET", "/allow/", "", &[]).status,
        403
    );
    assert_eq!(
        rebound(&server, "127.0.0.1", "GET", "/allow/", "", &[]).status,
        200
    );
    server.stop().unwrap();
    for bad in ["admin.example.com:443", "https://admin.example.com", ""] {
        common::ignite_error(
            admin_app(&format!(
                "{OPEN}\n[default.allow.admin]\nhosts = [\"ok.example\", \"{bad}\"]\n"
            )),
            &["allow.admin.hosts[1]", "not a host name"],
        );
    }
}

#[test]
fn markup_in_ban_reasons_list_files_paths_and_user_agents_is_text_on_every_page() {
    const X: &str = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("blocked.txt");
    std::fs::write(&list, "192.0.2.1\n").unwrap();
    let toml = format!(
        r#"
        [default.allow]
        rules = [{{ deny = "@blocked" }}, {{ deny = "127.0.0.66" }}]
        [default.allow.sets]
        blocked = {{ file = "{}" }}
        [default.allow.policies.p]
        paths = ["/p"]
        rules = [{{ deny = "127.0.0.67" }}]
        "#,
        list.display()
    );
    let server = serve(admin_app(&toml));
    let allow = server.allow.clone().unwrap();
    allow.ban_with_reason("192.0.2.9", None, Some(X)).unwrap();
    // A list file whose bad line the log and the overview quote.
    std::fs::write(&list, format!("{X}\n")).unwrap();
    common::geoip::wait_for(|| {
        get(&server, "127.0.0.1", "/allow/api/overview")
            .body
            .contains("onerror")
    });
    let req = format!(
        "GET /p/{X} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {X}\r\nConnection: close\r\n\r\n"
    );
    server.raw_from("127.0.0.67", req.as_bytes());
    for path in PAGES.iter().chain(&["/allow/bans?q=%3Cscript%3E"]) {
        let page = get(&server, "127.0.0.1", path);
        assert_eq!(page.status, 200, "{path}");
        for raw in ["<script", "<img"] {
            assert!(!page.body.contains(raw), "{path}: {raw} in {}", page.body);
        }
    }
    // Policy (and set) names cannot carry markup: ignite refuses them.
    let named = toml.replace("policies.p]", "policies.'<b onclick=alert(3)>']");
    common::ignite_error(admin_app(&named), &["a policy name is"]);
    let bans = get(&server, "127.0.0.1", "/allow/bans").body;
    assert!(
        bans.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img"),
        "{bans}"
    );
    server.stop().unwrap();
}

/// Every admin route, JSON and stylesheet included.
const EVERY_ROUTE: [&str; 11] = [
    "/allow/",
    "/allow/refused",
    "/allow/bans",
    "/allow/rules",
    "/allow/explain?ip=127.0.0.50",
    "/allow/admin.css",
    "/allow/api/overview",
    "/allow/api/refused",
    "/allow/api/bans",
    "/allow/api/rules",
    "/allow/api/explain?ip=127.0.0.50&path=/",
];

/// The admin policy in report mode (its own `mode`, or the top level's during a roll-out),
/// covering the page's path as docs/admin.md suggests: the fairing admits what the policy
/// would refuse, and the page must still refuse it, reading and writing.
#[test]
fn report_mode_never_opens_the_admin_page() {
    for (top, own) in [("", "mode = \"report\"\n"), ("mode = \"report\"\n", "")] {
        let toml = format!(
            r#"
[default.allow]
{top}rules = []
[default.allow.policies.ops]
{own}paths = ["/allow"]
rules = [{{ allow = "127.0.0.1" }}, {{ deny = "all" }}]
[default.allow.admin]
policy = "ops"
"#
        );
        let server = serve(admin_app(&toml));
        let allow = server.allow.clone().unwrap();
        allow
            .ban_with_reason("192.0.2.1", None, Some("secret"))
            .unwrap();
        // The operator gets in.
        let page = get(&server, "127.0.0.1", "/allow/bans");
        assert_eq!(page.status, 200, "{toml}");
        let (cookie, token) = login(&page);
        // Anyone else reads nothing and gets no token.
        for path in EVERY_ROUTE {
            let r = get(&server, "127.0.0.66", path);
            assert_eq!(r.status, 403, "{toml} {path}: {r:?}");
            assert!(
                !r.body.contains("secret") && !r.head.contains("rocket_allow_csrf"),
                "{toml} {path}: {r:?}"
            );
        }
        // And changes nothing, even with a token of its own making sent as the page's form.
        let headers = same_origin(&server, &cookie);
        let unban = format!("csrf={token}&target=192.0.2.1");
        let r = post(&server, "127.0.0.66", "/allow/unban", &unban, &headers);
        assert_eq!(r.status, 403, "{toml}: {r:?}");
        assert!(allow.is_banned("192.0.2.1".parse().unwrap()).is_some());
        let ban = format!("csrf={token}&target=127.0.0.1&duration=3600&reason=x");
        let r = post(&server, "127.0.0.66", "/allow/bans", &ban, &headers);
        assert_eq!(r.status, 403, "{toml}: {r:?}");
        assert!(allow.is_banned("127.0.0.1".parse().unwrap()).is_none());
        // Report mode still admits the refused client everywhere else.
        assert_eq!(get(&server, "127.0.0.66", "/").status, 200, "{toml}");
        assert_eq!(get(&server, "127.0.0.1", "/allow/").status, 200, "{toml}");
        server.stop().unwrap();
    }
}

/// The operator behind a trusted proxy (127.0.0.2 forwards for 192.0.2.10, which the admin
/// policy admits): a ban on the proxy, or on a network holding it, refuses every request
/// it forwards, the operator's included. The page neither makes it nor offers it.
#[test]
fn a_ban_on_the_proxy_the_operator_comes_through_is_not_made_nor_offered() {
    let server = serve(admin_app(
        r#"
[default.allow]
trusted_proxies = ["127.0.0.2"]
rules = [{ deny = "127.0.0.66" }]
[default.allow.policies.ops]
rules = [{ allow = "192.0.2.10" }, { deny = "all" }]
[default.allow.admin]
policy = "ops"
"#,
    ));
    let allow = server.allow.clone().unwrap();
    const XFF: &str = "X-Forwarded-For: 192.0.2.10";
    let load = |path: &str| server.request_from("127.0.0.2", "GET", path, &[XFF.as_bytes()]);
    // A refused neighbour of the proxy: the page lists its /24, which holds the proxy.
    assert_eq!(get(&server, "127.0.0.66", "/").status, 403);
    let page = load("/allow/refused");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("127.0.0.0/24"), "{}", page.body);
    assert!(
        !page.body.contains(r#"name="target" value="127.0.0.0/24""#),
        "a one-click ban of the operator's proxy: {}",
        page.body
    );
    assert!(page.body.contains(r#"name="target" value="127.0.0.66""#));
    let (cookie, token) = login(&page);
    let mut headers = same_origin(&server, &cookie);
    headers.push(XFF.to_string());
    for target in [
        "127.0.0.2",
        "127.0.0.2/31",
        "127.0.0.0/24",
        "::ffff:127.0.0.2",
        "192.0.2.0/24",
    ] {
        let body = format!("csrf={token}&target={target}&duration=3600&reason=oops");
        let r = post(&server, "127.0.0.2", "/allow/bans", &body, &headers);
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(r.body.contains("you"), "{target}: {}", r.body);
        assert!(allow.bans().is_empty(), "{target}: {:?}", allow.bans());
        assert_eq!(load("/allow/").status, 200, "{target}");
    }
    // Bans that leave the operator's way in alone are made as always.
    let body = format!("csrf={token}&target=127.0.0.66&duration=3600&reason=probing");
    let r = post(&server, "127.0.0.2", "/allow/bans", &body, &headers);
    assert_eq!(r.status, 303, "{r:?}");
    assert!(allow.is_banned("127.0.0.66".parse().unwrap()).is_some());
    assert_eq!(load("/allow/").status, 200);
    server.stop().unwrap();
}

/// The JSON pages through every ban, 1,000 at a time by target (`after=` the last target
/// of the page before), with the total in `X-Total-Count`; so does the page's "next" link.
#[test]
fn the_bans_json_and_page_go_through_every_ban_a_page_at_a_time() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    for i in 0..2500u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        allow.ban(&ip.to_string(), None).unwrap();
    }
    allow.ban("2001:db8::/32", None).unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/allow/api/bans".to_string();
    loop {
        let r = get(&server, "127.0.0.1", &path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(header(&r, "x-total-count"), Some("2501"), "{path}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
        assert!(list.len() <= 1000, "{path}: {}", list.len());
        let Some(last) = list.last() else { break };
        let last = last["target"].as_str().unwrap().to_string();
        seen.extend(
            list.iter()
                .map(|b| b["target"].as_str().unwrap().to_string()),
        );
        assert!(seen.len() <= 2501, "{path}: pages repeat");
        path = format!("/allow/api/bans?after={last}");
    }
    let all: Vec<String> = allow.bans().iter().map(|b| b.target.to_string()).collect();
    assert_eq!(seen, all, "every ban once, by target");
    // The same pages from code, and the count.
    assert_eq!(allow.ban_count(), 2501);
    let (mut paged, mut after) = (Vec::new(), None);
    loop {
        let page = allow.bans_page(after, 700);
        let Some(last) = page.last() else { break };
        after = Some(last.target);
        paged.extend(page);
    }
    assert_eq!(paged, allow.bans());
    // A search pages the same way, its total the matches'.
    let r = get(
        &server,
        "127.0.0.1",
        "/allow/api/bans?q=10.0.9&after=10.0.9.100/32",
    );
    let list: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(header(&r, "x-total-count"), Some("196"), "{r:?}");
    assert_eq!(list[0]["target"], "10.0.9.101/32", "{list:?}");
    assert_eq!(list.len(), 95, "{list:?}");
    // The page links to the next 1,000, and that page to the next.
    let page = get(&server, "127.0.0.1", "/allow/bans");
    assert!(
        page.body
            .contains(r#"href="/allow/bans?after=10.0.3.231%2F32""#),
        "{}",
        page.body
    );
    let next = get(&server, "127.0.0.1", "/allow/bans?after=10.0.3.231%2F32");
    assert!(next.body.contains("10.0.3.232/32") && !next.body.contains(">10.0.3.231/32<"));
    assert!(next.body.contains("2501 bans"), "{}", next.body);
    // Not an address or network: 400, nothing listed.
    let bad = get(&server, "127.0.0.1", "/allow/api/bans?after=x");
    assert_eq!(bad.status, 400, "{bad:?}");
    server.stop().unwrap();
}

/// Any client can fill the recent view's ring (`recent` up to 100,000) in seconds; the page
/// and the JSON list the newest 1,000 with how many are kept, and page on by `seq` (issue
/// 27, item 4: one view was 165 MB of HTML). The most refused count every kept refusal.
#[test]
fn the_refused_page_and_json_show_a_bounded_number_of_refusals_and_page_through_the_rest() {
    let server = serve(admin_app(
        r#"
        [default.allow]
        rules = [{ deny = "127.0.0.66" }]
        [default.allow.admin]
        recent = 5000
        "#,
    ));
    let sent = 1300;
    for i in 0..sent {
        assert_eq!(get(&server, "127.0.0.66", &format!("/r{i}")).status, 403);
    }
    let page = get(&server, "127.0.0.1", "/allow/refused");
    assert_eq!(page.status, 200);
    let rows = page.body.matches(r#"<td class="ua">"#).count();
    assert_eq!(rows, 1000, "rows shown");
    assert!(page.body.contains("1300 kept."), "{}", &page.body[..3000]);
    assert!(page.body.contains(">/r1299<") && !page.body.contains(">/r299<"));
    // The most refused count them all, shown or not.
    assert!(
        page.body.contains("<td>1300</td>"),
        "{}",
        &page.body[..3000]
    );
    let json = get(&server, "127.0.0.1", "/allow/api/refused");
    assert_eq!(header(&json, "x-total-count"), Some("1300"));
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(v["recent"].as_array().unwrap().len(), 1000);
    assert_eq!(
        (v["total"].as_u64(), v["more"].as_bool()),
        (Some(1300), Some(true))
    );
    assert_eq!(v["top_clients"][0]["count"], 1300);
    // Page by page (`after=` the last row's seq), every refusal once, newest first.
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/allow/api/refused".to_string();
    loop {
        let r = get(&server, "127.0.0.1", &path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(header(&r, "x-total-count"), Some("1300"), "{path}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let list = v["recent"].as_array().unwrap();
        assert!(list.len() <= 1000, "{path}: {}", list.len());
        let Some(last) = list.last() else { break };
        seen.extend(list.iter().map(|x| x["path"].as_str().unwrap().to_string()));
        assert!(seen.len() <= sent, "{path}: pages repeat");
        path = format!("/allow/api/refused?after={}", last["seq"]);
    }
    let all: Vec<String> = (0..sent).rev().map(|i| format!("/r{i}")).collect();
    assert_eq!(seen, all, "every refusal once, newest first");
    // The page links to the older ones, and that page back to the newest.
    let next = page
        .body
        .split(r#"id="next""#)
        .next()
        .and_then(|b| b.rsplit("href=\"").next())
        .and_then(|h| h.split('"').next())
        .unwrap_or_else(|| panic!("no next link: {}", &page.body[..3000]))
        .to_string();
    assert!(next.starts_with("/allow/refused?after="), "{next}");
    let older = get(&server, "127.0.0.1", &next);
    assert_eq!(older.body.matches(r#"<td class="ua">"#).count(), 300);
    assert!(older.body.contains(">/r299<") && !older.body.contains(">/r300<"));
    assert!(older.body.contains("From the newest") && !older.body.contains(r#"id="next""#));
    // Not a seq: 400, nothing listed.
    let bad = get(&server, "127.0.0.1", "/allow/api/refused?after=x");
    assert_eq!(bad.status, 400, "{bad:?}");
    server.stop().unwrap();
}

/// The `Set-Cookie` line of the CSRF cookie.
fn csrf_set_cookie(r: &common::http::Response) -> String {
    r.head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: rocket_allow_csrf=")
        })
        .unwrap_or_else(|| panic!("no csrf cookie in {}", r.head))
        .to_string()
}

/// The page behind a proxy that terminates TLS (127.0.0.2, trusted, forwarding for the
/// operator at 192.0.2.10 under `admin.example.com`): the browser's forms say
/// `Origin: https://admin.example.com`, and the proxy says `X-Forwarded-Proto: https`. The
/// page's own forms must work, its cookie must be `Secure`, and a client that is not a
/// trusted proxy changes nothing by sending the header itself.
#[test]
fn behind_a_tls_terminating_proxy_the_page_s_own_forms_work_and_its_cookie_is_secure() {
    let server = serve(admin_app(
        r#"
[default.allow]
trusted_proxies = ["127.0.0.2"]
rules = []
[default.allow.policies.ops]
rules = [{ allow = "192.0.2.10" }, { allow = "127.0.0.3" }, { deny = "all" }]
[default.allow.admin]
policy = "ops"
hosts = ["admin.example.com"]
"#,
    ));
    let allow = server.allow.clone().unwrap();
    const HOST: &str = "admin.example.com";
    let send = |from: &str, method: &str, path: &str, body: &str, headers: &[String]| {
        form_request(&server, from, method, HOST, path, body, headers)
    };
    let via = |proto: &str| {
        vec![
            "X-Forwarded-For: 192.0.2.10".to_string(),
            format!("X-Forwarded-Proto: {proto}"),
        ]
    };
    let form = |cookie: &str, origin: &str| {
        vec![
            format!("Cookie: rocket_allow_csrf={cookie}"),
            format!("Origin: {origin}"),
            "Sec-Fetch-Site: same-origin".to_string(),
        ]
    };
    let ban = |token: &str, target: &str| format!("csrf={token}&target={target}&duration=3600");

    // Through the proxy, over HTTPS.
    let page = send("127.0.0.2", "GET", "/allow/bans", "", &via("https"));
    assert_eq!(page.status, 200, "{page:?}");
    let set = csrf_set_cookie(&page);
    assert!(set.contains("; Secure"), "{set}");
    let (cookie, token) = login(&page);
    let own = [via("https"), form(&cookie, "https://admin.example.com")].concat();
    let r = send(
        "127.0.0.2",
        "POST",
        "/allow/bans",
        &ban(&token, "127.0.0.9"),
        &own,
    );
    assert_eq!(r.status, 303, "the page's own form: {r:?}");
    assert!(allow.is_banned("127.0.0.9".parse().unwrap()).is_some());
    // The same form from the site's plain-http origin is another origin.
    let plain = [via("https"), form(&cookie, "http://admin.example.com")].concat();
    let r = send(
        "127.0.0.2",
        "POST",
        "/allow/bans",
        &ban(&token, "127.0.0.10"),
        &plain,
    );
    assert_eq!(r.status, 403, "{r:?}");
    // RFC 7239 `proto=` from the proxy says the same, when it sends no X-Forwarded-Proto.
    let fwd = vec![
        "X-Forwarded-For: 192.0.2.10".to_string(),
        "Forwarded: for=192.0.2.10;proto=https".to_string(),
    ];
    let page = send("127.0.0.2", "GET", "/allow/bans", "", &fwd);
    assert!(csrf_set_cookie(&page).contains("; Secure"), "{page:?}");
    let (cookie2, token2) = login(&page);
    let own = [fwd, form(&cookie2, "https://admin.example.com")].concat();
    let r = send(
        "127.0.0.2",
        "POST",
        "/allow/bans",
        &ban(&token2, "127.0.0.11"),
        &own,
    );
    assert_eq!(r.status, 303, "{r:?}");

    // The proxy serving plain HTTP: no Secure cookie (the browser would not send it back),
    // and the http origin is the page's.
    let page = send("127.0.0.2", "GET", "/allow/bans", "", &via("http"));
    assert!(!csrf_set_cookie(&page).contains("Secure"), "{page:?}");
    let own = [via("http"), form(&cookie, "http://admin.example.com")].concat();
    let r = send(
        "127.0.0.2",
        "POST",
        "/allow/bans",
        &ban(&token, "127.0.0.12"),
        &own,
    );
    assert_eq!(r.status, 303, "{r:?}");

    // A client that is not a trusted proxy (127.0.0.3, admitted) sending the header itself:
    // not believed, the page is plain HTTP to it.
    let page = send(
        "127.0.0.3",
        "GET",
        "/allow/bans",
        "",
        &["X-Forwarded-Proto: https".to_string()],
    );
    assert_eq!(page.status, 200);
    assert!(!csrf_set_cookie(&page).contains("Secure"), "{page:?}");
    let (cookie3, token3) = login(&page);
    let claimed = [
        vec!["X-Forwarded-Proto: https".to_string()],
        form(&cookie3, "https://admin.example.com"),
    ]
    .concat();
    let r = send(
        "127.0.0.3",
        "POST",
        "/allow/bans",
        &ban(&token3, "127.0.0.13"),
        &claimed,
    );
    assert_eq!(r.status, 403, "{r:?}");
    let own = form(&cookie3, "http://admin.example.com");
    let r = send(
        "127.0.0.3",
        "POST",
        "/allow/bans",
        &ban(&token3, "127.0.0.14"),
        &own,
    );
    assert_eq!(r.status, 303, "{r:?}");
    let banned: Vec<String> = allow.bans().iter().map(|b| b.target.to_string()).collect();
    assert_eq!(
        banned,
        [
            "127.0.0.9/32",
            "127.0.0.11/32",
            "127.0.0.12/32",
            "127.0.0.14/32"
        ]
    );
    server.stop().unwrap();
}

/// Cookie tossing: a page on a sibling subdomain, or on another port of the host, can set
/// the `rocket_allow_csrf` cookie for the page's path. A value it chose must not come with a
/// token it can write, even where the token stands alone (no Origin, no fetch metadata: a
/// browser that sends neither).
#[test]
fn a_tossed_csrf_cookie_comes_with_no_token_its_author_can_write() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    let (cookie, token) = login(&get(&server, "127.0.0.1", "/allow/bans"));
    let tossed = "ab".repeat(32);
    let cases = [
        ("a tossed cookie and its own value", &tossed, &tossed),
        ("the real cookie sent as the token", &cookie, &cookie),
        ("a tossed cookie with a real token", &tossed, &token),
    ];
    for (what, sent_cookie, form_token) in cases {
        let body = format!("csrf={form_token}&target=127.0.0.9&duration=3600");
        let headers = [format!("Cookie: rocket_allow_csrf={sent_cookie}")];
        let r = post(&server, "127.0.0.1", "/allow/bans", &body, &headers);
        assert_eq!(r.status, 403, "{what}: {r:?}");
        assert!(allow.bans().is_empty(), "{what}");
    }
    // The page's own pair stands alone as it did.
    let body = format!("csrf={token}&target=127.0.0.9&duration=3600");
    let headers = [format!("Cookie: rocket_allow_csrf={cookie}")];
    let r = post(&server, "127.0.0.1", "/allow/bans", &body, &headers);
    assert_eq!(r.status, 303, "{r:?}");
    // A browser holding a tossed cookie gets forms whose token fits it (the attacker cannot
    // read them), and they work.
    let req = format!(
        "GET /allow/bans HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: rocket_allow_csrf={tossed}\r\nConnection: close\r\n\r\n",
        server.port
    );
    let page = server.raw_from("127.0.0.1", req.as_bytes());
    let fitted = csrf_token(&page);
    assert_ne!(fitted, tossed);
    let body = format!("csrf={fitted}&target=127.0.0.10&duration=3600");
    let r = post_from_page(&server, "/allow/bans", &body, &tossed);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(allow.bans().len(), 2);
    server.stop().unwrap();
}

#[rocket::catch(403)]
fn reason(req: &rocket::Request<'_>) -> String {
    match rocket_allow::Refused::of(req) {
        Some(r) => format!("{r}\n{:?}\n", r.by),
        None => "Forbidden, no reason\n".into(),
    }
}

/// A Host the page does not answer to (behind a proxy that passes the site's name on,
/// without `[allow.admin] hosts`): the app's catcher learns why, as for every other refusal.
#[test]
fn a_refused_host_tells_the_catcher_why() {
    let server = serve(admin_app(OPEN).register("/allow", rocket::catchers![reason]));
    let r = form_request(
        &server,
        "127.0.0.1",
        "GET",
        "app.example.com",
        "/allow/bans?q=x",
        "",
        &[],
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body.contains("GET /allow/bans?q=x from 127.0.0.1 refused (403) by the admin page's host names: Host \"app.example.com\" is not an address, localhost or one of [allow.admin] hosts, policy rocket-allow-admin"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(r#"Host { host: "app.example.com" }"#),
        "{}",
        r.body
    );
    // The policy's own refusal still says so.
    let r = get(&server, "127.0.0.2", "/allow/bans");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body.contains("policy rocket-allow-admin") && !r.body.contains("host names"),
        "{}",
        r.body
    );
    server.stop().unwrap();
}
