//! `access_log.formatter`, `datefmt` and `utc`: Python logging's %-style line layout, checked
//! against Python's own `logging` (run with `python3 -c`), through launched apps.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http::serve;
use common::*;

/// Flask-Allow 2.0.1's default `formatter`.
const FLASK_ALLOW: &str = "%(asctime)s - %(levelname)7s - %(message)s";

fn config(log: &Path, extra: &str) -> String {
    format!(
        r#"
        [default.allow]
        rules = [{{ allow = "127.0.0.1" }}, {{ allow = "127.0.0.2" }}, {{ deny = "127.0.0.0/8" }}]
        [default.allow.access_log]
        path = "{}"
        {extra}
        "#,
        log.display()
    )
}

/// A TOML basic string.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Waits until the log has `n` lines (the writer is asynchronous) and returns them.
fn lines(log: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n && text.ends_with('\n') {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} lines in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What Python's `logging.Formatter(fmt, datefmt)` writes for records with these
/// `created` (as `%(created)s` printed it), level name, message and process id.
fn python(
    fmt: &str,
    datefmt: Option<&str>,
    utc: bool,
    tz: Option<&str>,
    records: &[(String, String, String, u32)],
) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, logging, sys, time
fmt, datefmt, utc, records = json.loads(sys.argv[1])
f = logging.Formatter(fmt, datefmt)
f.converter = time.gmtime if utc else time.localtime
for created, level, msg, pid in records:
    r = logging.LogRecord("rocket_allow", getattr(logging, level), "", 0, msg, None, None)
    r.created = float(created)
    r.msecs = int((r.created - int(r.created)) * 1000) + 0.0
    r.process = pid
    sys.stdout.write(f.format(r) + "\n")
"#;
    let arg = serde_json::json!([fmt, datefmt, utc, records]).to_string();
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", SCRIPT, &arg]);
    if let Some(tz) = tz {
        cmd.env("TZ", tz);
    }
    let out = cmd.output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Serves requests from 127.0.0.1 (INFO), 127.0.0.9 (ERROR) and 127.0.0.2 with `template`
/// behind a prefix that carries the record's fields, and checks every line (the notice
/// too) against Python's for `template`, `datefmt` and `utc`.
fn matches_python(template: &str, datefmt: Option<&str>, utc: bool, tz: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let full = format!("%(created)s|%(levelname)s|%(process)d|%(message)s|{template}");
    let mut extra = format!("formatter = {}\nutc = {utc}\n", q(&full));
    if let Some(d) = datefmt {
        extra += &format!("datefmt = {}\n", q(d));
    }
    let server = serve(app_with_catch_all(&config(&log, &extra), 50));
    for from in ["127.0.0.1", "127.0.0.9", "127.0.0.2"] {
        server.request_from(from, "GET", "/p?q=1", &[b"User-Agent: py/1"]);
    }
    let ours = lines(&log, 4);
    server.stop().unwrap();
    let mut records = Vec::new();
    let mut tails = Vec::new();
    for line in &ours {
        let mut parts = line.splitn(5, '|');
        let mut next = || parts.next().unwrap().to_string();
        let (created, level, pid, message, tail) = (next(), next(), next(), next(), next());
        records.push((created, level, message, pid.parse().unwrap()));
        tails.push(tail);
    }
    let theirs = python(template, datefmt, utc, tz, &records);
    eprintln!("ours:   {:?}\npython: {theirs:?}", tails[0]);
    assert_eq!(tails, theirs, "template {template:?} datefmt {datefmt:?}");
    assert!(records[0].2 == "Access log started", "{ours:?}");
}

#[test]
fn flask_allow_formatters_match_python() {
    for (template, datefmt) in [
        (FLASK_ALLOW, Some("%Y-%m-%d %H:%M:%S")),
        ("%(asctime)s,%(msecs)03d - %(levelname)7s - %(message)s", Some("%Y-%m-%d %H:%M:%S")),
        (
            "[%(asctime)s] %(levelname)-8s %(name)s pid=%(process)d t=%(created).3f %(message)s 100%%",
            Some("%d/%b/%Y:%H:%M:%S %z"),
        ),
        ("%(created)f %(created)d %(msecs)d %(msecs)s %(levelname).4s|%(levelname)10s|", None),
    ] {
        matches_python(template, datefmt, true, None);
    }
}

/// Flask-Allow 2.0.1's own lines (`2023-12-03 07:34:27,883 -    INFO - ...`, local time):
/// what Python writes for its default formatter without a datefmt, we write for the
/// recipe in docs/observing.md (Log line format).
#[test]
fn flask_allows_default_lines_can_be_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let extra = format!(
        "formatter = {}\ndatefmt = \"%Y-%m-%d %H:%M:%S\"\nutc = false",
        q("%(created)s|%(message)s|%(asctime)s,%(msecs)03d - %(levelname)7s - %(message)s")
    );
    let server = serve(app_with_catch_all(&config(&log, &extra), 50));
    server.request_from("127.0.0.9", "GET", "/", &[]);
    let ours = lines(&log, 2);
    server.stop().unwrap();
    for (line, level) in ours.iter().zip(["INFO", "ERROR"]) {
        let mut parts = line.splitn(3, '|');
        let (created, message, tail) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let records = [(created.into(), level.into(), message.into(), 0)];
        let theirs = python(FLASK_ALLOW, None, false, None, &records);
        assert_eq!(tail, theirs[0]);
        assert_eq!(tail.as_bytes()[19], b',', "{tail}");
    }
}

#[test]
fn width_alignment_and_precision_flags_match_python() {
    matches_python(
        "<%(levelname)7s><%(levelname)-7s><%(levelname)-10.3s><%(levelname).1s><%(levelname)+9s>\
         <%(process)8d><%(process)-8d><%(process)08d><%(process)+d><%(process) d><%(process)f>\
         <%(created)20.2f><%(created)-20.1f><%(created)020.4f><%(created)#.0f><%(created).0f>\
         <%(msecs)05.1f><%(levelno)3d><%(name)14s><%(message).5s><%(message)-3s>",
        None,
        true,
        None,
    );
}

#[test]
fn datefmt_directives_match_python() {
    matches_python(
        "%(asctime)s",
        Some("%a %A %b %B %c|%C %d %D %e %F %g %G %h %H %I %j %k %l %m %M %p %P %r %R %S %t %T %u %U %V %w %W %x %X %y %Y %z %Z %%"),
        true,
        None,
    );
}

/// Not a test of its own: [`local_time_follows_tz`] runs it with `TZ` set.
#[test]
#[ignore = "run by local_time_follows_tz in a child process"]
fn local_time_child() {
    let (Ok(template), Ok(datefmt)) = (
        std::env::var("LOGFMT_CHILD_TEMPLATE"),
        std::env::var("LOGFMT_CHILD_DATEFMT"),
    ) else {
        return;
    };
    let datefmt = (!datefmt.is_empty()).then_some(datefmt.as_str());
    matches_python(
        &template,
        datefmt,
        false,
        Some(&std::env::var("TZ").unwrap()),
    );
    println!("CHILD OK");
}

/// `utc = false` writes the time in the zone of `TZ` (set for a child process: a fixed
/// offset, and zones with daylight saving time), as Python's `time.localtime` does.
#[test]
fn local_time_follows_tz() {
    for (tz, template, datefmt) in [
        (
            "ABC-5:30",
            "%(asctime)s %(msecs)03d",
            "%Y-%m-%d %H:%M:%S %Z %z",
        ),
        // Daylight saving time in the northern summer, and in the southern: one is on now.
        ("XST8XDT,M3.2.0,M11.1.0", "%(asctime)s", "%c %Z %z %s"),
        ("YST3YDT,M10.1.0,M3.1.0", "%(asctime)s", "%c %Z %z %s"),
        ("ABC-5:30", "%(asctime)s", ""),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "local_time_child", "--ignored", "--nocapture"])
            .env("TZ", tz)
            .env("LOGFMT_CHILD_TEMPLATE", template)
            .env("LOGFMT_CHILD_DATEFMT", datefmt)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if datefmt.is_empty() {
            // No datefmt: RFC 3339 with the zone's offset, which Python cannot write.
            assert!(!text.contains("CHILD OK"), "{text}");
            assert!(text.contains("+05:30"), "{text}");
        } else {
            assert!(text.contains("CHILD OK"), "{tz}: {text}");
        }
    }
}

/// Every placeholder, in a line laid out field by field; `-` for a field with no value.
#[test]
fn every_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let fields = [
        "asctime",
        "levelname",
        "levelno",
        "name",
        "process",
        "client",
        "peer",
        "verdict",
        "by",
        "rule",
        "rule_index",
        "network",
        "policy",
        "status",
        "enforced",
        "method",
        "url",
        "user_agent",
        "note",
        "message",
    ];
    let template: Vec<String> = fields.iter().map(|f| format!("%({f})s")).collect();
    let template = template.join("|") + "|%(created)f|%(msecs)d";
    let toml = config(&log, &format!("formatter = {}", q(&template))).replace(
        "[default.allow.access_log]",
        "trusted_proxies = [\"127.0.0.3\"]\n[default.allow.policies.admin]\npaths = [\"/admin\"]\nrules = [{ deny = \"all\" }]\n[default.allow.access_log]",
    );
    let server = serve(app_with_catch_all(&toml, 50));
    server.request_from("127.0.0.2", "POST", "/x?y=1", &[b"User-Agent: agent/2"]);
    server.request_from("127.0.0.1", "GET", "/admin", &[]);
    server.request_from("127.0.0.3", "GET", "/", &[b"X-Forwarded-For: 127.0.0.1"]);
    let got = lines(&log, 4);
    server.stop().unwrap();
    let split = |l: &str| l.split('|').map(str::to_string).collect::<Vec<_>>();
    let pid = std::process::id().to_string();
    let notice = split(&got[0]);
    assert_eq!(notice.len(), fields.len() + 2, "{notice:?}");
    assert_eq!(notice[1..5], ["INFO", "20", "rocket_allow", pid.as_str()]);
    assert!(notice[5..19].iter().all(|f| f == "-"), "{notice:?}");
    assert_eq!(notice[19], "Access log started");
    let a = split(&got[1]);
    assert!(a[0].ends_with('Z') && a[0].len() == 24, "{a:?}");
    assert_eq!(
        a[1..19],
        [
            "INFO",
            "20",
            "rocket_allow",
            &pid,
            "127.0.0.2",
            "-",
            "allow",
            "rule",
            "127.0.0.2",
            "1",
            "127.0.0.2/32",
            "-",
            "-",
            "true",
            "POST",
            "http://127.0.0.1/x?y=1",
            "agent/2",
            "-"
        ]
    );
    assert!(a[19].starts_with("127.0.0.2 allowed by rule #1"), "{a:?}");
    let created: f64 = a[20].parse().unwrap();
    assert!((created - now()).abs() < 60.0, "{a:?}");
    assert!(a[21].parse::<u32>().unwrap() < 1000);
    let b = split(&got[2]);
    assert_eq!(
        b[1..19],
        [
            "ERROR",
            "40",
            "rocket_allow",
            &pid,
            "127.0.0.1",
            "-",
            "deny",
            "rule",
            "all",
            "0",
            "0.0.0.0/0, ::/0",
            "admin",
            "403",
            "true",
            "GET",
            "http://127.0.0.1/admin",
            "-",
            "-"
        ]
    );
    let c = split(&got[3]);
    assert_eq!(c[5..8], ["127.0.0.1", "127.0.0.3", "allow"]);
    assert_eq!(c[18], "-", "no note for a forwarded address: {c:?}");
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The default formatter, written out, gives today's lines byte for byte.
#[test]
fn the_default_formatter_is_todays_layout() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.log");
    let explicit = dir.path().join("explicit.log");
    let a = serve(app_with_catch_all(&config(&plain, ""), 50));
    let b = serve(app_with_catch_all(
        &config(&explicit, &format!("formatter = {}", q(FLASK_ALLOW))),
        50,
    ));
    for s in [&a, &b] {
        s.request_from("127.0.0.9", "GET", "/z", &[b"User-Agent: x"]);
        s.request_from("127.0.0.1", "GET", "/z", &[]);
    }
    let (x, y) = (lines(&plain, 3), lines(&explicit, 3));
    a.stop().unwrap();
    b.stop().unwrap();
    let untimed = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| {
                let (ts, rest) = l.split_once(" - ").unwrap();
                assert!(
                    ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T",
                    "{l}"
                );
                rest.to_string()
            })
            .collect()
    };
    assert_eq!(untimed(&x), untimed(&y));
    assert_eq!(
        untimed(&x)[1],
        "  ERROR - 127.0.0.9 denied (403) by rule #2 deny 127.0.0.0/8 (127.0.0.0/8) GET http://127.0.0.1/z x"
    );
}

fn fails_with(extra: &str, needles: &[&str]) {
    let toml = config(Path::new("/tmp/never-opened.log"), extra);
    let msg = ignite_error(app(&toml), needles);
    eprintln!("{msg}");
}

#[test]
fn every_formatter_error_names_the_key_and_position() {
    let key = "allow.access_log.formatter";
    fails_with(
        r#"formatter = "%(asctime)s %(clientip)s""#,
        &[key, "unknown placeholder `%(clientip)s`", "position 13"],
    );
    fails_with(
        r#"formatter = "%(asctime)s - %(levelname)7""#,
        &[key, "`%(levelname)7`", "conversion", "position 15"],
    );
    fails_with(
        r#"formatter = "%(message)s %(levelname)!7s""#,
        &[key, "flag", "`!`", "position 13"],
    );
    fails_with(
        r#"formatter = "%(message)s 100%""#,
        &[key, "`%%`", "position 16"],
    );
    fails_with(r#"formatter = "%(message" "#, &[key, "`)`", "position 1"]);
    fails_with(
        r#"formatter = "%(levelname)d""#,
        &[key, "`levelname`", "`s`", "position 1"],
    );
    fails_with(r#"formatter = "%(process)x""#, &[key, "`x`", "position 1"]);
    fails_with(r#"formatter = "%(process)*d""#, &[key, "`*`", "position 1"]);
    fails_with(r#"formatter = "no placeholder""#, &[key, "no placeholder"]);
    fails_with(
        r#"formatter = "%(message)s\n%(url)s""#,
        &[key, "U+000A", "position 12"],
    );
    fails_with(
        "formatter = \"%(message)s\"\nformat = \"json\"",
        &[key, "allow.access_log.format", "json"],
    );
    fails_with(
        "datefmt = \"%H\"\nformat = \"json\"",
        &["allow.access_log.datefmt", "allow.access_log.format"],
    );
    fails_with(
        "utc = false\nformat = \"json\"",
        &["allow.access_log.utc", "allow.access_log.format"],
    );
    fails_with(
        r#"datefmt = "%Y-%m-%d %H:%M:%S.%f""#,
        &["allow.access_log.datefmt", "`%f`", "position 19", "msecs"],
    );
    fails_with(
        r#"datefmt = "%H %""#,
        &["allow.access_log.datefmt", "position 4"],
    );
    fails_with(
        r#"datefmt = "%H%n""#,
        &["allow.access_log.datefmt", "`%n`", "position 3"],
    );
    fails_with(r#"utc = "yes""#, &["allow.access_log.utc"]);
}

/// Request text cannot forge or reorder lines whatever the template, with the user agent
/// first; URL and user agent keep their caps.
#[test]
fn hostile_request_text_through_a_user_agent_first_template() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let template = "%(user_agent)s\t%(url)s\t%(note)s\t%(levelname)s %(message)s";
    let server = serve(app_with_catch_all(
        &config(&log, &format!("formatter = {}", q(template))),
        50,
    ));
    let bidi = "UA: \u{202e}evil\u{2066}x\u{2069}\u{200f} \u{2028}2026-01-01 - INFO - fake\u{85}y";
    let ua = format!("User-Agent: {bidi}");
    assert_eq!(
        server
            .request_from("127.0.0.1", "GET", "/a", &[ua.as_bytes()])
            .status,
        200
    );
    let huge = format!("User-Agent: {}", "A".repeat(390_000));
    let path = format!("/{}", "b".repeat(60_000));
    assert_eq!(server.request("GET", &path, &[huge.as_bytes()]).status, 200);
    // A bare CR or LF inside a header never reaches the app (hyper refuses the request);
    // whatever got through must still be one line.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /c HTTP/1.1\r\nHost: x\r\nUser-Agent: a\rb\r\nConnection: close\r\n\r\n")
            .unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    }
    let got = lines(&log, 3);
    server.stop().unwrap();
    let text = fs::read_to_string(&log).unwrap();
    let forbidden = |c: char| {
        (c.is_control() && c != '\t' && c != '\n')
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
    };
    assert!(!text.chars().any(forbidden), "{text:?}");
    for line in &got[1..] {
        assert_eq!(line.split('\t').count(), 4, "{line:.200}");
        assert!(line.len() < 16 * 1024, "a {} byte line", line.len());
    }
    assert!(
        got[1].starts_with("UA: \\u{202e}evil\\u{2066}x\\u{2069}\\u{200f} \\u{2028}2026-01-01 - INFO - fake\\u{85}y\thttp://127.0.0.1/a\t-\tINFO 127.0.0.1 allowed"),
        "{}",
        got[1]
    );
    assert!(
        got[2].starts_with("AAAA") && got[2].contains("bytes cut]\thttp://"),
        "{:.100}",
        got[2]
    );
    assert!(got[2].split('\t').nth(1).unwrap().ends_with("bytes cut]"));
}

/// CR and LF in request text (the local client can send what HTTP cannot) are escaped.
#[test]
fn cr_lf_in_request_text_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let template = "%(user_agent)s %(message)s";
    let client = client(app(&config(&log, &format!("formatter = {}", q(template)))));
    client
        .get("/")
        .remote(addr("127.0.0.1:1"))
        .header(rocket::http::Header::new(
            "User-Agent",
            "a\r\n2026-01-01T00:00:00.000Z -    INFO - 1.2.3.4 allowed",
        ))
        .dispatch();
    drop(client);
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("a\\u{d}\\u{a}2026"), "{text}");
}

/// Rotation with a custom template: whole lines, in order, none lost.
#[test]
fn rotation_with_a_custom_template() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let max = 300;
    let client = client(app(&config(
        &log,
        &format!(
            "max_bytes = {max}\nbackup_count = 100\nformatter = \"%(url)s %(levelname)-8s|%(asctime)s\"\ndatefmt = \"%H:%M:%S\""
        ),
    )));
    for i in 0..60 {
        client
            .get(format!("/req-{i:04}"))
            .remote(addr("127.0.0.1:1"))
            .dispatch();
    }
    drop(client);
    let rotated = (1..)
        .take_while(|k| dir.path().join(format!("access.log.{k}")).exists())
        .count();
    assert!(rotated > 3, "{rotated}");
    let mut all = String::new();
    for k in (1..=rotated).rev() {
        let text = fs::read_to_string(dir.path().join(format!("access.log.{k}"))).unwrap();
        assert!(text.len() <= max && text.ends_with('\n'), "{text}");
        all += &text;
    }
    all += &fs::read_to_string(&log).unwrap();
    let urls: Vec<&str> = all
        .lines()
        .filter_map(|l| l.split(' ').next().filter(|u| u.contains("/req-")))
        .collect();
    let expected: Vec<String> = (0..60).map(|i| format!("/req-{i:04}")).collect();
    assert_eq!(urls, expected);
    assert!(
        all.lines().next().unwrap().starts_with("- INFO    |"),
        "{all}"
    );
}

/// The writer's own notices use the template with their own message.
#[test]
fn notices_use_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let client = client(app(&config(
        &log,
        "formatter = \"[%(levelname)s] %(name)s: %(message)s (%(client)s)\"",
    )));
    drop(client);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "[INFO] rocket_allow: Access log started (-)\n"
    );
}

/// Ban reasons and `acting_as` names are text from operators, forms and other instances:
/// the audit lines (ban, unban, expiry) escape line separators and bidi controls as the
/// decision line for the same ban does, in JSON and in text (issue 27, item 6).
#[test]
fn audit_lines_escape_reasons_and_names_as_decision_lines_do() {
    let reason = "probe\u{2028}2026-01-01 - INFO - fake\u{2029}x\u{202e}evil\u{2066}y\u{2069}\u{200f}\u{61c}z";
    let who = "al\u{2028}ice\u{202e}";
    let forbidden = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
    };
    for format in [
        "format = \"json\"",
        "formatter = \"%(levelname)s %(message)s\"",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let server = serve(app_with_catch_all(&config(&log, format), 50));
        let allow = server.allow.clone().unwrap().acting_as(who);
        allow.ban_until_lifted("127.0.0.9".parse::<std::net::IpAddr>().unwrap(), reason);
        // The decision line for the same ban: its note holds the reason.
        assert_eq!(
            server.request_from("127.0.0.9", "GET", "/", &[]).status,
            403
        );
        allow.unban("127.0.0.9").unwrap();
        allow.ban_for(
            "127.0.0.10".parse::<std::net::IpAddr>().unwrap(),
            Duration::from_millis(300),
            reason,
        );
        // Access log started, ban, decision, unban, ban, expired.
        let got = lines(&log, 6);
        server.stop().unwrap();
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 6, "{format}: {text}");
        assert!(!text.chars().any(forbidden), "{format}: {text:?}");
        for needle in [
            "banned 127.0.0.9/32",
            "unban 127.0.0.9",
            "expired banned 127.0.0.10/32",
        ] {
            assert!(
                got.iter().any(|l| l.contains(needle)),
                "{format}: no {needle:?} in {got:#?}"
            );
        }
        if format.contains("json") {
            // Escaped as JSON: what a reader decodes is the reason and the name as given.
            let decoded: Vec<serde_json::Value> = got
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let messages: Vec<&str> = decoded
                .iter()
                .filter_map(|v| v["message"].as_str().or(v["note"].as_str()))
                .collect();
            let with_reason = messages.iter().filter(|m| m.contains(reason)).count();
            assert_eq!(with_reason, 4, "ban, decision, ban, expired: {messages:#?}");
            let by_who = format!("(by {who})");
            assert_eq!(
                messages.iter().filter(|m| m.ends_with(&by_who)).count(),
                3,
                "{messages:#?}"
            );
        } else {
            // Escaped as in a decision line's note.
            let escaped = "probe\\u{2028}2026-01-01 - INFO - fake\\u{2029}x\\u{202e}evil\\u{2066}y\\u{2069}\\u{200f}\\u{61c}z";
            assert_eq!(
                got.iter().filter(|l| l.contains(escaped)).count(),
                4,
                "{got:#?}"
            );
            assert!(
                got.iter()
                    .any(|l| l.ends_with("(by al\\u{2028}ice\\u{202e})")),
                "{got:#?}"
            );
        }
    }
}
