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

/// The newest 1,000 kept refusals (older than `after`, the `seq` of the last of the page
/// before, if given) and the most refused; how many are kept in all in `X-Total-Count`.
#[get("/api/refused?<after>")]
fn refused(admin: Admin, after: Option<&str>) -> Answer {
    let after = match after.map(view::refusals_start).transpose() {
        Ok(after) => after,
        Err(message) => {
            return Answer::json(&view::Failed::new(message)).with_status(Status::BadRequest)
        }
    };
    let refused = view::refused(&admin.handle, after);
    let total = refused.total;
    Answer::json(&refused).with_total(total)
}

/// The first 1,000 bans by target (after `after`, the last target of the page before, if
/// given) that match `q`; how many match in all in `X-Total-Count`.
#[get("/api/bans?<q>&<after>")]
fn bans(admin: Admin, q: Option<&str>, after: Option<&str>) -> Answer {
    let after = match after.map(view::page_start).transpose() {
        Ok(after) => after,
        Err(message) => {
            return Answer::json(&view::Failed::new(message)).with_status(Status::BadRequest)
        }
    };
    let bans = view::bans(&admin.handle, q, after);
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
