//! What the pages and the JSON show, built once from the runtime API: the HTML and the JSON
//! of a view are the same data.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::Serialize;

use crate::decide::bans::Ban;
use crate::observe::recent::Kept;
use crate::rules::Verdict;
use crate::runtime::handle::AllowHandle;
use crate::timestamp::Timestamp;

/// How many top clients and networks are shown.
const TOP: usize = 10;

/// The name of the app-wide rules, where a policy name is shown.
const APP_WIDE: &str = "(app-wide)";

fn time(t: SystemTime) -> String {
    Timestamp(t).to_string()
}

/// Where a ban came from: `manual` (this app's own calls, the admin page, the bans file) or
/// the automatic rule that made it (`auto_ban <name>`, also when another instance of the
/// fleet made it). The one place that says it.
/// The origin shown for a ban made through `AllowHandle` (or read without one).
const MANUAL: &str = "manual";

pub(crate) fn ban_origin(ban: &Ban) -> String {
    ban.origin.clone().unwrap_or_else(|| MANUAL.to_string())
}

#[derive(Serialize)]
pub(crate) struct Minute {
    /// The minute's start, RFC 3339.
    pub minute: String,
    pub allowed: u64,
    pub refused: u64,
    pub would_refuse: u64,
}

#[derive(Serialize)]
pub(crate) struct Store {
    pub connected: bool,
    pub last_sync_age_secs: Option<f64>,
    pub pending: usize,
    pub instance: String,
}

#[derive(Serialize)]
pub(crate) struct Source {
    pub kind: &'static str,
    pub name: String,
    pub location: String,
    pub last_ok: Option<String>,
    pub last_error_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Overview {
    /// The last hour, oldest first.
    pub minutes: Vec<Minute>,
    pub access_log: bool,
    pub log_lines_lost: u64,
    pub bans: usize,
    pub store: Option<Store>,
    pub sources: Vec<Source>,
    pub read_only: bool,
}

pub(crate) fn overview(handle: &AllowHandle, read_only: bool) -> Overview {
    let shared = &handle.shared;
    let minutes = shared
        .recent
        .per_minute()
        .into_iter()
        .map(|m| Minute {
            minute: time(UNIX_EPOCH + Duration::from_secs(m.minute * 60)),
            allowed: m.allowed,
            refused: m.refused,
            would_refuse: m.would_refuse,
        })
        .collect();
    Overview {
        minutes,
        access_log: shared.log.is_some(),
        log_lines_lost: handle.log_lines_lost(),
        bans: handle.ban_count(),
        store: handle.store_status().map(|s| Store {
            connected: s.connected,
            last_sync_age_secs: s.last_sync_age.map(|d| d.as_secs_f64()),
            pending: s.pending,
            instance: s.instance,
        }),
        sources: handle
            .source_status()
            .into_iter()
            .map(|s| Source {
                kind: s.kind,
                name: s.name,
                location: s.location,
                last_ok: s.last_ok.map(time),
                last_error_at: s.last_error_at.map(time),
                last_error: s.last_error,
            })
            .collect(),
        read_only,
    }
}

/// One recent refusal or would-be refusal.
#[derive(Serialize)]
pub(crate) struct Refusal {
    /// The order it came in since the app started; `after=` this lists the older ones.
    pub seq: usize,
    pub at: String,
    pub client: Option<String>,
    /// The TCP peer, when a trusted proxy forwarded the request.
    pub via: Option<String>,
    pub policy: String,
    /// `"#1 deny 10.0.0.0/8"`, as written, when a rule decided.
    pub rule: Option<String>,
    /// What decided: `rule`, `default`, `ban`, `header`, `path`, `store`.
    pub by: &'static str,
    /// `false`: a would-be refusal of report mode (the request was admitted).
    pub enforced: bool,
    pub status: u16,
    pub ban: Option<String>,
    pub method: &'static str,
    pub path: String,
    pub user_agent: String,
    /// The ban in force on this client now, if any (what "allow" lifts).
    pub banned_by: Option<String>,
}

/// A client or network among the most refused.
#[derive(Serialize)]
pub(crate) struct Top {
    pub target: String,
    /// An address in it, for `explain`.
    pub example: String,
    pub count: u64,
    /// The ban in force on it now, if any (what "allow" lifts).
    pub banned_by: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Refused {
    /// How many refusals and would-be refusals are kept in all (`recent` at most).
    pub total: usize,
    /// The newest [`REFUSALS_SHOWN`] of them (after `after`, if given), newest first.
    pub recent: Vec<Refusal>,
    /// Whether older ones follow the last of `recent` (`after=` its `seq` lists them).
    pub more: bool,
    /// Over every kept refusal, not only those listed.
    pub top_clients: Vec<Top>,
    pub top_networks: Vec<Top>,
}

/// The most recent refusals a page or JSON answer lists, as for bans ([`BANS_SHOWN`]): the
/// ring keeps up to 100,000, which listed whole is 165 MB of HTML for one view.
pub(crate) const REFUSALS_SHOWN: usize = 1000;

/// Where a page of refusals starts: after this `seq` (the last row of the page before).
pub(crate) fn refusals_start(after: &str) -> Result<usize, String> {
    after.trim().parse().map_err(|_| {
        format!(
            "after: `{}` is not a refusal's seq (a number)",
            after.trim()
        )
    })
}

/// The network a client is counted in among the top networks: its /24 or /64.
fn network_of(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, prefix).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
}

fn top(handle: &AllowHandle, counts: HashMap<IpNet, (u64, IpAddr)>) -> Vec<Top> {
    let mut all: Vec<(IpNet, (u64, IpAddr))> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    all.into_iter()
        .take(TOP)
        .map(|(net, (count, example))| Top {
            target: if net.prefix_len() == net.max_prefix_len() {
                net.addr().to_string()
            } else {
                net.to_string()
            },
            example: example.to_string(),
            count,
            // One lookup, not a scan of every ban (there may be a million): the ban that
            // refuses the example client, if it holds the whole row.
            banned_by: handle
                .is_banned(example)
                .filter(|b| b.target.contains(&net))
                .map(|b| b.target.to_string()),
        })
        .collect()
}

/// The newest [`REFUSALS_SHOWN`] kept refusals older than `after` (from the newest
/// without), and the most refused clients and networks of all that are kept.
pub(crate) fn refused(handle: &AllowHandle, after: Option<usize>) -> Refused {
    let shared = &handle.shared;
    let mut clients: HashMap<IpNet, (u64, IpAddr)> = HashMap::new();
    let mut networks: HashMap<IpNet, (u64, IpAddr)> = HashMap::new();
    let page = shared.recent.page(after, REFUSALS_SHOWN, |client| {
        if let Some(ip) = client {
            clients.entry(IpNet::from(ip)).or_insert((0, ip)).0 += 1;
            networks.entry(network_of(ip)).or_insert((0, ip)).0 += 1;
        }
    });
    Refused {
        total: page.total,
        recent: page.rows.iter().map(|k| refusal(handle, k)).collect(),
        more: page.more,
        top_clients: top(handle, clients),
        top_networks: top(handle, networks),
    }
}

fn refusal(handle: &AllowHandle, k: &Kept) -> Refusal {
    let spec = &handle.shared.spec.policies[k.policy];
    let rule = k.rule.and_then(|i| {
        let r = spec.rules.get(i)?;
        Some(format!("#{i} {} {}", r.verdict, r.written()))
    });
    Refusal {
        seq: k.seq,
        at: time(UNIX_EPOCH + Duration::from_millis(k.at_ms)),
        client: k.client.map(|c| c.to_string()),
        via: k
            .peer
            .filter(|p| Some(*p) != k.client)
            .map(|p| p.to_string()),
        policy: spec.name.clone().unwrap_or_else(|| APP_WIDE.into()),
        rule,
        by: k.by.as_str(),
        enforced: k.enforced,
        status: k.status,
        ban: k.ban.map(|b| b.to_string()),
        method: k.method,
        path: k.path.clone(),
        user_agent: k.user_agent.clone(),
        banned_by: k
            .client
            .and_then(|c| handle.is_banned(c))
            .map(|b| b.target.to_string()),
    }
}

#[derive(Serialize)]
pub(crate) struct BanRow {
    pub target: String,
    pub origin: String,
    pub reason: Option<String>,
    /// RFC 3339, or `None` until lifted.
    pub expires: Option<String>,
}

/// The most bans a page or JSON answer lists (the first by target): with a million bans
/// (an automatic ban rule under a scan) a full list would be hundreds of megabytes of HTML
/// for one view. Search reaches every ban.
pub(crate) const BANS_SHOWN: usize = 1000;

/// The bans a view lists, and how many matched in all.
pub(crate) struct BanRows {
    pub total: usize,
    pub rows: Vec<BanRow>,
    /// Whether more bans match after the last row (the next page's start).
    pub more: bool,
}

/// Where a page of bans starts: after this target (an address or network, as a ban's).
pub(crate) fn page_start(after: &str) -> Result<IpNet, String> {
    crate::decide::bans::parse_target(after.trim()).map_err(|e| format!("after: {e}"))
}

/// A request the JSON cannot answer, and why.
#[derive(Serialize)]
pub(crate) struct Failed {
    pub error: bool,
    pub message: String,
}

impl Failed {
    pub fn new(message: String) -> Failed {
        Failed {
            error: true,
            message,
        }
    }
}

/// The first [`BANS_SHOWN`] bans by target after `after` (from the first without), those
/// whose target, reason or origin contain `query` (any case) if given. One pass over the
/// ban table that keeps the page only (a scan can make a million bans).
pub(crate) fn bans(handle: &AllowHandle, query: Option<&str>, after: Option<IpNet>) -> BanRows {
    let query = query
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    // Whether a label's origin or reason matches, decided once per label; a target is
    // written into one buffer (addresses are written in lower case).
    let mut labels: HashMap<u32, bool> = HashMap::new();
    let mut target_text = String::new();
    let page = handle
        .shared
        .bans
        .page(after, BANS_SHOWN, |target, label, origin, reason| {
            let Some(q) = &query else {
                return true;
            };
            let by_label = *labels.entry(label).or_insert_with(|| {
                [reason, Some(origin.unwrap_or(MANUAL))]
                    .into_iter()
                    .flatten()
                    .any(|text| text.to_lowercase().contains(q.as_str()))
            });
            by_label || {
                use std::fmt::Write;
                target_text.clear();
                let _ = write!(target_text, "{target}");
                target_text.contains(q.as_str())
            }
        });
    BanRows {
        total: page.total,
        more: page.following > page.bans.len(),
        rows: page
            .bans
            .iter()
            .map(|b| BanRow {
                target: b.target.to_string(),
                origin: ban_origin(b),
                reason: b.reason.clone(),
                expires: b.expires.map(time),
            })
            .collect(),
    }
}

#[derive(Serialize)]
pub(crate) struct RuleRow {
    pub index: usize,
    pub verdict: Verdict,
    pub written: String,
    pub count: u64,
    pub last_hit: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct PolicyRules {
    pub policy: String,
    /// `enforce` or `report`.
    pub mode: &'static str,
    /// What decides when no rule matches.
    pub default: Verdict,
    pub rules: Vec<RuleRow>,
}

pub(crate) fn rules(handle: &AllowHandle) -> Vec<PolicyRules> {
    let spec = &handle.shared.spec;
    let hits = handle.rule_hits();
    spec.policies
        .iter()
        .enumerate()
        .map(|(p, policy)| {
            let counted = hits.get(p).map(|h| &h.rules[..]).unwrap_or_default();
            PolicyRules {
                policy: policy.name.clone().unwrap_or_else(|| APP_WIDE.into()),
                mode: if policy.enforced() {
                    "enforce"
                } else {
                    "report"
                },
                default: policy.default,
                rules: policy
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| {
                        let hit = counted.get(index);
                        RuleRow {
                            index,
                            verdict: rule.verdict,
                            written: rule.written().to_string(),
                            count: hit.map_or(0, |h| h.count),
                            last_hit: hit.and_then(|h| h.last_hit).map(time),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// What `explain` answered, or why it could not.
#[derive(Serialize)]
pub(crate) struct Explained {
    pub ip: String,
    pub path: String,
    /// The policy of a route's guard asked about, if any.
    pub guard: Option<String>,
    /// The answer as a sentence, or the error.
    pub text: String,
    pub admitted: Option<bool>,
    pub verdict: Option<Verdict>,
    pub by: Option<&'static str>,
    pub policy: Option<String>,
    pub rule: Option<String>,
    pub ban: Option<String>,
    pub enforced: Option<bool>,
    pub status: Option<u16>,
    pub error: bool,
}

/// [`AllowHandle::explain_for`], the same answer the runtime API gives.
pub(crate) fn explain(
    handle: &AllowHandle,
    ip: &str,
    path: &str,
    guard: Option<&str>,
) -> Explained {
    let guard = guard.map(str::trim).filter(|g| !g.is_empty());
    let path = if path.trim().is_empty() {
        "/"
    } else {
        path.trim()
    };
    let mut out = Explained {
        ip: ip.trim().to_string(),
        path: path.to_string(),
        guard: guard.map(str::to_string),
        text: String::new(),
        admitted: None,
        verdict: None,
        by: None,
        policy: None,
        rule: None,
        ban: None,
        enforced: None,
        status: None,
        error: true,
    };
    let Ok(addr) = ip.trim().parse::<IpAddr>() else {
        out.text = format!("`{}` is not an IP address", ip.trim());
        return out;
    };
    match handle.explain_for(addr, path, guard) {
        Ok(e) => {
            out.text = e.to_string();
            out.admitted = Some(e.admitted());
            out.verdict = Some(e.verdict);
            out.by = Some(e.by);
            out.policy = Some(e.policy.clone().unwrap_or_else(|| APP_WIDE.into()));
            out.rule = e
                .rule
                .as_ref()
                .map(|(i, w)| format!("#{i} {} {w}", e.verdict));
            out.ban = e.ban.as_ref().map(|b| b.target.to_string());
            out.enforced = Some(e.enforced);
            out.status = e.status;
            out.error = false;
        }
        Err(e) => out.text = e.to_string(),
    }
    out
}
