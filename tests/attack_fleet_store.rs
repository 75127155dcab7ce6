//! Attacks on the rebuilt fleet store (issue 26): launched instances, a real redis-server,
//! faults made for real. Each test states the promise (docs/fleet.md, docs/runtime.md) it
//! holds the code to.

mod common;

use std::time::Duration;

use common::fleet::{serial, until_all, until_line, Instance};
use common::redis::Redis;

fn body(i: &Instance, method: &str, path: &str) -> String {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    common::http::send_from(i.port, "127.0.0.1", request.as_bytes())
        .map(|r| r.body.trim().to_string())
        .unwrap_or_default()
}

fn status(i: &Instance) -> String {
    body(i, "GET", "/status")
}

fn err_log(dir: &std::path::Path, i: &Instance) -> std::path::PathBuf {
    dir.join(format!("fleet-{}.err", i.port))
}

fn hget(redis: &Redis, field: &str) -> String {
    redis
        .cmd(&["HGET", "rocket-allow:bans", field])
        .unwrap_or_default()
}

/// Waits until Redis holds a record for `field` whose JSON contains `want`.
fn until_record(redis: &Redis, field: &str, want: &str) {
    common::until(15, &format!("`{field}` recorded with `{want}`"), || {
        redis
            .cmd(&[
                "EVAL",
                "return string.find(redis.call('HGET', KEYS[1], ARGV[1]) or '', ARGV[2], 1, true) and 1 or 0",
                "1",
                "rocket-allow:bans",
                field,
                want,
            ])
            .as_deref()
            == Some(":1")
    });
}

/// "Redis restored from an older snapshot: the instances find the newest change they wrote
/// or saw missing from the log, merge everything and write back what Redis lost ...
/// including on instances started after the restore." Here the instance made one more
/// change while Redis was down: it is written first on reconnect, its fresh log id becomes
/// "the newest change this instance wrote", which the restored log holds, so the check
/// passes, the log is replayed, and the ban made after the snapshot is never written back.
#[test]
fn a_change_queued_during_the_outage_hides_the_restore() {
    let _one = serial();
    let store_dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start_in(store_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    until_line(&err_log(dir.path(), &a), "connected and in sync");
    // The snapshot: taken after A's sync (its replay point is in it).
    assert_eq!(redis.cmd(&["SAVE"]).as_deref(), Some("+OK"));
    // X banned after the snapshot, written to Redis.
    a.ops("/ban/127.0.10.1");
    until_record(&redis, "127.0.10.1/32", "\"e\":null");
    // Redis dies; during the outage A bans Y (queued).
    redis.crash();
    a.ops("/ban/127.0.10.2");
    // Redis comes back from the snapshot: no X, no Y.
    redis.restart();
    assert_eq!(hget(&redis, "127.0.10.1/32"), "$-1");
    common::until(20, "A in sync again with nothing pending", || {
        let s = status(&a);
        s.contains("connected: true") && s.contains("pending: 0")
    });
    until_record(&redis, "127.0.10.2/32", "\"e\":null");
    // Give A's resync every chance to write X back.
    std::thread::sleep(Duration::from_secs(2));
    let c = Instance::start(dir.path(), &redis.url(), "");
    until_line(&err_log(dir.path(), &c), "connected and in sync");
    assert_eq!(a.get("127.0.10.1"), 403, "A still enforces X");
    assert_ne!(
        hget(&redis, "127.0.10.1/32"),
        "$-1",
        "X, banned after the snapshot, was never written back to the restored Redis"
    );
    until_all(&[&a, &c], "127.0.10.1", 403, "X on an instance started after the restore");
}
