//! A request's ruling: what the fairing or a guard decided for it under a policy, kept in
//! the request's local cache for the guards, catchers and the response fairing.

use std::sync::Mutex;

use rocket::http::Status;
use rocket::Request;

use crate::client::ClientAddr;
use crate::log::By;
use crate::rules::Verdict;

/// Whether a request is decided by the fairing, as it arrived, or after it (guards), when
/// `publish_client_ip` may have changed its remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Arriving,
    After,
}

/// The outcome for one request under one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ruling {
    pub verdict: Verdict,
    /// The status a refusal is answered with (the policy's `reject_status`).
    pub status: Status,
    /// The address decided on, if it could be read.
    pub client: Option<ClientAddr>,
    /// `false` when the policy is in report mode (a refusal is then only recorded).
    pub enforced: bool,
    /// What decided.
    pub by: By,
}

impl Ruling {
    /// Whether the request goes on: allowed, or refused only in report mode.
    pub fn admitted(&self) -> bool {
        self.verdict == Verdict::Allow || !self.enforced
    }
}

/// The path refused requests are rerouted to. Only this crate's route serves it.
pub const REFUSED_PATH: &str = "/__rocket_allow/refused";

/// Whether the fairing refused this request (it was rerouted to [`REFUSED_PATH`]): then
/// only catchers see it.
pub(crate) fn refused(req: &Request<'_>) -> bool {
    req.uri().path() == REFUSED_PATH
}

/// The fairing's ruling of a request, kept for what happens after the response.
pub(super) struct Decided(pub Option<Ruling>);

/// Keeps the fairing's ruling of `req` (see [`ruling_of`]).
pub(crate) fn keep_ruling(req: &Request<'_>, ruling: Ruling) {
    req.local_cache(|| Decided(Some(ruling)));
}

/// How rocket-allow ruled on `req`: a guard's refusal if one refused it, else the
/// fairing's ruling.
pub(crate) fn ruling_of(req: &Request<'_>) -> Option<Ruling> {
    let guards = req.local_cache(GuardRulings::default);
    let refused = guards
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, r)| *r)
        .find(|r| !r.admitted());
    refused.or(req.local_cache(|| Decided(None)).0)
}

/// The guards' decisions of one request, by policy index.
#[derive(Default)]
pub(super) struct GuardRulings(pub Mutex<Vec<(usize, Ruling)>>);
