//! The writer thread: takes lines off the queue, writes them in batches, rotates, and
//! accounts for every line it could not write.
//!
//! Every decision line ends up either in the log or in a count, and every count is
//! reported once: in the log, or (whatever the log could not take by the end) on stderr.
//! - Lines the request side dropped at a full queue (`Counters::dropped`) are reported by
//!   this thread, in a notice written straight into the file, not queued behind the
//!   backlog that caused the drops. The count is only taken off once the notice is on disk.
//! - Lines that failed to reach the disk (`Counters::lost`) are reported before the first
//!   line written once writing works again, in the same write.
//! - At shutdown [`Counters::abandon`] stops the writer at a batch boundary, so the
//!   counts read afterwards are exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::line::notice_line;
use super::rotate::{Appended, LogFile, Storage};
use super::Layout;

/// Write a batch out once it reaches this size, even if the queue is not empty yet.
const BATCH_BYTES: usize = 64 * 1024;

/// Lines taken off the queue between looks at the drop counter (and progress reports).
const LINES_PER_ROUND: usize = 4096;

/// How often an idle writer looks for drops to report.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// How long the writer waits after a round before taking the next: lines queued
/// meanwhile wait for the next round instead of waking the writer one by one (a wake-up
/// costs the request thread a system call). Lines reach the file within about this long.
const LINGER: Duration = Duration::from_millis(2);

/// Shared between the request side, the writer and shutdown.
#[derive(Default)]
pub(crate) struct Counters {
    /// Lines queued.
    pub queued: AtomicU64,
    /// Lines dropped at a full queue and not yet reported in the log.
    pub dropped: AtomicU64,
    /// Queued lines that could not be written and are not yet reported in the log.
    pub lost: AtomicU64,
    /// Queued lines the writer has finished with (written, or counted in `lost`).
    done: Mutex<u64>,
    done_changed: Condvar,
    /// Held while a batch is written and counted; `true` once shutdown gave up waiting.
    abandoned: Mutex<bool>,
    /// Set first when shutdown gives up, so the writer starts no new batch meanwhile.
    abandoning: std::sync::atomic::AtomicBool,
    /// `rocket_allow_log_lines_lost_total`: every line dropped or not written.
    pub lost_metric: Option<metrics::Counter>,
    /// What the metric counts, for the admin page (which cannot read a recorder).
    pub lost_total: AtomicU64,
}

/// What is still unaccounted for in the log when the writer is stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unwritten {
    /// Queued lines not written.
    pub waiting: u64,
    /// Dropped lines not reported in the log.
    pub dropped: u64,
    /// Lines that failed to be written and are not reported in the log.
    pub lost: u64,
}

impl Counters {
    /// Counts lines that will never be in the log (the metric; the report is separate).
    pub fn count_lost(&self, lines: u64) {
        self.lost_total.fetch_add(lines, Ordering::Relaxed);
        if let (Some(m), true) = (&self.lost_metric, lines > 0) {
            m.increment(lines);
        }
    }

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

    /// Stops the writer before its next batch and returns what it leaves unwritten.
    /// `None` if a write is in progress and does not end within `patience` (then whether
    /// its lines reached the disk cannot be known).
    pub fn abandon(&self, patience: Duration) -> Option<Unwritten> {
        self.abandoning.store(true, Ordering::SeqCst);
        let until = Instant::now() + patience;
        let mut guard = loop {
            match self.abandoned.try_lock() {
                Ok(g) => break g,
                Err(std::sync::TryLockError::Poisoned(e)) => break e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        };
        *guard = true;
        let done = *self.done.lock().unwrap_or_else(|e| e.into_inner());
        Some(self.unwritten(done))
    }

    /// What the log does not account for, once the writer has finished.
    pub fn unwritten(&self, done: u64) -> Unwritten {
        Unwritten {
            waiting: self.queued.load(Ordering::SeqCst).saturating_sub(done),
            dropped: self.dropped.load(Ordering::SeqCst),
            lost: self.lost.load(Ordering::SeqCst),
        }
    }

    /// Lines finished with so far.
    pub fn done(&self) -> u64 {
        *self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finished(&self, lines: u64) {
        if lines > 0 {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            *done += lines;
            self.done_changed.notify_all();
        }
    }
}

/// The writer's state: the file, the batch being built, and what it is reporting.
pub(crate) struct Writer<'c, S: Storage> {
    file: LogFile<S>,
    layout: &'c Layout,
    counters: &'c Counters,
    batch: Vec<u8>,
    /// Decision lines in `batch` (notices are not counted).
    batch_lines: u64,
    /// Dropped lines reported by a notice in `batch`.
    batch_drops: u64,
    last_error: String,
    /// Whether the last write failed (the first failure of a run goes to stderr).
    failing: bool,
    /// Shutdown gave up on the writer: nothing more is written.
    stopped: bool,
}

impl<'c, S: Storage> Writer<'c, S> {
    pub fn new(file: LogFile<S>, layout: &'c Layout, counters: &'c Counters) -> Writer<'c, S> {
        Writer {
            file,
            layout,
            counters,
            batch: Vec::with_capacity(BATCH_BYTES),
            batch_lines: 0,
            batch_drops: 0,
            last_error: String::new(),
            failing: false,
            stopped: false,
        }
    }

    /// Runs until the queue is closed and empty, or shutdown gives up on it.
    pub fn run(mut self, queue: Receiver<String>) {
        self.notice("INFO", "Access log started");
        self.commit();
        while !self.stopped {
            let first = match queue.recv_timeout(IDLE_CHECK) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let got_lines = first.is_some();
            for line in first
                .into_iter()
                .chain(queue.try_iter().take(LINES_PER_ROUND))
            {
                self.line(line.as_bytes());
                if self.batch.len() >= BATCH_BYTES {
                    self.commit();
                }
            }
            self.report_drops();
            self.commit();
            if got_lines {
                std::thread::sleep(LINGER);
            }
        }
        self.report_drops();
        self.commit();
    }

    /// Adds one decision line to the batch, rotating first if it would not fit.
    pub fn line(&mut self, line: &[u8]) {
        self.rotate_for(line.len());
        self.batch.extend_from_slice(line);
        self.batch_lines += 1;
    }

    /// Adds a line that is not a decision (start, drops) to the batch.
    fn notice(&mut self, level: &str, message: &str) {
        let line = notice_line(self.layout, level, message);
        self.rotate_for(line.len());
        self.batch.extend_from_slice(line.as_bytes());
    }

    fn rotate_for(&mut self, len: usize) {
        if self.stopped {
            return;
        }
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

    /// Puts a notice of drops not yet reported into the batch.
    fn report_drops(&mut self) {
        let n = self
            .counters
            .dropped
            .load(Ordering::SeqCst)
            .saturating_sub(self.batch_drops);
        if n > 0 {
            tracing::warn!(target: "rocket_allow", dropped = n, "access log writer fell behind; lines dropped");
            self.notice(
                "WARNING",
                &format!("{n} access log line(s) were dropped: the writer fell behind"),
            );
            self.batch_drops += n;
        }
    }

    /// Writes the batch, and only then counts it. Lines lost earlier are reported first, in
    /// the same write, so the report comes before the first line written after recovery.
    pub fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let counters = self.counters;
        let lines = std::mem::take(&mut self.batch_lines);
        let drops = std::mem::take(&mut self.batch_drops);
        let mut batch = std::mem::take(&mut self.batch);
        let abandoned = counters.abandoned.lock().unwrap_or_else(|e| e.into_inner());
        if *abandoned || counters.abandoning.load(Ordering::SeqCst) {
            // Shutdown has already counted these lines as unwritten.
            self.stopped = true;
            batch.clear();
            self.batch = batch;
            return;
        }
        let lost = counters.lost.load(Ordering::SeqCst);
        if lost > 0 {
            let report = notice_line(
                self.layout,
                "WARNING",
                &format!(
                    "{lost} access log line(s) could not be written: {}",
                    self.last_error
                ),
            );
            batch.splice(0..0, report.into_bytes());
        }
        match self.file.append(&batch) {
            Appended::Written => {
                counters.lost.fetch_sub(lost, Ordering::SeqCst);
                counters.dropped.fetch_sub(drops, Ordering::SeqCst);
                self.failing = false;
            }
            // The drop notice went with the batch: those drops stay unreported.
            Appended::Lost(e) => self.failed(lines, &e),
        }
        counters.finished(lines);
        drop(abandoned);
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
        self.counters.lost.fetch_add(lines, Ordering::SeqCst);
        self.counters.count_lost(lines);
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
        let counters = Counters::default();
        let mut w = Writer::new(file, &Layout::Json, &counters);
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

    /// The writer's own lines (drops, lost lines) are laid out by the formatter.
    #[test]
    fn notices_use_the_formatter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let file =
            LogFile::open(path.clone(), Box::new(|p: &Path| open_file(p)), 1 << 20, 3).unwrap();
        let layout = Layout::Text(
            crate::log::Template::parse(
                Some("%(levelname)-8s|%(levelno)d|%(message)s|%(client)s|%(status)d"),
                None,
                true,
            )
            .unwrap(),
        );
        let counters = Counters::default();
        counters.dropped.store(3, Ordering::SeqCst);
        counters.lost.store(2, Ordering::SeqCst);
        let mut w = Writer::new(file, &layout, &counters);
        w.report_drops();
        w.commit();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "WARNING |30|2 access log line(s) could not be written: |-|-\n\
             WARNING |30|3 access log line(s) were dropped: the writer fell behind|-|-\n"
        );
    }
}
