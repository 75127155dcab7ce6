//! [`AllowHandle::rule_hits`]: hits per rule of every policy, to find the rules that never
//! match.

use super::handle::AllowHandle;
use crate::rules::Verdict;

/// Hits of one policy's rules, from [`AllowHandle::rule_hits`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PolicyHits {
    /// The policy; `None` for the app-wide rules.
    pub policy: Option<String>,
    /// Every rule of the policy, in order, hit or not.
    pub rules: Vec<RuleHit>,
}

/// Hits of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RuleHit {
    /// The rule's index in its policy (as in log lines: `rule #2`).
    pub index: usize,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its value as written (`10.0.0.0/8`, `@office`, `all`).
    pub written: String,
    /// Requests it decided since the app started (guards' decisions included).
    pub count: u64,
    /// When it last decided one; `None` if never. Serialized as RFC 3339.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::timestamp::serialize_opt")
    )]
    pub last_hit: Option<std::time::SystemTime>,
}

impl AllowHandle {
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
        let shared = &self.shared;
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
}
