//! Policies: an open site, an office-only `/admin`, an open `/healthz`.
//!
//! `cargo run --example policies` serves http://127.0.0.1:8001/ with the rules in
//! `examples/policies.toml`:
//!
//! ```text
//! curl http://127.0.0.1:8001/                                 # open: Hello
//! curl http://127.0.0.1:8001/admin                            # 127.0.0.1 is in @office: welcome
//! curl --interface 127.0.0.2 http://127.0.0.1:8001/admin      # not in @office: 404, and
//!                                                             # the catcher says why
//! curl --interface 127.0.0.2 http://127.0.0.1:8001/healthz    # open: ok
//! curl http://127.0.0.1:8001/report                           # the guard, and the client address
//! ```

#[macro_use]
extern crate rocket;

use rocket::figment::providers::{Env, Format, Toml};
use rocket::Request;
use rocket_allow::{Allowed, ClientIp, Policy, Refused};

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

/// The app's own 404 page, which also answers `/admin` refusals (`reject_status = 404`):
/// `Refused::of` tells them apart and says what refused the request. (A real app would
/// show outsiders a plain 404; this one explains itself.)
#[catch(404)]
fn not_found(req: &Request<'_>) -> String {
    match Refused::of(req) {
        Some(r) => format!(
            "Not found. ({} may not see {}: {})\n",
            r.client_text(),
            r.uri,
            r.by_text()
        ),
        None => "Not found.\n".into(),
    }
}

#[launch]
fn rocket() -> _ {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies.toml");
    // Rocket's defaults and this file, not Rocket.toml (the quick start's); ROCKET_* still apply.
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::file(config).nested())
        .merge(Env::prefixed("ROCKET_").global());
    rocket::custom(figment)
        // Declaring the policy a guard needs makes a typo in it fail at ignite.
        .attach(rocket_allow::AllowFairing::fairing().require::<Admin>())
        .mount("/", routes![index, healthz, admin, report])
        .register("/", catchers![not_found])
}
