//! Decisions are `tracing` events (target `rocket_allow`) for apps that have a subscriber,
//! and the fairing installs no subscriber of its own.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use rocket::http::Status;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(tracing::Level, String)>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "rocket_allow" {
            let mut f = Fields(String::new());
            event.record(&mut f);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), f.0));
        }
    }
}

#[test]
fn decisions_are_tracing_events_and_no_subscriber_is_installed() {
    // The fairing must leave the global dispatcher alone.
    let client = client(app(r#"
        [default.allow]
        rules = [{ allow = "127.0.0.1" }, { deny = "192.0.2.0/24" }]
    "#));
    assert_eq!(status(&client, "127.0.0.1:1", &[]), Status::Ok);
    assert!(
        !tracing::dispatcher::has_been_set(),
        "the fairing installed a global subscriber"
    );

    // An app that has a subscriber sees every decision.
    let events = Events::default();
    let audit = AuditEvents::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(events.clone())
            .with(audit.clone()),
    )
    .unwrap();
    client.get("/").remote(addr("127.0.0.1:1")).dispatch();
    client.get("/a").remote(addr("192.0.2.1:1")).dispatch();
    client.get("/b").remote(addr("203.0.113.1:1")).dispatch();
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_eq!(seen[0].0, tracing::Level::INFO);
    assert!(
        seen[0].1.contains("client=Some(127.0.0.1)")
            && seen[0].1.contains("verdict=\"allow\"")
            && seen[0].1.contains("rule=Some(0)"),
        "{}",
        seen[0].1
    );
    assert_eq!(seen[1].0, tracing::Level::ERROR);
    assert!(
        seen[1].1.contains("verdict=\"deny\"") && seen[1].1.contains("url=/a "),
        "{}",
        seen[1].1
    );
    assert_eq!(seen[2].0, tracing::Level::WARN);
    assert!(seen[2].1.contains("rule=None"), "{}", seen[2].1);
    // The app-wide rules have no policy name; a refusal carries its status.
    assert!(!seen[1].1.contains("policy="), "{}", seen[1].1);
    assert!(seen[1].1.contains("status=403"), "{}", seen[1].1);

    // Request text in the event is escaped like in the log: a Host Rocket cannot parse is
    // shown raw in the URL, and must not carry line breaks or bidi controls to the subscriber.
    events.0.lock().unwrap().clear();
    client
        .get("/c")
        .remote(addr("192.0.2.1:1"))
        .header(rocket::http::Header::new(
            "Host",
            "evil\u{85}host\u{2028}2026 INFO rocket_allow: request allowed\u{202e}",
        ))
        .dispatch();
    let seen = events.0.lock().unwrap().clone();
    let url = seen[0].1.split("url=").nth(1).unwrap();
    assert!(!url.contains(['\u{85}', '\u{2028}', '\u{202e}']), "{url:?}");
    assert!(url.contains("\\u{2028}"), "{url:?}");

    // Report mode: the event of a would-be refusal says `enforced=false`, at WARN (a dry
    // run pages nobody who alerts on ERROR); one of an enforcing policy says
    // `enforced=true`, at ERROR.
    let reporting = common::client(app(r#"
        [default.allow]
        mode = "report"
        rules = [{ allow = "127.0.0.1" }, { deny = "192.0.2.0/24" }]
        [default.allow.policies.admin]
        paths = ["/admin"]
        mode = "enforce"
        rules = [{ deny = "all" }]
    "#));
    events.0.lock().unwrap().clear();
    assert_eq!(status(&reporting, "192.0.2.1:1", &[]), Status::Ok);
    let refused = reporting
        .get("/admin/x")
        .remote(addr("192.0.2.1:1"))
        .dispatch();
    assert_eq!(refused.status(), Status::Forbidden);
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        (seen[0].0, seen[1].0),
        (tracing::Level::WARN, tracing::Level::ERROR)
    );
    assert!(
        seen[0].1.contains("verdict=\"deny\"") && seen[0].1.contains("enforced=false"),
        "{}",
        seen[0].1
    );
    assert!(
        seen[1].1.contains("admin") && seen[1].1.contains("enforced=true"),
        "{}",
        seen[1].1
    );

    audit_events_escape_reasons_and_names(&audit);
}

/// Collects the fields of `rocket_allow::audit` events.
#[derive(Clone, Default)]
struct AuditEvents(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for AuditEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "rocket_allow::audit" {
            let mut f = Fields(String::new());
            event.record(&mut f);
            self.0.lock().unwrap().push(f.0);
        }
    }
}

/// The audit event of a change escapes a ban's reason and an `acting_as` name as the
/// access log's lines do: no line separator or bidi control reaches the subscriber raw
/// (issue 27, item 6). Run inside the test above, under its global subscriber: a scoped
/// one in a test of its own would make that test's "no subscriber installed" check fail.
fn audit_events_escape_reasons_and_names(events: &AuditEvents) {
    let client = client(app("[default.allow]\nrules = []"));
    let allow = client
        .rocket()
        .state::<rocket_allow::AllowHandle>()
        .unwrap()
        .acting_as("al\u{2028}ice\u{202e}");
    events.0.lock().unwrap().clear();
    allow.ban_until_lifted(
        "192.0.2.7".parse::<std::net::IpAddr>().unwrap(),
        "probe\u{2028}2026-01-01 INFO fake\u{2029}x\u{202e}y\u{2066}z",
    );
    allow.unban("192.0.2.7").unwrap();
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for change in &seen {
        assert!(
            !change.contains(['\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}']),
            "{change:?}"
        );
        assert!(
            change.contains("(by al\\u{2028}ice\\u{202e})"),
            "{change:?}"
        );
    }
    assert!(
        seen[0].contains("probe\\u{2028}2026-01-01 INFO fake\\u{2029}x\\u{202e}y\\u{2066}z"),
        "{:?}",
        seen[0]
    );
}
