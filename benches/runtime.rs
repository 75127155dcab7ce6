//! The runtime API's costs: how long `ban` takes with 1,000,000 list entries loaded (it
//! must not recompile them), and what 100,000 active bans cost a request compared with none.
//!
//! `cargo bench --bench runtime`

mod common;

use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rocket::local::blocking::Client;
use rocket_allow::AllowHandle;

/// An app whose `@big` set is a list file of `n` /32s in 10.0.0.0/8 (not the client's).
fn app(n: u32, dir: &std::path::Path) -> Client {
    let path = dir.join(format!("list-{n}.txt"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..n {
        writeln!(f, "{}", std::net::Ipv4Addr::from(0x0a00_0000 + i)).unwrap();
    }
    f.flush().unwrap();
    let toml = format!(
        "[default]\nlog_level = \"off\"\n[default.allow]\nrules = [{{ deny = \"@big\" }}, {{ allow = \"127.0.0.1\" }}]\n[default.allow.sets]\nbig = {{ file = \"{}\" }}\n",
        path.display()
    );
    common::app(&toml)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let peer = "127.0.0.1:4000".parse().unwrap();

    let big = app(1_000_000, dir.path());
    let handle = big.rocket().state::<AllowHandle>().unwrap().clone();
    let mut i = 0u32;
    c.bench_function("ban with 1,000,000 list entries loaded", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let target = std::net::Ipv4Addr::from(0xc000_0200 + (i % 200)).to_string();
            handle.ban(&target, Some(Duration::from_secs(60))).unwrap();
        })
    });
    drop(big);

    let mut group = c.benchmark_group("request");
    for bans in [0u32, 100_000] {
        let client = app(1, dir.path());
        let handle = client.rocket().state::<AllowHandle>().unwrap().clone();
        for k in 0..bans {
            // 100,000 /32 bans in 172.16.0.0/12, none of them the client.
            let ip = std::net::Ipv4Addr::from(0xac10_0000 + k);
            handle.ban(&ip.to_string(), None).unwrap();
        }
        group.bench_function(format!("{bans} bans"), |b| {
            b.iter(|| {
                let res = client.get("/x").remote(peer).dispatch();
                assert_eq!(res.status(), rocket::http::Status::Ok);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
