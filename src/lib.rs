#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]
//!
//! # Where things live
//!
//! - [`AllowFairing`]: the fairing (ignite, per-request decision, refusal route).
//! - [`AllowConfig`] and friends: the `[allow]` schema, defaults and validation.
//! - [`Rule`], [`Target`], [`Verdict`]: rule values and their parser.
//! - [`Matcher`], [`LinearScan`]: the compiled first-match matcher and its reference.
//! - [`client_addr`], [`ClientIpHeader`]: which address is the client behind proxies.
//! - [`Error`]: why ignite failed.

mod client;
mod config;
mod decide;
mod error;
mod fairing;
mod generation;
mod guard;
mod log;
mod matcher;
mod paths;
mod resolve;
mod rules;
mod sets;

pub use client::{client_addr, ClientAddr, ClientIpHeader, Unreadable, MAX_HOPS};
pub use config::{
    AccessLogConfig, AllowConfig, DnsConfig, LogFormat, MissingHeader, OnFull, OnUnresolved,
    PolicyConfig, CONFIG_KEY,
};
pub use error::Error;
pub use fairing::{AllowFairing, REFUSED_PATH};
pub use guard::{Allowed, ClientIp, GuardError, Policy};
pub use matcher::{Decision, LinearScan, Matcher};
pub use rules::{Rule, Target, TargetError, Verdict};
pub use sets::BUILTIN_SETS;
