//! tmp
mod client;
mod config;
mod error;
mod log;
mod matcher;
mod rules;
pub use config::{AccessLogConfig, AllowConfig, DnsConfig, LogFormat, OnUnresolved, CONFIG_KEY};
pub use error::Error;
pub use matcher::{Decision, LinearScan, Matcher};
pub use rules::{Rule, Target, TargetError, Verdict};
pub use client::{client_addr, ClientAddr, ClientIpHeader, MAX_HOPS};
