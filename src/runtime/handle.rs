//! [`AllowHandle`]: change rules while the app runs (bans, inline sets) and ask what would
//! be decided, from a handler (`&State<AllowHandle>`) or from anywhere that has the Rocket
//! instance (`rocket.state::<AllowHandle>()`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::error::RuntimeError;
use crate::config::{Mode, SetConfig};
use crate::decide::bans::{parse_target, Ban};
use crate::decide::spec::APP_WIDE;
use crate::decide::{describe_ban, Shared};
use crate::error::Error;
use crate::rules::Target;

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
pub struct AllowHandle {
    pub(crate) shared: Arc<Shared>,
    /// Who the changes made through this handle are recorded as made by.
    who: Option<Arc<str>>,
    /// `[allow.auto_ban]` rules, when there are any.
    pub(crate) auto: Option<Arc<super::auto_ban::AutoBans>>,
}

impl AllowHandle {
    pub(crate) fn new(
        shared: Arc<Shared>,
        auto: Option<Arc<super::auto_ban::AutoBans>>,
    ) -> AllowHandle {
        AllowHandle {
            shared,
            who: None,
            auto,
        }
    }

    /// This handle, with every change made through it recorded as made by `who` (an
    /// operator's name, `"login handler"`): audit lines then end with `(by who)`.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// handle.acting_as("alice").ban_until_lifted("192.0.2.7".parse::<std::net::IpAddr>().unwrap(), "probe");
    /// assert!(handle.is_banned("192.0.2.7".parse().unwrap()).is_some());
    /// ```
    pub fn acting_as(&self, who: &str) -> AllowHandle {
        AllowHandle {
            shared: self.shared.clone(),
            who: Some(who.into()),
            auto: self.auto.clone(),
        }
    }

    fn audit(&self, message: &str) {
        super::audit::record(&self.shared, self.who.as_deref(), message);
    }

    /// Adds or renews a ban, records it, and hands it to the fleet.
    fn put_ban(&self, target: IpNet, ttl: Option<Duration>, reason: Option<&str>) {
        let reason = reason.map(crate::decide::bans::clean_reason);
        let reason = reason.as_deref();
        let expires = crate::decide::bans::expiry(ttl);
        let (ban, version) = self.shared.bans.ban_at(target, expires, reason);
        self.audit(&describe_ban(&ban));
        if let Some(store) = &self.shared.store {
            store.ban(ban.target, expires, reason, version);
        }
    }

    /// How the fleet store is doing (`[allow.store]`): connected, how old the last good
    /// sync is, how many local changes wait to be written. `None` without a store.
    pub fn store_status(&self) -> Option<crate::StoreStatus> {
        self.shared.store.as_ref().map(|s| s.status())
    }

    /// Refuses `target` (an address, `IpAddr`, or a network, `IpNet`) in every policy and
    /// mode, before any rule, for `ttl`; banning again renews it. Recorded (tracing event
    /// and access-log line); does not recompile the rules. A `reason` longer than 1,024
    /// bytes is cut, ending in `…` (the bans file and the fleet store hold the same text).
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// use std::time::Duration;
    /// use rocket_allow::ipnet::IpNet;
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// let net: IpNet = "2001:db8:1::/64".parse().unwrap();
    /// handle.ban_for(net, Duration::from_secs(600), "scanner");
    /// let ban = handle.is_banned("2001:db8:1::7".parse().unwrap()).unwrap();
    /// assert_eq!(ban.reason.as_deref(), Some("scanner"));
    /// assert!(ban.expires.is_some());
    /// ```
    pub fn ban_for(&self, target: impl Into<IpNet>, ttl: Duration, reason: &str) {
        self.put_ban(target.into().trunc(), Some(ttl), non_empty(reason));
    }

    /// Refuses `target` until [`lift`](Self::lift) (or [`unban`](Self::unban)) lifts it:
    /// [`ban_for`](Self::ban_for) without an end.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// let ip: std::net::IpAddr = "192.0.2.9".parse().unwrap();
    /// handle.ban_until_lifted(ip, "");
    /// assert_eq!(handle.is_banned(ip).unwrap().expires, None);
    /// assert!(handle.lift(ip));
    /// assert!(handle.is_banned(ip).is_none());
    /// ```
    pub fn ban_until_lifted(&self, target: impl Into<IpNet>, reason: &str) {
        self.put_ban(target.into().trunc(), None, non_empty(reason));
    }

    /// Lifts the ban on exactly `target` (not a ban on a network around it); whether there
    /// was one in force. Recorded.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// let ip: std::net::IpAddr = "192.0.2.9".parse().unwrap();
    /// assert!(!handle.lift(ip));
    /// ```
    pub fn lift(&self, target: impl Into<IpNet>) -> bool {
        let target = target.into().trunc();
        let (lifted, lift) = self.shared.bans.unban(target);
        // An automatic ban's client starts counting again from zero.
        if let Some(auto) = &self.auto {
            auto.forget(target);
        }
        if lifted {
            self.audit(&format!("unban {target}"));
        }
        // Lifted on the fleet even if it was not in force here (it may be elsewhere).
        if let Some(store) = &self.shared.store {
            store.unban(target, lift);
        }
        lifted
    }

    /// Counts one event for the automatic-ban rule `name` (`[allow.auto_ban.<name>]` with
    /// `on = "strikes"`) against `client`, and bans the client at the event that makes more
    /// than the rule's `max` within its window: `Ok(true)` when the client is banned now
    /// (already, or by this strike). Pass the client rocket-allow decided on (the
    /// [`ClientIp`](crate::ClientIp) guard), never an address from a header. Exempt clients
    /// (loopback, trusted proxies, the rule's `exempt`) are never counted. With
    /// `[allow.store]` the fleet counts the strike, and the ban lands a moment later: this
    /// call then answers `Ok(false)` for the strike that makes it.
    ///
    /// An unknown rule, or one that does not count strikes, is an error.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// # let figment = Figment::from(rocket::Config::default()).merge(Toml::string(r#"
    /// #     [default.allow]
    /// #     rules = []
    /// #     [default.allow.auto_ban.login]
    /// #     on = "strikes"
    /// #     max = 2
    /// #     window_secs = 60
    /// #     ban_secs = 600
    /// # "#).nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// let ip = "192.0.2.7".parse().unwrap();
    /// assert_eq!(handle.strike("login", ip), Ok(false));
    /// assert_eq!(handle.strike("login", ip), Ok(false));
    /// assert_eq!(handle.strike("login", ip), Ok(true)); // the third within 60 s
    /// assert_eq!(handle.is_banned(ip).unwrap().origin.as_deref(), Some("auto_ban login"));
    /// assert!(handle.strike("logn", ip).is_err());
    /// ```
    pub fn strike(&self, name: &str, client: IpAddr) -> Result<bool, RuntimeError> {
        match &self.auto {
            Some(auto) => auto.strike(name, client),
            None => Err(RuntimeError::UnknownAutoBan(name.to_string())),
        }
    }

    /// The ban in force that refuses `ip` (the most specific, if several cover it), as a
    /// request from `ip` would meet it.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// handle.ban("203.0.113.0/24", None).unwrap();
    /// let ban = handle.is_banned("203.0.113.5".parse().unwrap()).unwrap();
    /// assert_eq!(ban.target.to_string(), "203.0.113.0/24");
    /// ```
    pub fn is_banned(&self, ip: IpAddr) -> Option<Ban> {
        self.shared.bans.check(ip)
    }

    /// Switches a policy between enforcing and report-only (`policy`: its name, or `None`
    /// or `Some("")` for the app-wide rules), from the next request. Recorded.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # use rocket_allow::{AllowFairing, AllowHandle};
    /// use rocket_allow::{Mode, RuntimeError};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = [{ deny = \"all\" }]").nested());
    /// # let client = rocket::local::blocking::Client::tracked(
    /// #     rocket::custom(figment).attach(AllowFairing::fairing())).unwrap();
    /// let handle = client.rocket().state::<AllowHandle>().unwrap();
    /// let ip = "192.0.2.1".parse().unwrap();
    /// assert!(handle.explain(ip, "/").enforced);
    /// handle.set_mode(None, Mode::Report).unwrap();
    /// assert!(!handle.explain(ip, "/").enforced);
    /// assert!(matches!(handle.set_mode(Some("nope"), Mode::Report), Err(RuntimeError::UnknownPolicy(_))));
    /// ```
    pub fn set_mode(&self, policy: Option<&str>, mode: Mode) -> Result<(), RuntimeError> {
        let index = match policy.filter(|p| !p.is_empty()) {
            None => APP_WIDE,
            Some(name) => self
                .shared
                .spec
                .policy_named(name)
                .ok_or_else(|| RuntimeError::UnknownPolicy(name.to_string()))?,
        };
        let enforce = mode == Mode::Enforce;
        let spec = &self.shared.spec.policies[index];
        spec.enforced
            .store(enforce, std::sync::atomic::Ordering::Relaxed);
        let name = spec.name.as_deref().unwrap_or("(app-wide)");
        let mode = if enforce { "enforce" } else { "report" };
        self.audit(&format!("mode of policy {name}: {mode}"));
        if let Some(store) = &self.shared.store {
            let policy = spec.name.as_deref().unwrap_or("");
            store.mode(policy, enforce);
        }
        Ok(())
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
        self.put_ban(net, ttl, reason);
        Ok(())
    }

    /// Lifts the ban on exactly `target`; whether there was one.
    pub fn unban(&self, target: &str) -> Result<bool, Error> {
        let net = parse_target(target).map_err(|message| invalid("unban", message))?;
        Ok(self.lift(net))
    }

    /// The bans in force: target, expiry, reason, ordered by target. This copies and
    /// sorts the whole table (a scan can make a million bans): to show or send them, take
    /// them a page at a time with [`AllowHandle::bans_page`], and count them with
    /// [`AllowHandle::ban_count`].
    pub fn bans(&self) -> Vec<Ban> {
        self.shared.bans.list()
    }

    /// How many bans the table holds, without copying any: one atomic load. A ban that
    /// expired within the last quarter second is counted until the thread that removes
    /// expired bans passes (the `rocket_allow_bans` gauge counts the same).
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let rocket = rocket::custom(figment).attach(rocket_allow::AllowFairing::fairing());
    /// # let client = rocket::local::blocking::Client::untracked(rocket).unwrap();
    /// let handle = client.rocket().state::<rocket_allow::AllowHandle>().unwrap();
    /// handle.ban("192.0.2.0/24", None).unwrap();
    /// assert_eq!(handle.ban_count(), 1);
    /// ```
    pub fn ban_count(&self) -> usize {
        self.shared.bans.len()
    }

    /// A page of the bans in force, ordered by target as [`AllowHandle::bans`] lists them:
    /// at most `limit` of those whose target comes after `after` (`None`: from the first).
    /// Pass the last target of a page to get the next; an empty page is the end. One pass
    /// over the table that keeps only the page, where `bans()` copies and sorts it whole.
    ///
    /// ```
    /// # use rocket::figment::{Figment, providers::{Format, Toml}};
    /// # let figment = Figment::from(rocket::Config::default())
    /// #     .merge(Toml::string("[default.allow]\nrules = []").nested());
    /// # let rocket = rocket::custom(figment).attach(rocket_allow::AllowFairing::fairing());
    /// # let client = rocket::local::blocking::Client::untracked(rocket).unwrap();
    /// let handle = client.rocket().state::<rocket_allow::AllowHandle>().unwrap();
    /// for ip in ["192.0.2.3", "192.0.2.1", "192.0.2.2"] {
    ///     handle.ban(ip, None).unwrap();
    /// }
    /// let first = handle.bans_page(None, 2);
    /// assert_eq!(first.len(), 2);
    /// assert_eq!(first[0].target.to_string(), "192.0.2.1/32");
    /// let next = handle.bans_page(Some(first[1].target), 2);
    /// assert_eq!(next.len(), 1);
    /// assert_eq!(next[0].target.to_string(), "192.0.2.3/32");
    /// ```
    pub fn bans_page(&self, after: Option<IpNet>, limit: usize) -> Vec<Ban> {
        self.shared.bans.page(after, limit, |_, _, _, _| true).bans
    }

    /// Waits until every ban change made before the call is in the bans file
    /// (`[allow.bans] file`): a ban that was flushed survives `kill -9`. Changes are saved
    /// by a thread of their own within a fraction of a second anyway; this says when.
    /// Returns at once without a bans file. It answers from the current state: `Ok` once
    /// those changes are on disk (a failed save is tried again, within 5 s, until one
    /// succeeds), and while they are not, an error saying why the last save failed (the bans
    /// stay in force either way). Blocks: from an async handler, call it through
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
    /// // One line a ban: network, expiry (`-`: until lifted), version, reason.
    /// let saved = std::fs::read_to_string(&file).unwrap();
    /// let line = saved.lines().find(|l| !l.starts_with('#')).unwrap();
    /// assert!(line.starts_with("192.0.2.7/32 - ") && line.ends_with(" by hand"));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn flush_bans(&self) -> Result<(), RuntimeError> {
        self.shared.bans.flush().map_err(RuntimeError::NotSaved)
    }

    /// Replaces the entries of an inline set (`[allow.sets] name = [...]`). The entries
    /// are checked first (values, `@set` references, cycles): an invalid list changes
    /// nothing and returns the error. Recompiles the policies on the calling thread before
    /// returning (so the next request sees the change): with big sets, call it from
    /// `rocket::tokio::task::spawn_blocking` in an async handler. Host names given here are
    /// not resolved (they match nothing) unless they were already in the configuration.
    /// The entries the set has already change nothing: nothing is recompiled, recorded or
    /// written to the fleet store.
    pub fn replace_set<S: AsRef<str>>(&self, name: &str, entries: &[S]) -> Result<(), Error> {
        let key = format!("allow.sets.{name}");
        match self.shared.spec.set_kinds.get(name) {
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
        // The entries it has already: nothing compiled, recorded or written to the fleet.
        let changed = self
            .shared
            .replace_set(name, targets)
            .map_err(|message| invalid(&key, message))?;
        if !changed {
            return Ok(());
        }
        self.audit(&format!("replace_set {name}: {} entries", entries.len()));
        if let Some(store) = &self.shared.store {
            let entries: Vec<String> = entries.iter().map(|e| e.as_ref().to_string()).collect();
            store.set(name, &entries);
        }
        Ok(())
    }
}

/// A reason, or none for an empty one.
fn non_empty(reason: &str) -> Option<&str> {
    Some(reason).filter(|r| !r.is_empty())
}

fn invalid(key: &str, message: String) -> Error {
    Error::Invalid {
        key: key.to_string(),
        message,
    }
}
