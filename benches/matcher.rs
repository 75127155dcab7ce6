//! Decision time of the compiled matcher against the linear scan at 1 to 100,000 rules,
//! compile time, and the compiled set's memory.
//!
//! `cargo bench --bench matcher`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rocket_allow::{LinearScan, Matcher, Verdict};

#[path = "common/rng.rs"]
mod rng;

use rng::Rng;

/// `n` rules, half IPv4 and half IPv6, with random prefixes in the lengths block lists use.
fn rules(n: usize, rng: &mut Rng) -> Vec<(Verdict, Vec<IpNet>)> {
    (0..n)
        .map(|i| {
            let verdict = if i % 3 == 0 {
                Verdict::Allow
            } else {
                Verdict::Deny
            };
            let net = if i % 2 == 0 {
                let prefix = 8 + (rng.next() % 25) as u8; // /8 ../32
                IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(rng.next() as u32), prefix)
                        .unwrap()
                        .trunc(),
                )
            } else {
                let prefix = 16 + (rng.next() % 113) as u8; // /16 ../128
                let addr = (rng.next() as u128) << 64 | rng.next() as u128;
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), prefix).unwrap().trunc())
            };
            (verdict, vec![net])
        })
        .collect()
}

/// Clients: half inside some rule's network, half random; both families.
fn clients(rules: &[(Verdict, Vec<IpNet>)], rng: &mut Rng) -> Vec<IpAddr> {
    (0..1024)
        .map(|i| {
            let inside = i % 2 == 0;
            match (i % 4 < 2, inside) {
                (_, true) => {
                    let net = rules[(rng.next() as usize) % rules.len()].1[0];
                    match net {
                        IpNet::V4(n) => IpAddr::V4(n.network()),
                        IpNet::V6(n) => IpAddr::V6(n.network()),
                    }
                }
                (true, false) => IpAddr::V4(Ipv4Addr::from(rng.next() as u32)),
                (false, false) => IpAddr::V6(Ipv6Addr::from(
                    (rng.next() as u128) << 64 | rng.next() as u128,
                )),
            }
        })
        .collect()
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [1usize, 100, 10_000, 100_000] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let rules = rules(n, &mut rng);
        let clients = clients(&rules, &mut rng);
        let compiled = Matcher::new(Verdict::Allow, rules.clone());
        let linear = LinearScan::new(Verdict::Allow, rules.clone());
        println!(
            "rules={n}: compiled set {} bytes ({:.2} MiB)",
            compiled.memory_bytes(),
            compiled.memory_bytes() as f64 / (1024.0 * 1024.0)
        );
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("compiled", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(compiled.decide(black_box(clients[i])))
            })
        });
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("linear", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(linear.decide(black_box(clients[i])))
            })
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let rules = rules(n, &mut Rng(0x9e37_79b9_7f4a_7c15));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || rules.clone(),
                |r| Matcher::new(Verdict::Allow, r),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, decisions, compile);
criterion_main!(benches);
