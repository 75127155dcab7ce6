//! [`AllowFairing`]: reads the configuration at ignite, decides every request, and
//! sends refused ones to a route that answers 403 through the app's own catcher.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::{uri::Origin, Method, Status};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Build, Data, Orbit, Request, Rocket};

use crate::client::ClientIpHeader;
use crate::config::AllowConfig;
use crate::decide::{decide, Shared};
use crate::error::Error;
use crate::log::AccessLog;
use crate::policy::{Addresses, Policy};
use crate::resolve::{self, Dns};
use crate::rules::{Target, Verdict};

/// The path refused requests are rerouted to. Only this crate's route serves it.
pub const REFUSED_PATH: &str = "/__rocket_allow/refused";

/// The fairing. Attach it, and put the rules in Rocket.toml:
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// #[get("/")]
/// fn index() -> &'static str { "Hello, world!" }
///
/// #[launch]
/// fn rocket() -> _ {
///     rocket::build()
///         .attach(rocket_allow::AllowFairing::fairing())
///         .mount("/", routes![index])
/// }
/// ```
pub struct AllowFairing {
    config: Option<AllowConfig>,
}

impl AllowFairing {
    /// The fairing, configured at ignite from Rocket's figment key `allow`
    /// (`[default.allow]` in Rocket.toml, `ROCKET_ALLOW`, ...).
    ///
    /// ```
    /// let fairing = rocket_allow::AllowFairing::fairing();
    /// let rocket = rocket::build().attach(fairing);
    /// ```
    pub fn fairing() -> AllowFairing {
        AllowFairing { config: None }
    }

    /// The fairing with a configuration built in code; Rocket's figment is not read.
    ///
    /// ```
    /// use rocket_allow::{AllowConfig, AllowFairing, Rule};
    /// let config = AllowConfig::new(vec![Rule::allow("127.0.0.1").unwrap(), Rule::deny("all").unwrap()]);
    /// let rocket = rocket::build().attach(AllowFairing::custom(config));
    /// ```
    pub fn custom(config: AllowConfig) -> AllowFairing {
        AllowFairing {
            config: Some(config),
        }
    }
}

/// Private wrapper so the state cannot clash with the app's own managed types.
struct AllowState(Arc<Shared>);

/// Builds the state from a validated configuration: warnings, DNS, the log, the first policy.
async fn start(config: AllowConfig, shutdown_wait: Duration) -> Result<Shared, Error> {
    for (i, rule) in config.rules.iter().enumerate() {
        if Target::host_bits_set(&rule.written) {
            log::warn!(
                target: "rocket_allow",
                "allow.rules[{i}]: `{}` has host bits set; using {}", rule.written, rule.target
            );
        }
    }
    for (i, target) in config.trusted_proxies.iter().enumerate() {
        if let Some(width) = too_wide(target) {
            log::warn!(
                target: "rocket_allow",
                "allow.trusted_proxies[{i}]: `{target}` covers {width}: any client in it can choose \
                 its address by sending a header; list only your own proxies"
            );
        }
    }
    let names = resolve::host_names(&config.rules, &config.trusted_proxies);
    let (addrs, refresher) = if names.is_empty() {
        (Addresses::new(), None)
    } else {
        let dns = Dns::new(&config.dns)?;
        let state = resolve::resolve_at_ignite(&dns, &names, config.dns.on_unresolved).await?;
        (state.addresses().clone(), Some((dns, state)))
    };
    let log = config
        .access_log
        .as_ref()
        .map(|log| AccessLog::open(log, shutdown_wait))
        .transpose()?;
    let policy = Policy::compile(
        config.default,
        &config.rules,
        &config.trusted_proxies,
        &addrs,
    );
    Ok(Shared {
        policy: ArcSwap::from_pointee(policy),
        default: config.default,
        rules: config.rules,
        trusted: config.trusted_proxies,
        header: ClientIpHeader::from_name(&config.client_ip_header),
        missing_header: config.missing_header,
        log,
        refresher: Mutex::new(refresher),
    })
}

#[rocket::async_trait]
impl Fairing for AllowFairing {
    fn info(&self) -> Info {
        Info {
            name: "rocket-allow",
            kind: Kind::Ignite | Kind::Liftoff | Kind::Request | Kind::Shutdown,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        // Both paths validate: from_figment does it itself, custom configs are checked here.
        let config = match &self.config {
            Some(config) => config.validate().map(|()| config.clone()),
            None => AllowConfig::from_figment(rocket.figment()),
        };
        // The access log may take Rocket's shutdown grace period to write its backlog.
        let grace = Duration::from_secs(
            rocket
                .figment()
                .extract_inner("shutdown.grace")
                .unwrap_or(2),
        );
        match async { start(config?, grace).await }.await {
            Ok(shared) => {
                // One refusal route per method, so no method (HEAD included) can reach an
                // app route of its own for a refused request.
                let refused: Vec<Route> = ALL_METHODS
                    .into_iter()
                    .map(|m| Route::ranked(isize::MIN, m, REFUSED_PATH, Refuse))
                    .collect();
                // Attached during ignite, so it runs after every request fairing the app
                // attached before launch, including those attached after this one.
                Ok(rocket
                    .manage(AllowState(Arc::new(shared)))
                    .mount("/", refused)
                    .attach(Reapply))
            }
            Err(e) => {
                log::error!(target: "rocket_allow", "rocket-allow: {e}");
                Err(rocket)
            }
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let Some(state) = rocket.state::<AllowState>() else {
            return;
        };
        let taken = state
            .0
            .refresher
            .lock()
            .map(|mut r| r.take())
            .unwrap_or(None);
        let Some((dns, names)) = taken else { return };
        // A weak handle: the task must not keep the state (and the log) alive after Rocket is gone.
        let shared: Weak<Shared> = Arc::downgrade(&state.0);
        let shutdown = rocket.shutdown();
        rocket::tokio::spawn(async move {
            let refresh = resolve::refresh_forever(dns, names, move |addrs, changed| {
                let Some(shared) = shared.upgrade() else {
                    return false;
                };
                if changed {
                    shared.rebuild(addrs);
                }
                true
            });
            rocket::tokio::select! {
                _ = shutdown => {}
                _ = refresh => {}
            }
        });
    }

    /// Writes the access log's backlog before Rocket goes, within its grace period.
    async fn on_shutdown(&self, rocket: &Rocket<Orbit>) {
        let Some(AllowState(shared)) = rocket.state::<AllowState>() else {
            return;
        };
        if shared.log.is_some() {
            let shared = shared.clone();
            let _ = rocket::tokio::task::spawn_blocking(move || {
                if let Some(log) = &shared.log {
                    log.drain();
                }
            })
            .await;
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        // Fails closed: without the state (ignite failed for another fairing) nothing is let in.
        let verdict = match req.rocket().state::<AllowState>() {
            Some(AllowState(shared)) => decide(shared, req).verdict,
            None => Verdict::Deny,
        };
        match verdict {
            Verdict::Allow => {
                req.local_cache(|| Admitted);
            }
            Verdict::Deny => refuse(req),
        }
    }
}

/// Every method a request can have; each gets a refusal route.
const ALL_METHODS: [Method; 9] = [
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

/// Sends the request to the refusal route. The method is kept (HEAD stays HEAD, so Rocket
/// still strips the body): every method has a refusal route.
fn refuse(req: &mut Request<'_>) {
    // A constant, so parsing cannot fail (every refusal test goes through here).
    let refused = Origin::parse(REFUSED_PATH).expect("REFUSED_PATH is an origin URI");
    req.set_uri(refused);
}

/// Marks an admitted request in its local cache, for [`Reapply`]. A zero-sized value, so
/// marking costs no allocation of its own; a request without the mark is refused.
struct Admitted;

/// Re-applies a refusal after the app's other request fairings, which may have rewritten
/// the URI (a prefixer) or the method (`X-HTTP-Method-Override`) of a refused request.
struct Reapply;

#[rocket::async_trait]
impl Fairing for Reapply {
    fn info(&self) -> Info {
        Info {
            name: "rocket-allow (refusal guard)",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        // Not marked admitted (refused, or never decided): refused, wherever the app's other
        // fairings pointed it. The closure runs only when the mark is absent.
        let mut admitted = true;
        req.local_cache(|| {
            admitted = false;
            Admitted
        });
        if !admitted && req.uri().path() != REFUSED_PATH {
            refuse(req);
        }
    }
}

/// How much of the address space a trusted-proxy entry covers, if it is more than a /8
/// (IPv4) or a /16 (IPv6): wide enough that untrusted clients surely sit inside it.
fn too_wide(target: &Target) -> Option<String> {
    let nets = match target {
        Target::Host(_) => return None,
        other => other.networks().unwrap_or_default(),
    };
    let wide: Vec<String> = nets
        .iter()
        .filter(|n| match n {
            ipnet::IpNet::V4(n) => n.prefix_len() < 8,
            ipnet::IpNet::V6(n) => n.prefix_len() < 16,
        })
        .map(|n| n.to_string())
        .collect();
    (!wide.is_empty()).then(|| wide.join(", "))
}

/// The refusal route's handler: fails with 403 so the app's 403 catcher answers.
#[derive(Clone)]
struct Refuse;

#[rocket::async_trait]
impl Handler for Refuse {
    async fn handle<'r>(&self, _: &'r Request<'_>, _: Data<'r>) -> Outcome<'r> {
        Outcome::Error(Status::Forbidden)
    }
}
