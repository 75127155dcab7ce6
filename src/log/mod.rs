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

mod escape;
mod line;
mod rotate;
mod template;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

pub(crate) use escape::EscapedDisplay;
pub(crate) use line::{By, Entry, Level, RuleRef, Url};
use rotate::{open_file, LogFile};
use template::Record;
pub(crate) use template::Template;
use writer::{Counters, Unwritten, Writer};

use crate::config::{AccessLogConfig, LogFormat, OnFull};

/// How lines are laid out: the `formatter` template, or JSON.
pub(crate) enum Layout {
    Text(Template),
    Json,
}

impl Layout {
    /// The layout `config` asks for (its template parsed once, here).
    pub fn of(config: &AccessLogConfig) -> Result<Layout, Error> {
        match config.format {
            LogFormat::Json => Ok(Layout::Json),
            LogFormat::Text => Template::parse(
                config.formatter.as_deref(),
                config.datefmt.as_deref(),
                config.utc,
            )
            .map(Layout::Text)
            .map_err(|(key, message)| Error::Invalid {
                key: format!("{}.{key}", crate::config::CONFIG_KEY),
                message,
            }),
        }
    }
}
use crate::error::Error;

/// The access log: the request side's handle to the writer thread.
pub(crate) struct AccessLog {
    /// `None` once closed (on drop), which ends the writer after the backlog.
    queue: Option<Sender<String>>,
    layout: Arc<Layout>,
    on_full: OnFull,
    counters: Arc<Counters>,
    worker: Option<JoinHandle<()>>,
    path: PathBuf,
    /// How long shutdown may wait for the backlog: Rocket's shutdown grace period.
    wait: Duration,
    /// When that wait ends, once shutdown has begun (shared by `drain` and `drop`).
    deadline: Mutex<Option<Instant>>,
}

impl AccessLog {
    /// Opens (or creates) the file for appending, failing with the path and the OS error,
    /// and starts the writer, which writes "Access log started". `wait` bounds how long
    /// shutdown waits for the backlog.
    /// `lost` counts the lines that never make it into the log.
    pub fn open(
        config: &AccessLogConfig,
        wait: Duration,
        lost: metrics::Counter,
    ) -> Result<AccessLog, Error> {
        let layout = Arc::new(Layout::of(config)?);
        let fail = |source| Error::AccessLog {
            path: config.path.clone(),
            source,
        };
        // An absolute path keeps writing to the same file if the app changes directory.
        let path = std::path::absolute(&config.path).map_err(fail)?;
        // The first open is plain (no directory is created at ignite: a wrong path must fail).
        let first = open_at_ignite(&path).map_err(fail)?;
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
        let mut counters = Counters::default();
        counters.lost_metric = Some(lost);
        let counters = Arc::new(counters);
        let worker = {
            let counters = counters.clone();
            let layout = layout.clone();
            std::thread::Builder::new()
                .name("rocket-allow-access-log".into())
                .spawn(move || Writer::new(file, &layout, &counters).run(rx))
                .map_err(fail)?
        };
        Ok(AccessLog {
            queue: Some(tx),
            layout,
            on_full: config.on_full,
            counters,
            worker: Some(worker),
            path,
            wait,
            deadline: Mutex::new(None),
        })
    }

    /// Queues one decision line. With `on_full = "drop"` (default) this never waits: a
    /// line that does not fit is counted, and the writer reports the count.
    pub fn record(&self, entry: &Entry<'_>) {
        // Room for a typical line, so that it is written without growing.
        let mut line = String::with_capacity(match &*self.layout {
            Layout::Text(template) => template.size_hint,
            Layout::Json => 512,
        });
        match &*self.layout {
            Layout::Text(template) => template.render(&mut line, Record::Decision(entry)),
            Layout::Json => entry.json(&mut line),
        }
        let Some(queue) = &self.queue else { return };
        let sent = match self.on_full {
            OnFull::Drop => match queue.try_send(line) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            OnFull::Block => queue.send(line).is_ok(),
        };
        if sent {
            self.counters.queued.fetch_add(1, Ordering::SeqCst);
        } else {
            self.counters.dropped.fetch_add(1, Ordering::SeqCst);
            self.counters.count_lost(1);
        }
    }

    /// Lines dropped or not written since the log opened.
    pub fn lines_lost(&self) -> u64 {
        self.counters
            .lost_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file written to.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Queues a line that is not a decision (a runtime change), at `level`, laid out by the
    /// formatter; `message` is escaped like request text. Dropped and counted like a decision line when the queue
    /// is full.
    pub fn notice(&self, level: &str, message: &str) {
        let line = line::notice_line(&self.layout, level, message);
        let Some(queue) = &self.queue else { return };
        if queue.try_send(line).is_ok() {
            self.counters.queued.fetch_add(1, Ordering::SeqCst);
        } else {
            self.counters.dropped.fetch_add(1, Ordering::SeqCst);
            self.counters.count_lost(1);
        }
    }

    /// At shutdown: waits until every line queued so far is written, for at most the
    /// grace period (which starts now, and which `drop` shares).
    pub fn drain(&self) {
        self.counters.wait_done(self.deadline());
    }

    fn deadline(&self) -> Instant {
        let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        *d.get_or_insert_with(|| Instant::now() + self.wait)
    }
}

/// Opens the log for appending, giving up after [`OPEN_TIMEOUT`]: opening a named pipe
/// that nobody reads blocks forever, and ignite must fail instead of hanging.
fn open_at_ignite(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::Builder::new()
        .name("rocket-allow-open-log".into())
        .spawn(move || {
            let _ = tx.send(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p),
            );
        })?;
    rx.recv_timeout(OPEN_TIMEOUT).unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "opening it did not finish within {} s (a named pipe that nobody reads?)",
                OPEN_TIMEOUT.as_secs()
            ),
        ))
    })
}

/// How long ignite waits for the log file to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for AccessLog {
    /// Closes the queue and lets the writer finish the backlog, until the grace period ends;
    /// then says on stderr, once, whatever the log does not account for.
    fn drop(&mut self) {
        drop(self.queue.take());
        let deadline = self.deadline();
        self.counters.wait_done(deadline);
        let Some(worker) = self.worker.take() else {
            return;
        };
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = if worker.is_finished() {
            let _ = worker.join();
            Some(self.counters.unwritten(self.counters.done()))
        } else {
            // Stop it at a batch boundary so the counts below are exact.
            self.counters.abandon(Duration::from_secs(1))
        };
        if let Some(u) = left {
            // Dropped and failed lines were counted when they happened.
            self.counters.count_lost(u.waiting);
        }
        let path = self.path.display();
        match left {
            Some(Unwritten {
                waiting,
                dropped,
                lost,
            }) => {
                if waiting + dropped + lost > 0 {
                    eprintln!(
                        "rocket-allow: access log `{path}` is missing {} decision line(s) that \
                         it does not report: {waiting} not written by the end of the shutdown \
                         grace period ({} s), {dropped} dropped at a full queue, {lost} failed \
                         to write",
                        waiting + dropped + lost,
                        self.wait.as_secs()
                    );
                }
            }
            None => {
                let Unwritten {
                    waiting,
                    dropped,
                    lost,
                } = self.counters.unwritten(self.counters.done());
                eprintln!(
                    "rocket-allow: access log `{path}` is missing up to {} decision line(s) \
                     that it does not report ({waiting} queued, {dropped} dropped, {lost} \
                     failed): a write was still in progress when the shutdown grace period \
                     ({} s) ended",
                    waiting + dropped + lost,
                    self.wait.as_secs()
                );
            }
        }
    }
}
