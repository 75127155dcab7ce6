//! The access log through the fairing: line contents, JSON, rotation. Faults: log_faults.rs.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use rocket::http::{Header, Status};

fn config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
        [default.allow]
        rules = [{{ allow = "127.0.0.1" }}, {{ allow = "10.1.2.3/8" }}, {{ deny = "192.0.2.0/24" }}]
        [default.allow.access_log]
        path = "{}"
        {extra}
        "#,
        dir.join("access.log").display()
    )
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn text_lines_carry_flask_allows_fields_and_more() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(app(&config(dir.path(), "")));
    let ua = Header::new("User-Agent", "test-agent/1.0");
    client
        .get("/?q=1")
        .remote(addr("127.0.0.1:1"))
        .header(ua.clone())
        .header(Header::new("Host", "app.example:8000"))
        .dispatch();
    client
        .post("/x")
        .remote(addr("192.0.2.9:1"))
        .header(ua.clone())
        .dispatch();
    client.get("/").remote(addr("10.9.9.9:1")).dispatch();
    client.get("/").remote(addr("[2001:db8::5]:1")).dispatch();
    client.get("/").dispatch();
    drop(client); // flushes the writer thread

    let log = read(&dir.path().join("access.log"));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert!(
        lines[0].ends_with("-    INFO - Access log started"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(
            " -    INFO - 127.0.0.1 allowed by rule #0 allow 127.0.0.1 (127.0.0.1/32) GET http://app.example:8000/?q=1 test-agent/1.0"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(
            "-   ERROR - 192.0.2.9 denied (403) by rule #2 deny 192.0.2.0/24 (192.0.2.0/24) POST "
        ) && lines[2].contains("/x test-agent/1.0"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3]
            .contains("-    INFO - 10.9.9.9 allowed by rule #1 allow 10.1.2.3/8 (10.0.0.0/8) GET "),
        "{}",
        lines[3]
    );
    assert!(
        lines[3].ends_with(" -"),
        "no user agent is shown as -: {}",
        lines[3]
    );
    assert!(
        lines[4].contains("- WARNING - 2001:db8::5 allowed by default (no rule matched) GET "),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].contains(
            "-   ERROR - unknown-address denied (403) by unreadable client address [no client address"
        ),
        "{}",
        lines[5]
    );
    // Timestamps: RFC 3339, UTC, milliseconds.
    let ts = lines[1].split(" - ").next().unwrap();
    assert_eq!(ts.len(), "2026-01-01T00:00:00.000Z".len(), "{ts}");
    assert!(ts.ends_with('Z'));
}

#[test]
fn json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(app(&config(dir.path(), "format = \"json\"")));
    client
        .get("/p")
        .remote(addr("192.0.2.9:1"))
        .header(Header::new("User-Agent", "a\"b"))
        .dispatch();
    drop(client);
    let log = read(&dir.path().join("access.log"));
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["message"], "Access log started");
    let d = &lines[1];
    assert_eq!(d["level"], "ERROR");
    assert_eq!(d["client"], "192.0.2.9");
    assert_eq!(d["verdict"], "deny");
    assert_eq!(d["rule"]["index"], 2);
    assert_eq!(d["rule"]["written"], "192.0.2.0/24");
    assert_eq!(d["rule"]["normalized"], "192.0.2.0/24");
    assert_eq!(d["method"], "GET");
    assert!(d["url"].as_str().unwrap().ends_with("/p"));
    assert_eq!(d["user_agent"], "a\"b");
    assert!(d.get("peer").is_none());
}

/// Requests with numbered paths, so every line can be found again.
fn numbered_requests(toml: &str, n: usize) {
    let client = client(app(toml));
    for i in 0..n {
        let res = client
            .get(format!("/req-{i:04}"))
            .remote(addr("127.0.0.1:1"))
            .dispatch();
        assert_eq!(res.status(), Status::NotFound); // allowed; no such route
    }
}

#[test]
fn rotation_keeps_every_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let max = 600;
    numbered_requests(
        &config(
            dir.path(),
            &format!("max_bytes = {max}\nbackup_count = 100"),
        ),
        60,
    );
    let base = dir.path().join("access.log");
    let rotated = (1..)
        .take_while(|k| dir.path().join(format!("access.log.{k}")).exists())
        .count();
    assert!(rotated > 5, "expected several rotations, got {rotated}");
    // Oldest first: access.log.N ... access.log.1, then the live file.
    let files = (1..=rotated)
        .rev()
        .map(|k| dir.path().join(format!("access.log.{k}")))
        .chain(std::iter::once(base));
    let mut all = String::new();
    for f in files {
        let text = read(&f);
        assert!(
            text.len() as u64 <= max,
            "{} has {} bytes",
            f.display(),
            text.len()
        );
        assert!(
            text.ends_with('\n'),
            "a line was split across files in {}",
            f.display()
        );
        all.push_str(&text);
    }
    let paths: Vec<String> = all
        .lines()
        .filter_map(|l| l.split(" GET ").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let expected: Vec<String> = (0..60).map(|i| format!("req-{i:04}")).collect();
    assert_eq!(
        paths, expected,
        "lines lost or out of order across rotations"
    );
}

#[test]
fn rotation_drops_the_oldest_beyond_backup_count() {
    let dir = tempfile::tempdir().unwrap();
    numbered_requests(&config(dir.path(), "max_bytes = 400\nbackup_count = 2"), 40);
    let names: Vec<String> = {
        let mut v: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names, ["access.log", "access.log.1", "access.log.2"]);
    let live = read(&dir.path().join("access.log"));
    assert!(
        live.contains("/req-0039 "),
        "newest line in the live file: {live}"
    );
    let older = read(&dir.path().join("access.log.2"));
    assert!(!older.contains("/req-0000 "), "oldest lines were dropped");
}

#[test]
fn existing_log_is_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("access.log"), "earlier line\n").unwrap();
    numbered_requests(&config(dir.path(), ""), 1);
    let log = read(&dir.path().join("access.log"));
    assert!(log.starts_with("earlier line\n"), "{log}");
    assert_eq!(log.lines().count(), 3);
}

/// A rule's text is printed as written, but a control character in it (a rule built in
/// code from untrimmed input: parsing trims it) cannot split the line.
#[test]
fn a_rule_written_with_a_line_break_stays_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut config = rocket_allow::AllowConfig::new(vec![
        rocket_allow::Rule::deny("203.0.113.7\n").unwrap(),
        rocket_allow::Rule::allow("all").unwrap(),
    ]);
    config.access_log = Some(rocket_allow::AccessLogConfig::new(&log));
    let client =
        client(rocket::custom(figment("")).attach(rocket_allow::AllowFairing::custom(config)));
    assert_eq!(status(&client, "203.0.113.7:1", &[]), Status::Forbidden);
    drop(client);
    let text = read(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].contains("denied (403) by rule #0 deny 203.0.113.7\\u{a} (203.0.113.7/32)"),
        "{}",
        lines[1]
    );
}
