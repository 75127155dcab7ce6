//! Metrics and report mode: a Prometheus `/metrics` that only this machine may scrape, and
//! app-wide rules that only report what they would refuse.
//!
//! `cargo run --example metrics` serves http://127.0.0.1:8002/ with the rules in
//! `examples/metrics.toml`:
//!
//! ```text
//! curl http://127.0.0.1:8002/            # not in @office, admitted anyway (report mode)
//! curl http://127.0.0.1:8002/metrics     # loopback may scrape: rocket_allow_* metrics
//! tail target/metrics-example-access.log # "127.0.0.1 would be denied by rule #1 deny all"
//! ```
//!
//! rocket-allow only talks to the `metrics` facade; the app picks the exporter (here
//! metrics-exporter-prometheus, rendering into our own route) and installs it before the
//! app ignites.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rocket::figment::providers::{Env, Format, Toml};
use rocket::http::ContentType;
use rocket::{get, routes, Build, Rocket, State};
use rocket_allow::{AllowFairing, Allowed, Policy};

/// The `[allow.policies.metrics]` policy: who may scrape.
pub struct Scrapers;
impl Policy for Scrapers {
    const NAME: &'static str = "metrics";
}

#[get("/")]
fn index() -> &'static str {
    "Hello, world!\n"
}

/// Prometheus' text format, for the scrapers the policy admits.
#[get("/metrics")]
fn metrics(_ok: Allowed<Scrapers>, prometheus: &State<PrometheusHandle>) -> (ContentType, String) {
    let format = ContentType::new("text", "plain").with_params(("version", "0.0.4"));
    (format, prometheus.render())
}

/// The app, rendering metrics from `prometheus` (a recorder installed before ignite).
pub fn app(prometheus: PrometheusHandle) -> Rocket<Build> {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/metrics.toml");
    // Rocket's defaults and this file, not Rocket.toml (the quick start's); ROCKET_* still apply.
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::file(config).nested())
        .merge(Env::prefixed("ROCKET_").global());
    rocket::custom(figment)
        .attach(AllowFairing::fairing())
        .manage(prometheus)
        .mount("/", routes![index, metrics])
}

#[rocket::launch]
fn rocket() -> _ {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("no other metrics recorder is installed");
    app(prometheus)
}
