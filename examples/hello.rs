//! The quick start: Flask-Allow's example, in Rocket.
//!
//! `cargo run --example hello` serves http://127.0.0.1:8000/ with the rules in
//! Rocket.toml: 127.0.0.1 (and ::1) may enter, everyone else gets 403, and every
//! decision goes to `access.log`.

#[macro_use]
extern crate rocket;

#[get("/")]
fn index() -> &'static str {
    "Hello, world!"
}

#[catch(403)]
fn forbidden() -> &'static str {
    "Forbidden: your address is not on the list.\n"
}

#[launch]
fn rocket() -> _ {
    rocket::build()
        .attach(rocket_allow::AllowFairing::fairing())
        .mount("/", routes![index])
        .register("/", catchers![forbidden])
}
