//! `examples/geo.rs` with its own configuration on the test databases, launched on a free
//! port: each curl line of its documentation, over HTTP.

mod common;

#[path = "../examples/geo.rs"]
#[allow(dead_code)]
mod example;

use common::http::serve;

#[test]
fn the_examples_curl_lines_answer_as_documented() {
    let server = serve(example::app());
    let get = |client: &str| {
        let line = format!("X-Forwarded-For: {client}");
        server.request("GET", "/", &[line.as_bytes()])
    };
    let r = get("81.2.69.142");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello, 81.2.69.142!\n"));
    for (client, rule) in [
        ("2a02:d0c0::1", "rule #1 deny country:RU (2a02:d0c0::/29)"),
        ("1.0.0.1", "rule #2 deny asn:15169 (1.0.0.0/24)"),
        ("192.0.2.1", "rule #5 deny all"),
    ] {
        let r = get(client);
        assert_eq!(r.status, 403, "{client}: {}", r.body);
        assert!(
            r.body.contains(client) && r.body.contains(rule),
            "{client}: {}",
            r.body
        );
    }
    let r = get("89.160.20.130");
    assert_eq!(r.status, 200, "the office: {}", r.body);
    server.stop().unwrap();
}
