//! The one error type: why the fairing refused to start.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a configuration was refused or the fairing could not start. Every variant's
/// message names the configuration key (with the rule's index) and the offending value.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The `[allow]` table is missing, or a value in it is wrong: an unknown key, a wrong
    /// type, a bad rule, a number out of range.
    Invalid {
        /// The full key, such as `allow.access_log.max_bytes` or `allow.rules[2]`.
        key: String,
        /// What is wrong with the value, quoting it.
        message: String,
    },
    /// A host name (rule or trusted proxy) did not resolve at ignite.
    Unresolved {
        /// The full key, such as `allow.rules[1]`.
        key: String,
        /// The host name.
        name: String,
        /// The resolver's answer.
        message: String,
    },
    /// The access log file could not be opened for appending.
    AccessLog {
        /// The configured path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { key, message } => write!(f, "{key}: {message}"),
            Error::Unresolved { key, name, message } => {
                write!(f, "{key}: host name `{name}` did not resolve: {message}")
            }
            Error::AccessLog { path, source } => {
                write!(
                    f,
                    "allow.access_log: cannot open `{}`: {source}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::AccessLog { source, .. } => Some(source),
            _ => None,
        }
    }
}
