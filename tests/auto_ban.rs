//! Automatic bans attacked over real HTTP: scanners' 404s, a login route's strikes, IPv6
//! clients rotating through their /64, clients behind a trusted proxy (the proxy never
//! banned), spoofed headers from an untrusted peer, exemptions, escalation, expiry, report
//! mode, a lifted ban's count, bounds, metrics, and bad configuration.
//!
//! Loopback clients are never counted, so clients reach the launched app through a trusted
//! proxy (127.0.0.1 with `X-Forwarded-For`), as they would behind nginx; untrusted peers
//! with public addresses come through Rocket's local client.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use common::http::{serve, via_proxy, Server};
use common::recorder::snapshotter;
use common::*;
use metrics_util::debugging::{DebugValue, Snapshotter};
use rocket::http::Header;
use rocket::local::blocking::Client;
use rocket::{get, post, routes, State};
use rocket_allow::{AllowFairing, AllowHandle, ClientIp};

#[get("/")]
fn index() -> &'static str {
    "hello"
}

/// A login that always fails, striking the client rocket-allow decided on.
#[post("/login")]
fn login(client: ClientIp, allow: &State<AllowHandle>) -> String {
    format!("banned: {}", allow.strike("login", client.ip()).unwrap())
}

fn auto_app(toml: &str) -> rocket::Rocket<rocket::Build> {
    rocket::custom(figment(toml))
        .attach(AllowFairing::fairing())
        .mount("/", routes![index, login])
}

/// Rules behind a trusted proxy at 127.0.0.1 (plus `extra` keys in `[default.allow]`), and
/// `rules` as the auto_ban tables.
fn config(extra: &str, rules: &str) -> String {
    format!(
        "[default.allow]\nrules = [{{ allow = \"all\" }}]\ntrusted_proxies = [\"127.0.0.1\"]\n{extra}\n{rules}"
    )
}

const SCANNERS: &str = r#"
[default.allow.auto_ban.scanners]
on = "status"
statuses = [404, 405]
max = 5
window_secs = 60
ban_secs = 600
"#;

fn handle(s: &Server) -> AllowHandle {
    s.allow.clone().expect("attached")
}

fn ban_of(h: &AllowHandle, ip: &str) -> Option<rocket_allow::Ban> {
    h.is_banned(ip.parse().unwrap())
}

#[test]
fn a_scanner_is_banned_at_the_event_after_max_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let bans = dir.path().join("bans.txt");
    let toml = config(
        &format!(
            "access_log = \"{}\"\nbans.file = \"{}\"",
            log.display(),
            bans.display()
        ),
        SCANNERS,
    );
    let s = serve(auto_app(&toml));
    let h = handle(&s);
    for i in 0..5 {
        assert_eq!(via_proxy(&s, "GET", "/wp-login.php", "203.0.113.7"), 404);
        assert!(
            ban_of(&h, "203.0.113.7").is_none(),
            "banned after {}",
            i + 1
        );
    }
    // 405s count too (statuses = [404, 405]); HEAD of a missing page is a 404 as well.
    assert_eq!(via_proxy(&s, "HEAD", "/x", "203.0.113.7"), 404);
    let ban = ban_of(&h, "203.0.113.7").expect("banned at the sixth");
    assert_eq!(ban.origin.as_deref(), Some("auto_ban scanners"));
    assert_eq!(
        ban.reason.as_deref(),
        Some("6 responses 404 or 405 in 60 s")
    );
    assert_eq!(ban.target.to_string(), "203.0.113.7/32");
    let left = ban
        .expires
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
    // Refused everywhere now; other clients behind the proxy are not, nor the proxy.
    assert_eq!(via_proxy(&s, "GET", "/", "203.0.113.7"), 403);
    assert_eq!(via_proxy(&s, "GET", "/", "203.0.113.8"), 200);
    assert!(ban_of(&h, "127.0.0.1").is_none());
    // In the log, explain, bans() and the bans file.
    let line = log_line(&log, &["203.0.113.7", "by ban"]);
    assert!(line.contains("by auto_ban scanners: 6 responses"), "{line}");
    log_line(&log, &["banned 203.0.113.7/32", "auto_ban scanners"]);
    let e = h.explain("203.0.113.7".parse().unwrap(), "/");
    assert_eq!(e.by, "ban");
    assert!(e.to_string().contains("auto_ban scanners"), "{e}");
    h.flush_bans().unwrap();
    let text = std::fs::read_to_string(&bans).unwrap();
    assert!(
        text.contains("203.0.113.7/32 ") && text.contains("auto_ban scanners\t6 responses"),
        "{text:?}"
    );
    s.stop().unwrap();
    // Restored as an automatic ban after a restart.
    let s = serve(auto_app(&toml));
    let ban = ban_of(&handle(&s), "203.0.113.7").expect("restored");
    assert_eq!(ban.origin.as_deref(), Some("auto_ban scanners"));
    s.stop().unwrap();
}

#[test]
fn only_the_configured_statuses_and_paths_count() {
    let rules = r#"
[default.allow.auto_ban.admin_probes]
on = "status"
statuses = [404]
paths = ["/wp-admin"]
max = 2
window_secs = 60
ban_secs = 60
"#;
    let s = serve(auto_app(&config("", rules)));
    let h = handle(&s);
    for _ in 0..10 {
        assert_eq!(via_proxy(&s, "GET", "/", "203.0.113.20"), 200);
        assert_eq!(via_proxy(&s, "GET", "/other", "203.0.113.20"), 404);
        assert_eq!(via_proxy(&s, "POST", "/", "203.0.113.20"), 404);
    }
    assert!(ban_of(&h, "203.0.113.20").is_none());
    for _ in 0..3 {
        via_proxy(&s, "GET", "/wp-admin/setup.php", "203.0.113.20");
    }
    assert!(ban_of(&h, "203.0.113.20").is_some());
    s.stop().unwrap();
}

#[test]
fn a_login_routes_strikes_ban_and_unban_resets_the_count() {
    let rules = r#"
[default.allow.auto_ban.login]
on = "strikes"
max = 3
window_secs = 300
ban_secs = 900
"#;
    let s = serve(auto_app(&config("", rules)));
    let h = handle(&s);
    let login = |client: &str| {
        let xff = format!("X-Forwarded-For: {client}");
        s.request_from("127.0.0.1", "POST", "/login", &[xff.as_bytes()])
    };
    for _ in 0..3 {
        assert_eq!(login("198.51.100.4").body, "banned: false");
    }
    assert_eq!(login("198.51.100.4").body, "banned: true");
    assert_eq!(login("198.51.100.4").status, 403);
    let ban = ban_of(&h, "198.51.100.4").unwrap();
    assert_eq!(ban.origin.as_deref(), Some("auto_ban login"));
    assert_eq!(ban.reason.as_deref(), Some("4 strikes in 300 s"));
    // Lifted: the count starts again from zero.
    assert!(h.unban("198.51.100.4").unwrap());
    for _ in 0..3 {
        assert_eq!(login("198.51.100.4").body, "banned: false");
    }
    assert_eq!(login("198.51.100.4").body, "banned: true");
    // Wrong names are errors, never a silent no-op.
    let ip: IpAddr = "198.51.100.5".parse().unwrap();
    assert!(h
        .strike("logn", ip)
        .unwrap_err()
        .to_string()
        .contains("logn"));
    s.stop().unwrap();
}

#[test]
fn a_strike_on_a_rule_that_counts_statuses_is_an_error() {
    let s = serve(auto_app(&config("", SCANNERS)));
    let e = handle(&s)
        .strike("scanners", "198.51.100.5".parse().unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("does not count strikes"), "{e}");
    s.stop().unwrap();
}

#[test]
fn ipv6_clients_are_counted_and_banned_by_their_64() {
    let s = serve(auto_app(&config("", SCANNERS)));
    let h = handle(&s);
    // Six addresses of one /64, one request each: one client.
    for i in 1..=6 {
        via_proxy(&s, "GET", "/nope", &format!("2001:db8:1:2::{i:x}"));
    }
    let ban = ban_of(&h, "2001:db8:1:2::ffff").expect("the /64 is banned");
    assert_eq!(ban.target.to_string(), "2001:db8:1:2::/64");
    assert_eq!(via_proxy(&s, "GET", "/", "2001:db8:1:2:aaaa::1"), 403);
    assert_eq!(via_proxy(&s, "GET", "/", "2001:db8:1:3::1"), 200);
    // An IPv4-mapped client is the IPv4 client.
    for _ in 0..6 {
        via_proxy(&s, "GET", "/nope", "::ffff:198.51.100.77");
    }
    assert_eq!(
        ban_of(&h, "198.51.100.77").unwrap().target.to_string(),
        "198.51.100.77/32"
    );
    s.stop().unwrap();
    // ipv6_prefix = 128: addresses are clients of their own.
    let rules = SCANNERS.replace("ban_secs = 600", "ban_secs = 600\nipv6_prefix = 128");
    let s = serve(auto_app(&config("", &rules)));
    for i in 1..=6 {
        via_proxy(&s, "GET", "/nope", &format!("2001:db8:1:2::{i:x}"));
    }
    assert!(handle(&s).bans().is_empty());
    s.stop().unwrap();
}

#[test]
fn spoofed_headers_from_an_untrusted_peer_count_against_the_peer() {
    let client = Client::tracked(auto_app(&config("", SCANNERS))).unwrap();
    let h = client.rocket().state::<AllowHandle>().unwrap().clone();
    for i in 0..6 {
        // A different "client" each time, from a peer nobody trusts.
        let spoofed = format!("203.0.113.{}", 100 + i);
        let res = client
            .get("/nope")
            .remote(addr("198.51.100.9:4000"))
            .header(Header::new("X-Forwarded-For", spoofed))
            .dispatch();
        assert_eq!(res.status().code, 404);
    }
    assert!(ban_of(&h, "198.51.100.9").is_some(), "the peer is banned");
    assert!(h
        .bans()
        .iter()
        .all(|b| b.target.to_string() == "198.51.100.9/32"));
}

#[test]
fn trusted_proxies_loopback_and_exempt_clients_are_never_counted() {
    let extra = r#"missing_header = "peer"
trusted_proxies = ["127.0.0.1", "198.51.100.50"]
[default.allow.sets]
office = ["203.0.113.0/24"]"#;
    let rules = format!("{SCANNERS}exempt = [\"@office\"]\n");
    let toml = format!("[default.allow]\nrules = [{{ allow = \"all\" }}]\n{extra}\n{rules}");
    let s = serve(auto_app(&toml));
    let h = handle(&s);
    for _ in 0..20 {
        // The office, behind the proxy.
        assert_eq!(via_proxy(&s, "GET", "/nope", "203.0.113.9"), 404);
        // Loopback clients, directly.
        assert_eq!(s.request_from("127.0.0.2", "GET", "/nope", &[]).status, 404);
        // The proxy itself, without a header (its health checks).
        assert_eq!(s.request("GET", "/nope", &[]).status, 404);
    }
    let client = Client::tracked(auto_app(&toml)).unwrap();
    for _ in 0..20 {
        // Another trusted proxy's own requests (missing_header = "peer").
        let res = client
            .get("/nope")
            .remote(addr("198.51.100.50:1"))
            .dispatch();
        assert_eq!(res.status().code, 404);
    }
    let other = client.rocket().state::<AllowHandle>().unwrap();
    assert!(h.bans().is_empty() && other.bans().is_empty());
    s.stop().unwrap();
}

#[test]
fn refusals_count_and_the_ban_then_refuses_everywhere() {
    let toml = r#"
[default.allow]
rules = [{ allow = "all" }]
trusted_proxies = ["127.0.0.1"]
[default.allow.policies.admin]
paths = ["/admin"]
rules = [{ allow = "10.0.0.0/8" }, { deny = "all" }]
[default.allow.auto_ban.refused]
on = "refusals"
max = 3
window_secs = 60
ban_secs = 60
"#;
    let s = serve(auto_app(toml));
    let h = handle(&s);
    assert_eq!(via_proxy(&s, "GET", "/", "203.0.113.30"), 200);
    for _ in 0..3 {
        assert_eq!(via_proxy(&s, "GET", "/admin", "203.0.113.30"), 403);
    }
    assert!(ban_of(&h, "203.0.113.30").is_none());
    assert_eq!(via_proxy(&s, "GET", "/admin", "203.0.113.30"), 403);
    let ban = ban_of(&h, "203.0.113.30").expect("banned at the fourth refusal");
    assert_eq!(ban.reason.as_deref(), Some("4 refusals in 60 s"));
    assert_eq!(via_proxy(&s, "GET", "/", "203.0.113.30"), 403);
    // Refusals by the ban itself are not counted again (the ban is not renewed).
    let before = ban.expires;
    for _ in 0..10 {
        via_proxy(&s, "GET", "/", "203.0.113.30");
    }
    assert_eq!(ban_of(&h, "203.0.113.30").unwrap().expires, before);
    s.stop().unwrap();
}

#[test]
fn report_mode_records_the_ban_it_would_make_and_bans_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let rules = format!("{SCANNERS}mode = \"report\"\n");
    let toml = config(&format!("access_log = \"{}\"", log.display()), &rules);
    let s = serve(auto_app(&toml));
    for _ in 0..6 {
        via_proxy(&s, "GET", "/nope", "203.0.113.40");
    }
    assert_eq!(via_proxy(&s, "GET", "/", "203.0.113.40"), 200);
    assert!(handle(&s).bans().is_empty());
    log_line(&log, &["would ban 203.0.113.40/32 by auto_ban scanners"]);
    s.stop().unwrap();
}

#[test]
fn bans_expire_and_repeat_offenders_get_twice_the_last_up_to_the_cap() {
    let rules = r#"
[default.allow.auto_ban.login]
on = "strikes"
max = 1
window_secs = 60
ban_secs = 1
max_ban_secs = 3
"#;
    let client = Client::tracked(auto_app(&config("", rules))).unwrap();
    let h = client.rocket().state::<AllowHandle>().unwrap().clone();
    let ip: IpAddr = "198.51.100.60".parse().unwrap();
    let mut lengths = Vec::new();
    for round in 0..3 {
        assert_eq!(h.strike("login", ip), Ok(false), "round {round}");
        let at = SystemTime::now();
        assert_eq!(h.strike("login", ip), Ok(true), "round {round}");
        let ends = h.is_banned(ip).unwrap().expires.unwrap();
        lengths.push(ends.duration_since(at).unwrap().as_millis().div_ceil(1000));
        // The ban ends by itself, and the client is let in again.
        until(10, "the ban to end", || h.is_banned(ip).is_none());
        let res = client.get("/").remote((ip, 1).into()).dispatch();
        assert_eq!(res.status().code, 200);
    }
    assert_eq!(lengths, [1, 2, 3]);
}

#[test]
fn tracked_clients_stay_within_max_tracked_and_metrics_say_so() {
    let rules = r#"
[default.allow.auto_ban.login]
on = "strikes"
max = 2
window_secs = 60
ban_secs = 60
max_tracked = 500
[default.allow.auto_ban.dry]
on = "strikes"
max = 1
window_secs = 60
ban_secs = 60
mode = "report"
"#;
    let snap = snapshotter();
    let client = Client::tracked(auto_app(&config("", rules))).unwrap();
    let h = client.rocket().state::<AllowHandle>().unwrap().clone();
    // 20,000 distinct addresses, one strike each: at most 500 are tracked.
    for i in 0..20_000u32 {
        let ip = IpAddr::V4((0xc633_0000 + i).into()); // 198.51.0.0/16 and on
        h.strike("login", ip).unwrap();
    }
    let m = metrics(snap);
    assert_eq!(
        m.get("rocket_allow_auto_ban_tracked{rule=login}"),
        Some(&500.0)
    );
    // One enforced ban and one report-mode one.
    let ip: IpAddr = "203.0.113.50".parse().unwrap();
    for _ in 0..3 {
        h.strike("login", ip).unwrap();
    }
    h.strike("dry", "203.0.113.51".parse().unwrap()).unwrap();
    h.strike("dry", "203.0.113.51".parse().unwrap()).unwrap();
    let m = metrics(snap);
    assert_eq!(
        m.get("rocket_allow_auto_bans_total{enforced=true,rule=login}"),
        Some(&1.0),
        "{m:?}"
    );
    assert_eq!(
        m.get("rocket_allow_auto_bans_total{enforced=false,rule=dry}"),
        Some(&1.0),
        "{m:?}"
    );
    assert!(h.is_banned("203.0.113.51".parse().unwrap()).is_none());
}

/// Metrics as `name{label=value,...}` (labels sorted) → value.
fn metrics(s: &Snapshotter) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in s.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = if labels.is_empty() {
            key.name().to_string()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        let v = match value {
            DebugValue::Counter(c) => c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(_) => continue,
        };
        out.insert(name, v);
    }
    out
}

#[test]
fn bad_configuration_fails_ignite_naming_the_key() {
    let base = |table: &str| {
        format!("[default.allow]\nrules = []\n[default.allow.auto_ban.r]\nwindow_secs = 60\nban_secs = 60\n{table}")
    };
    for (table, needles) in [
        (
            "on = \"sometimes\"\nmax = 1",
            vec!["allow.auto_ban.r.on", "sometimes"],
        ),
        (
            "on = \"status\"\nmax = 1",
            vec!["allow.auto_ban.r.statuses", "required"],
        ),
        (
            "on = \"status\"\nstatuses = [404, 600]\nmax = 1",
            vec!["allow.auto_ban.r.statuses[1]", "600"],
        ),
        (
            "on = \"status\"\nstatuses = [99]\nmax = 1",
            vec!["allow.auto_ban.r.statuses[0]"],
        ),
        (
            "on = \"strikes\"\nmax = 0",
            vec!["allow.auto_ban.r.max", "0"],
        ),
        (
            "on = \"strikes\"\nmax = 1\nipv6_prefix = 0",
            vec!["allow.auto_ban.r.ipv6_prefix"],
        ),
        (
            "on = \"strikes\"\nmax = 1\nipv6_prefix = 129",
            vec!["allow.auto_ban.r.ipv6_prefix", "129"],
        ),
        (
            "on = \"strikes\"\nmax = 1\nexempt = [\"@nowhere\"]",
            vec!["allow.auto_ban.r.exempt[0]", "@nowhere"],
        ),
        (
            "on = \"strikes\"\nmax = 1\nstatuses = [404]",
            vec!["allow.auto_ban.r.statuses", "only for"],
        ),
        (
            "on = \"strikes\"\nmax = 1\nmax_ban_secs = 10",
            vec!["allow.auto_ban.r.max_ban_secs"],
        ),
        (
            "on = \"refusals\"\nmax = 1\npaths = [\"admin\"]",
            vec!["allow.auto_ban.r.paths[0]"],
        ),
        (
            "on = \"strikes\"\nmax = 1\nmax_tracked = 0",
            vec!["allow.auto_ban.r.max_tracked"],
        ),
    ] {
        ignite_error(app(&base(table)), &needles);
    }
    // No `max` at all.
    ignite_error(app(&base("on = \"strikes\"")), &["allow.auto_ban", "max"]);
}
