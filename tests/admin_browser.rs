//! The admin page in a real browser (headless chromium through chromedriver): ban through
//! the form and see the next request refused, unban, explain, read-only mode, a refused
//! client, a form on another origin, a user agent made to run script. Also takes the
//! screenshots in the docs: `ROCKET_ALLOW_SCREENSHOTS=docs/images cargo test --test
//! admin_browser` writes them there (every run writes them to target/admin-screenshots).

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{with_browser, Browser};
use common::admin::*;
use common::http::{serve, Server};

/// The app is open except to 127.0.0.66; /dry is a policy in report mode (would-be
/// refusals); the admin page keeps its built-in policy (127.0.0.1 and ::1).
const APP: &str = r#"
[default.allow]
rules = [{ deny = "127.0.0.66" }, { allow = "@loopback" }, { deny = "all" }]
[default.allow.policies.dry]
paths = ["/dry"]
mode = "report"
rules = [{ allow = "127.0.0.1" }, { deny = "all" }]
"#;

fn url(server: &Server, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", server.port)
}

/// Where screenshots go: target/admin-screenshots, and `$ROCKET_ALLOW_SCREENSHOTS` if set.
fn screenshot(b: &Browser, name: &str) {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/admin-screenshots");
    b.screenshot(&target.join(name));
    if let Ok(dir) = std::env::var("ROCKET_ALLOW_SCREENSHOTS") {
        b.screenshot(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(dir)
                .join(name),
        );
    }
}

#[test]
fn ban_through_the_form_refuses_the_next_request_then_unban_and_explain() {
    let server = serve(admin_app(APP));
    let allow = server.allow.clone().unwrap();
    // Some traffic for the page (and the screenshots) to show.
    for (from, path, agent) in [
        (
            "127.0.0.66",
            "/wp-login.php",
            "Mozilla/5.0 (compatible; scanner/1.2)",
        ),
        ("127.0.0.66", "/.env", "python-requests/2.31"),
        ("127.0.0.20", "/dry/report", "curl/8.5.0"),
        ("127.0.0.21", "/dry/export?all=1", "Go-http-client/1.1"),
    ] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
        );
        server.raw_from(from, req.as_bytes());
    }
    allow
        .ban_with_reason(
            "127.0.0.0/28",
            Some(std::time::Duration::from_secs(86_400)),
            Some("load test gone wrong"),
        )
        .unwrap();
    assert_eq!(get(&server, "127.0.0.9", "/").status, 403);
    allow.unban("127.0.0.0/28").unwrap();
    assert_eq!(get(&server, "127.0.0.9", "/").status, 200);

    with_browser(|b| {
        b.goto(&url(&server, "/allow/"));
        assert_eq!(b.js("return document.title"), "Overview · rocket-allow");
        assert_eq!(b.count("svg#chart rect"), b.count("svg#chart rect[fill]"));
        assert!(b.count("svg#chart rect") >= 1, "{}", b.source());

        // Ban 127.0.0.9 through the form.
        b.goto(&url(&server, "/allow/bans"));
        b.fill("#ban input[name=target]", "127.0.0.9");
        b.select("#ban select[name=duration]", "86400");
        b.fill("#ban input[name=reason]", "brute force on /login");
        b.submit("#ban button[type=submit]");
        assert!(b.url().ends_with("/allow/bans"), "{}", b.url());
        assert_eq!(b.text("#bans code.target"), "127.0.0.9/32");
        assert!(b.text("#bans").contains("brute force on /login"));
        assert!(b.text("#bans").contains("manual"));
        // The next request from that address is refused.
        assert_eq!(get(&server, "127.0.0.9", "/").status, 403);
        allow
            .ban_with_reason("127.0.0.66", None, Some("scanner"))
            .unwrap();
        b.goto(&url(&server, "/allow/bans"));
        screenshot(b, "admin-bans.png");
        b.goto(&url(&server, "/allow/"));
        screenshot(b, "admin-overview.png");

        // Explain it, through the explain form.
        b.goto(&url(&server, "/allow/explain"));
        b.fill("#explain input[name=ip]", "127.0.0.9");
        b.fill("#explain input[name=path]", "/login");
        b.submit("#explain button[type=submit]");
        let answer = b.text("#answer");
        let expected = allow
            .explain("127.0.0.9".parse().unwrap(), "/login")
            .to_string();
        assert!(answer.contains(&expected), "{answer} / {expected}");
        assert!(answer.contains("by ban"), "{answer}");

        // Unban from the bans page.
        b.goto(&url(&server, "/allow/bans?q=127.0.0.9"));
        assert_eq!(b.count("#bans code.target"), 1, "the search leaves one ban");
        b.submit("#bans form button[type=submit]");
        assert!(b.url().ends_with("/allow/bans"), "{}", b.url());
        assert_eq!(get(&server, "127.0.0.9", "/").status, 200);
        assert!(allow.is_banned("127.0.0.9".parse().unwrap()).is_none());

        // The refused list: one click bans a client, and explains it.
        b.goto(&url(&server, "/allow/refused"));
        assert!(
            b.text("#recent").contains("would refuse 403"),
            "{}",
            b.source()
        );
        b.submit("#recent button[title='Ban 127.0.0.21 for an hour']");
        assert!(b.url().ends_with("/allow/bans"), "{}", b.url());
        assert!(
            allow
                .bans()
                .iter()
                .any(|x| x.target.to_string() == "127.0.0.21/32"),
            "{:?}",
            allow.bans()
        );
        // The rules page marks what never matched.
        b.goto(&url(&server, "/allow/rules"));
        assert!(b.count("tr.never") >= 1, "{}", b.source());
    });
    server.stop().unwrap();
}

#[test]
fn a_refused_client_gets_the_policys_refusal_in_the_browser() {
    // The browser comes from 127.0.0.1; this admin policy admits 127.0.0.3 only.
    let server = serve(admin_app(OPS_ONLY));
    with_browser(|b| {
        b.goto(&url(&server, "/allow/bans"));
        assert_eq!(b.text("body"), "custom 403 page");
        assert_eq!(b.count("form"), 0);
    });
    server.stop().unwrap();
}

#[test]
fn read_only_in_the_browser_shows_everything_and_no_form_changes_anything() {
    let server = serve(admin_app(&format!(
        "{APP}\n[default.allow.admin]\nread_only = true"
    )));
    let allow = server.allow.clone().unwrap();
    allow.ban("127.0.0.50", None).unwrap();
    get(&server, "127.0.0.66", "/");
    with_browser(|b| {
        for path in PAGES {
            b.goto(&url(&server, path));
            assert!(b.text("main").contains("Read-only"), "{path}");
            assert_eq!(b.count("form[method=post]"), 0, "{path}: {}", b.source());
            assert_eq!(b.count("button[title^=Ban]"), 0, "{path}");
        }
        b.goto(&url(&server, "/allow/bans"));
        assert_eq!(b.text("#bans code.target"), "127.0.0.50/32");
    });
    assert_eq!(allow.bans().len(), 1);
    server.stop().unwrap();
}

/// A page on another origin with a copy of the ban form, the real token included (as if
/// it had leaked): only the origin checks stand between it and a ban.
#[rocket::get("/")]
fn evil(page: &rocket::State<String>) -> rocket::response::content::RawHtml<String> {
    rocket::response::content::RawHtml(page.inner().clone())
}

#[test]
fn a_form_posted_from_another_origin_changes_nothing() {
    let server = serve(admin_app(APP));
    let allow = server.allow.clone().unwrap();
    with_browser(|b| {
        b.goto(&url(&server, "/allow/bans"));
        let token = b.attr("#ban input[name=csrf]", "value").unwrap();
        let page = format!(
            r#"<!DOCTYPE html><title>win a prize</title>
            <form id="f" method="post" action="{}">
              <input name="csrf" value="{token}"><input name="target" value="127.0.0.77">
              <input name="duration" value="0"><button type="submit">claim</button>
            </form>"#,
            url(&server, "/allow/bans")
        );
        let attacker = serve(
            rocket::build()
                .manage(page)
                .mount("/", rocket::routes![evil]),
        );
        // Same site, another port (Sec-Fetch-Site: same-site), then another site.
        for host in ["127.0.0.1", "localhost"] {
            b.goto(&format!("http://{host}:{}/", attacker.port));
            assert_eq!(b.js("return document.title"), "win a prize");
            b.submit("#f button");
            assert_eq!(b.text("body"), "custom 403 page", "from {host}");
            assert!(allow.bans().is_empty(), "a post from {host} banned");
            assert_eq!(get(&server, "127.0.0.77", "/").status, 200);
        }
        attacker.stop().unwrap();
        // The same form on the page itself works (the check above is not vacuous).
        b.goto(&url(&server, "/allow/bans"));
        b.fill("#ban input[name=target]", "127.0.0.77");
        b.submit("#ban button[type=submit]");
        assert_eq!(
            b.count("#bans code.target"),
            1,
            "{:?}",
            common::logged("refused")
        );
        assert_eq!(get(&server, "127.0.0.77", "/").status, 403);
    });
    server.stop().unwrap();
}

#[test]
fn a_user_agent_made_of_script_is_shown_as_text_and_runs_nothing() {
    let server = serve(admin_app(APP));
    let agent = "<script>document.body.dataset.xss='script'</script>\"><img src=x onerror=\"document.body.dataset.xss='img'\">";
    let req = format!(
        "GET /<b>?x=\"><svg/onload=alert(1)> HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    )
    .replace("<b>", "%3Cb%3E");
    let r = server.raw_from("127.0.0.66", req.as_bytes());
    assert!(r.status == 403 || r.status == 400, "{r:?}");
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(server.raw_from("127.0.0.66", req.as_bytes()).status, 403);
    with_browser(|b| {
        b.goto(&url(&server, "/allow/refused"));
        assert_eq!(b.text("#recent td.ua"), agent);
        assert_eq!(b.js("return document.body.dataset.xss === undefined"), true);
        assert_eq!(b.count("#recent img"), 0);
        assert_eq!(b.count("#recent script"), 0);
        assert_eq!(
            b.js("return document.title"),
            "Who is refused · rocket-allow"
        );
    });
    server.stop().unwrap();
}
