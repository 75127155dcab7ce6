//! `examples/admin.rs` (`cargo run --example admin`), launched on a free port with its own
//! configuration: the commands its documentation gives, and the page showing them.

mod common;

#[path = "../examples/admin.rs"]
#[allow(dead_code)]
mod example;

use common::admin::get;
use common::http::serve;

#[test]
fn the_example_serves_the_admin_page_to_loopback_and_shows_who_is_refused() {
    let server = serve(example::app());
    // The documented commands: refused, would be refused (report mode), not an admin.
    let refused = get(&server, "127.0.0.66", "/");
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (403, "Forbidden: your address is not on the list.\n")
    );
    assert_eq!(get(&server, "127.0.0.2", "/api/x").status, 200);
    assert_eq!(get(&server, "127.0.0.2", "/allow/").status, 403);

    let page = get(&server, "127.0.0.1", "/allow/refused");
    assert_eq!(page.status, 200);
    let v: serde_json::Value =
        serde_json::from_str(&get(&server, "127.0.0.1", "/allow/api/refused").body).unwrap();
    let recent = v["recent"].as_array().unwrap();
    let seen = |client: &str, path: &str, enforced: bool| {
        recent
            .iter()
            .any(|r| r["client"] == client && r["path"] == path && r["enforced"] == enforced)
    };
    assert!(seen("127.0.0.66", "/", true), "{v}");
    assert!(seen("127.0.0.2", "/api/x", false), "{v}");
    assert!(seen("127.0.0.2", "/allow/", true), "{v}");
    assert!(page.body.contains("would refuse 403"));
    server.stop().unwrap();
}
