//! What the benchmarks that go through Rocket share: an app built from Rocket.toml text.

use rocket::figment::providers::{Format, Toml};
use rocket::local::blocking::Client;

#[rocket::get("/<_..>")]
fn any() -> &'static str {
    "hello"
}

/// `toml` read as Rocket.toml (profiles nested) over Rocket's defaults, `AllowFairing`
/// attached, and one route answering every GET path.
pub fn app(toml: &str) -> Client {
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::string(toml).nested());
    let rocket = rocket::custom(figment)
        .attach(rocket_allow::AllowFairing::fairing())
        .mount("/", rocket::routes![any]);
    Client::untracked(rocket).expect("valid app")
}
