//! What makes a change a change the operator meant: a POST from the page itself.
//!
//! Three checks, each enough against a form posted from another site: the browser's own
//! `Sec-Fetch-Site` must say `same-origin`, its `Origin` must be this page's, and the form
//! must carry the token of the `rocket_allow_csrf` cookie (SameSite=Strict, HttpOnly),
//! which another site can neither read nor make the browser send. Clients that send no
//! fetch metadata (scripts) still need the token.
//!
//! The token is not the cookie but an HMAC-SHA256 of it under a key drawn from the OS's
//! random source when the process first needs one: a page on a sibling subdomain or on
//! another port of the host can set (toss) the cookie, so a cookie value it chose must not
//! come with a token it can compute.
//!
//! The page is served over HTTPS when Rocket serves TLS itself, or when a trusted proxy
//! that terminates TLS says so (`X-Forwarded-Proto: https`, or `proto=https` in `Forwarded`):
//! then the `Origin` it expects is `https://` and the cookie is `Secure`.

use std::net::IpAddr;
use std::sync::OnceLock;

use ring::hmac;
use rocket::http::{Cookie, SameSite, Status};
use rocket::request::{FromRequest, Outcome, Request};
use subtle::ConstantTimeEq;

use super::Admin;
use crate::decide::Shared;
use crate::guard::GuardError;

/// The cookie that holds the browser's secret.
pub(crate) const COOKIE: &str = "rocket_allow_csrf";

/// 32 random bytes, hex: 64 characters.
const TOKEN_LEN: usize = 64;

fn is_token(value: &str) -> bool {
    value.len() == TOKEN_LEN && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The key forms' tokens are made with: one per process, from the OS's random source;
/// `None` without one (then no token is made and every change is refused).
fn key() -> Option<&'static hmac::Key> {
    static KEY: OnceLock<Option<hmac::Key>> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        Some(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    })
    .as_ref()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token forms carry for the cookie `cookie`: its HMAC under the process's key, hex.
fn form_token(cookie: &str) -> Option<String> {
    Some(hex(hmac::sign(key()?, cookie.as_bytes()).as_ref()))
}

/// Whether the browser's request came over HTTPS: a trusted proxy's word when `peer` is
/// one and it says (a client's own `X-Forwarded-Proto` is never read), else whether Rocket
/// serves TLS itself.
pub(crate) fn served_over_https(req: &Request<'_>, shared: &Shared, peer: IpAddr) -> bool {
    if shared
        .generation
        .load()
        .trusted
        .contains(peer.to_canonical())
    {
        let headers = req.headers();
        let proto: Vec<&str> = headers.get("X-Forwarded-Proto").collect();
        let forwarded: Vec<&str> = headers.get("Forwarded").collect();
        if let Some(https) = crate::client::proxied_https(&proto, &forwarded) {
            return https;
        }
    }
    req.rocket().config().tls_enabled()
}

/// The token of this browser's forms: made from its cookie, or from a new cookie (set on
/// the answer; `Secure` when the page is served over HTTPS). Empty (matching nothing)
/// without the OS's random source.
pub(crate) fn token(req: &Request<'_>, base: &str, https: bool) -> String {
    let no_token = || {
        log::error!(target: "rocket_allow", "rocket-allow: admin page: no random source for a CSRF token; changes are refused");
        String::new()
    };
    if let Some(sent) = req.cookies().get(COOKIE).map(|c| c.value()) {
        if is_token(sent) {
            return form_token(sent).unwrap_or_else(no_token);
        }
    }
    let mut bytes = [0u8; TOKEN_LEN / 2];
    // Without the OS's random source no token can be trusted: an empty one matches nothing.
    if getrandom::fill(&mut bytes).is_err() {
        return no_token();
    }
    let secret = hex(&bytes);
    let Some(token) = form_token(&secret) else {
        return no_token();
    };
    let cookie = Cookie::build((COOKIE, secret))
        .path(base.to_string())
        .same_site(SameSite::Strict)
        .http_only(true)
        .secure(https);
    req.cookies().add(cookie);
    token
}

/// An admitted POST that may change something: not read-only, and sent by this page (fetch
/// metadata and origin). The form's token is checked by [`Change::check`].
pub(crate) struct Change {
    pub admin: Admin,
    /// The token of the cookie that came with the request (`None`: no cookie).
    sent_cookie: Option<String>,
}

impl Change {
    /// Whether the form's token is the one made for the cookie.
    pub fn check(&self, sent_token: &str) -> Result<(), Status> {
        let expected = match &self.sent_cookie {
            Some(cookie) if is_token(cookie) => form_token(cookie),
            _ => None,
        };
        let ok = expected.is_some_and(|t| bool::from(t.as_bytes().ct_eq(sent_token.as_bytes())));
        if ok {
            Ok(())
        } else {
            refuse("the form's CSRF token is not this browser's")
        }
    }
}

fn refuse(why: &str) -> Result<(), Status> {
    log::warn!(target: "rocket_allow", "rocket-allow: admin page: change refused: {why}");
    Err(Status::Forbidden)
}

/// The origin this request was sent to, as a browser writes it in `Origin`.
fn own_origin(req: &Request<'_>, https: bool) -> Option<String> {
    let host = req.headers().get_one("Host")?;
    let scheme = if https { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// The fetch metadata and origin checks.
fn same_origin(req: &Request<'_>, https: bool) -> Result<(), Status> {
    let headers = req.headers();
    if let Some(site) = headers.get_one("Sec-Fetch-Site") {
        if !site.eq_ignore_ascii_case("same-origin") {
            return refuse(&format!("Sec-Fetch-Site is {site:?}"));
        }
    }
    if let Some(origin) = headers.get_one("Origin") {
        let own = own_origin(req, https);
        if !own.is_some_and(|own| own.eq_ignore_ascii_case(origin)) {
            return refuse(&format!("Origin {origin:?} is not this page's"));
        }
    }
    Ok(())
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Change {
    type Error = GuardError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, GuardError> {
        let admin = match Admin::from_request(req).await {
            Outcome::Success(admin) => admin,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(s) => return Outcome::Forward(s),
        };
        if admin.read_only {
            log::warn!(target: "rocket_allow", "rocket-allow: admin page: change refused: read_only = true");
            return Outcome::Error((Status::Forbidden, GuardError::Refused));
        }
        if let Err(status) = same_origin(req, admin.https) {
            return Outcome::Error((status, GuardError::Refused));
        }
        Outcome::Success(Change {
            admin,
            sent_cookie: req.cookies().get(COOKIE).map(|c| c.value().to_string()),
        })
    }
}
