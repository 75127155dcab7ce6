//! Sets fetched from a URL: at ignite and every `refresh_secs`, conditionally, keeping the
//! last good list when a fetch fails. A real HTTP server on 127.0.0.1 serves the list.
#![cfg(feature = "url-lists")]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rocket::http::Status;
use rocket::local::blocking::Client;

/// What the list server answers, and what it was asked.
#[derive(Default)]
struct Feed {
    status: u16,
    body: String,
    etag: Option<String>,
    delay: Duration,
    requests: Vec<String>,
    /// Sent as is instead of a response built from the fields above, then the connection
    /// is closed.
    raw: Option<Vec<u8>>,
    /// Accept the connection and answer nothing while this stays true.
    stall: bool,
    /// Connections held without an answer so far.
    stalled: usize,
}

/// Serves `feed` on 127.0.0.1 at a free port; returns the list's URL.
fn list_server(feed: Arc<Mutex<Feed>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let feed = feed.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let (status, body, etag, delay, raw, stall) = {
                    let mut f = feed.lock().unwrap();
                    f.requests.push(head.clone());
                    if f.stall {
                        f.stalled += 1;
                    }
                    (
                        f.status,
                        f.body.clone(),
                        f.etag.clone(),
                        f.delay,
                        f.raw.clone(),
                        f.stall,
                    )
                };
                if stall {
                    // Held open, unanswered, until the test lets go (a minute at most).
                    let until = Instant::now() + Duration::from_secs(60);
                    while feed.lock().unwrap().stall && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    return;
                }
                if let Some(raw) = raw {
                    let _ = s.write_all(&raw);
                    return;
                }
                std::thread::sleep(delay);
                let matches = etag.as_ref().is_some_and(|e| {
                    head.to_ascii_lowercase()
                        .contains(&format!("if-none-match: {}", e.to_ascii_lowercase()))
                });
                let (status, body) = if matches {
                    (304, String::new())
                } else {
                    (status, body)
                };
                let etag = etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\n{etag}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://127.0.0.1:{port}/list.txt")
}

fn feed(body: &str) -> Arc<Mutex<Feed>> {
    Arc::new(Mutex::new(Feed {
        status: 200,
        body: body.into(),
        etag: Some("\"v1\"".into()),
        ..Feed::default()
    }))
}

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
        [default.allow]
        rules = [{{ allow = "@feed" }}, {{ deny = "all" }}]
        [default.allow.sets]
        feed = {{ url = "{url}", refresh_secs = 1, timeout_secs = 1 {extra} }}
        "#
    )
}

fn wait_for(client: &Client, peer: &str, want: Status) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(client, peer, &[]) != want {
        assert!(Instant::now() < deadline, "{peer}: never {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (15 s at most) until the server has had `n` requests.
fn wait_requests(feed: &Arc<Mutex<Feed>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while feed.lock().unwrap().requests.len() < n {
        assert!(Instant::now() < deadline, "fewer than {n} fetches");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fetched_at_ignite_refreshed_conditionally_and_kept_on_failure() {
    let f = feed("# feed\n203.0.113.0/24\n");
    let url = list_server(f.clone());
    let client = client(app(&config(&url, "")));
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Ok);
    assert_eq!(status(&client, "198.51.100.7:1", &[]), Status::Forbidden);
    // Asked for uncompressed, so that the response's own framing says where it ends.
    assert!(
        f.lock().unwrap().requests[0]
            .to_ascii_lowercase()
            .contains("accept-encoding: identity"),
        "{:?}",
        f.lock().unwrap().requests
    );
    // Unchanged: the refresh is conditional and gets 304.
    wait_requests(&f, 2);
    assert!(
        f.lock().unwrap().requests[1]
            .to_ascii_lowercase()
            .contains("if-none-match: \"v1\""),
        "{:?}",
        f.lock().unwrap().requests
    );
    // Changed: picked up.
    {
        let mut f = f.lock().unwrap();
        f.body = "198.51.100.7\n".into();
        f.etag = Some("\"v2\"".into());
    }
    wait_for(&client, "198.51.100.7:1", Status::Ok);
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Forbidden);
    // A server error, a bad line, a timeout: the last good list stays.
    for (code, body, delay) in [
        (500, "198.51.100.7\n", Duration::ZERO),
        (200, "203.0.113.9\nnot an address\n", Duration::ZERO),
        (200, "203.0.113.9\n", Duration::from_secs(3)),
    ] {
        let seen = {
            let mut f = f.lock().unwrap();
            f.status = code;
            f.body = body.into();
            f.etag = Some(format!("\"{code}{}\"", body.len()));
            f.delay = delay;
            f.requests.len()
        };
        wait_requests(&f, seen + 2);
        assert_eq!(
            status(&client, "198.51.100.7:1", &[]),
            Status::Ok,
            "{code} {body:?}"
        );
        assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Forbidden);
    }
    assert!(!logged("allow.sets.feed").is_empty());
}

#[test]
fn a_failed_fetch_at_ignite_fails_unless_warned() {
    let f = feed("");
    f.lock().unwrap().status = 500;
    let url = list_server(f.clone());
    ignite_error(app(&config(&url, "")), &["allow.sets.feed.url", "HTTP 500"]);
    let client = client(app(&config(&url, ", on_error = \"warn\"")));
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Forbidden);
    // And once the list is there, it is used.
    {
        let mut f = f.lock().unwrap();
        f.status = 200;
        f.body = "203.0.113.0/24\n".into();
    }
    wait_for(&client, "203.0.113.9:1", Status::Ok);
    // A 304 to the first, unconditional fetch is no list at all.
    let f304 = feed("");
    f304.lock().unwrap().status = 304;
    f304.lock().unwrap().etag = None;
    let url304 = list_server(f304);
    ignite_error(
        app(&config(&url304, "")),
        &["allow.sets.feed.url", "HTTP 304"],
    );
    ignite_error(
        app(&config("ftp://x/y", "")),
        &["allow.sets.feed.url", "not an http"],
    );
}

/// The app denies `@abuse` (a URL list) and admits everyone else.
fn abuse_config(url: &str, extra: &str) -> String {
    format!(
        r#"
        [default.allow]
        rules = [{{ deny = "@abuse" }}, {{ allow = "all" }}]
        [default.allow.sets]
        abuse = {{ url = "{url}", refresh_secs = 1, timeout_secs = 2 {extra} }}
        "#
    )
}

/// A raw HTTP/1.1 200 response: these header lines, then `body`.
fn raw(headers: &[&str], body: &str) -> Vec<u8> {
    let mut out = String::from("HTTP/1.1 200 OK\r\nConnection: close\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// A raw response with a Content-Length that matches `body`.
fn sized(content_type: &str, body: &str) -> Vec<u8> {
    let length = format!("Content-Length: {}", body.len());
    let content_type = format!("Content-Type: {content_type}");
    raw(&[&content_type, &length], body)
}

/// Waits (15 s at most) until a captured line has every one of `needles`.
fn wait_logged(needles: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !logged(needles[0])
        .iter()
        .any(|l| needles.iter().all(|n| l.contains(n)))
    {
        assert!(
            Instant::now() < deadline,
            "nothing logged with all of {needles:?}; {:#?}",
            logged(needles[0])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_200_that_is_not_the_list_never_widens_or_narrows_access() {
    // 127.0.0.2 is listed last, so a list cut short at a line break loses it.
    let good = "127.0.0.3\n127.0.0.4\n127.0.0.2\n";
    let f = feed(good);
    f.lock().unwrap().etag = None;
    let url = list_server(f.clone());
    let client = client(app(&abuse_config(&url, "")));
    assert_eq!(status(&client, "127.0.0.2:1", &[]), Status::Forbidden);
    assert_eq!(status(&client, "127.0.0.9:1", &[]), Status::Ok);
    // Each of these would admit 127.0.0.2 or refuse 127.0.0.9 if it were taken as the list.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("an empty body", sized("text/plain", ""), "empty"),
        (
            "comments only",
            sized("text/plain", "# nothing listed today\n"),
            "empty",
        ),
        ("blank lines", sized("text/plain", "\n\n   \n\n"), "empty"),
        (
            "an HTML error page",
            sized(
                "text/html; charset=utf-8",
                "<html><body>502 Bad Gateway</body></html>\n",
            ),
            "text/html",
        ),
        (
            "a list served as HTML",
            sized("text/html", "127.0.0.3\n127.0.0.4\n127.0.0.9\n"),
            "text/html",
        ),
        (
            "a list served as JSON",
            sized("application/json", "127.0.0.3\n127.0.0.4\n127.0.0.9\n"),
            "application/json",
        ),
        (
            "no Content-Length, not chunked, cut at a line break",
            raw(&["Content-Type: text/plain"], "127.0.0.3\n127.0.0.4\n"),
            "the response's end cannot be known",
        ),
        (
            "a Content-Length longer than the body",
            raw(
                &["Content-Type: text/plain", "Content-Length: 40"],
                "127.0.0.3\n127.0.0.4\n",
            ),
            &url,
        ),
        (
            "a chunked body without its last chunk",
            raw(
                &["Content-Type: text/plain", "Transfer-Encoding: chunked"],
                "14\r\n127.0.0.3\n127.0.0.4\n\r\n",
            ),
            &url,
        ),
        (
            "more than half of the list gone",
            sized("text/plain", "127.0.0.3\n"),
            "more than half",
        ),
    ];
    for (what, response, needle) in cases {
        let seen = {
            let mut f = f.lock().unwrap();
            f.raw = Some(response);
            f.requests.len()
        };
        // The next fetch starts only after this one was dealt with.
        wait_requests(&f, seen + 2);
        assert_eq!(
            status(&client, "127.0.0.2:1", &[]),
            Status::Forbidden,
            "{what}"
        );
        assert_eq!(status(&client, "127.0.0.9:1", &[]), Status::Ok, "{what}");
        wait_logged(&[&url, needle, "keeping the last good list"]);
    }
    // A good list is still taken afterwards, chunked or sized, as plain text or octets.
    f.lock().unwrap().raw = Some(raw(
        &[
            "Content-Type: text/plain; charset=utf-8",
            "Transfer-Encoding: chunked",
        ],
        "a\r\n127.0.0.9\n\r\n14\r\n127.0.0.3\n127.0.0.4\n\r\n0\r\n\r\n",
    ));
    wait_for(&client, "127.0.0.9:1", Status::Forbidden);
    assert_eq!(status(&client, "127.0.0.2:1", &[]), Status::Ok);
    f.lock().unwrap().raw = Some(sized("application/octet-stream", good));
    wait_for(&client, "127.0.0.2:1", Status::Forbidden);
    let no_type = format!("Content-Length: {}", "127.0.0.9\n".len() + good.len());
    f.lock().unwrap().raw = Some(raw(&[&no_type], &format!("127.0.0.9\n{good}")));
    wait_for(&client, "127.0.0.9:1", Status::Forbidden);
}

#[test]
fn allow_shrink_lets_a_list_empty_or_shrink() {
    let f = feed("127.0.0.3\n127.0.0.4\n127.0.0.2\n");
    f.lock().unwrap().etag = None;
    let url = list_server(f.clone());
    let client = client(app(&abuse_config(&url, ", allow_shrink = true")));
    assert_eq!(status(&client, "127.0.0.2:1", &[]), Status::Forbidden);
    f.lock().unwrap().body = "127.0.0.3\n".into();
    wait_for(&client, "127.0.0.2:1", Status::Ok);
    f.lock().unwrap().body = "127.0.0.2\n".into();
    wait_for(&client, "127.0.0.2:1", Status::Forbidden);
    f.lock().unwrap().body = "# none today\n".into();
    wait_for(&client, "127.0.0.2:1", Status::Ok);
    // The key is checked like the others.
    ignite_error(
        app(&abuse_config(&url, ", allow_shrink = \"yes\"")),
        &["allow.sets.abuse.allow_shrink", "true or false"],
    );
    ignite_error(
        app(&abuse_config(&url, ", allow_shrinking = true")),
        &["abuse", "unknown key `allow_shrinking`"],
    );
}

#[test]
fn an_empty_list_at_ignite_is_a_failed_fetch_unless_shrinking_is_allowed() {
    let f = feed("# nothing yet\n");
    f.lock().unwrap().etag = None;
    let url = list_server(f.clone());
    ignite_error(
        app(&abuse_config(&url, "")),
        &["allow.sets.abuse.url", &url, "empty"],
    );
    // With on_error = "warn" the app starts with the set empty, and takes the list once it
    // has entries.
    let warned = client(app(&abuse_config(&url, ", on_error = \"warn\"")));
    assert_eq!(status(&warned, "127.0.0.2:1", &[]), Status::Ok);
    f.lock().unwrap().body = "127.0.0.2\n".into();
    wait_for(&warned, "127.0.0.2:1", Status::Forbidden);
    drop(warned);
    // With allow_shrink = true an empty list is a list.
    f.lock().unwrap().body = String::new();
    let shrinkable = client(app(&abuse_config(&url, ", allow_shrink = true")));
    assert_eq!(status(&shrinkable, "127.0.0.2:1", &[]), Status::Ok);
}

#[test]
fn a_feed_down_at_ignite_is_retried_within_seconds() {
    let f = feed("");
    f.lock().unwrap().status = 503;
    let url = list_server(f.clone());
    let client = client(app(&format!(
        r#"
        [default.allow]
        rules = [{{ deny = "@abuse" }}, {{ allow = "all" }}]
        [default.allow.sets]
        abuse = {{ url = "{url}", refresh_secs = 3600, timeout_secs = 2, on_error = "warn" }}
        "#
    )));
    assert_eq!(status(&client, "127.0.0.2:1", &[]), Status::Ok);
    {
        let mut f = f.lock().unwrap();
        f.status = 200;
        f.body = "127.0.0.2\n".into();
    }
    // Not an hour: the first retry comes a second after the failure.
    let deadline = Instant::now() + Duration::from_secs(6);
    while status(&client, "127.0.0.2:1", &[]) != Status::Forbidden {
        assert!(Instant::now() < deadline, "the list was not retried");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stalled_feed_does_not_hold_up_the_other_lists() {
    let slow = feed("127.0.0.5\n");
    let quick = feed("127.0.0.6\n");
    let (slow_url, quick_url) = (list_server(slow.clone()), list_server(quick.clone()));
    let client = client(app(&format!(
        r#"
        [default.allow]
        rules = [{{ deny = "@a_slow" }}, {{ deny = "@b_quick" }}, {{ allow = "all" }}]
        [default.allow.sets]
        a_slow = {{ url = "{slow_url}", refresh_secs = 1, timeout_secs = 60 }}
        b_quick = {{ url = "{quick_url}", refresh_secs = 1, timeout_secs = 60 }}
        "#
    )));
    assert_eq!(status(&client, "127.0.0.6:1", &[]), Status::Forbidden);
    slow.lock().unwrap().stall = true;
    let deadline = Instant::now() + Duration::from_secs(15);
    while slow.lock().unwrap().stalled == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow feed was not asked again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        let mut q = quick.lock().unwrap();
        q.body = "127.0.0.7\n".into();
        q.etag = Some("\"v2\"".into());
    }
    // Within a few refreshes, while the slow feed still holds its fetch.
    let deadline = Instant::now() + Duration::from_secs(6);
    while status(&client, "127.0.0.7:1", &[]) != Status::Forbidden {
        assert!(
            Instant::now() < deadline,
            "the quick list waited for the stalled one"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&client, "127.0.0.6:1", &[]), Status::Ok);
    assert_eq!(status(&client, "127.0.0.5:1", &[]), Status::Forbidden);
    slow.lock().unwrap().stall = false;
}

#[test]
fn a_leading_byte_order_mark_is_not_part_of_the_list() {
    let f = feed("\u{feff}127.0.0.2\n127.0.0.3\n");
    let url = list_server(f.clone());
    let client = client(app(&abuse_config(&url, "")));
    assert_eq!(status(&client, "127.0.0.2:1", &[]), Status::Forbidden);
    assert_eq!(status(&client, "127.0.0.3:1", &[]), Status::Forbidden);
}
