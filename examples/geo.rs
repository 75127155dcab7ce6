//! Countries and networks: `country:` and `asn:` rules on MaxMind's test databases, behind
//! a (pretend) load balancer.
//!
//! `cargo run --example geo` serves http://127.0.0.1:8003/ with the rules in
//! `examples/geo.toml`; 127.0.0.1 is the trusted balancer, so curl picks the client:
//!
//! ```text
//! curl -H 'X-Forwarded-For: 81.2.69.142' http://127.0.0.1:8003/    # GB: hello
//! curl -H 'X-Forwarded-For: 2a02:d0c0::1' http://127.0.0.1:8003/   # RU: 403, rule #1
//! curl -H 'X-Forwarded-For: 1.0.0.1' http://127.0.0.1:8003/        # AS15169: 403, rule #2
//! curl -H 'X-Forwarded-For: 192.0.2.1' http://127.0.0.1:8003/      # in no database: 403, rule #5
//! ```

use rocket::figment::providers::{Env, Format, Toml};
use rocket::{catch, catchers, get, routes, Build, Request, Rocket};
use rocket_allow::{Refused, RefusedBy};

/// Rocket's own `IpAddr` guard (`Request::client_ip()`) sees the vetted client
/// (`publish_client_ip`), not the balancer.
#[get("/")]
fn index(client: std::net::IpAddr) -> String {
    format!("Hello, {client}!\n")
}

/// Says which rule refused, and on which network.
#[catch(403)]
fn forbidden(req: &Request<'_>) -> String {
    match Refused::of(req) {
        Some(r) => {
            let network = match &r.by {
                RefusedBy::Rule { network, .. } => format!(" ({network})"),
                _ => String::new(),
            };
            format!(
                "Forbidden: {} by {}{network}\n",
                r.client_text(),
                r.by_text()
            )
        }
        None => "Forbidden.\n".into(),
    }
}

/// The app: `examples/geo.toml` over Rocket's defaults (ROCKET_* variables still apply).
pub fn app() -> Rocket<Build> {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/geo.toml");
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::file(config).nested())
        .merge(Env::prefixed("ROCKET_").global());
    rocket::custom(figment)
        .attach(rocket_allow::AllowFairing::fairing())
        .mount("/", routes![index])
        .register("/", catchers![forbidden])
}

#[rocket::launch]
fn rocket() -> _ {
    app()
}
