//! The fleet store measured with real processes (`cargo bench --bench fleet`; figures in
//! the README): a `redis-server` on a free loopback port and instances of
//! `examples/fleet.rs` (built in release by this bench).
//! - propagation: a ban made on instance A (`POST /ban/<ip>`), until B and C refuse that
//!   client: p50, p99, max over 300 bans;
//! - automatic bans counted by the fleet: from the (max+1)-th 404 of a client spread over
//!   three instances until every instance refuses it: p50, p99, max over 200 clients;
//! - cold sync: 1,000,000 bans in Redis, a new instance started, until it reports itself
//!   in sync (`GET /status`);
//! - a full resync under load (wrk, when installed): throughput and p99 of 10 s with the
//!   store steady against 10 s during which Redis drops the instance's connections every
//!   2 s, so it reconnects and reads all 1,000,000 bans again each time; `ROUNDS` rounds
//!   (3) of steady, replaying and full, each compared with the steady round before it.
//!
//! `BANS=N` changes the count.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The tests' raw-HTTP helper (one copy of it).
#[path = "../tests/common/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../tests/common/process.rs"]
mod process;

use process::{free_port, Proc};

/// One request from `from` (a 127.0.0.0/8 address): the status and the whole response.
fn status(from: &str, port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    http::send_from(port, from, request.as_bytes()).map(|r| (r.status, r.body))
}

fn spread(mut t: Vec<Duration>) -> String {
    t.sort();
    let at = |q: f64| t[((t.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn instance(binary: &PathBuf, config: &str, redis_port: u16) -> (Proc, u16) {
    instance_with(binary, config, redis_port, "")
}

/// [`instance`] with more `[allow]` keys (`,key=value...` in figment's inline syntax).
fn instance_with(binary: &PathBuf, config: &str, redis_port: u16, more: &str) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(binary)
        .env("FLEET_INSTANCE", "1")
        .env("ROCKET_CONFIG", config)
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_LOG_LEVEL", "off")
        .env(
            "ROCKET_ALLOW",
            format!("{{store={{redis=\"redis://127.0.0.1:{redis_port}/0\"}}{more}}}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status("127.0.0.1", port, "GET", "/").is_none() {
        assert!(Instant::now() < deadline, "an instance did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    (Proc(child), port)
}

fn wrk(port: u16, secs: u64) -> Option<(f64, String)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))?
        .split_whitespace()
        .nth(1)?
        .to_string();
    Some((rps, p99))
}

fn main() {
    let n: usize = std::env::var("BANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = env!("CARGO_MANIFEST_DIR");
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--example",
            "fleet",
            "--manifest-path",
        ])
        .arg(format!("{root}/Cargo.toml"))
        .status()
        .unwrap();
    assert!(built.success());
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
    let binary = PathBuf::from(format!("{target}/release/examples/fleet"));
    let config = format!("{root}/examples/fleet.toml");
    let redis_port = free_port();
    let _redis = Proc(
        Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &redis_port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)"),
    );
    let client = redis::Client::open(format!("redis://127.0.0.1:{redis_port}/0")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut con = loop {
        if let Ok(c) = client.get_connection() {
            break c;
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };

    // Propagation across three instances.
    let (a, a_port) = instance(&binary, &config, redis_port);
    let (b, b_port) = instance(&binary, &config, redis_port);
    let (c, c_port) = instance(&binary, &config, redis_port);
    let mut seen = Vec::new();
    for i in 0..300u32 {
        let ip = std::net::Ipv4Addr::from(0x7f01_0000 + i).to_string();
        let t = Instant::now();
        assert_eq!(
            status("127.0.0.1", a_port, "POST", &format!("/ban/{ip}")).map(|s| s.0),
            Some(200)
        );
        for port in [b_port, c_port] {
            while status(&ip, port, "GET", "/").map(|s| s.0) != Some(403) {
                assert!(t.elapsed() < Duration::from_secs(10), "never propagated");
            }
            seen.push(t.elapsed());
        }
    }
    println!(
        "propagation of a ban from A to B and C (300 bans, HTTP call included): {}",
        spread(seen)
    );
    drop((a, b, c));

    // Automatic bans: clients behind a proxy (127.0.0.1) with more than 6 404s a minute,
    // counted by the fleet. Two 404s on each instance, then the seventh on A: the time from
    // sending it until B, C and A all refuse the client.
    let more = ",trusted_proxies=[\"127.0.0.1\"],auto_ban={scanners={on=\"status\",\
                statuses=[404],max=6,window_secs=60,ban_secs=600}}";
    let all: Vec<(Proc, u16)> = (0..3)
        .map(|_| instance_with(&binary, &config, redis_port, more))
        .collect();
    let via = |port: u16, path: &str, client: &str| {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
        );
        http::send_from(port, "127.0.0.1", request.as_bytes()).map(|r| r.status)
    };
    let mut seen = Vec::new();
    for i in 0..200u32 {
        let client = std::net::Ipv4Addr::from(0xc633_6400 + i).to_string(); // 198.51.100.0/24 and on
        for (_, port) in &all {
            for _ in 0..2 {
                assert_eq!(via(*port, "/nope", &client), Some(404));
            }
        }
        let t = Instant::now();
        assert_eq!(via(all[0].1, "/nope", &client), Some(404));
        for (_, port) in all.iter().skip(1).chain(all.iter().take(1)) {
            while via(*port, "/", &client) != Some(403) {
                assert!(t.elapsed() < Duration::from_secs(10), "never banned");
            }
        }
        seen.push(t.elapsed());
    }
    println!(
        "automatic ban across 3 instances, from the 7th 404 (max 6) until all refuse (200 clients, HTTP calls included): {}",
        spread(seen)
    );
    drop(all);

    // Cold sync of n bans.
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..n {
        let target = if i % 2 == 0 {
            format!("{}/32", std::net::Ipv4Addr::from(0x0a00_0000 + i as u32))
        } else {
            format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff)
        };
        pipe.cmd("HSET")
            .arg("rocket-allow:bans")
            .arg(target)
            .arg(r#"{"e":null,"r":"bench","m":1,"o":"bench"}"#)
            .ignore();
        if pipe.len() == 10_000 {
            let _: () = pipe.query(&mut con).unwrap();
            pipe = redis::pipe();
        }
    }
    if !pipe.is_empty() {
        let _: () = pipe.query(&mut con).unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("rocket-allow:epoch")
        .arg("bench")
        .query(&mut con)
        .unwrap();
    let t = Instant::now();
    let (d, d_port) = instance(&binary, &config, redis_port);
    loop {
        let s = status("127.0.0.1", d_port, "GET", "/status").unwrap().1;
        if s.contains("connected: true") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "never in sync");
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "cold sync of {n} bans: {:.2} s from process start to in sync",
        t.elapsed().as_secs_f64()
    );

    // A full resync under load.
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("(wrk not installed: no resync-under-load figure)");
        return;
    }
    // A short round first: the cold sync's aftermath (a million records freed, the
    // allocator and page cache settling) is not the steady state.
    wrk(d_port, 3).expect("wrk output");
    // Every 2 s Redis drops the instance's connections; with `full`, the change log goes
    // too, so the reconnect must read all n bans again instead of replaying the log.
    let under_drops = |full: bool| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let killer = {
            let (stop, client) = (stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                let mut kills = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(2));
                    // No drop after wrk has stopped: it would start a full read in the next
                    // steady round (it did, and made the ratios of rounds 2 and 3 look good).
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    if full {
                        // A change the instance sees (so it has a place in the log), then
                        // the log gone: the reconnect cannot replay and reads everything.
                        let ip = format!("127.0.2.{}", kills % 250);
                        status("127.0.0.1", d_port, "POST", &format!("/ban/{ip}"));
                        std::thread::sleep(Duration::from_millis(50));
                        let _: redis::RedisResult<i64> =
                            redis::cmd("DEL").arg("rocket-allow:log").query(&mut con);
                    }
                    let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("SKIPME")
                        .arg("yes")
                        .query(&mut con);
                    kills += 1;
                }
                kills
            })
        };
        let seen = wrk(d_port, 10).expect("wrk output");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let kills = killer.join().unwrap();
        {
            // The last drop's reconnect done before the next round.
            std::thread::sleep(Duration::from_millis(300));
            let t = Instant::now();
            while !status("127.0.0.1", d_port, "GET", "/status")
                .is_some_and(|s| s.1.contains("connected: true"))
            {
                assert!(t.elapsed() < Duration::from_secs(60), "never in sync again");
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        (seen, kills)
    };
    // Rounds of steady, replaying and full, interleaved: this machine drifts by more than
    // the effect between rounds minutes apart, so each is compared with the steady round
    // just before it, and the medians of those ratios are the figures.
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut ratios: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let steady = wrk(d_port, 10).expect("wrk output");
        println!(
            "round {round}: under wrk load, steady: {:.0} req/s, p99 {}",
            steady.0, steady.1
        );
        for (i, (full, what)) in [
            (false, "reconnects replaying the log"),
            (true, "full resyncs"),
        ]
        .into_iter()
        .enumerate()
        {
            let (seen, kills) = under_drops(full);
            println!(
                "  with {kills} {what} of {n} bans: {:.0} req/s ({:.1}%), p99 {} ({:.2}x)",
                seen.0,
                seen.0 / steady.0 * 100.0,
                seen.1,
                ms(&seen.1) / ms(&steady.1)
            );
            ratios[i].push((seen.0 / steady.0, ms(&seen.1) / ms(&steady.1)));
        }
    }
    for (i, what) in ["replaying the log", "full resyncs"]
        .into_iter()
        .enumerate()
    {
        let median = |f: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = ratios[i].iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "median over {rounds} rounds, {what}: {:.1}% of the steady throughput, p99 {:.2}x",
            median(|r| r.0) * 100.0,
            median(|r| r.1)
        );
    }
    drop(d);
}

/// wrk's latency text (`2.14ms`, `850.00us`, `1.02s`) in milliseconds.
fn ms(text: &str) -> f64 {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, "ms"), |i| text.split_at(i));
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1000.0,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => value,
    }
}
