//! [`RuntimeError`]: why a call to the runtime API changed nothing (the ignite errors are
//! [`Error`](crate::Error)).

use std::fmt;

/// Why an [`AllowHandle`](crate::AllowHandle) call changed or answered nothing.
///
/// ```
/// let e = rocket_allow::RuntimeError::UnknownPolicy("admn".into());
/// assert_eq!(e.to_string(), "no policy `admn` in [allow.policies]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No policy of that name is configured.
    UnknownPolicy(String),
    /// A path that is not an absolute URI path (`/...`).
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The bans file could not be written (the bans stay in force).
    NotSaved(String),
    /// No `[allow.auto_ban.<name>]` rule of that name.
    UnknownAutoBan(String),
    /// The automatic-ban rule does not count strikes (its `on` is not `"strikes"`).
    NotStrikes(String),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::UnknownPolicy(name) => {
                write!(f, "no policy `{name}` in [allow.policies]")
            }
            RuntimeError::BadPath { path, message } => {
                write!(f, "`{path}` is not an absolute path: {message}")
            }
            RuntimeError::NotSaved(message) => write!(f, "bans not saved: {message}"),
            RuntimeError::UnknownAutoBan(name) => {
                write!(f, "no automatic-ban rule `{name}` in [allow.auto_ban]")
            }
            RuntimeError::NotStrikes(name) => write!(
                f,
                "automatic-ban rule `{name}` does not count strikes (set on = \"strikes\")"
            ),
        }
    }
}

impl std::error::Error for RuntimeError {}
