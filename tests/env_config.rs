//! `ROCKET_CONFIG=path` and `ROCKET_ALLOW=...` configure the fairing like any Rocket setting.
//! One test in its own binary: it changes the process environment.

mod common;

use common::*;
use rocket::http::Status;

#[test]
fn rocket_config_file_and_rocket_allow_override() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Custom.toml");
    std::fs::write(
        &path,
        "[default.allow]\ndefault = \"deny\"\nrules = [{ allow = \"192.0.2.0/24\" }]\n",
    )
    .unwrap();
    std::env::set_var("ROCKET_CONFIG", &path);

    let from_file = client(rocket::build().attach(rocket_allow::AllowFairing::fairing()));
    assert_eq!(status(&from_file, "192.0.2.1:1", &[]), Status::NotFound);
    assert_eq!(status(&from_file, "198.51.100.1:1", &[]), Status::Forbidden);
    drop(from_file);

    // The environment overrides the file, as for every Rocket key.
    std::env::set_var(
        "ROCKET_ALLOW",
        r#"{default="deny",rules=[{allow="198.51.100.0/24"}]}"#,
    );
    let from_env = client(rocket::build().attach(rocket_allow::AllowFairing::fairing()));
    assert_eq!(status(&from_env, "198.51.100.1:1", &[]), Status::NotFound);
    assert_eq!(status(&from_env, "192.0.2.1:1", &[]), Status::Forbidden);
}
