//! Automatic bans (`[allow.auto_ban.<name>]`): a client with more than `max` events
//! (refusals, response statuses, strikes) within a sliding window is banned, through the
//! same ban table, bans file and fleet store as any ban, with origin `auto_ban <name>`.
//!
//! Only the client rocket-allow decided on is counted (never an address from a header an
//! untrusted peer sent); trusted proxies, loopback and each rule's `exempt` never are.
//! With `[allow.store]`, events are counted for the whole fleet in Redis, in batches sent
//! off the request path ([`crate::store::counts`]).

mod tracker;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rocket::Request;

use crate::config::{AutoBanConfig, AutoBanOn, Mode};
use crate::decide::bans::{expiry, tagged};
use crate::decide::generation::Generation;
use crate::decide::paths::PathTable;
use crate::decide::{describe_ban, ruling_of, Shared};
use crate::log::By;
use crate::store::counts::{CountRule, Counter, Event, Outcome};
use tracker::{Counted, Limits, Tracker};

/// Automatic bans made (or, in report mode, that would have been), by rule and `enforced`.
pub const AUTO_BANS: &str = "rocket_allow_auto_bans_total";
/// Clients an automatic-ban rule tracks on this instance.
pub const AUTO_BAN_TRACKED: &str = "rocket_allow_auto_ban_tracked";

/// One rule, ready to count.
struct Rule {
    name: String,
    on: AutoBanOn,
    /// Statuses that count (`on = "status"`), as a bit set over 0..640.
    statuses: [u64; 10],
    /// `None`: every path counts.
    paths: Option<PathTable>,
    ipv6_prefix: u8,
    enforce: bool,
    window_secs: u64,
    /// What the events are, for the reason (`responses 404 or 405`).
    what: String,
    tracker: Tracker,
    tracked: metrics::Gauge,
    made: [metrics::Counter; 2],
}

impl Rule {
    fn new(name: &str, c: &AutoBanConfig) -> Rule {
        let mut statuses = [0u64; 10];
        for &s in &c.statuses {
            statuses[usize::from(s) / 64] |= 1 << (s % 64);
        }
        let paths = (!c.paths.is_empty()).then(|| {
            let mut table = PathTable::default();
            for path in &c.paths {
                for segments in crate::config::policy_path_forms(path) {
                    table.insert(&segments, 0);
                }
            }
            table
        });
        let what = match c.on {
            AutoBanOn::Refusals => "refusals".to_string(),
            AutoBanOn::Strikes => "strikes".to_string(),
            AutoBanOn::Status => {
                let list: Vec<String> = c.statuses.iter().map(u16::to_string).collect();
                format!("responses {}", list.join(" or "))
            }
        };
        let label = name.to_string();
        Rule {
            name: name.to_string(),
            on: c.on,
            statuses,
            paths,
            ipv6_prefix: c.ipv6_prefix,
            enforce: c.mode == Mode::Enforce,
            window_secs: c.window_secs,
            what,
            tracker: Tracker::new(
                Limits {
                    max: c.max as usize,
                    window_ms: c.window_secs * 1000,
                    ban_secs: c.ban_secs,
                    max_ban_secs: c.max_ban_secs,
                },
                c.max_tracked,
            ),
            tracked: metrics::gauge!(AUTO_BAN_TRACKED, "rule" => label.clone()),
            made: [
                metrics::counter!(AUTO_BANS, "rule" => label.clone(), "enforced" => "false"),
                metrics::counter!(AUTO_BANS, "rule" => label, "enforced" => "true"),
            ],
        }
    }

    fn counts_status(&self, status: u16) -> bool {
        let s = usize::from(status);
        s < 640 && self.statuses[s / 64] & (1 << (s % 64)) != 0
    }

    /// The network a client is counted and banned as: an IPv4 address, or an IPv6
    /// address's network of `ipv6_prefix`, except where that network holds an address
    /// never to be banned (`protected`: a trusted proxy, an exempt address, ::1) or
    /// stands for IPv4 clients (NAT64 and SIIT prefixes): then the address alone.
    fn net(&self, ip: IpAddr, protected: &HashSet<IpNet>) -> IpNet {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpNet::from(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let alone = IpNet::from(IpAddr::V6(v6));
                if translated(v6) {
                    return alone;
                }
                match IpNet::new(IpAddr::V6(v6), self.ipv6_prefix).map(|n| n.trunc()) {
                    Ok(net) if !protected.contains(&net) => net,
                    _ => alone,
                }
            }
        }
    }
}

/// Addresses that carry an IPv4 client in IPv6 (a translator's clients share its /64):
/// 64:ff9b::/96 and 64:ff9b:1::/48 (NAT64), ::ffff:0:0:0/96 (SIIT).
fn translated(v6: std::net::Ipv6Addr) -> bool {
    let s = v6.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0])
        || (s[..3] == [0x64, 0xff9b, 1])
        || (s[..6] == [0, 0, 0, 0, 0xffff, 0])
}

/// Whether `req`'s path is at or below one of `paths`, segment-wise and percent-decoded as
/// the router and the policies see it (`/%61dmin` is `/admin`). A refused request was
/// rerouted: its path is the one its refusal kept.
fn under(paths: &PathTable, req: &Request<'_>) -> bool {
    if !crate::decide::refused(req) {
        return paths.lookup(req.uri().path().segments()).is_some();
    }
    let kept = crate::Refused::of(req).map(|r| r.uri).unwrap_or_default();
    match rocket::http::uri::Origin::parse(&kept) {
        Ok(origin) => paths.lookup(origin.path().segments()).is_some(),
        // The refusal kept what Rocket parsed, so this does not happen; count it then.
        Err(_) => true,
    }
}

/// The tracker's key for a counted network.
fn key(net: IpNet) -> u128 {
    match net.addr() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The automatic-ban rules of one app.
pub(crate) struct AutoBans {
    shared: Arc<Shared>,
    rules: Vec<Rule>,
    /// The monotonic clock's zero.
    start: Instant,
    /// With `[allow.store]`: the fleet's counts.
    fleet: Option<Arc<Counter>>,
}

impl AutoBans {
    /// The rules of `config` (in name order, as the exemptions were compiled); `None`
    /// without any, so an app without automatic bans pays nothing.
    pub fn start(
        shared: &Arc<Shared>,
        config: &std::collections::BTreeMap<String, AutoBanConfig>,
    ) -> Result<Option<Arc<AutoBans>>, String> {
        if config.is_empty() {
            return Ok(None);
        }
        metrics::describe_counter!(
            AUTO_BANS,
            "Automatic bans made (enforced=true) or recorded in report mode (enforced=false)"
        );
        metrics::describe_gauge!(AUTO_BAN_TRACKED, "Clients an automatic-ban rule tracks");
        let rules: Vec<Rule> = config.iter().map(|(n, c)| Rule::new(n, c)).collect();
        let count_rules: Vec<CountRule> = config
            .iter()
            .map(|(name, c)| CountRule {
                key: name.clone(), // the store's prefix is put in front below
                window_ms: c.window_secs * 1000,
                max: u64::from(c.max),
                ban_secs: c.ban_secs,
                max_ban_secs: c.max_ban_secs.unwrap_or(0),
                enforce: c.mode == Mode::Enforce,
                max_tracked: c.max_tracked,
            })
            .collect();
        let start = Instant::now();
        let auto = Arc::new_cyclic(|weak: &std::sync::Weak<AutoBans>| {
            let fleet = shared.store.as_ref().and_then(|store| {
                let rules = count_rules
                    .iter()
                    .map(|r| CountRule {
                        key: format!("{}:ab:{}", store.config.prefix, r.key),
                        ..r.clone()
                    })
                    .collect();
                Counter::start(store, rules, start, weak.clone(), |a: &AutoBans, o| {
                    a.counted(o)
                })
                .map_err(|e| {
                    log::error!(target: "rocket_allow",
                        "rocket-allow: auto_ban: cannot start the fleet counter ({e}); counting on this instance");
                })
                .ok()
            });
            AutoBans {
                shared: shared.clone(),
                rules,
                start,
                fleet,
            }
        });
        Ok(Some(auto))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// After a response: counts the request for every rule it is an event of.
    pub fn on_response(&self, req: &Request<'_>, status: u16) {
        let Some(ruling) = ruling_of(req) else {
            return;
        };
        let Some(client) = ruling.client else {
            return;
        };
        let refused = !ruling.admitted() && matches!(ruling.by, By::Rule | By::Default | By::Path);
        for (r, rule) in self.rules.iter().enumerate() {
            let counts = match rule.on {
                AutoBanOn::Refusals => refused,
                AutoBanOn::Status => ruling.admitted() && rule.counts_status(status),
                AutoBanOn::Strikes => false,
            };
            if !counts {
                continue;
            }
            if let Some(paths) = &rule.paths {
                if !under(paths, req) {
                    continue;
                }
            }
            self.event(r, client.ip);
        }
    }

    /// `AllowHandle::strike`: one event of rule `name` for `client`; whether it is banned now.
    pub fn strike(&self, name: &str, client: IpAddr) -> Result<bool, crate::RuntimeError> {
        let Some(r) = self.rules.iter().position(|r| r.name == name) else {
            return Err(crate::RuntimeError::UnknownAutoBan(name.to_string()));
        };
        if self.rules[r].on != AutoBanOn::Strikes {
            return Err(crate::RuntimeError::NotStrikes(name.to_string()));
        }
        Ok(self.event(r, client))
    }

    /// Whether rule `r` must never count `ip` (canonical): loopback, a trusted proxy, exempt.
    fn exempt(generation: &Generation, r: usize, ip: IpAddr) -> bool {
        ip.is_loopback()
            || generation.trusted.contains(ip)
            || generation.exempt[r].matcher.contains(ip)
    }

    /// Counts one event; whether the client is banned now.
    fn event(&self, r: usize, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let generation = self.shared.generation.load();
        if Self::exempt(&generation, r, ip) {
            return false;
        }
        let rule = &self.rules[r];
        let net = rule.net(ip, &generation.exempt[r].protected);
        drop(generation);
        // Already banned (a strike from a handler the ban did not stop): not counted again.
        if self.shared.bans.check(ip).is_some() {
            return true;
        }
        let now = self.now();
        if let Some(fleet) = &self.fleet {
            let event = Event {
                rule: r,
                client: net,
                mono_ms: now,
            };
            if fleet.push(event) {
                // The fleet decides; kept here too, should Redis stop answering.
                rule.tracker.record(key(net), now);
                return false;
            }
        }
        self.local(r, net, now)
    }

    /// Counts one event on this instance.
    fn local(&self, r: usize, net: IpNet, now: u64) -> bool {
        let rule = &self.rules[r];
        let counted = rule.tracker.event(key(net), now, rule.enforce);
        rule.tracked.set(rule.tracker.tracked() as f64);
        match counted {
            Counted::Below => false,
            Counted::Over { secs, events } => self.ban(r, net, secs, events as u64),
        }
    }

    /// A batch's outcome from the fleet counter (on its thread).
    fn counted(&self, outcome: Outcome) {
        match outcome {
            Outcome::Counted { over, tracked } => {
                for (r, n) in tracked {
                    self.rules[r].tracked.set(n as f64);
                }
                let now = self.now();
                for o in over {
                    if self.rules[o.rule].enforce {
                        self.rules[o.rule]
                            .tracker
                            .banned(key(o.client), now, o.secs);
                    }
                    self.ban(o.rule, o.client, o.secs, o.events);
                }
            }
            Outcome::NotSent(events) => {
                // Recorded here when queued: decide on all this instance saw of each.
                let now = self.now();
                let mut seen = HashSet::new();
                for e in events {
                    if !seen.insert((e.rule, e.client)) {
                        continue;
                    }
                    let rule = &self.rules[e.rule];
                    if let Counted::Over { secs, events } =
                        rule.tracker.check(key(e.client), now, rule.enforce)
                    {
                        self.ban(e.rule, e.client, secs, events as u64);
                    }
                }
            }
        }
    }

    /// Bans `net` for `secs` by rule `r` (or records that it would, in report mode);
    /// whether it is banned.
    fn ban(&self, r: usize, net: IpNet, secs: u64, events: u64) -> bool {
        let rule = &self.rules[r];
        let origin = format!("auto_ban {}", rule.name);
        let reason = format!("{events} {} in {} s", rule.what, rule.window_secs);
        rule.made[usize::from(rule.enforce)].increment(1);
        let shared = &self.shared;
        if !rule.enforce {
            super::audit::record(
                shared,
                None,
                &format!("would ban {net} by {origin}: {reason} (report mode)"),
            );
            return false;
        }
        let expires = expiry(Some(Duration::from_secs(secs)));
        let label = tagged(&origin, &reason);
        let (ban, version) = shared.bans.ban_at(net, expires, Some(&label));
        super::audit::record(shared, None, &describe_ban(&ban));
        if let Some(store) = &shared.store {
            store.ban(net, expires, Some(&label), version);
        }
        true
    }

    /// An operator lifted the ban on `target`: every rule forgets the clients in it (and
    /// the fleet its counts and escalation).
    pub fn forget(&self, target: IpNet) {
        self.forget_here(target);
        if let Some(fleet) = &self.fleet {
            fleet.reset(target.trunc());
        }
    }

    /// [`AutoBans::forget`] on this instance only (the fleet's lift: the instance that
    /// lifted it reset the fleet's counts).
    pub fn forget_here(&self, target: IpNet) {
        let generation = self.shared.generation.load();
        for (r, rule) in self.rules.iter().enumerate() {
            let own = rule.net(target.addr(), &generation.exempt[r].protected);
            if own == target {
                // One client (the usual case: an automatic ban's own target): one lookup.
                rule.tracker.forget_one(key(own));
            } else if own.contains(&target) {
                // Part of a client (one address of a counted /64): its count stays.
            } else {
                // A wider network: every client inside it.
                rule.tracker
                    .forget(|k| target.contains(&std::net::Ipv6Addr::from(k).to_canonical()));
            }
            rule.tracked.set(rule.tracker.tracked() as f64);
        }
    }

    /// Ends the fleet counter's thread (at shutdown).
    pub fn stop(&self) {
        if let Some(fleet) = &self.fleet {
            fleet.stop();
        }
    }
}
