//! Host-name rules against a real DNS server: every record, TTL-driven refresh off the
//! request path, failures keeping the last addresses, and NXDOMAIN at ignite.

mod common;

use std::time::{Duration, Instant};

use common::dns::TestDns;
use common::*;
use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket::tokio::time::sleep;

fn rules(dns: &TestDns, extra_dns: &str) -> String {
    format!(
        r#"
        [default.allow]
        default = "deny"
        rules = [{{ allow = "app.test" }}, {{ deny = "all" }}]
        {}
        "#,
        dns.dns_toml(extra_dns)
    )
}

async fn status(client: &Client, ip: &str) -> Status {
    let peer = match ip.contains(':') {
        true => format!("[{ip}]:1"),
        false => format!("{ip}:1"),
    };
    client
        .get("/")
        .remote(addr(&peer))
        .dispatch()
        .await
        .status()
}

async fn launch(toml: &str) -> Client {
    Client::tracked(app(toml)).await.expect("ignite")
}

/// Polls until `ip` gets `want`, returning how long that took (or `None` after `limit`).
async fn time_until(client: &Client, ip: &str, want: Status, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if status(client, ip).await == want {
            return Some(start.elapsed());
        }
        sleep(Duration::from_millis(20)).await;
    }
    None
}

#[rocket::async_test]
async fn every_a_and_aaaa_record_is_admitted() {
    let dns = TestDns::start("test.").await;
    dns.set(
        "app.test.",
        60,
        &["192.0.2.10", "192.0.2.11", "2001:db8::10", "2001:db8::11"],
    )
    .await;
    let client = launch(&rules(&dns, "")).await;
    for ip in [
        "192.0.2.10",
        "192.0.2.11",
        "2001:db8::10",
        "2001:db8::11",
        "::ffff:192.0.2.10",
    ] {
        assert_eq!(status(&client, ip).await, Status::Ok, "{ip}");
    }
    for ip in ["192.0.2.12", "2001:db8::12", "127.0.0.1"] {
        assert_eq!(status(&client, ip).await, Status::Forbidden, "{ip}");
    }
}

#[rocket::async_test]
async fn a_changed_record_takes_effect_after_its_ttl() {
    let dns = TestDns::start("test.").await;
    dns.set("app.test.", 2, &["192.0.2.10"]).await;
    let client = launch(&rules(&dns, "min_ttl_secs = 1")).await;
    let changed = Instant::now();
    dns.set("app.test.", 2, &["192.0.2.20"]).await;
    // Before the TTL runs out, the old address still decides.
    assert_eq!(status(&client, "192.0.2.10").await, Status::Ok);
    assert_eq!(status(&client, "192.0.2.20").await, Status::Forbidden);
    let took = time_until(&client, "192.0.2.20", Status::Ok, Duration::from_secs(6))
        .await
        .expect("new address admitted after the TTL");
    let since_change = changed.elapsed();
    eprintln!(
        "zone change -> new verdict: {since_change:?} (TTL 2 s; polled every 20 ms, took {took:?})"
    );
    assert!(
        since_change >= Duration::from_millis(1500),
        "refreshed before the TTL: {since_change:?}"
    );
    // Atomic switch: the old address is gone in the same rebuild.
    assert_eq!(status(&client, "192.0.2.10").await, Status::Forbidden);
}

#[rocket::async_test]
async fn refresh_is_never_more_often_than_the_floor() {
    let dns = TestDns::start("test.").await;
    // TTL 1 s, but the floor says 3 s.
    dns.set("app.test.", 1, &["192.0.2.10"]).await;
    let client = launch(&rules(&dns, "min_ttl_secs = 3")).await;
    let changed = Instant::now();
    dns.set("app.test.", 1, &["192.0.2.20"]).await;
    sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        status(&client, "192.0.2.20").await,
        Status::Forbidden,
        "refreshed before the floor"
    );
    let took = time_until(&client, "192.0.2.20", Status::Ok, Duration::from_secs(5)).await;
    assert!(took.is_some(), "never refreshed");
    eprintln!(
        "floor 3 s, TTL 1 s: zone change -> new verdict: {:?}",
        changed.elapsed()
    );
    assert!(changed.elapsed() >= Duration::from_millis(2500));
}

#[rocket::async_test]
async fn failed_refreshes_keep_the_last_addresses() {
    let mut dns = TestDns::start("test.").await;
    dns.set("app.test.", 1, &["192.0.2.10"]).await;
    let client = launch(&rules(&dns, "min_ttl_secs = 1")).await;
    // NXDOMAIN on refresh: the name vanished from the zone.
    dns.set("app.test.", 1, &[]).await;
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        status(&client, "192.0.2.10").await,
        Status::Ok,
        "NXDOMAIN dropped the addresses"
    );
    // The server stops answering altogether (timeouts).
    dns.stop().await;
    sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        status(&client, "192.0.2.10").await,
        Status::Ok,
        "a dead server dropped the addresses"
    );
}

#[rocket::async_test]
async fn a_name_that_resolves_later_is_picked_up_in_warn_mode() {
    let dns = TestDns::start("test.").await;
    capture_logs();
    let client = launch(&rules(&dns, "min_ttl_secs = 1\non_unresolved = \"warn\"")).await;
    assert!(logged("`app.test` did not resolve")
        .iter()
        .any(|l| l.contains("allow.rules[0]")));
    // Until it resolves, the rule matches nothing.
    assert_eq!(status(&client, "192.0.2.10").await, Status::Forbidden);
    dns.set("app.test.", 1, &["192.0.2.10"]).await;
    let took = time_until(&client, "192.0.2.10", Status::Ok, Duration::from_secs(5)).await;
    assert!(took.is_some(), "the name was never picked up");
}

#[rocket::async_test]
async fn trusted_proxy_names_are_resolved_too() {
    let dns = TestDns::start("test.").await;
    dns.set("proxy.test.", 60, &["10.0.0.5"]).await;
    let toml = format!(
        r#"
        [default.allow]
        default = "deny"
        trusted_proxies = ["proxy.test"]
        rules = [{{ allow = "203.0.113.0/24" }}]
        {}
        "#,
        dns.dns_toml("")
    );
    let client = launch(&toml).await;
    let via = |peer: &'static str| {
        client
            .get("/")
            .remote(addr(peer))
            .header(rocket::http::Header::new("X-Forwarded-For", "203.0.113.7"))
    };
    assert_eq!(via("10.0.0.5:1").dispatch().await.status(), Status::Ok);
    assert_eq!(
        via("10.0.0.6:1").dispatch().await.status(),
        Status::Forbidden
    );
}

#[rocket::async_test]
async fn nxdomain_at_ignite_fails_with_the_name() {
    let dns = TestDns::start("test.").await;
    let toml = rules(&dns, "");
    let err = ignite_error_async(
        app(&toml),
        &["allow.rules[0]", "`app.test`", "did not resolve"],
    )
    .await;
    eprintln!("{err}");
}

#[rocket::async_test]
async fn the_refresh_task_stops_when_rocket_shuts_down() {
    let dns = TestDns::start("test.").await;
    dns.set("app.test.", 1, &["192.0.2.10"]).await;
    let client = launch(&rules(&dns, "min_ttl_secs = 1")).await;
    client.rocket().shutdown().notify();
    sleep(Duration::from_millis(100)).await;
    dns.set("app.test.", 1, &["192.0.2.20"]).await;
    sleep(Duration::from_millis(2500)).await;
    // No refresh happened after shutdown: the old address still decides.
    assert_eq!(status(&client, "192.0.2.10").await, Status::Ok);
    assert_eq!(status(&client, "192.0.2.20").await, Status::Forbidden);
}

#[rocket::async_test]
async fn refresh_is_at_least_as_often_as_the_ceiling() {
    let dns = TestDns::start("test.").await;
    // TTL 1 h, but the ceiling says 1 s.
    dns.set("app.test.", 3600, &["192.0.2.10"]).await;
    let client = launch(&rules(&dns, "min_ttl_secs = 1\nmax_ttl_secs = 1")).await;
    dns.set("app.test.", 3600, &["192.0.2.20"]).await;
    let took = time_until(&client, "192.0.2.20", Status::Ok, Duration::from_secs(4)).await;
    assert!(
        took.is_some(),
        "the ceiling did not force a refresh (or a cache served the old answer)"
    );
}
