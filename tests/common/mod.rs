//! Shared test helpers: an app with counting routes, built from TOML the way Rocket.toml is read.
#![allow(dead_code)]

pub mod admin;
pub mod dns;
pub mod fleet;
pub mod geoip;
pub mod http;
pub mod process;
pub mod recorder;
pub mod redis;
pub mod stall;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use rocket::figment::providers::{Format, Toml};
use rocket::http::{Header, Method, Status};
use rocket::local::blocking::Client;
use rocket::{catch, catchers, get, routes, Build, Request, Rocket};
use rocket_allow::AllowFairing;

/// How many times any route handler ran.
#[derive(Default)]
pub struct Hits(pub AtomicUsize);

#[get("/")]
fn index(hits: &rocket::State<Hits>) -> &'static str {
    hits.0.fetch_add(1, Ordering::SeqCst);
    "hello"
}

/// Every method, every path: proves that no route at all ran for a refused request.
#[rocket::route(GET, uri = "/<_..>", rank = 50)]
fn any_get(hits: &rocket::State<Hits>) -> &'static str {
    hits.0.fetch_add(1, Ordering::SeqCst);
    "catch-all"
}

#[catch(403)]
fn forbidden(_: &Request<'_>) -> &'static str {
    "custom 403 page"
}

/// Rocket's defaults with `toml` read as Rocket.toml (profiles nested). The repository's own
/// Rocket.toml (the example's) and ROCKET_* variables are deliberately not read.
pub fn figment(toml: &str) -> rocket::figment::Figment {
    // Before any Rocket exists, so that Rocket's own logger does not take the slot.
    capture_logs();
    rocket::figment::Figment::from(rocket::Config::default()).merge(Toml::string(toml).nested())
}

/// The app: the fairing from config, `/` counted, and the app's own 403 catcher.
pub fn app(toml: &str) -> Rocket<Build> {
    rocket::custom(figment(toml))
        .attach(AllowFairing::fairing())
        .manage(Hits::default())
        .mount("/", routes![index])
        .register("/", catchers![forbidden])
}

/// Every method a route can have (HEAD is served by GET routes).
pub const ROUTE_METHODS: [Method; 8] = [
    Method::Get,
    Method::Post,
    Method::Put,
    Method::Delete,
    Method::Patch,
    Method::Options,
    Method::Trace,
    Method::Connect,
];

/// The same app with a catch-all route for every method at the given rank.
pub fn app_with_catch_all(toml: &str, rank: isize) -> Rocket<Build> {
    let routes: Vec<rocket::Route> = ROUTE_METHODS
        .into_iter()
        .map(|m| {
            let mut r = routes![any_get].remove(0);
            r.method = m;
            r.rank = rank;
            r
        })
        .collect();
    app(toml).mount("/", routes)
}

pub fn client(rocket: Rocket<Build>) -> Client {
    Client::tracked(rocket).expect("valid rocket")
}

pub fn hits(client: &Client) -> usize {
    client
        .rocket()
        .state::<Hits>()
        .unwrap()
        .0
        .load(Ordering::SeqCst)
}

/// The status of `GET /` from `peer` with these headers.
pub fn status(client: &Client, peer: &str, headers: &[(&str, &str)]) -> Status {
    let mut req = client.get("/").remote(addr(peer));
    for (name, value) in headers {
        req.add_header(Header::new(name.to_string(), value.to_string()));
    }
    req.dispatch().status()
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INIT: Once = Once::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn {
            LOGS.lock().unwrap().push(format!("{}", record.args()));
        }
    }
    fn flush(&self) {}
}

/// Installs a logger that keeps warnings and errors (Rocket's own logger then stays out).
pub fn capture_logs() {
    INIT.call_once(|| {
        log::set_logger(&Capture).expect("capture_logs() runs before any Rocket is built");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// Waits (10 s at most) until the file at `log` has a line containing every needle (the
/// access log is written off the request path), and returns it.
pub fn log_line(log: &std::path::Path, needles: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line with {needles:?} in:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Captured lines containing `needle`.
pub fn logged(needle: &str) -> Vec<String> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// Ignites `rocket` expecting the fairing to fail (FailedFairings names it), and returns
/// the fairing's error line that contains every one of `needles`.
pub fn ignite_error(rocket: Rocket<Build>, needles: &[&str]) -> String {
    capture_logs();
    let err = match Client::untracked(rocket) {
        Ok(_) => panic!("ignite succeeded; expected failure mentioning {needles:?}"),
        Err(e) => e,
    };
    check_ignite_error(err, needles)
}

/// [`ignite_error`] for async tests (the blocking client cannot run inside a runtime).
pub async fn ignite_error_async(rocket: Rocket<Build>, needles: &[&str]) -> String {
    capture_logs();
    let err = match rocket::local::asynchronous::Client::untracked(rocket).await {
        Ok(_) => panic!("ignite succeeded; expected failure mentioning {needles:?}"),
        Err(e) => e,
    };
    check_ignite_error(err, needles)
}

fn check_ignite_error(err: rocket::Error, needles: &[&str]) -> String {
    match err.kind() {
        rocket::error::ErrorKind::FailedFairings(failed) => {
            assert!(
                failed.iter().any(|f| f.name == "rocket-allow"),
                "{failed:?}"
            );
        }
        other => panic!("expected FailedFairings, got {other:?}"),
    }
    let logs = LOGS.lock().unwrap();
    match logs
        .iter()
        .find(|l| l.starts_with("rocket-allow: ") && needles.iter().all(|n| l.contains(n)))
    {
        Some(line) => line.clone(),
        None => panic!("no rocket-allow error containing all of {needles:?}; captured: {logs:#?}"),
    }
}

/// Waits (`secs` at most) until `f` holds; fails the test, saying `what`, if it never does.
pub fn until(secs: u64, what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not in {secs} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
