//! What `country:` rules cost: CPU per request with 10 country rules against one IP rule
//! (through Rocket's local client, in one run), and the load time and memory of a country
//! database of GeoLite2-Country's size (500,000 networks, written with the `mmdb-writer`
//! crate into a temporary directory).
//!
//! `cargo bench --bench geoip` (prints the load figures first).
//! `GEO_DB_OUT=path cargo bench --bench geoip` only writes the database (for
//! `bench/instructions.sh`'s `geo10` mode) and exits.

// Peak and live heap bytes are counted with a global allocator (`unsafe impl GlobalAlloc`);
// the library itself has no unsafe code.
#![allow(unsafe_code)]

mod common;
#[path = "common/rng.rs"]
mod rng;

use rng::Rng;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use criterion::Criterion;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        grew(new as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Countries the generated networks are spread over (about 8,000 networks each); the
/// first ten are the rules'.
const COUNTRIES: [&str; 60] = [
    "RU", "CN", "KP", "IR", "BR", "IN", "VN", "ID", "NG", "PK", "US", "DE", "GB", "FR", "JP", "KR",
    "IT", "ES", "NL", "SE", "NO", "FI", "DK", "PL", "CZ", "AT", "CH", "BE", "PT", "IE", "CA", "MX",
    "AR", "CL", "CO", "PE", "ZA", "EG", "KE", "MA", "TR", "SA", "AE", "IL", "UA", "RO", "HU", "GR",
    "BG", "RS", "TH", "MY", "SG", "PH", "TW", "HK", "AU", "NZ", "BD", "LK",
];

/// 400,000 IPv4 networks (/18 to /24, laid end to end from 1.0.0.0, none in 127.0.0.0/8)
/// and 100,000 IPv6 networks (/32 to /48 from 2400::), each given a random country.
fn write_db(path: &std::path::Path) -> usize {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut w = mmdb_writer::Writer::new("GeoLite2-Country");
    let mut nets: Vec<IpNet> = Vec::with_capacity(500_000);
    let mut at: u64 = 1 << 24;
    while nets.len() < 400_000 {
        let prefix = 18 + (rng.next() % 7) as u8;
        let size = 1u64 << (32 - prefix);
        at = at.div_ceil(size) * size;
        if (at >> 24) == 127 {
            at = 128 << 24;
            continue;
        }
        nets.push(IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(at as u32), prefix).unwrap(),
        ));
        at += size;
    }
    let mut at: u128 = 0x2400u128 << 112;
    while nets.len() < 500_000 {
        let prefix = 32 + (rng.next() % 17) as u8;
        let size = 1u128 << (128 - prefix);
        at = at.div_ceil(size) * size;
        nets.push(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(at), prefix).unwrap()));
        at += size;
    }
    for net in &nets {
        let code = COUNTRIES[(rng.next() % COUNTRIES.len() as u64) as usize];
        let record: BTreeMap<&str, BTreeMap<&str, &str>> =
            [("country", [("iso_code", code)].into())].into();
        w.insert(*net, &record).unwrap();
    }
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
    nets.len()
}

/// The app: 10 `deny country:` rules (or one IP rule), then `allow 127.0.0.1`, `deny all`.
fn toml(db: Option<&std::path::Path>) -> String {
    let mut t = String::from("[default]\nlog_level = \"off\"\n[default.allow]\nrules = [");
    if db.is_some() {
        for code in &COUNTRIES[..10] {
            t.push_str(&format!("{{ deny = \"country:{code}\" }}, "));
        }
    } else {
        t.push_str("{ deny = \"192.0.2.1\" }, ");
    }
    t.push_str("{ allow = \"127.0.0.1\" }, { deny = \"all\" }]\n");
    if let Some(db) = db {
        t.push_str(&format!(
            "[default.allow.geoip]\ncountry_db = \"{}\"\n",
            db.display()
        ));
    }
    t
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var_os("GEO_DB_OUT") {
        Some(out) => {
            let n = write_db(std::path::Path::new(&out));
            println!("wrote {n} networks to {}", out.to_string_lossy());
            return;
        }
        None => dir.path().join("country.mmdb"),
    };
    let t = Instant::now();
    let n = write_db(&db);
    let size = std::fs::metadata(&db).unwrap().len();
    println!(
        "database: {n} networks, {:.1} MiB, written in {:.1} s",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let read_back = maxminddb::Reader::open_readfile(&db)
        .unwrap()
        .networks(Default::default())
        .unwrap()
        .count();
    println!("maxminddb walks {read_back} networks in it");

    // Load time and memory: ignite with the 10 country rules, against the one-rule app.
    let measure = |toml: &str| {
        let before = LIVE.load(Ordering::SeqCst);
        PEAK.store(before, Ordering::SeqCst);
        let t = Instant::now();
        let client = common::app(toml);
        let secs = t.elapsed().as_secs_f64();
        let kept = LIVE.load(Ordering::SeqCst) - before;
        let peak = PEAK.load(Ordering::SeqCst) - before;
        (client, secs, kept, peak)
    };
    let (one, one_secs, one_kept, one_peak) = measure(&toml(None));
    let (geo, geo_secs, geo_kept, geo_peak) = measure(&toml(Some(&db)));
    let mib = |b: isize| b as f64 / 1048576.0;
    println!(
        "ignite, one IP rule:       {:.3} s, {:.2} MiB kept, {:.2} MiB peak",
        one_secs,
        mib(one_kept),
        mib(one_peak)
    );
    println!(
        "ignite, 10 country rules:  {:.3} s, {:.2} MiB kept, {:.2} MiB peak (the file is {:.1} MiB)",
        geo_secs,
        mib(geo_kept),
        mib(geo_peak),
        size as f64 / 1048576.0
    );

    let mut c = Criterion::default().configure_from_args();
    let peer = "127.0.0.1:4000".parse().unwrap();
    let mut group = c.benchmark_group("request");
    for (name, client) in [("one IP rule", &one), ("10 country rules", &geo)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let res = client.get("/").remote(peer).dispatch();
                assert_eq!(res.status(), rocket::http::Status::Ok);
            })
        });
    }
    group.finish();
    c.final_summary();
}
