//! `access_log`: a path, or a table with rotation, format and queue settings.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::bounds::{de_backup_count, de_max_bytes, de_queue_lines};

/// What happens to a decision line when the access log writer is a full queue behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFull {
    /// The line is dropped and counted; the log says how many (default). Requests never wait.
    #[default]
    Drop,
    /// The request waits until the writer has room: no line is lost to a full queue.
    Block,
}

/// Layout of access log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Flask-Allow's layout: `time - LEVEL - client verdict by rule ... method url user-agent`.
    #[default]
    Text,
    /// One JSON object a line, the same fields by name.
    Json,
}

/// `access_log = "path"` or the `[allow.access_log]` table.
///
/// ```
/// use rocket::figment::{Figment, providers::{Format, Toml}};
/// use rocket_allow::{AllowConfig, LogFormat};
///
/// let short = Figment::new().merge(Toml::string(r#"
///     [allow]
///     rules = []
///     access_log = "access.log"
/// "#));
/// let log = AllowConfig::from_figment(&short).unwrap().access_log.unwrap();
/// assert_eq!(log.max_bytes, 5_242_880);
/// assert_eq!(log.backup_count, 7);
/// assert_eq!(log.format, LogFormat::Text);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// The log file; rotated files are `path.1` (newest) to `path.N`.
    pub path: PathBuf,
    /// Rotate before a line would make the file larger than this many bytes: 1 to
    /// 1099511627776 (1 TiB). Default 5242880 (5 MiB).
    pub max_bytes: u64,
    /// Rotated files to keep, 0 to 100000; the oldest beyond this is deleted. Default 7. `0`
    /// never rotates (the file grows without bound), as Python's RotatingFileHandler.
    pub backup_count: usize,
    /// `"text"` (default) or `"json"`.
    pub format: LogFormat,
    /// The layout of text lines, with Python logging's %-style placeholders: `None` is
    /// Flask-Allow's default, `"%(asctime)s - %(levelname)7s - %(message)s"`. Not with
    /// `format = "json"`.
    pub formatter: Option<String>,
    /// Python's `time.strftime` format for `%(asctime)s`; `None` (default) is RFC 3339 with
    /// milliseconds. Not with `format = "json"`.
    pub datefmt: Option<String>,
    /// `%(asctime)s` in UTC (`true`, default) or in the system's time zone (`false`: `TZ`,
    /// else `/etc/localtime`). Not `false` with `format = "json"`.
    pub utc: bool,
    /// `"drop"` (default) or `"block"`: what to do when the writer is a full queue behind.
    pub on_full: OnFull,
    /// How many lines may wait for the writer thread, 1 to 1000000. Default 128000. The
    /// queue reserves about 32 bytes a line up front (4 MiB at the default), plus the lines
    /// waiting in it (150 to 300 bytes each).
    pub queue_lines: usize,
}

impl AccessLogConfig {
    /// Flask-Allow's defaults for `path`: 5 MiB files, 7 backups, text lines.
    ///
    /// ```
    /// let log = rocket_allow::AccessLogConfig::new("access.log");
    /// assert_eq!(log.backup_count, 7);
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> AccessLogConfig {
        AccessLogConfig {
            path: path.into(),
            max_bytes: 5_242_880,
            backup_count: 7,
            format: LogFormat::Text,
            formatter: None,
            datefmt: None,
            utc: true,
            on_full: OnFull::Drop,
            queue_lines: 128_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessLogTable {
    path: PathBuf,
    #[serde(default, deserialize_with = "de_max_bytes")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de_backup_count")]
    backup_count: Option<usize>,
    #[serde(default)]
    format: LogFormat,
    #[serde(default)]
    formatter: Option<String>,
    #[serde(default)]
    datefmt: Option<String>,
    #[serde(default)]
    utc: Option<bool>,
    #[serde(default)]
    on_full: OnFull,
    #[serde(default, deserialize_with = "de_queue_lines")]
    queue_lines: Option<usize>,
}

impl<'de> Deserialize<'de> for AccessLogConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AccessLogConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a file path, or a table with `path`, `max_bytes`, `backup_count`, `format`, `formatter`, `datefmt`, `utc`, `on_full`, `queue_lines`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AccessLogConfig::new(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let t = AccessLogTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let defaults = AccessLogConfig::new(t.path);
                Ok(AccessLogConfig {
                    max_bytes: t.max_bytes.unwrap_or(defaults.max_bytes),
                    backup_count: t.backup_count.unwrap_or(defaults.backup_count),
                    format: t.format,
                    formatter: t.formatter,
                    datefmt: t.datefmt,
                    utc: t.utc.unwrap_or(defaults.utc),
                    on_full: t.on_full,
                    queue_lines: t.queue_lines.unwrap_or(defaults.queue_lines),
                    ..defaults
                })
            }
        }
        d.deserialize_any(V)
    }
}
