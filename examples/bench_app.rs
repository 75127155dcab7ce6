//! The app `bench/http.sh` measures: one tiny route for every path. Configuration comes
//! from `ROCKET_CONFIG`; these variables change the app:
//! - `BENCH_NO_FAIRING=1`: no fairing (the bare app);
//! - `BENCH_RULES_IN_CODE=N`: the fairing with N rules built in code (`AllowFairing::custom`,
//!   the same shape as `bench/gen_rules.py`: N random deny rules, then `allow 127.0.0.1`,
//!   `deny all`), instead of `[default.allow]`;
//! - `BENCH_NO_HITS=1`: with `BENCH_RULES_IN_CODE`, `rule_hits = false`;
//! - `BENCH_PROMETHEUS=1`: a Prometheus recorder is installed (nothing scrapes it).

#[macro_use]
extern crate rocket;

use rocket_allow::{AllowConfig, AllowFairing, Rule};

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

#[launch]
fn rocket() -> _ {
    if std::env::var_os("BENCH_PROMETHEUS").is_some() {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("one recorder");
    }
    let rocket = rocket::build().mount("/", routes![index]);
    if std::env::var_os("BENCH_NO_FAIRING").is_some() {
        rocket
    } else if let Ok(n) = std::env::var("BENCH_RULES_IN_CODE") {
        rocket.attach(AllowFairing::custom(rules_in_code(n.parse().unwrap())))
    } else {
        rocket.attach(AllowFairing::fairing())
    }
}
