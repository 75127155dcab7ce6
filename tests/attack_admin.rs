//! An attacker's (or a bad day's) pass over the admin page on a launched app: one click
//! that would lock the operator out of the page, and the page with many bans.

mod common;

use common::admin::*;
use common::http::serve;
use common::*;

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
