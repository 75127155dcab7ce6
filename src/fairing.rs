//! [`AllowFairing`]: reads the configuration at ignite, decides every request, and
//! sends refused ones to a route that answers 403 through the app's own catcher.

use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::{uri::Origin, Method, Status};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Build, Data, Orbit, Request, Rocket};

use crate::client::{client_addr, ClientAddr, ClientIpHeader};
use crate::config::AllowConfig;
use crate::error::Error;
use crate::log::{AccessLog, Entry, Level, RuleRef, Url};
use crate::policy::{Addresses, Policy};
use crate::resolve::{self, Dns, Names};
use crate::rules::{Rule, Target, Verdict};

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

/// What the request path reads; managed as Rocket state.
struct Shared {
    policy: ArcSwap<Policy>,
    default: Verdict,
    rules: Vec<Rule>,
    trusted: Vec<Target>,
    header: ClientIpHeader,
    log: Option<AccessLog>,
    /// The resolver and name state, handed to the refresh task at liftoff.
    refresher: Mutex<Option<(Dns, Names)>>,
}

impl Shared {
    fn rebuild(&self, addrs: &Addresses) {
        let policy = Policy::compile(self.default, &self.rules, &self.trusted, addrs);
        self.policy.store(Arc::new(policy));
    }
}

/// Private wrapper so the state cannot clash with the app's own managed types.
struct AllowState(Arc<Shared>);

/// Builds the state from a validated configuration: warnings, DNS, the log, the first policy.
async fn start(config: AllowConfig) -> Result<Shared, Error> {
    for (i, rule) in config.rules.iter().enumerate() {
        if Target::host_bits_set(&rule.written) {
            log::warn!(
                target: "rocket_allow",
                "allow.rules[{i}]: `{}` has host bits set; using {}", rule.written, rule.target
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
        .map(AccessLog::open)
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
        log,
        refresher: Mutex::new(refresher),
    })
}

#[rocket::async_trait]
impl Fairing for AllowFairing {
    fn info(&self) -> Info {
        Info {
            name: "rocket-allow",
            kind: Kind::Ignite | Kind::Liftoff | Kind::Request,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        // Both paths validate: from_figment does it itself, custom configs are checked here.
        let config = match &self.config {
            Some(config) => config.validate().map(|()| config.clone()),
            None => AllowConfig::from_figment(rocket.figment()),
        };
        match async { start(config?).await }.await {
            Ok(shared) => {
                let refused = Route::ranked(isize::MIN, Method::Get, REFUSED_PATH, Refuse);
                Ok(rocket
                    .manage(AllowState(Arc::new(shared)))
                    .mount("/", vec![refused]))
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

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        if decide(req) == Verdict::Deny {
            // HEAD stays HEAD so Rocket still strips the body; everything else becomes GET,
            // the one method the refusal route answers.
            if req.method() != Method::Head {
                req.set_method(Method::Get);
            }
            // A constant, so parsing cannot fail (every refusal test goes through here).
            let refused = Origin::parse(REFUSED_PATH).expect("REFUSED_PATH is an origin URI");
            req.set_uri(refused);
        }
    }
}

/// Decides one request and records the decision. Fails closed: no state, no address, refused.
fn decide(req: &Request<'_>) -> Verdict {
    let Some(AllowState(shared)) = req.rocket().state::<AllowState>() else {
        return Verdict::Deny;
    };
    let policy = shared.policy.load();
    let client = req.remote().map(|peer| {
        let peer = peer.ip();
        // Headers are only read (and collected) when a trusted proxy could vouch for them.
        if policy.trusted.contains(peer.to_canonical()) {
            let values: Vec<&str> = req.headers().get(shared.header.name()).collect();
            client_addr(peer, &shared.header, &values, &policy.trusted)
        } else {
            ClientAddr::from_peer(peer)
        }
    });
    let (verdict, rule, level, note) = match client {
        Some(ClientAddr { ip, note, .. }) => {
            let d = policy.matcher.decide(ip);
            let level = match (d.rule, d.verdict) {
                (None, _) => Level::Warning,
                (Some(_), Verdict::Allow) => Level::Info,
                (Some(_), Verdict::Deny) => Level::Error,
            };
            (d.verdict, d.rule, level, note)
        }
        None => (
            Verdict::Deny,
            None,
            Level::Error,
            Some("no client address (a local client needs .remote(...))"),
        ),
    };
    record(req, shared, &policy, client, verdict, rule, level, note);
    verdict
}

/// Writes the access log line and the tracing event, building the strings only if either wants them.
#[allow(clippy::too_many_arguments)]
fn record(
    req: &Request<'_>,
    shared: &Shared,
    policy: &Policy,
    client: Option<ClientAddr>,
    verdict: Verdict,
    rule: Option<usize>,
    level: Level,
    note: Option<&str>,
) {
    let event = match level {
        Level::Info => tracing::enabled!(target: "rocket_allow", tracing::Level::INFO),
        Level::Warning => tracing::enabled!(target: "rocket_allow", tracing::Level::WARN),
        Level::Error => tracing::enabled!(target: "rocket_allow", tracing::Level::ERROR),
    };
    if shared.log.is_none() && !event {
        return;
    }
    let scheme = if req.rocket().config().tls_enabled() {
        "https"
    } else {
        "http"
    };
    // Rocket's parsed Host, else the raw header (local clients only set the latter); the
    // log escapes control characters either way.
    let parsed = req.host();
    let raw = req.headers().get_one("Host");
    let host: Option<&dyn std::fmt::Display> = match (&parsed, &raw) {
        (Some(host), _) => Some(host),
        (None, Some(raw)) => Some(raw),
        (None, None) => None,
    };
    let url = Url {
        scheme,
        host,
        origin: req.uri(),
    };
    let entry = Entry {
        level,
        client: client.map(|c| c.ip),
        peer: client
            .filter(|c| c.from_header || c.ip != c.peer)
            .map(|c| c.peer),
        verdict,
        rule: rule.map(|index| RuleRef {
            index,
            written: &shared.rules[index].written,
            normalized: &policy.normalized[index],
        }),
        note,
        method: req.method().as_str(),
        url,
        user_agent: req.headers().get_one("User-Agent"),
    };
    if let Some(log) = &shared.log {
        log.record(&entry);
    }
    if event {
        entry.emit_event();
    }
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
