//! The fleet store under the failures real Redis has, over launched instances
//! (`examples/fleet.rs` processes) and a real `redis-server` each test starts and stops by
//! PID: a restart during an outage, Redis restored from an older snapshot, lost replies,
//! out of memory, a user without the channel, hostile fields and values. What is promised
//! (docs/fleet.md): every replica ends with the newest record of each target; absence is
//! never a lift; nothing is dropped or counted twice.

mod common;

use std::time::Duration;

use common::fleet::{serial, until_all, until_line, Instance};
use common::redis::Redis;

/// `[allow.bans] file` in the instance's own directory.
fn bans_file(dir: &std::path::Path) -> String {
    format!(
        "[default.allow.bans]\nfile = \"{}\"",
        dir.join("bans.txt").display()
    )
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

#[test]
fn a_restart_during_an_outage_keeps_the_outages_changes() {
    let _one = serial();
    let store_dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start_in(store_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    std::fs::create_dir(&a_dir).unwrap();
    let a = Instance::start(&a_dir, &redis.url(), &bans_file(&a_dir));
    // Y banned and in Redis, which saves it; then Redis goes away.
    a.ops("/ban/127.0.8.2");
    until_record(&redis, "127.0.8.2/32", "\"e\":null");
    redis.cmd(&["SAVE"]);
    redis.crash();
    // During the outage: X banned, Y lifted, saved to the bans file; then the instance
    // restarts before Redis is back.
    a.ops("/ban/127.0.8.1");
    a.ops("/unban/127.0.8.2");
    a.ops("/flush");
    drop(a);
    let a = Instance::start(&a_dir, &redis.url(), &bans_file(&a_dir));
    assert_eq!(
        a.get("127.0.8.1"),
        403,
        "the bans file keeps the outage's ban"
    );
    assert_eq!(a.get("127.0.8.2"), 200, "and its lift");
    // Redis comes back with its old data (Y banned, no X): the instance's newer records
    // win, here and in Redis, so a new instance sees them too.
    redis.restart();
    let err = a_dir.join(format!("fleet-{}.err", a.port));
    until_line(&err, "connected and in sync");
    let b = Instance::start(dir.path(), &redis.url(), "");
    until_all(
        &[&a, &b],
        "127.0.8.1",
        403,
        "the ban made during the outage",
    );
    until_all(
        &[&a, &b],
        "127.0.8.2",
        200,
        "the lift made during the outage",
    );
    // And it stays so (a late message or a second read changes nothing).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.get("127.0.8.1"), 403);
    assert_eq!(a.get("127.0.8.2"), 200);
}

#[test]
fn redis_restored_from_an_older_snapshot_gets_the_last_changes_back() {
    let _one = serial();
    let store_dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start_in(store_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    // P banned everywhere; the snapshot is taken; then Q banned on A and P lifted on B.
    a.ops("/ban/127.0.9.1");
    until_all(&[&a, &b], "127.0.9.1", 403, "P");
    until_record(&redis, "127.0.9.1/32", "\"e\":null");
    assert_eq!(redis.cmd(&["SAVE"]).as_deref(), Some("+OK"));
    a.ops("/ban/127.0.9.2");
    b.ops("/unban/127.0.9.1");
    until_all(&[&a, &b], "127.0.9.2", 403, "Q");
    until_all(&[&a, &b], "127.0.9.1", 200, "P lifted");
    until_record(&redis, "127.0.9.1/32", "\"l\":true");
    // Redis dies and comes back from the snapshot: P banned, no Q, and a change log that
    // still holds the instances' older replay points.
    redis.crash();
    redis.restart();
    assert!(redis
        .cmd(&["HGET", "rocket-allow:bans", "127.0.9.2/32"])
        .is_some_and(|r| r == "$-1"));
    // The instances write back what Redis lost: an instance started after the restore
    // sees the fleet's state, and so do they.
    let c = Instance::start(dir.path(), &redis.url(), "");
    until_all(&[&a, &b, &c], "127.0.9.2", 403, "Q after the restore");
    until_all(
        &[&a, &b, &c],
        "127.0.9.1",
        200,
        "P's lift after the restore",
    );
}
