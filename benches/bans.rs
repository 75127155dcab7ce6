//! The ban table at scale, through the public API (`cargo bench --bench bans`; figures in
//! the README). With 1,000,000 bans (bench/gen_bans.py's mix: IPv4 and IPv6 addresses and
//! networks, half with an expiry, a few shared reasons):
//! - restoring them from a bans file at ignite, and the heap they take per ban;
//! - `ban` (new), renewal and `unban` on the calling thread: p50, p99, max;
//! - 1,000,000 bans made from 8 threads into an empty table, while another thread asks
//!   `explain` (the request path's ban check) without pause: the total time, and how long
//!   a check waited at worst (a lock held by a ban call would show there).
//!
//! `BANS=N` changes the count.

// A counting global allocator needs `unsafe impl GlobalAlloc`; the library itself has none.
#![allow(unsafe_code)]

mod common;
#[path = "common/counting.rs"]
mod counting;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket_allow::AllowHandle;

fn app_with_bans_file(file: &std::path::Path) -> rocket::local::blocking::Client {
    common::app(&format!(
        "[default.allow]\nrules = [{{ allow = \"all\" }}]\n[default.allow.bans]\nfile = \"{}\"\n",
        file.display()
    ))
}

fn handle(client: &rocket::local::blocking::Client) -> AllowHandle {
    client.rocket().state::<AllowHandle>().unwrap().clone()
}

/// p50, p99 and max of some timings, in microseconds.
fn spread(mut t: Vec<Duration>) -> String {
    t.sort();
    let at = |q: f64| t[((t.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    format!(
        "p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn main() {
    let n: usize = std::env::var("BANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bans.txt");
    let generated = std::process::Command::new("python3")
        .args([concat!(env!("CARGO_MANIFEST_DIR"), "/bench/gen_bans.py")])
        .arg(n.to_string())
        .arg(&file)
        .status()
        .expect("python3 runs bench/gen_bans.py");
    assert!(generated.success());

    // Restore at ignite, and memory: live heap after ignite, less an app without bans.
    let empty = dir.path().join("none.txt");
    let before = counting::live();
    let baseline = app_with_bans_file(&empty);
    let base_bytes = counting::live() - before;
    let before = counting::live();
    let t = Instant::now();
    let client = app_with_bans_file(&file);
    let restore = t.elapsed();
    let bytes = counting::live() - before - base_bytes;
    drop(baseline);
    let h = handle(&client);
    assert_eq!(h.bans().len(), n, "every ban restored");
    println!(
        "restore {n} bans from a bans file at ignite: {:.2} s; heap {:.1} bytes per ban",
        restore.as_secs_f64(),
        bytes as f64 / n as f64
    );

    // Single calls on the full table (the bans file is being rewritten meanwhile, paced).
    let k = 10_000;
    let new: Vec<String> = (0..k)
        .map(|i| std::net::Ipv4Addr::from(0x7e00_0000 + i as u32).to_string())
        .collect();
    let time_each = |f: &dyn Fn(&str)| -> Vec<Duration> {
        new.iter()
            .map(|t| {
                let s = Instant::now();
                f(t);
                s.elapsed()
            })
            .collect()
    };
    let ttl = Some(Duration::from_secs(600));
    let added = time_each(&|t| h.ban_with_reason(t, ttl, Some("bench")).unwrap());
    let renewed = time_each(&|t| h.ban_with_reason(t, ttl, Some("again")).unwrap());
    let lifted = time_each(&|t| assert!(h.unban(t).unwrap()));
    println!("ban (new) at {n} bans: {}", spread(added));
    println!("renewal at {n} bans: {}", spread(renewed));
    println!("unban at {n} bans: {}", spread(lifted));
    let t = Instant::now();
    h.flush_bans().unwrap();
    println!(
        "flush_bans (the whole file rewritten): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(client);

    // 8 threads, n new bans into an empty table, with a checker asking all along.
    let client = common::app("[default.allow]\nrules = [{ allow = \"all\" }]\n");
    let h = handle(&client);
    let targets: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).to_string()
                } else {
                    format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff)
                }
            })
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (h, stop) = (h.clone(), stop.clone());
        std::thread::spawn(move || {
            let ip = "192.0.2.1".parse().unwrap();
            let mut waits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let s = Instant::now();
                std::hint::black_box(h.explain(ip, "/"));
                waits.push(s.elapsed());
            }
            waits
        })
    };
    let t = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let (h, targets) = (h.clone(), targets.clone());
            std::thread::spawn(move || {
                let mut each = Vec::with_capacity(targets.len() / 8 + 1);
                for target in targets.iter().skip(w).step_by(8) {
                    let s = Instant::now();
                    h.ban(target, None).unwrap();
                    each.push(s.elapsed());
                }
                each
            })
        })
        .collect();
    let mut each = Vec::new();
    for t in threads {
        each.extend(t.join().unwrap());
    }
    let total = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let waits = checker.join().unwrap();
    assert_eq!(h.bans().len(), n);
    println!(
        "{n} bans from 8 threads: {:.2} s in all; each ban: {}",
        total.as_secs_f64(),
        spread(each)
    );
    println!(
        "a ban check meanwhile ({} checks): {}",
        waits.len(),
        spread(waits)
    );
}
