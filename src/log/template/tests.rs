//! The formatter's and datefmt's tests, and a measurement of a line's cost.
use super::*;
use crate::log::{By, Level, RuleRef, Url};

const AT: Now = Now {
    secs: 1_701_588_867,
    nanos: 883_456_000,
};

fn render(formatter: &str, datefmt: Option<&str>, record: Record<'_>) -> String {
    let t = Template::parse(Some(formatter), datefmt, true).unwrap();
    let mut out = String::new();
    t.render_at(&mut out, record, AT);
    out
}

/// The default formatter writes the fixed layout of before, byte for byte.
#[test]
fn default_formatter_is_the_fixed_layout() {
    let rule = RuleRef {
        index: 2,
        written: &"192.0.2.0/24",
        normalized: &"192.0.2.0/24",
    };
    let e = Entry {
        level: Level::Error,
        client: Some("192.0.2.9".parse().unwrap()),
        peer: None,
        verdict: Verdict::Deny,
        rule: Some(rule),
        by: By::Rule,
        enforced: true,
        policy: None,
        status: Some(403),
        note: None,
        method: "POST",
        url: Url {
            scheme: "http",
            host: Some(&"app.example:8000"),
            origin: &"/x",
        },
        user_agent: Some("test-agent/1.0"),
    };
    assert_eq!(
        render(DEFAULT_FORMATTER, None, Record::Decision(&e)),
        "2023-12-03T07:34:27.883Z -   ERROR - 192.0.2.9 denied (403) by rule #2 deny \
         192.0.2.0/24 (192.0.2.0/24) POST http://app.example:8000/x test-agent/1.0\n"
    );
    let notice = Record::Notice {
        level: "WARNING",
        message: "3 access log line(s) were dropped",
    };
    assert_eq!(
        render(DEFAULT_FORMATTER, None, notice),
        "2023-12-03T07:34:27.883Z - WARNING - 3 access log line(s) were dropped\n"
    );
    assert_eq!(
        render(
            "%(asctime)s,%(msecs)03d %(levelno)d %(message)s",
            Some("%Y-%m-%d %H:%M:%S"),
            notice
        ),
        "2023-12-03 07:34:27,883 30 3 access log line(s) were dropped\n"
    );
}

#[test]
fn time_zones_and_cache_per_template() {
    let local = Template {
        zone: Some(jiff::tz::TimeZone::fixed(
            jiff::tz::Offset::from_seconds(-(3 * 3600 + 30 * 60)).unwrap(),
        )),
        ..Template::parse(Some("%(asctime)s"), None, true).unwrap()
    };
    let utc = Template::parse(Some("%(asctime)s"), None, true).unwrap();
    let notice = Record::Notice {
        level: "INFO",
        message: "",
    };
    // The same second on one thread, alternating templates: each keeps its own text.
    for _ in 0..2 {
        let (mut a, mut b) = (String::new(), String::new());
        local.render_at(&mut a, notice, AT);
        utc.render_at(&mut b, notice, AT);
        assert_eq!(a, "2023-12-03T04:04:27.883-03:30\n");
        assert_eq!(b, "2023-12-03T07:34:27.883Z\n");
    }
}

/// For measuring what a line costs: `LINES=n` lines formatted by each template in
/// `TEMPLATE` (`default` or `tmpl12`), counted under callgrind at two `n` (see docs/performance.md,
/// "The line's layout costs nothing extra").
#[test]
#[ignore = "a measurement: LINES=n TEMPLATE=default|tmpl12 cargo test --release --lib format_lines -- --ignored"]
fn format_lines() {
    use crate::log::{By, Level, RuleRef, Url};
    let (Ok(n), Ok(which)) = (std::env::var("LINES"), std::env::var("TEMPLATE")) else {
        return;
    };
    let n: usize = n.parse().unwrap();
    let template = match which.as_str() {
        "default" => None,
        _ => Some(
            "%(asctime)s %(levelname)-7s %(client)s %(peer)s %(verdict)s %(by)s %(rule_index)s \
             %(network)s %(status)s %(method)s \"%(url)s\" \"%(user_agent)s\"",
        ),
    };
    let t = Template::parse(template, None, true).unwrap();
    let rule = RuleRef {
        index: 1,
        written: &"127.0.0.1",
        normalized: &"127.0.0.1/32",
    };
    let e = Entry {
        level: Level::Info,
        client: Some("127.0.0.1".parse().unwrap()),
        peer: None,
        verdict: Verdict::Allow,
        rule: Some(rule),
        by: By::Rule,
        enforced: true,
        policy: None,
        status: None,
        note: None,
        method: "GET",
        url: Url {
            scheme: "http",
            host: Some(&"bench"),
            origin: &"/p500/x",
        },
        user_agent: Some("bench"),
    };
    let mut bytes = 0;
    for _ in 0..n {
        let mut line = String::with_capacity(t.size_hint);
        t.render(&mut line, Record::Decision(std::hint::black_box(&e)));
        bytes += line.len();
    }
    std::hint::black_box(bytes);
}
