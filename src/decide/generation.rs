//! What the request path reads: one compiled [`Generation`] of the configured policies
//! ([`Spec`], fixed at ignite).
//!
//! A generation is immutable: every policy's rules and the trusted proxies compiled
//! against one set of host-name addresses. A DNS refresh compiles a new one and swaps it
//! in whole, so a request sees either the old set or the new one, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::decide::matcher::Matcher;
use crate::rules::{Target, Verdict};
use crate::sets::Sets;

use super::spec::{Matched, Spec};

/// The current addresses of every host name in the configuration.
pub(crate) type Addresses = HashMap<String, Vec<IpAddr>>;

/// What a generation is compiled from besides the spec, and what changes at run time: the
/// sets' entries (inline, loaded from list files, replaced through the handle) and the
/// addresses of host names.
/// Cheap to clone: a change makes new parts and shares the rest.
#[derive(Default, Clone)]
pub(crate) struct Contents {
    /// Each set's entries as configured or loaded, before `@set` references are expanded.
    pub entries: Arc<BTreeMap<String, Arc<Vec<Target>>>>,
    /// `entries` with references expanded (always valid: changes are checked first).
    pub sets: Arc<Sets>,
    pub addrs: Arc<Addresses>,
    /// The networks of `country:`/`asn:` values, as last read from the databases.
    pub geo: Arc<crate::geoip::Geo>,
}

impl Contents {
    /// A warning for each of `spec`'s trusted-proxy entries that, with these contents, covers a network
    /// wider than /8 (IPv4) or /16 (IPv6): any client in it could choose its address.
    pub fn wide_proxies(&self, spec: &Spec) -> Vec<String> {
        let mut out = Vec::new();
        for (i, entry) in spec.trusted.iter().enumerate() {
            for target in self.sets.expand(entry) {
                let wide: Vec<String> = target
                    .networks()
                    .unwrap_or_default()
                    .iter()
                    .filter(|n| match n {
                        IpNet::V4(n) => n.prefix_len() < 8,
                        IpNet::V6(n) => n.prefix_len() < 16,
                    })
                    .map(|n| n.to_string())
                    .collect();
                if !wide.is_empty() {
                    out.push(format!(
                        "allow.trusted_proxies[{i}]: `{entry}` covers {}: any client in it can \
                         choose its address by sending a header; list only your own proxies",
                        wide.join(", ")
                    ));
                }
            }
        }
        out
    }

    /// Contents with these entries, if every `@set` reference among them resolves.
    pub fn new(
        entries: BTreeMap<String, Vec<Target>>,
        addrs: Addresses,
    ) -> Result<Contents, String> {
        let sets = Sets::build(&entries).map_err(|(key, message)| format!("{key}: {message}"))?;
        Ok(Contents {
            entries: Arc::new(entries.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()),
            sets: Arc::new(sets),
            addrs: Arc::new(addrs),
            geo: Arc::default(),
        })
    }

    /// The contents with one set's entries replaced, if the result is valid. The other
    /// sets' entries are shared, not copied.
    pub fn with_set(&self, name: &str, entries: Vec<Target>) -> Result<Contents, String> {
        let mut all = BTreeMap::clone(&self.entries);
        all.insert(name.to_string(), Arc::new(entries));
        let sets = Sets::build(&all).map_err(|(key, message)| format!("{key}: {message}"))?;
        let geo = crate::geoip::covering(&self.geo, &all, name)?;
        Ok(Contents {
            entries: Arc::new(all),
            sets: Arc::new(sets),
            addrs: self.addrs.clone(),
            geo,
        })
    }

    /// The contents with new networks for `country:`/`asn:` values.
    pub fn with_geo(&self, geo: crate::geoip::Geo) -> Contents {
        Contents {
            geo: Arc::new(geo),
            ..self.clone()
        }
    }

    /// The contents with new host-name addresses.
    pub fn with_addrs(&self, addrs: &Addresses) -> Contents {
        Contents {
            addrs: Arc::new(addrs.clone()),
            ..self.clone()
        }
    }
}

/// One automatic-ban rule's exemptions, compiled.
pub(crate) struct Exempt {
    /// `Allow` for an exempt address.
    pub matcher: Matcher,
    /// IPv6 networks of the rule's `ipv6_prefix` that hold an address never to be banned.
    pub protected: std::collections::HashSet<IpNet>,
}

/// One compiled generation of every policy.
pub(crate) struct Generation {
    /// One matcher per policy, in [`Spec::policies`] order.
    pub matchers: Vec<Matcher>,
    /// What host-name rules resolve to now, for the log, by (policy, rule); other rules
    /// are described from their target when a line is written.
    hosts: HashMap<(usize, usize), String>,
    pub trusted: Matcher,
    /// Each automatic-ban rule's exemptions.
    pub exempt: Vec<Exempt>,
    /// For each set and `country:`/`asn:` value used by a rule: its networks, sorted, so the
    /// log can show which one matched (found by looking up the address's own prefixes, at
    /// most 129 of them).
    sets: HashMap<Target, Arc<[IpNet]>>,
}

impl Generation {
    /// Compiles every policy against the sets' current entries and host-name addresses.
    pub fn compile(spec: &Spec, contents: &Contents) -> Generation {
        let nets = |t: &Target| networks(contents, t);
        let matchers = spec
            .policies
            .iter()
            .map(|p| {
                Matcher::new(
                    p.default,
                    p.rules.iter().map(|r| (r.verdict, nets(&r.target))),
                )
            })
            .collect();
        let mut hosts = HashMap::new();
        for (p, policy) in spec.policies.iter().enumerate() {
            for (r, rule) in policy.rules.iter().enumerate() {
                if let Target::Host(_) = &rule.target {
                    hosts.insert((p, r), describe(&rule.target, &contents.addrs));
                }
            }
        }
        let trusted = Matcher::new(
            Verdict::Deny,
            spec.trusted.iter().map(|t| (Verdict::Allow, nets(t))),
        );
        let exempt = spec
            .exempt
            .iter()
            .map(|(list, prefix)| {
                let lists: Vec<Vec<IpNet>> = list.iter().map(nets).collect();
                let loopback = IpNet::from(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
                // The IPv6 networks of `prefix` length that hold an address never to be banned
                // (exempt, trusted proxies, ::1): a client there is banned alone, not by its
                // network (which would ban them too).
                let protected = lists
                    .iter()
                    .flatten()
                    .chain(
                        spec.trusted
                            .iter()
                            .flat_map(nets)
                            .collect::<Vec<_>>()
                            .iter(),
                    )
                    .chain(std::iter::once(&loopback))
                    .filter_map(|n| match n {
                        IpNet::V6(v6) if v6.prefix_len() > *prefix => {
                            IpNet::new(IpAddr::V6(v6.addr()), *prefix)
                                .ok()
                                .map(|n| n.trunc())
                        }
                        _ => None,
                    })
                    .collect();
                Exempt {
                    matcher: Matcher::new(
                        Verdict::Deny,
                        lists.into_iter().map(|n| (Verdict::Allow, n)),
                    ),
                    protected,
                }
            })
            .collect();
        let mut sets = HashMap::new();
        for rule in spec.policies.iter().flat_map(|p| &p.rules) {
            if let Target::Set(_) | Target::Country(_) | Target::Asn(_) = &rule.target {
                sets.entry(rule.target.clone()).or_insert_with(|| {
                    // A database's networks are sorted already, and shared rather than copied.
                    if let Some(shared) = contents.geo.shared(&rule.target) {
                        return shared;
                    }
                    let mut list = nets(&rule.target);
                    list.sort_unstable();
                    list.dedup();
                    Arc::from(list)
                });
            }
        }
        Generation {
            matchers,
            hosts,
            trusted,
            exempt,
            sets,
        }
    }

    /// Networks compiled for each policy, in spec order (the `rocket_allow_rules` gauge).
    pub fn network_counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.matchers.iter().map(Matcher::network_count)
    }

    /// What a rule matched for `ip`, for the log: the set's network that contains it for
    /// `@set` rules, the normalized rule otherwise.
    pub fn matched<'a>(
        &'a self,
        spec: &'a Spec,
        policy: usize,
        rule: usize,
        ip: IpAddr,
    ) -> Matched<'a> {
        let target = &spec.policies[policy].rules[rule].target;
        if let Target::Set(_) | Target::Country(_) | Target::Asn(_) = target {
            if let Some(nets) = self.sets.get(target) {
                let ip = ip.to_canonical();
                let longest = if ip.is_ipv4() { 32 } else { 128 };
                // The most specific of the set's networks that contains the address.
                for len in (0..=longest).rev() {
                    if let Ok(net) = IpNet::new(ip, len) {
                        if nets.binary_search(&net.trunc()).is_ok() {
                            return Matched::Net(net.trunc());
                        }
                    }
                }
            }
        }
        match target {
            Target::Host(_) => Matched::Text(self.hosts.get(&(policy, rule)).map_or("", |d| d)),
            Target::All => Matched::Text(ALL),
            Target::Net(net) => Matched::Net(*net),
            Target::Set(name) => Matched::Set(name),
            // An address no network of the value holds never matches it.
            Target::Country(_) | Target::Asn(_) => Matched::Text(""),
        }
    }
}

/// A target's networks: host names by their current addresses (none if unresolved), sets
/// by their entries, `country:`/`asn:` values by what the databases gave them.
fn networks(contents: &Contents, target: &Target) -> Vec<IpNet> {
    contents
        .sets
        .expand(target)
        .iter()
        .flat_map(|t| match t {
            Target::Host(name) => contents
                .addrs
                .get(name)
                .map(|list| list.iter().map(|&ip| IpNet::from(ip)).collect())
                .unwrap_or_default(),
            Target::Country(_) | Target::Asn(_) => contents.geo.networks(t).to_vec(),
            other => other.networks().unwrap_or_default(),
        })
        .collect()
}

/// What `all` is normalized to in log lines.
const ALL: &str = "0.0.0.0/0, ::/0";

fn describe(target: &Target, addrs: &Addresses) -> String {
    match target {
        Target::Net(net) => net.to_string(),
        Target::All => ALL.into(),
        Target::Set(name) => format!("@{name}"),
        Target::Country(_) | Target::Asn(_) => target.to_string(),
        Target::Host(name) => {
            let list = addrs.get(name).map(Vec::as_slice).unwrap_or_default();
            if list.is_empty() {
                format!("{name}: unresolved")
            } else {
                let list: Vec<String> = list.iter().map(IpAddr::to_string).collect();
                format!("{name}: {}", list.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AllowConfig;

    fn spec(toml: &str) -> (Contents, Spec) {
        use rocket::figment::providers::{Format, Toml};
        let f = rocket::figment::Figment::new().merge(Toml::string(toml));
        let c = AllowConfig::from_figment(&f).unwrap();
        let entries = crate::config::known_entries(&c.sets);
        (
            Contents::new(entries, Addresses::new()).unwrap(),
            Spec::new(&c),
        )
    }

    #[test]
    fn host_rules_use_current_addresses() {
        let (mut contents, s) =
            spec("[allow]\nrules = [{ allow = \"proxy.test\" }, { deny = \"all\" }]");
        let g = Generation::compile(&s, &contents);
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(g.matchers[0].decide(ip("192.0.2.1")).rule, Some(1));
        assert_eq!(
            g.matched(&s, 0, 0, ip("192.0.2.1")).to_string(),
            "proxy.test: unresolved"
        );
        let mut addrs = Addresses::new();
        addrs.insert(
            "proxy.test".into(),
            vec![ip("192.0.2.1"), ip("2001:db8::1")],
        );
        contents = contents.with_addrs(&addrs);
        let g = Generation::compile(&s, &contents);
        assert_eq!(g.matchers[0].decide(ip("192.0.2.1")).rule, Some(0));
        assert_eq!(g.matchers[0].decide(ip("2001:db8::1")).rule, Some(0));
        assert_eq!(
            g.matched(&s, 0, 0, ip("192.0.2.1")).to_string(),
            "proxy.test: 192.0.2.1, 2001:db8::1"
        );
        assert_eq!(
            g.matched(&s, 0, 1, ip("192.0.2.1")).to_string(),
            "0.0.0.0/0, ::/0"
        );
    }

    #[test]
    fn sets_expand_and_show_the_network_that_matched() {
        let (c, s) = spec(
            r#"
            [allow]
            rules = [{ allow = "@office" }, { deny = "all" }]
            [allow.sets]
            office = ["203.0.113.0/24", "@loopback", "vpn.test"]
            "#,
        );
        let g = Generation::compile(&s, &c);
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(g.matchers[0].decide(ip("127.0.0.9")).rule, Some(0));
        assert_eq!(
            g.matched(&s, 0, 0, ip("127.0.0.9")).to_string(),
            "127.0.0.0/8"
        );
        assert_eq!(
            g.matched(&s, 0, 0, ip("203.0.113.7")).to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            g.matched(&s, 0, 1, ip("192.0.2.1")).to_string(),
            "0.0.0.0/0, ::/0"
        );
        // Names inside sets are listed for DNS, under the set's key.
        let names = crate::resolve::host_names(s.targets(&c.entries));
        assert_eq!(
            names,
            [("vpn.test".to_string(), "allow.sets.office[2]".to_string())]
        );
    }

    #[test]
    fn names_are_listed_once_with_their_first_key() {
        let (c, s) = spec(
            r#"
            [allow]
            rules = [{ allow = "a.test" }, { deny = "10.0.0.0/8" }, { deny = "A.test." }]
            trusted_proxies = ["b.test", "a.test"]
            "#,
        );
        assert_eq!(
            crate::resolve::host_names(s.targets(&c.entries)),
            vec![
                ("a.test".to_string(), "allow.rules[0]".to_string()),
                ("b.test".to_string(), "allow.trusted_proxies[0]".to_string()),
            ]
        );
    }
}
