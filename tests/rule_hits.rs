//! `AllowHandle::rule_hits()`: hits per rule of every policy, exact under concurrent
//! requests (per-thread counters summed on read), with the last hit time.

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use common::http::serve;
use common::*;
use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket_allow::{AllowHandle, Verdict};

const CONFIG: &str = r#"
    [default.allow]
    rules = [{ allow = "127.0.0.1" }, { deny = "192.0.2.0/24" }, { allow = "198.51.100.0/24" }, { deny = "203.0.113.0/24" }]
    [default.allow.policies.admin]
    paths = ["/admin"]
    rules = [{ allow = "198.51.100.0/24" }, { deny = "all" }]
"#;

#[test]
fn counts_are_exact_under_concurrent_requests() {
    let runtime = rocket::tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let before = SystemTime::now();
    let hits = runtime.block_on(async {
        let client = Arc::new(
            Client::tracked(app_with_catch_all(CONFIG, 50))
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let client = client.clone();
            tasks.push(rocket::tokio::spawn(async move {
                for i in 0..250u32 {
                    // Spread over rules 1 and 2, the default, and the admin policy.
                    let (path, peer) = match (t + i) % 4 {
                        0 => ("/", "192.0.2.9:1"),
                        1 => ("/", "198.51.100.9:1"),
                        2 => ("/", "10.9.9.9:1"),
                        _ => ("/admin/x", "198.51.100.9:1"),
                    };
                    let status = client
                        .get(path)
                        .remote(addr(peer))
                        .dispatch()
                        .await
                        .status();
                    assert_ne!(status, Status::InternalServerError);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        client.rocket().state::<AllowHandle>().unwrap().rule_hits()
    });
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].policy, None);
    assert_eq!(hits[1].policy.as_deref(), Some("admin"));
    let counts: Vec<u64> = hits[0].rules.iter().map(|r| r.count).collect();
    // 2,000 requests: a quarter each. The default decided 500 (not a rule's hit).
    assert_eq!(counts, [0, 500, 500, 0]);
    assert_eq!(hits[1].rules[0].count, 500);
    assert_eq!(hits[1].rules[1].count, 0);
    assert_eq!(
        (hits[0].rules[1].verdict, hits[0].rules[1].written.as_str()),
        (Verdict::Deny, "192.0.2.0/24")
    );
    assert_eq!(hits[0].rules[3].index, 3);
    assert!(hits[0].rules[0].last_hit.is_none());
    let last = hits[0].rules[1].last_hit.expect("rule 1 was hit");
    assert!(last >= before - std::time::Duration::from_secs(1) && last <= SystemTime::now());
}

#[test]
fn counts_are_exact_over_real_http() {
    let server = serve(app_with_catch_all(CONFIG, 50));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(server.request("GET", "/x", &[]).status, 200);
                }
            });
        }
    });
    let rocket = server.stop().unwrap().expect("no connection outstanding");
    let hits = rocket.state::<AllowHandle>().unwrap().rule_hits();
    assert_eq!(hits[0].rules[0].count, 200);
    assert_eq!(hits[0].rules[0].written, "127.0.0.1");
}

#[test]
fn counting_can_be_turned_off() {
    let client = client(app(&format!("{CONFIG}\n").replace(
        "[default.allow]\n",
        "[default.allow]\n    rule_hits = false\n",
    )));
    assert_eq!(status(&client, "192.0.2.1:1", &[]), Status::Forbidden);
    let handle = client.rocket().state::<AllowHandle>().unwrap();
    assert!(handle.rule_hits().is_empty());
}

struct Ops;
impl rocket_allow::Policy for Ops {
    const NAME: &'static str = "ops";
}

/// A guard that always forwards, so Rocket tries the next route.
struct Forward;

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Forward {
    type Error = ();
    async fn from_request(_: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        rocket::request::Outcome::Forward(Status::NotFound)
    }
}

#[rocket::get("/g", rank = 1)]
fn first(_ok: rocket_allow::Allowed<Ops>, _f: Forward) -> &'static str {
    "first"
}

#[rocket::get("/g", rank = 2)]
fn second(_ok: rocket_allow::Allowed<Ops>) -> &'static str {
    "second"
}

/// A route that forwards makes Rocket run the next route's guards too; the policy still
/// decides once per request: one count, one log line.
#[test]
fn a_guard_decides_once_per_request_when_routes_forward() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let toml = format!(
        "[default.allow]\nrules = []\naccess_log = \"{}\"\n[default.allow.policies.ops]\nrules = [{{ allow = \"all\" }}]",
        log.display()
    );
    let client = client(app(&toml).mount("/", rocket::routes![first, second]));
    for _ in 0..10 {
        let r = client.get("/g").remote(addr("192.0.2.1:1")).dispatch();
        assert_eq!(r.into_string().unwrap(), "second");
    }
    let hits = client.rocket().state::<AllowHandle>().unwrap().rule_hits();
    assert_eq!(hits[1].policy.as_deref(), Some("ops"));
    assert_eq!(hits[1].rules[0].count, 10);
    drop(client);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("by policy ops").count(), 10, "{text}");
}

struct OpsAgain;
impl rocket_allow::Policy for OpsAgain {
    const NAME: &'static str = "ops";
}

#[rocket::get("/ops/x")]
fn ops_route(_a: rocket_allow::Allowed<Ops>, _b: rocket_allow::Allowed<OpsAgain>) -> &'static str {
    "ops"
}

/// The fairing decides `/ops/x` with `ops` (by path); the route's two guards name the same
/// policy. One request is one decision: one count, one line.
#[test]
fn a_guard_of_the_policy_the_fairing_decided_with_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let toml = format!(
        "[default.allow]\nrules = []\naccess_log = \"{}\"\n[default.allow.policies.ops]\npaths = [\"/ops\"]\nrules = [{{ allow = \"all\" }}]",
        log.display()
    );
    let client = client(app(&toml).mount("/", rocket::routes![ops_route]));
    for _ in 0..5 {
        let r = client.get("/ops/x").remote(addr("192.0.2.1:1")).dispatch();
        assert_eq!(r.into_string().unwrap(), "ops");
    }
    let hits = client.rocket().state::<AllowHandle>().unwrap().rule_hits();
    assert_eq!(hits[1].rules[0].count, 5);
    drop(client);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("by policy ops").count(), 5, "{text}");
}
