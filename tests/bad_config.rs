//! Every bad configuration fails ignite (FailedFairings) with a message naming the key,
//! the rule's index and the offending value.

mod common;

use common::*;

fn fails(toml: &str, needles: &[&str]) {
    let msg = ignite_error(app(toml), needles);
    eprintln!("{msg}");
}

#[test]
fn missing_allow_table() {
    fails(
        "[default]\nport = 8000",
        &["allow: missing", "[default.allow]"],
    );
}

#[test]
fn missing_rules_key() {
    fails(
        "[default.allow]\ndefault = \"deny\"",
        &["missing field `rules`", "allow"],
    );
}

#[test]
fn rule_with_both_allow_and_deny() {
    fails(
        r#"[default.allow]
        rules = [{ allow = "127.0.0.1" }, { allow = "10.0.0.1", deny = "10.0.0.2" }]"#,
        &[
            "rules[1]",
            "both `allow` and `deny`",
            "one rule per table",
            "allow.rules",
        ],
    );
}

#[test]
fn rule_with_neither() {
    fails("[default.allow]\nrules = [{}]", &["rules[0]: empty table"]);
}

#[test]
fn rule_with_unknown_key() {
    fails(
        r#"[default.allow]
        rules = [{ allow = "::1" }, { allow = "::2" }, { permit = "10.0.0.1" }]"#,
        &["rules[2]: unknown key `permit`"],
    );
}

#[test]
fn rule_value_not_an_address_network_or_name() {
    fails(
        r#"[default.allow]
        rules = [{ deny = "10.0.0.256" }]"#,
        &["rules[0]", "`10.0.0.256`", "neither an IP address"],
    );
    fails(
        r#"[default.allow]
        rules = [{ allow = "::1" }, { deny = "not a host!" }]"#,
        &["rules[1]", "`not a host!`"],
    );
}

#[test]
fn prefix_out_of_range() {
    fails(
        r#"[default.allow]
        rules = [{ deny = "10.0.0.0/33" }]"#,
        &["rules[0]", "`10.0.0.0/33`", "prefix out of range"],
    );
    fails(
        r#"[default.allow]
        rules = [{ allow = "::1" }, { deny = "2001:db8::/129" }]"#,
        &["rules[1]", "`2001:db8::/129`", "prefix out of range"],
    );
}

#[test]
fn default_not_allow_or_deny() {
    fails(
        "[default.allow]\ndefault = \"maybe\"\nrules = []",
        &["maybe", "allow.default", "`allow` or `deny`"],
    );
}

#[test]
fn max_bytes_negative_or_zero() {
    fails(
        "[default.allow]\nrules = []\naccess_log = { path = \"x.log\", max_bytes = -5 }",
        &["access_log.max_bytes", "positive", "-5"],
    );
    fails(
        "[default.allow]\nrules = []\naccess_log = { path = \"x.log\", max_bytes = 0 }",
        &["access_log.max_bytes", "positive", "found 0"],
    );
}

#[test]
fn unknown_log_format() {
    fails(
        "[default.allow]\nrules = []\naccess_log = { path = \"x.log\", format = \"xml\" }",
        &["xml", "format", "`text` or `json`"],
    );
}

#[test]
fn unknown_key_in_allow_table() {
    // A typo must not silently drop a setting (`defualt = "deny"` would otherwise allow all).
    fails(
        "[default.allow]\ndefualt = \"deny\"\nrules = []",
        &["defualt", "allow"],
    );
}

#[test]
fn access_log_that_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/access.log");
    let toml = format!(
        "[default.allow]\nrules = []\naccess_log = \"{}\"",
        path.display()
    );
    fails(
        &toml,
        &[
            "allow.access_log",
            &path.display().to_string(),
            "No such file or directory",
        ],
    );
}

#[test]
fn unresolvable_host_name() {
    // `.invalid` never resolves (RFC 6761), with or without a network.
    fails(
        "[default.allow]\nrules = [{ allow = \"::1\" }, { allow = \"nowhere.invalid\" }]",
        &["allow.rules[1]", "`nowhere.invalid`", "did not resolve"],
    );
}

#[test]
fn custom_config_is_validated_too() {
    let mut config = rocket_allow::AllowConfig::new(vec![]);
    config.access_log = Some(rocket_allow::AccessLogConfig {
        max_bytes: 0,
        ..rocket_allow::AccessLogConfig::new("x.log")
    });
    let rocket = rocket::custom(figment(""))
        .attach(rocket_allow::AllowFairing::custom(config))
        .manage(Hits::default());
    ignite_error(rocket, &["allow.access_log.max_bytes", "found 0"]);
}

#[test]
fn messages_list_what_was_expected_without_doubled_backticks() {
    let err = ignite_error(
        app("[default.allow]\nmode = \"shadow\"\nrules = []"),
        &["allow.mode", "`shadow`"],
    );
    assert!(err.contains("expected `enforce` or `report`"), "{err}");
    assert!(!err.contains("``"), "{err}");
    let err = ignite_error(
        app("[default.allow]\nrules = []\nbogus = 1"),
        &["allow.bogus"],
    );
    assert!(
        err.contains("unknown key `bogus`, expected `default`, `rules`"),
        "{err}"
    );
    assert!(!err.contains("``"), "{err}");
}
