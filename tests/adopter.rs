//! What an adopter meets, over real HTTP to launched apps: a catcher that knows what was
//! refused and why (fairing and guard alike), `explain` that agrees with real requests for
//! every kind of decision, policy names checked at ignite, a health probe through a proxy,
//! report mode switched at run time, and the audit trail of every runtime change.

mod common;

use std::time::Duration;

use common::http::{serve, Server};
use common::*;
use rocket::{catch, catchers, get, routes, Request};
use rocket_allow::{
    AllowFairing, AllowHandle, Allowed, Mode, Policy, Refused, RefusedBy, RuntimeError, Verdict,
};

struct Scrapers;
impl Policy for Scrapers {
    const NAME: &'static str = "scrapers";
}

#[get("/metrics")]
fn metrics(_ok: Allowed<Scrapers>) -> &'static str {
    "metrics"
}

#[get("/<_..>", rank = 50)]
fn any() -> &'static str {
    "page"
}

/// The catcher of Refused's docs: it says what was refused and why.
#[catch(403)]
fn forbidden(req: &Request<'_>) -> String {
    match Refused::of(req) {
        Some(r) => format!(
            "{} may not see {}: {} [{}]",
            r.client_text(),
            r.uri,
            r.by_text(),
            r
        ),
        None => "plain 403".into(),
    }
}

#[catch(400)]
fn bad_request(req: &Request<'_>) -> String {
    match Refused::of(req) {
        Some(r) => format!("400 for {}: {}", r.uri, r.by_text()),
        None => "plain 400".into(),
    }
}

const CONFIG: &str = r#"
[default.allow]
trusted_proxies = ["127.0.0.1"]
client_ip_header = "X-Forwarded-For"
rules = [{ deny = "127.0.0.2" }, { deny = "198.51.100.0/24" }, { allow = "127.0.0.0/8" }, { allow = "203.0.113.0/24" }]
default = "deny"
[default.allow.policies.admin]
paths = ["/admin"]
rules = [{ allow = "127.0.0.3" }, { deny = "all" }]
[default.allow.policies.health]
paths = ["/healthz"]
missing_header = "peer"
rules = [{ allow = "127.0.0.1" }, { deny = "all" }]
[default.allow.policies.scrapers]
rules = [{ allow = "127.0.0.4" }, { deny = "all" }]
"#;

fn app_with(toml: &str) -> rocket::Rocket<rocket::Build> {
    rocket::custom(figment(toml))
        .attach(AllowFairing::fairing().require::<Scrapers>())
        .mount("/", routes![metrics, any])
        .register("/", catchers![forbidden, bad_request])
}

fn allow(server: &Server) -> AllowHandle {
    server.allow.clone().unwrap()
}

#[test]
fn a_catcher_sees_the_original_request_and_why_for_fairing_and_guard_refusals() {
    let server = serve(app_with(CONFIG));
    let h = allow(&server);
    // The fairing, by rule: the original URI with its query, not the refusal path.
    let res = server.request_from("127.0.0.2", "GET", "/admin/users?page=2", &[]);
    assert_eq!(res.status, 403);
    assert!(
        res.body
            .starts_with("127.0.0.2 may not see /admin/users?page=2: rule #1 deny all"),
        "{}",
        res.body
    );
    assert!(res.body.contains("policy admin"), "{}", res.body);
    // A guard's refusal reads the same way.
    let res = server.request_from("127.0.0.5", "GET", "/metrics", &[]);
    assert_eq!(res.status, 403);
    assert!(
        res.body
            .starts_with("127.0.0.5 may not see /metrics: rule #1 deny all"),
        "{}",
        res.body
    );
    assert!(res.body.contains("policy scrapers"), "{}", res.body);
    // A ban, with its expiry and reason.
    h.ban_for(
        "127.0.0.6".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(600),
        "scanner",
    );
    let res = server.request_from("127.0.0.6", "POST", "/form", &[]);
    assert_eq!(res.status, 403);
    assert!(
        res.body.contains("banned 127.0.0.6/32 until 20"),
        "{}",
        res.body
    );
    assert!(res.body.contains(": scanner"), "{}", res.body);
    assert!(
        res.body.contains("POST /form from 127.0.0.6"),
        "{}",
        res.body
    );
    // An unreadable header from the proxy: the client is unknown.
    let res = server.request("GET", "/x", &[b"X-Forwarded-For: not-an-ip"]);
    assert_eq!(res.status, 403);
    assert!(
        res.body
            .starts_with("an unknown client may not see /x: unreadable client address"),
        "{}",
        res.body
    );
    // The default.
    let res = server.request("GET", "/x", &[b"X-Forwarded-For: 192.0.2.1"]);
    assert!(
        res.body.contains("the default (no rule matched)"),
        "{}",
        res.body
    );
    // A `..` under path-scoped policies: 400, through the app's 400 catcher.
    let res = server.request_from("127.0.0.3", "GET", "/a/../admin", &[]);
    assert_eq!(res.status, 400, "{res:?}");
    assert_eq!(res.body, "400 for /a/../admin: a . or .. in the path");
    // A 403 the app answers itself has no refusal.
    server.stop().unwrap();
}

#[test]
fn explain_agrees_with_real_requests_for_every_kind_of_decision() {
    let server = serve(app_with(CONFIG));
    let h = allow(&server);
    h.ban("127.0.0.7", None).unwrap();
    // (client, path, guard of the route, the status a real request gets)
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("127.0.0.8", "/x", None, 200, "rule"),
        ("127.0.0.2", "/x", None, 403, "rule"),
        ("127.0.0.3", "/admin", None, 200, "rule"),
        ("127.0.0.5", "/admin", None, 403, "rule"),
        ("127.0.0.4", "/metrics", Some("scrapers"), 200, "rule"),
        ("127.0.0.5", "/metrics", Some("scrapers"), 403, "rule"),
        ("127.0.0.2", "/metrics", Some("scrapers"), 403, "rule"),
        ("127.0.0.7", "/x", None, 403, "ban"),
        ("127.0.0.7", "/metrics", Some("scrapers"), 403, "ban"),
        ("127.0.0.3", "/a/../b", None, 400, "path"),
    ];
    for &(from, path, guard, status, by) in cases {
        let res = server.request_from(from, "GET", path, &[]);
        assert_eq!(res.status, status, "{from} {path}: {res:?}");
        let e = h.explain_for(from.parse().unwrap(), path, guard).unwrap();
        let got = if e.admitted() { 200 } else { e.status.unwrap() };
        assert_eq!((got, e.by), (status, by), "{from} {path}: {e}");
    }
    // The default, through the proxy (explain takes the client the proxy names).
    let res = server.request("GET", "/x", &[b"X-Forwarded-For: 192.0.2.1"]);
    let e = h
        .explain_for("192.0.2.1".parse().unwrap(), "/x", None)
        .unwrap();
    assert_eq!((res.status, e.status, e.by), (403, Some(403), "default"));
    assert_eq!(e.to_string(), "denied (403) by default (no rule matched)");
    let e = h
        .explain_for("198.51.100.9".parse().unwrap(), "/x", None)
        .unwrap();
    assert_eq!(e.network.as_deref(), Some("198.51.100.0/24"));
    assert_eq!(
        e.to_string(),
        "denied (403) by rule #1 deny 198.51.100.0/24 (198.51.100.0/24)"
    );
    // Errors instead of a guess.
    assert!(matches!(
        h.explain_for("127.0.0.1".parse().unwrap(), "admin", None),
        Err(RuntimeError::BadPath { .. })
    ));
    assert!(matches!(
        h.explain_for("127.0.0.1".parse().unwrap(), "/", Some("scraper")),
        Err(RuntimeError::UnknownPolicy(_))
    ));
    server.stop().unwrap();
}

struct Typo;
impl Policy for Typo {
    const NAME: &'static str = "scraper";
}

#[test]
fn a_misspelled_policy_fails_ignite_naming_it() {
    let rocket = rocket::custom(figment(CONFIG))
        .attach(AllowFairing::fairing().require::<Typo>())
        .mount("/", routes![any]);
    let err = ignite_error(rocket, &["allow.policies.scraper"]);
    assert!(err.contains("Typo"), "{err}");
}

#[test]
fn the_proxy_s_health_probe_passes_and_the_rest_still_refuses_a_headerless_request() {
    let server = serve(app_with(CONFIG));
    // The proxy's own probe has no forwarding header.
    assert_eq!(server.request("GET", "/healthz", &[]).status, 200);
    assert_eq!(server.request("GET", "/healthz/deep", &[]).status, 200);
    assert_eq!(server.request("GET", "/", &[]).status, 403);
    assert_eq!(server.request("GET", "/admin", &[]).status, 403);
    // Forwarded clients of /healthz are still decided on themselves.
    let res = server.request("GET", "/healthz", &[b"X-Forwarded-For: 203.0.113.9"]);
    assert_eq!(res.status, 403);
    server.stop().unwrap();
}

#[test]
fn report_mode_switched_at_run_time_and_every_change_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let bans = dir.path().join("bans.txt");
    std::fs::write(&bans, "192.0.2.99 - restored one\n").unwrap();
    let toml = format!(
        "{CONFIG}\n[default.allow.access_log]\npath = \"{}\"\n[default.allow.bans]\nfile = \"{}\"\n[default.allow.sets]\noffice = [\"10.0.0.1\"]\n",
        log.display(),
        bans.display()
    );
    let server = serve(app_with(&toml));
    log_line(
        &log,
        &["restored banned 192.0.2.99/32 until lifted: restored one"],
    );
    let h = allow(&server).acting_as("alice");
    assert_eq!(
        server.request_from("127.0.0.2", "GET", "/x", &[]).status,
        403
    );
    h.set_mode(None, Mode::Report).unwrap();
    log_line(&log, &["mode of policy (app-wide): report (by alice)"]);
    assert_eq!(
        server.request_from("127.0.0.2", "GET", "/x", &[]).status,
        200
    );
    // A would-be refusal is a WARNING, not an ERROR.
    let line = log_line(&log, &["127.0.0.2", "would be denied"]);
    assert!(line.contains("WARNING"), "{line}");
    // Other policies keep their mode; "" is the app-wide rules too.
    assert_eq!(
        server
            .request_from("127.0.0.2", "GET", "/admin", &[])
            .status,
        403
    );
    h.set_mode(Some(""), Mode::Enforce).unwrap();
    assert_eq!(
        server.request_from("127.0.0.2", "GET", "/x", &[]).status,
        403
    );
    assert_eq!(
        h.set_mode(Some("nope"), Mode::Report),
        Err(RuntimeError::UnknownPolicy("nope".into()))
    );
    // Bans, unbans, expiries and set changes each leave a line.
    h.ban_for(
        "192.0.2.50".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_millis(200),
        "short",
    );
    log_line(
        &log,
        &["banned 192.0.2.50/32 until 20", ": short (by alice)"],
    );
    log_line(&log, &["expired banned 192.0.2.50/32"]);
    h.ban("192.0.2.51", None).unwrap();
    assert!(h.unban("192.0.2.51").unwrap());
    log_line(&log, &["unban 192.0.2.51/32 (by alice)"]);
    h.replace_set("office", &["10.0.0.2", "10.0.0.3"]).unwrap();
    log_line(&log, &["replace_set office: 2 entries (by alice)"]);
    // Hostile reasons cannot forge a line.
    h.ban_with_reason("192.0.2.52", None, Some("x\n2026-01-01 - INFO - forged"))
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("2026-01-01")), "{text}");
    server.stop().unwrap();
}

#[test]
fn the_typed_runtime_api() {
    let client = client(app_with(CONFIG));
    let h = client.rocket().state::<AllowHandle>().unwrap();
    let ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    assert!(h.is_banned(ip).is_none());
    let net: rocket_allow::ipnet::IpNet = "203.0.113.0/24".parse().unwrap();
    h.ban_until_lifted(net, "whole range");
    let ban = h.is_banned(ip).expect("banned");
    assert_eq!((ban.target, ban.expires), (net, None));
    assert!(ban.expires_at().is_none());
    h.ban_for(ip, Duration::from_secs(60), "");
    let ban = h.is_banned(ip).unwrap();
    assert_eq!((ban.target.prefix_len(), ban.reason.as_deref()), (32, None));
    let at = ban.expires_at().unwrap().to_string();
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.contains('T'),
        "{at}"
    );
    assert!(h.lift(ip));
    assert!(!h.lift(ip));
    assert_eq!(h.is_banned(ip).unwrap().target, net);
    // A host address given as a network is its network.
    h.ban_for(
        "203.0.113.77/24"
            .parse::<rocket_allow::ipnet::IpNet>()
            .unwrap(),
        Duration::from_secs(5),
        "x",
    );
    assert_eq!(h.bans().len(), 1, "{:?}", h.bans());
    assert_eq!(
        h.explain(ip, "/x").verdict,
        Verdict::Deny,
        "the ban shows in explain"
    );
    let refused = RefusedBy::Default;
    assert_eq!(format!("{refused:?}"), "Default");
}
