//! [`AllowFairing`]: reads the configuration at ignite, decides every request, and
//! sends refused ones to a route that answers 403 through the app's own catcher.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::route::Route;
use rocket::{Build, Orbit, Rocket};

use crate::client::ClientIpHeader;
use crate::config::AllowConfig;
use crate::decide::bans::Bans;
use crate::decide::generation::{Addresses, Contents, Generation};
use crate::decide::spec::Spec;
use crate::decide::{AllowState, Shared};
use crate::error::Error;
use crate::log::AccessLog;
use crate::observe::hits::RuleHits;
use crate::observe::{Metrics, Source};
use crate::resolve::{self, Dns};
use crate::rules::Target;
use crate::runtime::auto_ban::AutoBans;
use crate::runtime::handle::AllowHandle;
use crate::sources;

pub use crate::decide::REFUSED_PATH;

mod request;
mod watch;

use request::{Decide, Refuse, Responses, ALL_METHODS};
#[cfg(feature = "url-lists")]
use watch::refresh_url_lists;
use watch::{watch_geoip, watch_list_files};

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
    /// A configuration built in code, taken at ignite (so the app does not keep a second
    /// copy of every rule); `None` reads Rocket's figment.
    config: Option<Mutex<Option<AllowConfig>>>,
    /// Policies the app's guards name, checked at ignite: `(name, guard type)`.
    required: Vec<(&'static str, &'static str)>,
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
        AllowFairing {
            config: None,
            required: Vec::new(),
        }
    }

    /// Declares a policy the app's `Allowed<P>` guards use, so that a configuration
    /// without it (a misspelled `NAME`, a missing `[allow.policies.x]`) fails ignite,
    /// naming it, instead of the first guarded request failing with 500.
    ///
    /// ```
    /// use rocket_allow::{AllowFairing, Policy};
    /// struct Admin;
    /// impl Policy for Admin { const NAME: &'static str = "admin"; }
    ///
    /// let rocket = rocket::build().attach(AllowFairing::fairing().require::<Admin>());
    /// ```
    pub fn require<P: crate::Policy>(mut self) -> AllowFairing {
        self.required.push((P::NAME, std::any::type_name::<P>()));
        self
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
            config: Some(Mutex::new(Some(config))),
            required: Vec::new(),
        }
    }
}

/// Builds the state from a validated configuration: warnings, DNS, the log, the first
/// generation of compiled policies.
async fn start(config: AllowConfig, shutdown_wait: Duration) -> Result<Shared, Error> {
    let spec = Spec::new(&config);
    // List files are read and URL lists fetched off the async runtime's threads.
    let sets = config.sets.clone();
    let at = rocket::tokio::task::spawn_blocking(move || sources::entries_at_ignite(&sets))
        .await
        .map_err(|e| Error::Invalid {
            key: "allow.sets".into(),
            message: e.to_string(),
        })??;
    let (entries, watched) = (at.entries, at.watched);
    let contents = Contents::new(entries, Addresses::new()).map_err(|message| Error::Invalid {
        key: "allow.sets".into(),
        message,
    })?;
    // `country:`/`asn:` values become networks now, read off the async runtime's threads.
    let targets: Vec<(Target, String)> = spec
        .targets(&contents.entries)
        .into_iter()
        .filter(|(t, _)| crate::geoip::GeoKey::of(t).is_some())
        .map(|(t, key)| (t.clone(), key))
        .collect();
    let geoip = config.geoip.clone();
    // Stamped before the read, so a file replaced while it is read is read again.
    let geo_watched: Vec<sources::Watched> = crate::geoip::files(&geoip)
        .into_iter()
        .map(|(name, path)| sources::Watched::new(name.into(), path))
        .collect();
    let geo = rocket::tokio::task::spawn_blocking(move || {
        crate::geoip::at_ignite(&geoip, targets.iter().map(|(t, k)| (t, k.clone())))
    })
    .await
    .map_err(|e| Error::Invalid {
        key: "allow.geoip".into(),
        message: e.to_string(),
    })??;
    let contents = contents.with_geo(geo);
    for policy in &spec.policies {
        let key = match &policy.name {
            None => "allow.rules".to_string(),
            Some(name) => format!("allow.policies.{name}.rules"),
        };
        for (i, rule) in policy.rules.iter().enumerate() {
            // Only text that differs from the target's own form can have host bits set, so
            // rules written canonically (most of a big list) are not looked at again.
            let Some(written) = rule.own_text() else {
                continue;
            };
            if Target::host_bits_set(written) {
                log::warn!(
                    target: "rocket_allow",
                    "{key}[{i}]: `{written}` has host bits set; using {}", rule.target
                );
            }
        }
    }
    let peer_policies = spec
        .policies
        .iter()
        .filter(|p| p.missing_header == crate::config::MissingHeader::Peer);
    for policy in peer_policies.filter(|_| !config.trusted_proxies.is_empty()) {
        let key = match &policy.name {
            None => "allow.missing_header".to_string(),
            Some(name) => format!("allow.policies.{name}.missing_header"),
        };
        log::warn!(
            target: "rocket_allow",
            "{key} = \"peer\": a request from a trusted proxy without a readable \
             client header is decided as the proxy itself. Rocket drops a header line with a \
             byte that is not UTF-8, so any client behind the proxy can be decided as the proxy: \
             its bans and the rules that deny it are not applied. Prefer the default (\"refuse\")"
        );
    }
    for warning in contents.wide_proxies(&spec) {
        log::warn!(target: "rocket_allow", "{warning}");
    }
    let names = resolve::host_names(spec.targets(&contents.entries));
    let (addrs, refresher) = if names.is_empty() {
        (Addresses::new(), None)
    } else {
        let dns = Dns::new(&config.dns)?;
        let state = resolve::resolve_at_ignite(&dns, &names, config.dns.on_unresolved).await?;
        (state.addresses().clone(), Some((dns, state)))
    };
    let metrics = Metrics::new(spec.policies.iter().map(|p| p.name.as_deref()));
    let log = config
        .access_log
        .as_ref()
        .map(|log| AccessLog::open(log, shutdown_wait, metrics.log_lines_lost()))
        .transpose()?;
    let bans = Bans::open(
        config.bans.file.as_deref(),
        metrics.bans(),
        config.store.is_some(),
    )
    .map_err(|message| Error::Invalid {
        key: "allow.bans.file".into(),
        message,
    })?;
    let contents = contents.with_addrs(&addrs);
    let generation = Generation::compile(&spec, &contents);
    metrics.rules(generation.network_counts());
    let hits = config
        .rule_hits
        .then(|| RuleHits::new(spec.policies.iter().map(|p| p.rules.len())));
    Ok(Shared {
        metrics,
        hits,
        store: config
            .store
            .clone()
            .map(|c| crate::store::Store::new(c, bans.clock())),
        on_fleet_lift: std::sync::OnceLock::new(),
        recent: crate::observe::recent::Recent::new(config.admin.recent),
        sources: crate::observe::sources::Sources::new(refresher.is_some()),
        admin: config.admin.clone(),
        spec,
        generation: ArcSwap::from_pointee(generation),
        contents: Mutex::new(contents),
        watched: Mutex::new(watched),
        geo_watched: Mutex::new(geo_watched),
        #[cfg(feature = "url-lists")]
        urls: Mutex::new(at.urls),
        bans,
        header: ClientIpHeader::from_name(&config.client_ip_header),
        hops: config.trusted_hops,
        publish: config.publish_client_ip,
        keep_rulings: !config.auto_ban.is_empty(),
        log,
        refresher: Mutex::new(refresher),
    })
}

#[rocket::async_trait]
impl Fairing for AllowFairing {
    fn info(&self) -> Info {
        Info {
            name: "rocket-allow",
            kind: Kind::Ignite | Kind::Liftoff | Kind::Shutdown,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        if rocket.state::<AllowState>().is_some() {
            log::error!(
                target: "rocket_allow",
                "rocket-allow: AllowFairing is attached more than once; attach it once"
            );
            return Err(rocket);
        }
        // Both paths validate: from_figment does it itself, custom configs are checked here.
        let config = match &self.config {
            Some(config) => match config.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(config) => config.validate().map(|()| config),
                None => Err(Error::Invalid {
                    key: "allow".into(),
                    message: "this AllowFairing::custom was already ignited once".into(),
                }),
            },
            None => AllowConfig::from_figment(rocket.figment()),
        };
        // The access log may take Rocket's shutdown grace period to write its backlog.
        let grace = Duration::from_secs(
            rocket
                .figment()
                .extract_inner("shutdown.grace")
                .unwrap_or(2),
        );
        // The admin page, when mounted, brings its built-in policy.
        let config = config.map(|c| crate::admin::prepare(c, &rocket));
        let required = &self.required;
        let config = config.and_then(|c| {
            match required
                .iter()
                .find(|(name, _)| !c.policies.contains_key(*name))
            {
                None => Ok(c),
                Some((name, guard)) => Err(Error::Invalid {
                    key: format!("allow.policies.{name}"),
                    message: format!(
                        "Allowed<{guard}> needs policy `{name}`, which is not configured \
                         under [allow.policies]"
                    ),
                }),
            }
        });
        // The automatic-ban rules are started once the state exists.
        let auto_ban = config
            .as_ref()
            .map(|c| c.auto_ban.clone())
            .unwrap_or_default();
        match async { start(config?, grace).await }.await {
            Ok(shared) => {
                // One refusal route per method, so no method (HEAD included) can reach an
                // app route of its own for a refused request.
                let refused: Vec<Route> = ALL_METHODS
                    .into_iter()
                    .map(|m| Route::ranked(isize::MIN, m, REFUSED_PATH, Refuse))
                    .collect();
                // Attached during ignite, so it runs after every request fairing the app
                // attached before launch, including those attached after this one: the
                // decision sees the URI and method the router will see, and nothing that
                // runs before it can undo a refusal.
                let shared = Arc::new(shared);
                crate::runtime::audit::at_ignite(&shared);
                let auto = match AutoBans::start(&shared, &auto_ban) {
                    Ok(auto) => auto,
                    Err(e) => {
                        log::error!(target: "rocket_allow", "rocket-allow: {e}");
                        return Err(rocket);
                    }
                };
                if let Some(auto) = &auto {
                    let weak = Arc::downgrade(auto);
                    let _ = shared.on_fleet_lift.set(Box::new(move |target| {
                        if let Some(auto) = weak.upgrade() {
                            auto.forget_here(target);
                        }
                    }));
                }
                if let Err(e) = start_store(&shared).await {
                    log::error!(target: "rocket_allow", "rocket-allow: {e}");
                    return Err(rocket);
                }
                let rocket = rocket
                    .manage(AllowHandle::new(shared.clone(), auto.clone()))
                    .manage(AllowState(shared))
                    .mount("/", refused)
                    .attach(Decide);
                // Only apps with automatic-ban rules look at responses.
                Ok(match auto {
                    Some(auto) => rocket.attach(Responses(auto)),
                    None => rocket,
                })
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
        watch_list_files(&state.0);
        watch_geoip(&state.0);
        #[cfg(feature = "url-lists")]
        refresh_url_lists(&state.0);
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
        // Recompiling can take a while with big sets: it happens on a thread of its own, in
        // order, newest addresses first, never on the runtime's worker threads.
        let (compile, addresses) = std::sync::mpsc::channel::<Addresses>();
        let compiler = shared.clone();
        let _ = crate::background::spawn("rocket-allow-dns-compile", move || {
            while let Ok(mut addrs) = addresses.recv() {
                while let Ok(newer) = addresses.try_recv() {
                    addrs = newer;
                }
                let Some(shared) = compiler.upgrade() else {
                    return;
                };
                if shared.update(|c| Ok(c.with_addrs(&addrs))).is_ok() {
                    shared.metrics.reloaded(Source::Dns);
                }
            }
        });
        rocket::tokio::spawn(async move {
            let refresh = resolve::refresh_forever(dns, names, move |addrs, changed, failed| {
                let Some(state) = shared.upgrade() else {
                    return false;
                };
                state.metrics.refresh_failed(Source::Dns, "", failed);
                match failed {
                    0 => state.sources.ok(""),
                    n => state
                        .sources
                        .failed("", &format!("{n} host names failed to resolve")),
                }
                drop(state);
                if changed {
                    let _ = compile.send(addrs.clone());
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
        if let Some(store) = &shared.store {
            store.stop();
        }
        if let Some(auto) = rocket.state::<AllowHandle>().and_then(|h| h.auto.as_ref()) {
            auto.stop();
        }
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
}

/// Starts the fleet store's thread and waits (3 s at most) for the first sync, so that an
/// instance starts with the fleet's bans; without Redis it starts from its own (the bans
/// file, if any) and keeps connecting in the background.
async fn start_store(shared: &Arc<Shared>) -> Result<(), String> {
    let Some(store) = &shared.store else {
        return Ok(());
    };
    // Sets and modes changed here before a restart (kept in the bans file) are this
    // instance's newest records; from now on the bans file keeps them too.
    store.restore(shared.as_ref(), shared.bans.take_records());
    let weak = Arc::downgrade(store);
    shared
        .bans
        .keep_records(move || weak.upgrade().map(|s| s.file_records()).unwrap_or_default());
    let weak = Arc::downgrade(shared);
    store.on_change(move || {
        if let Some(shared) = weak.upgrade() {
            shared.bans.records_changed();
        }
    });
    let local: Weak<dyn crate::store::Local> = Arc::downgrade(shared) as _;
    store
        .start(local)
        .map_err(|e| format!("cannot start the fleet store's thread: {e}"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !store.status().connected && std::time::Instant::now() < deadline {
        rocket::tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !store.status().connected {
        log::warn!(target: "rocket_allow",
            "rocket-allow: allow.store.redis: `{}` cannot be reached at ignite; starting from \
             this instance's own state (the bans file, if any) and connecting in the background",
            store.config.redacted_url());
    }
    Ok(())
}
