//! `examples/metrics.rs`, launched on a free port with its own configuration and a real
//! Prometheus recorder, scraped over HTTP.

mod common;

#[path = "../examples/metrics.rs"]
#[allow(dead_code)]
mod example;

use common::http::serve;
use metrics_exporter_prometheus::PrometheusBuilder;
use rocket::http::Status;
use rocket::local::blocking::Client;

/// The value of the series of `name` whose labels include every one of `labels`.
fn series(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_are_scraped_over_http_and_only_loopback_may_scrape() {
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();
    let server = serve(example::app(prometheus.clone()));
    // 127.0.0.1 is not in @office: report mode admits it, and counts a would-be refusal.
    for _ in 0..3 {
        let r = server.request("GET", "/", &[]);
        assert_eq!(r.status, 200, "{}", r.head);
    }
    let r = server.request("GET", "/metrics", &[]);
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.head.contains("text/plain"), "{}", r.head);
    let scrape = r.body;
    let would_be = series(
        &scrape,
        "rocket_allow_decisions_total",
        &[
            "policy=\"\"",
            "verdict=\"deny\"",
            "enforced=\"false\"",
            "by=\"rule\"",
        ],
    );
    // Three for `/` and one for `/metrics` itself (the app-wide rules decide it first).
    assert_eq!(would_be, Some(4.0), "{scrape}");
    let scraper = series(
        &scrape,
        "rocket_allow_decisions_total",
        &[
            "policy=\"metrics\"",
            "verdict=\"allow\"",
            "enforced=\"true\"",
            "by=\"rule\"",
        ],
    );
    assert_eq!(scraper, Some(1.0), "{scrape}");
    assert_eq!(
        series(&scrape, "rocket_allow_rules", &["policy=\"\""]),
        Some(4.0),
        "{scrape}"
    );
    assert_eq!(
        series(&scrape, "rocket_allow_bans", &[]),
        Some(0.0),
        "{scrape}"
    );
    assert!(
        scrape.contains("# HELP rocket_allow_decisions_total"),
        "{scrape}"
    );
    server.stop().unwrap();

    // Anyone else is refused /metrics, even though the app-wide rules only report.
    let client = Client::tracked(example::app(prometheus)).unwrap();
    let from = |path: &str| {
        client
            .get(path.to_string())
            .remote("203.0.113.5:1".parse().unwrap())
            .dispatch()
            .status()
    };
    assert_eq!(from("/metrics"), Status::Forbidden);
    assert_eq!(from("/"), Status::Ok);
}
