//! The access log: one line per decision, written off the request path and rotated by size.
//!
//! Lines are formatted on the request path (one allocation) and pushed onto a bounded
//! queue; a writer thread of ours ([`writer`]) takes them off, batches them and writes
//! them through [`rotate`], which renames files the way Python's RotatingFileHandler does.
//! Every line is accounted for: written, or counted and reported (see [`writer`]).
//!
//! The queue and thread are ours rather than tracing-appender's non-blocking writer because
//! its guard gives up after a fixed second at shutdown (losing the backlog silently), its
//! drop count is only visible to the request side (so drop notices had to queue behind the
//! very backlog that caused them), and it cannot say how many lines are still waiting.

mod line;
mod rotate;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

pub(crate) use line::{By, Entry, Level, RuleRef, Url};
use rotate::{open_file, LogFile};
use writer::{Counters, Writer};

use crate::config::{AccessLogConfig, LogFormat, OnFull};
use crate::error::Error;

/// The access log: the request side's handle to the writer thread.
pub(crate) struct AccessLog {
    /// `None` once closed (on drop), which ends the writer after the backlog.
    queue: Option<Sender<String>>,
    format: LogFormat,
    on_full: OnFull,
    counters: Arc<Counters>,
    worker: Option<JoinHandle<()>>,
    path: PathBuf,
    /// How long closing may wait for the backlog: Rocket's shutdown grace period.
    wait: Duration,
}

impl AccessLog {
    /// Opens (or creates) the file for appending, failing with the path and the OS error,
    /// and starts the writer, which writes "Access log started". `wait` bounds how long
    /// shutdown waits for the backlog.
    pub fn open(config: &AccessLogConfig, wait: Duration) -> Result<AccessLog, Error> {
        let fail = |source| Error::AccessLog {
            path: config.path.clone(),
            source,
        };
        // An absolute path keeps writing to the same file if the app changes directory.
        let path = std::path::absolute(&config.path).map_err(fail)?;
        // The first open is plain (no directory is created at ignite: a wrong path must fail).
        let first = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(fail)?;
        let mut first = Some(first);
        // Later opens (after rotation, or when the file or directory was removed) recreate.
        let open = move |p: &std::path::Path| match first.take() {
            Some(file) => Ok(file),
            None => open_file(p),
        };
        let file = LogFile::open(
            path.clone(),
            Box::new(open),
            config.max_bytes,
            config.backup_count,
        )
        .map_err(fail)?;
        let (tx, rx) = crossbeam_channel::bounded(config.queue_lines);
        let counters = Arc::new(Counters::default());
        let writer = Writer::new(file, config.format);
        let worker = {
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("rocket-allow-access-log".into())
                .spawn(move || writer.run(rx, &counters))
                .map_err(fail)?
        };
        Ok(AccessLog {
            queue: Some(tx),
            format: config.format,
            on_full: config.on_full,
            counters,
            worker: Some(worker),
            path,
            wait,
        })
    }

    /// Queues one decision line. With `on_full = "drop"` (default) this never waits: a
    /// line that does not fit is counted, and the writer reports the count.
    pub fn record(&self, entry: &Entry<'_>) {
        let mut line = String::with_capacity(256);
        match self.format {
            LogFormat::Text => entry.text(&mut line),
            LogFormat::Json => entry.json(&mut line),
        }
        let Some(queue) = &self.queue else { return };
        let sent = match self.on_full {
            OnFull::Drop => match queue.try_send(line) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            OnFull::Block => queue.send(line).is_ok(),
        };
        let counter = if sent {
            &self.counters.queued
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits (at most the shutdown grace period) until every line queued so far is
    /// written, and says on stderr how many are still waiting if that takes longer.
    pub fn drain(&self) {
        let left = self.counters.wait_done(Instant::now() + self.wait);
        if left > 0 {
            eprintln!(
                "rocket-allow: {left} access log line(s) not yet written to `{}` after the \
                 shutdown grace period ({} s)",
                self.path.display(),
                self.wait.as_secs()
            );
        }
    }
}

impl Drop for AccessLog {
    /// Closes the queue and lets the writer finish the backlog, for at most the shutdown
    /// grace period; whatever is still unwritten then is counted on stderr.
    fn drop(&mut self) {
        drop(self.queue.take());
        let deadline = Instant::now() + self.wait;
        let left = self.counters.wait_done(deadline);
        let Some(worker) = self.worker.take() else {
            return;
        };
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if worker.is_finished() {
            if worker.join().is_err() {
                eprintln!("rocket-allow: the access log writer failed");
            }
        } else {
            eprintln!(
                "rocket-allow: {left} access log line(s) could not be written to `{}` before \
                 the shutdown grace period ({} s) ended",
                self.path.display(),
                self.wait.as_secs()
            );
        }
        let dropped = self.counters.dropped.load(Ordering::SeqCst);
        if dropped > 0 {
            eprintln!(
                "rocket-allow: {dropped} access log line(s) were dropped and could not be reported"
            );
        }
    }
}
