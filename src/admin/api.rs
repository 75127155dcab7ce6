//! The same data as the pages, as JSON under `api/`, for scripts. Read-only: changes are
//! made through the page's forms (or, from code, through `AllowHandle`).

use rocket::http::Status;
use rocket::{get, routes, Route};

use super::respond::Answer;
use super::{view, Admin};

pub(super) fn routes() -> Vec<Route> {
    routes![overview, refused, bans, rules, explain]
}

#[get("/api/overview")]
fn overview(admin: Admin) -> Answer {
    Answer::json(&view::overview(&admin.handle, admin.read_only))
}

#[get("/api/refused")]
fn refused(admin: Admin) -> Answer {
    Answer::json(&view::refused(&admin.handle))
}

#[get("/api/bans?<q>")]
fn bans(admin: Admin, q: Option<&str>) -> Answer {
    let bans = view::bans(&admin.handle, q);
    Answer::json(&bans.rows).with_total(bans.total)
}

#[get("/api/rules")]
fn rules(admin: Admin) -> Answer {
    Answer::json(&view::rules(&admin.handle))
}

#[get("/api/explain?<ip>&<path>&<policy>")]
fn explain(admin: Admin, ip: &str, path: Option<&str>, policy: Option<&str>) -> Answer {
    let answer = view::explain(&admin.handle, ip, path.unwrap_or("/"), policy);
    let status = if answer.error {
        Status::BadRequest
    } else {
        Status::Ok
    };
    Answer::json(&answer).with_status(status)
}
