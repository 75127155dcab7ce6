//! [`AllowHandle::explain`]: which policy, ban or rule decides a request, without one.

use std::fmt;
use std::net::IpAddr;

use rocket::http::uri::Origin;

use super::error::RuntimeError;
use super::handle::AllowHandle;
use crate::decide::bans::Ban;
use crate::decide::{describe_ban, judge, Judged};
use crate::rules::Verdict;

/// What [`AllowHandle::explain`] found. `Display` reads like the decision's log line:
/// `denied (403) by rule #1 deny all (0.0.0.0/0), policy admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Explanation {
    /// The policy that decided: the one the path falls under, or the guard's; `None` for
    /// the app-wide rules.
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
    /// What the rule matched: the set's network for an `@set` rule, the rule's own
    /// networks otherwise (as in log lines).
    pub network: Option<String>,
    /// The status a refusal is answered with (or, in report mode, would be); `None` when
    /// admitted.
    pub status: Option<u16>,
}

impl Explanation {
    /// Whether a request gets through: allowed, or refused only in report mode.
    pub fn admitted(&self) -> bool {
        self.verdict == Verdict::Allow || !self.enforced
    }

    fn path(status: u16) -> Explanation {
        Explanation {
            policy: None,
            verdict: Verdict::Deny,
            by: "path",
            rule: None,
            ban: None,
            enforced: true,
            network: None,
            status: Some(status),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.verdict, self.enforced, self.status) {
            (Verdict::Allow, _, _) => f.write_str("allowed")?,
            (Verdict::Deny, true, Some(s)) => write!(f, "denied ({s})")?,
            (Verdict::Deny, false, Some(s)) => write!(f, "would be denied ({s})")?,
            (Verdict::Deny, _, None) => f.write_str("denied")?,
        }
        match (&self.rule, &self.ban) {
            (Some((index, written)), _) => {
                write!(f, " by rule #{index} {} {written}", self.verdict)?;
                if let Some(network) = &self.network {
                    write!(f, " ({network})")?;
                }
            }
            (None, Some(ban)) => write!(f, " by ban [{}]", describe_ban(ban))?,
            (None, None) if self.by == "default" => f.write_str(" by default (no rule matched)")?,
            (None, None) => write!(f, " by {}", self.by)?,
        }
        if let Some(policy) = &self.policy {
            write!(f, ", policy {policy}")?;
        }
        Ok(())
    }
}

impl AllowHandle {
    /// Which policy, ban or rule decides a request from `ip` for `path` (under the policy
    /// the path falls under), and the verdict, without a request and without a log line.
    /// A path that is not an absolute URI path reads as refused `by "path"`;
    /// [`explain_for`](Self::explain_for) says so as an error instead, and also answers for
    /// routes behind an `Allowed<P>` guard.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// # let figment = Figment::from(rocket::Config::default()).merge(Toml::string(
    /// #     "[default.allow]\nrules = [{ allow = \"10.0.0.0/8\" }, { deny = \"all\" }]").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// let e = handle.explain("192.0.2.1".parse().unwrap(), "/");
    /// assert_eq!(e.to_string(), "denied (403) by rule #1 deny all (0.0.0.0/0, ::/0)");
    /// ```
    pub fn explain(&self, ip: IpAddr, path: &str) -> Explanation {
        self.explain_for(ip, path, None)
            .unwrap_or_else(|_| Explanation::path(400))
    }

    /// What a request from `ip` for `path` meets, in the order a request meets it: the
    /// policy the path falls under (the fairing), then, if that admits it, the policy of
    /// the route's `Allowed<P>` guard (`guard`: the policy's name). Errors for a path that
    /// is not an absolute URI path and for an unknown policy name.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle, RuntimeError, Verdict};
    /// # let figment = Figment::from(rocket::Config::default()).merge(Toml::string(r#"
    /// #     [default.allow]
    /// #     rules = []
    /// #     [default.allow.policies.scrapers]
    /// #     rules = [{ allow = "@loopback" }, { deny = "all" }]
    /// # "#).nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// let ip = "192.0.2.1".parse().unwrap();
    /// // `/metrics` is open to all by path, but its route requires Allowed<Scrapers>.
    /// assert_eq!(handle.explain_for(ip, "/metrics", None).unwrap().verdict, Verdict::Allow);
    /// let e = handle.explain_for(ip, "/metrics", Some("scrapers")).unwrap();
    /// assert_eq!((e.verdict, e.policy.as_deref(), e.status), (Verdict::Deny, Some("scrapers"), Some(403)));
    /// assert!(matches!(handle.explain_for(ip, "metrics", None), Err(RuntimeError::BadPath { .. })));
    /// ```
    pub fn explain_for(
        &self,
        ip: IpAddr,
        path: &str,
        guard: Option<&str>,
    ) -> Result<Explanation, RuntimeError> {
        let shared = &self.shared;
        let bad = |message: String| RuntimeError::BadPath {
            path: path.to_string(),
            message,
        };
        if !path.starts_with('/') {
            return Err(bad("it must start with `/`".into()));
        }
        let origin = Origin::parse(path).map_err(|e| bad(e.to_string()))?;
        let guard = guard
            .map(|name| {
                shared
                    .spec
                    .policy_named(name)
                    .ok_or_else(|| RuntimeError::UnknownPolicy(name.to_string()))
            })
            .transpose()?;
        let Some(policy) = shared.spec.policy_for(|| origin.path().segments()) else {
            return Ok(Explanation::path(400));
        };
        let first = self.explain_policy(ip, policy);
        Ok(match guard {
            // A guard of the policy the fairing decided with does not decide again.
            Some(g) if g != policy && first.admitted() => self.explain_policy(ip, g),
            _ => first,
        })
    }

    /// The decision of one policy for `ip`: a ban, else its rules.
    fn explain_policy(&self, ip: IpAddr, policy: usize) -> Explanation {
        let shared = &self.shared;
        let spec = &shared.spec.policies[policy];
        let generation = shared.generation.load();
        let ip = ip.to_canonical();
        let status = Some(spec.reject_status.code);
        match judge(shared, &generation, policy, ip, None) {
            Judged::Ban(ban) => Explanation {
                policy: spec.name.clone(),
                verdict: Verdict::Deny,
                by: "ban",
                rule: None,
                ban: Some(ban),
                enforced: true,
                network: None,
                status,
            },
            Judged::Rule(d) => Explanation {
                policy: spec.name.clone(),
                verdict: d.verdict,
                by: if d.rule.is_some() { "rule" } else { "default" },
                rule: d.rule.map(|i| (i, spec.rules[i].written().to_string())),
                ban: None,
                enforced: spec.enforced(),
                network: d
                    .rule
                    .map(|i| generation.matched(&shared.spec, policy, i, ip).to_string()),
                status: (d.verdict == Verdict::Deny).then_some(status).flatten(),
            },
        }
    }
}
