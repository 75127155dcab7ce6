//! The admin page over real HTTP: who may open it, changes only from the page itself
//! (CSRF token, Origin, Sec-Fetch-Site), read-only mode, escaping and headers, the JSON,
//! and the bounded recent view. The browser's view is in tests/admin_browser.rs.

mod common;

use common::admin::*;
use common::http::serve;
use common::*;

#[test]
fn the_builtin_policy_admits_loopback_only_and_refuses_like_any_policy() {
    let server = serve(admin_app(OPEN));
    for path in [
        "/allow/",
        "/allow/bans",
        "/allow/api/bans",
        "/allow/admin.css",
    ] {
        assert_eq!(get(&server, "127.0.0.1", path).status, 200, "{path}");
        let refused = get(&server, "127.0.0.2", path);
        // The app's own catcher answers, as for any refusal.
        assert_eq!(
            (refused.status, refused.body.as_str()),
            (403, "custom 403 page"),
            "{path}"
        );
    }
    // The app itself is open to 127.0.0.2.
    assert_eq!(get(&server, "127.0.0.2", "/").status, 200);
    server.stop().unwrap();
}

#[test]
fn a_configured_policy_decides_with_its_status_and_report_mode_does_not_open_it() {
    let ops = OPS_ONLY.replace(
        "[default.allow.admin]",
        "reject_status = 404\nmode = \"report\"\n[default.allow.admin]",
    );
    let server = serve(admin_app(&ops));
    assert_eq!(get(&server, "127.0.0.3", "/allow/").status, 200);
    // 127.0.0.1 is not in the policy; a would-be refusal of report mode still refuses here.
    assert_eq!(get(&server, "127.0.0.1", "/allow/").status, 404);
    assert_eq!(get(&server, "127.0.0.1", "/allow/api/overview").status, 404);
    server.stop().unwrap();
}

#[test]
fn an_admin_policy_that_does_not_exist_fails_ignite() {
    let toml = "[default.allow]\nrules = []\n[default.allow.admin]\npolicy = \"nope\"";
    ignite_error(admin_app(toml), &["allow.admin.policy", "nope"]);
    let toml = "[default.allow]\nrules = []\n[default.allow.admin]\nrecent = 100001";
    ignite_error(admin_app(toml), &["allow.admin.recent"]);
}

#[test]
fn a_ban_posted_from_the_page_refuses_the_next_request_and_unban_lifts_it() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    let (cookie, token) = login(&get(&server, "127.0.0.1", "/allow/bans"));
    assert_eq!(get(&server, "127.0.0.9", "/").status, 200);
    let body = format!("csrf={token}&target=127.0.0.9&duration=3600&reason=probing");
    let r = post_from_page(&server, "/allow/bans", &body, &cookie);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(header(&r, "location"), Some("/allow/bans"));
    let ban = allow.is_banned("127.0.0.9".parse().unwrap()).unwrap();
    assert_eq!(ban.reason.as_deref(), Some("probing"));
    assert_eq!(get(&server, "127.0.0.9", "/").status, 403);
    let page = get(&server, "127.0.0.1", "/allow/bans").body;
    assert!(
        page.contains("127.0.0.9/32") && page.contains("probing"),
        "{page}"
    );

    let body = format!("csrf={token}&target=127.0.0.9");
    let r = post_from_page(&server, "/allow/unban", &body, &cookie);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(get(&server, "127.0.0.9", "/").status, 200);
    assert!(allow.bans().is_empty());

    // A target that is not one: nothing banned, the page says why.
    let body = format!("csrf={token}&target=nope&duration=0");
    let r = post_from_page(&server, "/allow/bans", &body, &cookie);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nope"), "{}", r.body);
    assert!(allow.bans().is_empty());
    server.stop().unwrap();
}

#[test]
fn posts_not_from_the_page_change_nothing() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    let (secret, token) = login(&get(&server, "127.0.0.1", "/allow/bans"));
    let other = csrf_token(&get(&server, "127.0.0.1", "/allow/bans"));
    assert_ne!(token, other, "every browser gets its own token");
    let body = format!("csrf={token}&target=127.0.0.9&duration=3600");
    let cookie = format!("Cookie: rocket_allow_csrf={secret}");
    let own = format!("Origin: http://127.0.0.1:{}", server.port);
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "a foreign Origin",
            vec![cookie.clone(), "Origin: http://evil.example".into()],
            body.clone(),
        ),
        (
            "another port is another origin",
            vec![cookie.clone(), "Origin: http://127.0.0.1:1".into()],
            body.clone(),
        ),
        (
            "Origin null",
            vec![cookie.clone(), "Origin: null".into()],
            body.clone(),
        ),
        (
            "Sec-Fetch-Site cross-site",
            vec![
                cookie.clone(),
                own.clone(),
                "Sec-Fetch-Site: cross-site".into(),
            ],
            body.clone(),
        ),
        (
            "Sec-Fetch-Site same-site",
            vec![cookie.clone(), "Sec-Fetch-Site: same-site".into()],
            body.clone(),
        ),
        ("no cookie", vec![own.clone()], body.clone()),
        (
            "another browser's token",
            vec![cookie.clone(), own.clone()],
            format!("csrf={other}&target=127.0.0.9&duration=3600"),
        ),
        (
            "no token",
            vec![cookie.clone(), own.clone()],
            "target=127.0.0.9&duration=3600".into(),
        ),
        (
            "an empty cookie and token",
            vec!["Cookie: rocket_allow_csrf=".into(), own.clone()],
            "csrf=&target=127.0.0.9&duration=3600".into(),
        ),
    ];
    for (what, headers, body) in cases {
        let r = post(&server, "127.0.0.1", "/allow/bans", &body, &headers);
        assert!(
            r.status == 403 || r.status == 422,
            "{what}: {} {}",
            r.status,
            r.body
        );
        assert!(allow.bans().is_empty(), "{what} banned");
    }
    // A refused client cannot post at all, with a good token.
    let r = post(
        &server,
        "127.0.0.2",
        "/allow/bans",
        &body,
        &same_origin(&server, &secret),
    );
    assert_eq!(r.status, 403);
    // A script that sends no fetch metadata but the cookie and token may (the form's case).
    let r = post(&server, "127.0.0.1", "/allow/bans", &body, &[cookie]);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(allow.bans().len(), 1);
    server.stop().unwrap();
}

#[test]
fn read_only_shows_no_forms_and_refuses_every_post() {
    let server = serve(admin_app(
        "[default.allow]\nrules = []\n[default.allow.admin]\nread_only = true",
    ));
    let allow = server.allow.clone().unwrap();
    allow.ban("127.0.0.50", None).unwrap();
    let _ = get(&server, "127.0.0.66", "/");
    for path in PAGES {
        let page = get(&server, "127.0.0.1", path);
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains("method=\"post\""),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains("Read-only"), "{path}");
    }
    // A cookie and token that would pass anywhere else: the read-only page shows no form,
    // so they come from a writable page of this process (one key for the whole process).
    let writable = serve(admin_app(OPEN));
    let (cookie, token) = login(&get(&writable, "127.0.0.1", "/allow/bans"));
    writable.stop().unwrap();
    for (path, body) in [
        (
            "/allow/bans",
            format!("csrf={token}&target=127.0.0.9&duration=0"),
        ),
        ("/allow/unban", format!("csrf={token}&target=127.0.0.50")),
    ] {
        let r = post_from_page(&server, path, &body, &cookie);
        assert_eq!(r.status, 403, "{path}");
    }
    assert_eq!(allow.bans().len(), 1);
    assert!(allow.is_banned("127.0.0.50".parse().unwrap()).is_some());
    server.stop().unwrap();
}

const XSS_AGENT: &str = "<script>document.title='pwned'</script>\"><img src=x onerror=alert(1)>";

#[test]
fn what_clients_send_is_escaped_and_pages_carry_a_strict_policy() {
    let server = serve(admin_app(OPEN));
    let req = format!(
        "GET /%3Cscript%3E?q=%22%3E%3Cimg HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {XSS_AGENT}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(server.raw_from("127.0.0.66", req.as_bytes()).status, 403);
    let page = get(&server, "127.0.0.1", "/allow/refused");
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        page.body
    );
    let json = get(&server, "127.0.0.1", "/allow/api/refused");
    let value: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(value["recent"][0]["user_agent"], XSS_AGENT);
    for r in [&page, &json] {
        let csp = header(r, "content-security-policy").unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(
            !csp.contains("script-src"),
            "no script source at all: {csp}"
        );
        assert_eq!(header(r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(r, "cache-control"), Some("no-store"));
    }
    let cookie = header(&page, "set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    server.stop().unwrap();
}

#[test]
fn explain_answers_as_the_handle_does() {
    let server = serve(admin_app(OPEN));
    let allow = server.allow.clone().unwrap();
    for (ip, path) in [("127.0.0.66", "/x"), ("127.0.0.7", "/"), ("::1", "/allow/")] {
        let r = get(
            &server,
            "127.0.0.1",
            &format!("/allow/api/explain?ip={ip}&path={path}"),
        );
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let e = allow.explain(ip.parse().unwrap(), path);
        assert_eq!(v["text"], e.to_string());
        assert_eq!(v["admitted"], e.admitted());
        let page = get(
            &server,
            "127.0.0.1",
            &format!("/allow/explain?ip={ip}&path={path}"),
        );
        assert!(page.body.contains(&e.to_string()), "{}", page.body);
    }
    // With a route's guard: the admin policy itself.
    let r = get(
        &server,
        "127.0.0.1",
        "/allow/api/explain?ip=127.0.0.2&path=/allow/&policy=rocket-allow-admin",
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (v["admitted"].as_bool(), v["status"].as_u64()),
        (Some(false), Some(403))
    );
    for bad in [
        "ip=nope&path=/",
        "ip=127.0.0.1&path=relative",
        "ip=127.0.0.1&path=/&policy=nope",
    ] {
        let r = get(&server, "127.0.0.1", &format!("/allow/api/explain?{bad}"));
        assert_eq!(r.status, 400, "{bad}");
    }
    server.stop().unwrap();
}

#[test]
fn the_recent_view_is_bounded_newest_first_and_counts_per_minute() {
    let server = serve(admin_app(
        r#"
        [default.allow]
        rules = [{ deny = "127.0.0.66" }]
        [default.allow.policies.dry]
        paths = ["/dry"]
        mode = "report"
        rules = [{ deny = "127.0.0.0/8" }]
        [default.allow.admin]
        recent = 5
        "#,
    ));
    for i in 0..12 {
        assert_eq!(get(&server, "127.0.0.66", &format!("/n{i}")).status, 403);
    }
    // Would-be refusals are admitted (404: no route there) and kept too.
    assert_eq!(get(&server, "127.0.0.8", "/dry/x").status, 404);
    let r = get(&server, "127.0.0.1", "/allow/api/refused");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let recent = v["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 5);
    assert_eq!(recent[0]["path"], "/dry/x");
    assert_eq!(recent[0]["enforced"], false);
    assert_eq!(recent[0]["policy"], "dry");
    assert_eq!(recent[1]["path"], "/n11");
    assert_eq!(recent[1]["rule"], "#0 deny 127.0.0.66");
    let o: serde_json::Value =
        serde_json::from_str(&get(&server, "127.0.0.1", "/allow/api/overview").body).unwrap();
    let minutes = o["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let total = |k: &str| minutes.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((total("refused"), total("would_refuse")), (12, 1));
    assert!(total("allowed") >= 2, "{o}");
    server.stop().unwrap();
}

/// Polls the overview's JSON (10 s at most) until `ready` holds for it.
fn overview_until(
    server: &common::http::Server,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = get(server, "127.0.0.1", "/allow/api/overview").body;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if ready(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {v}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn sources_show_their_last_good_refresh_and_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("office.txt");
    std::fs::write(&file, "127.0.0.5\n").unwrap();
    let server = serve(admin_app(&format!(
        "[default.allow]\nrules = [{{ allow = \"@office\" }}]\n[default.allow.sets]\noffice = {{ file = \"{}\" }}",
        file.display()
    )));
    let v = overview_until(&server, |v| v["sources"][0]["kind"] == "file");
    assert_eq!(v["sources"][0]["name"], "office");
    assert_eq!(v["sources"][0]["location"], file.display().to_string());
    assert!(v["sources"][0]["last_error"].is_null(), "{v}");
    std::fs::write(&file, "not an address!\n").unwrap();
    let v = overview_until(&server, |v| v["sources"][0]["last_error"].is_string());
    assert!(
        v["sources"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("not an address!"),
        "{v}"
    );
    std::fs::write(&file, "127.0.0.6\n").unwrap();
    overview_until(&server, |v| v["sources"][0]["last_ok"].is_string());
    let page = get(&server, "127.0.0.1", "/allow/").body;
    assert!(
        page.contains("@office") && page.contains("not an address!"),
        "{page}"
    );
    server.stop().unwrap();
}

/// With a fleet store, every page says whose view it is: refusals, the chart and rule hits
/// are this instance's (named), bans are the fleet's (issue 27, item 10). Without a store
/// there is one view, and nothing to say.
#[test]
fn with_a_store_every_page_says_which_views_are_this_instances_and_which_the_fleets() {
    // Nothing listens on port 1: the store stays "not connected", the instance is named.
    let server = serve(admin_app(
        "[default.allow]\nrules = []\n[default.allow.store]\nredis = \"redis://127.0.0.1:1/0\"\n",
    ));
    let allow = server.allow.clone().unwrap();
    let instance = allow.store_status().unwrap().instance;
    let scope = |path: &str| {
        let page = get(&server, "127.0.0.1", path);
        assert_eq!(page.status, 200, "{path}");
        let at = page
            .body
            .find(r#"id="scope""#)
            .unwrap_or_else(|| panic!("{path}: no scope note in {}", page.body));
        let end = page.body[at..].find("</p>").unwrap() + at;
        page.body[at..end].to_string()
    };
    for path in ["/allow/", "/allow/refused", "/allow/rules"] {
        let note = scope(path);
        assert!(
            note.contains(&instance) && note.contains("this instance"),
            "{path}: {note}"
        );
    }
    let note = scope("/allow/bans");
    assert!(
        note.contains("every instance") && note.contains(&instance),
        "{note}"
    );
    server.stop().unwrap();
    let server = serve(admin_app("[default.allow]\nrules = []\n"));
    for path in PAGES {
        let page = get(&server, "127.0.0.1", path);
        assert!(
            !page.body.contains(r#"id="scope""#),
            "{path}: {}",
            page.body
        );
    }
    server.stop().unwrap();
}
