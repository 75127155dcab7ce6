//! `country:` and `asn:` rules from MaxMind DB files (MaxMind's test databases in
//! tests/data/geoip/), compiled into the first-match table at load; the databases
//! reloaded by rename while requests flow, and bad files keeping the last good networks.

mod common;

use std::path::Path;

use common::geoip::{country_db, data, replace, wait_for};
use common::http::serve;
use common::*;
use rocket::http::Status;
use rocket::routes;
use rocket_allow::AllowFairing;

/// The issue's example, on the test databases: in them 2a02:d0c0::/29 is RU, 1.0.0.0/24 is
/// AS15169, 81.2.69.142/31 is GB and 2a02:d180::/29 is DE; 192.0.2.0/24 is in neither.
fn config(log: &Path) -> String {
    format!(
        r#"
        [default.allow]
        access_log = "{}"
        rules = [{{ allow = "@office" }}, {{ deny = "country:RU" }}, {{ deny = "asn:15169" }},
                 {{ allow = "country:gb" }}, {{ allow = "country:DE" }}, {{ deny = "all" }}]
        [default.allow.sets]
        office = ["89.160.20.130"]
        {}"#,
        log.display(),
        geoip_table()
    )
}

/// `[default.allow.geoip]` with both test databases.
fn geoip_table() -> String {
    format!(
        "[default.allow.geoip]\ncountry_db = \"{}\"\nasn_db = \"{}\"\n",
        data("GeoLite2-Country-Test.mmdb"),
        data("GeoLite2-ASN-Test.mmdb")
    )
}

#[test]
fn countries_and_networks_decide_and_the_log_names_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let c = client(app(&config(&log)));
    let get = |peer: &str| status(&c, peer, &[]);
    assert_eq!(get("[2a02:d0c0::1]:1"), Status::Forbidden);
    log_line(
        &log,
        &["2a02:d0c0::1 denied (403) by rule #1 deny country:RU (2a02:d0c0::/29)"],
    );
    assert_eq!(get("1.0.0.7:1"), Status::Forbidden);
    log_line(
        &log,
        &["1.0.0.7 denied (403) by rule #2 deny asn:15169 (1.0.0.0/24)"],
    );
    assert_eq!(get("81.2.69.142:1"), Status::Ok);
    log_line(
        &log,
        &["81.2.69.142 allowed by rule #3 allow country:gb (81.2.69.142/31)"],
    );
    // IPv4-mapped clients are looked up as IPv4.
    assert_eq!(get("[::ffff:81.2.69.143]:1"), Status::Ok);
    log_line(&log, &["81.2.69.143 allowed by rule #3 allow country:gb"]);
    assert_eq!(get("[2a02:d180::9]:1"), Status::Ok);
    // The office (SE) is let in before any country rule; the rest of SE is not.
    assert_eq!(get("89.160.20.130:1"), Status::Ok);
    assert_eq!(get("89.160.20.131:1"), Status::Forbidden);
    // An address neither database knows matches no country: or asn: rule.
    assert_eq!(get("192.0.2.1:1"), Status::Forbidden);
    log_line(&log, &["192.0.2.1 denied (403) by rule #5 deny all"]);
    // explain gives the same answer without a request.
    let handle = c.rocket().state::<rocket_allow::AllowHandle>().unwrap();
    let e = handle.explain("2a02:d0c0::5".parse().unwrap(), "/");
    assert_eq!(e.rule, Some((1, "country:RU".to_string())), "{e:?}");
    assert_eq!(e.network.as_deref(), Some("2a02:d0c0::/29"));
}

#[test]
fn values_in_sets_and_list_files_are_read_too_and_reloaded_ones_load_new_values() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("blocked.txt");
    std::fs::write(&list, "country:RU\n").unwrap();
    let c = client(app(&format!(
        r#"
        [default.allow]
        rules = [{{ deny = "@blocked" }}, {{ deny = "@isp" }}]
        [default.allow.sets]
        blocked = {{ file = "{}" }}
        isp = ["asn:1221"]
        {}"#,
        list.display(),
        geoip_table()
    )));
    assert_eq!(status(&c, "[2a02:d0c0::1]:1", &[]), Status::Forbidden);
    assert_eq!(status(&c, "1.128.0.1:1", &[]), Status::Forbidden);
    assert_eq!(status(&c, "81.2.69.142:1", &[]), Status::Ok);
    // A value not read at ignite, added by a list file: read from the database then.
    std::fs::write(&list, "country:GB\n").unwrap();
    wait_for(|| status(&c, "81.2.69.142:1", &[]) == Status::Forbidden);
    assert_eq!(status(&c, "[2a02:d0c0::1]:1", &[]), Status::Ok);
}

#[test]
fn values_that_cannot_be_used_fail_ignite_naming_the_key() {
    let country = data("GeoLite2-Country-Test.mmdb");
    let asn = data("GeoLite2-ASN-Test.mmdb");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            r#"rules = [{ deny = "127.0.0.9" }, { deny = "country:RU" }]"#.into(),
            vec!["allow.rules[1]", "country:RU", "allow.geoip.country_db"],
        ),
        (
            r#"rules = [{ deny = "asn:15169" }]"#.into(),
            vec!["allow.rules[0]", "allow.geoip.asn_db"],
        ),
        (
            r#"rules = [{ deny = "country:ZZ" }]"#.into(),
            vec!["allow.rules[0]", "country:ZZ", "ISO 3166-1"],
        ),
        (
            r#"rules = [{ deny = "asn:4294967296" }]"#.into(),
            vec!["allow.rules[0]", "asn:4294967296", "0 to 4294967295"],
        ),
        (
            r#"rules = [{ deny = "asn:-1" }]"#.into(),
            vec!["allow.rules[0]", "asn:-1"],
        ),
        (
            "rules = []\ntrusted_proxies = [\"country:DE\"]".into(),
            vec!["allow.trusted_proxies[0]", "allow.geoip.country_db"],
        ),
        (
            format!("rules = [{{ deny = \"country:RU\" }}]\ngeoip.country_db = \"{asn}\""),
            vec!["allow.geoip.country_db", "not a country database"],
        ),
        (
            format!("rules = [{{ deny = \"asn:1\" }}]\ngeoip.asn_db = \"{country}\""),
            vec!["allow.geoip.asn_db", "not an ASN database"],
        ),
        (
            "rules = [{ deny = \"country:RU\" }]\ngeoip.country_db = \"/nonexistent/x.mmdb\"".into(),
            vec!["allow.geoip.country_db", "/nonexistent/x.mmdb"],
        ),
        (
            format!("rules = []\ngeoip.country_db = \"{country}\"\nsets.x = [\"@y\", \"country:xx\"]\nsets.y = []"),
            vec!["allow.sets.x[1]", "country:xx"],
        ),
    ];
    for (toml, needles) in cases {
        ignite_error(
            rocket::custom(figment(&format!("[default.allow]\n{toml}")))
                .attach(AllowFairing::fairing()),
            &needles,
        );
    }
}

#[test]
fn a_database_replaced_by_rename_is_swapped_in_under_load_and_bad_files_keep_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("country.mmdb");
    let first = country_db(&[("198.51.100.0/24", "DE"), ("203.0.113.0/24", "RU")]);
    std::fs::write(&db, &first).unwrap();
    // Clients come through a trusted proxy (127.0.0.2), so any address can be tested.
    let server = serve(
        rocket::custom(figment(&format!(
            r#"
            [default.allow]
            trusted_proxies = ["127.0.0.2"]
            rules = [{{ deny = "country:RU" }}, {{ allow = "country:DE" }}, {{ deny = "all" }}]
            [default.allow.geoip]
            country_db = "{}"
            "#,
            db.display()
        )))
        .attach(AllowFairing::fairing())
        .mount("/", routes![index_route]),
    );
    let port = server.port;
    let get = move |client: &str| {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
        );
        common::http::send_from(port, "127.0.0.2", req.as_bytes()).map(|r| r.status)
    };
    assert_eq!(get("198.51.100.7"), Some(200));
    assert_eq!(get("203.0.113.7"), Some(403));

    // Load: requests for the moving network all along; each is answered 200 or 403.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    seen.push(get("198.51.100.7"));
                }
                seen
            })
        })
        .collect();

    // 198.51.100.0/24 moves to RU.
    replace(
        &db,
        &country_db(&[("198.51.100.0/24", "RU"), ("203.0.113.0/24", "RU")]),
    );
    wait_for(|| get("198.51.100.7") == Some(403));

    // Bad files: each is refused with a reason, and the last good networks stay.
    let asn = std::fs::read(data("GeoLite2-ASN-Test.mmdb")).unwrap();
    for (bytes, reason) in [
        (
            b"not a database at all".to_vec(),
            "not a readable MaxMind DB file",
        ),
        (first[..first.len() / 2].to_vec(), "country.mmdb"),
        (asn, "not a country database"),
    ] {
        const KEPT: &str = "; keeping the networks last read";
        let before = logged(KEPT).len();
        replace(&db, &bytes);
        wait_for(|| logged(KEPT).len() > before);
        let line = logged(KEPT).pop().unwrap();
        assert!(
            line.starts_with("allow.geoip.country_db: ") && line.contains(reason),
            "{line}"
        );
        assert_eq!(get("198.51.100.7"), Some(403));
        assert_eq!(get("203.0.113.7"), Some(403));
    }
    // A good file again.
    replace(&db, &first);
    wait_for(|| get("198.51.100.7") == Some(200));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen: Vec<Option<u16>> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| matches!(s, Some(200) | Some(403))),
        "{:?}",
        seen.iter()
            .filter(|s| !matches!(s, Some(200) | Some(403)))
            .collect::<Vec<_>>()
    );
    server.stop().unwrap();
}

#[rocket::get("/")]
fn index_route() -> &'static str {
    "hello"
}
