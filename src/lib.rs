//! tmp
mod client;
mod config;
mod error;
mod fairing;
mod log;
mod matcher;
mod policy;
mod resolve;
mod rules;
pub use client::{client_addr, ClientAddr, ClientIpHeader, MAX_HOPS};
pub use config::{AccessLogConfig, AllowConfig, DnsConfig, LogFormat, OnUnresolved, CONFIG_KEY};
pub use error::Error;
pub use fairing::{AllowFairing, REFUSED_PATH};
pub use matcher::{Decision, LinearScan, Matcher};
pub use rules::{Rule, Target, TargetError, Verdict};
