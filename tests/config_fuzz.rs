//! Whatever a configuration says, reading it never panics: every numeric key has a
//! documented range, and every bad value (out of range, negative, wrong type, unparsable
//! string) is an error that names its full key. Checked through the public interface, with
//! Rocket's figment as the fairing reads it and with figments built by hand.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;
use proptest::prelude::*;
use rocket::figment::providers::{Format, Serialized, Toml};
use rocket::figment::Figment;
use rocket::local::blocking::Client;
use rocket_allow::{AccessLogConfig, AllowConfig, AllowFairing, Rule, Target, Verdict};
use serde_json::{json, Value};

/// A numeric key (below `allow`), the TOML lines it needs beside it, and its documented range.
#[derive(Debug)]
struct NumKey {
    key: &'static str,
    context: &'static str,
    min: u64,
    max: u64,
}

/// The ranges docs/configuration.md and the field docs promise.
const NUM_KEYS: [NumKey; 5] = [
    NumKey {
        key: "access_log.max_bytes",
        context: "access_log.path = \"x.log\"",
        min: 1,
        max: 1_099_511_627_776,
    },
    NumKey {
        key: "access_log.backup_count",
        context: "access_log.path = \"x.log\"",
        min: 0,
        max: 100_000,
    },
    NumKey {
        key: "dns.timeout_secs",
        context: "",
        min: 1,
        max: 300,
    },
    // The other TTL is set so that any in-range value is valid on its own.
    NumKey {
        key: "dns.min_ttl_secs",
        context: "dns.max_ttl_secs = 604800",
        min: 1,
        max: 604_800,
    },
    NumKey {
        key: "dns.max_ttl_secs",
        context: "dns.min_ttl_secs = 1",
        min: 1,
        max: 604_800,
    },
];

/// The value `key` ended up with.
fn read(config: &AllowConfig, key: &str) -> u64 {
    let log = || config.access_log.as_ref().expect("access_log is set");
    match key {
        "access_log.max_bytes" => log().max_bytes,
        "access_log.backup_count" => log().backup_count as u64,
        "dns.timeout_secs" => config.dns.timeout_secs,
        "dns.min_ttl_secs" => config.dns.min_ttl_secs,
        "dns.max_ttl_secs" => config.dns.max_ttl_secs,
        other => unreachable!("{other}"),
    }
}

/// `[allow]` with no rules, `k`'s context, and `extra` lines.
fn toml_with(k: &NumKey, extra: &str) -> String {
    format!("[allow]\nrules = []\n{}\n{extra}\n", k.context)
}

fn load_toml(toml: &str) -> Result<AllowConfig, String> {
    AllowConfig::from_figment(&Figment::new().merge(Toml::string(toml))).map_err(|e| e.to_string())
}

/// `k`'s context from TOML, then `value` at `allow.<key>` from a serialized provider (which,
/// unlike TOML, can carry integers above i64::MAX).
fn load_serialized<T: serde::Serialize>(k: &NumKey, value: T) -> Result<AllowConfig, String> {
    let figment = Figment::new()
        .merge(Toml::string(&toml_with(k, "")))
        .merge(Serialized::default(&format!("allow.{}", k.key), value));
    AllowConfig::from_figment(&figment).map_err(|e| e.to_string())
}

/// In range: read back unchanged. Out of range: an error naming the key and the value.
fn check_number(
    k: &NumKey,
    n: i128,
    result: Result<AllowConfig, String>,
) -> Result<(), TestCaseError> {
    let in_range = n >= i128::from(k.min) && n <= i128::from(k.max);
    match result {
        Ok(config) => {
            prop_assert!(in_range, "allow.{} = {n} was accepted", k.key);
            prop_assert_eq!(i128::from(read(&config, k.key)), n);
        }
        Err(e) => {
            prop_assert!(!in_range, "allow.{} = {n} was refused: {e}", k.key);
            prop_assert!(e.starts_with(&format!("allow.{}: ", k.key)), "{e}");
            prop_assert!(e.contains(&format!("found {n}")), "{e}");
        }
    }
    Ok(())
}

/// Integers of every size, and the ones next to each bound.
fn integer(k: &NumKey) -> impl Strategy<Value = i128> {
    let (min, max) = (i128::from(k.min), i128::from(k.max));
    prop_oneof![
        any::<i64>().prop_map(i128::from),
        any::<u64>().prop_map(i128::from),
        (min - 3..=min + 3),
        (max - 3..=max + 3),
        Just(i128::from(i64::MAX)),
        Just(i128::from(u64::MAX)),
    ]
}

/// A DNS key and an integer TOML can hold. (i64::MAX itself is left to
/// `huge_ttls_fail_ignite_without_panicking`, which looks for its own log line.)
fn dns_key_in_toml() -> impl Strategy<Value = (&'static NumKey, i128)> {
    (2..NUM_KEYS.len()).prop_flat_map(|i| {
        let k = &NUM_KEYS[i];
        assert!(k.key.starts_with("dns."));
        let toml_range = i128::from(i64::MIN)..=i128::from(i64::MAX) - 1;
        integer(k).prop_map(move |n| (k, n.clamp(*toml_range.start(), *toml_range.end())))
    })
}

fn any_num_key() -> impl Strategy<Value = (&'static NumKey, i128)> {
    (0..NUM_KEYS.len()).prop_flat_map(|i| {
        let k = &NUM_KEYS[i];
        integer(k).prop_map(move |n| (k, n))
    })
}

/// A TOML basic string holding exactly `s`.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Any string, and strings close to addresses, networks, names and headers.
/// Whether a rule value is accepted with no `[allow.sets]`: it parses, and a `@set` is one
/// of the built-in ones.
fn accepted(s: &str) -> bool {
    match Target::parse(s) {
        Ok(Target::Set(name)) => rocket_allow::BUILTIN_SETS.iter().any(|(b, _)| *b == name),
        Ok(_) => true,
        Err(_) => false,
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F:./%\\[\\] ]{0,24}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?(:[0-9]{1,6})?",
        "[a-zA-Z0-9._-]{0,40}",
        "@[a-z_]{0,12}",
        "[ -~]{0,30}",
    ]
}

/// Ok when `expect_ok`, else an error starting with `key: `; Ok or not, the same for TOML
/// and for a serialized provider.
fn check_string_key(
    results: [Result<AllowConfig, String>; 2],
    key: &str,
    expect_ok: bool,
) -> Result<Vec<AllowConfig>, TestCaseError> {
    let mut ok = Vec::new();
    for result in results {
        match result {
            Ok(config) => {
                prop_assert!(expect_ok, "{key}: accepted");
                ok.push(config);
            }
            Err(e) => {
                prop_assert!(!expect_ok, "{key}: refused: {e}");
                prop_assert!(e.starts_with(&format!("{key}: ")), "{e}");
            }
        }
    }
    Ok(ok)
}

/// `allow.rules = []` plus `value` at `allow.<key>`, through TOML and through serde.
fn load_both(key: &str, toml_value: &str, value: Value) -> [Result<AllowConfig, String>; 2] {
    let rules = if key == "rules" { "" } else { "rules = []\n" };
    let toml = load_toml(&format!("[allow]\n{rules}{key} = {toml_value}\n"));
    let figment = Figment::new()
        .merge(Serialized::default("allow.rules", json!([])))
        .merge(Serialized::default(&format!("allow.{key}"), value));
    let serialized = AllowConfig::from_figment(&figment).map_err(|e| e.to_string());
    [toml, serialized]
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Any JSON-like value, shaped a little like the configuration's own tables.
fn any_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("allow".to_string()),
        Just("deny".to_string()),
        Just("path".to_string()),
        Just("max_bytes".to_string()),
        Just("backup_count".to_string()),
        Just("format".to_string()),
        Just("on_full".to_string()),
        Just("nameservers".to_string()),
        Just("timeout_secs".to_string()),
        Just("min_ttl_secs".to_string()),
        Just("max_ttl_secs".to_string()),
        Just("on_unresolved".to_string()),
        "[a-z_.]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
        Just(json!("allow")),
        Just(json!("deny")),
        Just(json!("127.0.0.1")),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Integers of any size for every numeric key, through TOML (i64) and a serialized
    /// provider (i64 and u64).
    #[test]
    fn numeric_keys_are_bounded((k, n) in any_num_key()) {
        if let Ok(small) = i64::try_from(n) {
            check_number(k, n, load_toml(&toml_with(k, &format!("{} = {small}", k.key))))?;
            check_number(k, n, load_serialized(k, small))?;
        } else if let Ok(big) = u64::try_from(n) {
            check_number(k, n, load_serialized(k, big))?;
        }
    }

    /// (a) Floats and strings are never numbers of seconds, bytes or files.
    #[test]
    fn numeric_keys_refuse_floats_and_strings(
        i in 0..NUM_KEYS.len(),
        f in any::<f64>(),
        s in text(),
    ) {
        let k = &NUM_KEYS[i];
        let full = format!("allow.{}: ", k.key);
        let mut results = vec![load_serialized(k, f), load_serialized(k, &s)];
        let as_string = format!("{} = {}", k.key, toml_str(&s));
        results.push(load_toml(&toml_with(k, &as_string)));
        if f.is_finite() {
            // `{:?}` always writes a `.` or an exponent, so TOML reads a float.
            results.push(load_toml(&toml_with(k, &format!("{} = {f:?}", k.key))));
        }
        for result in results {
            prop_assert!(result.as_ref().is_err_and(|e| e.starts_with(&full)), "{result:?}");
        }
    }

    /// (b) Any string as a rule value: accepted exactly when it parses, and kept as written.
    #[test]
    fn any_string_as_a_rule(s in text(), deny in any::<bool>()) {
        let verdict = if deny { "deny" } else { "allow" };
        let results = load_both(
            "rules",
            &format!("[{{ {verdict} = {} }}]", toml_str(&s)),
            json!([{ verdict: s }]),
        );
        for config in check_string_key(results, "allow.rules[0]", accepted(&s))? {
            prop_assert_eq!(&config.rules[0].written, &s);
            let expected = if deny { Verdict::Deny } else { Verdict::Allow };
            prop_assert_eq!(config.rules[0].verdict, expected);
        }
    }

    /// (b) Any string as a trusted proxy.
    #[test]
    fn any_string_as_a_trusted_proxy(s in text()) {
        let results = load_both("trusted_proxies", &format!("[{}]", toml_str(&s)), json!([s]));
        for config in check_string_key(results, "allow.trusted_proxies[0]", accepted(&s))? {
            prop_assert_eq!(Ok(config.trusted_proxies[0].clone()), Target::parse(&s));
        }
    }

    /// (b) Any string as the client address header.
    #[test]
    fn any_string_as_client_ip_header(s in text()) {
        let results = load_both("client_ip_header", &toml_str(&s), json!(s));
        for config in check_string_key(results, "allow.client_ip_header", is_header_name(&s))? {
            prop_assert_eq!(&config.client_ip_header, &s);
        }
    }

    /// (b) Any string as a name server.
    #[test]
    fn any_string_as_a_nameserver(s in text()) {
        // An address with port 0 is refused: no server listens there.
        let parses = s.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0)
            || s.parse::<IpAddr>().is_ok();
        let results = load_both(
            "dns",
            &format!("{{ nameservers = [{}] }}", toml_str(&s)),
            json!({ "nameservers": [s] }),
        );
        check_string_key(results, "allow.dns.nameservers[0]", parses)?;
    }

    /// (b) Any value of any shape at any top-level key: Ok, or an error under that key.
    #[test]
    fn any_value_anywhere(
        key in prop::sample::select(vec![
            "default", "rules", "access_log", "trusted_proxies", "client_ip_header",
            "missing_header", "dns", "reject_status", "sets", "policies", "bans",
        ]),
        value in any_value(),
    ) {
        let figment = Figment::new()
            .merge(Serialized::default("allow.rules", json!([])))
            .merge(Serialized::default(&format!("allow.{key}"), &value));
        if let Err(e) = AllowConfig::from_figment(&figment) {
            let e = e.to_string();
            prop_assert!(e.starts_with(&format!("allow.{key}")), "{value}: {e}");
        }
    }

    /// (c) The rule parser on any string: no panic, the error quotes the value, and what it
    /// accepts prints as a value that parses back to the same target.
    #[test]
    fn rule_parser_never_panics(s in text()) {
        match Rule::new(Verdict::Deny, &s) {
            Ok(rule) => {
                prop_assert_eq!(&rule.written, &s);
                let printed = rule.target.to_string();
                prop_assert_eq!(Target::parse(&printed), Ok(rule.target.clone()));
                prop_assert_eq!(Ok(rule.target), Target::parse(&s));
            }
            Err(e) => {
                prop_assert_eq!(Err(e.clone()), Target::parse(&s));
                if !s.trim().is_empty() {
                    prop_assert!(e.to_string().contains(&s), "{e}");
                }
            }
        }
    }
}

proptest! {
    // Each case ignites a Rocket: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The DNS keys all the way through ignite with a host-name rule (answered locally):
    /// either Rocket starts or ignite fails naming the key; never a panic.
    #[test]
    fn dns_keys_at_ignite((k, n) in dns_key_in_toml()) {
        let toml = format!(
            "[default.allow]\n\
             rules = [{{ allow = \"localhost\" }}]\n\
             dns.on_unresolved = \"warn\"\n\
             {}\n\
             {} = {n}\n",
            k.context, k.key,
        );
        let in_range = n >= i128::from(k.min) && n <= i128::from(k.max);
        if in_range {
            prop_assert!(Client::untracked(app(&toml)).is_ok(), "{toml}");
        } else {
            let key = format!("rocket-allow: allow.{}: ", k.key);
            ignite_error(app(&toml), &[&key, &format!("found {n} (in TOML source string)")]);
        }
    }
}

/// The issue's case: TTLs that overflow `Instant + Duration` fail ignite naming the key.
#[test]
fn huge_ttls_fail_ignite_without_panicking() {
    // Serde reads figment's (sorted) keys in order, so max_ttl_secs is the one reported. Log
    // lines are shared by the tests of this file: no other test ignites with this exact line.
    let line = ignite_error(
        app(r#"
        [default.allow]
        rules = [{ allow = "localhost" }]
        dns = { min_ttl_secs = 9223372036854775807, max_ttl_secs = 9223372036854775807, on_unresolved = "warn" }
        "#),
        &["rocket-allow: allow.dns.max_ttl_secs: must be at most 604800 seconds (7 days), found 9223372036854775807 (in TOML source string)"],
    );
    eprintln!("{line}");
}

/// The message for each bound, exactly.
#[test]
fn bound_messages() {
    let cases = [
        ("access_log = { path = \"x.log\", max_bytes = 0 }", "allow.access_log.max_bytes: must be a positive number of bytes, found 0"),
        ("access_log = { path = \"x.log\", max_bytes = -5 }", "allow.access_log.max_bytes: must be a positive number of bytes, found -5"),
        ("access_log = { path = \"x.log\", max_bytes = 1099511627777 }", "allow.access_log.max_bytes: must be at most 1099511627776 bytes (1 TiB), found 1099511627777"),
        ("access_log = { path = \"x.log\", backup_count = -1 }", "allow.access_log.backup_count: must not be negative, found -1"),
        ("access_log = { path = \"x.log\", backup_count = 100001 }", "allow.access_log.backup_count: must be at most 100000 files, found 100001"),
        ("dns.timeout_secs = 0", "allow.dns.timeout_secs: must be at least 1 second, found 0"),
        ("dns.timeout_secs = -1", "allow.dns.timeout_secs: must be at least 1 second, found -1"),
        ("dns.timeout_secs = 301", "allow.dns.timeout_secs: must be at most 300 seconds (5 minutes), found 301"),
        ("dns.min_ttl_secs = -1", "allow.dns.min_ttl_secs: must be at least 1 second, found -1"),
        ("dns.min_ttl_secs = 0", "allow.dns.min_ttl_secs: must be at least 1 second, found 0"),
        ("dns.min_ttl_secs = 604801", "allow.dns.min_ttl_secs: must be at most 604800 seconds (7 days), found 604801"),
        ("dns.max_ttl_secs = 0", "allow.dns.max_ttl_secs: must be at least 1 second, found 0"),
        ("dns.max_ttl_secs = 9223372036854775807", "allow.dns.max_ttl_secs: must be at most 604800 seconds (7 days), found 9223372036854775807"),
        ("dns = { min_ttl_secs = 10, max_ttl_secs = 5 }", "allow.dns.min_ttl_secs: 10 is more than max_ttl_secs (5)"),
        ("dns.timeout_secs = \"x\"", "allow.dns.timeout_secs: invalid type: found string \"x\", expected a whole number of seconds from 1 to 300"),
        ("dns.max_ttl_secs = 1e30", "allow.dns.max_ttl_secs: invalid type: found float `1000000000000000000000000000000`, expected a whole number of seconds from 1 to 604800 (7 days)"),
        ("access_log = { path = \"x.log\", backup_count = 1.5 }", "allow.access_log.backup_count: invalid type: found float `1.5`, expected a whole number of files from 0 to 100000"),
        ("dns.nameservers = [\"::1\", 53]", "allow.dns.nameservers[1]: found integer 53; expected a string \"address:port\" or \"address\""),
    ];
    for (line, expected) in cases {
        let e = load_toml(&format!("[allow]\nrules = []\n{line}")).unwrap_err();
        assert!(
            e.starts_with(expected),
            "{line}\n  got:      {e}\n  expected: {expected}"
        );
    }
}

/// A TOML document that does not parse is reported as such, not as a missing table.
#[test]
fn unparsable_toml_is_not_a_missing_table() {
    // TOML integers are i64: this one does not parse.
    let e = load_toml("[allow]\nrules = []\ndns.max_ttl_secs = 18446744073709551615").unwrap_err();
    assert!(e.starts_with("allow: "), "{e}");
    assert!(!e.contains("missing"), "{e}");
    eprintln!("{e}");
}

/// Configurations built in code go through the same bounds: this fails if validation is
/// skipped, both in `validate()` and at ignite.
#[test]
fn code_built_configs_are_bounded() {
    let localhost = || AllowConfig {
        dns: rocket_allow::DnsConfig {
            on_unresolved: rocket_allow::OnUnresolved::Warn,
            ..Default::default()
        },
        ..AllowConfig::new(vec![Rule::allow("localhost").unwrap()])
    };
    assert!(localhost().validate().is_ok());

    type Edit = fn(&mut AllowConfig, u64);
    let edits: [(&str, u64, Edit); 5] = [
        ("access_log.max_bytes", 1_099_511_627_777, |c, n| {
            c.access_log = Some(AccessLogConfig {
                max_bytes: n,
                ..AccessLogConfig::new("x.log")
            })
        }),
        ("access_log.backup_count", 100_001, |c, n| {
            c.access_log = Some(AccessLogConfig {
                backup_count: n as usize,
                ..AccessLogConfig::new("x.log")
            })
        }),
        ("dns.timeout_secs", u64::MAX, |c, n| c.dns.timeout_secs = n),
        ("dns.min_ttl_secs", u64::MAX, |c, n| {
            c.dns.min_ttl_secs = n;
            c.dns.max_ttl_secs = n;
        }),
        ("dns.max_ttl_secs", u64::MAX, |c, n| c.dns.max_ttl_secs = n),
    ];
    for (key, n, edit) in edits {
        let mut config = localhost();
        edit(&mut config, n);
        let e = config.validate().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("allow.{key}: must be at most "))
                && e.ends_with(&format!("found {n}")),
            "{e}"
        );
    }

    // At ignite: TTLs that overflow `Instant + Duration`, built in code. (A value TOML cannot
    // hold, so that no other test of this file logs the same line.)
    let mut config = localhost();
    config.dns.min_ttl_secs = u64::MAX;
    config.dns.max_ttl_secs = u64::MAX;
    let rocket = rocket::custom(figment(""))
        .attach(AllowFairing::custom(config))
        .manage(Hits::default());
    let line = ignite_error(rocket, &["found 18446744073709551615"]);
    assert_eq!(
        line,
        "rocket-allow: allow.dns.min_ttl_secs: must be at most 604800 seconds (7 days), found 18446744073709551615"
    );
}

/// Every bound itself is accepted, by `validate()` as by `from_figment`.
#[test]
fn bounds_are_inclusive() {
    for k in &NUM_KEYS {
        for n in [k.min, k.max] {
            let c = load_toml(&toml_with(k, &format!("{} = {n}", k.key))).unwrap();
            assert_eq!(read(&c, k.key), n);
            assert!(c.validate().is_ok());
        }
    }
}
