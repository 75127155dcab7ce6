//! [`Refused`]: what a catcher (or a response fairing) can know about the refusal it
//! answers: the request as it came in, the client, the policy and what refused it. The
//! fairing reroutes a refused request, so `req.uri()` there is rocket-allow's refusal path;
//! this keeps the original, the same for the fairing's refusals and the guards'.

use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;

use rocket::Request;

use super::bans::Ban;
use super::describe_ban;

/// What refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "lowercase"))]
#[non_exhaustive]
pub enum RefusedBy {
    /// A rule: its index in the policy, its value as written, and the network it matched.
    Rule {
        /// The rule's index (`rule #1` in log lines).
        index: usize,
        /// The rule's value as written (`@office`, `10.0.0.0/8`, `all`).
        written: String,
        /// What matched: the set's network, or the rule's own.
        network: String,
    },
    /// A runtime ban (target, expiry, reason).
    Ban(Ban),
    /// No rule matched, and the policy's default is deny.
    Default,
    /// The client address could not be known: a trusted proxy's header that cannot be read
    /// (the text says why), or no address at all. Serialized as `{"kind": "header", "why":
    /// ...}`.
    #[cfg_attr(feature = "serde", serde(serialize_with = "header_why"))]
    Header(String),
    /// A `.` or `..` segment under path-scoped policies (answered 400).
    Path,
    /// `on_unavailable = "refuse"`: the fleet store has been away longer than
    /// `max_stale_secs`.
    Store,
    /// The admin page ([`crate::admin`]) was addressed by a name it does not answer to:
    /// its policy admitted the client, but `Host` is not an IP literal, `localhost`, a name
    /// under `.localhost` or one of `[allow.admin] hosts` (answered 403). Behind a reverse
    /// proxy that passes the site's name on, list that name in `hosts`.
    Host {
        /// The `Host` header as sent (empty when there was none to read).
        host: String,
    },
}

/// `RefusedBy::Header`'s text as a field: a tagged enum cannot carry a bare string.
#[cfg(feature = "serde")]
fn header_why<S: serde::Serializer>(why: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut fields = s.serialize_struct("Header", 1)?;
    fields.serialize_field("why", why)?;
    fields.end()
}

/// The refusal of the request being answered, from [`Refused::of`].
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket::Request;
/// use rocket_allow::Refused;
///
/// #[catch(403)]
/// fn forbidden(req: &Request<'_>) -> String {
///     match Refused::of(req) {
///         Some(r) => format!("{} may not see {}: {}\n", r.client_text(), r.uri, r.by_text()),
///         None => "Forbidden\n".into(), // a 403 from the app itself
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Refused {
    /// The request method (`GET`).
    pub method: String,
    /// The request URI as it came in (path and query), not the refusal path.
    pub uri: String,
    /// The client decided on; `None` when it could not be known.
    pub client: Option<IpAddr>,
    /// The TCP peer (the proxy, when the client came from a header).
    pub peer: Option<IpAddr>,
    /// The policy that refused; `None` for the app-wide rules.
    pub policy: Option<String>,
    /// What refused it.
    pub by: RefusedBy,
    /// The status it is answered with.
    pub status: u16,
}

/// Where the refusal is kept for the rest of the request.
#[derive(Default)]
struct Kept(Mutex<Option<Refused>>);

impl Refused {
    /// The refusal of `req`, if rocket-allow refused it (by the fairing or a guard).
    pub fn of(req: &Request<'_>) -> Option<Refused> {
        req.local_cache(Kept::default)
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Keeps `self` as the refusal of `req` (a later refusal replaces it).
    pub(crate) fn keep(self, req: &Request<'_>) {
        *req.local_cache(Kept::default)
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(self);
    }

    /// The client for a person: its address, or `an unknown client`.
    pub fn client_text(&self) -> String {
        self.client
            .map_or_else(|| "an unknown client".into(), |c| c.to_string())
    }

    /// What refused it, for a person: `rule #1 deny 10.0.0.0/8`, `banned 192.0.2.7/32
    /// until lifted: scanner`, `the default`, `unreadable client address (...)`, `a . or ..
    /// in the path`, `the admin page's host names: Host "app.example.com" is not ...`.
    pub fn by_text(&self) -> String {
        match &self.by {
            RefusedBy::Rule { index, written, .. } => format!("rule #{index} deny {written}"),
            RefusedBy::Ban(ban) => describe_ban(ban),
            RefusedBy::Default => "the default (no rule matched)".into(),
            RefusedBy::Header(why) => format!("unreadable client address ({why})"),
            RefusedBy::Path => "a . or .. in the path".into(),
            RefusedBy::Store => "the fleet store being away too long".into(),
            RefusedBy::Host { host } => format!(
                "the admin page's host names: Host {host:?} is not an address, localhost \
                 or one of [allow.admin] hosts"
            ),
        }
    }
}

impl fmt::Display for Refused {
    /// `GET /admin from 127.0.0.2 refused (403) by rule #1 deny all, policy admin`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} from {} refused ({}) by {}",
            self.method,
            self.uri,
            self.client_text(),
            self.status,
            self.by_text()
        )?;
        if let Some(p) = &self.policy {
            write!(f, ", policy {p}")?;
        }
        Ok(())
    }
}
