//! The access log: one line per decision, written off the request path and rotated by size.
//!
//! Lines are formatted on the request path (one allocation) and handed to
//! tracing-appender's non-blocking worker thread, which writes them through
//! [`RotatingFile`]: file-rotate does the renaming (`access.log` → `.1` → … → `.N`),
//! and we decide *when*, as Python's RotatingFileHandler does, before a line would
//! push the file past `max_bytes`, so lines are never split across files.

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use file_rotate::{compression::Compression, suffix::AppendCount, ContentLimit, FileRotate};
use serde::Serialize;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

use crate::config::{AccessLogConfig, LogFormat};
use crate::error::Error;
use crate::rules::Verdict;

/// Flask-Allow's levels: allowed by a rule, no rule matched, refused by a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// One decision, borrowed from the request and the rule set.
#[derive(Debug, Serialize)]
pub(crate) struct Entry<'a> {
    #[serde(skip)]
    pub level: Level,
    /// The address the decision was made on.
    pub client: Option<IpAddr>,
    /// The TCP peer, when the client address came from a forwarding header (or differs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    pub verdict: Verdict,
    /// `None` when no rule matched and the default decided.
    pub rule: Option<RuleRef<'a>>,
    /// Why the decision was made on something other than the plain peer, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
    pub method: &'a str,
    pub url: Url<'a>,
    pub user_agent: Option<&'a str>,
}

/// The request URL, written straight into the line: `scheme://host/path?query`, or only
/// the origin when the request named no host.
#[derive(Clone, Copy)]
pub(crate) struct Url<'a> {
    pub scheme: &'static str,
    pub host: Option<&'a dyn fmt::Display>,
    pub origin: &'a dyn fmt::Display,
}

impl fmt::Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Some(host) => write!(f, "{}://{host}{}", self.scheme, self.origin),
            None => self.origin.fmt(f),
        }
    }
}

impl Serialize for Url<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Debug for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The rule that decided: its index, the text as written and what it was normalized to.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct RuleRef<'a> {
    pub index: usize,
    pub written: &'a str,
    pub normalized: &'a str,
}

impl Entry<'_> {
    /// Flask-Allow's layout, `time - LEVEL - client verdict by rule url user-agent`, with the
    /// rule's index and normalized form, the peer and the method added. Request text is
    /// escaped so a client cannot forge extra log lines.
    fn text(&self, out: &mut String) {
        write_timestamp(out);
        let _ = write!(out, " - {:>7} - ", self.level.as_str());
        match self.client {
            Some(ip) => {
                let _ = write!(out, "{ip}");
            }
            None => out.push_str("unknown-address"),
        }
        if let Some(peer) = self.peer {
            let _ = write!(out, " via {peer}");
        }
        out.push_str(match self.verdict {
            Verdict::Allow => " allowed",
            Verdict::Deny => " denied",
        });
        match &self.rule {
            Some(r) => {
                let _ = write!(
                    out,
                    " by rule #{} {} {} ({})",
                    r.index, self.verdict, r.written, r.normalized
                );
            }
            None => out.push_str(" by default (no rule matched)"),
        }
        if let Some(note) = self.note {
            out.push_str(" [");
            escape_into(out, note);
            out.push(']');
        }
        out.push(' ');
        out.push_str(self.method);
        out.push(' ');
        let _ = write!(Escaped(out), "{}", self.url);
        out.push(' ');
        escape_into(out, self.user_agent.unwrap_or("-"));
        out.push('\n');
    }

    fn json(&self, out: &mut String) {
        #[derive(Serialize)]
        struct Line<'a> {
            timestamp: String,
            level: &'static str,
            #[serde(flatten)]
            entry: &'a Entry<'a>,
        }
        let line = Line {
            timestamp: timestamp(),
            level: self.level.as_str(),
            entry: self,
        };
        // Serializing borrowed strings and numbers cannot fail.
        out.push_str(&serde_json::to_string(&line).unwrap_or_default());
        out.push('\n');
    }

    /// Reports the decision as a `tracing` event (target `rocket_allow`), for apps with a subscriber.
    pub fn emit_event(&self) {
        let rule = self.rule.map(|r| r.index);
        let written = self.rule.map(|r| r.written);
        macro_rules! event {
            ($lvl:expr, $msg:literal) => {
                tracing::event!(
                    target: "rocket_allow",
                    $lvl,
                    client = ?self.client,
                    peer = ?self.peer,
                    verdict = self.verdict.as_str(),
                    rule = ?rule,
                    rule_written = ?written,
                    note = ?self.note,
                    method = self.method,
                    url = %self.url,
                    user_agent = ?self.user_agent,
                    $msg
                )
            };
        }
        match self.level {
            Level::Info => event!(tracing::Level::INFO, "request allowed"),
            Level::Warning => event!(tracing::Level::WARN, "no rule matched; default applied"),
            Level::Error => event!(tracing::Level::ERROR, "request refused"),
        }
    }
}

/// RFC 3339 in UTC with milliseconds, fixed width: unambiguous whatever the server's time zone.
fn timestamp() -> String {
    let mut out = String::with_capacity(24);
    write_timestamp(&mut out);
    out
}

/// Appends the timestamp. The `YYYY-MM-DDTHH:MM:SS` part is formatted once per second per
/// thread; only the milliseconds are written per line.
fn write_timestamp(out: &mut String) {
    use std::cell::RefCell;
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    let unix = now.unix_timestamp();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != unix {
            cached.1 = now.format(FORMAT).unwrap_or_default();
            cached.0 = unix;
        }
        out.push_str(&cached.1);
    });
    let _ = write!(out, ".{:03}Z", now.millisecond());
}

/// Control characters (CR, LF, ESC...) become `\u{..}` so one request is one line.
fn escape_into(out: &mut String, s: &str) {
    let _ = Escaped(out).write_str(s);
}

/// A `fmt::Write` that escapes control characters on the way into the line.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_unicode())?;
            } else {
                self.0.push(c);
            }
        }
        Ok(())
    }
}

/// The access log: a cheap handle to the writer thread.
pub(crate) struct AccessLog {
    writer: NonBlocking,
    format: LogFormat,
    dropped: ErrorCounter,
    /// How many dropped lines were already reported in the log.
    reported_drops: AtomicUsize,
    // Dropping the guard flushes every queued line; it lives as long as the app's state.
    _guard: WorkerGuard,
}

impl AccessLog {
    /// Opens (or creates) the file for appending, failing with the path and the OS error, and
    /// writes "Access log started".
    pub fn open(config: &AccessLogConfig) -> Result<AccessLog, Error> {
        let file = RotatingFile::open(config)?;
        // Lossy: a full queue drops the line rather than stalling requests on the disk.
        // Drops are counted and reported in the log itself (see `record`).
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .thread_name("rocket-allow-access-log")
            .finish(file);
        let log = AccessLog {
            dropped: writer.error_counter(),
            writer,
            format: config.format,
            reported_drops: AtomicUsize::new(0),
            _guard: guard,
        };
        log.notice("INFO", "Access log started");
        Ok(log)
    }

    /// Queues one decision line. Never blocks on the disk.
    pub fn record(&self, entry: &Entry<'_>) {
        let mut line = String::with_capacity(256);
        match self.format {
            LogFormat::Text => entry.text(&mut line),
            LogFormat::Json => entry.json(&mut line),
        }
        self.report_drops();
        let _ = self.writer.clone().write_all(line.as_bytes());
    }

    /// A line that is not a decision: start-up, dropped lines.
    fn notice(&self, level: &str, message: &str) {
        let line = notice_line(self.format, level, message);
        let _ = self.writer.clone().write_all(line.as_bytes());
    }

    fn report_drops(&self) {
        let dropped = self.dropped.dropped_lines();
        let reported = self.reported_drops.load(Ordering::Relaxed);
        if dropped > reported
            && self
                .reported_drops
                .compare_exchange(reported, dropped, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let n = dropped - reported;
            tracing::warn!(target: "rocket_allow", dropped = n, "access log writer fell behind; lines dropped");
            self.notice(
                "WARNING",
                &format!("{n} access log line(s) were dropped: the writer fell behind"),
            );
        }
    }
}

/// A line that is not a decision, in the log's format (start-up, dropped or lost lines).
fn notice_line(format: LogFormat, level: &str, message: &str) -> String {
    match format {
        LogFormat::Text => format!("{} - {level:>7} - {message}\n", timestamp()),
        LogFormat::Json => format!(
            "{}\n",
            serde_json::json!({ "timestamp": timestamp(), "level": level, "message": message })
        ),
    }
}

/// A size-rotated file with RotatingFileHandler's timing, and write failures reported instead
/// of lost silently: the first failure goes to stderr and `tracing`, and once writing works
/// again a line in the log says how many lines could not be written.
///
/// Lines are batched: the worker thread calls `flush` whenever its queue runs empty, so a
/// burst costs one `write` system call instead of one per line.
struct RotatingFile {
    inner: FileRotate<AppendCount>,
    path: PathBuf,
    /// Bytes in the live file, counting the batch not yet written.
    size: u64,
    max_bytes: u64,
    backup_count: usize,
    format: LogFormat,
    batch: Vec<u8>,
    batch_lines: u64,
    failed: u64,
    last_error: String,
}

/// Write a batch out once it reaches this size, even if the queue is not empty yet.
const BATCH_BYTES: usize = 64 * 1024;

impl RotatingFile {
    fn open(config: &AccessLogConfig) -> Result<RotatingFile, Error> {
        let fail = |source| Error::AccessLog {
            path: config.path.clone(),
            source,
        };
        // An absolute path keeps writing to the same file if the app changes directory.
        let path = std::path::absolute(&config.path).map_err(fail)?;
        // file-rotate opens lazily and would panic on a missing directory; open here first
        // so that ignite fails with the OS error instead.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(fail)?;
        let size = file.metadata().map_err(fail)?.len();
        drop(file);
        let inner = FileRotate::new(
            &path,
            AppendCount::new(config.backup_count.max(1)),
            ContentLimit::None,
            Compression::None,
            None,
        );
        Ok(RotatingFile {
            inner,
            path,
            size,
            max_bytes: config.max_bytes,
            backup_count: config.backup_count,
            format: config.format,
            batch: Vec::with_capacity(BATCH_BYTES),
            batch_lines: 0,
            failed: 0,
            last_error: String::new(),
        })
    }

    /// Writes the batch to the live file; on failure its lines are counted as lost.
    fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let result = self.inner.write_all(&self.batch);
        let lines = std::mem::take(&mut self.batch_lines);
        self.batch.clear();
        match result {
            Ok(()) => self.recovered(),
            Err(e) => self.lost(lines, e),
        }
    }

    /// Once writing works again, say in the log how many lines were lost.
    fn recovered(&mut self) {
        if self.failed > 0 {
            let message = format!(
                "{} access log line(s) could not be written: {}",
                self.failed, self.last_error
            );
            let line = notice_line(self.format, "WARNING", &message);
            self.failed = 0;
            self.size += line.len() as u64;
            if let Err(e) = self.inner.write_all(line.as_bytes()) {
                self.lost(0, e);
            }
        }
    }

    fn lost(&mut self, lines: u64, e: io::Error) {
        if self.failed == 0 {
            eprintln!(
                "rocket-allow: cannot write access log `{}`: {e}",
                self.path.display()
            );
            tracing::error!(target: "rocket_allow", path = %self.path.display(), error = %e,
                "cannot write access log");
        }
        self.failed += lines.max(1);
        self.last_error = e.to_string();
    }

    fn rotate(&mut self) -> io::Result<()> {
        // file-rotate panics if the directory is gone; report that as an error instead.
        if !self.path.parent().is_some_and(Path::is_dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "log directory is gone",
            ));
        }
        self.inner.rotate()?;
        // file-rotate drops writes silently if it cannot reopen the file; detect that here.
        if !self.path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "could not reopen the log after rotation",
            ));
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    /// Takes one whole line (the non-blocking writer hands over one message per call).
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let len = line.len() as u64;
        if self.backup_count > 0 && self.size > 0 && self.size + len > self.max_bytes {
            self.commit();
            if let Err(e) = self.rotate() {
                // Not written anywhere: counted, and reported once writing works again.
                self.lost(1, e);
                return Ok(line.len());
            }
        }
        self.batch.extend_from_slice(line);
        self.batch_lines += 1;
        self.size += len;
        if self.batch.len() >= BATCH_BYTES {
            self.commit();
        }
        // Always "written": the worker ignores errors, so they are handled here.
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.commit();
        self.inner.flush()
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        self.commit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(ua: Option<&'a str>, rule: Option<RuleRef<'a>>) -> Entry<'a> {
        Entry {
            level: Level::Error,
            client: Some("192.0.2.9".parse().unwrap()),
            peer: Some("10.0.0.1".parse().unwrap()),
            verdict: Verdict::Deny,
            rule,
            note: None,
            method: "GET",
            url: Url {
                scheme: "http",
                host: Some(&"localhost"),
                origin: &"/x?y",
            },
            user_agent: ua,
        }
    }

    #[test]
    fn text_line_layout() {
        let mut s = String::new();
        let rule = RuleRef {
            index: 2,
            written: "0.0.0.0/0",
            normalized: "0.0.0.0/0",
        };
        entry(Some("curl/8"), Some(rule)).text(&mut s);
        let (_, rest) = s.split_once(" - ").unwrap();
        assert_eq!(
            rest,
            "  ERROR - 192.0.2.9 via 10.0.0.1 denied by rule #2 deny 0.0.0.0/0 (0.0.0.0/0) GET http://localhost/x?y curl/8\n"
        );
    }

    #[test]
    fn request_text_cannot_forge_lines() {
        let mut s = String::new();
        entry(Some("evil\n2026-01-01 - INFO - 1.2.3.4 allowed"), None).text(&mut s);
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(s.contains("evil\\u{a}2026"), "{s}");
    }

    #[test]
    fn json_line_fields() {
        let mut s = String::new();
        entry(None, None).json(&mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["client"], "192.0.2.9");
        assert_eq!(v["peer"], "10.0.0.1");
        assert_eq!(v["verdict"], "deny");
        assert!(v["rule"].is_null());
        assert_eq!(v["method"], "GET");
        assert!(v["user_agent"].is_null());
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
