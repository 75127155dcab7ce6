//! The app `bench/http.sh` measures: one tiny route for every path, with the fairing unless
//! `BENCH_NO_FAIRING` is set. Configuration comes from `ROCKET_CONFIG`.

#[macro_use]
extern crate rocket;

#[get("/<_..>")]
fn index() -> &'static str {
    "Hello, world!"
}

#[launch]
fn rocket() -> _ {
    let rocket = rocket::build().mount("/", routes![index]);
    if std::env::var_os("BENCH_NO_FAIRING").is_some() {
        rocket
    } else {
        rocket.attach(rocket_allow::AllowFairing::fairing())
    }
}
