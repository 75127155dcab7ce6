//! An attacker's (or a bad day's) MaxMind DB files against a launched app: databases that
//! are valid in every byte a reader checks but whose search tree shares nodes so that a
//! walk over it never ends, databases covering everything, and IPv4 clients in IPv6 forms.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::geoip::{country_db, replace, wait_for};
use common::http::{send_from, serve};
use common::*;
use rocket::routes;
use rocket_allow::AllowFairing;

/// Sets both records of search tree node `node` in a MaxMind DB's bytes.
fn set_node(db: &mut [u8], record_size: u16, node: usize, left: u32, right: u32) {
    match record_size {
        24 => {
            let at = node * 6;
            db[at..at + 3].copy_from_slice(&left.to_be_bytes()[1..]);
            db[at + 3..at + 6].copy_from_slice(&right.to_be_bytes()[1..]);
        }
        28 => {
            let at = node * 7;
            db[at..at + 3].copy_from_slice(&left.to_be_bytes()[1..]);
            db[at + 3] = (((left >> 24) & 0x0f) << 4) as u8 | ((right >> 24) & 0x0f) as u8;
            db[at + 4..at + 7].copy_from_slice(&right.to_be_bytes()[1..]);
        }
        32 => {
            let at = node * 8;
            db[at..at + 4].copy_from_slice(&left.to_be_bytes());
            db[at + 4..at + 8].copy_from_slice(&right.to_be_bytes());
        }
        other => panic!("record size {other}"),
    }
}

/// A country database whose search tree is a chain of 100 nodes, each pointing to the next
/// with both records, ending in "no data": every byte is in range (no cycle, no pointer
/// past the end, the metadata true), but a walk over every network meets 2^100 paths.
fn endless_walk_db() -> Vec<u8> {
    // An IPv6 /128 gives the tree more than 100 nodes to rewrite.
    let mut db = country_db(&[("2001:db8::1/128", "RU"), ("203.0.113.0/24", "RU")]);
    let reader = maxminddb::Reader::from_source(db.clone()).unwrap();
    let (nodes, record_size) = (reader.metadata().node_count, reader.metadata().record_size);
    assert!(nodes > 100, "{nodes} nodes");
    for node in 0..99 {
        set_node(&mut db, record_size, node, node as u32 + 1, node as u32 + 1);
    }
    set_node(&mut db, record_size, 99, nodes, nodes);
    // maxminddb opens it and looks addresses up in it as in any other.
    let reader = maxminddb::Reader::from_source(db.clone()).unwrap();
    assert!(!reader
        .lookup("2001:db8::1".parse().unwrap())
        .unwrap()
        .has_data());
    db
}

/// Runs `f` on a thread and waits for it (60 s at most: a hang fails the test).
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: still running after 60 s"))
}

/// `[default.allow]` with a trusted proxy at 127.0.0.2 (so any client can be played),
/// country rules and the country database at `db`.
fn geo_app(db: &Path) -> rocket::Rocket<rocket::Build> {
    rocket::custom(figment(&format!(
        r#"
        [default.allow]
        trusted_proxies = ["127.0.0.2"]
        rules = [{{ deny = "country:RU" }}, {{ allow = "all" }}]
        [default.allow.geoip]
        country_db = "{}"
        "#,
        db.display()
    )))
    .attach(AllowFairing::fairing())
    .mount("/", routes![index_route])
}

/// The status of `GET /` for `client` through the trusted proxy 127.0.0.2.
fn via(port: u16, client: &str) -> Option<u16> {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
    );
    send_from(port, "127.0.0.2", req.as_bytes()).map(|r| r.status)
}

/// The lines saying `db`'s last good networks were kept: this test's own (the tests of this
/// file run at once, and log to one capture).
fn kept(db: &Path) -> Vec<String> {
    let db = db.display().to_string();
    logged("; keeping the networks last read")
        .into_iter()
        .filter(|l| l.contains(&db))
        .collect()
}

#[test]
fn a_database_whose_walk_never_ends_fails_ignite_instead_of_hanging_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("country.mmdb");
    std::fs::write(&db, endless_walk_db()).unwrap();
    let app = geo_app(&db);
    let line = within_a_minute("ignite", move || {
        ignite_error(app, &["allow.geoip.country_db", "country.mmdb"])
    });
    assert!(line.contains("corrupt"), "{line}");
}

#[test]
fn a_database_whose_walk_never_ends_keeps_the_last_good_and_leaves_reloads_working() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("country.mmdb");
    let good = country_db(&[("203.0.113.0/24", "RU")]);
    std::fs::write(&db, &good).unwrap();
    let server = serve(geo_app(&db));
    let port = server.port;
    assert_eq!(via(port, "203.0.113.7"), Some(403));
    assert_eq!(via(port, "198.51.100.7"), Some(200));

    let before = kept(&db).len();
    replace(&db, &endless_walk_db());
    wait_for_long(|| kept(&db).len() > before);
    let line = kept(&db).pop().unwrap();
    assert!(
        line.starts_with("allow.geoip.country_db: ") && line.contains("corrupt"),
        "{line}"
    );
    assert_eq!(via(port, "203.0.113.7"), Some(403));
    assert_eq!(via(port, "198.51.100.7"), Some(200));
    // The watcher is not stuck: a good file is read again.
    replace(&db, &country_db(&[("198.51.100.0/24", "RU")]));
    wait_for(|| via(port, "198.51.100.7") == Some(403));
    assert_eq!(via(port, "203.0.113.7"), Some(200));
    server.stop().unwrap();
}

/// Waits (60 s at most) until `done`.
fn wait_for_long(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "not within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[rocket::get("/")]
fn index_route() -> &'static str {
    "hello"
}

/// Whatever maxminddb's own lookup says of `ip` in `db`: its country code.
fn looked_up(db: &[u8], ip: &str) -> Option<String> {
    let reader = maxminddb::Reader::from_source(db.to_vec()).unwrap();
    let r = reader.lookup(ip.parse().unwrap()).unwrap();
    r.decode_path(&maxminddb::path!["country", "iso_code"])
        .unwrap()
}

#[test]
fn networks_wider_than_the_ipv4_space_cover_ipv4_clients_as_the_reader_says() {
    for (net, inside_v4, outside) in [
        ("::/0", "203.0.113.7", None),
        ("::/8", "198.51.100.1", Some("100::1")),
        ("::/95", "192.0.2.200", Some("::2:0:0")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("country.mmdb");
        let bytes = country_db(&[(net, "RU")]);
        std::fs::write(&db, &bytes).unwrap();
        // The reader says an IPv4 client is in RU: so must the rules.
        assert_eq!(looked_up(&bytes, inside_v4).as_deref(), Some("RU"), "{net}");
        let server = serve(geo_app(&db));
        assert_eq!(via(server.port, inside_v4), Some(403), "{net}: {inside_v4}");
        assert_eq!(
            via(server.port, &format!("::ffff:{inside_v4}")),
            Some(403),
            "{net}: mapped {inside_v4}"
        );
        if let Some(outside) = outside {
            assert_eq!(looked_up(&bytes, outside), None, "{net}");
            assert_eq!(via(server.port, outside), Some(200), "{net}: {outside}");
        } else {
            assert_eq!(via(server.port, "2001:db8::1"), Some(403), "{net}");
        }
        server.stop().unwrap();
    }
}

#[test]
fn a_database_deleted_emptied_or_swapped_by_symlink_keeps_the_last_good_until_a_good_one_comes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("country.mmdb");
    let (a, b) = (dir.path().join("a.mmdb"), dir.path().join("b.mmdb"));
    std::fs::write(&a, country_db(&[("203.0.113.0/24", "RU")])).unwrap();
    std::fs::write(&b, country_db(&[("198.51.100.0/24", "RU")])).unwrap();
    std::os::unix::fs::symlink(&a, &db).unwrap();
    let server = serve(geo_app(&db));
    let port = server.port;
    let ru_is = |first: u16, second: u16| {
        via(port, "203.0.113.7") == Some(first) && via(port, "198.51.100.7") == Some(second)
    };
    assert!(ru_is(403, 200));

    // The link swapped to another file, as a deployment does (a new link renamed over it).
    let link = dir.path().join("link.new");
    std::os::unix::fs::symlink(&b, &link).unwrap();
    std::fs::rename(&link, &db).unwrap();
    wait_for(|| ru_is(200, 403));

    // Deleted: the networks stay, and the log says the file is gone.
    let before = kept(&db).len();
    std::fs::remove_file(&db).unwrap();
    wait_for(|| kept(&db).len() > before);
    assert!(kept(&db).pop().unwrap().contains("is gone"));
    assert!(ru_is(200, 403));

    // Back as an empty file, then as a link to a directory: still the last good networks.
    for (make, reason) in [
        (
            Box::new(|p: &Path| std::fs::write(p, b"").unwrap()) as Box<dyn Fn(&Path)>,
            "not a readable MaxMind DB file",
        ),
        (
            Box::new(|p: &Path| {
                let _ = std::fs::remove_file(p);
                std::os::unix::fs::symlink(p.parent().unwrap(), p).unwrap()
            }),
            "not a regular file",
        ),
    ] {
        let before = kept(&db).len();
        make(&db);
        wait_for(|| kept(&db).len() > before);
        let line = kept(&db).pop().unwrap();
        assert!(line.contains(reason), "{line}");
        assert!(ru_is(200, 403));
    }

    // A good file again, written in place this time.
    std::fs::remove_file(&db).unwrap();
    std::fs::copy(&a, &db).unwrap();
    wait_for(|| ru_is(403, 200));
    server.stop().unwrap();
}

/// The test databases' aliases: MaxMind's readers walk `2002::/16` (6to4), `2001::/32`
/// (Teredo, the address right after the prefix) and `::/96` (IPv4-compatible) into the IPv4
/// space, so `country:`/`asn:` rules must match those clients as the reader places them.
#[test]
fn six_to_four_teredo_and_ipv4_compatible_clients_match_as_the_reader_places_them() {
    let country = common::geoip::data("GeoLite2-Country-Test.mmdb");
    let asn = common::geoip::data("GeoLite2-ASN-Test.mmdb");
    let gb = ["2002:5102:458e::1", "2001:0:5102:458e::1", "::81.2.69.142"];
    let google = ["2002:100:1::1", "2001:0:100:1::1", "::1.0.0.1"];
    // What maxminddb says of each: GB and AS15169.
    let bytes = std::fs::read(&country).unwrap();
    for ip in gb {
        assert_eq!(looked_up(&bytes, ip).as_deref(), Some("GB"), "{ip}");
    }
    let reader = maxminddb::Reader::open_readfile(&asn).unwrap();
    for ip in google {
        let r = reader.lookup(ip.parse().unwrap()).unwrap();
        let n: Option<u32> = r
            .decode_path(&maxminddb::path!["autonomous_system_number"])
            .unwrap();
        assert_eq!(n, Some(15169), "{ip}");
    }
    // Addresses the reader places nowhere stay unmatched.
    let nowhere = ["2002:c000:201::1", "2001:0:c000:201::1", "::192.0.2.1"];
    for ip in nowhere {
        assert_eq!(looked_up(&bytes, ip), None, "{ip}");
    }
    for (rules, matched, unmatched) in [
        (
            r#"[{ deny = "country:GB" }, { deny = "asn:15169" }, { allow = "all" }]"#,
            403,
            200,
        ),
        (
            r#"[{ allow = "country:GB" }, { allow = "asn:15169" }, { deny = "all" }]"#,
            200,
            403,
        ),
    ] {
        let app = rocket::custom(figment(&format!(
            r#"
            [default.allow]
            trusted_proxies = ["127.0.0.2"]
            rules = {rules}
            [default.allow.geoip]
            country_db = "{country}"
            asn_db = "{asn}"
            "#
        )))
        .attach(AllowFairing::fairing())
        .mount("/", routes![index_route]);
        let server = serve(app);
        for ip in gb.iter().chain(&google) {
            assert_eq!(via(server.port, ip), Some(matched), "{rules}: {ip}");
        }
        for ip in nowhere {
            assert_eq!(via(server.port, ip), Some(unmatched), "{rules}: {ip}");
        }
        // explain (and the log) name the network as the reader walks it.
        let e = server
            .allow
            .as_ref()
            .unwrap()
            .explain(gb[0].parse().unwrap(), "/");
        assert_eq!(e.network.as_deref(), Some("2002:5102:458e::/47"), "{e:?}");
        server.stop().unwrap();
    }
}
