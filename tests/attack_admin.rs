//! An attacker's (or a bad day's) pass over the admin page on a launched app: one click
//! that would lock the operator out of the page, and the page with many bans.

mod common;

use common::admin::*;
use common::http::serve;

/// The app is open to every address but 127.0.0.66; the admin page keeps its built-in
/// policy (127.0.0.1 and ::1).
const OPEN: &str = r#"
[default.allow]
rules = [{ deny = "127.0.0.66" }]
"#;

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
    let token = csrf_cookie(&page);
    for target in [
        "127.0.0.0/24",
        "127.0.0.1",
        "0.0.0.0/0",
        "::ffff:127.0.0.1",
        "::ffff:0:0/96",
    ] {
        let body = format!("csrf={token}&target={target}&duration=3600&reason=oops");
        let r = post_from_page(&server, "/allow/bans", &body, &token);
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(r.body.contains("you"), "{target}: {}", r.body);
        assert!(allow.bans().is_empty(), "{target}: {:?}", allow.bans());
        assert_eq!(get(&server, "127.0.0.1", "/allow/").status, 200, "{target}");
    }
    // Bans that leave the operator in are made as always.
    let body = format!("csrf={token}&target=127.0.0.66&duration=3600&reason=probing");
    assert_eq!(
        post_from_page(&server, "/allow/bans", &body, &token).status,
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
