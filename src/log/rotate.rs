//! The log file on disk: whole-or-nothing appends, Python `RotatingFileHandler`-style
//! renaming (`access.log` → `.1` → … → `.N`), and recovery from changes made behind the
//! writer's back.
//!
//! Written here rather than with file-rotate 0.8, which asserts (`old_path.exists()`,
//! `!new_path.exists()`) and so kills the writer thread when a backup is deleted, the
//! directory is removed, or two processes rotate one path. Here every outside change is
//! an ordinary case: a missing backup is skipped, a missing directory or file is created
//! again, and a file renamed or deleted under the writer is noticed after each write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the writer needs from an open log file. Implemented by [`File`]; tests put a
/// double in front of it to fail writes (a full disk).
pub(crate) trait Storage: Send + 'static {
    /// One `write(2)`: may write part of `buf`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Cuts the file back to `len` bytes (to remove a torn line).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// The open file's size, link count and identity.
    fn stat(&self) -> io::Result<Stat>;
}

/// The parts of `fstat` the writer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub size: u64,
    pub nlink: u64,
    /// Device and inode: which file this is, whatever its name.
    pub id: (u64, u64),
}

impl Storage for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(self, buf)
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
    fn stat(&self) -> io::Result<Stat> {
        let m = self.metadata()?;
        Ok(Stat {
            size: m.len(),
            nlink: m.nlink(),
            id: (m.dev(), m.ino()),
        })
    }
}

/// Opens `path` for appending, creating it (and its directory, if that was removed).
pub(crate) fn open_file(path: &Path) -> io::Result<File> {
    let open = || OpenOptions::new().create(true).append(true).open(path);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            open()
        }
        other => other,
    }
}

/// How an open file can be opened again (a test double wraps the real file).
pub(crate) type Opener<S> = Box<dyn FnMut(&Path) -> io::Result<S> + Send>;

/// The live log file and its rotation.
pub(crate) struct LogFile<S: Storage> {
    path: PathBuf,
    file: S,
    open: Opener<S>,
    /// The file's size as last seen (includes other writers' lines).
    pub size: u64,
    max_bytes: u64,
    backup_count: usize,
    /// The highest backup number known to exist: rotation renames only up to it.
    highest: usize,
}

/// What [`LogFile::append`] did with a batch.
#[derive(Debug)]
pub(crate) enum Appended {
    /// Written (after reopening, if the file had been deleted or replaced).
    Written,
    /// Not written at all: no part of it is in any file.
    Lost(io::Error),
}

impl<S: Storage> LogFile<S> {
    pub fn open(
        path: PathBuf,
        mut open: Opener<S>,
        max_bytes: u64,
        backup_count: usize,
    ) -> io::Result<LogFile<S>> {
        let file = open(&path)?;
        let size = file.stat()?.size;
        // Existing backups, counted until the first gap (as far as renaming needs to go).
        let highest = (1..=backup_count)
            .take_while(|i| backup(&path, *i).exists())
            .count();
        Ok(LogFile {
            path,
            file,
            open,
            size,
            max_bytes,
            backup_count,
            highest,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a line of `len` bytes, after `pending` bytes not yet written, needs a
    /// rotation first (RotatingFileHandler's rule: before a line would make a non-empty
    /// file larger than `max_bytes`; a line is never split).
    pub fn needs_rotation(&self, pending: u64, len: u64) -> bool {
        let size = self.size + pending;
        self.backup_count > 0 && size > 0 && size + len > self.max_bytes
    }

    /// Appends `buf` (whole lines) so that it ends up whole in the live file or not at all.
    pub fn append(&mut self, buf: &[u8]) -> Appended {
        if buf.is_empty() {
            return Appended::Written;
        }
        if let Err(e) = append_whole(&mut self.file, buf) {
            // Perhaps the file or its directory is gone; a fresh one may work at once.
            return match self.reopen() {
                Ok(()) => match append_whole(&mut self.file, buf) {
                    Ok(()) => self.after_write(buf),
                    Err(e) => Appended::Lost(e),
                },
                Err(_) => Appended::Lost(e),
            };
        }
        self.after_write(buf)
    }

    /// After a write: if the file was deleted under us, the batch went nowhere, so it is
    /// written again to a new file; if it was renamed (another process rotated it), the
    /// batch is in the renamed file and the next one goes to the new file at `path`.
    fn after_write(&mut self, buf: &[u8]) -> Appended {
        let Ok(stat) = self.file.stat() else {
            return Appended::Written;
        };
        self.size = stat.size;
        let at_path = fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if stat.nlink > 0 && at_path == Some(stat.id) {
            return Appended::Written;
        }
        let deleted = stat.nlink == 0;
        if let Err(e) = self.reopen() {
            return if deleted {
                Appended::Lost(e)
            } else {
                Appended::Written
            };
        }
        if deleted {
            if let Err(e) = append_whole(&mut self.file, buf) {
                return Appended::Lost(e);
            }
            self.size = self.file.stat().map_or(self.size, |s| s.size);
        }
        Appended::Written
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file = (self.open)(&self.path)?;
        self.size = self.file.stat()?.size;
        Ok(())
    }

    /// `path.N-1` → `path.N`, …, `path` → `path.1`, then a new `path`. Missing files are
    /// skipped, so backups deleted (or rotated by another process) behind our back are fine.
    pub fn rotate(&mut self) -> io::Result<()> {
        let top = (self.highest + 1).min(self.backup_count);
        for i in (1..top).rev() {
            ignore_missing(fs::rename(backup(&self.path, i), backup(&self.path, i + 1)))?;
        }
        ignore_missing(fs::rename(&self.path, backup(&self.path, 1)))?;
        self.highest = top;
        self.reopen()
    }
}

fn backup(path: &Path, i: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Writes all of `buf` or, if that fails part-way (a full disk), cuts the file back so
/// that no torn line is left behind.
pub(crate) fn append_whole<S: Storage>(file: &mut S, buf: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < buf.len() {
        match file.write(&buf[written..]) {
            Ok(0) => {
                let e = io::Error::new(io::ErrorKind::WriteZero, "the log file took no bytes");
                return Err(undo(file, written, e));
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(undo(file, written, e)),
        }
    }
    Ok(())
}

/// Removes the `written` bytes of a failed append (appends go to the end of the file).
fn undo<S: Storage>(file: &mut S, written: usize, e: io::Error) -> io::Error {
    if written > 0 {
        if let Ok(stat) = file.stat() {
            let _ = file.truncate(stat.size.saturating_sub(written as u64));
        }
    }
    e
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn real(path: &Path) -> io::Result<File> {
        open_file(path)
    }

    fn log(dir: &Path, max: u64, backups: usize) -> LogFile<File> {
        LogFile::open(dir.join("a.log"), Box::new(real), max, backups).unwrap()
    }

    fn read(path: PathBuf) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rotates_like_rotating_file_handler() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = log(dir.path(), 10, 2);
        for line in ["1111\n", "2222\n", "3333\n", "4444\n", "5555\n"] {
            if f.needs_rotation(0, line.len() as u64) {
                f.rotate().unwrap();
            }
            assert!(matches!(f.append(line.as_bytes()), Appended::Written));
        }
        assert_eq!(read(dir.path().join("a.log")), "5555\n");
        assert_eq!(read(dir.path().join("a.log.1")), "3333\n4444\n");
        assert_eq!(read(dir.path().join("a.log.2")), "1111\n2222\n");
        assert!(!dir.path().join("a.log.3").exists());
    }

    #[test]
    fn outside_changes_are_survived() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = log(dir.path(), 5, 3);
        for i in 0..4 {
            f.rotate().unwrap();
            f.append(format!("{i}\n").as_bytes());
        }
        // A backup deleted, then the whole directory, behind the writer's back.
        fs::remove_file(dir.path().join("a.log.2")).unwrap();
        f.rotate().unwrap();
        fs::remove_dir_all(dir.path()).unwrap();
        assert!(matches!(f.append(b"after\n"), Appended::Written));
        assert_eq!(read(dir.path().join("a.log")), "after\n");
        f.rotate().unwrap();
        assert_eq!(read(dir.path().join("a.log.1")), "after\n");
    }

    /// A file on a disk that is full while `full` is set: a write takes the first 7 bytes of
    /// a longer buffer (a short write), then fails with ENOSPC.
    pub(crate) struct Flaky {
        pub file: File,
        pub full: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Storage for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst) {
                if buf.len() > 7 {
                    return Write::write(&mut self.file, &buf[..7]);
                }
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Write::write(&mut self.file, buf)
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.file.set_len(len)
        }
        fn stat(&self) -> io::Result<Stat> {
            self.file.stat()
        }
    }

    #[test]
    fn a_failed_append_leaves_no_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let full = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut flaky = Flaky {
            file: open_file(&path).unwrap(),
            full: full.clone(),
        };
        append_whole(&mut flaky, b"whole line\n").unwrap();
        full.store(true, std::sync::atomic::Ordering::SeqCst);
        let e = append_whole(&mut flaky, b"torn line\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        assert_eq!(read(path), "whole line\n");
    }
}
