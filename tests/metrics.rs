//! Metrics through the `metrics` facade, read back through metrics-util's debugging
//! recorder: every label value of `rocket_allow_decisions_total`, lost log lines, reloads
//! and failed refreshes of every source, and the rules and bans gauges.
//!
//! One recorder serves the whole binary, so the tests take turns (`turn()`), and each reads
//! what changed since its last look (the debugging recorder resets on every snapshot).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::recorder::snapshotter;
use common::*;
use metrics_util::debugging::DebugValue;
use rocket::http::{Header, Status};
use rocket_allow::AllowHandle;

/// One test at a time: they share the recorder.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let guard = TURN.lock().unwrap_or_else(|e| e.into_inner());
    snapshotter().snapshot(); // forget what earlier tests left
    guard
}

/// `name{k=v,...}` (labels sorted) → counter increase or gauge value since the last look.
fn look() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let v = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.0,
            DebugValue::Histogram(_) => continue,
        };
        out.insert(name, v);
    }
    out
}

/// Counter increases add up over looks until `pred` holds of the sum (15 s at most).
fn until(
    what: &str,
    mut seen: HashMap<String, f64>,
    pred: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pred(&seen) {
        assert!(Instant::now() < deadline, "{what}: {seen:#?}");
        std::thread::sleep(Duration::from_millis(20));
        for (k, v) in look() {
            if k.starts_with("rocket_allow_rules") || k.starts_with("rocket_allow_bans") {
                seen.insert(k, v);
            } else {
                *seen.entry(k).or_default() += v;
            }
        }
    }
    seen
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn decisions(policy: &str, verdict: &str, enforced: bool, by: &str) -> String {
    format!("rocket_allow_decisions_total{{by={by},enforced={enforced},policy={policy},verdict={verdict}}}")
}

#[test]
fn every_label_value_of_decisions_is_counted() {
    let _turn = turn();
    let client = client(app_with_catch_all(
        r#"
        [default.allow]
        default = "deny"
        trusted_proxies = ["10.0.0.1"]
        rules = [{ allow = "127.0.0.1" }, { deny = "192.0.2.0/24" }]
        [default.allow.policies.admin]
        paths = ["/admin"]
        mode = "report"
        rules = [{ allow = "127.0.0.1" }, { deny = "all" }]
        "#,
        50,
    ));
    let handle = client.rocket().state::<AllowHandle>().unwrap();
    handle.ban("198.51.100.0/24", None).unwrap();
    let get_from = |path: &str, peer: &str| {
        client
            .get(path.to_string())
            .remote(addr(peer))
            .dispatch()
            .status()
    };
    assert_eq!(get_from("/", "127.0.0.1:1"), Status::Ok);
    assert_eq!(get_from("/", "127.0.0.1:1"), Status::Ok);
    assert_eq!(get_from("/", "192.0.2.1:1"), Status::Forbidden);
    assert_eq!(get_from("/", "203.0.113.1:1"), Status::Forbidden);
    assert_eq!(get_from("/", "198.51.100.1:1"), Status::Forbidden);
    let mut req = client.get("/").remote(addr("10.0.0.1:1"));
    req.add_header(Header::new("X-Forwarded-For", "not an address"));
    assert_eq!(req.dispatch().status(), Status::Forbidden);
    assert_eq!(get_from("/admin/../x", "127.0.0.1:1"), Status::BadRequest);
    assert_eq!(get_from("/admin/x", "192.0.2.1:1"), Status::Ok);
    assert_eq!(get_from("/admin/x", "127.0.0.1:1"), Status::Ok);
    let want = [
        (decisions("", "allow", true, "rule"), 2.0),
        (decisions("", "deny", true, "rule"), 1.0),
        (decisions("", "deny", true, "default"), 1.0),
        (decisions("", "deny", true, "ban"), 1.0),
        (decisions("", "deny", true, "header"), 1.0),
        (decisions("", "deny", true, "path"), 1.0),
        (decisions("admin", "deny", false, "rule"), 1.0),
        (decisions("admin", "allow", false, "rule"), 1.0),
    ];
    let seen = look();
    let counted: HashMap<&String, f64> = seen
        .iter()
        .filter(|(k, _)| k.starts_with("rocket_allow_decisions_total"))
        .map(|(k, v)| (k, *v))
        .collect();
    for (key, n) in &want {
        assert_eq!(get(&seen, key), *n, "{key}: {counted:#?}");
    }
    // Nothing else was counted.
    assert_eq!(counted.len(), want.len(), "{counted:#?}");
}

#[test]
fn rules_and_bans_gauges_follow_changes() {
    let _turn = turn();
    let client = client(app(r#"
        [default.allow]
        rules = [{ allow = "@office" }, { allow = "@loopback" }, { deny = "all" }]
        [default.allow.sets]
        office = ["192.0.2.0/24", "198.51.100.7"]
        [default.allow.policies.admin]
        rules = [{ allow = "::1" }]
        "#));
    let seen = look();
    // 2 (office) + 2 (loopback, v4 and v6) + 2 (all, v4 and v6).
    assert_eq!(get(&seen, "rocket_allow_rules{policy=}"), 6.0, "{seen:#?}");
    assert_eq!(
        get(&seen, "rocket_allow_rules{policy=admin}"),
        1.0,
        "{seen:#?}"
    );
    assert_eq!(get(&seen, "rocket_allow_bans{}"), 0.0, "{seen:#?}");
    let handle = client.rocket().state::<AllowHandle>().unwrap();
    handle
        .replace_set(
            "office",
            &["192.0.2.0/24", "198.51.100.7", "203.0.113.0/24"],
        )
        .unwrap();
    let seen = look();
    assert_eq!(get(&seen, "rocket_allow_rules{policy=}"), 7.0, "{seen:#?}");
    handle.ban("203.0.113.9", None).unwrap();
    handle.ban("2001:db8::/32", None).unwrap();
    assert_eq!(get(&look(), "rocket_allow_bans{}"), 2.0);
    handle.unban("203.0.113.9").unwrap();
    assert_eq!(get(&look(), "rocket_allow_bans{}"), 1.0);
}

#[test]
fn every_lost_log_line_is_counted() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    // Every write to /dev/full fails with "no space left on device".
    let log = dir.path().join("a.log");
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    let client = client(app(&format!(
        "[default.allow]\nrules = []\naccess_log = {{ path = \"{}\", queue_lines = 8 }}",
        log.display()
    )));
    for _ in 0..200 {
        assert_eq!(status(&client, "127.0.0.1:1", &[]), Status::Ok);
    }
    // Lines fail to be written, or are dropped at the small queue: every one is counted.
    let seen = until("200 lost lines", HashMap::new(), |m| {
        get(m, "rocket_allow_log_lines_lost_total{}") >= 200.0
    });
    assert_eq!(get(&seen, "rocket_allow_log_lines_lost_total{}"), 200.0);
}

#[test]
fn list_file_reloads_and_failures_are_counted() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "192.0.2.0/24\n").unwrap();
    let client = client(app(&format!(
        "[default.allow]\nrules = [{{ allow = \"@listed\" }}, {{ deny = \"all\" }}]\n[default.allow.sets]\nlisted = {{ file = \"{}\" }}",
        list.display()
    )));
    look();
    let replace = |text: &str| {
        let tmp = dir.path().join("list.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &list).unwrap();
    };
    replace("192.0.2.0/24\n198.51.100.0/24\n");
    let seen = until("a file reload", HashMap::new(), |m| {
        get(m, "rocket_allow_reloads_total{source=file}") >= 1.0
    });
    assert_eq!(get(&seen, "rocket_allow_rules{policy=}"), 4.0, "{seen:#?}");
    replace("not an address\n");
    let seen = until("a failed file refresh", HashMap::new(), |m| {
        get(
            m,
            "rocket_allow_refresh_failures_total{set=listed,source=file}",
        ) >= 1.0
    });
    assert_eq!(get(&seen, "rocket_allow_reloads_total{source=file}"), 0.0);
    assert_eq!(
        status(&client, "198.51.100.1:1", &[]),
        Status::Ok,
        "the last good list stays"
    );
}

/// Serves a list that changes on every fetch.
fn changing_list() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let n = AtomicUsize::new(0);
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let body = format!("192.0.2.{}\n", n.fetch_add(1, Ordering::SeqCst) % 200);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/list.txt")
}

#[test]
fn a_touched_list_file_is_not_a_reload() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    std::fs::write(&a, "192.0.2.0/24\n").unwrap();
    std::fs::write(&b, "198.51.100.0/24\n").unwrap();
    let _client = client(app(&format!(
        "[default.allow]\nrules = [{{ allow = \"@a\" }}, {{ allow = \"@b\" }}, {{ deny = \"all\" }}]\n\
         [default.allow.sets]\na = {{ file = \"{}\" }}\nb = {{ file = \"{}\" }}",
        a.display(),
        b.display()
    )));
    look();
    let replace = |path: &std::path::Path, text: &str| {
        let tmp = dir.path().join("new.txt");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    };
    // `a` is rewritten as it was, then `b` changed. Both files are looked at in order (`a`
    // first) by one watcher, and `a` changed first, so `a` is read no later than `b`: once
    // `b`'s reload is counted, `a`'s would have been too.
    replace(&a, "192.0.2.0/24\n");
    replace(&b, "198.51.100.0/24\n203.0.113.0/24\n");
    let seen = until("b's reload", HashMap::new(), |m| {
        get(m, "rocket_allow_reloads_total{source=file}") >= 1.0
    });
    assert_eq!(
        get(&seen, "rocket_allow_reloads_total{source=file}"),
        1.0,
        "{seen:#?}"
    );
}

/// Serves the same list, with 200 and no validators, on every fetch; counts the fetches.
fn same_list(fetches: std::sync::Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            fetches.fetch_add(1, Ordering::SeqCst);
            let body = "192.0.2.0/24\n198.51.100.7\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/list.txt")
}

#[cfg(feature = "url-lists")]
#[test]
fn an_unchanged_url_list_is_not_a_reload() {
    let _turn = turn();
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let url = same_list(fetches.clone());
    let _client = client(app(&format!(
        "[default.allow]\nrules = [{{ allow = \"@feed\" }}, {{ deny = \"all\" }}]\n\
         [default.allow.sets]\nfeed = {{ url = \"{url}\", refresh_secs = 1, timeout_secs = 1 }}"
    )));
    look();
    // Fetches go one after another: the fourth starts after the third was dealt with.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = HashMap::new();
    while fetches.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "fewer than 4 fetches");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (k, v) in look() {
        *seen.entry(k).or_insert(0.0) += v;
    }
    assert_eq!(
        get(&seen, "rocket_allow_reloads_total{source=url}"),
        0.0,
        "{seen:#?}"
    );
    assert_eq!(
        get(&seen, "rocket_allow_rules{policy=}"),
        0.0,
        "not recompiled: {seen:#?}"
    );
}

#[cfg(feature = "url-lists")]
#[test]
fn url_reloads_and_failures_are_counted() {
    let _turn = turn();
    // Nothing listens on a port we bound and closed: every fetch fails.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _client = client(app(&format!(
        r#"
        [default.allow]
        rules = [{{ allow = "@feed" }}, {{ allow = "@dead" }}, {{ deny = "all" }}]
        [default.allow.sets]
        feed = {{ url = "{}", refresh_secs = 1, timeout_secs = 1 }}
        dead = {{ url = "http://127.0.0.1:{dead}/x", refresh_secs = 1, timeout_secs = 1, on_error = "warn" }}
        "#,
        changing_list()
    )));
    until("url reloads and failures", HashMap::new(), |m| {
        get(m, "rocket_allow_reloads_total{source=url}") >= 1.0
            && get(
                m,
                "rocket_allow_refresh_failures_total{set=dead,source=url}",
            ) >= 1.0
    });
}

// The turn is held for the whole test on purpose: other tests must not count meanwhile.
#[allow(clippy::await_holding_lock)]
#[rocket::async_test]
async fn dns_reloads_and_failures_are_counted() {
    let _turn = turn();
    let mut dns = common::dns::TestDns::start("test.").await;
    dns.set("app.test.", 1, &["192.0.2.10"]).await;
    let toml = format!(
        "[default.allow]\nrules = [{{ allow = \"app.test\" }}, {{ deny = \"all\" }}]\n{}",
        dns.dns_toml("min_ttl_secs = 1")
    );
    let _client = rocket::local::asynchronous::Client::tracked(app(&toml))
        .await
        .unwrap();
    dns.set("app.test.", 1, &["192.0.2.11"]).await;
    let wait = |pred: fn(&HashMap<String, f64>) -> bool, what: &'static str| {
        rocket::tokio::task::spawn_blocking(move || {
            until(what, HashMap::new(), pred);
        })
    };
    wait(
        |m| get(m, "rocket_allow_reloads_total{source=dns}") >= 1.0,
        "a DNS reload",
    )
    .await
    .unwrap();
    dns.stop().await;
    wait(
        |m| get(m, "rocket_allow_refresh_failures_total{set=,source=dns}") >= 1.0,
        "a failed DNS refresh",
    )
    .await
    .unwrap();
}
