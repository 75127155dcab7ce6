//! The admin page: who gets in, who is refused and why, bans and `explain`, in a browser.
//!
//! `cargo run --example admin` serves the app on http://127.0.0.1:8005/ and its admin page
//! on http://127.0.0.1:8005/allow/ (open to 127.0.0.1 and ::1 only), with the rules in
//! `examples/admin.toml`:
//!
//! ```text
//! curl --interface 127.0.0.66 http://127.0.0.1:8005/     # refused: see "Who is refused"
//! curl --interface 127.0.0.2 http://127.0.0.1:8005/api/x # would be refused (report mode)
//! curl --interface 127.0.0.2 http://127.0.0.1:8005/allow/ # 403: not the admin policy's
//! ```

use rocket::figment::providers::{Env, Format, Toml};
use rocket::{catch, catchers, get, routes, Build, Rocket};

#[get("/")]
fn index() -> &'static str {
    "Hello, world!\n"
}

#[get("/api/<_x>")]
fn api(_x: &str) -> &'static str {
    "{}\n"
}

#[catch(403)]
fn forbidden() -> &'static str {
    "Forbidden: your address is not on the list.\n"
}

/// The app, with `examples/admin.toml` (not Rocket.toml, the quick start's) and `ROCKET_*`.
pub fn app() -> Rocket<Build> {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/admin.toml");
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::file(config).nested())
        .merge(Env::prefixed("ROCKET_").global());
    rocket::custom(figment)
        .attach(rocket_allow::AllowFairing::fairing())
        .mount("/", routes![index, api])
        .mount("/allow", rocket_allow::admin::routes())
        .register("/", catchers![forbidden])
}

#[rocket::launch]
fn rocket() -> _ {
    app()
}
