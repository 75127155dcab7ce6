//! Attacks on the rebuilt fleet store (issue 26): launched instances, a real redis-server,
//!
//! Each test but the last reproduced a finding of helper-3's attack on the versioned fleet
//! store (issue 26) and failed at its own assertion; each passes since its fix: the restore
//! check counts changes in Redis (`<prefix>:seq`) and the writer waits for it; a change
//! made here is versioned after the record it replaces, and made again after a record
//! dated ahead of this instance's clock; a lift of a ban not held is saved; a record
//! outlives the one it replaced in Redis; the write script checks before it writes; a
//! message's id is no longer trusted for anything.
//! faults made for real. Each test states the promise (docs/fleet.md, docs/runtime.md) it
//! holds the code to.

mod common;

use std::time::Duration;

use common::fleet::{bans_file, serial, until_all, until_line, until_record, Instance};
use common::redis::Redis;

fn err_log(dir: &std::path::Path, i: &Instance) -> std::path::PathBuf {
    dir.join(format!("fleet-{}.err", i.port))
}

fn hget(redis: &Redis, field: &str) -> String {
    redis
        .cmd(&["HGET", "rocket-allow:bans", field])
        .unwrap_or_default()
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
        let s = a.store_status();
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
    until_all(
        &[&a, &c],
        "127.0.10.1",
        403,
        "X on an instance started after the restore",
    );
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A record another instance wrote (hash field and message), as its WRITE script would.
fn plant(redis: &Redis, field: &str, record: &str) {
    assert_eq!(
        redis
            .cmd(&["HSET", "rocket-allow:bans", field, record])
            .as_deref(),
        Some(":1")
    );
    let message = format!(
        r#"{{"k":"bans","f":"{field}","v":{}}}"#,
        serde_json::to_string(record).unwrap()
    );
    redis.cmd(&["PUBLISH", "rocket-allow:changes", &format!("1-1 {message}")]);
}

/// "The change made later wins, wherever and whenever it was made" / `Bans::ban_at`: "a
/// change made here, newer than any record held". An instance whose clock runs an hour
/// ahead (within the 1-day allowance) lifted X. An operator now bans X on A: the API says
/// banned, A refuses X for a moment, then A's write comes back "Redis holds newer", A
/// applies the lift and X is admitted again, everywhere, for the hour. No error anywhere.
#[test]
fn a_lift_from_a_clock_ahead_silently_undoes_every_new_ban() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    for i in [&a, &b] {
        until_line(&err_log(dir.path(), i), "connected and in sync");
    }
    let ahead = now_ms() + 3_600_000;
    plant(
        &redis,
        "127.0.12.1/32",
        &format!(r#"{{"l":true,"k":null,"m":{ahead},"i":7,"s":0,"o":"skewed"}}"#),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.answer("POST", "/ban/127.0.12.1"), "banned 127.0.12.1");
    std::thread::sleep(Duration::from_secs(2));
    let s = a.store_status();
    assert_eq!(
        (a.get("127.0.12.1"), b.get("127.0.12.1")),
        (403, 403),
        "the ban the operator just made is gone on A and B (status: {s})"
    );
}

/// The same skew the other way: an instance an hour ahead banned X; the operator lifts it
/// on A ("lifted: true"), and a second later A refuses X again.
#[test]
fn a_ban_from_a_clock_ahead_cannot_be_lifted() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    until_line(&err_log(dir.path(), &a), "connected and in sync");
    let ahead = now_ms() + 3_600_000;
    plant(
        &redis,
        "127.0.12.2/32",
        &format!(r#"{{"e":null,"r":null,"m":{ahead},"i":7,"s":0,"o":"skewed"}}"#),
    );
    common::until(15, "X banned on A", || a.get("127.0.12.2") == 403);
    assert_eq!(a.answer("POST", "/unban/127.0.12.2"), "lifted: true");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        a.get("127.0.12.2"),
        200,
        "the lift the operator just made was undone"
    );
}

/// How many HSCAN calls Redis has served (each full read makes at least three).
fn hscans(redis: &Redis) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "INFO", "commandstats"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("cmdstat_hscan:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

fn syncs(dir: &std::path::Path, i: &Instance) -> usize {
    std::fs::read_to_string(err_log(dir, i))
        .unwrap_or_default()
        .matches("connected and in sync")
        .count()
}

/// Drops the instances' connections (the log kept) and waits until `i` is in sync again.
fn reconnect(redis: &Redis, dir: &std::path::Path, i: &Instance) {
    let before = syncs(dir, i);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    common::until(20, "in sync again", || syncs(dir, i) > before);
}

/// "A reconnect to the same Redis replays the change log ... A full read happens only when
/// the log no longer covers the gap (or Redis was replaced)" and "The id a message carries
/// is never trusted as a replay point: anyone can publish." One PUBLISH with a made-up id
/// (no record at all: the message does not even parse) turns every later reconnect of every
/// instance into a full read (HSCAN of every hash, a million bans: seconds of Redis CPU
/// each), for the life of the process.
#[test]
fn one_forged_message_id_makes_every_reconnect_a_full_read_for_ever() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    until_line(&err_log(dir.path(), &a), "connected and in sync");
    a.ops("/ban/127.0.13.1");
    // A plain reconnect replays the log: no HSCAN.
    let h0 = hscans(&redis);
    reconnect(&redis, dir.path(), &a);
    assert_eq!(hscans(&redis), h0, "a reconnect replays the log");
    // The forged id.
    redis.cmd(&["PUBLISH", "rocket-allow:changes", "99999999999999-0 junk"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut full = 0;
    for _ in 0..3 {
        let h = hscans(&redis);
        reconnect(&redis, dir.path(), &a);
        full += usize::from(hscans(&redis) > h);
    }
    assert_eq!(
        full, 0,
        "reconnects after one forged message id that were full reads"
    );
}

/// "Every replica ends with the newest record of each target" / "applying a record twice,
/// late or out of order changes nothing". X is banned for an hour; the operator then
/// shortens it (a new ban of X for 2 s: the newer record). Redis prunes that record when
/// it ends, and nothing remembers that it replaced the hour's ban: C, restarted from its
/// bans file (the hour's ban, the older version), finds X absent in Redis, "Redis lost
/// it", writes the hour's ban back, and the whole fleet bans X again for the hour.
#[test]
fn a_shortened_ban_comes_back_from_a_restarted_instance() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let c_dir = dir.path().join("c");
    std::fs::create_dir(&c_dir).unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let c = Instance::start(&c_dir, &redis.url(), &bans_file(&c_dir));
    a.ops("/ban/127.0.14.1?secs=3600");
    until_all(&[&a, &c], "127.0.14.1", 403, "the hour's ban");
    c.ops("/flush");
    drop(c);
    // Shortened to 2 s while C is away (a restart, a deploy).
    a.ops("/ban/127.0.14.1?secs=2");
    common::until(15, "the shortened ban over", || a.get("127.0.14.1") == 200);
    let c = Instance::start(&c_dir, &redis.url(), &bans_file(&c_dir));
    until_line(&err_log(&c_dir, &c), "connected and in sync");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (a.get("127.0.14.1"), c.get("127.0.14.1")),
        (200, 200),
        "the ban replaced by a 2 s one is back on the fleet"
    );
    // Redis keeps the shortened ban's record as long as the hour's would have lasted: the
    // older record loses to it wherever it comes from.
    let score = redis.cmd(&[
        "ZSCORE",
        "rocket-allow:expiry",
        "rocket-allow:bans|127.0.14.1/32",
    ]);
    assert!(score.is_some_and(|s| s.starts_with('$')), "no time to go");
}

/// "A write refused (... any other command error) stays queued, ... tried again with
/// backoff, and `store_status().last_error` says ..."; "a key of the wrong type is skipped
/// as a whole". A Redis script is not rolled back when it fails part way: with
/// `<prefix>:expiry` of the wrong type (someone else's junk, a broken writer), WRITE has
/// set the hash field when its ZADD fails; the retry finds the same version there, is
/// answered "held already", and the change is taken off the queue as written, though it was
/// never logged nor published. B never learns of the ban (not even by its reconnects, which
/// replay a log without it); A says nothing is pending (its `last_error` is the PRUNE's).
#[test]
fn a_write_that_fails_half_way_is_taken_for_written_and_never_published() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    for i in [&a, &b] {
        until_line(&err_log(dir.path(), i), "connected and in sync");
    }
    redis.cmd(&["SET", "rocket-allow:expiry", "junk"]);
    a.ops("/ban/127.0.15.1?secs=600");
    common::until(15, "A's write settled", || {
        a.store_status().contains("pending: 0")
    });
    std::thread::sleep(Duration::from_secs(3));
    let s = a.store_status();
    assert!(
        b.get("127.0.15.1") == 403 || !s.contains("pending: 0"),
        "the ban is in Redis's hash ({}), never logged nor published, off A's queue: B admits X; A: {s}",
        hget(&redis, "127.0.15.1/32")
    );
}

/// "flush_bans() returning Ok means that survives kill -9, in a fleet too" / "An instance
/// restarts during an outage: with a bans file ... a lift is not undone". During an outage
/// A bans X; later the operator lifts X on B (B never received the ban: the outage) and
/// `flush_bans()` says Ok; B restarts before Redis is back. `Bans::unban` saves (wakes
/// the saver) only when a ban was held here, so B's lift was queued in memory and never
/// written to the bans file: after the restart it is gone, and when Redis returns A's older
/// ban wins on the whole fleet.
#[test]
fn a_lift_of_a_ban_not_held_here_is_not_in_the_bans_file() {
    let _one = serial();
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let b_dir = dir.path().join("b");
    std::fs::create_dir(&b_dir).unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(&b_dir, &redis.url(), &bans_file(&b_dir));
    until_line(&err_log(&b_dir, &b), "connected and in sync");
    redis.kill();
    a.ops("/ban/127.0.16.1");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(b.answer("POST", "/unban/127.0.16.1"), "lifted: false");
    assert_eq!(b.answer("POST", "/flush"), "saved");
    let file = std::fs::read_to_string(b_dir.join("bans.txt")).unwrap_or_default();
    drop(b);
    let b = Instance::start(&b_dir, &redis.url(), &bans_file(&b_dir));
    redis.restart();
    until_line(&err_log(&b_dir, &b), "connected and in sync");
    common::until(20, "A in sync", || {
        a.store_status().contains("pending: 0") && a.store_status().contains("connected: true")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (a.get("127.0.16.1"), b.get("127.0.16.1")),
        (200, 200),
        "the later lift, flushed before the restart, is lost; B's bans file was:\n{file}"
    );
}

/// Held: the reply to a ban's WRITE is lost (the connection reset after the script ran):
/// sent again, ignored as the same version, the ban is everywhere and nothing is pending.
#[test]
fn held_a_lost_reply_to_a_ban_write() {
    let _one = serial();
    let redis = Redis::start();
    let stall = common::stall::Stall::start(redis.port, "127.0.17.1/32");
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &stall.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    for i in [&a, &b] {
        until_line(&err_log(dir.path(), i), "connected and in sync");
    }
    stall.lose();
    a.ops("/ban/127.0.17.1");
    stall.until_holding();
    until_all(&[&a, &b], "127.0.17.1", 403, "the ban whose reply was lost");
    common::until(15, "nothing pending", || {
        a.store_status().contains("pending: 0")
    });
    assert_eq!(
        redis.cmd(&["XLEN", "rocket-allow:log"]).as_deref(),
        Some(":2"),
        "logged once (+ the marker)"
    );
}
