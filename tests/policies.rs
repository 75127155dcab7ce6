//! Policies: named address sets, path-scoped policies, `reject_status`, the `Allowed<P>` and
//! `ClientIp` guards, and what the log says about them.

mod common;

use std::sync::atomic::Ordering;

use common::http::serve;
use common::*;
use rocket::http::{Header, Method, Status};
use rocket::{catch, catchers, get, routes, Request, State};
use rocket_allow::{Allowed, ClientIp, Policy};

struct Admin;
impl Policy for Admin {
    const NAME: &'static str = "admin";
}

struct Missing;
impl Policy for Missing {
    const NAME: &'static str = "no-such-policy";
}

#[get("/guarded")]
fn guarded(_ok: Allowed<Admin>, hits: &State<Hits>) -> &'static str {
    hits.0.fetch_add(1, Ordering::SeqCst);
    "welcome"
}

#[get("/either")]
fn either(ip: Option<Allowed<Admin>>) -> Result<&'static str, Status> {
    // An app would also accept a logged-in user here.
    match ip {
        Some(_) => Ok("office"),
        None => Err(Status::Unauthorized),
    }
}

#[get("/missing")]
fn missing(_ok: Allowed<Missing>) -> &'static str {
    "never"
}

#[get("/whoami")]
fn whoami(ip: ClientIp) -> String {
    ip.to_string()
}

#[catch(404)]
fn not_found(_: &Request<'_>) -> &'static str {
    "custom 404 page"
}

const CONFIG: &str = r#"
[default.allow]
rules = [{ allow = "@office" }, { allow = "@loopback" }, { deny = "all" }]
[default.allow.sets]
office = ["203.0.113.0/24", "@vpn"]
vpn = ["198.51.100.7", "2001:db8:10::/48"]
[default.allow.policies.public]
paths = ["/healthz", "/static"]
rules = []
default = "allow"
[default.allow.policies.admin]
paths = ["/admin"]
rules = [{ allow = "@office" }, { deny = "all" }]
default = "deny"
reject_status = 404
[default.allow.policies.admin-public]
paths = ["/admin/public"]
rules = []
"#;

fn policy_app(toml: &str) -> rocket::Rocket<rocket::Build> {
    app_with_catch_all(toml, 50)
        .mount("/", routes![guarded, either, missing, whoami])
        .register("/", catchers![not_found])
}

fn get(client: &rocket::local::blocking::Client, path: &str, peer: &str) -> (Status, String) {
    let res = client.get(path.to_string()).remote(addr(peer)).dispatch();
    (res.status(), res.into_string().unwrap_or_default())
}

#[test]
fn built_in_sets() {
    for (set, inside, outside) in [
        (
            "loopback",
            &["127.0.0.1", "127.255.255.254", "[::1]"][..],
            &["128.0.0.1", "[::2]"][..],
        ),
        (
            "private",
            &[
                "10.1.2.3",
                "172.16.0.1",
                "172.31.255.255",
                "192.168.1.1",
                "[fd00::1]",
                "[fc00::1]",
            ],
            &["172.32.0.1", "11.0.0.1", "[fe00::1]"],
        ),
        (
            "link_local",
            &["169.254.1.1", "[fe80::1]"],
            &["169.255.0.1", "[fec0::1]"],
        ),
        (
            "cgnat",
            &["100.64.0.1", "100.127.255.255"],
            &["100.128.0.1", "100.63.255.255"],
        ),
    ] {
        let client = client(app(&format!(
            "[default.allow]\nrules = [{{ allow = \"@{set}\" }}, {{ deny = \"all\" }}]"
        )));
        for ip in inside {
            assert_eq!(
                status(&client, &format!("{ip}:1"), &[]),
                Status::Ok,
                "@{set} {ip}"
            );
        }
        for ip in outside {
            assert_eq!(
                status(&client, &format!("{ip}:1"), &[]),
                Status::Forbidden,
                "@{set} {ip}"
            );
        }
    }
}

#[test]
fn user_sets_nest_and_apply_app_wide() {
    let client = client(policy_app(CONFIG));
    for peer in [
        "203.0.113.9:1",
        "198.51.100.7:1",
        "[2001:db8:10::5]:1",
        "127.0.0.1:1",
    ] {
        assert_eq!(get(&client, "/x", peer).0, Status::Ok, "{peer}");
    }
    assert_eq!(get(&client, "/x", "198.51.100.8:1").0, Status::Forbidden);
}

#[test]
fn set_errors_name_the_key() {
    let err = ignite_error(
        app("[default.allow]\nrules = [{ allow = \"10.0.0.1\" }, { allow = \"@ofice\" }]"),
        &["allow.rules[1]", "@ofice"],
    );
    assert!(err.contains("unknown set"), "{err}");
    ignite_error(
        app("[default.allow]\nrules = []\n[default.allow.sets]\na = [\"@b\"]\nb = [\"@a\"]"),
        &["cycle", "@a", "@b"],
    );
    ignite_error(
        app("[default.allow]\nrules = []\n[default.allow.sets]\nloopback = [\"10.0.0.1\"]"),
        &["allow.sets.loopback", "built in"],
    );
    ignite_error(
        app("[default.allow]\nrules = []\n[default.allow.sets]\nx = [\"10.0.0.1\", \"nope!\"]"),
        &["allow.sets.x[1]", "nope!"],
    );
    ignite_error(
        app("[default.allow]\nrules = []\ntrusted_proxies = [\"@proxies\"]"),
        &["allow.trusted_proxies[0]", "@proxies"],
    );
    ignite_error(
        app(
            "[default.allow]\nrules = []\n[default.allow.policies.p]\nrules = [{ deny = \"@zz\" }]",
        ),
        &["allow.policies.p.rules[0]", "@zz"],
    );
}

#[test]
fn policy_errors_name_the_key() {
    ignite_error(
        app(r#"
            [default.allow]
            rules = []
            [default.allow.policies.a]
            paths = ["/admin"]
            rules = []
            [default.allow.policies.b]
            paths = ["//%61dmin/"]
            rules = []
        "#),
        &["allow.policies.b.paths[0]", "also a path of policy `a`"],
    );
    ignite_error(
        app("[default.allow]\nrules = []\nreject_status = 500"),
        &["allow.reject_status", "4xx", "500"],
    );
    ignite_error(
        app("[default.allow]\nrules = []\n[default.allow.policies.a]\nrules = []\nreject_status = 302"),
        &["allow.policies.a.reject_status", "302"],
    );
    ignite_error(
        app("[default.allow]\nrules = []\n[default.allow.policies.a]\npaths = [\"admin\"]\nrules = []"),
        &["allow.policies.a.paths[0]", "start with `/`"],
    );
    ignite_error(
        app("[default.allow]\nrules = []\n[default.allow.policies.a]\nrules = []\nlevel = 3"),
        &["allow.policies", "level"],
    );
}

#[test]
fn longest_path_wins_and_paths_are_segment_wise() {
    let client = client(policy_app(CONFIG));
    let outsider = "192.0.2.1:1";
    // App-wide: refused. /healthz and /static: open. /admin: office only, refused with 404.
    assert_eq!(get(&client, "/", outsider).0, Status::Forbidden);
    assert_eq!(get(&client, "/healthz", outsider).0, Status::Ok);
    assert_eq!(get(&client, "/static/css/a.css", outsider).0, Status::Ok);
    assert_eq!(
        get(&client, "/admin", outsider),
        (Status::NotFound, "custom 404 page".into())
    );
    assert_eq!(get(&client, "/admin/users", outsider).0, Status::NotFound);
    // /admin/public is its own (open) policy: the longer path wins.
    assert_eq!(get(&client, "/admin/public/x", outsider).0, Status::Ok);
    // Segment-wise: /administrator and /healthzz are not under /admin or /healthz.
    assert_eq!(
        get(&client, "/administrator", outsider).0,
        Status::Forbidden
    );
    assert_eq!(get(&client, "/healthzz", outsider).0, Status::Forbidden);
    // The office gets into /admin; loopback does not (admin does not list it).
    assert_eq!(get(&client, "/admin/x", "203.0.113.5:1").0, Status::Ok);
    assert_eq!(get(&client, "/admin/x", "127.0.0.1:1").0, Status::NotFound);
}

const SPELLINGS: &[&str] = &[
    "/admin",
    "/admin/",
    "//admin",
    "/%61dmin",
    "/%61%64%6d%69%6e/x",
    "/admin//x",
    "/./admin",
    "///admin///x?y=1",
];

#[test]
fn path_spellings_cannot_escape_a_policy_local_client() {
    let client = client(policy_app(CONFIG));
    for path in SPELLINGS {
        for method in ROUTE_METHODS.into_iter().chain([Method::Head]) {
            let res = client
                .req(method, *path)
                .remote(addr("192.0.2.1:1"))
                .dispatch();
            let s = res.status();
            // "/./admin": a `.` segment, which path-scoped policies refuse with 400.
            if path.starts_with("/./") {
                assert_eq!(s, Status::BadRequest, "{method} {path}");
            } else {
                assert_eq!(s, Status::NotFound, "{method} {path}");
            }
        }
    }
    assert_eq!(hits(&client), 0);
}

#[test]
fn path_spellings_cannot_escape_a_policy_over_http() {
    // Over TCP the client is 127.0.0.1: admitted app-wide (@loopback), but not by `admin`.
    let server = serve(policy_app(CONFIG));
    assert_eq!(server.request("GET", "/", &[]).status, 200);
    let served = 1;
    for path in SPELLINGS {
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let res = server.request(method, path, &[]);
            if path.starts_with("/./") {
                // A `.` segment under path-scoped policies: refused with 400.
                assert_eq!(res.status, 400, "{method} {path}: {res:?}");
            } else {
                assert_eq!(res.status, 404, "{method} {path}: {res:?}");
                if method != "HEAD" {
                    assert_eq!(res.body, "custom 404 page", "{method} {path}");
                }
            }
        }
    }
    let rocket = server
        .stop()
        .expect("clean shutdown")
        .expect("no connection outstanding");
    // A route ran exactly for the answers that were 200: never for a refusal.
    let ran = rocket.state::<Hits>().unwrap().0.load(Ordering::SeqCst);
    assert_eq!(ran, served);
}

#[test]
fn refused_under_a_scoped_policy_runs_no_route() {
    let client = client(policy_app(CONFIG));
    for method in ROUTE_METHODS.into_iter().chain([Method::Head]) {
        for path in ["/admin", "/admin/anything", "/admin/guarded?x"] {
            let res = client
                .req(method, path)
                .remote(addr("192.0.2.1:1"))
                .dispatch();
            assert_eq!(res.status(), Status::NotFound, "{method} {path}");
        }
    }
    assert_eq!(hits(&client), 0);
}

#[test]
fn guards_admit_refuse_combine_and_fail_closed() {
    let client = client(policy_app(CONFIG));
    // /guarded is not under /admin: the app-wide rules let loopback in, the guard does not.
    assert_eq!(
        get(&client, "/guarded", "203.0.113.5:1"),
        (Status::Ok, "welcome".into())
    );
    assert_eq!(
        get(&client, "/guarded", "127.0.0.1:1"),
        (Status::NotFound, "custom 404 page".into())
    );
    assert_eq!(hits(&client), 1);
    // Option<Allowed<P>>: the route decides what a refusal means.
    assert_eq!(
        get(&client, "/either", "203.0.113.5:1"),
        (Status::Ok, "office".into())
    );
    assert_eq!(
        get(&client, "/either", "127.0.0.1:1").0,
        Status::Unauthorized
    );
    // A guard naming a policy that does not exist: 500 and an error naming it.
    assert_eq!(
        get(&client, "/missing", "203.0.113.5:1").0,
        Status::InternalServerError
    );
    assert!(!logged("`no-such-policy`").is_empty());
}

#[test]
fn client_ip_is_the_decided_address() {
    let client = client(policy_app(CONFIG));
    assert_eq!(get(&client, "/whoami", "127.0.0.1:1").1, "127.0.0.1");
    // X-Real-IP, which Request::client_ip() believes, changes nothing.
    let res = client
        .get("/whoami")
        .remote(addr("127.0.0.1:1"))
        .header(Header::new("X-Real-IP", "203.0.113.9"))
        .dispatch();
    assert_eq!(res.into_string().unwrap(), "127.0.0.1");
    // Behind a trusted proxy: the address it vouched for.
    let proxied = client_with(
        r#"
        [default.allow]
        trusted_proxies = ["10.0.0.0/8"]
        rules = [{ allow = "203.0.113.0/24" }, { deny = "all" }]
    "#,
    );
    let res = proxied
        .get("/whoami")
        .remote(addr("10.0.0.1:1"))
        .header(Header::new("X-Forwarded-For", "198.51.100.1, 203.0.113.9"))
        .dispatch();
    assert_eq!(res.into_string().unwrap(), "203.0.113.9");
}

fn client_with(toml: &str) -> rocket::local::blocking::Client {
    client(policy_app(toml))
}

#[test]
fn guards_without_the_fairing_fail_with_500() {
    let rocket = rocket::custom(figment("[default.allow]\nrules = []"))
        .manage(Hits::default())
        .mount("/", routes![guarded, whoami]);
    let client = client(rocket);
    assert_eq!(
        get(&client, "/guarded", "127.0.0.1:1").0,
        Status::InternalServerError
    );
    assert_eq!(
        get(&client, "/whoami", "127.0.0.1:1").0,
        Status::InternalServerError
    );
    assert_eq!(hits(&client), 0);
}

#[test]
fn app_wide_reject_status_and_catchers() {
    let c404 = client(policy_app(
        "[default.allow]\nrules = [{ deny = \"all\" }]\nreject_status = 404",
    ));
    assert_eq!(
        get(&c404, "/x", "127.0.0.1:1"),
        (Status::NotFound, "custom 404 page".into())
    );
    // Asking for the refusal route by name changes nothing.
    assert_eq!(
        get(&c404, "/__rocket_allow/refused", "127.0.0.1:1").0,
        Status::NotFound
    );
    assert_eq!(hits(&c404), 0);
    // A status without a catcher of the app's: Rocket's default catcher answers it.
    let c451 = client(policy_app(
        "[default.allow]\nrules = [{ deny = \"all\" }]\nreject_status = 451",
    ));
    assert_eq!(get(&c451, "/x", "127.0.0.1:1").0.code, 451);
    assert_eq!(hits(&c451), 0);
}

#[test]
fn log_lines_carry_the_policy_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    for format in ["text", "json"] {
        let _ = std::fs::remove_file(&log);
        let toml = CONFIG.replace(
            "[default.allow.sets]",
            &format!(
                "access_log = {{ path = \"{}\", format = \"{format}\" }}\n[default.allow.sets]",
                log.display()
            ),
        );
        let client = client(policy_app(&toml));
        get(&client, "/admin/x", "192.0.2.1:1");
        get(&client, "/admin/x", "198.51.100.7:1");
        get(&client, "/x", "192.0.2.1:1");
        get(&client, "/guarded", "127.0.0.1:1");
        drop(client);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        if format == "text" {
            assert!(
                lines[0].contains("192.0.2.1 denied (404) by policy admin rule #1 deny all"),
                "{}",
                lines[0]
            );
            assert!(
                lines[1].contains(
                    "198.51.100.7 allowed by policy admin rule #0 allow @office (198.51.100.7/32)"
                ),
                "{}",
                lines[1]
            );
            assert!(
                lines[2].contains("192.0.2.1 denied (403) by rule #2 deny all"),
                "{}",
                lines[2]
            );
            // The app-wide decision for /guarded, then the guard's own.
            assert!(
                lines[3].contains("127.0.0.1 allowed by rule #1 allow @loopback (127.0.0.0/8)"),
                "{}",
                lines[3]
            );
            assert!(
                lines[4].contains("127.0.0.1 denied (404) by policy admin rule #1"),
                "{}",
                lines[4]
            );
        } else {
            let v: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(
                (v[0]["policy"].as_str(), v[0]["status"].as_u64()),
                (Some("admin"), Some(404))
            );
            assert_eq!(v[1]["rule"]["written"], "@office");
            assert_eq!(v[1]["rule"]["normalized"], "198.51.100.7/32");
            assert!(v[1].get("status").is_none());
            assert!(v[2].get("policy").is_none());
            assert_eq!(v[2]["status"], 403);
        }
    }
}

#[test]
fn the_examples_configuration_does_what_its_comments_say() {
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies.toml"
    ))
    .unwrap();
    let client = client(policy_app(&toml));
    assert_eq!(get(&client, "/", "192.0.2.1:1").0, Status::Ok);
    assert_eq!(get(&client, "/admin", "192.0.2.1:1").0, Status::NotFound);
    assert_eq!(get(&client, "/admin", "127.0.0.1:1").0, Status::Ok);
    assert_eq!(get(&client, "/admin/x", "203.0.113.9:1").0, Status::Ok);
    assert_eq!(get(&client, "/healthz", "192.0.2.1:1").0, Status::Ok);
}

#[rocket::get("/<path..>", rank = 60)]
fn files(path: std::path::PathBuf, hits: &State<Hits>) -> String {
    hits.0.fetch_add(1, Ordering::SeqCst);
    format!("served {}", path.display())
}

/// `PathBuf` routes and FileServer climb `..`: a path that starts under an open policy must
/// not reach a closed one that way, nor with `.` segments, encoded or not.
#[test]
fn dot_segments_cannot_climb_out_of_a_policy() {
    let toml = r#"
        [default.allow]
        rules = [{ allow = "@office" }, { deny = "all" }]
        [default.allow.sets]
        office = ["127.0.0.1"]
        [default.allow.policies.public]
        paths = ["/healthz", "/files/static"]
        rules = []
        default = "allow"
    "#;
    let client = client(app(toml).mount("/", routes![files]));
    assert_eq!(
        get(&client, "/files/static/a.css", "192.0.2.1:1").0,
        Status::Ok
    );
    for path in [
        "/files/static/../private.txt",
        "/files/static/%2E%2E/admin/secret.txt",
        "/files/static/%2e%2e/x",
        "/healthz/../admin/x",
        "/healthz/./x",
        "/files/static/./../y",
    ] {
        let res = client.get(path).remote(addr("192.0.2.1:1")).dispatch();
        assert_eq!(res.status(), Status::BadRequest, "{path}");
    }
    assert_eq!(hits(&client), 1);
}

/// Rocket matches a route's own segments as written (`%20` stays `%20`) against the
/// request's decoded segments, so a policy path copied from a route must cover both.
#[test]
fn percent_encoded_route_paths_are_covered() {
    #[rocket::get("/secret%20area/<x>")]
    fn secret(x: &str) -> String {
        format!("RAN {x}")
    }
    let client = client(
        app(r#"
            [default.allow]
            rules = []
            [default.allow.policies.sa]
            paths = ["/secret%20area"]
            rules = [{ allow = "127.0.0.1" }, { deny = "all" }]
            reject_status = 404
        "#)
        .mount("/", routes![secret]),
    );
    assert_eq!(
        get(&client, "/secret%2520area/y", "127.0.0.1:1"),
        (Status::Ok, "RAN y".into())
    );
    assert_eq!(
        get(&client, "/secret%2520area/y", "192.0.2.1:1").0,
        Status::NotFound
    );
    assert_eq!(
        get(&client, "/secret%20area/y", "192.0.2.1:1").0,
        Status::NotFound
    );
}

#[test]
fn every_4xx_reject_status_is_sent_as_configured() {
    for code in [419, 420, 499] {
        let client = client(app(&format!(
            "[default.allow]\nrules = [{{ deny = \"all\" }}]\nreject_status = {code}"
        )));
        assert_eq!(get(&client, "/", "127.0.0.1:1").0.code, code);
    }
}

#[test]
fn sets_doubling_at_every_level_stay_cheap() {
    let mut toml = String::from(
        "[default.allow]\nrules = [{ allow = \"@s0\" }, { deny = \"all\" }]\n[default.allow.sets]\n",
    );
    for i in 0..40 {
        toml.push_str(&format!("s{i} = [\"@s{}\", \"@s{}\"]\n", i + 1, i + 1));
    }
    toml.push_str("s40 = [\"203.0.113.0/24\"]\n");
    let client = client(app(&toml));
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Ok);
    assert_eq!(status(&client, "198.51.100.9:1", &[]), Status::Forbidden);
}

#[test]
fn attaching_the_fairing_twice_is_an_error_not_a_panic() {
    let rocket = app("[default.allow]\nrules = []").attach(rocket_allow::AllowFairing::fairing());
    ignite_error(rocket, &["attached more than once"]);
}
