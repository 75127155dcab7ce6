//! The configured policies as the app runs them ([`Spec`]): fixed at ignite, what every
//! [`Generation`](super::generation::Generation) is compiled from, and how a rule is shown
//! in the log.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;
use rocket::http::Status;

use crate::config::{policy_path_forms, AllowConfig, Mode};
use crate::decide::paths::PathTable;
use crate::ip_text::{IpText, NetText};
use crate::rules::{Rule, Target, Verdict};

/// Index of the app-wide policy in [`Spec::policies`] and [`Generation::matchers`].
pub(crate) const APP_WIDE: usize = 0;

/// One rule as kept while the app runs: what matching and recompiling need, and the text
/// as written only when it differs from what the target prints as (`10.0.0.0/8`,
/// `192.0.2.7`, `all`, `@office` need no copy), since 100,000 rules would otherwise keep
/// 100,000 strings for the log alone.
pub(crate) struct SpecRule {
    pub verdict: Verdict,
    pub target: Target,
    written: Option<Box<str>>,
}

impl SpecRule {
    fn new(rule: &Rule) -> SpecRule {
        let written =
            (canonical(&rule.target) != rule.written).then(|| rule.written.as_str().into());
        SpecRule {
            verdict: rule.verdict,
            target: rule.target.clone(),
            written,
        }
    }

    /// The value as the configuration wrote it, printed without allocating (log lines).
    pub fn written(&self) -> Written<'_> {
        Written(self)
    }

    /// The text as written when it differs from how the target prints, else `None` (a
    /// value with host bits set, `10.1.2.3/8`, always differs).
    pub fn own_text(&self) -> Option<&str> {
        self.written.as_deref()
    }
}

/// [`SpecRule::written`].
pub(crate) struct Written<'a>(&'a SpecRule);

impl fmt::Display for Written<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.written {
            Some(w) => f.write_str(w),
            None => Canonical(&self.0.target).fmt(f),
        }
    }
}

/// How a target is usually written: a network as `address/prefix`, a single address bare.
struct Canonical<'a>(&'a Target);

impl fmt::Display for Canonical<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Target::Net(net) if net.prefix_len() == net.max_prefix_len() => {
                IpText(net.addr()).fmt(f)
            }
            Target::Net(net) => NetText(*net).fmt(f),
            Target::All => f.write_str("all"),
            Target::Host(name) => f.write_str(name),
            Target::Set(name) => write!(f, "@{name}"),
            geo @ (Target::Country(_) | Target::Asn(_)) => geo.fmt(f),
        }
    }
}

fn canonical(target: &Target) -> String {
    Canonical(target).to_string()
}

/// What a rule matched, for the log: [`Generation::matched`].
pub(crate) enum Matched<'a> {
    Text(&'a str),
    Net(IpNet),
    Set(&'a str),
}

impl fmt::Display for Matched<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matched::Text(t) => f.write_str(t),
            Matched::Net(n) => NetText(*n).fmt(f),
            Matched::Set(name) => write!(f, "@{name}"),
        }
    }
}

/// One policy as configured.
pub(crate) struct PolicySpec {
    /// `None` for the app-wide rules.
    pub name: Option<String>,
    pub rules: Vec<SpecRule>,
    pub default: Verdict,
    pub reject_status: Status,
    /// `false` in report mode: refusals are recorded, and the request admitted. Switched
    /// at run time by `AllowHandle::set_mode`, effective from the next request.
    pub enforced: std::sync::atomic::AtomicBool,
    /// What a trusted proxy's request without the client header gets under this policy.
    pub missing_header: crate::config::MissingHeader,
}

impl PolicySpec {
    /// Whether refusals are carried out (enforce mode) rather than only recorded.
    pub fn enforced(&self) -> bool {
        self.enforced.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Everything about the policies that does not change while the app runs.
pub(crate) struct Spec {
    /// The app-wide policy first, then the named ones in name order.
    pub policies: Vec<PolicySpec>,
    pub trusted: Vec<Target>,
    /// Each automatic-ban rule's `exempt` entries and `ipv6_prefix`, in rule-name order.
    pub exempt: Vec<(Vec<Target>, u8)>,
    /// How each user set is defined (inline or from a file), for the runtime API.
    pub set_kinds: BTreeMap<String, crate::config::SetConfig>,
    by_name: HashMap<String, usize>,
    /// `None` when no policy has paths: then the path is never looked at.
    paths: Option<PathTable>,
}

impl Spec {
    /// Builds the spec from a validated configuration (sets resolve, paths parse).
    pub fn new(config: &AllowConfig) -> Spec {
        // Status::new keeps codes Rocket has no name for (420, 499): any 4xx is sent as is.
        let status = Status::new;
        let mut policies = vec![PolicySpec {
            name: None,
            rules: config.rules.iter().map(SpecRule::new).collect(),
            default: config.default,
            reject_status: status(config.reject_status),
            enforced: (config.mode == Mode::Enforce).into(),
            missing_header: config.missing_header,
        }];
        let mut by_name = HashMap::new();
        let mut table = PathTable::default();
        let mut any_paths = false;
        for (name, p) in &config.policies {
            let index = policies.len();
            by_name.insert(name.clone(), index);
            for path in &p.paths {
                // Both the decoded path and the path as written: Rocket matches a route's
                // own segments as written (`%20` stays `%20`) against decoded requests.
                for segments in policy_path_forms(path) {
                    table.insert(&segments, index);
                    any_paths = true;
                }
            }
            policies.push(PolicySpec {
                name: Some(name.clone()),
                rules: p.rules.iter().map(SpecRule::new).collect(),
                default: p.default,
                reject_status: status(p.reject_status.unwrap_or(config.reject_status)),
                enforced: (p.mode.unwrap_or(config.mode) == Mode::Enforce).into(),
                missing_header: p.missing_header.unwrap_or(config.missing_header),
            });
        }
        Spec {
            policies,
            trusted: config.trusted_proxies.clone(),
            exempt: config
                .auto_ban
                .values()
                .map(|r| (r.exempt.clone(), r.ipv6_prefix))
                .collect(),
            set_kinds: config.sets.clone(),
            by_name,
            paths: any_paths.then_some(table),
        }
    }

    /// The policy a request path falls under: the longest configured path at or above it,
    /// else the app-wide rules. `None` when path-scoped policies exist and the path has a
    /// `.` or `..` segment: `PathBuf` routes and file servers climb those, so the policy
    /// the path names is not the one whose files would be served.
    pub fn policy_for<'a, I: Iterator<Item = &'a str> + Clone>(
        &self,
        segments: impl FnOnce() -> I,
    ) -> Option<usize> {
        let Some(table) = &self.paths else {
            return Some(APP_WIDE);
        };
        let segments = segments();
        if segments.clone().any(|s| s == "." || s == "..") {
            return None;
        }
        Some(table.lookup(segments).unwrap_or(APP_WIDE))
    }

    /// The index of the policy named `name`.
    pub fn policy_named(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Every target with the key it was written under, sets' entries included (for DNS and
    /// warnings).
    pub fn targets<'a>(
        &'a self,
        sets: &'a BTreeMap<String, Arc<Vec<Target>>>,
    ) -> Vec<(&'a Target, String)> {
        let mut out = Vec::new();
        for spec in &self.policies {
            let key = match &spec.name {
                None => "allow.rules".to_string(),
                Some(name) => format!("allow.policies.{name}.rules"),
            };
            out.extend(
                spec.rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (&r.target, format!("{key}[{i}]"))),
            );
        }
        out.extend(
            self.trusted
                .iter()
                .enumerate()
                .map(|(i, t)| (t, format!("allow.trusted_proxies[{i}]"))),
        );
        for (r, (list, _)) in self.exempt.iter().enumerate() {
            out.extend(
                list.iter()
                    .enumerate()
                    .map(move |(i, t)| (t, format!("allow.auto_ban[{r}].exempt[{i}]"))),
            );
        }
        for (name, entries) in sets {
            out.extend(
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t, format!("allow.sets.{name}[{i}]"))),
            );
        }
        out
    }
}
