//! The admin page under test: an app with it mounted at `/allow`, and raw HTTP that logs in
//! (takes the CSRF cookie) and posts forms the way a browser does.

use rocket::{Build, Rocket};

use super::http::{Response, Server};

/// An app (see [`super::app`]) with the admin page mounted at `/allow`.
pub fn admin_app(toml: &str) -> Rocket<Build> {
    super::app(toml).mount("/allow", rocket_allow::admin::routes())
}

/// The value of the `rocket_allow_csrf` cookie a response sets.
pub fn csrf_cookie(r: &Response) -> String {
    r.head
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then_some(value.trim())
        })
        .find_map(|v| v.strip_prefix("rocket_allow_csrf="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no csrf cookie in {}", r.head))
        .to_string()
}

/// The token a page's forms carry (its first hidden `csrf` input): made from the cookie's
/// secret, not the cookie itself.
pub fn csrf_token(r: &Response) -> String {
    let at = r
        .body
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no csrf field in {}", r.body))
        + r#"name="csrf" value=""#.len();
    r.body[at..].split('"').next().unwrap().to_string()
}

/// A browser's login on a page: its CSRF cookie and the token of the page's forms.
pub fn login(r: &Response) -> (String, String) {
    (csrf_cookie(r), csrf_token(r))
}

/// A header's value (first of that name, any case).
pub fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// `GET path` from `from`, with `Host: 127.0.0.1:<port>`.
pub fn get(server: &Server, from: &str, path: &str) -> Response {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        server.port
    );
    server.raw_from(from, req.as_bytes())
}

/// `POST path` from `from` with a form `body` and extra header lines.
pub fn post(server: &Server, from: &str, path: &str, body: &str, headers: &[String]) -> Response {
    let host = format!("127.0.0.1:{}", server.port);
    form_request(server, from, "POST", &host, path, body, headers)
}

/// `method path` from `from` with `Host: host`, a form `body` and extra header lines.
pub fn form_request(
    server: &Server,
    from: &str,
    method: &str,
    host: &str,
    path: &str,
    body: &str,
    headers: &[String],
) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    server.raw_from(from, req.as_bytes())
}

/// The app is open to every address but 127.0.0.66; the admin page keeps its built-in
/// policy (127.0.0.1 and ::1).
pub const OPEN: &str = r#"
[default.allow]
rules = [{ deny = "127.0.0.66" }]
"#;

/// The headers a browser with the CSRF cookie `cookie` sends with a form posted from the
/// page itself.
pub fn same_origin(server: &Server, cookie: &str) -> Vec<String> {
    vec![
        format!("Cookie: rocket_allow_csrf={cookie}"),
        format!("Origin: http://127.0.0.1:{}", server.port),
        "Sec-Fetch-Site: same-origin".into(),
    ]
}

/// A form posted by the page itself from 127.0.0.1 (the `cookie`, Origin, Sec-Fetch-Site;
/// the token is in `body`).
pub fn post_from_page(server: &Server, path: &str, body: &str, cookie: &str) -> Response {
    post(
        server,
        "127.0.0.1",
        path,
        body,
        &same_origin(server, cookie),
    )
}

/// An admin policy `ops` that admits 127.0.0.3 only (so 127.0.0.1 is refused).
pub const OPS_ONLY: &str = r#"
[default.allow]
rules = []
[default.allow.policies.ops]
rules = [{ allow = "127.0.0.3" }, { deny = "all" }]
[default.allow.admin]
policy = "ops"
"#;

/// Every page of the admin page (mounted at `/allow`), explain with an address.
pub const PAGES: [&str; 5] = [
    "/allow/",
    "/allow/refused",
    "/allow/bans",
    "/allow/rules",
    "/allow/explain?ip=127.0.0.50",
];
