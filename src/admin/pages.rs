//! The HTML pages and the form POSTs. Every value is interpolated through maud, which
//! escapes it: what a client sent (path, user agent) can only ever be text.

use std::time::Duration;

use maud::{html, Markup, DOCTYPE};
use rocket::form::{Form, FromForm};
use rocket::http::{ContentType, Status};
use rocket::response::Redirect;
use rocket::{get, post, routes, Route};

use super::csrf::Change;
use super::respond::{Answer, CSS};
use super::{chart, view, Admin};

pub(super) fn routes() -> Vec<Route> {
    routes![overview, refused, bans, rules, explain, stylesheet, ban, unban]
}

/// The pages, in the order of the menu: (path, title).
const MENU: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/refused", "Who is refused"),
    ("/bans", "Bans"),
    ("/rules", "Rules"),
    ("/explain", "Explain"),
];

/// Durations the ban form offers, in seconds (0: until lifted).
const DURATIONS: [(u64, &str); 6] = [
    (900, "15 minutes"),
    (3600, "1 hour"),
    (86_400, "1 day"),
    (604_800, "7 days"),
    (2_592_000, "30 days"),
    (0, "until lifted"),
];

/// The longest reason kept from the form.
const REASON_MAX: usize = 200;

fn layout(admin: &Admin, here: &str, refresh: bool, body: Markup) -> Answer {
    let title = MENU
        .iter()
        .find(|(p, _)| *p == here)
        .map_or("", |(_, t)| *t);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content="30"; }
                title { (title) " · rocket-allow" }
                link rel="stylesheet" href=(admin.link("/admin.css"));
            }
            body {
                header {
                    h1 { "rocket-allow" }
                    @for (path, name) in MENU {
                        a href=(admin.link(path)) class=[(path == here).then_some("here")] { (name) }
                    }
                }
                main {
                    @if admin.read_only {
                        p.note { "Read-only: this page shows everything and changes nothing ([allow.admin] read_only = true)." }
                    }
                    (body)
                }
            }
        }
    };
    Answer::html(page.into_string())
}

/// A hidden CSRF field.
fn token(admin: &Admin) -> Markup {
    html! { input type="hidden" name="csrf" value=(admin.csrf); }
}

/// A one-button form that posts `fields` (and the token) to `action`.
fn post_button(
    admin: &Admin,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    title: &str,
) -> Markup {
    html! {
        @if !admin.read_only {
            form.inline method="post" action=(admin.link(action)) {
                (token(admin))
                @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
                button type="submit" title=(title) { (label) }
            }
        }
    }
}

/// A one-button form that bans `target` for an hour; none for a target that holds the
/// operator (see [`Admin::holds_me`]).
fn ban_button(admin: &Admin, target: &str, reason: &str) -> Markup {
    if admin.holds_me(target).is_some() {
        return html! { span.muted title="a ban on it would refuse you too" { "holds you" } };
    }
    let fields = [("target", target), ("duration", "3600"), ("reason", reason)];
    post_button(
        admin,
        "/bans",
        &fields,
        "ban",
        &format!("Ban {target} for an hour"),
    )
}

/// A one-button form that lifts the ban on `target`.
fn unban_button(admin: &Admin, target: &str, label: &str) -> Markup {
    post_button(
        admin,
        "/unban",
        &[("target", target)],
        label,
        &format!("Lift the ban on {target}"),
    )
}

/// The instance this page is of, when a fleet store is configured: refusals, the chart
/// and rule hits are then this instance's own (each instance keeps its own in memory),
/// while bans are the fleet's.
fn instance(admin: &Admin) -> Option<String> {
    admin.handle.store_status().map(|s| s.instance)
}

/// Says that the view below is this instance's own, with a fleet store: `what` (a
/// sentence that starts with a capital and ends before "this instance").
fn this_instance_only(admin: &Admin, what: &str) -> Markup {
    html! {
        @if let Some(instance) = instance(admin) {
            p.muted id="scope" {
                (what) " this instance, " code { (instance) } ", only: each instance of the fleet \
                 keeps its own, in memory. Bans are the fleet's."
            }
        }
    }
}

fn explain_link(admin: &Admin, ip: &str, path: &str) -> Markup {
    let query = format!(
        "/explain?ip={}&path={}",
        rocket::http::RawStr::new(ip).percent_encode(),
        rocket::http::RawStr::new(path).percent_encode()
    );
    html! { a href=(admin.link(&query)) { "explain" } }
}

#[get("/")]
fn overview(admin: Admin) -> Answer {
    let o = view::overview(&admin.handle, admin.read_only);
    let sum = |f: fn(&view::Minute) -> u64| o.minutes.iter().map(f).sum::<u64>();
    let body = html! {
        h2 { "Decisions per minute, last hour" }
        (this_instance_only(&admin, "Decisions made by"))
        (chart::decisions(&o.minutes))
        p {
            @for (i, ((name, colour), total)) in chart::SERIES.iter().zip([sum(|m| m.allowed), sum(|m| m.refused), sum(|m| m.would_refuse)]).enumerate() {
                @if i > 0 { " · " }
                svg.key width="12" height="12" viewBox="0 0 12 12" { rect width="12" height="12" fill=(colour) {} }
                " " (name) ": " strong { (total) }
            }
        }
        dl.stats {
            dt { "Access log" }
            dd { @if o.access_log { "on" } @else { "off" } }
            dt { "Log lines lost" }
            dd class=[(o.log_lines_lost > 0).then_some("bad")] { (o.log_lines_lost) }
            dt { "Bans in force" }
            dd { a href=(admin.link("/bans")) { (o.bans) } }
            dt { "Fleet store" }
            dd {
                @match &o.store {
                    None => span.muted { "none" },
                    Some(s) => {
                        span class=(if s.connected { "ok" } else { "bad" }) {
                            @if s.connected { "connected" } @else { "not connected" }
                        }
                        " · last sync "
                        @match s.last_sync_age_secs { Some(a) => { (format!("{a:.0}")) " s ago" }, None => "never" }
                        " · " (s.pending) " changes waiting · instance " code { (s.instance) }
                    }
                }
            }
        }
        h2 { "Sources" }
        @if o.sources.is_empty() {
            p.muted { "No list files, URL lists or host names: every rule is inline." }
        } @else {
            div.wrap { table {
                tr { th { "Kind" } th { "Set" } th { "From" } th { "Last good refresh" } th { "Last error" } }
                @for s in &o.sources {
                    tr {
                        td { (s.kind) }
                        td { @if s.name.is_empty() { "host names" } @else { "@" (s.name) } }
                        td { code { (s.location) } }
                        td { (s.last_ok.as_deref().unwrap_or("none since start")) }
                        td class=[s.last_error.is_some().then_some("bad")] {
                            @match (&s.last_error_at, &s.last_error) {
                                (Some(at), Some(e)) => { (at) ": " (e) },
                                _ => "none",
                            }
                        }
                    }
                }
            } }
        }
    };
    layout(&admin, "/", true, body)
}

#[get("/refused?<after>")]
fn refused(admin: Admin, after: Option<&str>) -> Answer {
    let after = match after.map(view::refusals_start).transpose() {
        Ok(after) => after,
        Err(message) => return not_done(&admin, &message),
    };
    let r = view::refused(&admin.handle, after);
    let from = |start: Option<usize>| match start {
        Some(seq) => format!("{}?after={seq}", admin.link("/refused")),
        None => admin.link("/refused"),
    };
    let next = r
        .recent
        .last()
        .filter(|_| r.more)
        .map(|x| from(Some(x.seq)));
    let top = |title: &str, rows: &[view::Top]| {
        html! {
            h2 { (title) }
            @if rows.is_empty() { p.muted { "None." } } @else {
                div.wrap { table {
                    tr { th { "Client" } th { "Refusals" } th {} }
                    @for t in rows {
                        tr {
                            td { code { (t.target) } }
                            td { (t.count) }
                            td {
                                (explain_link(&admin, &t.example, "/")) " "
                                @if let Some(ban) = &t.banned_by { (unban_button(&admin, ban, "allow")) }
                                @else { (ban_button(&admin, &t.target, "from the refused list")) }
                            }
                        }
                    }
                } }
            }
        }
    };
    let body = html! {
        (this_instance_only(&admin, "Refusals, and the most refused below, seen by"))
        h2 { "Recent refusals and would-be refusals" }
        @if r.recent.is_empty() {
            @if after.is_some() {
                p.muted { "None older kept." }
                p { a href=(from(None)) { "From the newest" } }
            } @else { p.muted { "None yet." } }
        } @else {
            p.muted id="total" {
                (r.total) " kept."
                @if r.recent.len() < r.total {
                    " " (r.recent.len()) @if after.is_some() { " older ones" } @else { " newest" }
                    " are shown: page on for the rest."
                }
            }
            @if next.is_some() || after.is_some() {
                p.pages {
                    @if after.is_some() { a href=(from(None)) { "From the newest" } " " }
                    @if let Some(next) = &next { a href=(next) id="next" { "Next " (view::REFUSALS_SHOWN) } }
                }
            }
            div.wrap { table id="recent" {
                tr { th { "Time" } th { "Client" } th { "Via" } th { "Policy" } th { "Decided by" } th { "Request" } th { "User agent" } th {} }
                @for x in &r.recent {
                    tr {
                        td { (x.at) }
                        td { code { (x.client.as_deref().unwrap_or("unknown")) } }
                        td { @if let Some(v) = &x.via { code { (v) } } }
                        td { (x.policy) }
                        td {
                            @if x.enforced { span.bad { "refused " (x.status) } } @else { span.warn { "would refuse " (x.status) } }
                            br;
                            @match (&x.rule, &x.ban) {
                                (Some(rule), _) => code { (rule) },
                                (None, Some(ban)) => { "ban " code { (ban) } },
                                _ => (x.by),
                            }
                        }
                        td { (x.method) " " code.path { (x.path) } }
                        td.ua { (x.user_agent) }
                        td {
                            @if let Some(c) = &x.client {
                                (explain_link(&admin, c, &x.path)) " "
                                @if let Some(ban) = &x.banned_by { (unban_button(&admin, ban, "allow")) }
                                @else { (ban_button(&admin, c, "from the refused list")) }
                            }
                        }
                    }
                }
            } }
        }
        (top("Most refused clients", &r.top_clients))
        (top("Most refused networks", &r.top_networks))
    };
    layout(&admin, "/refused", false, body)
}

#[get("/bans?<q>&<after>")]
fn bans(admin: Admin, q: Option<&str>, after: Option<&str>) -> Answer {
    let after = match after.map(view::page_start).transpose() {
        Ok(after) => after,
        Err(message) => return not_done(&admin, &message),
    };
    let view::BanRows { total, rows, more } = view::bans(&admin.handle, q, after);
    // The same search from another start.
    let from = |start: Option<&str>| {
        let encode = |s: &str| rocket::http::RawStr::new(s).percent_encode().to_string();
        let mut query = Vec::new();
        if let Some(q) = q.filter(|q| !q.trim().is_empty()) {
            query.push(format!("q={}", encode(q)));
        }
        if let Some(start) = start {
            query.push(format!("after={}", encode(start)));
        }
        match query.is_empty() {
            true => admin.link("/bans"),
            false => format!("{}?{}", admin.link("/bans"), query.join("&")),
        }
    };
    let next = rows.last().filter(|_| more).map(|b| from(Some(&b.target)));
    let body = html! {
        @if !admin.read_only {
            h2 { "Ban" }
            form.box id="ban" method="post" action=(admin.link("/bans")) {
                (token(&admin))
                label { "Address or network" input name="target" required placeholder="203.0.113.7 or 203.0.113.0/24"; }
                label { "For" select name="duration" {
                    @for (secs, name) in DURATIONS { option value=(secs) selected[secs == 3600] { (name) } }
                } }
                label { "Reason" input name="reason" maxlength=(REASON_MAX) placeholder="optional"; }
                button type="submit" { "Ban" }
            }
        }
        h2 { "Bans in force" }
        @if let Some(instance) = instance(&admin) {
            p.muted id="scope" {
                "The fleet's: every instance sharing the store holds these bans, and a ban made or \
                 lifted here is made or lifted on every instance. This is instance "
                code { (instance) } "."
            }
        }
        form.box method="get" action=(admin.link("/bans")) {
            label { "Search" input name="q" value=(q.unwrap_or("")) placeholder="target, reason or origin"; }
            button type="submit" { "Search" }
        }
        @if rows.is_empty() {
            p.muted { "No bans" @if q.is_some() { " match" } @if let Some(a) = after { " after " (a) } "." }
            @if after.is_some() { p { a href=(from(None)) { "From the first" } } }
        } @else {
            p.muted id="total" {
                (total) @if total == 1 { " ban" } @else { " bans" } @if q.is_some() { " match" } "."
                @if rows.len() < total {
                    " " (rows.len()) " by target are shown"
                    @if let Some(a) = after { " after " (a) }
                    ": search to find the others, or page on."
                }
            }
            @if next.is_some() || after.is_some() {
                p.pages {
                    @if after.is_some() { a href=(from(None)) { "From the first" } " " }
                    @if let Some(next) = &next { a href=(next) id="next" { "Next " (view::BANS_SHOWN) } }
                }
            }
            div.wrap { table id="bans" {
                tr { th { "Target" } th { "Origin" } th { "Reason" } th { "Until" } th {} }
                @for b in &rows {
                    tr {
                        td { code.target { (b.target) } }
                        td { (b.origin) }
                        td { (b.reason.as_deref().unwrap_or("")) }
                        td { (b.expires.as_deref().unwrap_or("until lifted")) }
                        td { (unban_button(&admin, &b.target, "unban")) }
                    }
                }
            } }
        }
    };
    layout(&admin, "/bans", false, body)
}

#[get("/rules")]
fn rules(admin: Admin) -> Answer {
    let policies = view::rules(&admin.handle);
    let body = html! {
        p.muted { "Hits since the app started. Rules never hit are highlighted." }
        (this_instance_only(&admin, "Hits counted by"))
        @for p in &policies {
            h2 { "Policy " (p.policy) " " span.muted { "(" (p.mode) ", default " (p.default) ")" } }
            div.wrap { table.rules {
                tr { th { "#" } th { "Rule" } th { "Hits" } th { "Last hit" } }
                @for r in &p.rules {
                    tr class=[(r.count == 0).then_some("never")] {
                        td { (r.index) }
                        td { (r.verdict) " " code { (r.written) } }
                        td { (r.count) }
                        td { (r.last_hit.as_deref().unwrap_or("never")) }
                    }
                }
            } }
        }
    };
    layout(&admin, "/rules", false, body)
}

#[get("/explain?<ip>&<path>&<policy>")]
fn explain(admin: Admin, ip: Option<&str>, path: Option<&str>, policy: Option<&str>) -> Answer {
    let answer = ip.map(|ip| view::explain(&admin.handle, ip, path.unwrap_or("/"), policy));
    let names: Vec<String> = admin
        .handle
        .shared
        .spec
        .policies
        .iter()
        .filter_map(|p| p.name.clone())
        .collect();
    let body = html! {
        form.box id="explain" method="get" action=(admin.link("/explain")) {
            label { "Address" input name="ip" required value=(ip.unwrap_or("")) placeholder="203.0.113.7"; }
            label { "Path" input name="path" value=(path.unwrap_or("/")); }
            label { "Route guard (optional)" select name="policy" {
                option value="" { "none" }
                @for n in &names { option value=(n) selected[policy == Some(n.as_str())] { (n) } }
            } }
            button type="submit" { "Explain" }
        }
        @if let Some(a) = &answer {
            h2 { "Answer" }
            p id="answer" class=(match a.admitted { Some(true) => "ok", Some(false) => "bad", None => "warn" }) {
                code { (a.ip) } " " code { (a.path) } ": " strong { (a.text) }
            }
            @if let (Some(ban), false) = (&a.ban, admin.read_only) {
                p { (unban_button(&admin, ban, "lift this ban")) }
            }
        }
    };
    let status = match &answer {
        Some(a) if a.error => Status::BadRequest,
        _ => Status::Ok,
    };
    layout(&admin, "/explain", false, body).with_status(status)
}

#[get("/admin.css")]
fn stylesheet(_admin: Admin) -> (ContentType, &'static str) {
    (ContentType::CSS, CSS)
}

/// The ban form.
#[derive(FromForm)]
struct BanForm<'r> {
    csrf: &'r str,
    target: &'r str,
    /// Seconds; 0 until lifted.
    duration: u64,
    reason: Option<&'r str>,
}

/// The unban form.
#[derive(FromForm)]
struct UnbanForm<'r> {
    csrf: &'r str,
    target: &'r str,
}

/// A page that says why a change was not made.
fn not_done(admin: &Admin, why: &str) -> Answer {
    let body = html! {
        h2 { "Not done" }
        p.bad id="error" { (why) }
        p { a href=(admin.link("/bans")) { "Back to the bans" } }
    };
    layout(admin, "/bans", false, body).with_status(Status::BadRequest)
}

#[post("/bans", data = "<form>")]
fn ban(change: Change, form: Form<BanForm<'_>>) -> Result<Redirect, Result<Answer, Status>> {
    change.check(form.csrf).map_err(Err)?;
    let admin = &change.admin;
    let reason: String = form
        .reason
        .unwrap_or("")
        .trim()
        .chars()
        .take(REASON_MAX)
        .collect();
    if let Some(held) = admin.holds_me(form.target) {
        let you = if held == admin.client.to_canonical() {
            format!("you ({held})")
        } else {
            format!("you (the proxy {held} your requests come through)")
        };
        let why = format!(
            "A ban on {} would refuse {you} too, and this page with you: not done. \
             Ban it from code (AllowHandle::ban) if that is meant.",
            form.target.trim(),
        );
        return Err(Ok(not_done(admin, &why)));
    }
    let ttl = (form.duration > 0).then(|| Duration::from_secs(form.duration));
    let reason = Some(reason.as_str()).filter(|r| !r.is_empty());
    match admin
        .acting()
        .ban_with_reason(form.target.trim(), ttl, reason)
    {
        Ok(()) => Ok(Redirect::to(admin.link("/bans"))),
        Err(e) => Err(Ok(not_done(admin, &e.to_string()))),
    }
}

#[post("/unban", data = "<form>")]
fn unban(change: Change, form: Form<UnbanForm<'_>>) -> Result<Redirect, Result<Answer, Status>> {
    change.check(form.csrf).map_err(Err)?;
    let admin = &change.admin;
    match admin.acting().unban(form.target.trim()) {
        Ok(_) => Ok(Redirect::to(admin.link("/bans"))),
        Err(e) => Err(Ok(not_done(admin, &e.to_string()))),
    }
}
