//! The runtime API: bans (with expiry, persisted across restarts), replacing an inline set,
//! and `explain`, from a handler and from test code.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rocket::http::Status;
use rocket::local::blocking::Client;
use rocket::State;
use rocket_allow::{AllowHandle, Verdict};

#[rocket::post("/ban/<target>")]
fn ban_route(target: &str, handle: &State<AllowHandle>) -> String {
    let target = target.replace('_', "/");
    match handle.ban_with_reason(&target, None, Some("from a handler")) {
        Ok(()) => "banned".into(),
        Err(e) => e.to_string(),
    }
}

const CONFIG: &str = r#"
[default.allow]
rules = [{ allow = "@team" }, { deny = "all" }]
[default.allow.sets]
team = ["203.0.113.0/24", "127.0.0.1"]
[default.allow.policies.open]
paths = ["/open"]
rules = []
default = "allow"
"#;

fn runtime_app(toml: &str) -> Client {
    client(app_with_catch_all(toml, 50).mount("/", rocket::routes![ban_route]))
}

/// The bans file in `dir`, and [`CONFIG`] saving bans to it.
fn with_bans_file(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let file = dir.join("bans.txt");
    let toml = format!(
        "{CONFIG}[default.allow.bans]\nfile = \"{}\"\n",
        file.display()
    );
    (file, toml)
}

fn handle(client: &Client) -> &AllowHandle {
    client
        .rocket()
        .state::<AllowHandle>()
        .expect("managed at ignite")
}

/// Waits (10 s at most) until the bans file contains `needle`: saves happen off the caller's
/// thread.
fn wait_saved(file: &std::path::Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(file)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(Instant::now() < deadline, "never saved: {needle}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn get(client: &Client, path: &str, peer: &str) -> Status {
    client
        .get(path.to_string())
        .remote(addr(peer))
        .dispatch()
        .status()
}

#[test]
fn bans_refuse_in_every_policy_before_any_rule() {
    let client = runtime_app(CONFIG);
    assert_eq!(get(&client, "/", "203.0.113.9:1"), Status::Ok);
    assert_eq!(get(&client, "/open", "192.0.2.1:1"), Status::Ok);
    // From a handler (the route itself is reachable for the team).
    let res = client
        .post("/ban/203.0.113.0_25")
        .remote(addr("127.0.0.1:1"))
        .dispatch();
    assert_eq!(res.into_string().unwrap(), "banned");
    assert_eq!(get(&client, "/", "203.0.113.9:1"), Status::Forbidden);
    assert_eq!(get(&client, "/open", "203.0.113.9:1"), Status::Forbidden);
    assert_eq!(get(&client, "/", "203.0.113.200:1"), Status::Ok);
    // From test code.
    let h = handle(&client);
    h.ban("192.0.2.1", None).unwrap();
    assert_eq!(get(&client, "/open", "192.0.2.1:1"), Status::Forbidden);
    assert_eq!(get(&client, "/open", "192.0.2.2:1"), Status::Ok);
    let bans = h.bans();
    assert_eq!(bans.len(), 2);
    assert!(bans.iter().any(|b| b.target.to_string() == "203.0.113.0/25"
        && b.reason.as_deref() == Some("from a handler")));
    assert!(h.unban("192.0.2.1").unwrap());
    assert!(!h.unban("192.0.2.1").unwrap());
    assert_eq!(get(&client, "/open", "192.0.2.1:1"), Status::Ok);
    for bad in ["all", "example.com", "@team", "10.0.0.0/33", ""] {
        assert!(h.ban(bad, None).is_err(), "{bad}");
    }
}

#[test]
fn bans_expire() {
    let client = runtime_app(CONFIG);
    let h = handle(&client);
    h.ban("203.0.113.9", Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(get(&client, "/", "203.0.113.9:1"), Status::Forbidden);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&client, "/", "203.0.113.9:1") != Status::Ok {
        assert!(Instant::now() < deadline, "the ban never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(h.bans().is_empty());
}

#[test]
fn bans_are_logged_with_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let client = runtime_app(&CONFIG.replace(
        "[default.allow.sets]",
        &format!("access_log = \"{}\"\n[default.allow.sets]", log.display()),
    ));
    let h = handle(&client);
    h.ban_with_reason(
        "203.0.113.9",
        Some(Duration::from_secs(3600)),
        Some("abuse"),
    )
    .unwrap();
    get(&client, "/", "203.0.113.9:1");
    drop(client);
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().last().unwrap();
    assert!(
        line.contains("203.0.113.9 denied (403) by ban [banned 203.0.113.9/32 until 20")
            && line.contains("Z: abuse]"),
        "{line}"
    );
}

#[test]
fn replace_set_is_checked_first_and_applies_at_once() {
    let client = runtime_app(CONFIG);
    let h = handle(&client);
    assert_eq!(get(&client, "/", "198.51.100.7:1"), Status::Forbidden);
    h.replace_set("team", &["198.51.100.0/24"]).unwrap();
    assert_eq!(get(&client, "/", "198.51.100.7:1"), Status::Ok);
    assert_eq!(get(&client, "/", "203.0.113.9:1"), Status::Forbidden);
    // Invalid: nothing changes.
    let e = h
        .replace_set("team", &["198.51.100.9", "nope!"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("allow.sets.team[1]") && e.contains("nope!"),
        "{e}"
    );
    let e = h.replace_set("team", &["@team"]).unwrap_err().to_string();
    assert!(e.contains("cycle"), "{e}");
    assert!(h.replace_set("loopback", &["10.0.0.1"]).is_err());
    assert!(h.replace_set("nosuch", &["10.0.0.1"]).is_err());
    assert_eq!(get(&client, "/", "198.51.100.7:1"), Status::Ok);
}

#[test]
fn explain_agrees_with_real_requests() {
    let client = runtime_app(CONFIG);
    let h = handle(&client);
    h.ban("198.51.100.0/24", None).unwrap();
    let e = h.explain("203.0.113.9".parse().unwrap(), "/x");
    assert_eq!(
        (e.policy.as_deref(), e.by, e.rule.clone()),
        (None, "rule", Some((0, "@team".to_string())))
    );
    let e = h.explain("192.0.2.1".parse().unwrap(), "/open/y");
    assert_eq!(
        (e.policy.as_deref(), e.by, e.verdict),
        (Some("open"), "default", Verdict::Allow)
    );
    let e = h.explain("198.51.100.3".parse().unwrap(), "/open/y");
    assert_eq!((e.by, e.verdict), ("ban", Verdict::Deny));
    for ip in [
        "203.0.113.9",
        "192.0.2.1",
        "198.51.100.3",
        "127.0.0.1",
        "::1",
        "::ffff:203.0.113.9",
    ] {
        for path in ["/", "/x", "/open", "/open/y", "/opener", "/open/../x"] {
            let e = h.explain(ip.parse().unwrap(), path);
            let peer = std::net::SocketAddr::new(ip.parse().unwrap(), 1);
            let got = client.get(path).remote(peer).dispatch().status();
            let want = if e.verdict == Verdict::Allow {
                got != Status::Forbidden && got != Status::BadRequest
            } else {
                got == Status::Forbidden || got == Status::BadRequest
            };
            assert!(want, "{ip} {path}: explain {e:?}, request {got}");
        }
    }
}

#[test]
fn bans_persist_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (file, toml) = with_bans_file(dir.path());
    let client = runtime_app(&toml);
    let h = handle(&client);
    h.ban_with_reason("203.0.113.0/28", None, Some("kept"))
        .unwrap();
    let short = Duration::from_secs(1);
    let ends = Instant::now() + short;
    h.ban("203.0.113.64/28", Some(short)).unwrap();
    // Saves are paced off the caller's thread (a burst waits ≥1 s, by which time a short ban
    // has ended and is not written): flush to have both in the file now.
    h.flush_bans().unwrap();
    wait_saved(&file, "203.0.113.64/28");
    drop(client);
    // The short ban must have ended before the restart reads the file.
    while Instant::now() < ends + Duration::from_millis(50) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = runtime_app(&toml);
    let bans = handle(&client).bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].reason.as_deref(), Some("kept"));
    assert_eq!(get(&client, "/", "203.0.113.1:1"), Status::Forbidden);
    assert_eq!(get(&client, "/", "203.0.113.65:1"), Status::Ok);
    // A bad bans file fails ignite, naming the line.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "203.0.113.0/28 - ok\nnot-a-net - x\n").unwrap();
    let toml = format!(
        "{CONFIG}[default.allow.bans]\nfile = \"{}\"\n",
        bad.display()
    );
    ignite_error(app(&toml), &["allow.bans.file", "bad.txt:2"]);
}

#[test]
fn many_bans_and_overlapping_ones() {
    let client = runtime_app(CONFIG);
    let h = handle(&client);
    // Many more than are kept outside the compiled table: both places are consulted.
    for i in 0..600u32 {
        h.ban(&std::net::Ipv4Addr::from(0xcb00_7100 + i).to_string(), None)
            .unwrap();
    }
    for i in [0u32, 255, 256, 511, 599] {
        let peer = format!("{}:1", std::net::Ipv4Addr::from(0xcb00_7100 + i));
        assert_eq!(get(&client, "/", &peer), Status::Forbidden, "{peer}");
    }
    assert_eq!(h.bans().len(), 600);
    assert!(h.unban("203.0.113.9").is_ok());
    // A short ban inside a long one: when the short one ends, the long one still holds.
    h.ban("198.51.100.0/24", None).unwrap();
    h.ban("198.51.100.7", Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(get(&client, "/open", "198.51.100.7:1"), Status::Forbidden);
    h.unban("198.51.100.0/24").unwrap();
    assert_eq!(get(&client, "/open", "198.51.100.7:1"), Status::Ok);
}

#[test]
fn every_ban_change_is_saved_and_far_expiries_are_bans_until_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let (file, toml) = with_bans_file(dir.path());
    let client = runtime_app(&toml);
    let h = handle(&client);
    let saved = |needle: &str| wait_saved(&file, needle);
    // A renewal (here: made permanent) is saved too.
    h.ban_with_reason("192.0.2.5", Some(Duration::from_secs(60)), Some("first"))
        .unwrap();
    saved("first");
    h.ban_with_reason("192.0.2.5", None, Some("renewed"))
        .unwrap();
    // One line, `network expiry version reason`: until lifted now.
    saved(" renewed");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().find(|l| l.ends_with(" renewed")).unwrap();
    assert!(line.starts_with("192.0.2.5/32 - "), "{line}");
    // And many bans in a row.
    for i in 0..40u32 {
        h.ban(&std::net::Ipv4Addr::from(0x0a08_0000 + i).to_string(), None)
            .unwrap();
    }
    saved("10.8.0.39/32");
    // A ttl too large for the clock is a ban until lifted, not a panic.
    h.ban("192.0.2.6", Some(Duration::from_secs(u64::MAX)))
        .unwrap();
    assert!(h
        .bans()
        .iter()
        .any(|b| b.target.to_string() == "192.0.2.6/32" && b.expires.is_none()));
    drop(client);
    // An expiry past what a date can show is a ban until lifted, not a failed ignite.
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "192.0.2.7 18446744073709551615 x\n").unwrap();
    let toml = format!(
        "{CONFIG}[default.allow.bans]\nfile = \"{}\"\n",
        other.display()
    );
    let client = runtime_app(&toml);
    let bans = handle(&client).bans();
    assert_eq!((bans.len(), bans[0].expires), (1, None), "{bans:?}");
    drop(client);
    std::fs::write(&other, "192.0.2.7 soon x\n").unwrap();
    ignite_error(
        app(&toml),
        &["allow.bans.file", "other.txt:1", "not a number"],
    );
    let missing = format!("{CONFIG}[default.allow.bans]\nfile = \"/nonexistent-dir/bans.txt\"\n");
    ignite_error(app(&missing), &["allow.bans.file", "does not exist"]);
}
