//! The access log: one line per decision, written off the request path and rotated by size.
//!
//! Lines are formatted on the request path (one allocation) and handed to
//! tracing-appender's non-blocking worker thread, which writes them through
//! [`RotatingFile`]: file-rotate does the renaming (`access.log` → `.1` → … → `.N`),
//! and we decide *when*, as Python's RotatingFileHandler does, before a line would
//! push the file past `max_bytes`, so lines are never split across files.

mod line;

use line::notice_line;
pub(crate) use line::{By, Entry, Level, RuleRef, Url};

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use file_rotate::{compression::Compression, suffix::AppendCount, ContentLimit, FileRotate};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

use crate::config::{AccessLogConfig, LogFormat};
use crate::error::Error;

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
