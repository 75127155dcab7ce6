//! `[allow.store]`: the Redis every instance of the app shares bans, set changes and modes
//! through.

use serde::Deserialize;

/// `[allow.store]`. Without it, each instance keeps its runtime state to itself.
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowConfig, OnUnavailable};
///
/// let figment = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = []
///     store.redis = "redis://127.0.0.1:6379/0"
/// "#));
/// let store = AllowConfig::from_figment(&figment).unwrap().store.unwrap();
/// assert_eq!(store.prefix, "rocket-allow");
/// assert_eq!(store.on_unavailable, OnUnavailable::Keep);
/// assert_eq!(store.max_stale_secs, 300);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redis://[user:password@]host:port/db`, `rediss://...` (TLS) or
    /// `redis+unix:///path/to/socket`. Required. A password never appears in a log line or
    /// an error.
    pub redis: String,
    /// Keys are `<prefix>:...` and changes are published on `<prefix>:changes`, so several
    /// apps can share one Redis. Default `"rocket-allow"`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// While Redis cannot be reached: `"keep"` (default) keeps enforcing the last state;
    /// `"refuse"` refuses every request (`by store`) once the last good sync is older than
    /// `max_stale_secs`.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// With `on_unavailable = "refuse"`: how old the last good sync may get, 1 to 86400
    /// seconds. Default 300.
    #[serde(default = "default_max_stale")]
    pub max_stale_secs: u64,
    /// With `rediss://`: a PEM file of the certificate authority that signed Redis's
    /// certificate (a private CA), trusted instead of the public web roots. Read at ignite
    /// and whenever a connection is made; a file that cannot be read or holds no
    /// certificate fails ignite. Default: none (the public roots of `webpki-roots`).
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// What an instance does while the store is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Keep enforcing the last state (default); changes apply locally and reach the others
    /// once Redis is back.
    #[default]
    Keep,
    /// Refuse every request once the last good sync is older than `max_stale_secs`.
    Refuse,
}

fn default_prefix() -> String {
    "rocket-allow".into()
}

fn default_max_stale() -> u64 {
    300
}

impl StoreConfig {
    /// The URL with any password replaced by `***`, for messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.redis)
    }

    /// A client for the configured Redis (with `tls_ca_file`, trusting that CA). The error
    /// names the key at fault and never holds the password.
    pub(crate) fn client(&self) -> Result<redis::Client, (&'static str, String)> {
        let bad_url = |e: redis::RedisError| {
            (
                "store.redis",
                format!(
                    "`{}` is not a Redis URL ({:?})",
                    self.redacted_url(),
                    e.kind()
                ),
            )
        };
        let Some(ca) = &self.tls_ca_file else {
            return redis::Client::open(self.redis.as_str()).map_err(bad_url);
        };
        let pem = std::fs::read(ca)
            .map_err(|e| ("store.tls_ca_file", format!("`{}`: {e}", ca.display())))?;
        if !self.redis.starts_with("rediss://") {
            return Err((
                "store.tls_ca_file",
                format!(
                    "is for `rediss://` URLs; `{}` is not one",
                    self.redacted_url()
                ),
            ));
        }
        // redis-rs takes a PEM without any certificate (then nothing is trusted and every
        // connect fails later): say so now.
        use rustls_pki_types::pem::PemObject;
        let count = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .take_while(Result::is_ok)
            .count();
        if count == 0 {
            return Err((
                "store.tls_ca_file",
                format!("`{}` holds no usable certificate (PEM)", ca.display()),
            ));
        }
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        redis::Client::build_with_tls(self.redis.as_str(), certs).map_err(|e| {
            (
                "store.tls_ca_file",
                format!(
                    "`{}` holds no usable certificate ({:?})",
                    ca.display(),
                    e.kind()
                ),
            )
        })
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host` (and a bare `:secret@` too), and
/// `?pass=secret` / `&password=secret` (how `redis+unix://` URLs carry one) → `pass=***`.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
                    {
                        format!("{k}=***")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{}?{}", redact_auth(base), query.join("&"))
        }
        None => redact_auth(url),
    }
}

fn redact_auth(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth_end, host_rest) = match rest.rfind('@') {
        Some(at) => (at, &rest[at..]),
        None => return url.to_string(),
    };
    let auth = &rest[..auth_end];
    let user = auth.split_once(':').map_or(auth, |(user, _)| user);
    if auth.contains(':') {
        format!("{scheme}://{user}:***{host_rest}")
    } else {
        // `redis://secret@host` puts the password where the user goes.
        format!("{scheme}://***{host_rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(redact("redis://u:p%40ss@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("rediss://:secret@h"), "rediss://:***@h");
        assert_eq!(redact("redis://secret@h"), "redis://***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact("redis+unix:///run/r.sock"),
            "redis+unix:///run/r.sock"
        );
        assert_eq!(
            redact("redis+unix:///r.sock?db=0&pass=HUNTER2"),
            "redis+unix:///r.sock?db=0&pass=***"
        );
        assert_eq!(
            redact("redis://u:p@h/0?password=x"),
            "redis://u:***@h/0?password=***"
        );
    }
}
