//! tmp
mod matcher;
mod rules;
pub use matcher::{Decision, LinearScan, Matcher};
pub use rules::{Rule, Target, TargetError, Verdict};
