//! The fairing end to end: Rocket.toml-style config, the local client, `.remote(...)`.

mod common;

use common::*;
use rocket::http::{Method, Status};

const LOCALHOST_ONLY: &str = r#"
[default.allow]
rules = [{ allow = "127.0.0.1" }, { allow = "::1" }, { deny = "all" }]
"#;

#[test]
fn allowed_client_reaches_the_route() {
    let client = client(app(LOCALHOST_ONLY));
    let res = client.get("/").remote(addr("127.0.0.1:5000")).dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.into_string().unwrap(), "hello");
    assert_eq!(hits(&client), 1);
}

#[test]
fn refused_client_gets_the_apps_403_catcher_and_no_route_runs() {
    let client = client(app(LOCALHOST_ONLY));
    let res = client.get("/").remote(addr("192.0.2.1:5000")).dispatch();
    assert_eq!(res.status(), Status::Forbidden);
    assert_eq!(res.into_string().unwrap(), "custom 403 page");
    assert_eq!(hits(&client), 0);
}

#[test]
fn every_method_and_path_is_refused_even_with_a_catch_all() {
    for rank in [-1000, -1, 0, 50, isize::MAX, isize::MIN + 1] {
        let client = client(app_with_catch_all(LOCALHOST_ONLY, rank));
        // The catch-all really catches for an allowed client...
        let ok = client
            .post("/anything/at/all")
            .remote(addr("127.0.0.1:1"))
            .dispatch();
        assert_eq!(ok.status(), Status::Ok, "rank {rank}");
        assert_eq!(hits(&client), 1);
        // ...and never runs for a refused one.
        for method in ROUTE_METHODS.into_iter().chain([Method::Head]) {
            for path in ["/", "/anything/at/all", "/no/such/route?x=1"] {
                let res = client
                    .req(method, path)
                    .remote(addr("192.0.2.7:1"))
                    .dispatch();
                assert_eq!(
                    res.status(),
                    Status::Forbidden,
                    "{method} {path} rank {rank}"
                );
                if method == Method::Head {
                    assert!(res.into_string().unwrap_or_default().is_empty());
                } else {
                    assert_eq!(res.into_string().unwrap(), "custom 403 page");
                }
            }
        }
        assert_eq!(
            hits(&client),
            1,
            "a route ran for a refused request at rank {rank}"
        );
    }
}

#[test]
fn rockets_default_403_catcher_when_the_app_has_none() {
    let rocket = rocket::custom(figment(LOCALHOST_ONLY))
        .attach(rocket_allow::AllowFairing::fairing())
        .manage(Hits::default());
    let client = client(rocket);
    let res = client.get("/").remote(addr("192.0.2.1:5000")).dispatch();
    assert_eq!(res.status(), Status::Forbidden);
    assert!(res.into_string().unwrap().contains("403"));
}

#[test]
fn request_without_remote_address_is_refused() {
    let client = client(app("[default.allow]\nrules = []"));
    // Nothing would refuse it by rule (default allow, no rules), yet no address means no.
    let res = client.get("/").dispatch();
    assert_eq!(res.status(), Status::Forbidden);
    assert_eq!(hits(&client), 0);
    let res = client.get("/").remote(addr("192.0.2.1:1")).dispatch();
    assert_eq!(res.status(), Status::Ok);
}

#[test]
fn x_real_ip_never_changes_a_decision() {
    let client = client(app(LOCALHOST_ONLY));
    let res = client
        .get("/")
        .remote(addr("192.0.2.1:5000"))
        .header(rocket::http::Header::new("X-Real-IP", "127.0.0.1"))
        .header(rocket::http::Header::new("X-Forwarded-For", "127.0.0.1"))
        .dispatch();
    assert_eq!(res.status(), Status::Forbidden);
    assert_eq!(hits(&client), 0);
}

#[test]
fn ipv6_and_mapped_clients() {
    let client = client(app(r#"
        [default.allow]
        default = "deny"
        rules = [{ allow = "2001:db8::/32" }, { allow = "192.0.2.0/24" }, { deny = "::1" }]
        "#));
    let status = |a: &str| client.get("/").remote(addr(a)).dispatch().status();
    assert_eq!(status("[2001:db8::1]:1"), Status::Ok);
    assert_eq!(
        status("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:1"),
        Status::Ok
    );
    assert_eq!(status("[2001:db9::]:1"), Status::Forbidden);
    // A dual-stack listener reports IPv4 clients as mapped addresses.
    assert_eq!(status("[::ffff:192.0.2.7]:1"), Status::Ok);
    assert_eq!(status("[::ffff:192.0.3.0]:1"), Status::Forbidden);
    assert_eq!(status("[::1]:1"), Status::Forbidden);
}

#[test]
fn first_match_wins_and_default_applies() {
    let deny_first = r#"
        [default.allow]
        rules = [{ deny = "all" }, { allow = "127.0.0.1" }]
    "#;
    let client1 = client(app(deny_first));
    assert_eq!(status(&client1, "127.0.0.1:1", &[]), Status::Forbidden);

    let default_deny = r#"
        [default.allow]
        default = "deny"
        rules = [{ allow = "10.0.0.0/8" }]
    "#;
    let client2 = client(app(default_deny));
    assert_eq!(status(&client2, "10.255.255.255:1", &[]), Status::Ok);
    assert_eq!(status(&client2, "11.0.0.0:1", &[]), Status::Forbidden);
    assert_eq!(status(&client2, "9.255.255.255:1", &[]), Status::Forbidden);
}

#[test]
fn host_bits_are_normalized_with_a_warning() {
    capture_logs();
    let client = client(app(r#"
        [default.allow]
        default = "deny"
        rules = [{ allow = "10.1.2.3/8" }]
        "#));
    assert_eq!(status(&client, "10.200.0.1:1", &[]), Status::Ok);
    let warned = logged("`10.1.2.3/8` has host bits set");
    assert!(
        warned
            .iter()
            .any(|l| l.contains("rules[0]") && l.contains("10.0.0.0/8")),
        "{warned:?}"
    );
}

#[test]
fn custom_config_in_code() {
    use rocket_allow::{AllowConfig, AllowFairing, Rule, Verdict};
    let mut config = AllowConfig::new(vec![Rule::allow("192.0.2.0/24").unwrap()]);
    config.default = Verdict::Deny;
    capture_logs();
    let rocket = rocket::build()
        .attach(AllowFairing::custom(config))
        .manage(Hits::default())
        .mount("/", rocket::routes![]);
    let client = client(rocket);
    assert_eq!(status(&client, "192.0.2.1:1", &[]), Status::NotFound);
    assert_eq!(status(&client, "192.0.3.1:1", &[]), Status::Forbidden);
}

#[test]
fn host_name_rules_resolve_at_ignite() {
    // The system resolver answers `localhost` with 127.0.0.1 and ::1 (RFC 6761, /etc/hosts).
    let client = client(app(r#"
        [default.allow]
        default = "deny"
        rules = [{ allow = "localhost" }]
        "#));
    assert_eq!(status(&client, "127.0.0.1:1", &[]), Status::Ok);
    assert_eq!(status(&client, "[::1]:1", &[]), Status::Ok);
    assert_eq!(status(&client, "127.0.0.2:1", &[]), Status::Forbidden);
}
