//! [`AllowHandle`]: change rules while the app runs (bans, inline sets) and ask what would
//! be decided, from a handler (`&State<AllowHandle>`) or from anywhere that has the Rocket
//! instance (`rocket.state::<AllowHandle>()`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rocket::http::uri::Origin;

use crate::config::SetConfig;
use crate::decide::bans::{parse_target, Ban};
use crate::decide::{judge, Judged, Shared};
use crate::error::Error;
use crate::rules::{Target, Verdict};

/// The runtime API, managed as Rocket state once `AllowFairing` has ignited. Cheap to
/// clone. Changes apply from the next request, atomically.
///
/// ```
/// use std::time::Duration;
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowFairing, AllowHandle, Verdict};
///
/// let figment = Figment::from(rocket::Config::default()).merge(Toml::string(r#"
///     [default.allow]
///     rules = []
/// "#).nested());
/// let client = rocket::local::blocking::Client::tracked(
///     rocket::custom(figment).attach(AllowFairing::fairing()),
/// ).unwrap();
/// let handle = client.rocket().state::<AllowHandle>().unwrap();
/// let ip = "192.0.2.7".parse().unwrap();
/// assert_eq!(handle.explain(ip, "/").verdict, Verdict::Allow);
/// handle.ban("192.0.2.0/24", Some(Duration::from_secs(600))).unwrap();
/// assert_eq!(handle.explain(ip, "/").by, "ban");
/// assert!(handle.unban("192.0.2.0/24").unwrap());
/// ```
#[derive(Clone)]
pub struct AllowHandle(Arc<Shared>);

/// Hits of one policy's rules, from [`AllowHandle::rule_hits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyHits {
    /// The policy; `None` for the app-wide rules.
    pub policy: Option<String>,
    /// Every rule of the policy, in order, hit or not.
    pub rules: Vec<RuleHit>,
}

/// Hits of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHit {
    /// The rule's index in its policy (as in log lines: `rule #2`).
    pub index: usize,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its value as written (`10.0.0.0/8`, `@office`, `all`).
    pub written: String,
    /// Requests it decided since the app started (guards' decisions included).
    pub count: u64,
    /// When it last decided one; `None` if never.
    pub last_hit: Option<std::time::SystemTime>,
}

/// What [`AllowHandle::explain`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The policy the path falls under; `None` for the app-wide rules.
    pub policy: Option<String>,
    /// Admitted or refused.
    pub verdict: Verdict,
    /// What decided: `"rule"`, `"default"`, `"ban"`, or `"path"` (a `.` or `..` segment
    /// under path-scoped policies, or a path that is not a valid URI path, which Rocket
    /// itself refuses).
    pub by: &'static str,
    /// The rule's index and value as written, when a rule decided.
    pub rule: Option<(usize, String)>,
    /// The ban, when a ban decided.
    pub ban: Option<Ban>,
    /// `false` when the policy is in report mode and a rule or the default decided: a
    /// `Deny` would only be recorded, and the request admitted. Bans are always enforced.
    pub enforced: bool,
}

impl AllowHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> AllowHandle {
        AllowHandle(shared)
    }

    /// Refuses `target` (an address or a network) in every policy, before any rule, for
    /// `ttl` (or until [`unban`](Self::unban)). Banning again renews the ban. Logged with
    /// rule `ban` and its expiry. Does not recompile the rules.
    pub fn ban(&self, target: &str, ttl: Option<Duration>) -> Result<(), Error> {
        self.ban_with_reason(target, ttl, None)
    }

    /// [`ban`](Self::ban) with a reason, shown by [`bans`](Self::bans) and in log lines.
    pub fn ban_with_reason(
        &self,
        target: &str,
        ttl: Option<Duration>,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        let net = parse_target(target).map_err(|message| invalid("ban", message))?;
        self.0.bans.ban(net, ttl, reason);
        Ok(())
    }

    /// Lifts the ban on exactly `target`; whether there was one.
    pub fn unban(&self, target: &str) -> Result<bool, Error> {
        let net = parse_target(target).map_err(|message| invalid("unban", message))?;
        Ok(self.0.bans.unban(net))
    }

    /// The bans in force: target, expiry, reason, ordered by target.
    pub fn bans(&self) -> Vec<Ban> {
        self.0.bans.list()
    }

    /// Waits until every ban change made before the call is in the bans file
    /// (`[allow.bans] file`): a ban that was flushed survives `kill -9`. Changes are saved
    /// by a thread of their own within a fraction of a second anyway; this says when.
    /// Returns at once without a bans file; an error says why the last save failed (the
    /// bans stay in force either way). Blocks: from an async handler, call it through
    /// `rocket::tokio::task::spawn_blocking`.
    ///
    /// ```
    /// use rocket::figment::{Figment, providers::{Format, Toml}};
    /// use rocket_allow::{AllowFairing, AllowHandle};
    ///
    /// let dir = std::env::temp_dir().join(format!("rocket-allow-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let file = dir.join("bans.txt");
    /// let figment = Figment::from(rocket::Config::default()).merge(Toml::string(&format!(r#"
    ///     [default.allow]
    ///     rules = []
    ///     bans.file = "{}"
    /// "#, file.display())).nested());
    /// let client = rocket::local::blocking::Client::tracked(
    ///     rocket::custom(figment).attach(AllowFairing::fairing()),
    /// ).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// handle.ban_with_reason("192.0.2.7", None, Some("by hand")).unwrap();
    /// handle.flush_bans().unwrap();
    /// assert_eq!(std::fs::read_to_string(&file).unwrap(), "192.0.2.7/32 - by hand\n");
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn flush_bans(&self) -> Result<(), Error> {
        self.0
            .bans
            .flush()
            .map_err(|message| invalid("allow.bans.file", message))
    }

    /// Replaces the entries of an inline set (`[allow.sets] name = [...]`). The entries
    /// are checked first (values, `@set` references, cycles): an invalid list changes
    /// nothing and returns the error. Recompiles the policies on the calling thread before
    /// returning (so the next request sees the change): with big sets, call it from
    /// `rocket::tokio::task::spawn_blocking` in an async handler. Host names given here are
    /// not resolved (they match nothing) unless they were already in the configuration.
    pub fn replace_set<S: AsRef<str>>(&self, name: &str, entries: &[S]) -> Result<(), Error> {
        let key = format!("allow.sets.{name}");
        match self.0.spec.set_kinds.get(name) {
            Some(SetConfig::Inline(_)) => {}
            Some(SetConfig::File { file }) => {
                return Err(invalid(
                    &key,
                    format!("is read from `{}`; change the file instead", file.display()),
                ))
            }
            Some(SetConfig::Url { url, .. }) => {
                return Err(invalid(&key, format!("is fetched from `{url}`")))
            }
            None => {
                return Err(invalid(
                    &key,
                    "no such set in [allow.sets] (built-in sets cannot be replaced)".into(),
                ))
            }
        }
        let targets = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Target::parse(e.as_ref())
                    .map_err(|m| invalid(&format!("{key}[{i}]"), m.to_string()))
            })
            .collect::<Result<Vec<Target>, Error>>()?;
        self.0
            .update(|c| c.with_set(name, targets))
            .map_err(|message| invalid(&key, message))
    }

    /// Hits per rule of every policy (the app-wide rules first, then the policies by
    /// name), counted since the app started: find the rules that never match. Empty when
    /// `rule_hits = false`. Counts are exact once the requests counted have finished.
    ///
    /// ```
    /// use rocket::figment::{Figment, providers::{Format, Toml}};
    /// use rocket_allow::{AllowFairing, AllowHandle};
    ///
    /// let figment = Figment::from(rocket::Config::default()).merge(Toml::string(r#"
    ///     [default.allow]
    ///     rules = [{ deny = "10.0.0.0/8" }, { allow = "all" }]
    /// "#).nested());
    /// let client = rocket::local::blocking::Client::tracked(
    ///     rocket::custom(figment).attach(AllowFairing::fairing()),
    /// ).unwrap();
    /// client.get("/").remote("192.0.2.1:5000".parse().unwrap()).dispatch();
    /// let hits = client.rocket().state::<AllowHandle>().unwrap().rule_hits();
    /// assert_eq!(hits[0].policy, None);
    /// assert_eq!((hits[0].rules[0].written.as_str(), hits[0].rules[0].count), ("10.0.0.0/8", 0));
    /// assert_eq!((hits[0].rules[1].written.as_str(), hits[0].rules[1].count), ("all", 1));
    /// assert!(hits[0].rules[1].last_hit.is_some());
    /// ```
    pub fn rule_hits(&self) -> Vec<PolicyHits> {
        let shared = &self.0;
        let Some(hits) = &shared.hits else {
            return Vec::new();
        };
        shared
            .spec
            .policies
            .iter()
            .enumerate()
            .map(|(p, spec)| PolicyHits {
                policy: spec.name.clone(),
                rules: spec
                    .rules
                    .iter()
                    .zip(hits.read(p))
                    .enumerate()
                    .map(|(index, (rule, (count, last_hit)))| RuleHit {
                        index,
                        verdict: rule.verdict,
                        written: rule.written().to_string(),
                        count,
                        last_hit,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Which policy, ban or rule decides a request from `ip` for `path`, and the verdict,
    /// without a request (and without a log line).
    pub fn explain(&self, ip: IpAddr, path: &str) -> Explanation {
        let shared = &self.0;
        let origin = Origin::parse(path).ok();
        let policy = match &origin {
            Some(o) => shared.spec.policy_for(|| o.path().segments()),
            None => None,
        };
        let Some(policy) = policy else {
            return Explanation {
                policy: None,
                verdict: Verdict::Deny,
                by: "path",
                rule: None,
                ban: None,
                enforced: true,
            };
        };
        let spec = &shared.spec.policies[policy];
        let generation = shared.generation.load();
        let ip = ip.to_canonical();
        let name = spec.name.clone();
        match judge(shared, &generation, policy, ip, None) {
            Judged::Ban(ban) => Explanation {
                policy: name,
                verdict: Verdict::Deny,
                by: "ban",
                rule: None,
                ban: Some(ban),
                enforced: true,
            },
            Judged::Rule(d) => Explanation {
                policy: name,
                verdict: d.verdict,
                by: if d.rule.is_some() { "rule" } else { "default" },
                rule: d.rule.map(|i| (i, spec.rules[i].written().to_string())),
                ban: None,
                enforced: spec.enforced(),
            },
        }
    }
}

fn invalid(key: &str, message: String) -> Error {
    Error::Invalid {
        key: key.to_string(),
        message,
    }
}
