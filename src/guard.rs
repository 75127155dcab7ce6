//! Request guards: `Allowed<P>` (a route requires a policy) and `ClientIp` (the address the
//! fairing decides on). Both use the fairing's decision path: same client address, same
//! proxies, same logging.

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};

use crate::decide::{decide_for_guard, AllowState};

/// A policy a route can require with [`Allowed<P>`]: names one `[allow.policies.<NAME>]`.
///
/// ```
/// struct Admin;
/// impl rocket_allow::Policy for Admin {
///     const NAME: &'static str = "admin";
/// }
/// ```
pub trait Policy: Send + Sync + 'static {
    /// The policy's name in `[allow.policies]`.
    const NAME: &'static str;
}

/// A request guard that succeeds when policy `P` admits the request's client, and
/// otherwise fails with the policy's `reject_status` (so the app's catcher for it
/// answers). The decision is logged like the fairing's, with the policy's name (once per
/// request and policy: not again when the fairing decided the request with it).
///
/// A policy that is not configured fails with 500 and an error log naming it: never an
/// allow. Use `Option<Allowed<P>>` to combine it with other ways in (a logged-in user).
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket_allow::{Allowed, Policy};
///
/// struct Admin;
/// impl Policy for Admin { const NAME: &'static str = "admin"; }
///
/// #[get("/admin")]
/// fn admin(_ok: Allowed<Admin>) -> &'static str { "welcome" }
/// ```
pub struct Allowed<P: Policy> {
    client: IpAddr,
    _policy: PhantomData<P>,
}

impl<P: Policy> Allowed<P> {
    /// The client address the policy admitted.
    pub fn client(&self) -> IpAddr {
        self.client
    }
}

impl<P: Policy> fmt::Debug for Allowed<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allowed")
            .field("policy", &P::NAME)
            .field("client", &self.client)
            .finish()
    }
}

/// Why a rocket-allow guard failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// The policy refused the client (the status is the policy's `reject_status`).
    Refused,
    /// No policy of this name is configured (500).
    UnknownPolicy(&'static str),
    /// `AllowFairing` is not attached, or failed to start (500).
    NotAttached,
}

#[rocket::async_trait]
impl<'r, P: Policy> FromRequest<'r> for Allowed<P> {
    type Error = GuardError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, GuardError> {
        let guard = || format!("Allowed<{}>", std::any::type_name::<P>());
        admit(req, P::NAME, P::NAME, false, guard).map(|client| Allowed {
            client: client.ip,
            _policy: PhantomData,
        })
    }
}

/// Whether policy `name` admits the request, decided as the fairing decides (same client,
/// logging, counting), and the client it admitted (with the peer it came from); `guard`
/// names the guard in errors. `strict`: a would-be refusal of
/// report mode refuses too (the admin page is never opened by a dry run). `unknown`: what
/// [`GuardError::UnknownPolicy`] says when no policy `name` is configured.
pub(crate) fn admit(
    req: &Request<'_>,
    name: &str,
    unknown: &'static str,
    strict: bool,
    guard: impl Fn() -> String,
) -> Outcome<crate::client::ClientAddr, GuardError> {
    let Some(AllowState(shared)) = req.rocket().state::<AllowState>() else {
        return not_attached(&guard());
    };
    let Some(policy) = shared.spec.policy_named(name) else {
        log::error!(
            target: "rocket_allow",
            "rocket-allow: {} names policy `{name}`, which is not configured under \
             [allow.policies]; the request is refused with 500",
            guard()
        );
        return Outcome::Error((
            Status::InternalServerError,
            GuardError::UnknownPolicy(unknown),
        ));
    };
    // Decided by the guard itself (not taken from the fairing having let the request
    // through: in report mode it lets through what the policy refuses).
    let ruling = decide_for_guard(shared, req, policy);
    let admitted = match strict {
        true => ruling.verdict == crate::rules::Verdict::Allow,
        false => ruling.admitted(),
    };
    if strict && !admitted && ruling.admitted() {
        // The decision's own line says "would be denied": say what happened here.
        log::warn!(
            target: "rocket_allow",
            "rocket-allow: {} refused {}: policy `{name}` is in report mode and would refuse              it; report mode never opens this route",
            guard(),
            ruling.client.map_or_else(|| "the client".to_string(), |c| c.ip.to_string())
        );
    }
    // Admitted means the client is known (an unreadable one is refused in every mode).
    match (admitted, ruling.client) {
        (true, Some(client)) => Outcome::Success(client),
        _ => Outcome::Error((ruling.status, GuardError::Refused)),
    }
}

/// The client address rocket-allow decides on: the TCP peer, or the address a trusted
/// proxy vouched for. Use it instead of `Request::client_ip()`, which believes an
/// `X-Real-IP` header anyone can send.
///
/// Fails with 500 only if [`AllowFairing`](crate::AllowFairing) is not attached (a request
/// whose address cannot be read never reaches a route while it is, in any mode).
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket_allow::ClientIp;
///
/// #[get("/whoami")]
/// fn whoami(ip: ClientIp) -> String { ip.to_string() }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address.
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientIp {
    type Error = GuardError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, GuardError> {
        let Some(AllowState(shared)) = req.rocket().state::<AllowState>() else {
            return not_attached("ClientIp");
        };
        let generation = shared.generation.load();
        // The policy the path falls under says what a missing header gets.
        let policy = shared
            .spec
            .policy_for(|| req.uri().path().segments())
            .unwrap_or(crate::decide::spec::APP_WIDE);
        match shared.client(&generation, req, policy) {
            Some(Ok(c)) => Outcome::Success(ClientIp(c.ip)),
            // Only reachable where the fairing does not decide (a catcher): refuse.
            _ => Outcome::Error((
                shared.spec.policies[crate::decide::spec::APP_WIDE].reject_status,
                GuardError::Refused,
            )),
        }
    }
}

fn not_attached<T>(guard: &str) -> Outcome<T, GuardError> {
    log::error!(
        target: "rocket_allow",
        "rocket-allow: {guard} used, but AllowFairing is not attached; the request is refused with 500"
    );
    Outcome::Error((Status::InternalServerError, GuardError::NotAttached))
}
