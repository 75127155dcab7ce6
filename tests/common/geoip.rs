//! MaxMind DB files for the GeoIP tests: MaxMind's test databases, databases written on the
//! spot, and replacing a database by rename as `geoipupdate` does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A file of MaxMind's test databases (tests/data/geoip/).
pub fn data(file: &str) -> String {
    format!("{}/tests/data/geoip/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// A country database giving each network its code.
pub fn country_db(nets: &[(&str, &str)]) -> Vec<u8> {
    let mut w = mmdb_writer::Writer::new("GeoLite2-Country");
    for (net, code) in nets {
        let record: BTreeMap<&str, BTreeMap<&str, &str>> =
            [("country", [("iso_code", *code)].into())].into();
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    w.to_bytes().unwrap()
}

/// Writes `bytes` beside `path` and renames it over `path`, as a database updater does.
pub fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits (10 s at most) until `done`.
pub fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "not within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
