//! What the fairing does on every request: decide it (and send a refused one to the
//! refusal route, whose handler fails with the policy's status so the app's catcher
//! answers), and count responses for the automatic-ban rules.

use std::sync::Arc;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{uri::Origin, Method, Status};
use rocket::route::{Handler, Outcome};
use rocket::{Data, Request};

use crate::decide::spec::APP_WIDE;
use crate::decide::{decide, refuse_path, AllowState, Stage, REFUSED_PATH};
use crate::runtime::auto_ban::AutoBans;

/// Every method a request can have; each gets a refusal route.
pub(super) const ALL_METHODS: [Method; 9] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Delete,
    Method::Patch,
    Method::Options,
    Method::Trace,
    Method::Connect,
];

/// The status a refused request is answered with, for the refusal route.
struct Refusal(Status);

/// Decides every request, as the last request fairing, and sends refused ones to the
/// refusal route. The path (for path-scoped policies) is the one the router will see.
pub(super) struct Decide;

#[rocket::async_trait]
impl Fairing for Decide {
    fn info(&self) -> Info {
        Info {
            name: "rocket-allow (decision)",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        // Fails closed: without the state nothing is let in. (`rocket()` borrows the app,
        // not the request, so the state is looked up once.)
        let state = req.rocket().state::<AllowState>();
        let ruling = state.map(|AllowState(shared)| {
            match shared.spec.policy_for(|| req.uri().path().segments()) {
                Some(policy) => decide(shared, req, policy, Stage::Arriving),
                None => refuse_path(shared, req),
            }
        });
        if let (Some(r), Some(AllowState(s))) = (ruling, state) {
            if s.keep_rulings {
                crate::decide::keep_ruling(req, r);
            }
        }
        match (state.filter(|s| s.0.publish), ruling.and_then(|r| r.client)) {
            (None, _) => {}
            (Some(_), Some(client)) => crate::publish::publish(req, client),
            (Some(_), None) => crate::publish::publish_unknown(req),
        }
        match ruling {
            Some(r) if r.admitted() => {}
            refused => {
                let status = refused.map_or(Status::Forbidden, |r| r.status);
                req.local_cache(|| Refusal(status));
                // A constant, so parsing cannot fail (every refusal test goes through here).
                let uri = Origin::parse(REFUSED_PATH).expect("REFUSED_PATH is an origin URI");
                // The method is kept (HEAD stays HEAD, so Rocket strips the body): every
                // method has a refusal route.
                req.set_uri(uri);
            }
        }
    }
}

/// Counts responses for the automatic-ban rules (attached only when there are some).
pub(super) struct Responses(pub(super) Arc<AutoBans>);

#[rocket::async_trait]
impl Fairing for Responses {
    fn info(&self) -> Info {
        Info {
            name: "rocket-allow (automatic bans)",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut rocket::Response<'r>) {
        self.0.on_response(req, res.status().code);
    }
}

/// The refusal route's handler: fails with the policy's status so the app's catcher for it
/// answers.
#[derive(Clone)]
pub(super) struct Refuse;

#[rocket::async_trait]
impl Handler for Refuse {
    async fn handle<'r>(&self, req: &'r Request<'_>, _: Data<'r>) -> Outcome<'r> {
        // A request for this path that was not refused (an admitted client asking for it by
        // name) gets the app-wide status.
        let app_wide = req
            .rocket()
            .state::<AllowState>()
            .map_or(Status::Forbidden, |s| {
                s.0.spec.policies[APP_WIDE].reject_status
            });
        Outcome::Error(req.local_cache(|| Refusal(app_wide)).0)
    }
}
