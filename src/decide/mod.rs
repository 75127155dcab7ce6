//! The one decision path, shared by the fairing and the guards: who is the client, which
//! policy and rule decide, and the record of it (access log line, tracing event).
//!
//! The folder holds what the request path reads: the compiled matcher, the generation of
//! compiled policies, the path table that picks a policy, and the ban table.

pub(crate) mod bans;
pub(crate) mod generation;
pub(crate) mod matcher;
pub(crate) mod paths;
pub(crate) mod refusal;
mod ruling;
pub(crate) mod spec;

use ruling::GuardRulings;
pub use ruling::REFUSED_PATH;
pub(crate) use ruling::{keep_ruling, refused, ruling_of, Ruling, Stage};

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rocket::http::Status;
use rocket::Request;

use crate::client::{client_addr_at, ClientAddr, ClientIpHeader, Unreadable};
use crate::config::MissingHeader;
use crate::decide::bans::{Ban, Bans};
use crate::decide::generation::{Contents, Generation};
use crate::decide::matcher::Decision;
use crate::decide::spec::{Spec, APP_WIDE};
use crate::log::{AccessLog, By, Entry, Level, RuleRef, Url};
use crate::observe::hits::RuleHits;
use crate::observe::Metrics;
use crate::resolve::{Dns, Names};
use crate::rules::{Target, Verdict};

/// The fairing's state, managed by Rocket; private so it cannot clash with the app's types.
pub(crate) struct AllowState(pub Arc<Shared>);

/// What the request path reads.
pub(crate) struct Shared {
    pub spec: Spec,
    pub generation: ArcSwap<Generation>,
    pub header: ClientIpHeader,
    /// `trusted_hops`: the client's position from the right of a list header.
    pub hops: Option<usize>,
    /// `publish_client_ip`: the fairing hands the vetted client to Rocket's request.
    pub publish: bool,
    /// Automatic-ban rules look at responses: the fairing keeps each ruling for them (an
    /// allocation per request, made only then).
    pub keep_rulings: bool,
    pub log: Option<AccessLog>,
    /// What `generation` was compiled from; changed only through [`Shared::update`].
    pub contents: Mutex<Contents>,
    /// The resolver and name state, handed to the refresh task at liftoff.
    pub refresher: Mutex<Option<(Dns, Names)>>,
    /// List files, handed to their watcher at liftoff.
    pub watched: Mutex<Vec<crate::sources::Watched>>,
    /// `[allow.geoip]` files, handed to their watcher at liftoff.
    pub geo_watched: Mutex<Vec<crate::sources::Watched>>,
    /// URL lists, handed to their refresher at liftoff.
    #[cfg(feature = "url-lists")]
    pub urls: Mutex<Vec<crate::sources::UrlList>>,
    /// Runtime bans, checked before every policy's rules.
    pub bans: Bans,
    /// Metric handles (no-ops unless the app installed a recorder).
    pub metrics: Metrics,
    /// Hits per rule; `None` when `rule_hits = false`.
    pub hits: Option<RuleHits>,
    /// The fleet store, when `[allow.store]` is set.
    pub store: Option<Arc<crate::store::Store>>,
    /// `[allow.admin]`, for the admin page.
    pub admin: crate::config::AdminConfig,
    /// Recent refusals and decisions per minute (the admin page).
    pub recent: crate::observe::recent::Recent,
    /// How each list file, URL list and the host names last refreshed.
    pub sources: crate::observe::sources::Sources,
    /// Told of every ban the fleet lifted here (the automatic-ban rules forget the client),
    /// once the app set it.
    pub on_fleet_lift: std::sync::OnceLock<Box<dyn Fn(ipnet::IpNet) + Send + Sync>>,
}

impl Shared {
    /// Changes what the policies are compiled from (a set's entries, host-name addresses),
    /// compiles them and swaps the result in whole; an invalid change changes nothing.
    /// Changes are applied one at a time, each from the one before.
    pub fn update(
        &self,
        change: impl FnOnce(&Contents) -> Result<Contents, String>,
    ) -> Result<(), String> {
        self.update_if(|c| change(c).map(Some)).map(|_| ())
    }

    /// [`Shared::update`] for a change that may turn out to be no change (`Ok(None)`):
    /// nothing is compiled then. `Ok(true)` when something was.
    pub fn update_if(
        &self,
        change: impl FnOnce(&Contents) -> Result<Option<Contents>, String>,
    ) -> Result<bool, String> {
        let mut contents = self.contents.lock().unwrap_or_else(|e| e.into_inner());
        let Some(next) = change(&contents)? else {
            return Ok(false);
        };
        // A change to a set the trusted proxies use is checked as the configuration was.
        let before = contents.wide_proxies(&self.spec);
        for warning in next.wide_proxies(&self.spec) {
            if !before.contains(&warning) {
                log::warn!(target: "rocket_allow", "{warning}");
            }
        }
        let generation = Generation::compile(&self.spec, &next);
        self.metrics.rules(generation.network_counts());
        *contents = next;
        self.generation.store(Arc::new(generation));
        Ok(true)
    }

    /// Replaces one set's entries, unless they are the entries it has (a list file touched
    /// or a URL list sent again as it was): `Ok(false)` then, and nothing is compiled.
    pub fn replace_set(&self, set: &str, entries: Vec<Target>) -> Result<bool, String> {
        self.update_if(|c| {
            if c.entries.get(set).is_some_and(|now| **now == entries) {
                Ok(None)
            } else {
                c.with_set(set, entries).map(Some)
            }
        })
    }

    /// The client address a request is decided on under `policy` (whose `missing_header`
    /// applies): `None` without a peer, `Err` when a trusted proxy's header cannot be read
    /// up to the client. After the fairing (guards), as the fairing read it.
    pub fn client(
        &self,
        generation: &Generation,
        req: &Request<'_>,
        policy: usize,
    ) -> Option<Result<ClientAddr, Unreadable>> {
        self.kept_client(req, Stage::After)
            .or_else(|| self.client_as_received(generation, req, policy))
    }

    /// After the fairing published: the client it read, or unreadable if it could not read
    /// one (the headers may have been overwritten since); `None` before, or unpublished.
    fn kept_client(
        &self,
        req: &Request<'_>,
        stage: Stage,
    ) -> Option<Result<ClientAddr, Unreadable>> {
        if let Some(r) = self.received(req, stage) {
            return Some(Ok(r.client));
        }
        (self.publish && stage == Stage::After && crate::publish::unknown(req)).then_some(Err(
            Unreadable::Malformed("the client address could not be read when the request arrived"),
        ))
    }

    /// What the fairing kept of the request as it arrived, if it published another client.
    fn received<'r>(
        &self,
        req: &'r Request<'_>,
        stage: Stage,
    ) -> Option<&'r crate::publish::Received> {
        (self.publish && stage == Stage::After)
            .then(|| crate::publish::received(req))
            .flatten()
    }

    /// The TCP peer the request arrived from.
    fn peer(&self, req: &Request<'_>, stage: Stage) -> Option<IpAddr> {
        match self.received(req, stage) {
            Some(r) => Some(r.peer.ip().to_canonical()),
            None => req.remote().map(|p| p.ip().to_canonical()),
        }
    }

    fn client_as_received(
        &self,
        generation: &Generation,
        req: &Request<'_>,
        policy: usize,
    ) -> Option<Result<ClientAddr, Unreadable>> {
        let peer = req.remote()?.ip();
        // Headers are only read (and collected) when a trusted proxy could vouch for them.
        if !generation.trusted.contains(peer.to_canonical()) {
            return Some(Ok(ClientAddr::from_peer(peer)));
        }
        let values: Vec<&str> = req.headers().get(self.header.name()).collect();
        Some(
            match client_addr_at(peer, &self.header, &values, &generation.trusted, self.hops) {
                Err(Unreadable::Missing)
                    if self.spec.policies[policy].missing_header == MissingHeader::Peer =>
                {
                    Ok(ClientAddr::from_peer(peer))
                }
                other => other,
            },
        )
    }
}

/// The decision of `policy` for a guard: made at most once per request and policy however
/// many routes Rocket tries, and not recorded again when the fairing already decided this
/// request with the same policy and let it through (it was recorded then), but made again
/// all the same: the fairing lets through what a policy in report mode refuses. So a
/// request is counted and logged once per policy, and every guard judges for itself.
pub(crate) fn decide_for_guard(shared: &Shared, req: &Request<'_>, policy: usize) -> Ruling {
    let cache = req.local_cache(GuardRulings::default);
    let seen = |c: &GuardRulings| {
        let list = c.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().find(|(p, _)| *p == policy).map(|(_, r)| *r)
    };
    if let Some(ruling) = seen(cache) {
        return ruling;
    }
    let by_fairing =
        !refused(req) && shared.spec.policy_for(|| req.uri().path().segments()) == Some(policy);
    let ruling = if by_fairing {
        // The fairing recorded this policy's decision already; the guard makes it again, not
        // recorded, rather than take "the request reached a route" for an allow: report
        // mode admits what the policy refuses, and a strict guard must refuse it.
        let generation = shared.generation.load();
        let client = shared.client(&generation, req, policy);
        let judged = judgement(shared, &generation, policy, client);
        Ruling {
            verdict: judged.verdict,
            status: shared.spec.policies[policy].reject_status,
            client: client.and_then(Result::ok),
            enforced: judged.enforced,
            by: judged.by,
        }
    } else {
        decide(shared, req, policy, Stage::After)
    };
    cache
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((policy, ruling));
    ruling
}

/// Refuses a request whose path cannot be judged (a `.` or `..` segment under path-scoped
/// policies) with 400, and records it.
pub(crate) fn refuse_path(shared: &Shared, req: &Request<'_>) -> Ruling {
    let generation = shared.generation.load();
    let ruling = Ruling {
        verdict: Verdict::Deny,
        status: Status::BadRequest,
        client: shared
            .client_as_received(&generation, req, APP_WIDE)
            .and_then(Result::ok),
        // Not a rule's decision, so report mode does not apply (browsers never send these).
        enforced: true,
        by: By::Path,
    };
    shared
        .metrics
        .decision(APP_WIDE, Verdict::Deny, true, By::Path);
    let record = Record {
        ruling,
        peer: shared.peer(req, Stage::Arriving),
        policy: APP_WIDE,
        rule: None,
        by: By::Path,
        note: Some("`.` or `..` in the path: which path-scoped policy applies cannot be known"),
    };
    record.write(req, shared, &generation);
    shared.recent.record(req, record.seen(None));
    record.keep_refusal(req, shared, &generation, None);
    ruling
}

/// Decides one request under policy `policy` (an index into the spec), counts and records
/// the decision. Fails closed: no address, or a trusted proxy's header that cannot be read
/// up to the client, is refused. In report mode a refusal is recorded but not enforced,
/// except a ban's, or one where the client cannot be known (no address at all, or a trusted
/// proxy's header that cannot be read): no ban could be checked for it.
pub(crate) fn decide(shared: &Shared, req: &Request<'_>, policy: usize, stage: Stage) -> Ruling {
    let generation = shared.generation.load();
    let client = shared
        .kept_client(req, stage)
        .or_else(|| shared.client_as_received(&generation, req, policy));
    let spec = &shared.spec.policies[policy];
    let Judgement {
        verdict,
        rule,
        by,
        note,
        enforced,
        banned,
    } = judgement(shared, &generation, policy, client);
    if let (Some(rule), Some(hits)) = (rule, &shared.hits) {
        hits.hit(policy, rule);
    }
    let ban_note = banned.as_ref().map(describe_ban);
    let note = ban_note.as_deref().or(note);
    shared.metrics.decision(policy, verdict, enforced, by);
    let ruling = Ruling {
        verdict,
        status: spec.reject_status,
        client: client.and_then(Result::ok),
        enforced,
        by,
    };
    let record = Record {
        ruling,
        peer: shared.peer(req, stage),
        policy,
        rule,
        by,
        note,
    };
    record.write(req, shared, &generation);
    shared.recent.record(req, record.seen(banned.as_ref()));
    if !ruling.admitted() {
        record.keep_refusal(req, shared, &generation, banned);
    }
    ruling
}

/// What decides a request under a policy, before anything about it is recorded.
struct Judgement {
    verdict: Verdict,
    /// The rule that matched, if one did.
    rule: Option<usize>,
    by: By,
    /// Why, when the log line should say more than the rule (not for a ban: see `banned`).
    note: Option<&'static str>,
    /// Whether a refusal is carried out: the policy's mode for its rules, always for the rest.
    enforced: bool,
    /// The ban that refuses the client, if one does.
    banned: Option<Ban>,
}

/// The decision of `policy` on `client` (the request's address as read under it), nothing
/// recorded: the fleet store's gate, then bans, then the rules; a client that cannot be
/// known is refused in every mode (neither can its bans be).
fn judgement(
    shared: &Shared,
    generation: &Generation,
    policy: usize,
    client: Option<Result<ClientAddr, Unreadable>>,
) -> Judgement {
    let refuse = |by, note| Judgement {
        verdict: Verdict::Deny,
        rule: None,
        by,
        note,
        enforced: true,
        banned: None,
    };
    let stale = shared.store.as_ref().is_some_and(|s| s.gate.refusing());
    match client {
        // `on_unavailable = "refuse"` and the store away too long: nothing is let in.
        Some(_) if stale => refuse(
            By::Store,
            Some("the fleet store has been unreachable longer than max_stale_secs"),
        ),
        Some(Ok(ClientAddr { ip, peer, note, .. })) => {
            match judge(shared, generation, policy, ip, Some(peer)) {
                Judged::Ban(ban) => Judgement {
                    banned: Some(ban),
                    ..refuse(By::Ban, None)
                },
                Judged::Rule(d) => Judgement {
                    verdict: d.verdict,
                    rule: d.rule,
                    by: if d.rule.is_some() {
                        By::Rule
                    } else {
                        By::Default
                    },
                    note,
                    enforced: shared.spec.policies[policy].enforced(),
                    banned: None,
                },
            }
        }
        Some(Err(why)) => refuse(By::Header, Some(why.reason())),
        None => refuse(
            By::Header,
            Some("no client address (a local client needs .remote(...))"),
        ),
    }
}

/// What decides an address under a policy: a ban in force, else the policy's rules.
pub(crate) enum Judged {
    Ban(Ban),
    Rule(Decision),
}

/// The one place that says which ban or rule decides `ip` under `policy`. A ban on `peer`
/// (the proxy that forwarded the request, when it is not the client) refuses it too: an
/// operator who bans a proxy stops what it forwards.
pub(crate) fn judge(
    shared: &Shared,
    generation: &Generation,
    policy: usize,
    ip: IpAddr,
    peer: Option<IpAddr>,
) -> Judged {
    let ban = shared.bans.check(ip).or_else(|| {
        peer.filter(|p| p.to_canonical() != ip.to_canonical())
            .and_then(|p| shared.bans.check(p))
    });
    match ban {
        Some(ban) => Judged::Ban(ban),
        None => Judged::Rule(generation.matchers[policy].decide(ip)),
    }
}

/// `banned 203.0.113.0/24 until 2026-11-25T10:00:00Z: reason`, for the log line's note.
pub(crate) fn describe_ban(ban: &Ban) -> String {
    // The table keeps no expiry past the year 9999; one that still cannot be shown as a
    // date reads as what it is, a ban until lifted.
    let date = ban.expires.and_then(|t| {
        let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
        let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        t.format(f).ok()
    });
    let until = match date {
        Some(date) => format!("until {date}"),
        None => "until lifted".to_string(),
    };
    let by = match &ban.origin {
        Some(origin) => format!(" by {origin}"),
        None => String::new(),
    };
    match &ban.reason {
        Some(r) => format!("banned {} {until}{by}: {r}", ban.target),
        None => format!("banned {} {until}{by}", ban.target),
    }
}

/// One decision, ready to be written to the access log and as a tracing event.
struct Record<'a> {
    ruling: Ruling,
    peer: Option<std::net::IpAddr>,
    policy: usize,
    rule: Option<usize>,
    by: By,
    note: Option<&'a str>,
}

impl Record<'_> {
    /// What the admin page's recent view and chart keep of it.
    fn seen(&self, ban: Option<&Ban>) -> crate::observe::recent::Seen {
        crate::observe::recent::Seen {
            policy: self.policy,
            rule: self.rule,
            by: self.by,
            verdict: self.ruling.verdict,
            enforced: self.ruling.enforced,
            status: self.ruling.status.code,
            client: self.ruling.client.map(|c| c.ip),
            peer: self.peer,
            ban: ban.map(|b| b.target),
        }
    }

    /// Keeps the refusal for the catcher that answers it ([`refusal::Refused::of`]).
    fn keep_refusal(
        &self,
        req: &Request<'_>,
        shared: &Shared,
        generation: &Generation,
        ban: Option<Ban>,
    ) {
        use refusal::{Refused, RefusedBy};
        let spec = &shared.spec.policies[self.policy];
        let client = self.ruling.client.map(|c| c.ip);
        let by = match (self.by, ban) {
            (_, Some(ban)) => RefusedBy::Ban(ban),
            (By::Path, _) => RefusedBy::Path,
            (By::Store, _) => RefusedBy::Store,
            (By::Header, _) => RefusedBy::Header(self.note.unwrap_or_default().to_string()),
            (By::Rule, _) => match (self.rule, client) {
                (Some(index), Some(ip)) => RefusedBy::Rule {
                    index,
                    written: spec.rules[index].written().to_string(),
                    network: generation
                        .matched(&shared.spec, self.policy, index, ip)
                        .to_string(),
                },
                _ => RefusedBy::Default,
            },
            _ => RefusedBy::Default,
        };
        Refused {
            method: req.method().as_str().to_string(),
            uri: req.uri().to_string(),
            client,
            peer: self.peer,
            policy: spec.name.clone(),
            by,
            status: self.ruling.status.code,
        }
        .keep(req);
    }

    fn level(&self) -> Level {
        match (self.by, self.ruling.verdict) {
            (By::Default, _) => Level::Warning,
            (_, Verdict::Allow) => Level::Info,
            // A would-be refusal of report mode is not an error: a dry run pages nobody.
            (_, Verdict::Deny) if !self.ruling.enforced => Level::Warning,
            (_, Verdict::Deny) => Level::Error,
        }
    }

    /// Writes the access log line and the tracing event, building the strings only if
    /// either wants them.
    fn write(&self, req: &Request<'_>, shared: &Shared, generation: &Generation) {
        let level = self.level();
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
        // (The raw header is only looked up when needed: every header lookup hashes.)
        let parsed = req.host();
        let raw = match parsed {
            Some(_) => None,
            None => req.headers().get_one("Host"),
        };
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
        let client = self.ruling.client;
        let spec = &shared.spec.policies[self.policy];
        // A rule is only given with a client address (it matched one).
        let rule = self.rule.zip(client).map(|(index, c)| {
            (
                index,
                spec.rules[index].written(),
                generation.matched(&shared.spec, self.policy, index, c.ip),
            )
        });
        let entry = Entry {
            level,
            client: client.map(|c| c.ip),
            // The peer when the client came from a header, or could not be read.
            peer: match client {
                Some(c) if c.from_header || c.ip != c.peer => Some(c.peer),
                Some(_) => None,
                None => self.peer,
            },
            verdict: self.ruling.verdict,
            rule: rule.as_ref().map(|(index, written, matched)| RuleRef {
                index: *index,
                written,
                normalized: matched,
            }),
            by: self.by,
            enforced: self.ruling.enforced,
            policy: spec.name.as_deref(),
            status: (self.ruling.verdict == Verdict::Deny).then_some(self.ruling.status.code),
            note: self.note,
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
}
