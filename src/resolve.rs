//! Host-name rules: hickory lookups at ignite, and refresh by TTL in the background.
//!
//! Nothing here runs on the request path. Every name is looked up for all its A and
//! AAAA records; the answer's TTL, clamped to `[min_ttl_secs, max_ttl_secs]`, says when
//! to look again. A failed refresh keeps the last known addresses and retries after
//! `min_ttl_secs`. When any name's addresses change, the caller's rebuild runs once
//! with the new set.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use rocket::futures::future::join_all;
use rocket::tokio::time::{sleep_until, Instant};

use crate::config::{DnsConfig, OnUnresolved};
use crate::decide::generation::Addresses;
use crate::error::Error;
use crate::rules::Target;

/// A configured resolver and the refresh bounds.
pub(crate) struct Dns {
    resolver: TokioResolver,
    min_ttl: Duration,
    max_ttl: Duration,
}

/// The longest wait this module schedules: far beyond any validated setting (TTLs are at
/// most 7 days, timeouts 5 minutes), and short enough that adding it to the clock cannot
/// overflow, so an unvalidated configuration cannot make it panic.
const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `secs` as a wait, cut to [`LONGEST_WAIT`].
fn wait_secs(secs: u64) -> Duration {
    Duration::from_secs(secs).min(LONGEST_WAIT)
}

/// `now + wait` without the panic of `Instant + Duration` on overflow: a wait the clock
/// cannot hold is cut to [`LONGEST_WAIT`] (and, past the end of the clock, to `now`).
fn due_after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(LONGEST_WAIT))
        .unwrap_or(now)
}

/// The outcome of looking a name up: its sorted addresses and when to look again.
type Answer = Result<(Vec<IpAddr>, Duration), String>;

impl Dns {
    pub fn new(config: &DnsConfig) -> Result<Dns, Error> {
        let invalid = |message: String| Error::Invalid {
            key: "allow.dns".into(),
            message,
        };
        let mut builder = if config.nameservers.is_empty() {
            let mut b = TokioResolver::builder_tokio().map_err(|e| {
                invalid(format!(
                    "cannot read the system resolver configuration: {e}"
                ))
            })?;
            // The system view includes /etc/hosts, so `localhost` is 127.0.0.1 and ::1.
            b.options_mut().use_hosts_file = ResolveHosts::Always;
            b
        } else {
            let servers = config.nameservers.iter().map(name_server).collect();
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                TokioRuntimeProvider::default(),
            );
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts = builder.options_mut();
        opts.timeout = wait_secs(config.timeout_secs);
        opts.attempts = 1;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // We schedule by TTL ourselves; a cache would hand back stale answers when
        // max_ttl_secs is shorter than a record's TTL.
        opts.cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| invalid(format!("cannot build the resolver: {e}")))?;
        // Validation keeps min <= max; `clamp` panics otherwise, so make sure of it here too.
        let min_ttl = wait_secs(config.min_ttl_secs);
        let max_ttl = wait_secs(config.max_ttl_secs).max(min_ttl);
        Ok(Dns {
            resolver,
            min_ttl,
            max_ttl,
        })
    }

    /// All A and AAAA records of `name`, and how long they may be kept.
    async fn lookup(&self, name: &str) -> Answer {
        let started = Instant::now();
        let lookup = self
            .resolver
            .lookup_ip(name)
            .await
            .map_err(|e| e.to_string())?;
        let mut addrs: Vec<IpAddr> = lookup.iter().map(|ip| ip.to_canonical()).collect();
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return Err("no A or AAAA records".into());
        }
        let ttl = lookup
            .valid_until()
            .saturating_duration_since(started.into_std());
        Ok((addrs, ttl.clamp(self.min_ttl, self.max_ttl)))
    }
}

fn name_server(addr: &SocketAddr) -> NameServerConfig {
    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
    for c in &mut ns.connections {
        c.port = addr.port();
    }
    ns
}

/// Every distinct host name among `targets` (each with the key it was written under), with
/// the key of its first use.
pub(crate) fn host_names<'a>(
    targets: impl IntoIterator<Item = (&'a Target, String)>,
) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (target, key) in targets {
        if let Target::Host(name) = target {
            if seen.insert(name.clone()) {
                out.push((name.clone(), key));
            }
        }
    }
    out
}

/// The names' state between refreshes.
pub(crate) struct Names {
    addrs: Addresses,
    due: HashMap<String, Instant>,
}

impl Names {
    pub fn addresses(&self) -> &Addresses {
        &self.addrs
    }

    /// The earliest time a name wants refreshing.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }
}

/// Resolves every name at ignite. With `on_unresolved = "fail"` the first failure is the
/// error; with `"warn"` the name starts with no addresses and is retried after `min_ttl_secs`.
pub(crate) async fn resolve_at_ignite(
    dns: &Dns,
    names: &[(String, String)],
    on_unresolved: OnUnresolved,
) -> Result<Names, Error> {
    let answers = join_all(names.iter().map(|(name, _)| dns.lookup(name))).await;
    let now = Instant::now();
    let mut state = Names {
        addrs: Addresses::new(),
        due: HashMap::new(),
    };
    for ((name, key), answer) in names.iter().zip(answers) {
        match answer {
            Ok((addrs, ttl)) => {
                log::info!(target: "rocket_allow", "{key}: `{name}` resolved to {addrs:?}; next lookup in {ttl:?}");
                state.addrs.insert(name.clone(), addrs);
                state.due.insert(name.clone(), due_after(now, ttl));
            }
            Err(message) if on_unresolved == OnUnresolved::Fail => {
                return Err(Error::Unresolved {
                    key: key.clone(),
                    name: name.clone(),
                    message,
                });
            }
            Err(message) => {
                log::warn!(
                    target: "rocket_allow",
                    "{key}: host name `{name}` did not resolve ({message}); it matches nothing until it does"
                );
                state.addrs.insert(name.clone(), Vec::new());
                state.due.insert(name.clone(), due_after(now, dns.min_ttl));
            }
        }
    }
    Ok(state)
}

/// Refreshes names as they fall due. After every round `after` is told the addresses,
/// whether they changed and how many lookups failed; it returns `false` to stop (the app is gone). Rocket's shutdown
/// ends it by dropping the future.
pub(crate) async fn refresh_forever(
    dns: Dns,
    mut names: Names,
    after: impl Fn(&Addresses, bool, u64) -> bool,
) {
    while let Some(due) = names.next_due() {
        sleep_until(due).await;
        let now = Instant::now();
        let ready: Vec<String> = names
            .due
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        let answers = join_all(ready.iter().map(|name| dns.lookup(name))).await;
        let mut changed = false;
        let mut failed = 0;
        for (name, answer) in ready.into_iter().zip(answers) {
            let next = match answer {
                Ok((addrs, ttl)) => {
                    if names.addrs.get(&name) != Some(&addrs) {
                        log::info!(target: "rocket_allow", "host name `{name}` now resolves to {addrs:?}");
                        names.addrs.insert(name.clone(), addrs);
                        changed = true;
                    }
                    ttl
                }
                Err(message) => {
                    let kept = names.addrs.get(&name).map_or(0, Vec::len);
                    log::warn!(
                        target: "rocket_allow",
                        "refreshing host name `{name}` failed ({message}); keeping its {kept} last known address(es)"
                    );
                    tracing::warn!(target: "rocket_allow", name = %name, error = %message, "host name refresh failed");
                    failed += 1;
                    dns.min_ttl
                }
            };
            names.due.insert(name, due_after(Instant::now(), next));
        }
        if !after(&names.addrs, changed, failed) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration that validation would refuse.
    fn unvalidated(nameservers: &[&str], min_ttl_secs: u64, max_ttl_secs: u64) -> DnsConfig {
        DnsConfig {
            nameservers: nameservers.iter().map(|s| s.parse().unwrap()).collect(),
            timeout_secs: 1,
            min_ttl_secs,
            max_ttl_secs,
            on_unresolved: OnUnresolved::Warn,
        }
    }

    #[test]
    fn due_times_never_overflow() {
        let now = Instant::now();
        assert_eq!(due_after(now, Duration::MAX), now + LONGEST_WAIT);
        assert_eq!(
            due_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(wait_secs(u64::MAX), LONGEST_WAIT);
    }

    #[test]
    fn refresh_bounds_are_ordered_and_finite_whatever_the_config() {
        for (min, max) in [(u64::MAX, u64::MAX), (100, 5), (u64::MAX, 0), (0, u64::MAX)] {
            let dns = Dns::new(&unvalidated(&["127.0.0.1:1"], min, max)).unwrap();
            assert!(dns.min_ttl <= dns.max_ttl, "{min} {max}");
            assert!(dns.max_ttl <= LONGEST_WAIT, "{min} {max}");
        }
    }

    /// The TTLs on the failure path: the retry is scheduled, not a panic.
    #[rocket::async_test]
    async fn huge_min_ttl_after_a_failed_lookup() {
        // Nothing listens on port 1: the lookup fails at once or after the 1 s timeout.
        let dns = Dns::new(&unvalidated(
            &["127.0.0.1:1"],
            i64::MAX as u64,
            i64::MAX as u64,
        ))
        .unwrap();
        let names = [("a.test".to_string(), "allow.rules[0]".to_string())];
        let state = resolve_at_ignite(&dns, &names, OnUnresolved::Warn)
            .await
            .unwrap();
        assert!(state.next_due().unwrap() > Instant::now());
    }

    /// The TTLs, and min > max, on the success path (`localhost` is answered locally).
    #[rocket::async_test]
    async fn huge_or_inverted_ttls_after_a_lookup() {
        for (min, max) in [(i64::MAX as u64, i64::MAX as u64), (100, 5)] {
            let dns = Dns::new(&unvalidated(&[], min, max)).unwrap();
            let names = [("localhost".to_string(), "allow.rules[0]".to_string())];
            let state = resolve_at_ignite(&dns, &names, OnUnresolved::Fail)
                .await
                .unwrap();
            assert!(!state.addresses().get("localhost").unwrap().is_empty());
            assert!(state.next_due().unwrap() <= Instant::now() + LONGEST_WAIT);
        }
    }
}
