//! The compiled rule set the request path reads, and how it is rebuilt.
//!
//! A [`Policy`] is immutable: the rules and trusted proxies compiled against one set
//! of host-name addresses. A DNS refresh compiles a new one and swaps it in whole, so
//! a request sees either the old set or the new one, never a mix.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::matcher::Matcher;
use crate::rules::{Rule, Target, Verdict};

/// The current addresses of every host name in the configuration.
pub(crate) type Addresses = HashMap<String, Vec<IpAddr>>;

/// One compiled generation of the configuration.
pub(crate) struct Policy {
    pub matcher: Matcher,
    pub trusted: Matcher,
    /// What each rule was normalized to, for the log: a network, `all`, or a name and its addresses.
    pub normalized: Vec<String>,
}

impl Policy {
    pub fn compile(
        default: Verdict,
        rules: &[Rule],
        trusted: &[Target],
        addrs: &Addresses,
    ) -> Policy {
        let matcher = Matcher::new(
            default,
            rules
                .iter()
                .map(|r| (r.verdict, networks(&r.target, addrs))),
        );
        let trusted = Matcher::new(
            Verdict::Deny,
            trusted.iter().map(|t| (Verdict::Allow, networks(t, addrs))),
        );
        let normalized = rules.iter().map(|r| describe(&r.target, addrs)).collect();
        Policy {
            matcher,
            trusted,
            normalized,
        }
    }
}

/// A host name's networks are its current addresses; an unresolved name has none.
fn networks(target: &Target, addrs: &Addresses) -> Vec<IpNet> {
    match target {
        Target::Host(name) => addrs
            .get(name)
            .map(|list| list.iter().map(|&ip| IpNet::from(ip)).collect())
            .unwrap_or_default(),
        other => other.networks().expect("not a host name"),
    }
}

fn describe(target: &Target, addrs: &Addresses) -> String {
    match target {
        Target::Net(net) => net.to_string(),
        Target::All => "0.0.0.0/0, ::/0".into(),
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

    #[test]
    fn host_rules_use_current_addresses() {
        let rules = vec![
            Rule::allow("proxy.test").unwrap(),
            Rule::deny("all").unwrap(),
        ];
        let mut addrs = Addresses::new();
        let p = Policy::compile(Verdict::Allow, &rules, &[], &addrs);
        assert_eq!(p.matcher.decide("192.0.2.1".parse().unwrap()).rule, Some(1));
        assert_eq!(p.normalized[0], "proxy.test: unresolved");
        addrs.insert(
            "proxy.test".into(),
            vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        );
        let p = Policy::compile(Verdict::Allow, &rules, &[], &addrs);
        assert_eq!(p.matcher.decide("192.0.2.1".parse().unwrap()).rule, Some(0));
        assert_eq!(
            p.matcher.decide("2001:db8::1".parse().unwrap()).rule,
            Some(0)
        );
        assert_eq!(p.normalized[0], "proxy.test: 192.0.2.1, 2001:db8::1");
        assert_eq!(p.normalized[1], "0.0.0.0/0, ::/0");
    }
}
