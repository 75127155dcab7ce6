//! One access log line: the decision as text (Flask-Allow's layout) or JSON, with request
//! text escaped so that a client cannot forge lines.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use super::escape::{
    capped, escape_into, json_str, Capped, Escaped, EscapedDisplay, JsonEscaped, MAX_URL,
    MAX_USER_AGENT,
};
use super::template::Record;
use super::Layout;
use crate::ip_text::IpText;
use crate::rules::Verdict;

/// Flask-Allow's levels: allowed by a rule, no rule matched, refused by a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// One decision, borrowed from the request and the rule set.
pub(crate) struct Entry<'a> {
    pub level: Level,
    /// The address the decision was made on.
    pub client: Option<IpAddr>,
    /// The TCP peer, when the client address came from a forwarding header (or differs).
    pub peer: Option<IpAddr>,
    pub verdict: Verdict,
    /// `None` when no rule matched and the default decided.
    pub rule: Option<RuleRef<'a>>,
    /// What decided: a rule, the default, or an unreadable client address.
    pub by: By,
    /// `false` when the policy is in report mode: a `deny` was not carried out.
    pub enforced: bool,
    /// The policy that decided; `None` for the app-wide rules.
    pub policy: Option<&'a str>,
    /// The status a refusal is answered with; `None` for admitted requests.
    pub status: Option<u16>,
    /// Why the decision was made on something other than the plain peer, if it was.
    pub note: Option<&'a str>,
    pub method: &'a str,
    pub url: Url<'a>,
    pub user_agent: Option<&'a str>,
}

/// The request URL, written straight into the line: `scheme://host/path?query`, or only
/// the origin when the request named no host.
#[derive(Clone, Copy)]
pub(crate) struct Url<'a> {
    pub scheme: &'static str,
    pub host: Option<&'a dyn fmt::Display>,
    pub origin: &'a dyn fmt::Display,
}

impl fmt::Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Some(host) => write!(f, "{}://{host}{}", self.scheme, self.origin),
            None => self.origin.fmt(f),
        }
    }
}

impl fmt::Debug for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What decided a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    /// A rule matched (`rule` says which).
    Rule,
    /// No rule matched; the configured default applied.
    Default,
    /// The client address could not be read (a trusted proxy's header, or no peer): refused.
    Header,
    /// The path has `.` or `..` segments and path-scoped policies exist: refused with 400.
    Path,
    /// A runtime ban (the note says which, until when, and why).
    Ban,
    /// `on_unavailable = "refuse"`: the fleet store has been away too long.
    Store,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Rule => "rule",
            By::Default => "default",
            By::Header => "header",
            By::Path => "path",
            By::Ban => "ban",
            By::Store => "store",
        }
    }
}

/// The rule that decided: its index, the text as written and what it was normalized to.
#[derive(Clone, Copy)]
pub(crate) struct RuleRef<'a> {
    pub index: usize,
    pub written: &'a dyn fmt::Display,
    pub normalized: &'a dyn fmt::Display,
}

impl Entry<'_> {
    /// Flask-Allow's message, `client verdict by rule url user-agent`, with the rule's index
    /// and normalized form, the peer and the method added (`%(message)s`; the default
    /// formatter puts the time and level before it). Request text is escaped so a client
    /// cannot forge extra log lines.
    pub(super) fn message(&self, out: &mut String) {
        match self.client {
            Some(ip) => {
                let _ = write!(out, "{}", IpText(ip));
            }
            None => out.push_str("unknown-address"),
        }
        if let Some(peer) = self.peer {
            let _ = write!(out, " via {}", IpText(peer));
        }
        out.push_str(match (self.verdict, self.enforced) {
            (Verdict::Allow, _) => " allowed",
            (Verdict::Deny, true) => " denied",
            (Verdict::Deny, false) => " would be denied",
        });
        // A would-be refusal reads `would be denied by rule #2 ...`, so it can be grepped.
        if let (Some(status), true) = (self.status, self.enforced) {
            let _ = write!(out, " ({status})");
        }
        out.push_str(" by");
        if let Some(policy) = self.policy {
            let _ = write!(out, " policy {policy}");
        }
        match (&self.rule, self.by) {
            (Some(r), _) => {
                // The rule's text comes from the configuration, but may still hold a
                // control character (`Rule::deny("10.0.0.1\n")` is trimmed to parse).
                let _ = write!(out, " rule #{} {} ", r.index, self.verdict);
                let _ = write!(Escaped(&mut *out), "{} ({})", r.written, r.normalized);
            }
            (None, By::Header) => out.push_str(" unreadable client address"),
            (None, By::Path) => out.push_str(" unsafe path"),
            (None, By::Ban) => out.push_str(" ban"),
            (None, By::Store) => out.push_str(" store"),
            (None, _) => out.push_str(" default (no rule matched)"),
        }
        if let Some(note) = self.note {
            out.push_str(" [");
            escape_into(out, note);
            out.push(']');
        }
        out.push(' ');
        out.push_str(self.method);
        out.push(' ');
        capped(Escaped(&mut *out), MAX_URL, &self.url);
        out.push(' ');
        capped(
            Escaped(&mut *out),
            MAX_USER_AGENT,
            &self.user_agent.unwrap_or("-"),
        );
    }

    /// One JSON object, written straight into `out` (no intermediate strings): the fields
    /// of [`Entry`] by name, after `timestamp` and `level`. Strings are escaped as JSON
    /// requires, and [`must_escape`] characters as `\uXXXX` too, so that no log reader
    /// splits or reorders the line.
    pub(super) fn json(&self, out: &mut String) {
        out.push_str("{\"timestamp\":\"");
        write_timestamp(out);
        let _ = write!(out, "\",\"level\":\"{}\",\"client\":", self.level.as_str());
        match self.client {
            Some(ip) => {
                let _ = write!(out, "\"{}\"", IpText(ip));
            }
            None => out.push_str("null"),
        }
        if let Some(peer) = self.peer {
            let _ = write!(out, ",\"peer\":\"{}\"", IpText(peer));
        }
        let _ = write!(out, ",\"verdict\":\"{}\",\"rule\":", self.verdict.as_str());
        match &self.rule {
            Some(r) => {
                let _ = write!(out, "{{\"index\":{},\"written\":\"", r.index);
                let _ = write!(JsonEscaped(&mut *out), "{}", r.written);
                out.push_str("\",\"normalized\":\"");
                let _ = write!(JsonEscaped(&mut *out), "{}", r.normalized);
                out.push_str("\"}");
            }
            None => out.push_str("null"),
        }
        let _ = write!(
            out,
            ",\"by\":\"{}\",\"enforced\":{}",
            self.by.as_str(),
            self.enforced
        );
        if let Some(policy) = self.policy {
            out.push_str(",\"policy\":");
            json_str(out, policy);
        }
        if let Some(status) = self.status {
            let _ = write!(out, ",\"status\":{status}");
        }
        if let Some(note) = self.note {
            out.push_str(",\"note\":");
            json_str(out, note);
        }
        out.push_str(",\"method\":");
        json_str(out, self.method);
        out.push_str(",\"url\":\"");
        capped(JsonEscaped(&mut *out), MAX_URL, &self.url);
        out.push_str("\",\"user_agent\":");
        match self.user_agent {
            Some(ua) => {
                out.push('"');
                capped(JsonEscaped(&mut *out), MAX_USER_AGENT, &ua);
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push_str("}\n");
    }

    /// Reports the decision as a `tracing` event (target `rocket_allow`), for apps with a subscriber.
    pub fn emit_event(&self) {
        let rule = self.rule.map(|r| r.index);
        let written = self.rule.map(|r| r.written.to_string());
        macro_rules! event {
            ($lvl:expr, $msg:literal) => {
                tracing::event!(
                    target: "rocket_allow",
                    $lvl,
                    client = ?self.client,
                    peer = ?self.peer,
                    verdict = self.verdict.as_str(),
                    by = self.by.as_str(),
                    enforced = self.enforced,
                    policy = self.policy,
                    status = self.status,
                    rule = ?rule,
                    rule_written = ?written,
                    note = ?self.note,
                    method = self.method,
                    url = %EscapedDisplay(&Capped(MAX_URL, &self.url)),
                    user_agent = ?self.user_agent.map(|ua| EscapedDisplay(&Capped(MAX_USER_AGENT, &ua)).to_string()),
                    $msg
                )
            };
        }
        match self.level {
            Level::Info => event!(tracing::Level::INFO, "request allowed"),
            Level::Warning => event!(tracing::Level::WARN, "no rule matched; default applied"),
            Level::Error => event!(tracing::Level::ERROR, "request refused"),
        }
    }
}

/// Appends the timestamp: RFC 3339 in UTC with milliseconds, fixed width, unambiguous
/// whatever the server's time zone. The `YYYY-MM-DDTHH:MM:SS` part is formatted once per second per
/// thread; only the milliseconds are written per line.
fn write_timestamp(out: &mut String) {
    use std::cell::RefCell;
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    let unix = now.unix_timestamp();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != unix {
            cached.1 = now.format(FORMAT).unwrap_or_default();
            cached.0 = unix;
        }
        out.push_str(&cached.1);
    });
    let _ = write!(out, ".{:03}Z", now.millisecond());
}

/// A line that is not a decision, in the log's layout (start-up, dropped or lost lines).
pub(super) fn notice_line(layout: &Layout, level: &str, message: &str) -> String {
    match layout {
        Layout::Text(template) => {
            let mut line = String::with_capacity(template.size_hint);
            template.render(&mut line, Record::Notice { level, message });
            line
        }
        // Escaped as a decision line's strings are: serde_json leaves U+2028, U+2029 and the
        // bidi controls raw, and a change's message holds a ban's reason and who made it.
        Layout::Json => {
            let mut line = String::with_capacity(64 + message.len());
            line.push_str("{\"timestamp\":\"");
            write_timestamp(&mut line);
            line.push_str("\",\"level\":");
            json_str(&mut line, level);
            line.push_str(",\"message\":");
            json_str(&mut line, message);
            line.push_str("}\n");
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::escape::must_escape;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn escaping_round_trips_any_text(s in "\\PC*|[\\x00-\\x7f\u{80}-\u{3000}]*") {
            let mut json = String::new();
            json_str(&mut json, &s);
            prop_assert!(!json.chars().any(must_escape));
            prop_assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s.clone());
            let mut text = String::new();
            escape_into(&mut text, &s);
            prop_assert!(!text.chars().any(must_escape));
            if !s.chars().any(must_escape) {
                prop_assert_eq!(text, s);
            }
        }
    }

    impl Entry<'_> {
        /// The line the default formatter writes.
        fn text(&self, out: &mut String) {
            let t = super::super::template::Template::parse(None, None, true).unwrap();
            t.render(out, Record::Decision(self));
        }
    }

    fn entry<'a>(ua: Option<&'a str>, rule: Option<RuleRef<'a>>) -> Entry<'a> {
        Entry {
            level: Level::Error,
            client: Some("192.0.2.9".parse().unwrap()),
            peer: Some("10.0.0.1".parse().unwrap()),
            verdict: Verdict::Deny,
            rule,
            by: if rule.is_some() {
                By::Rule
            } else {
                By::Default
            },
            enforced: true,
            policy: None,
            status: Some(403),
            note: None,
            method: "GET",
            url: Url {
                scheme: "http",
                host: Some(&"localhost"),
                origin: &"/x?y",
            },
            user_agent: ua,
        }
    }

    #[test]
    fn text_line_layout() {
        let mut s = String::new();
        let rule = RuleRef {
            index: 2,
            written: &"0.0.0.0/0",
            normalized: &"0.0.0.0/0",
        };
        entry(Some("curl/8"), Some(rule)).text(&mut s);
        let (_, rest) = s.split_once(" - ").unwrap();
        assert_eq!(
            rest,
            "  ERROR - 192.0.2.9 via 10.0.0.1 denied (403) by rule #2 deny 0.0.0.0/0 (0.0.0.0/0) GET http://localhost/x?y curl/8\n"
        );
    }

    #[test]
    fn request_text_cannot_forge_lines() {
        let mut s = String::new();
        entry(Some("evil\n2026-01-01 - INFO - 1.2.3.4 allowed"), None).text(&mut s);
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(s.contains("evil\\u{a}2026"), "{s}");
    }

    #[test]
    fn unicode_line_breaks_and_bidi_controls_are_escaped() {
        let nasty = "a\u{2028}b\u{2029}c\u{85}d\u{202e}e\u{2066}f\u{2069}g\u{200f}h";
        let mut text = String::new();
        entry(Some(nasty), None).text(&mut text);
        let mut json = String::new();
        entry(Some(nasty), None).json(&mut json);
        for line in [&text, &json] {
            assert!(!line.trim_end().chars().any(must_escape), "{line:?}");
        }
        assert!(
            text.contains("a\\u{2028}b\\u{2029}c\\u{85}d\\u{202e}e"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["user_agent"], nasty);
        assert!(json.contains("a\\u2028b\\u2029c\\u0085d\\u202ee"), "{json}");
    }

    #[test]
    fn json_lines_round_trip_whatever_the_request_sends() {
        let nasty = "q\"uote b\\ack\ttab\u{1}ctl\u{7f}del é 😀 \u{2028}";
        let rule = RuleRef {
            index: 3,
            written: &"@of\"fice",
            normalized: &"10.0.0.0/8",
        };
        let mut e = entry(Some(nasty), Some(rule));
        e.policy = Some("adm\\in");
        e.note = Some(nasty);
        e.enforced = false;
        let mut s = String::new();
        e.json(&mut s);
        assert!(s.ends_with("}\n") && s.matches('\n').count() == 1, "{s:?}");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["user_agent"], nasty);
        assert_eq!(v["note"], nasty);
        assert_eq!(v["policy"], "adm\\in");
        assert_eq!(v["enforced"], false);
        assert_eq!(v["status"], 403);
        assert_eq!(v["rule"]["index"], 3);
        assert_eq!(v["rule"]["written"], "@of\"fice");
        assert_eq!(v["rule"]["normalized"], "10.0.0.0/8");
        assert_eq!(v["url"], "http://localhost/x?y");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 14, "{keys:?}");
    }

    #[test]
    fn json_line_fields() {
        let mut s = String::new();
        entry(None, None).json(&mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["client"], "192.0.2.9");
        assert_eq!(v["peer"], "10.0.0.1");
        assert_eq!(v["verdict"], "deny");
        assert!(v["rule"].is_null());
        assert_eq!(v["by"], "default");
        assert_eq!(v["method"], "GET");
        assert!(v["user_agent"].is_null());
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
