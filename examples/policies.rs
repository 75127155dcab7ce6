//! Policies: an open site, an office-only `/admin`, an open `/healthz`.
//!
//! `cargo run --example policies` serves http://127.0.0.1:8001/ with the rules in
//! `examples/policies.toml`:
//!
//! ```text
//! curl http://127.0.0.1:8001/                                 # open: Hello
//! curl http://127.0.0.1:8001/admin                            # 127.0.0.1 is in @office: welcome
//! curl --interface 127.0.0.2 http://127.0.0.1:8001/admin      # not in @office: 404
//! curl --interface 127.0.0.2 http://127.0.0.1:8001/healthz    # open: ok
//! curl http://127.0.0.1:8001/report                           # the guard, and the client address
//! ```

#[macro_use]
extern crate rocket;

use rocket::figment::providers::{Env, Format, Toml};
use rocket_allow::{Allowed, ClientIp, Policy};

/// The `[allow.policies.admin]` policy, required by routes outside `/admin` too.
struct Admin;
impl Policy for Admin {
    const NAME: &'static str = "admin";
}

#[get("/")]
fn index() -> &'static str {
    "Hello, world!\n"
}

#[get("/healthz")]
fn healthz() -> &'static str {
    "ok\n"
}

#[get("/admin")]
fn admin() -> &'static str {
    "welcome to /admin\n"
}

/// Not under `/admin`, so the fairing lets everyone reach it; the guard does the checking
/// (an app could also accept a logged-in user here, with `Option<Allowed<Admin>>`).
#[get("/report")]
fn report(ok: Allowed<Admin>, ip: ClientIp) -> String {
    format!("report for {ip} (admitted as {})\n", ok.client())
}

#[catch(404)]
fn not_found() -> &'static str {
    "Not found.\n"
}

#[launch]
fn rocket() -> _ {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies.toml");
    // Rocket's defaults and this file, not Rocket.toml (the quick start's); ROCKET_* still apply.
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::file(config).nested())
        .merge(Env::prefixed("ROCKET_").global());
    rocket::custom(figment)
        .attach(rocket_allow::AllowFairing::fairing())
        .mount("/", routes![index, healthz, admin, report])
        .register("/", catchers![not_found])
}
