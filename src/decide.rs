//! The one decision path: who is the client, which rule decides, and the record of it.
//!
//! The fairing calls [`decide`] once per request; everything that needs to know the
//! outcome afterwards reads the [`Ruling`] cached in the request.

use std::sync::Mutex;

use arc_swap::ArcSwap;
use rocket::Request;

use crate::client::{client_addr, ClientAddr, ClientIpHeader, Unreadable};
use crate::config::MissingHeader;
use crate::log::{AccessLog, By, Entry, Level, RuleRef, Url};
use crate::policy::{Addresses, Policy};
use crate::resolve::{Dns, Names};
use crate::rules::{Rule, Target, Verdict};

/// What the request path reads; managed as Rocket state (inside the fairing's wrapper).
pub(crate) struct Shared {
    pub policy: ArcSwap<Policy>,
    pub default: Verdict,
    pub rules: Vec<Rule>,
    pub trusted: Vec<Target>,
    pub header: ClientIpHeader,
    pub missing_header: MissingHeader,
    pub log: Option<AccessLog>,
    /// The resolver and name state, handed to the refresh task at liftoff.
    pub refresher: Mutex<Option<(Dns, Names)>>,
}

impl Shared {
    /// Compiles the rules against new host-name addresses and swaps them in whole.
    pub fn rebuild(&self, addrs: &Addresses) {
        let policy = Policy::compile(self.default, &self.rules, &self.trusted, addrs);
        self.policy.store(std::sync::Arc::new(policy));
    }
}

/// The outcome for one request, cached in the request (`Request::local_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ruling {
    pub verdict: Verdict,
}

/// Decides one request and records the decision. Fails closed: no address, or a trusted
/// proxy's header that cannot be read up to the client, is refused.
pub(crate) fn decide(shared: &Shared, req: &Request<'_>) -> Ruling {
    let policy = shared.policy.load();
    let client = req.remote().map(|peer| {
        let peer = peer.ip();
        // Headers are only read (and collected) when a trusted proxy could vouch for them.
        if policy.trusted.contains(peer.to_canonical()) {
            let values: Vec<&str> = req.headers().get(shared.header.name()).collect();
            match client_addr(peer, &shared.header, &values, &policy.trusted) {
                Err(Unreadable::Missing) if shared.missing_header == MissingHeader::Peer => {
                    Ok(ClientAddr::from_peer(peer))
                }
                other => other,
            }
        } else {
            Ok(ClientAddr::from_peer(peer))
        }
    });
    let (verdict, rule, by, note) = match client {
        Some(Ok(ClientAddr { ip, note, .. })) => {
            let d = policy.matcher.decide(ip);
            let by = if d.rule.is_some() {
                By::Rule
            } else {
                By::Default
            };
            (d.verdict, d.rule, by, note)
        }
        Some(Err(why)) => (Verdict::Deny, None, By::Header, Some(why.reason())),
        None => (
            Verdict::Deny,
            None,
            By::Header,
            Some("no client address (a local client needs .remote(...))"),
        ),
    };
    let level = match (by, verdict) {
        (By::Default, _) => Level::Warning,
        (_, Verdict::Allow) => Level::Info,
        (_, Verdict::Deny) => Level::Error,
    };
    let client = match client {
        Some(Ok(c)) => Some(c),
        // Unreadable: the log shows the peer as "via", with no client.
        Some(Err(_)) => req.remote().map(|p| ClientAddr {
            ip: p.ip().to_canonical(),
            peer: p.ip().to_canonical(),
            from_header: true,
            note: None,
        }),
        None => None,
    };
    let record = Record {
        client,
        unreadable: by == By::Header,
        verdict,
        rule,
        by,
        level,
        note,
    };
    record.write(req, shared, &policy);
    Ruling { verdict }
}

/// One decision, ready to be written to the access log and as a tracing event.
struct Record<'a> {
    client: Option<ClientAddr>,
    /// The client address could not be read: only the peer is known.
    unreadable: bool,
    verdict: Verdict,
    rule: Option<usize>,
    by: By,
    level: Level,
    note: Option<&'a str>,
}

impl Record<'_> {
    /// Writes the access log line and the tracing event, building the strings only if
    /// either wants them.
    fn write(&self, req: &Request<'_>, shared: &Shared, policy: &Policy) {
        let event = match self.level {
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
            level: self.level,
            client: self.client.filter(|_| !self.unreadable).map(|c| c.ip),
            peer: self
                .client
                .filter(|c| c.from_header || c.ip != c.peer)
                .map(|c| c.peer),
            verdict: self.verdict,
            rule: self.rule.map(|index| RuleRef {
                index,
                written: &shared.rules[index].written,
                normalized: &policy.normalized[index],
            }),
            by: self.by,
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
