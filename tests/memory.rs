//! What rocket-allow keeps in memory per rule, beyond the compiled lookup table: measured by
//! counting live heap bytes around ignite, for 100,000 rules built in code, and reported
//! (`cargo test --test memory -- --nocapture` prints the figures). One test in its own
//! binary: it counts every allocation of the process.

// A counting global allocator needs `unsafe impl GlobalAlloc`; the library itself has none.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use rocket::local::blocking::Client;
use rocket_allow::{AllowConfig, AllowFairing, Matcher, Rule};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `n` deny rules on distinct networks as a user would write them (IPv4 and IPv6, CIDR and
/// single addresses), then `allow 127.0.0.1`, `deny all`.
fn rules(n: usize) -> Vec<Rule> {
    let mut out: Vec<Rule> = (0..n)
        .map(|i| {
            let i = i as u32;
            let value = match i % 4 {
                0 => format!("10.{}.{}.0/24", (i >> 16) & 255, (i >> 8) & 255),
                1 => format!(
                    "172.{}.{}.{}",
                    16 + ((i >> 16) & 15),
                    (i >> 8) & 255,
                    i & 255
                ),
                2 => format!("2001:db8:{:x}::/48", i & 0xffff),
                _ => format!("2001:db8:1:{:x}::7", i & 0xffff),
            };
            Rule::deny(&value).unwrap()
        })
        .collect();
    out.push(Rule::allow("127.0.0.1").unwrap());
    out.push(Rule::deny("all").unwrap());
    out
}

/// Live heap bytes held once an app with `n` rules built in code has ignited, counted from
/// before the rules were built: the app hands its `Vec<Rule>` to the fairing, so whatever
/// is still held is rocket-allow's.
fn held_after_ignite(n: usize) -> isize {
    let figment = rocket::Config::figment().merge(("log_level", "off"));
    let before = LIVE.load(Ordering::SeqCst);
    let config = AllowConfig::new(rules(n));
    let client = Client::untracked(rocket::custom(figment).attach(AllowFairing::custom(config)))
        .expect("ignites");
    let held = LIVE.load(Ordering::SeqCst) - before;
    drop(client);
    held
}

#[test]
fn per_rule_memory_beyond_the_compiled_table_is_at_most_100_bytes() {
    const N: usize = 100_000;
    let empty = held_after_ignite(0);
    let full = held_after_ignite(N);
    let table = Matcher::new(
        rocket_allow::Verdict::Allow,
        rules(N)
            .iter()
            .map(|r| (r.verdict, r.target.networks().unwrap_or_default())),
    )
    .memory_bytes() as isize;
    // The config's rules themselves are counted as held: the fairing owns them after ignite.
    let per_rule = (full - empty - table) as f64 / N as f64;
    println!(
        "{N} rules built in code: {:.1} MiB held after ignite, of which the compiled table {:.1} MiB; \
         {per_rule:.1} bytes per rule beyond the table",
        (full - empty) as f64 / 1048576.0,
        table as f64 / 1048576.0
    );
    assert!(per_rule <= 100.0, "{per_rule:.1} bytes per rule");
}
