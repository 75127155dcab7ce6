//! With the `serde` feature, every type the runtime API returns serializes, times as
//! RFC 3339 strings (`cargo test --all-features` runs this).
#![cfg(feature = "serde")]

mod common;

use std::time::Duration;

use common::*;
use rocket_allow::AllowHandle;

#[test]
fn runtime_answers_serialize_with_rfc3339_times() {
    let client = client(app(
        "[default.allow]\nrules = [{ deny = \"192.0.2.0/24\" }, { allow = \"all\" }]",
    ));
    let h = client.rocket().state::<AllowHandle>().unwrap();
    h.ban_for(
        "203.0.113.7".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(60),
        "scanner",
    );
    let bans = serde_json::to_value(h.bans()).unwrap();
    assert_eq!(bans[0]["target"], "203.0.113.7/32");
    assert_eq!(bans[0]["reason"], "scanner");
    let expires = bans[0]["expires"].as_str().expect("a string");
    assert!(expires.ends_with('Z') && expires.len() == 24, "{expires}");
    let e = serde_json::to_value(h.explain("192.0.2.1".parse().unwrap(), "/")).unwrap();
    assert_eq!(
        (e["verdict"].as_str(), e["by"].as_str()),
        (Some("deny"), Some("rule"))
    );
    assert_eq!(e["network"], "192.0.2.0/24");
    assert_eq!(e["status"], 403);
    client.get("/").remote(addr("198.51.100.1:1")).dispatch();
    let hits = serde_json::to_value(h.rule_hits()).unwrap();
    assert_eq!(hits[0]["rules"][1]["count"], 1);
    assert!(hits[0]["rules"][1]["last_hit"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(hits[0]["rules"][0]["last_hit"].is_null());
}

#[test]
fn every_kind_of_refusal_serializes() {
    use rocket_allow::RefusedBy;
    let header = serde_json::to_value(RefusedBy::Header("no X-Forwarded-For".into()))
        .expect("a refusal by header serializes");
    assert_eq!(header["kind"], "header");
    assert_eq!(header["why"], "no X-Forwarded-For");
    for by in [
        RefusedBy::Default,
        RefusedBy::Path,
        RefusedBy::Store,
        RefusedBy::Host { host: "x".into() },
    ] {
        let v = serde_json::to_value(&by).expect("serializes");
        assert!(v["kind"].is_string(), "{v}");
    }
}
