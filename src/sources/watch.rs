//! Watching list files: the notify crate's watcher on each file's directory (so an atomic
//! replace by rename is seen), and a poll of each file's size, times and inode four times
//! a second, which catches what the watcher misses and works where it cannot run. A changed
//! file is read once it has stayed unchanged for half a second, so a writer that truncates
//! and rewrites it in place is not caught half way.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher};

use super::read_list;
use crate::rules::Target;

/// How often every file is looked at, whatever the watcher says.
const POLL: Duration = Duration::from_millis(250);

/// How long a changed file must stay unchanged before it is read: a writer that truncates
/// the file and writes it in place is given this long to finish.
const STABLE: Duration = Duration::from_millis(500);

/// A list file and what it looked like when it was last read.
pub(crate) struct Watched {
    pub set: String,
    pub path: PathBuf,
    stamp: Option<Stamp>,
    /// A change seen but not read yet: what the file looked like, and since when.
    pending: Option<(Option<Stamp>, Instant)>,
}

/// Size, modification and change times, and inode: a change to any means the file
/// changed (the change time catches a rewrite that restores the modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(u64, Option<SystemTime>, (i64, i64), u64);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp(
        m.len(),
        m.modified().ok(),
        (m.ctime(), m.ctime_nsec()),
        m.ino(),
    ))
}

impl Watched {
    /// Takes the file's stamp; call before reading it, so a change after the read is seen.
    pub fn new(set: String, path: PathBuf) -> Watched {
        let stamp = stamp(&path);
        Watched {
            set,
            path,
            stamp,
            pending: None,
        }
    }

    /// Whether the file changed since it was last read and has then stayed the same for
    /// [`STABLE`]; that version is then taken as read.
    fn settled(&mut self) -> bool {
        let now = stamp(&self.path);
        if now == self.stamp {
            self.pending = None;
            return false;
        }
        match self.pending {
            Some((seen, since)) if seen == now && since.elapsed() >= STABLE => {
                self.stamp = now;
                self.pending = None;
                true
            }
            Some((seen, _)) if seen == now => false,
            _ => {
                self.pending = Some((now, Instant::now()));
                false
            }
        }
    }
}

/// Starts a thread that reloads changed files and hands each result (the entries, or why
/// the file cannot be used) to `apply`; it ends when `apply` returns `false`.
pub(crate) fn watch_files<F>(files: Vec<Watched>, mut apply: F) -> std::io::Result<()>
where
    F: FnMut(&str, Result<Vec<Target>, String>) -> bool + Send + 'static,
{
    watch(files, "rocket-allow-list-files", move |f| match f.stamp {
        // Deleted (perhaps about to be replaced): keep the last good list.
        None => apply(&f.set, Err(format!("`{}` is gone", f.path.display()))),
        Some(_) => apply(&f.set, read_list(&f.path)),
    })
}

/// Whether a changed file has gone (deleted, perhaps about to be replaced).
impl Watched {
    pub fn gone(&self) -> bool {
        self.stamp.is_none()
    }
}

/// Starts a thread (named `thread`) that hands every file that changed and then settled to
/// `changed`; it ends when `changed` returns `false`.
pub(crate) fn watch<F>(mut files: Vec<Watched>, thread: &str, mut changed: F) -> std::io::Result<()>
where
    F: FnMut(&Watched) -> bool + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    // Without a watcher (no inotify here), polling alone still finds every change.
    let watcher = notify::recommended_watcher(move |_event| {
        let _ = tx.send(());
    })
    .ok()
    .map(|mut w| {
        for f in &files {
            if let Some(dir) = f.path.parent() {
                let _ = w.watch(dir, RecursiveMode::NonRecursive);
            }
        }
        w
    });
    crate::background::spawn(thread, move || {
        let _watcher = watcher; // dropped (and stopped) with the thread
        loop {
            if rx.recv_timeout(POLL).is_ok() {
                while rx.try_recv().is_ok() {}
            }
            for f in &mut files {
                if f.settled() && !changed(f) {
                    return;
                }
            }
        }
    })?;
    Ok(())
}
