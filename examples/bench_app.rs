//! The app `bench/http.sh` measures: one tiny route for every path. Configuration comes
//! from `ROCKET_CONFIG`; these variables change the app:
//! - `BENCH_NO_FAIRING=1`: no fairing (the bare app);
//! - `BENCH_RULES_IN_CODE=N`: the fairing with N rules built in code (`AllowFairing::custom`,
//!   the same shape as `bench/gen_rules.py`: N random deny rules, then `allow 127.0.0.1`,
//!   `deny all`), instead of `[default.allow]`;
//! - `BENCH_NO_HITS=1`: with `BENCH_RULES_IN_CODE`, `rule_hits = false`;
//! - `BENCH_PROMETHEUS=1`: a Prometheus recorder is installed (nothing scrapes it);
//! - `BENCH_BAN_STORM=N`: from liftoff, N distinct bans a second (10-minute bans of
//!   addresses in 10.0.0.0/8, with a reason) are made through `AllowHandle::ban_with_reason`
//!   from a thread of their own, in batches every 10 ms: an attack being banned.

#[macro_use]
extern crate rocket;

use std::time::{Duration, Instant};

use rocket::fairing::AdHoc;
use rocket_allow::{AllowConfig, AllowFairing, AllowHandle, Rule};

#[get("/<_..>")]
fn index() -> &'static str {
    "Hello, world!"
}

/// `n` deny rules on random networks that never contain 127.0.0.1, then the two rules
/// that decide the benchmark's client (the worst case for a linear scan).
fn rules_in_code(n: usize) -> AllowConfig {
    let mut state: u64 = 7;
    let mut next = move || {
        // xorshift64: reproducible without a dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rules = Vec::with_capacity(n + 2);
    while rules.len() < n {
        let value = if rules.len() % 2 == 0 {
            let addr = std::net::Ipv4Addr::from(next() as u32);
            let prefix = 8 + next() % 25;
            let net = ipnet::Ipv4Net::new(addr, prefix as u8).unwrap().trunc();
            if net.contains(&std::net::Ipv4Addr::LOCALHOST) {
                continue;
            }
            net.to_string()
        } else {
            let addr = std::net::Ipv6Addr::from(((next() as u128) << 64) | next() as u128);
            let prefix = 16 + next() % 113;
            ipnet::Ipv6Net::new(addr, prefix as u8)
                .unwrap()
                .trunc()
                .to_string()
        };
        rules.push(Rule::deny(&value).unwrap());
    }
    rules.push(Rule::allow("127.0.0.1").unwrap());
    rules.push(Rule::deny("all").unwrap());
    let mut config = AllowConfig::new(rules);
    config.rule_hits = std::env::var_os("BENCH_NO_HITS").is_none();
    config
}

/// Bans `rate` new addresses a second, paced in 10 ms batches, until the process ends.
fn ban_storm(handle: AllowHandle, rate: u64) {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut made = 0u64;
        loop {
            let due = rate * start.elapsed().as_millis() as u64 / 1000;
            while made < due {
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + made as u32);
                handle
                    .ban_with_reason(
                        &ip.to_string(),
                        Some(Duration::from_secs(600)),
                        Some("storm"),
                    )
                    .unwrap();
                made += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}

#[launch]
fn rocket() -> _ {
    if std::env::var_os("BENCH_PROMETHEUS").is_some() {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("one recorder");
    }
    let mut rocket = rocket::build().mount("/", routes![index]);
    if let Ok(rate) = std::env::var("BENCH_BAN_STORM") {
        let rate: u64 = rate.parse().unwrap();
        rocket = rocket.attach(AdHoc::on_liftoff("ban storm", move |r| {
            ban_storm(r.state::<AllowHandle>().unwrap().clone(), rate);
            Box::pin(async {})
        }));
    }
    if std::env::var_os("BENCH_NO_FAIRING").is_some() {
        rocket
    } else if let Ok(n) = std::env::var("BENCH_RULES_IN_CODE") {
        rocket.attach(AllowFairing::custom(rules_in_code(n.parse().unwrap())))
    } else {
        rocket.attach(AllowFairing::fairing())
    }
}
