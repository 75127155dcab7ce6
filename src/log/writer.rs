//! The writer thread: takes lines off the queue, writes them in batches, rotates, and
//! accounts for every line it could not write.
//!
//! Every decision line ends up either in the log or in a count the log reports:
//! - lines the request side dropped because the queue was full (`Counters::dropped`) are
//!   reported by this thread, in a line written straight into the file, not queued behind
//!   the backlog that caused the drops;
//! - lines that failed to reach the disk are counted here and reported before the first
//!   line written once writing works again;
//! - what cannot be reported in the log by the end is said on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::line::notice_line;
use super::rotate::{Appended, LogFile, Storage};
use crate::config::LogFormat;

/// Write a batch out once it reaches this size, even if the queue is not empty yet.
const BATCH_BYTES: usize = 64 * 1024;

/// How often an idle writer looks for drops to report.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// Shared between the request side and the writer.
#[derive(Default)]
pub(crate) struct Counters {
    /// Lines queued.
    pub queued: AtomicU64,
    /// Lines dropped at a full queue, not yet reported.
    pub dropped: AtomicU64,
    /// Queued lines the writer has finished with (written, or counted as lost).
    done: Mutex<u64>,
    done_changed: Condvar,
}

impl Counters {
    /// Waits until every line queued so far is finished with, or `deadline` passes.
    /// Returns how many are still waiting.
    pub fn wait_done(&self, deadline: Instant) -> u64 {
        let target = self.queued.load(Ordering::SeqCst);
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while *done < target {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            done = self
                .done_changed
                .wait_timeout(done, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        target.saturating_sub(*done)
    }

    fn finished(&self, lines: u64) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        *done += lines;
        self.done_changed.notify_all();
    }
}

/// The writer's state: the file, the batch being built, and what is owed a report.
pub(crate) struct Writer<S: Storage> {
    file: LogFile<S>,
    format: LogFormat,
    batch: Vec<u8>,
    /// Decision lines in `batch` (notices are not counted).
    batch_lines: u64,
    /// Lines that could not be written and are not reported yet, and the last reason.
    lost: u64,
    last_error: String,
    /// Whether the last write failed (the first failure of a run goes to stderr).
    failing: bool,
}

impl<S: Storage> Writer<S> {
    pub fn new(file: LogFile<S>, format: LogFormat) -> Writer<S> {
        Writer {
            file,
            format,
            batch: Vec::with_capacity(BATCH_BYTES),
            batch_lines: 0,
            lost: 0,
            last_error: String::new(),
            failing: false,
        }
    }

    /// Runs until the queue is closed and empty, then reports what is left.
    pub fn run(mut self, queue: Receiver<String>, counters: &Counters) {
        self.notice("INFO", "Access log started");
        self.commit();
        loop {
            let first = match queue.recv_timeout(IDLE_CHECK) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut taken = 0;
            for line in first.into_iter().chain(queue.try_iter()) {
                self.line(line.as_bytes());
                taken += 1;
                if self.batch.len() >= BATCH_BYTES {
                    break;
                }
            }
            self.report_drops(counters);
            self.commit();
            counters.finished(taken);
        }
        self.report_drops(counters);
        self.commit();
        if self.lost > 0 {
            eprintln!(
                "rocket-allow: {} access log line(s) could not be written to `{}`: {}",
                self.lost,
                self.file.path().display(),
                self.last_error
            );
        }
    }

    /// Adds one decision line to the batch, rotating first if it would not fit.
    pub fn line(&mut self, line: &[u8]) {
        self.rotate_for(line.len());
        self.batch.extend_from_slice(line);
        self.batch_lines += 1;
    }

    /// Adds a line that is not a decision (start, drops, losses) to the batch.
    fn notice(&mut self, level: &str, message: &str) {
        let line = notice_line(self.format, level, message);
        self.rotate_for(line.len());
        self.batch.extend_from_slice(line.as_bytes());
    }

    fn rotate_for(&mut self, len: usize) {
        if self
            .file
            .needs_rotation(self.batch.len() as u64, len as u64)
        {
            self.commit();
            if let Err(e) = self.file.rotate() {
                self.failed(0, &e);
            }
        }
    }

    fn report_drops(&mut self, counters: &Counters) {
        let n = counters.dropped.swap(0, Ordering::SeqCst);
        if n > 0 {
            tracing::warn!(target: "rocket_allow", dropped = n, "access log writer fell behind; lines dropped");
            self.notice(
                "WARNING",
                &format!("{n} access log line(s) were dropped: the writer fell behind"),
            );
        }
    }

    /// Writes the batch. Lines lost earlier are reported first, in the same write, so the
    /// report comes before the first line written after recovery.
    pub fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.batch_lines);
        let mut batch = std::mem::take(&mut self.batch);
        if self.lost > 0 {
            let report = notice_line(
                self.format,
                "WARNING",
                &format!(
                    "{} access log line(s) could not be written: {}",
                    self.lost, self.last_error
                ),
            );
            batch.splice(0..0, report.into_bytes());
        }
        match self.file.append(&batch) {
            Appended::Written => {
                self.lost = 0;
                self.failing = false;
            }
            Appended::Lost(e) => self.failed(lines, &e),
        }
        batch.clear();
        self.batch = batch;
    }

    fn failed(&mut self, lines: u64, e: &std::io::Error) {
        if !self.failing {
            self.failing = true;
            eprintln!(
                "rocket-allow: cannot write access log `{}`: {e}",
                self.file.path().display()
            );
            tracing::error!(target: "rocket_allow", path = %self.file.path().display(), error = %e,
                "cannot write access log");
        }
        self.lost += lines;
        self.last_error = e.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::rotate::open_file;
    use crate::log::rotate::tests::Flaky;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn disk_full_loses_whole_lines_and_reports_them_before_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let full = Arc::new(AtomicBool::new(false));
        let flag = full.clone();
        let open = move |p: &Path| {
            Ok(Flaky {
                file: open_file(p)?,
                full: flag.clone(),
            })
        };
        let file = LogFile::open(path.clone(), Box::new(open), 1 << 20, 3).unwrap();
        let mut w = Writer::new(file, LogFormat::Json);
        let line = |i: u32| format!("{{\"n\":{i}}}\n");
        for i in 0..3 {
            w.line(line(i).as_bytes());
        }
        w.commit();
        full.store(true, Ordering::SeqCst);
        for i in 3..8 {
            w.line(line(i).as_bytes());
            w.commit();
        }
        full.store(false, Ordering::SeqCst);
        w.line(line(8).as_bytes());
        w.commit();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("torn: {l:?}")))
            .collect();
        let ns: Vec<u64> = lines.iter().filter_map(|v| v["n"].as_u64()).collect();
        assert_eq!(ns, [0, 1, 2, 8]);
        assert_eq!(lines.len(), 5, "{text}");
        let report = lines[3]["message"].as_str().unwrap();
        assert!(
            report.starts_with("5 access log line(s) could not be written:"),
            "{report}"
        );
    }
}
