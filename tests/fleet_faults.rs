//! The fleet store under the failures real Redis has, over launched instances
//! (`examples/fleet.rs` processes) and a real `redis-server` each test starts and stops by
//! PID: a restart during an outage, Redis restored from an older snapshot, lost replies,
//! out of memory, a user without the channel, hostile fields and values. What is promised
//! (docs/fleet.md): every replica ends with the newest record of each target; absence is
//! never a lift; nothing is dropped or counted twice.

mod common;

use std::time::Duration;

use common::fleet::{bans_file, serial, until_all, until_line, until_record, Instance};
use common::redis::Redis;

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
fn a_set_changed_during_an_outage_survives_a_restart_too() {
    let _one = serial();
    let store_dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start_in(store_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    std::fs::create_dir(&a_dir).unwrap();
    let a = Instance::start(&a_dir, &redis.url(), &bans_file(&a_dir));
    a.ops("/block/127.0.8.5");
    common::until(15, "the set in Redis", || {
        redis
            .cmd(&["HEXISTS", "rocket-allow:sets", "blocked"])
            .as_deref()
            == Some(":1")
    });
    redis.cmd(&["SAVE"]);
    redis.crash();
    // During the outage the set changes, and the instance restarts.
    a.ops("/block/127.0.8.6");
    a.ops("/flush");
    drop(a);
    let a = Instance::start(&a_dir, &redis.url(), &bans_file(&a_dir));
    assert_eq!(
        a.get("127.0.8.6"),
        403,
        "the set as changed during the outage"
    );
    assert_eq!(a.get("127.0.8.5"), 200);
    // Redis returns with the older set: the newer one wins, there and on a new instance.
    redis.restart();
    until_line(
        &a_dir.join(format!("fleet-{}.err", a.port)),
        "connected and in sync",
    );
    let b = Instance::start(dir.path(), &redis.url(), "");
    until_all(
        &[&a, &b],
        "127.0.8.6",
        403,
        "the set changed during the outage",
    );
    until_all(&[&a, &b], "127.0.8.5", 200, "the set's older entry");
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

#[test]
fn redis_out_of_memory_keeps_changes_queued_and_says_so() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    until_line(
        &dir.path().join(format!("fleet-{}.err", a.port)),
        "connected and in sync",
    );
    // Every write refused: out of memory, nothing to evict.
    redis.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    a.ops("/ban/127.0.10.1");
    assert_eq!(a.get("127.0.10.1"), 403, "applied here at once");
    common::until(15, "the refusal shown in the status", || {
        let s = a.store_status();
        s.contains("pending: 1") && s.contains("last_error: Some(\"OOM")
    });
    assert_eq!(b.get("127.0.10.1"), 200);
    // Memory again: the change goes in (never dropped), and the status says all is well.
    redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    until_all(
        &[&a, &b],
        "127.0.10.1",
        403,
        "the ban once Redis had memory",
    );
    common::until(15, "the status clear", || {
        let s = a.store_status();
        s.contains("pending: 0") && s.contains("last_error: None")
    });
}

/// The ACL rule docs/fleet.md gives, for `user` with `password`.
fn documented_acl(user: &str, password: &str) -> Vec<String> {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fleet.md")).unwrap();
    let line = docs
        .lines()
        .find(|l| l.starts_with("ACL SETUSER "))
        .expect("docs/fleet.md gives an ACL SETUSER line");
    line.replace("<user>", user)
        .replace("<password>", password)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_user_without_the_channel_is_told_so_and_the_documented_acl_works() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    // The prefix's keys, every command, but no channel (Redis 7's default for new users).
    redis.cmd(&[
        "ACL",
        "SETUSER",
        "keysonly",
        "on",
        ">pw1",
        "~rocket-allow:*",
        "+@all",
    ]);
    let url = format!("redis://keysonly:pw1@127.0.0.1:{}/0", redis.port);
    let a = Instance::start(dir.path(), &url, "");
    common::until(15, "the missing permission named", || {
        let s = a.store_status();
        s.contains("connected: false")
            && s.contains("SUBSCRIBE rocket-allow:changes")
            && s.contains("&rocket-allow:changes")
    });
    let err = std::fs::read_to_string(dir.path().join(format!("fleet-{}.err", a.port))).unwrap();
    assert!(err.contains("PUBLISH rocket-allow:changes"), "{err}");
    assert!(!err.contains("pw1"), "{err}");
    // The channel granted: the instance connects and the status is clear again.
    redis.cmd(&["ACL", "SETUSER", "keysonly", "&rocket-allow:changes"]);
    common::until(15, "in sync once the channel is granted", || {
        let s = a.store_status();
        s.contains("connected: true") && s.contains("last_error: None")
    });
    // The rule docs/fleet.md gives is enough: two instances share a ban.
    let acl = documented_acl("app", "pw2");
    let acl: Vec<&str> = acl.iter().map(String::as_str).collect();
    assert_eq!(redis.cmd(&acl).as_deref(), Some("+OK"), "{acl:?}");
    let url = format!("redis://app:pw2@127.0.0.1:{}/0", redis.port);
    let b = Instance::start(dir.path(), &url, "");
    let c = Instance::start(dir.path(), &url, "");
    b.ops("/ban/127.0.11.1");
    until_all(
        &[&b, &c],
        "127.0.11.1",
        403,
        "a ban through the documented user",
    );
    c.ops("/block/127.0.11.2");
    until_all(
        &[&b, &c],
        "127.0.11.2",
        403,
        "a set through the documented user",
    );
    for i in [&b, &c] {
        let s = i.store_status();
        assert!(
            s.contains("connected: true") && s.contains("last_error: None"),
            "{s}"
        );
    }
}

/// One failed login of `who` on `i` (rule `login`: `max = 4`); its answer.
fn strike(i: &Instance, who: &str) -> String {
    i.answer("POST", &format!("/strike/{who}"))
}

fn banned(i: &Instance, who: &str) -> bool {
    i.answer("GET", &format!("/banned/{who}")) == "true"
}

/// The fleet's count of `who`'s failed logins, as Redis holds it.
fn fleet_count(redis: &Redis, who: &str) -> String {
    redis
        .cmd(&["ZCARD", &format!("rocket-allow:ab:login:c:{who}/32")])
        .unwrap_or_default()
}

#[test]
fn lost_replies_count_no_failed_login_twice() {
    let _one = serial();
    let redis = Redis::start();
    let stall = common::stall::Stall::start(redis.port, ":ab:login");
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &stall.url(), "");
    until_line(
        &dir.path().join(format!("fleet-{}.err", a.port)),
        "connected and in sync",
    );
    let who = "192.0.2.30";
    // One failed login whose batch runs in Redis four times over, its reply lost each time
    // (the connection reset after the script ran).
    stall.lose();
    assert_eq!(strike(&a, who), "Ok(false)");
    stall.until_holding();
    for _ in 0..3 {
        stall.lose();
        stall.until_holding();
    }
    // The fifth time it is answered: counted once.
    common::until(15, "the failed login counted", || {
        fleet_count(&redis, who) == ":1"
    });
    assert!(!banned(&a, who));
    // Three more: four in all, as many as `max` allows.
    for _ in 0..3 {
        assert_eq!(strike(&a, who), "Ok(false)");
    }
    common::until(15, "four failed logins counted", || {
        fleet_count(&redis, who) == ":4"
    });
    assert!(!banned(&a, who), "banned at its fourth failed login");
    // The fifth bans.
    strike(&a, who);
    common::until(15, "banned at the fifth", || banned(&a, who));
}

#[test]
fn a_lost_reply_that_carried_the_ban_decision_still_bans() {
    let _one = serial();
    let redis = Redis::start();
    let stall = common::stall::Stall::start(redis.port, ":ab:login");
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &stall.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    for i in [&a, &b] {
        until_line(
            &dir.path().join(format!("fleet-{}.err", i.port)),
            "connected and in sync",
        );
    }
    let who = "192.0.2.31";
    // Two failed logins on each instance: four on the fleet, two on each one's own count.
    for i in [&a, &b, &a, &b] {
        assert_eq!(strike(i, who), "Ok(false)");
    }
    common::until(15, "four failed logins counted", || {
        fleet_count(&redis, who) == ":4"
    });
    // The fifth, on A: Redis decides the ban and A never hears the answer.
    stall.lose();
    strike(&a, who);
    stall.until_holding();
    // A sends the batch again and learns the decision: banned on the whole fleet.
    common::until(15, "banned on A", || banned(&a, who));
    common::until(15, "banned on B", || banned(&b, who));
}

#[test]
fn a_lift_anywhere_resets_the_count_everywhere() {
    let _one = serial();
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    for i in [&a, &b] {
        until_line(
            &dir.path().join(format!("fleet-{}.err", i.port)),
            "connected and in sync",
        );
    }
    let who = "192.0.2.32";
    for _ in 0..3 {
        assert_eq!(strike(&a, who), "Ok(false)");
    }
    common::until(15, "three failed logins counted", || {
        fleet_count(&redis, who) == ":3"
    });
    // Forgiven on B; a ban made on B afterwards reaches A after the lift (messages keep
    // their order), so A has applied the lift once it enforces the ban.
    b.ops(&format!("/unban/{who}"));
    b.ops("/ban/127.0.12.9");
    until_all(&[&a], "127.0.12.9", 403, "a ban after the lift");
    common::until(15, "the fleet's count reset", || {
        fleet_count(&redis, who) == ":0"
    });
    // Redis goes away; once A knows (another client's failed login could not be sent), it
    // counts on its own, at once: from zero, not from the three forgiven.
    redis.kill();
    strike(&a, "192.0.2.99");
    until_line(
        &dir.path().join(format!("fleet-{}.err", a.port)),
        "counting on this instance",
    );
    let answers: Vec<String> = (0..5).map(|_| strike(&a, who)).collect();
    assert_eq!(
        answers,
        [
            "Ok(false)",
            "Ok(false)",
            "Ok(false)",
            "Ok(false)",
            "Ok(true)"
        ],
        "banned at the fifth failed login since it was forgiven, not before"
    );
}

/// The change log's length.
fn log_len(redis: &Redis) -> u64 {
    redis
        .cmd(&["XLEN", "rocket-allow:log"])
        .and_then(|a| a.trim_start_matches(':').parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_set_replaced_by_itself_writes_nothing_and_the_log_holds_no_entries() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    a.ops("/block/127.0.14.1");
    until_all(&[&a, &b], "127.0.14.1", 403, "the set replaced");
    let before = log_len(&redis);
    // The same entries sixty times: nothing written, nothing logged.
    for _ in 0..60 {
        a.ops("/block/127.0.14.1");
    }
    a.ops("/ban/127.0.14.9");
    until_all(&[&a, &b], "127.0.14.9", 403, "a ban after them");
    assert_eq!(log_len(&redis), before + 1, "only the ban was logged");
    // A log entry names the record; the record holds the entries, once.
    let copies = redis.cmd(&[
        "EVAL",
        "local n = 0
         for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
           for i = 2, #e[2], 2 do
             if string.find(e[2][i], 'entries', 1, true) then n = n + 1 end
           end
         end
         return n",
        "1",
        "rocket-allow:log",
    ]);
    assert_eq!(
        copies.as_deref(),
        Some(":0"),
        "a set's entries copied into the log"
    );
    // A replay of the log after a reconnect still brings a set changed meanwhile.
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    a.ops("/block/127.0.14.2");
    until_all(
        &[&a, &b],
        "127.0.14.2",
        403,
        "a set change made while B reconnected",
    );
    until_all(&[&a, &b], "127.0.14.1", 200, "the set's old entry");
}

#[test]
fn a_reason_too_long_is_cut_never_skipped() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    // A reason a client chose (a user agent quoted in it), 5,000 bytes.
    let reason = "x".repeat(5000);
    a.ops(&format!("/ban/127.0.15.1?reason={reason}"));
    until_all(&[&a, &b], "127.0.15.1", 403, "a ban with a long reason");
    // Redis holds it cut to 1,024 bytes, ending in `…`, and a new instance reads it.
    let len = redis.cmd(&[
        "EVAL",
        "return string.len(cjson.decode(redis.call('HGET', KEYS[1], ARGV[1])).r)",
        "1",
        "rocket-allow:bans",
        "127.0.15.1/32",
    ]);
    assert_eq!(len.as_deref(), Some(":1024"));
    let c = Instance::start(dir.path(), &redis.url(), "");
    assert_eq!(c.get("127.0.15.1"), 403);
}

#[test]
fn a_field_that_is_not_utf8_is_skipped_and_the_rest_is_read() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    a.ops("/ban/127.0.16.1");
    until_all(&[&a], "127.0.16.1", 403, "a ban");
    // Someone writes a field whose name (and another whose value) is not UTF-8.
    redis.cmd(&[
        "EVAL",
        "redis.call('HSET', KEYS[1], '\\255\\254', '{\"m\":1}')
         redis.call('HSET', KEYS[1], '127.0.16.7/32', '{\"r\":\"\\255\",\"m\":1}')
         return 1",
        "1",
        "rocket-allow:bans",
    ]);
    // A new instance (a full read) still gets every good record.
    let b = Instance::start(dir.path(), &redis.url(), "");
    until_all(
        &[&b],
        "127.0.16.1",
        403,
        "the ban beside a field that is not UTF-8",
    );
    assert_eq!(b.get("127.0.16.7"), 200);
    let err = std::fs::read_to_string(dir.path().join(format!("fleet-{}.err", b.port))).unwrap();
    assert!(err.contains("not UTF-8"), "{err}");
}
