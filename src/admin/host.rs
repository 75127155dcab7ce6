//! Which names the page answers to. A web page an operator opens can have its name rebound
//! by DNS to the operator's own machine (or to the app's address on the LAN): the browser
//! then takes the admin page for part of that page's origin, sends it its fetch metadata,
//! Origin and the cookie it set, and lets its script read the answers. The one thing it
//! cannot hide is the name it used, in `Host`: the page answers only to IP literals,
//! `localhost` (and `*.localhost`, which browsers resolve themselves) and the names in
//! `[allow.admin] hosts`.

use rocket::request::Request;

/// Whether `req` addresses the page by a name it answers to. A request without `Host`
/// (HTTP/1.0, a script) comes from no browser and names nothing to check.
pub(crate) fn answers_to(req: &Request<'_>, hosts: &[String]) -> bool {
    let Some(host) = req.host() else {
        return req.headers().get_one("Host").is_none();
    };
    let name = host.domain().as_str();
    let name = name.strip_suffix('.').unwrap_or(name);
    let literal = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    literal.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name
            .len()
            .checked_sub(".localhost".len())
            .is_some_and(|at| {
                name.is_char_boundary(at) && name[at..].eq_ignore_ascii_case(".localhost")
            })
        || hosts.iter().any(|h| {
            let h = h.strip_suffix('.').unwrap_or(h);
            h.eq_ignore_ascii_case(name)
        })
}
