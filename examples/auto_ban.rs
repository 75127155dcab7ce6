//! Automatic bans: scanners that collect 404s, and failed logins counted with
//! `AllowHandle::strike`.
//!
//! `cargo run --example auto_ban` serves http://127.0.0.1:8004/ with the rules in
//! `examples/auto_ban.toml`, behind a "proxy" at 127.0.0.1 (curl with `X-Forwarded-For`):
//!
//! ```text
//! for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code}\n' \
//!     -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:8004/wp-login.php; done
//! curl -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:8004/   # 403: banned by auto_ban scanners
//! for i in 1 2 3 4; do curl -d 'password=guess' -H 'X-Forwarded-For: 203.0.113.8' \
//!     http://127.0.0.1:8004/login; echo; done                       # the 4th: banned
//! curl http://127.0.0.1:8004/bans                                    # what was banned, and why
//! ```

use rocket::figment::providers::{Env, Format, Toml};
use rocket::form::Form;
use rocket::{get, post, routes, Build, FromForm, Rocket, State};
use rocket_allow::{AllowFairing, AllowHandle, ClientIp};

#[get("/")]
fn index() -> &'static str {
    "Hello, world!\n"
}

#[derive(FromForm)]
struct Login<'r> {
    password: &'r str,
}

/// A login whose every failure is a strike against the client rocket-allow decided on
/// (never an address read from a header by the handler itself).
#[post("/login", data = "<form>")]
fn login(form: Form<Login<'_>>, client: ClientIp, allow: &State<AllowHandle>) -> String {
    if form.password == "let me in" {
        return "welcome\n".into();
    }
    match allow.strike("login", client.ip()) {
        Ok(true) => "wrong password; you are banned now\n".into(),
        Ok(false) => "wrong password\n".into(),
        Err(e) => format!("misconfigured: {e}\n"),
    }
}

/// The bans in force (loopback only would be wiser in a real app: see the policies example).
#[get("/bans")]
fn bans(allow: &State<AllowHandle>) -> String {
    allow
        .bans()
        .iter()
        .map(|b| {
            format!(
                "{} by {}: {}\n",
                b.target,
                b.origin.as_deref().unwrap_or("hand"),
                b.reason.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// The app, configured from `examples/auto_ban.toml` (ROCKET_* still apply).
pub fn app() -> Rocket<Build> {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/auto_ban.toml");
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::file(config).nested())
        .merge(Env::prefixed("ROCKET_").global());
    rocket::custom(figment)
        .attach(AllowFairing::fairing())
        .mount("/", routes![index, login, bans])
}

#[rocket::launch]
fn rocket() -> _ {
    app()
}
