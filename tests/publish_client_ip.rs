//! `publish_client_ip`: after deciding, `Request::client_ip()` and `Request::remote()` are
//! the vetted client, so a real rate limiter keyed on `client_ip()` (rocket-governor)
//! cannot be dodged with a spoofed `X-Real-IP`, and clients behind a trusted proxy get a
//! limit each. This crate's own guards and log lines still know the proxy.

mod common;

use common::http::{serve, Server};
use common::*;
use rocket::request::{FromRequest, Outcome};
use rocket::{get, routes, Request};
use rocket_allow::{AllowFairing, Allowed, Policy};
use rocket_governor::{Method, Quota, RocketGovernable, RocketGovernor};

/// Two requests per hour per client address, per limiter type (each test has its own,
/// since rocket-governor keeps its limiters in a process-wide registry).
macro_rules! limiter {
    ($name:ident, $route:ident, $path:literal) => {
        struct $name;
        impl<'r> RocketGovernable<'r> for $name {
            fn quota(_: Method, _: &str) -> Quota {
                Quota::per_hour(Self::nonzero(2))
            }
        }
        #[get($path)]
        fn $route(_limit: RocketGovernor<'_, $name>, seen: Seen) -> String {
            seen.0
        }
    };
}

/// What every other crate sees: `client_ip()` and `remote()`.
struct Seen(String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Seen {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> Outcome<Seen, ()> {
        Outcome::Success(Seen(format!(
            "{} {}",
            req.client_ip().map_or("-".into(), |ip| ip.to_string()),
            req.remote().map_or("-".into(), |a| a.ip().to_string())
        )))
    }
}

limiter!(SpoofedShare, spoofed_share, "/a");
limiter!(Untouched, untouched, "/b");
limiter!(BehindProxy, behind_proxy, "/c");

fn launch(toml: &str, routes: Vec<rocket::Route>) -> Server {
    serve(
        rocket::custom(figment(toml))
            .attach(AllowFairing::fairing())
            .mount("/", routes)
            .register(
                "/",
                rocket::catchers![rocket_governor::rocket_governor_catcher, refused],
            ),
    )
}

/// What a catcher (or a logger in one) sees of a refused request.
#[rocket::catch(403)]
fn refused(req: &Request<'_>) -> String {
    format!(
        "refused {}",
        req.client_ip().map_or("-".into(), |ip| ip.to_string())
    )
}

fn get(server: &Server, from: &str, path: &str, header: &str) -> (u16, String) {
    let res = server.request_from(from, "GET", path, &[header.as_bytes()]);
    (res.status, res.body)
}

#[test]
fn spoofed_x_real_ip_values_from_one_client_share_one_limit() {
    let s = launch("[default.allow]\nrules = []", routes![spoofed_share]);
    for i in 1..=2 {
        let (status, body) = get(&s, "127.0.0.3", "/a", &format!("X-Real-IP: 10.9.9.{i}"));
        assert_eq!((status, body.as_str()), (200, "127.0.0.3 127.0.0.3"));
    }
    // A third address it claims is still the same client: limited.
    assert_eq!(get(&s, "127.0.0.3", "/a", "X-Real-IP: 10.9.9.3").0, 429);
    // Another client has its own limit.
    assert_eq!(get(&s, "127.0.0.4", "/a", "X-Real-IP: 127.0.0.3").0, 200);
    s.stop().unwrap();
}

#[test]
fn publish_client_ip_false_leaves_the_request_as_rocket_made_it() {
    let s = launch(
        "[default.allow]\nrules = []\npublish_client_ip = false",
        routes![untouched],
    );
    // Rocket's own client_ip() believes X-Real-IP: each spoofed value gets a fresh limit.
    for i in 1..=5 {
        let (status, body) = get(&s, "127.0.0.3", "/b", &format!("X-Real-IP: 10.9.9.{i}"));
        assert_eq!((status, body), (200, format!("10.9.9.{i} 127.0.0.3")));
    }
    s.stop().unwrap();
}

struct Admin;
impl Policy for Admin {
    const NAME: &'static str = "admin";
}

#[get("/admin")]
fn admin(_ok: Allowed<Admin>, seen: Seen) -> String {
    seen.0
}

#[test]
fn clients_behind_a_trusted_proxy_get_their_own_limit_and_guards_still_see_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let s = launch(
        &format!(
            r#"
            [default.allow]
            trusted_proxies = ["127.0.0.2"]
            access_log = "{}"
            rules = []
            [default.allow.policies.admin]
            rules = [{{ allow = "203.0.113.1" }}, {{ deny = "all" }}]
            "#,
            log.display()
        ),
        routes![behind_proxy, admin],
    );
    let xff = |c: &str| format!("X-Forwarded-For: 6.6.6.6, {c}");
    for _ in 0..2 {
        let (status, body) = get(&s, "127.0.0.2", "/c", &xff("203.0.113.1"));
        assert_eq!((status, body.as_str()), (200, "203.0.113.1 203.0.113.1"));
    }
    assert_eq!(get(&s, "127.0.0.2", "/c", &xff("203.0.113.1")).0, 429);
    // The proxy forwards another client: its own limit, not the proxy's shared one.
    let (status, body) = get(&s, "127.0.0.2", "/c", &xff("203.0.113.2"));
    assert_eq!((status, body.as_str()), (200, "203.0.113.2 203.0.113.2"));
    // A guard decides after the request was published, on the client as read, and its
    // log line still names the proxy.
    let (status, body) = get(&s, "127.0.0.2", "/admin", &xff("203.0.113.1"));
    assert_eq!((status, body.as_str()), (200, "203.0.113.1 203.0.113.1"));
    log_line(&log, &["203.0.113.1 via 127.0.0.2", "policy admin"]);
    assert_eq!(get(&s, "127.0.0.2", "/admin", &xff("203.0.113.2")).0, 403);
    log_line(
        &log,
        &["203.0.113.2 via 127.0.0.2", "denied", "policy admin"],
    );
    s.stop().unwrap();
}

#[test]
fn a_refused_request_whose_client_cannot_be_read_shows_the_peer_not_a_spoofed_header() {
    let s = launch(
        "[default.allow]\nrules = [{ deny = \"203.0.113.9\" }]\ntrusted_proxies = [\"127.0.0.2\"]",
        routes![],
    );
    let refused_as = |xff: &str| {
        let xff = format!("X-Forwarded-For: {xff}");
        let res = s.request_from(
            "127.0.0.2",
            "GET",
            "/",
            &[xff.as_bytes(), b"X-Real-IP: 6.6.6.6"],
        );
        assert_eq!(res.status, 403);
        res.body
    };
    // Unreadable: the catcher sees the proxy, not the X-Real-IP a client wrote.
    assert_eq!(refused_as("garbage"), "refused 127.0.0.2");
    // Refused by a rule: the client.
    assert_eq!(refused_as("203.0.113.9"), "refused 203.0.113.9");
    s.stop().unwrap();
}

/// What a catcher sees of a refused request through this crate's own guard.
#[rocket::catch(403)]
fn refused_guarded(req: &Request<'_>) -> String {
    let guard = rocket::futures::executor::block_on(req.guard::<rocket_allow::ClientIp>());
    format!(
        "refused {} guard {}",
        req.client_ip().map_or("-".into(), |ip| ip.to_string()),
        guard
            .succeeded()
            .map_or("refused".into(), |ip| ip.to_string())
    )
}

#[test]
fn when_the_apps_ip_header_is_the_proxys_header_an_unreadable_one_still_shows_the_peer() {
    // Rocket reads X-Forwarded-For itself (its first line, as one address): a client that
    // makes the proxy's header unreadable must not pick what a catcher or logger sees.
    let s = serve(
        rocket::custom(figment(
            "[default]\nip_header = \"X-Forwarded-For\"\n[default.allow]\nrules = []\ntrusted_proxies = [\"127.0.0.2\"]",
        ))
        .attach(AllowFairing::fairing())
        .register("/", rocket::catchers![refused_guarded]),
    );
    for lines in [
        &[
            &b"X-Forwarded-For: 6.6.6.6"[..],
            b"X-Forwarded-For: garbage",
        ][..],
        &[b"X-Forwarded-For: 6.6.6.6", b"X-Forwarded-For: for=x"],
    ] {
        let res = s.request_from("127.0.0.2", "GET", "/", lines);
        assert_eq!(
            (res.status, res.body.as_str()),
            (403, "refused 127.0.0.2 guard refused"),
            "{lines:?}"
        );
    }
    s.stop().unwrap();
}
