#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]
//!
//! # Where things live
//!
//! - [`AllowFairing`] (`fairing.rs`): ignite, the deciding request fairing, the refusal route.
//! - [`Allowed`], [`ClientIp`], [`Policy`] (`guard.rs`): request guards.
//! - `decide/`: what the request path reads. `decide/mod.rs` is the one decision path
//!   (client address, policy, rule, record) both use.
//! - [`AllowConfig`], [`PolicyConfig`] and friends (`config/`): the `[allow]` schema,
//!   defaults, bounds and validation.
//! - [`Rule`], [`Target`], [`Verdict`] (`rules.rs`); [`BUILTIN_SETS`] and `@set`
//!   expansion (`sets.rs`).
//! - [`Matcher`], [`LinearScan`] (`decide/matcher.rs`): the compiled first-match matcher
//!   and its reference; `decide/generation.rs` compiles every policy, `decide/paths.rs`
//!   picks one by path.
//! - [`client_addr`], [`ClientIpHeader`] (`client/`): which address is the client behind
//!   proxies.
//! - `resolve.rs`: host names, resolved and refreshed off the request path.
//! - `sources/`: sets' entries from list files (watched) and URLs (refetched).
//! - `geoip/`: `country:` and `asn:` values turned into networks from MaxMind DB files.
//! - `publish/`: the vetted client handed to Rocket's request (`publish_client_ip`).
//! - [`AllowHandle`] (`runtime/handle.rs`): the runtime API; [`Ban`] and the
//!   ban table (`decide/bans/`).
//! - `log/`: access log lines, the writer thread, rotation.
//! - `observe/`: metrics through the `metrics` facade, and hits per rule
//!   ([`AllowHandle::rule_hits`]).
//! - [`admin`] (`admin/`): the admin page, its JSON, CSRF checks; fed by `observe/recent.rs`
//!   (recent refusals, decisions per minute) from the decision path.
//! - [`Error`]: why ignite failed.

/// The documentation's topic pages (`docs/*.md` in the repository), one module each.
pub mod guide {
    #[doc = include_str!("../docs/howto.md")]
    pub mod howto {}
    #[doc = include_str!("../docs/auto_ban.md")]
    pub mod auto_ban {}
    #[doc = include_str!("../docs/configuration.md")]
    pub mod configuration {}
    #[doc = include_str!("../docs/proxies.md")]
    pub mod proxies {}
    #[doc = include_str!("../docs/geoip.md")]
    pub mod geoip {}
    #[doc = include_str!("../docs/policies.md")]
    pub mod policies {}
    #[doc = include_str!("../docs/runtime.md")]
    pub mod runtime {}
    #[doc = include_str!("../docs/observing.md")]
    pub mod observing {}
    #[doc = include_str!("../docs/fleet.md")]
    pub mod fleet {}
    #[doc = include_str!("../docs/performance.md")]
    pub mod performance {}
    #[doc = include_str!("../docs/flask-allow.md")]
    pub mod flask_allow {}
    #[doc = include_str!("../docs/admin.md")]
    pub mod admin {}
}

pub mod admin;

mod background;
mod client;
mod config;
mod country_codes;
mod decide;
mod error;
mod fairing;
mod geoip;

mod guard;

mod ip_text;
mod log;

mod observe;
mod publish;

mod resolve;
mod rules;
mod runtime;
mod sets;
mod sources;
mod store;
mod timestamp;

pub use client::{client_addr, client_addr_at, ClientAddr, ClientIpHeader, Unreadable, MAX_HOPS};
pub use config::{
    AccessLogConfig, AdminConfig, AllowConfig, AutoBanConfig, AutoBanOn, BansConfig, DnsConfig,
    GeoipConfig, LogFormat, MissingHeader, Mode, OnFull, OnUnavailable, OnUnresolved, PolicyConfig,
    SetConfig, StoreConfig, BUILTIN_ADMIN_POLICY, CONFIG_KEY,
};
pub use decide::bans::Ban;
pub use decide::matcher::{Decision, LinearScan, Matcher};
pub use decide::refusal::{Refused, RefusedBy};
pub use error::Error;
pub use fairing::{AllowFairing, REFUSED_PATH};
pub use guard::{Allowed, ClientIp, GuardError, Policy};
/// The network types of ban targets and `explain` answers, re-exported.
pub use ipnet;
pub use rules::{Rule, Target, TargetError, Verdict};
pub use runtime::error::RuntimeError;
pub use runtime::explain::Explanation;
pub use runtime::handle::AllowHandle;
pub use runtime::hits::{PolicyHits, RuleHit};
pub use runtime::sources::SourceStatus;
pub use sets::BUILTIN_SETS;
pub use store::StoreStatus;
pub use timestamp::Timestamp;
