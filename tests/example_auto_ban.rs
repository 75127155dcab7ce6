//! `examples/auto_ban.rs`, launched on a free port with its own configuration: the
//! commands its documentation gives, over real HTTP.

mod common;

#[path = "../examples/auto_ban.rs"]
#[allow(dead_code)]
mod example;

use common::http::serve;

#[test]
fn the_examples_commands_do_what_it_says() {
    let server = serve(example::app());
    let via = |method: &str, path: &str, client: &str, body: &str| {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        server.raw(req.as_bytes())
    };
    for _ in 0..6 {
        assert_eq!(via("GET", "/wp-login.php", "203.0.113.7", "").status, 404);
    }
    assert_eq!(via("GET", "/", "203.0.113.7", "").status, 403);
    for i in 0..3 {
        let r = via("POST", "/login", "203.0.113.8", "password=guess");
        assert_eq!(r.body, "wrong password\n", "attempt {i}");
    }
    let r = via("POST", "/login", "203.0.113.8", "password=guess");
    assert_eq!(r.body, "wrong password; you are banned now\n");
    // The office behind the same proxy is never banned.
    for _ in 0..10 {
        via("POST", "/login", "198.51.100.20", "password=guess");
        via("GET", "/nope", "198.51.100.20", "");
    }
    assert_eq!(via("GET", "/", "198.51.100.20", "").status, 200);
    let bans = via("GET", "/bans", "192.0.2.1", "").body;
    assert!(
        bans.contains("203.0.113.7/32 by auto_ban scanners: 6 responses 404 in 60 s"),
        "{bans}"
    );
    assert!(
        bans.contains("203.0.113.8/32 by auto_ban login: 4 strikes in 300 s"),
        "{bans}"
    );
    assert_eq!(bans.lines().count(), 2, "{bans}");
    server.stop().unwrap();
}
