//! Report-only mode (`mode = "report"`, top level and per policy): every request is decided
//! and recorded, a would-be refusal is admitted and says so (log line, JSON, tracing), and
//! bans stay enforced.

mod common;

use std::path::Path;

use common::http::serve;
use common::*;
use rocket::http::{Header, Status};
use rocket::local::blocking::Client;
use rocket::{get, routes};
use rocket_allow::{AllowHandle, Allowed, Policy};

struct Admin;
impl Policy for Admin {
    const NAME: &'static str = "admin";
}

#[get("/guarded")]
fn guarded(ok: Allowed<Admin>) -> String {
    format!("admitted {}", ok.client())
}

fn with_log(toml: &str, log: &Path, format: &str) -> String {
    toml.replacen(
        "[default.allow]",
        &format!(
            "[default.allow]\naccess_log = {{ path = \"{}\", format = \"{format}\" }}",
            log.display()
        ),
        1,
    )
}

/// The decision lines of the log (the first line is "Access log started").
fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// The decision lines (not the audit lines of runtime changes).
fn json_lines(log: &Path) -> Vec<serde_json::Value> {
    log_lines(log)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("verdict").is_some())
        .collect()
}

fn get(client: &Client, path: &str, peer: &str) -> Status {
    client.get(path).remote(addr(peer)).dispatch().status()
}

const TOP_LEVEL_REPORT: &str = r#"
    [default.allow]
    mode = "report"
    rules = [{ allow = "127.0.0.1" }, { deny = "192.0.2.0/24" }]
    default = "deny"
"#;

#[test]
fn top_level_report_mode_admits_would_be_refusals_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let client = common::client(app(&with_log(TOP_LEVEL_REPORT, &log, "text")));
    assert_eq!(get(&client, "/", "127.0.0.1:1"), Status::Ok);
    assert_eq!(get(&client, "/", "192.0.2.7:1"), Status::Ok);
    assert_eq!(get(&client, "/", "203.0.113.9:1"), Status::Ok);
    // Every route ran: nothing was refused.
    assert_eq!(hits(&client), 3);
    drop(client);
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].contains("127.0.0.1 allowed by rule #0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("192.0.2.7 would be denied by rule #1 deny 192.0.2.0/24"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("203.0.113.9 would be denied by default (no rule matched)"),
        "{}",
        lines[2]
    );
}

#[test]
fn json_lines_say_enforced_false_only_in_report_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let client = common::client(app(&with_log(TOP_LEVEL_REPORT, &log, "json")));
    get(&client, "/", "127.0.0.1:1");
    get(&client, "/", "192.0.2.7:1");
    drop(client);
    let v = json_lines(&log);
    assert_eq!(
        (v[0]["verdict"].as_str(), v[0]["enforced"].as_bool()),
        (Some("allow"), Some(false))
    );
    assert_eq!(
        (v[1]["verdict"].as_str(), v[1]["enforced"].as_bool()),
        (Some("deny"), Some(false))
    );
    assert_eq!(v[1]["rule"]["index"], 1);

    // The same rules enforced: `"enforced": true`, and the refusal is carried out.
    let log = dir.path().join("b.log");
    let enforcing = TOP_LEVEL_REPORT.replace("mode = \"report\"", "");
    let client = common::client(app(&with_log(&enforcing, &log, "json")));
    assert_eq!(get(&client, "/", "192.0.2.7:1"), Status::Forbidden);
    assert_eq!(hits(&client), 0);
    drop(client);
    let v = json_lines(&log);
    assert_eq!(
        (v[0]["verdict"].as_str(), v[0]["enforced"].as_bool()),
        (Some("deny"), Some(true))
    );
}

const PER_POLICY: &str = r#"
    [default.allow]
    rules = [{ allow = "127.0.0.1" }, { deny = "all" }]
    [default.allow.policies.admin]
    paths = ["/admin"]
    mode = "report"
    rules = [{ allow = "@loopback" }, { deny = "all" }]
    [default.allow.policies.ops]
    paths = ["/ops"]
    rules = [{ allow = "@loopback" }, { deny = "all" }]
"#;

#[test]
fn a_policy_in_report_mode_admits_while_the_others_enforce() {
    let client = common::client(app_with_catch_all(PER_POLICY, 50));
    assert_eq!(get(&client, "/admin/x", "192.0.2.7:1"), Status::Ok);
    assert_eq!(hits(&client), 1);
    // The app-wide rules and the other policy follow the top level: enforce.
    assert_eq!(get(&client, "/x", "192.0.2.7:1"), Status::Forbidden);
    assert_eq!(get(&client, "/ops/x", "192.0.2.7:1"), Status::Forbidden);
    assert_eq!(hits(&client), 1);

    // A policy can enforce under a top level in report mode.
    let inverted = PER_POLICY
        .replacen("[default.allow]\n", "[default.allow]\n    mode = \"report\"\n", 1)
        .replace("mode = \"report\"\n    rules = [{ allow = \"@loopback\" }, { deny = \"all\" }]\n    [default.allow.policies.ops]", "mode = \"enforce\"\n    rules = [{ allow = \"@loopback\" }, { deny = \"all\" }]\n    [default.allow.policies.ops]");
    let client2 = common::client(app_with_catch_all(&inverted, 50));
    assert_eq!(get(&client2, "/admin/x", "192.0.2.7:1"), Status::Forbidden);
    assert_eq!(get(&client2, "/x", "192.0.2.7:1"), Status::Ok);
    // `ops` has no mode of its own: it follows the top level (report).
    assert_eq!(get(&client2, "/ops/x", "192.0.2.7:1"), Status::Ok);
    assert_eq!(hits(&client2), 2);
}

#[test]
fn guards_of_a_report_mode_policy_succeed_and_record_the_would_be_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let toml = with_log(
        r#"
        [default.allow]
        rules = []
        [default.allow.policies.admin]
        mode = "report"
        rules = [{ allow = "@loopback" }, { deny = "all" }]
        "#,
        &log,
        "text",
    );
    let client = common::client(app(&toml).mount("/", routes![guarded]));
    let response = client
        .get("/guarded")
        .remote(addr("192.0.2.7:1"))
        .dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_string().unwrap(), "admitted 192.0.2.7");
    drop(client);
    let lines = log_lines(&log);
    // The app-wide decision, then the guard's.
    assert!(
        lines[1].contains("192.0.2.7 would be denied by policy admin rule #1 deny all"),
        "{lines:#?}"
    );

    // Enforced, the same guard refuses.
    let enforcing = toml.replace("mode = \"report\"", "");
    let client = common::client(app(&enforcing).mount("/", routes![guarded]));
    assert_eq!(get(&client, "/guarded", "192.0.2.7:1"), Status::Forbidden);
}

#[test]
fn bans_are_enforced_in_report_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let client = common::client(app(&with_log(TOP_LEVEL_REPORT, &log, "json")));
    let handle = client.rocket().state::<AllowHandle>().unwrap();
    let ip = "127.0.0.1".parse().unwrap();
    let e = handle.explain("192.0.2.7".parse().unwrap(), "/");
    assert_eq!(
        (e.verdict, e.by, e.enforced),
        (rocket_allow::Verdict::Deny, "rule", false)
    );
    assert!(handle.explain(ip, "/").verdict == rocket_allow::Verdict::Allow);
    handle.ban("127.0.0.1", None).unwrap();
    let e = handle.explain(ip, "/");
    assert_eq!(
        (e.verdict, e.by, e.enforced),
        (rocket_allow::Verdict::Deny, "ban", true)
    );
    assert_eq!(get(&client, "/", "127.0.0.1:1"), Status::Forbidden);
    assert_eq!(hits(&client), 0);
    drop(client);
    let v = json_lines(&log);
    assert_eq!(
        (v[0]["by"].as_str(), v[0]["enforced"].as_bool()),
        (Some("ban"), Some(true))
    );
}

#[test]
fn an_unreadable_proxy_header_is_refused_even_in_report_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let toml = with_log(
        r#"
        [default.allow]
        mode = "report"
        trusted_proxies = ["10.0.0.1"]
        rules = [{ allow = "192.0.2.0/24" }, { deny = "all" }]
        [default.allow.policies.admin]
        rules = [{ allow = "192.0.2.0/24" }, { deny = "all" }]
        "#,
        &log,
        "json",
    );
    let client = common::client(app(&toml).mount("/", routes![guarded]));
    let mut req = client.get("/guarded").remote(addr("10.0.0.1:1"));
    req.add_header(Header::new("X-Forwarded-For", "garbage"));
    // The client cannot be known, so neither can its bans: refused in every mode.
    assert_eq!(req.dispatch().status(), Status::Forbidden);
    drop(client);
    let v = json_lines(&log);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(
        (
            v[0]["by"].as_str(),
            v[0]["verdict"].as_str(),
            v[0]["enforced"].as_bool()
        ),
        (Some("header"), Some("deny"), Some(true)),
        "{}",
        v[0]
    );
}

/// Over real HTTP, every method (HEAD too): report mode admits, enforce refuses.
#[test]
fn over_http_report_mode_admits_and_enforce_refuses() {
    for (mode, want) in [("report", 200), ("enforce", 403)] {
        let toml =
            format!("[default.allow]\nmode = \"{mode}\"\nrules = [{{ deny = \"127.0.0.1\" }}]");
        let server = serve(app_with_catch_all(&toml, 50));
        for method in ["GET", "HEAD", "POST", "DELETE"] {
            let r = server.request(method, "/x", &[]);
            assert_eq!(r.status, want, "{mode} {method}: {}", r.head);
        }
        server.stop().unwrap();
    }
}

#[test]
fn mode_values_are_checked() {
    let err = ignite_error(
        app("[default.allow]\nmode = \"shadow\"\nrules = []"),
        &["allow.mode"],
    );
    assert!(err.contains("shadow"), "{err}");
    let err = ignite_error(
        app("[default.allow]\nrules = []\n[default.allow.policies.a]\nmode = \"off\"\nrules = []"),
        &["allow.policies.a.mode"],
    );
    assert!(err.contains("off"), "{err}");
}

#[get("/whoami")]
fn whoami(ip: rocket_allow::ClientIp) -> String {
    ip.to_string()
}

/// A request whose proxy header cannot be read never reaches a route, in either mode, so
/// `ClientIp` never stands in the peer for an unknown client.
#[test]
fn client_ip_never_reaches_a_route_with_an_unreadable_header() {
    for (mode, want) in [
        ("report", Status::Forbidden),
        ("enforce", Status::Forbidden),
    ] {
        let toml = format!(
            "[default.allow]\nmode = \"{mode}\"\ntrusted_proxies = [\"10.0.0.1\"]\nrules = []"
        );
        let client = common::client(app(&toml).mount("/", routes![whoami]));
        for header in [Some("not-an-ip"), None] {
            let mut req = client.get("/whoami").remote(addr("10.0.0.1:1"));
            if let Some(h) = header {
                req.add_header(Header::new("X-Forwarded-For", h));
            }
            assert_eq!(req.dispatch().status(), want, "{mode} {header:?}");
        }
    }
}

#[rocket::catch(403)]
async fn who_was_refused(req: &rocket::Request<'_>) -> String {
    match req.guard::<rocket_allow::ClientIp>().await {
        rocket::request::Outcome::Success(ip) => format!("refused {ip}"),
        _ => "refused, address unknown".to_string(),
    }
}

/// A request refused by an enforcing policy under a report-mode top level: a catcher's
/// `ClientIp` must not hand out the proxy's address for an unreadable header.
#[test]
fn a_catchers_client_ip_stays_unknown_for_a_refused_unreadable_header() {
    let toml = r#"
        [default.allow]
        mode = "report"
        trusted_proxies = ["10.0.0.1"]
        rules = []
        [default.allow.policies.admin]
        paths = ["/admin"]
        mode = "enforce"
        rules = [{ allow = "all" }]
    "#;
    let client = common::client(
        rocket::custom(figment(toml))
            .attach(rocket_allow::AllowFairing::fairing())
            .register("/", rocket::catchers![who_was_refused]),
    );
    let mut req = client.get("/admin/ip").remote(addr("10.0.0.1:1"));
    req.add_header(Header::new("X-Forwarded-For", "garbage"));
    let response = req.dispatch();
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(response.into_string().unwrap(), "refused, address unknown");
}
