//! What can go wrong talking to Redis, said without the URL (it can hold the password):
//! the connection (reconnect), or Redis refusing what was sent (kept queued), and records
//! someone else wrote that do not parse (skipped, logged with their key).

use super::STORE_ERRORS;

pub(super) fn err(e: redis::RedisError) -> String {
    // The error's text can hold the URL: say what kind of failure it was, and the detail
    // Redis gave, which never holds the password.
    match (e.code(), e.detail()) {
        (Some(code), Some(d)) => format!("{code}: {d}"),
        (None, Some(d)) => format!("{:?}: {d}", e.kind()),
        // A pipeline's error: the text is Redis's own replies, which hold no password.
        (None, None) if e.kind() == redis::ErrorKind::Extension => e.to_string(),
        (_, None) => format!("{:?}: {}", e.kind(), e.category()),
    }
}

/// A failure, with its kind for the metrics and the status: `connection` (reconnect and
/// resynchronise), `oom`, `noperm`, `readonly` or `command` (Redis refused what was sent:
/// the change stays queued).
#[derive(Debug)]
pub(super) struct Failure {
    pub kind: &'static str,
    pub text: String,
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Failure {
        let kind = kind_of(&e);
        Failure { kind, text: err(e) }
    }
}

impl From<String> for Failure {
    fn from(text: String) -> Failure {
        Failure {
            kind: "command",
            text,
        }
    }
}

/// What kind of failure a Redis error is.
pub(super) fn kind_of(e: &redis::RedisError) -> &'static str {
    if connection_failed(e) {
        return "connection";
    }
    // Inside a script, Redis passes the command's own error code on.
    let text = format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""));
    if text.starts_with("OOM") || text.contains("OOM command not allowed") {
        "oom"
    } else if text.starts_with("NOPERM") || text.contains("NOPERM") {
        "noperm"
    } else if text.starts_with("READONLY") || text.contains("READONLY") {
        "readonly"
    } else {
        "command"
    }
}

pub(super) fn count_error(e: &Failure) {
    metrics::counter!(STORE_ERRORS, "kind" => e.kind).increment(1);
}

pub(super) fn malformed(key: &str, why: &str) {
    metrics::counter!(STORE_ERRORS, "kind" => "malformed").increment(1);
    // Text from Redis is someone else's: keep the line short and printable.
    let why: String = why
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    log::warn!(target: "rocket_allow", "rocket-allow: fleet store: skipped `{key}`: {why}");
}

/// Whether a failure is the connection's (try again later) rather than Redis refusing
/// what was sent.
pub(super) fn connection_failed(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}
