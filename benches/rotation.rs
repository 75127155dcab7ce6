//! What rotating the access log costs, and how that grows with the backups kept: 20,000
//! requests through an app whose log rotates every 64 KiB (about every 400 lines, 50
//! rotations), with `backup_count` 7 and 1,000, every backup already there (a log that
//! has run for a while). The time is the whole batch: the requests, and the writer
//! draining the log when the app is dropped.
//!
//! `cargo bench --bench rotation`

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

const REQUESTS: u32 = 20_000;

/// Runs the batch once in `dir` with `backups` backups kept (and present).
fn batch(dir: &std::path::Path, backups: usize) -> Duration {
    let log = dir.join("access.log");
    for i in 1..=backups {
        std::fs::write(format!("{}.{i}", log.display()), "x\n").unwrap();
    }
    let toml = format!(
        "[default]\nlog_level = \"off\"\n[default.allow]\nrules = []\n\
         access_log = {{ path = \"{}\", max_bytes = 65536, backup_count = {backups}, on_full = \"block\" }}\n",
        log.display()
    );
    let client = common::app(&toml);
    let start = Instant::now();
    for _ in 0..REQUESTS {
        client
            .get("/x")
            .remote("127.0.0.1:1".parse().unwrap())
            .dispatch();
    }
    drop(client); // waits for the writer to finish the backlog
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("rotation");
    group.sample_size(10);
    for backups in [7usize, 1000] {
        group.bench_function(format!("20k lines, 50 rotations, {backups} backups"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| batch(tempfile::tempdir().unwrap().path(), backups))
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
