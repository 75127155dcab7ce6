//! Automatic bans measured (`cargo bench --bench auto_ban`; figures in docs/performance.md):
//! - the heap a tracked client takes: 100,000 clients with one event each, and 10,000 with
//!   `max` (20) events each in their window;
//! - 1,000,000 distinct attacking addresses, one strike each, into a rule with
//!   `max_tracked = 100000`: the heap at the end (it must stay at the bound) and the cost of a
//!   strike (p50, p99, max);
//! - the same attack over real HTTP: a launched app behind a trusted proxy (127.0.0.1 with
//!   `X-Forwarded-For`), 1,000,000 requests from distinct addresses answered 404 by a
//!   `status` rule, while one other client measures its own latency; p99 and RSS against
//!   the same app without the rule, in the same run.
//!
//! `ATTACK=N` changes the count of the HTTP attack.

// A counting global allocator needs `unsafe impl GlobalAlloc`; the library itself has none.
#![allow(unsafe_code)]

mod common;
#[path = "common/counting.rs"]
mod counting;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket_allow::AllowHandle;

const RULE: &str = r#"
[default.allow.auto_ban.login]
on = "strikes"
max = 20
window_secs = 600
ban_secs = 600
max_tracked = 100000
"#;

use counting::live;

fn ms(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // 1. Heap per tracked client.
    let client = common::app(&format!("[default.allow]\nrules = []\n{RULE}"));
    let h = client.rocket().state::<AllowHandle>().unwrap().clone();
    let ip = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
    let before = live();
    for i in 0..100_000 {
        h.strike("login", ip(i)).unwrap();
    }
    let one = (live() - before) as f64 / 100_000.0;
    let client2 = common::app(&format!("[default.allow]\nrules = []\n{RULE}"));
    let h2 = client2.rocket().state::<AllowHandle>().unwrap().clone();
    let before = live();
    for i in 0..10_000 {
        for _ in 0..20 {
            h2.strike("login", ip(i)).unwrap();
        }
    }
    let full = (live() - before) as f64 / 10_000.0;
    println!(
        "heap per tracked client: {one:.0} B with one event, {full:.0} B with max (20) events in its window"
    );
    drop((client2, h2));

    // 2. 1,000,000 distinct addresses into max_tracked = 100000.
    let client3 = common::app(&format!("[default.allow]\nrules = []\n{RULE}"));
    let h3 = client3.rocket().state::<AllowHandle>().unwrap().clone();
    let mut t = Vec::with_capacity(1_000_000);
    let before = live();
    let mut peak = 0;
    for i in 0..1_000_000u32 {
        let s = Instant::now();
        h3.strike("login", ip(i)).unwrap();
        t.push(s.elapsed());
        if i % 50_000 == 0 {
            peak = peak.max(live() - before);
        }
    }
    peak = peak.max(live() - before);
    t.sort();
    println!(
        "1,000,000 distinct addresses, max_tracked 100000: heap {:.1} MB at the end, {:.1} MB at most (100,000 tracked); strike p50 {}, p99 {}, max {}",
        (live() - before) as f64 / 1e6,
        peak as f64 / 1e6,
        ms(t[t.len() / 2]),
        ms(t[t.len() * 99 / 100]),
        ms(t[t.len() - 1]),
    );
    drop((client3, h3, client));

    // 3. The attack over HTTP, with and without the rule.
    let n: u32 = std::env::var("ATTACK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let status_rule = "[default.allow.auto_ban.scanners]\non = \"status\"\nstatuses = [404]\nmax = 20\nwindow_secs = 60\nban_secs = 600\nmax_tracked = 100000\n";
    // Interleaved, twice each: the machine's noise shows as the spread between rounds.
    for (name, rule) in [
        ("without a rule", ""),
        ("with the 404 rule", status_rule),
        ("without a rule", ""),
        ("with the 404 rule", status_rule),
    ] {
        let (p99, rss, secs) = attack(rule, n);
        println!(
            "HTTP attack {name}: {n} requests from distinct addresses in {secs:.1} s; a bystander's p99 {p99}, RSS {:.1} MB at the end",
            rss as f64 / 1024.0
        );
    }
}

#[rocket::get("/")]
fn index() -> &'static str {
    "hello"
}

/// Launches an app (behind a trusted proxy at 127.0.0.1) with `rule`, sends `n` 404s from
/// distinct addresses on 2 connections while a bystander measures GET / on its own: the
/// bystander's p99, the process RSS (kB) after, and the attack's duration.
fn attack(rule: &str, n: u32) -> (String, u64, f64) {
    use rocket::figment::providers::{Format, Toml};
    let toml = format!(
        "[default]\naddress = \"127.0.0.1\"\nport = 0\nlog_level = \"off\"\n[default.allow]\nrules = [{{ allow = \"all\" }}]\ntrusted_proxies = [\"127.0.0.1\"]\n{rule}"
    );
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::string(&toml).nested());
    let (tx, rx) = std::sync::mpsc::channel();
    let rocket = rocket::custom(figment)
        .attach(rocket_allow::AllowFairing::fairing())
        .mount("/", rocket::routes![index])
        .attach(rocket::fairing::AdHoc::on_liftoff("port", move |r| {
            let _ = tx.send((r.config().port, r.shutdown()));
            Box::pin(async {})
        }));
    let server = std::thread::spawn(move || rocket::execute(rocket.launch()).is_ok());
    let (port, shutdown) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let bystander = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut s = Conn::open(port);
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                s.get("/", "198.51.100.1");
                lat.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(1));
            }
            lat.sort();
            lat[lat.len() * 99 / 100]
        })
    };
    let start = Instant::now();
    let workers: Vec<_> = (0..2u32)
        .map(|w| {
            std::thread::spawn(move || {
                let mut s = Conn::open(port);
                for i in (w..n).step_by(2) {
                    // 10.0.0.0/8 and on: a million distinct addresses.
                    let ip = Ipv4Addr::from(0x0a00_0000 + i).to_string();
                    s.get("/nope", &ip);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let p99 = bystander.join().unwrap();
    let rss = rss_kb();
    shutdown.notify();
    let _ = server.join();
    (ms(p99), rss, secs)
}

/// A keep-alive HTTP/1.1 connection through the "proxy".
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let w = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.set_nodelay(true).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Conn { w, r }
    }

    fn get(&mut self, path: &str, client: &str) -> u16 {
        write!(
            self.w,
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\r\n"
        )
        .unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        status
    }
}
