//! The admin page: who gets in, who is refused and why, bans, rules and `explain`, in a
//! browser, mounted in one line:
//!
//! ```rust,no_run
//! # #[macro_use] extern crate rocket;
//! #[launch]
//! fn rocket() -> _ {
//!     rocket::build()
//!         .attach(rocket_allow::AllowFairing::fairing())
//!         .mount("/allow", rocket_allow::admin::routes())
//! }
//! ```
//!
//! Every route requires the `[allow.admin] policy` (by default a built-in one that admits
//! 127.0.0.1 and ::1 only), decided as the fairing decides and refused with the policy's
//! status. Changes are form POSTs with a CSRF token and an `Origin` / `Sec-Fetch-Site`
//! check; `read_only = true` removes the forms and refuses every POST. Pages are rendered
//! by the server (no script, no external asset) under a strict `Content-Security-Policy`;
//! the same data is JSON under `api/`. See the guide's admin page
//! ([`crate::guide::admin`]) for the security model.
//!
//! Routes (under the mount point): `GET /` (overview), `/refused`, `/bans`, `/rules`,
//! `/explain`, `/admin.css`; `POST /bans` (ban), `/unban`; `GET /api/overview`,
//! `/api/refused`, `/api/bans`, `/api/rules`, `/api/explain`.

mod api;
mod chart;
mod csrf;
mod host;
mod pages;
mod respond;
mod view;

use std::net::IpAddr;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::route::Route;
use rocket::{Build, Rocket};

use crate::config::{AllowConfig, Mode, PolicyConfig, BUILTIN_ADMIN_POLICY};
use crate::guard::{admit, GuardError};
use crate::rules::Rule;
use crate::runtime::handle::AllowHandle;

/// What every admin route's name starts with, so ignite can tell the page is mounted.
const ROUTE_PREFIX: &str = "rocket_allow::admin::";

/// The admin page's routes: mount them where the page should be
/// (`.mount("/allow", rocket_allow::admin::routes())`).
///
/// ```
/// let routes = rocket_allow::admin::routes();
/// assert!(routes.iter().any(|r| r.uri.path() == "/bans"));
/// ```
pub fn routes() -> Vec<Route> {
    let mut all = pages::routes();
    all.extend(api::routes());
    for route in &mut all {
        let name = route.name.as_deref().unwrap_or("route");
        route.name = Some(format!("{ROUTE_PREFIX}{name}").into());
    }
    all
}

/// At ignite: when the page is mounted and `[allow.admin] policy` is not set, adds the
/// built-in policy (127.0.0.1 and ::1, always enforced), unless the app defines one of
/// that name itself.
pub(crate) fn prepare(mut config: AllowConfig, rocket: &Rocket<Build>) -> AllowConfig {
    let mounted = rocket.routes().any(|r| {
        r.name
            .as_deref()
            .is_some_and(|n| n.starts_with(ROUTE_PREFIX))
    });
    if mounted
        && config.admin.policy.is_none()
        && !config.policies.contains_key(BUILTIN_ADMIN_POLICY)
    {
        let rules = [
            Rule::allow("127.0.0.1"),
            Rule::allow("::1"),
            Rule::deny("all"),
        ];
        let mut policy = PolicyConfig::new(rules.into_iter().flatten().collect());
        // A dry run of the app's rules must not open the admin page.
        policy.mode = Some(Mode::Enforce);
        config
            .policies
            .insert(BUILTIN_ADMIN_POLICY.to_string(), policy);
    }
    config
}

/// A request the admin policy admitted: what every admin route needs.
pub(crate) struct Admin {
    pub handle: AllowHandle,
    /// The client the policy admitted.
    pub client: IpAddr,
    /// The TCP peer the request came from: the client, or the trusted proxy that forwarded
    /// it (whose bans refuse the request too).
    pub peer: IpAddr,
    /// Where the routes are mounted (`/allow`), for links.
    pub base: String,
    pub read_only: bool,
    /// The CSRF token forms carry (made from the cookie's secret).
    pub csrf: String,
    /// Whether the browser's request came over HTTPS (Rocket's TLS, or a trusted proxy's
    /// word): the scheme of the `Origin` a change must come from.
    pub https: bool,
}

impl Admin {
    /// The handle, with changes recorded as made through the admin page by this client.
    pub fn acting(&self) -> AllowHandle {
        self.handle
            .acting_as(&format!("admin page, client {}", self.client))
    }

    /// The address of this request a ban on `target` would refuse it for, if any: the
    /// client, or the peer it came through (a trusted proxy), as a ban on either refuses
    /// the request. The page, which decides its own requests bans first, would then refuse
    /// the operator who made it (and everyone behind that proxy), with no page left to
    /// lift it from. A target that is not a ban's holds nothing (the ban is refused anyway).
    pub fn holds_me(&self, target: &str) -> Option<IpAddr> {
        let net = crate::decide::bans::parse_target(target.trim()).ok()?;
        [self.client, self.peer]
            .into_iter()
            .map(|ip| ip.to_canonical())
            .find(|ip| net.contains(ip))
    }

    /// A link under the mount point.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = GuardError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, GuardError> {
        let Some(handle) = req.rocket().state::<AllowHandle>() else {
            log::error!(
                target: "rocket_allow",
                "rocket-allow: the admin page is mounted, but AllowFairing is not attached; \
                 the request is refused with 500"
            );
            return Outcome::Error((Status::InternalServerError, GuardError::NotAttached));
        };
        let settings = &handle.shared.admin;
        let client = match admit(
            req,
            settings.policy_name(),
            BUILTIN_ADMIN_POLICY,
            true,
            || "the admin page ([allow.admin] policy)".to_string(),
        ) {
            Outcome::Success(client) => client,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(s) => return Outcome::Forward(s),
        };
        if !host::answers_to(req, &settings.hosts) {
            let sent = req.headers().get_one("Host").unwrap_or("");
            log::warn!(target: "rocket_allow",
                "rocket-allow: admin page: refused: Host {sent:?} is not an address, localhost or \
                 one of allow.admin.hosts (a page rebound to this address by DNS?)");
            // The catcher that answers can say why (`RefusedBy::Host`).
            crate::Refused {
                method: req.method().as_str().to_string(),
                uri: req.uri().to_string(),
                client: Some(client.ip),
                peer: Some(client.peer),
                policy: Some(settings.policy_name().to_string()),
                by: crate::RefusedBy::Host {
                    host: sent.to_string(),
                },
                status: Status::Forbidden.code,
            }
            .keep(req);
            return Outcome::Error((Status::Forbidden, GuardError::Refused));
        }
        let base = req
            .route()
            .map_or_else(|| "/".to_string(), |r| r.uri.base().to_string());
        let https = csrf::served_over_https(req, &handle.shared, client.peer);
        let csrf = csrf::token(req, &base, https);
        Outcome::Success(Admin {
            handle: handle.clone(),
            client: client.ip,
            peer: client.peer,
            base,
            read_only: settings.read_only,
            csrf,
            https,
        })
    }
}
