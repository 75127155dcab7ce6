//! What path-scoped policies cost per request: the same app through Rocket's local client
//! with no policies, and with 1,000 path-scoped policies (the request under one of them, and
//! under none), in one run, so the ratios compare like with like.
//!
//! `cargo bench --bench policies`

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use rocket::local::blocking::Client;

fn app(policies: usize) -> Client {
    let mut toml = String::from(
        "[default]\nlog_level = \"off\"\n[default.allow]\nrules = [{ allow = \"127.0.0.1\" }, { deny = \"all\" }]\n",
    );
    for i in 0..policies {
        toml.push_str(&format!(
            "[default.allow.policies.p{i}]\npaths = [\"/p{i}\"]\nrules = [{{ allow = \"127.0.0.1\" }}, {{ deny = \"all\" }}]\n"
        ));
    }
    common::app(&toml)
}

fn bench(c: &mut Criterion) {
    let peer = "127.0.0.1:4000".parse().unwrap();
    let mut group = c.benchmark_group("request");
    for (name, policies, path) in [
        ("no policies", 0, "/p500/x/y"),
        ("1000 policies, under one", 1000, "/p500/x/y"),
        ("1000 policies, under none", 1000, "/q500/x/y"),
    ] {
        let client = app(policies);
        group.bench_function(name, |b| {
            b.iter(|| {
                let res = client.get(path).remote(peer).dispatch();
                assert_eq!(res.status(), rocket::http::Status::Ok);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
