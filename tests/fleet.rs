//! Several instances (separate processes: `examples/fleet.rs`) sharing a real Redis that
//! each test starts on a free loopback port (`redis-server --save ''`) and stops by PID:
//! bans, unbans, expiry and set changes reach every instance; Redis killed under load,
//! changes made meanwhile, Redis back with and without its data; garbage in the keys; a
//! Redis that accepts and never answers; `on_unavailable = "refuse"`.

mod common;

use common::fleet::{force_full_read, record, serial, until_all, until_line, Instance};
use common::process::{free_port, Proc};
use common::redis::Redis;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_ban_made_on_one_instance_is_enforced_by_every_other() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    let c = Instance::start(dir.path(), &redis.url(), "");
    let all = [&a, &b, &c];
    until_all(&all, "127.0.0.2", 200, "before");
    a.ops("/ban/127.0.0.2");
    until_all(&all, "127.0.0.2", 403, "ban on A");
    assert_eq!(b.get("127.0.0.3"), 200);
    b.ops("/unban/127.0.0.2");
    until_all(&all, "127.0.0.2", 200, "unban on B");
    // Expiry: a one-second ban ends everywhere by itself.
    c.ops("/ban/127.0.0.4?secs=1");
    until_all(&all, "127.0.0.4", 403, "short ban on C");
    until_all(&all, "127.0.0.4", 200, "its expiry");
    // replace_set on one instance changes the set on all.
    a.ops("/block/127.0.0.5");
    until_all(&all, "127.0.0.5", 403, "replace_set on A");
    // Report mode switched on one instance applies to all.
    b.ops("/mode/report");
    until_all(&all, "127.0.0.5", 200, "report mode from B");
    // A new instance starts with the fleet's state.
    a.ops("/ban/127.0.0.6");
    let d = Instance::start(dir.path(), &redis.url(), "");
    assert_eq!(d.get("127.0.0.6"), 403);
}

#[test]
fn outages_lose_nothing_and_an_emptied_redis_is_filled_again() {
    let _one = serial();
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    let all = [&a, &b];
    a.ops("/ban/127.0.0.2");
    a.ops("/ban/127.0.0.3");
    until_all(&all, "127.0.0.3", 403, "bans before the outage");
    redis.kill();
    // Requests go on, decided from the local copy, while Redis is away.
    for _ in 0..20 {
        assert_eq!(a.get("127.0.0.2"), 403);
        assert_eq!(b.get("127.0.0.9"), 200);
    }
    // Changes made meanwhile apply locally at once...
    b.ops("/ban/127.0.0.7");
    assert_eq!(b.get("127.0.0.7"), 403);
    a.ops("/unban/127.0.0.3");
    assert_eq!(a.get("127.0.0.3"), 200);
    // ...and reach the others once Redis is back, here empty (no persistence): the bans in
    // force before are in force after, and the one lifted during the outage stays lifted.
    redis.restart();
    until_all(&all, "127.0.0.7", 403, "ban made during the outage");
    until_all(&all, "127.0.0.3", 200, "unban made during the outage");
    until_all(&all, "127.0.0.2", 403, "ban from before the outage");
    // Redis holds them again: a new instance sees them.
    let c = Instance::start(dir.path(), &redis.url(), "");
    assert_eq!(c.get("127.0.0.2"), 403);
    assert_eq!(c.get("127.0.0.7"), 403);
    assert_eq!(c.get("127.0.0.3"), 200);
}

#[test]
fn subscribers_dropped_again_and_again_miss_no_change() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    let b = Instance::start(dir.path(), &redis.url(), "");
    // A forged message whose id points past every real change: it must not become the
    // point a reconnect replays from.
    let forged =
        r#"99999999999999-0 {"k":"modes","f":"nosuchpolicy","v":"{\"mode\":\"enforce\",\"m\":1}"}"#;
    redis.cmd(&["PUBLISH", "rocket-allow:changes", forged]);
    // Messages sent while a subscriber is away are lost: a reconnect must replay them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (stop, port) = (stop.clone(), redis.port);
        std::thread::spawn(move || {
            let r = Redis::at(port);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                r.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    for i in 10..40 {
        a.ops(&format!("/ban/127.0.1.{i}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    killer.join().unwrap();
    for i in 10..40 {
        until_all(
            &[&a, &b],
            &format!("127.0.1.{i}"),
            403,
            "a ban made while B was away",
        );
    }
}

#[test]
fn redis_down_at_ignite_starts_from_the_bans_file_and_fills_redis_later() {
    let _one = serial();
    let mut redis = Redis::start();
    redis.kill();
    let dir = tempfile::tempdir().unwrap();
    let bans = dir.path().join("bans.txt");
    std::fs::write(&bans, "127.0.0.2 - from the file\n").unwrap();
    let a = Instance::start(
        dir.path(),
        &redis.url(),
        &format!("[default.allow.bans]\nfile = \"{}\"", bans.display()),
    );
    // Serving, from its own snapshot, with Redis away.
    assert_eq!(a.get("127.0.0.2"), 403);
    assert_eq!(a.get("127.0.0.3"), 200);
    redis.restart();
    // Redis had nothing: the instance fills it, and a new instance finds the ban there.
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis
        .cmd(&["HEXISTS", "rocket-allow:bans", "127.0.0.2/32"])
        .as_deref()
        != Some(":1")
    {
        assert!(Instant::now() < deadline, "Redis was never filled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = Instance::start(dir.path(), &redis.url(), "");
    assert_eq!(b.get("127.0.0.2"), 403);
}

#[test]
fn unix_sockets_and_passwords_and_no_password_in_any_line() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("r.sock");
    let port = free_port();
    let _redis = Proc(
        Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--requirepass", "s3cret-pw"])
            .arg("--unixsocket")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = Instance::start(
        dir.path(),
        &format!("redis+unix://{}?pass=s3cret-pw", sock.display()),
        "",
    );
    let b = Instance::start(
        dir.path(),
        &format!("redis://:s3cret-pw@127.0.0.1:{port}/0"),
        "",
    );
    a.ops("/ban/127.0.0.2");
    until_all(
        &[&a, &b],
        "127.0.0.2",
        403,
        "a ban over a unix socket, seen over TCP",
    );
    // A wrong password: the instance serves from its own state, and says why without it.
    let c = Instance::start(
        dir.path(),
        &format!("redis://:wrong-pw@127.0.0.1:{port}/0"),
        "",
    );
    assert_eq!(c.get("127.0.0.3"), 200);
    let err = std::fs::read_to_string(dir.path().join(format!("fleet-{}.err", c.port))).unwrap();
    assert!(err.contains("cannot be reached"), "{err}");
    assert!(err.contains(":***@"), "{err}");
    for port in [a.port, b.port, c.port] {
        let err = std::fs::read_to_string(dir.path().join(format!("fleet-{port}.err"))).unwrap();
        assert!(
            !err.contains("s3cret") && !err.contains("wrong-pw"),
            "{err}"
        );
    }
}

#[test]
fn expired_records_leave_redis_by_themselves() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    // A member naming a key of another type must not stop the pruning.
    redis.cmd(&["ZADD", "rocket-allow:expiry", "0", "rocket-allow:epoch|x"]);
    a.ops("/ban/127.0.0.2?secs=1");
    a.ops("/ban/127.0.0.3");
    a.ops("/unban/127.0.0.3");
    // Written (after the ban before it) once the store is connected: until then an expired
    // ban is "not in Redis" too.
    common::until(15, "the lift written", || {
        redis
            .cmd(&["HEXISTS", "rocket-allow:bans", "127.0.0.3/32"])
            .as_deref()
            == Some(":1")
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis
        .cmd(&["HEXISTS", "rocket-allow:bans", "127.0.0.2/32"])
        .as_deref()
        != Some(":0")
    {
        assert!(Instant::now() < deadline, "an expired ban stayed in Redis");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A lifted ban's record stays (7 days) so that the lift wins everywhere; its time to
    // go is set.
    assert_eq!(
        redis
            .cmd(&["HEXISTS", "rocket-allow:bans", "127.0.0.3/32"])
            .as_deref(),
        Some(":1")
    );
    let score = redis.cmd(&[
        "ZSCORE",
        "rocket-allow:expiry",
        "rocket-allow:bans|127.0.0.3/32",
    ]);
    assert!(score.is_some_and(|s| s.starts_with('$')), "no time to go");
}

#[test]
fn garbage_in_the_keys_is_skipped_and_never_unbans() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    a.ops("/ban/127.0.0.2");
    until_all(&[&a], "127.0.0.2", 403, "ban");
    for (field, value) in [
        ("not-a-net", r#"{"m":1}"#),
        ("127.0.0.3/32", "garbage"),
        ("127.0.0.4/32", r#"{"e":"soon","m":1}"#),
        ("0.0.0.0/0", r#"{"m":"x"}"#),
        // Another spelling of 127.0.0.5/32: skipped, so a lift can always meet its ban.
        ("127.0.0.5", r#"{"m":1}"#),
        // Made "later" than any real change: must not pin these addresses.
        ("127.0.0.41/32", r#"{"l":true,"m":1e20}"#),
        ("127.0.0.43/32", r#"{"l":true,"m":18446744073709551615}"#),
    ] {
        assert_eq!(
            redis
                .cmd(&["HSET", "rocket-allow:bans", field, value])
                .as_deref(),
            Some(":1")
        );
    }
    redis.cmd(&[
        "PUBLISH",
        "rocket-allow:changes",
        "{\"k\":\"bans\",\"f\":\"0.0.0.0/0\",\"v\":7}",
    ]);
    redis.cmd(&["PUBLISH", "rocket-allow:changes", "\u{1}\u{2}not json"]);
    redis.cmd(&["SET", "rocket-allow:sets", "not a hash"]);
    // A new instance syncs what is good and skips the rest; nothing widens or narrows.
    let b = Instance::start(dir.path(), &redis.url(), "");
    for i in [&a, &b] {
        assert_eq!(i.get("127.0.0.2"), 403);
        assert_eq!(i.get("127.0.0.3"), 200);
        assert_eq!(i.get("127.0.0.5"), 200);
        assert_eq!(i.get("127.0.0.9"), 200);
    }
    a.ops("/ban/127.0.0.41");
    a.ops("/ban/127.0.0.43");
    until_all(
        &[&a, &b],
        "127.0.0.41",
        403,
        "a ban over a garbage-dated lift",
    );
    until_all(&[&a, &b], "127.0.0.43", 403, "a ban over a far-future lift");
    // A ban renewed to end now ends everywhere.
    a.ops("/ban/127.0.0.71");
    until_all(&[&a, &b], "127.0.0.71", 403, "a ban");
    a.ops("/ban/127.0.0.71?secs=0");
    until_all(&[&a, &b], "127.0.0.71", 200, "the same ban ended at once");
    b.ops("/ban/127.0.0.8");
    until_all(&[&a, &b], "127.0.0.8", 403, "a ban after the garbage");
}

#[test]
fn a_full_read_over_many_pages_adds_and_lifts_exactly() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    // 25,000 bans written as another instance would have (the read takes several pages,
    // decoded while the next is fetched), with garbage between them.
    const N: u32 = 25_000;
    let ip = |i: u32| std::net::Ipv4Addr::from(0x7f01_0000 + i);
    let mut args = vec!["HSET".to_string(), "rocket-allow:bans".to_string()];
    for i in 0..N {
        args.push(format!("{}/32", ip(i)));
        args.push(r#"{"e":null,"r":"bulk","m":1,"o":"elsewhere"}"#.to_string());
        if i % 3000 == 7 {
            // Garbage for addresses not otherwise banned: skipped, never a ban.
            args.push(format!("127.2.0.{}/32", i / 3000));
            args.push("garbage".to_string());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(redis.cmd(&args).is_some_and(|a| a.starts_with(':')));
    redis.cmd(&["SET", "rocket-allow:epoch", "elsewhere"]);
    let log = dir.path().join("b.log");
    let b = Instance::start_with(
        dir.path(),
        &redis.url(),
        &format!("access_log = \"{}\"", log.display()),
        "",
    );
    // Cold: every ban, nothing else.
    until_line(&log, "full resync");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("full resync: {N} bans added or renewed, 0 lifted")),
        "{text}"
    );
    for i in (0..N).step_by(997).chain([N - 1]) {
        assert_eq!(b.get(&ip(i).to_string()), 403, "{}", ip(i));
    }
    for g in 0..=(N / 3000) {
        assert_eq!(b.get(&format!("127.2.0.{g}")), 200);
    }
    // Half of them lifted elsewhere while B was away, and the change log gone: B's
    // reconnect reads everything again and lifts exactly those.
    let mut gone = vec!["HSET".to_string(), "rocket-allow:bans".to_string()];
    for i in (0..N).step_by(2) {
        gone.push(format!("{}/32", ip(i)));
        gone.push(record(true));
    }
    let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
    assert_eq!(redis.cmd(&gone).as_deref(), Some(":0"));
    redis.cmd(&["DEL", "rocket-allow:log"]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    until_line(
        &log,
        &format!(
            "full resync: 0 bans added or renewed, {} lifted",
            N.div_ceil(2)
        ),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("full resync").count(), 2, "{text}");
    for i in (0..N).step_by(997).chain([N - 2, N - 1]) {
        let want = if i % 2 == 0 { 200 } else { 403 };
        assert_eq!(b.get(&ip(i).to_string()), want, "{}", ip(i));
    }
}

#[test]
fn a_full_read_that_failed_is_made_again_in_full() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &redis.url(), "");
    for i in 10..14 {
        a.ops(&format!("/ban/127.0.3.{i}"));
    }
    until_all(&[&a], "127.0.3.13", 403, "a ban");
    // While A is away, the change log goes and the bans key turns into something no one can
    // read: A's full read fails, and changes nothing.
    redis.cmd(&["RENAME", "rocket-allow:bans", "saved"]);
    redis.cmd(&["SET", "rocket-allow:bans", "not a hash"]);
    redis.cmd(&["DEL", "rocket-allow:log"]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    let err = dir.path().join(format!("fleet-{}.err", a.port));
    until_line(&err, "cannot be read; bans unchanged");
    assert_eq!(a.get("127.0.3.10"), 403);
    // The bans come back, but for two lifted meanwhile: the next connection must read
    // everything again (not replay from the point the failed read started at).
    redis.cmd(&["DEL", "rocket-allow:bans"]);
    redis.cmd(&["HSET", "saved", "127.0.3.10/32", &record(true)]);
    redis.cmd(&["HSET", "saved", "127.0.3.11/32", &record(true)]);
    redis.cmd(&["RENAME", "saved", "rocket-allow:bans"]);
    until_all(
        &[&a],
        "127.0.3.10",
        200,
        "a ban lifted while the read failed",
    );
    until_all(
        &[&a],
        "127.0.3.11",
        200,
        "a ban lifted while the read failed",
    );
    assert_eq!(a.get("127.0.3.12"), 403);
    assert_eq!(a.get("127.0.3.13"), 403);
}

#[test]
fn a_busy_core_does_not_keep_a_new_instance_out_of_the_fleet() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    const N: u32 = 100_000;
    let mut args = vec!["HSET".to_string(), "rocket-allow:bans".to_string()];
    for i in 0..N {
        args.push(format!("{}/32", std::net::Ipv4Addr::from(0x7f01_0000 + i)));
        args.push(r#"{"e":null,"m":1}"#.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(redis.cmd(&args).is_some_and(|a| a.starts_with(':')));
    redis.cmd(&["SET", "rocket-allow:epoch", "elsewhere"]);
    // Processes that keep the instance's one core busy at normal priority (requests do
    // that on a loaded server): the first sync must still be done in seconds (3 s here),
    // where at idle priority it gets what they leave (over a minute here).
    let _busy: Vec<Proc> = (0..3)
        .map(|_| {
            Proc(
                Command::new("taskset")
                    .args(["-c", "0", "sh", "-c", "while :; do :; done"])
                    .spawn()
                    .expect("taskset (util-linux)"),
            )
        })
        .collect();
    let log = dir.path().join("a.log");
    let a = Instance::start_via(
        &["taskset", "-c", "0"],
        dir.path(),
        &redis.url(),
        &format!("access_log = \"{}\"", log.display()),
        "",
    );
    common::until(60, "the first sync on a busy core", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains(&format!("full resync: {N} bans added")))
    });
    assert_eq!(a.get("127.1.0.1"), 403);
}

#[test]
fn a_redis_that_never_answers_does_not_hold_up_requests() {
    let _one = serial();
    // Accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in silent.incoming().take(50).flatten() {
            open.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(dir.path(), &format!("redis://127.0.0.1:{port}/0"), "");
    a.ops("/ban/127.0.0.2");
    for _ in 0..20 {
        assert_eq!(a.get("127.0.0.2"), 403);
        assert_eq!(a.get("127.0.0.3"), 200);
    }
    drop(a);
    drop(held);
}

#[test]
fn on_unavailable_refuse_refuses_once_the_last_sync_is_too_old_and_recovers() {
    let _one = serial();
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(
        dir.path(),
        &redis.url(),
        "on_unavailable = \"refuse\"\nmax_stale_secs = 1",
    );
    until_all(&[&a], "127.0.0.2", 200, "in sync");
    redis.kill();
    until_all(&[&a], "127.0.0.2", 403, "refused once stale");
    redis.restart();
    until_all(&[&a], "127.0.0.2", 200, "admitted again");
}

#[test]
fn a_bad_url_fails_ignite_naming_the_key_without_the_password() {
    let _one = serial();
    common::capture_logs();
    let toml =
        "[default.allow]\nrules = []\n[default.allow.store]\nredis = \"http://u:hunter2@host/0\"\n";
    let err = common::ignite_error(common::app(toml), &["allow.store.redis"]);
    assert!(!err.contains("hunter2"), "{err}");
    let toml = "[default.allow]\nrules = []\n[default.allow.store]\nredis = \"redis://127.0.0.1:1/0\"\nmax_stale_secs = 0\n";
    common::ignite_error(common::app(toml), &["allow.store.max_stale_secs"]);
}

/// Instances behind a proxy at 127.0.0.1, banning clients with more than 6 404s a minute.
const PROXY: &str = "trusted_proxies = [\"127.0.0.1\"]";
const SCANNERS: &str = "[default.allow.auto_ban.scanners]\non = \"status\"\nstatuses = [404]\nmax = 6\nwindow_secs = 60\nban_secs = 600\n";

#[test]
fn automatic_bans_count_events_across_the_fleet() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start_with(dir.path(), &redis.url(), PROXY, SCANNERS);
    let b = Instance::start_with(dir.path(), &redis.url(), PROXY, SCANNERS);
    let c = Instance::start_with(dir.path(), &redis.url(), PROXY, SCANNERS);
    let all = [&a, &b, &c];
    // Two 404s on each instance: 6 in all, the limit, not over it.
    for i in all {
        for _ in 0..2 {
            assert_eq!(i.via("/nope", "203.0.113.9"), 404);
        }
    }
    let key = "rocket-allow:ab:scanners:c:203.0.113.9/32";
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis.cmd(&["ZCARD", key]).as_deref() != Some(":6") {
        assert!(
            Instant::now() < deadline,
            "the six events never reached Redis"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The key expires by itself, within the window.
    let ttl: i64 = redis.cmd(&["PTTL", key]).unwrap()[1..].parse().unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    for i in all {
        assert_eq!(i.via("/", "203.0.113.9"), 200, "banned at 6");
    }
    // The seventh, on any instance, bans the client on every instance.
    assert_eq!(b.via("/nope", "203.0.113.9"), 404);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !all.iter().all(|i| i.via("/", "203.0.113.9") == 403) {
        assert!(
            Instant::now() < deadline,
            "the fleet's ban never reached every instance"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Other clients behind the same proxy are not touched.
    assert!(all.iter().all(|i| i.via("/", "203.0.113.10") == 200));
}

#[test]
fn with_redis_away_each_instance_counts_and_bans_on_its_own() {
    let _one = serial();
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start_with(dir.path(), &redis.url(), PROXY, SCANNERS);
    redis.kill();
    for _ in 0..7 {
        assert_eq!(a.via("/nope", "203.0.113.11"), 404);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.via("/", "203.0.113.11") != 403 {
        assert!(
            Instant::now() < deadline,
            "no local ban while Redis is away"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command:
/// `(ca.crt, server.crt, server.key)` in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed (.ci/run installs it)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.crt"],
    ]
    .concat()
    .iter()
    .chain(&["-days", "2", "-subj", "/CN=rocket-allow test CA"])
    .copied()
    .collect::<Vec<_>>());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "server.key", "-out", "server.csr"],
    ]
    .concat()
    .iter()
    .chain(&["-subj", "/CN=127.0.0.1"])
    .copied()
    .collect::<Vec<_>>());
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

#[test]
fn rediss_with_a_private_ca_shares_bans_and_an_untrusted_certificate_is_refused() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let port = free_port();
    let _redis = Proc(
        Command::new("redis-server")
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server (TLS) did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("rediss://127.0.0.1:{port}/0");
    let trust = format!("tls_ca_file = \"{}\"", ca.display());
    let a = Instance::start(dir.path(), &url, &trust);
    let b = Instance::start(dir.path(), &url, &trust);
    a.ops("/ban/127.0.0.2");
    until_all(&[&a, &b], "127.0.0.2", 403, "a ban over TLS");
    // Without the CA, the certificate is not trusted: never connected, never "in sync".
    let c = Instance::start(dir.path(), &url, "");
    let status = |i: &Instance| {
        let req = "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        common::http::send_from(i.port, "127.0.0.1", req.as_bytes())
            .unwrap()
            .body
    };
    assert!(status(&b).contains("connected: true"), "{}", status(&b));
    assert!(status(&c).contains("connected: false"), "{}", status(&c));
    assert_eq!(c.get("127.0.0.2"), 200);
}

#[test]
fn a_ca_file_that_cannot_be_used_fails_ignite_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let app = |url: &str, file: &Path| {
        common::app(&format!(
            "[default.allow]\nrules = []\n[default.allow.store]\nredis = \"{url}\"\ntls_ca_file = \"{}\"\n",
            file.display()
        ))
    };
    let missing = dir.path().join("missing.pem");
    common::ignite_error(
        app("rediss://127.0.0.1:1/0", &missing),
        &["allow.store.tls_ca_file", "missing.pem"],
    );
    common::ignite_error(
        app("rediss://127.0.0.1:1/0", &junk),
        &["allow.store.tls_ca_file", "no usable certificate"],
    );
    common::ignite_error(
        app("redis://u:secret@127.0.0.1:1/0", &junk),
        &["allow.store.tls_ca_file", "rediss://"],
    );
}

#[test]
fn a_full_read_lifts_what_redis_lifted_even_when_the_counts_agree() {
    let _one = serial();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    redis.cmd(&["HSET", "rocket-allow:bans", "127.0.7.0/24", &record(false)]);
    redis.cmd(&["SET", "rocket-allow:epoch", "elsewhere"]);
    let a = Instance::start(dir.path(), &redis.url(), "");
    until_all(&[&a], "127.0.7.1", 403, "a ban in Redis before the start");
    a.ops("/ban/127.0.4.1");
    a.ops("/ban/127.0.4.2");
    until_all(&[&a], "127.0.4.2", 403, "a ban");
    // While A is away one ban is lifted and another made: A holds as many bans as Redis,
    // but not the same ones.
    redis.cmd(&["HSET", "rocket-allow:bans", "127.0.4.1/32", &record(true)]);
    redis.cmd(&["HSET", "rocket-allow:bans", "127.0.4.3/32", &record(false)]);
    force_full_read(&redis);
    until_all(&[&a], "127.0.4.3", 403, "a ban made while A was away");
    until_all(&[&a], "127.0.4.1", 200, "a ban lifted while A was away");
    // A network lifted, and the same network under a second spelling (host bits set, as
    // someone else wrote it) still banned: the lift wins, the other spelling is garbage.
    redis.cmd(&["HSET", "rocket-allow:bans", "127.0.4.2/32", &record(true)]);
    redis.cmd(&["HSET", "rocket-allow:bans", "127.0.7.0/24", &record(true)]);
    redis.cmd(&["HSET", "rocket-allow:bans", "127.0.7.9/24", &record(false)]);
    force_full_read(&redis);
    until_all(&[&a], "127.0.4.2", 200, "a ban lifted while A was away");
    until_all(&[&a], "127.0.7.1", 200, "a network lifted while A was away");
    assert_eq!(a.get("127.0.4.3"), 403);
}

/// A Redis, and an instance in sync with it (access log `a.log`) through a relay that can
/// hold the answer to a request holding `word` (a full read's page).
fn behind_relay(word: &'static str) -> (Redis, common::stall::Stall, tempfile::TempDir, Instance) {
    let redis = Redis::start();
    let stall = common::stall::Stall::start(redis.port, word);
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start_with(
        dir.path(),
        &stall.url(),
        &format!("access_log = \"{}\"", dir.path().join("a.log").display()),
        "",
    );
    until_line(
        &dir.path().join(format!("fleet-{}.err", a.port)),
        "connected and in sync",
    );
    (redis, stall, dir, a)
}

#[test]
fn a_ban_made_here_during_a_full_read_is_kept() {
    let _one = serial();
    let (redis, stall, dir, a) = behind_relay("$5\r\nHSCAN\r\n");
    let log = dir.path().join("a.log");
    a.ops("/ban/127.0.5.2");
    common::until(15, "the ban written", || {
        redis
            .cmd(&["HGET", "rocket-allow:bans", "127.0.5.2/32"])
            .is_some_and(|a| a != "$-1")
    });
    // A ban made elsewhere while A is away, then A's full read caught after Redis answered
    // its page and before A has it.
    redis.cmd(&["HSET", "rocket-allow:bans", "127.0.5.9/32", &record(false)]);
    stall.arm();
    force_full_read(&redis);
    stall.until_holding();
    // A ban made and one lifted on A now are written to Redis at once (after the page was
    // read there).
    a.ops("/ban/127.0.5.1");
    a.ops("/unban/127.0.5.2");
    common::until(15, "the changes written", || {
        redis
            .cmd(&["HGET", "rocket-allow:bans", "127.0.5.1/32"])
            .is_some_and(|a| a != "$-1")
            && redis
                .cmd(&[
                    "EVAL",
                    r#"return string.find(redis.call('HGET', KEYS[1], ARGV[1]) or '', '"l":true', 1, true) and 1 or 0"#,
                    "1",
                    "rocket-allow:bans",
                    "127.0.5.2/32",
                ])
                .as_deref()
                == Some(":1")
    });
    stall.release();
    until_line(&log, "full resync");
    until_all(&[&a], "127.0.5.9", 403, "the ban made elsewhere");
    until_all(&[&a], "127.0.5.1", 403, "the ban made here");
    until_all(&[&a], "127.0.5.2", 200, "the ban lifted here");
    // The read did not lift or make them again in between (their own messages would have
    // put them right later).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("full resync: 1 bans added or renewed, 0 lifted"),
        "{text}"
    );
}

#[test]
fn a_set_changed_here_during_a_full_read_is_kept() {
    let _one = serial();
    // The relay holds the answer to the full read's page of sets.
    let (redis, stall, dir, a) = behind_relay("HSCAN\r\n$17\r\nrocket-allow:sets\r\n");
    let log = dir.path().join("a.log");
    let set_holds = |ip: &str| {
        redis
            .cmd(&[
                "EVAL",
                "return string.find(redis.call('HGET', KEYS[1], 'blocked') or '', ARGV[1], 1, true) and 1 or 0",
                "1",
                "rocket-allow:sets",
                ip,
            ])
            .as_deref()
            == Some(":1")
    };
    a.ops("/block/127.0.5.3");
    common::until(15, "the set written", || set_holds("127.0.5.3"));
    stall.arm();
    force_full_read(&redis);
    stall.until_holding();
    // The set changed on A after Redis answered the page, before A has it.
    a.ops("/block/127.0.5.4");
    common::until(15, "the set written", || set_holds("127.0.5.4"));
    stall.release();
    let err = dir.path().join(format!("fleet-{}.err", a.port));
    common::until(15, "the full read done", || {
        std::fs::read_to_string(&err).is_ok_and(|t| t.matches("connected and in sync").count() == 2)
    });
    until_all(&[&a], "127.0.5.4", 403, "the set changed here");
    until_all(&[&a], "127.0.5.3", 200, "the set changed here");
    // The read never put the older set back (its own message would have put it right).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("replace_set blocked: 1 entries (by the fleet)"),
        "{text}"
    );
}
