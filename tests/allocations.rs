//! An allowed request costs no heap allocation in the decision: with the fairing (no access
//! log, no tracing subscriber) a request allocates as much as without it, plus only the box
//! Rocket puts every request fairing's future in — whether there is one rule or 100,000.
//! Its tests run one at a time in their own binary: each counts every allocation of the process.

// A counting global allocator needs `unsafe impl GlobalAlloc`; the library itself has none.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use rocket::http::Status;
use rocket::local::blocking::Client;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Fewest allocations seen for one allowed request (the minimum filters out noise from
/// other threads of the runtime).
fn allocations_per_request(client: &Client) -> usize {
    (0..50)
        .map(|_| {
            let before = ALLOCS.load(Ordering::SeqCst);
            let res = client.get("/").remote(addr("127.0.0.1:1")).dispatch();
            let n = ALLOCS.load(Ordering::SeqCst) - before;
            assert_eq!(res.status(), Status::Ok);
            n
        })
        .min()
        .unwrap()
}

/// One test at a time: each counts every allocation of the process, so another test
/// running beside it would add its own.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn allowed_requests_allocate_nothing_in_the_decision() {
    let _alone = alone();
    let without = client(
        rocket::custom(figment("[default.allow]\nrules = []"))
            .manage(Hits::default())
            .mount("/", rocket::routes![index_route]),
    );
    let base = allocations_per_request(&without);

    let many: Vec<String> = (0..100_000u32)
        .map(|i| {
            format!(
                "{{ deny = \"{}/32\" }}",
                std::net::Ipv4Addr::from(0x0b00_0000 + i)
            )
        })
        .collect();
    for rules in [
        "rules = [{ allow = \"127.0.0.1\" }]".to_string(),
        format!("rules = [{}, {{ allow = \"127.0.0.1\" }}]", many.join(", ")),
    ] {
        let with = client(app(&format!("[default.allow]\n{rules}")));
        let n = allocations_per_request(&with);
        eprintln!("allocations per allowed request: without fairing {base}, with {n}");
        assert!(
            n <= base + 1,
            "fairing added {} allocations per request (base {base})",
            n - base
        );
    }
}

#[rocket::get("/")]
fn index_route(hits: &rocket::State<Hits>) -> &'static str {
    hits.0.fetch_add(1, Ordering::SeqCst);
    "hello"
}

/// The fewest allocations of 50 refused requests from 127.0.0.66.
fn allocations_per_refusal(client: &Client) -> usize {
    (0..50)
        .map(|_| {
            let before = ALLOCS.load(Ordering::SeqCst);
            let res = client.get("/").remote(addr("127.0.0.66:1")).dispatch();
            let n = ALLOCS.load(Ordering::SeqCst) - before;
            assert_eq!(res.status(), Status::Forbidden);
            n
        })
        .min()
        .unwrap()
}

#[test]
fn keeping_refusals_for_the_admin_page_allocates_nothing_once_the_ring_is_warm() {
    let _alone = alone();
    let rules = "[default.allow]\nrules = [{ deny = \"127.0.0.66\" }]\n[default.allow.admin]\n";
    let without = client(app(&format!("{rules}recent = 0")));
    // A ring of 5: the 50 requests reuse every slot many times.
    let with = client(app(&format!("{rules}recent = 5")));
    let (base, n) = (
        allocations_per_refusal(&without),
        allocations_per_refusal(&with),
    );
    eprintln!("allocations per refused request: without the ring {base}, with {n}");
    assert!(
        n <= base,
        "the ring added {} allocations per refusal",
        n - base
    );
}

/// The fewest allocations of 3 views of `path` on the admin page, as 127.0.0.1.
fn allocations_per_view(client: &Client, path: &str) -> usize {
    (0..3)
        .map(|_| {
            let before = ALLOCS.load(Ordering::SeqCst);
            let res = client.get(path).remote(addr("127.0.0.1:1")).dispatch();
            assert_eq!(res.status(), Status::Ok, "{path}");
            let _ = res.into_bytes();
            ALLOCS.load(Ordering::SeqCst) - before
        })
        .min()
        .unwrap()
}

/// A view of the overview (which reloads itself) and of the bans (1,000 rows at most)
/// costs the same with 100,000 bans as with none: the bans are counted and paged, not
/// copied out of the table (each with its reason) and sorted whole.
#[test]
fn admin_views_do_not_copy_the_ban_table() {
    let _alone = alone();
    let c = client(common::admin::admin_app(common::admin::OPEN));
    let handle = c.rocket().state::<rocket_allow::AllowHandle>().unwrap();
    // 1,000 bans: the bans view has its full 1,000 rows from here on.
    let ban = |i: u32| {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        handle
            .ban_with_reason(&ip.to_string(), None, Some("scan"))
            .unwrap();
    };
    (0..1_000).for_each(ban);
    let views = [
        "/allow/",
        "/allow/api/overview",
        "/allow/bans",
        "/allow/api/bans",
    ];
    let few: Vec<usize> = views.iter().map(|v| allocations_per_view(&c, v)).collect();
    (1_000..100_000).for_each(ban);
    for (view, few) in views.iter().zip(few) {
        let many = allocations_per_view(&c, view);
        eprintln!("{view}: {few} allocations with 1,000 bans, {many} with 100,000");
        assert!(
            many < few + 1_000,
            "{view}: {many} allocations with 100,000 bans, {few} with 1,000"
        );
    }
}
