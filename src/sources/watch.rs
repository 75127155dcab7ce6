//! Watching list files: the notify crate's watcher on each file's directory (so an atomic
//! replace by rename is seen), and a poll of each file's size, time and inode once a
//! second, which catches what the watcher misses and works where it cannot run.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};

use super::read_list;
use crate::rules::Target;

/// How often every file is looked at, whatever the watcher says.
const POLL: Duration = Duration::from_secs(1);

/// How long to let a burst of changes settle before reading the file.
const SETTLE: Duration = Duration::from_millis(50);

/// A list file and what it looked like when it was last read.
pub(crate) struct Watched {
    pub set: String,
    pub path: PathBuf,
    stamp: Option<Stamp>,
}

/// Size, modification time and inode: a change to any means the file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(u64, Option<SystemTime>, u64);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp(m.len(), m.modified().ok(), m.ino()))
}

impl Watched {
    /// Takes the file's stamp; call before reading it, so a change after the read is seen.
    pub fn new(set: String, path: PathBuf) -> Watched {
        let stamp = stamp(&path);
        Watched { set, path, stamp }
    }
}

/// Starts a thread that reloads changed files and hands each result (the entries, or why
/// the file cannot be used) to `apply`; it ends when `apply` returns `false`.
pub(crate) fn watch_files<F>(mut files: Vec<Watched>, mut apply: F) -> std::io::Result<()>
where
    F: FnMut(&str, Result<Vec<Target>, String>) -> bool + Send + 'static,
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
    std::thread::Builder::new()
        .name("rocket-allow-list-files".into())
        .spawn(move || {
            let _watcher = watcher; // dropped (and stopped) with the thread
            loop {
                if rx.recv_timeout(POLL).is_ok() {
                    // Let the writer finish; then one look covers the whole burst.
                    std::thread::sleep(SETTLE);
                    while rx.try_recv().is_ok() {}
                }
                for f in &mut files {
                    let now = stamp(&f.path);
                    if now == f.stamp {
                        continue;
                    }
                    f.stamp = now;
                    if now.is_none() {
                        // Deleted (perhaps about to be replaced): keep the last good list.
                        if !apply(&f.set, Err(format!("`{}` is gone", f.path.display()))) {
                            return;
                        }
                        continue;
                    }
                    if !apply(&f.set, read_list(&f.path)) {
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
