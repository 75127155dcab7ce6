//! The bans file: one ban a line, `network expiry version reason...` (the expiry in Unix
//! seconds, with up to three decimals, or `-` for a ban until lifted; the version
//! `ms.instance.seq`; an automatic ban's reason is `origin<TAB>reason`), and with a fleet
//! store one kept lift a line, `network lifted version keep` (`keep` an expiry as above),
//! and the store's other records (sets and modes changed at run time), `record <JSON>`.
//! The first line, [`HEADER`], says so; a file without it is the older form `network
//! expiry reason...`, whose bans are older than any versioned record.
//!
//! Read at ignite and rewritten whole by a thread of its own after changes (temporary file,
//! fsync, rename, fsync of the directory), so the file is always either the old list or
//! the new one.
//! A bans file that is a symbolic link stays one: its target is the file rewritten, in its
//! own directory. A failed save is tried again with backoff until one succeeds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::merge::Lift;
use super::version::Version;
use super::{parse_target, table::NEVER, MAX_EXPIRY_MS};

/// How a file with versions begins.
const MARK: &str = "# rocket-allow bans 2";

/// The first line of a file with versions.
pub(super) const HEADER: &str =
    "# rocket-allow bans 2: network expiry version reason | network lifted version keep\n";

/// One line of the file.
pub(super) struct Line {
    pub target: IpNet,
    /// Unix ms, or [`NEVER`].
    pub expires: u64,
    pub version: Version,
    pub reason: Option<String>,
    /// A kept lift rather than a ban.
    pub lift: Option<Lift>,
}

/// What a file holds: bans and lifts, and the fleet store's other records (`record <JSON>`
/// lines: sets and modes changed at run time, kept as the store gave them).
#[derive(Default)]
pub(super) struct Contents {
    pub lines: Vec<Line>,
    pub records: Vec<String>,
}

/// Reads the file (missing: no bans). An expiry past what a date can show is a ban until
/// lifted; a leading byte-order mark is skipped.
pub(super) fn read(path: &Path) -> Result<Contents, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let versioned = text.starts_with(MARK);
    let mut records = Vec::new();
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .filter(|(_, l)| match l.strip_prefix("record ") {
            Some(record) if versioned => {
                records.push(record.to_string());
                false
            }
            _ => true,
        })
        .map(|(i, line)| {
            let bad = |m: &str| format!("{}:{}: `{line}`: {m}", path.display(), i + 1);
            let mut parts = line.splitn(if versioned { 4 } else { 3 }, ' ');
            let target = parse_target(parts.next().unwrap_or("")).map_err(|m| bad(&m))?;
            let second = parts.next();
            let version = if versioned {
                let text = parts.next().unwrap_or("");
                Version::parse(text).ok_or_else(|| bad("the version is not `ms.instance.seq`"))?
            } else {
                Version::ZERO
            };
            let expiry = |text: Option<&str>| match text {
                Some("-") | None => Ok(NEVER),
                Some(secs) => {
                    parse_expiry(secs).ok_or_else(|| bad("expiry is not a number of seconds"))
                }
            };
            if versioned && second == Some("lifted") {
                let keep = expiry(parts.next())?;
                return Ok(Line {
                    target,
                    expires: 0,
                    version,
                    reason: None,
                    lift: Some(Lift { version, keep }),
                });
            }
            let expires = expiry(second)?;
            // A tab separates an automatic ban's origin from its reason.
            let reason = parts
                .next()
                .map(|r| r.replacen('\t', "\u{1f}", 1))
                .filter(|r| !r.is_empty());
            Ok(Line {
                target,
                expires,
                version,
                reason,
                lift: None,
            })
        })
        .collect::<Result<Vec<Line>, String>>()?;
    Ok(Contents { lines, records })
}

/// Appends one of the fleet store's other records (one line of JSON).
pub(super) fn write_record(out: &mut String, record: &str) {
    out.push_str("record ");
    // JSON text holds no line break; anything else that would break the line is dropped.
    out.extend(record.chars().filter(|c| *c != '\n' && *c != '\r'));
    out.push('\n');
}

/// Unix seconds, with up to three decimals (`1796139510` or `1796139510.25`), as Unix ms;
/// past [`MAX_EXPIRY_MS`], [`NEVER`].
fn parse_expiry(text: &str) -> Option<u64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || frac.len() > 3 || !digits(frac) {
        return None;
    }
    let ms = format!("{frac:0<3}").parse::<u64>().ok()?;
    // Too many digits for a u64 is past any date too.
    let secs: u64 = secs.parse().unwrap_or(u64::MAX);
    Some(
        secs.checked_mul(1000)
            .and_then(|s| s.checked_add(ms))
            .filter(|&at| at <= MAX_EXPIRY_MS)
            .unwrap_or(NEVER),
    )
}

/// Appends an expiry (Unix ms) as seconds, `-` for never.
fn write_expiry(out: &mut String, expires: u64) {
    use std::fmt::Write as _;
    if expires == NEVER {
        out.push('-');
    } else {
        let _ = write!(out, "{}", expires / 1000);
        if !expires.is_multiple_of(1000) {
            let _ = write!(out, ".{:03}", expires % 1000);
        }
    }
}

/// Appends one line for a kept lift.
pub(super) fn write_lift(out: &mut String, target: IpNet, lift: &Lift) {
    use std::fmt::Write as _;
    let _ = write!(out, "{target} lifted {} ", lift.version.text());
    write_expiry(out, lift.keep);
    out.push('\n');
}

/// Appends one line for a ban, its expiry to the millisecond.
pub(super) fn write_line(
    out: &mut String,
    target: IpNet,
    expires: u64,
    version: Version,
    reason: Option<&str>,
) {
    use std::fmt::Write as _;
    let _ = write!(out, "{target} ");
    write_expiry(out, expires);
    let _ = write!(out, " {} ", version.text());
    // A reason cannot break the line it is on; an origin is kept apart by a tab.
    out.extend(reason.unwrap_or("").chars().map(|c| match c {
        '\u{1f}' => '\t',
        c if c.is_control() => ' ',
        c => c,
    }));
    out.push('\n');
}

/// Links followed at most, as the kernel does (`ELOOP` past 40).
const MAX_LINKS: usize = 40;

/// The file a save replaces: `path`, or, when `path` is a symbolic link, what it links to
/// (link by link, a relative one from its link's directory). A bans file linked to a file
/// on a persistent volume stays a link, and the volume's file is the one that changes.
/// Followed at every save, so a link pointed elsewhere while the app runs is followed too;
/// a link to a file not made yet makes it.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::read_link(&at) {
            // `join` keeps an absolute link as it is.
            Ok(to) => at = at.parent().map_or_else(|| to.clone(), |dir| dir.join(&to)),
            // Not a link (`EINVAL`), or nothing there yet: this is the file.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::NotFound
                ) =>
            {
                return Ok(at)
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links"
    )))
}

/// Writes `text` to a temporary file beside the file `path` names (the link's target, if it
/// is a link), fsyncs it, renames it over that file and fsyncs its directory. The error
/// says which step failed.
fn save(path: &Path, text: &str) -> Result<(), String> {
    let target = resolve(path).map_err(|e| format!("cannot follow the link: {e}"))?;
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        // What was written of it, if anything (a directory in its place stays).
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write `{}`: {e}", tmp.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "cannot rename `{}` to `{}`: {e}",
            tmp.display(),
            target.display()
        ));
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync the directory `{}`: {e}", dir.display()))?;
    }
    Ok(())
}

/// The least time between two saves that no flush asked for: under a storm of bans the
/// file is rewritten about once a second, not once per ban.
const MIN_PACE: Duration = Duration::from_secs(1);

/// After a failed save, the thread tries again this much later, doubling up to
/// [`MAX_RETRY`] while it keeps failing, without waiting for another change.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A save failing with the same error is logged again at most this often.
const LOG_AGAIN: Duration = Duration::from_secs(60);

/// How long a flush waits for the disk before it gives up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Hands changes to the saving thread, and waits for it on request.
pub(super) struct Saver(Arc<State>);

struct State {
    /// Changes made so far (a sequence number).
    changed: AtomicU64,
    /// The thread waits for a change: the next one wakes it.
    idle: AtomicBool,
    progress: Mutex<Progress>,
    wake: Condvar,
}

struct Progress {
    /// Every change up to this one was in a save the thread tried.
    attempted: u64,
    /// Every change up to this one is on disk.
    saved: u64,
    /// A flush waits for this change.
    flush_to: u64,
    /// Why the last save failed; `None` once one succeeded.
    error: Option<String>,
}

impl Saver {
    /// Starts the thread that saves to `path` the text `snapshot` gives. Saves are paced
    /// (at least a second apart, and writing a big table takes at most a tenth of one
    /// core), unless a flush waits; a failed save is tried again, 100 ms later and then
    /// twice as long each time up to 5 s, until one succeeds. Once the `Saver` is dropped,
    /// the thread tries once more to save what is left and ends.
    pub fn start(
        path: PathBuf,
        snapshot: impl Fn() -> String + Send + 'static,
    ) -> Result<Saver, String> {
        let state = Arc::new(State {
            changed: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            progress: Mutex::new(Progress {
                attempted: 0,
                saved: 0,
                flush_to: 0,
                error: None,
            }),
            wake: Condvar::new(),
        });
        let st = state.clone();
        // Normal priority: it reads the table under the shards' locks, which a thread at
        // background priority could hold while preempted.
        std::thread::Builder::new()
            .name("rocket-allow-bans".into())
            .spawn(move || {
                let mut next_allowed = Instant::now();
                let mut retry = FIRST_RETRY;
                let mut failed = 0u64;
                let mut logged: Option<(String, Instant)> = None;
                while let Some((target, last)) = st.next_change(next_allowed) {
                    let started = Instant::now();
                    let result = save(&path, &snapshot())
                        .map_err(|e| format!("`{}`: {e}", path.display()));
                    // Writing a big table takes at most a tenth of a core, failed or not.
                    let cost = started.elapsed() * 9;
                    match &result {
                        Ok(()) => {
                            if failed > 0 {
                                log::warn!(target: "rocket_allow",
                                    "rocket-allow: bans saved to `{}` again, after {failed} failed attempts",
                                    path.display());
                            }
                            (failed, retry, logged) = (0, FIRST_RETRY, None);
                            next_allowed = Instant::now() + cost.max(MIN_PACE);
                        }
                        Err(e) => {
                            let again = logged.as_ref().is_some_and(|(was, at)| {
                                was == e && at.elapsed() < LOG_AGAIN
                            });
                            if !again {
                                log::error!(target: "rocket_allow",
                                    "rocket-allow: cannot save bans to {e} (trying again in {} ms)",
                                    cost.max(retry).as_millis());
                                logged = Some((e.clone(), Instant::now()));
                            }
                            failed += 1;
                            next_allowed = Instant::now() + cost.max(retry);
                            retry = (retry * 2).min(MAX_RETRY);
                        }
                    }
                    let mut p = st.progress.lock().unwrap_or_else(|e| e.into_inner());
                    p.attempted = p.attempted.max(target);
                    if result.is_ok() {
                        p.saved = p.saved.max(target);
                    }
                    p.error = result.err();
                    st.wake.notify_all();
                    drop(p);
                    if last {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the thread that saves bans: {e}"))?;
        Ok(Saver(state))
    }

    /// Says that the bans changed (after the change).
    pub fn changed(&self) {
        self.0.changed.fetch_add(1, Ordering::SeqCst);
        if self.0.idle.swap(false, Ordering::SeqCst) {
            self.0.wake.notify_all();
        }
    }

    /// Waits until every change made before the call was in a save the thread tried (one
    /// not tried yet is tried at once), then answers from the state: `Ok` when those
    /// changes are on disk (a later save succeeded, even if the first failed), the error of
    /// the last save otherwise.
    pub fn flush(&self) -> Result<(), String> {
        let target = self.0.changed.load(Ordering::SeqCst);
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let mut p = self.0.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.flush_to = p.flush_to.max(target);
        self.0.wake.notify_all();
        while p.attempted < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let mut e = format!("not saved within {} s", FLUSH_TIMEOUT.as_secs());
                if let Some(last) = &p.error {
                    e = format!("{e}; the last save failed: {last}");
                }
                return Err(e);
            }
            p = self
                .0
                .wake
                .wait_timeout(p, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if p.saved >= target {
            return Ok(());
        }
        Err(p.error.clone().unwrap_or_else(|| "not saved yet".into()))
    }
}

impl State {
    /// Waits for a change to save (or a failed save to try again), allowed now by the pace
    /// or the retry's delay, asked for by a flush (changes not tried yet), or left when the
    /// app is gone; the change to save up to, and whether this is the last try (the app is
    /// gone). `None` when the app is gone and everything is saved.
    fn next_change(self: &Arc<State>, next_allowed: Instant) -> Option<(u64, bool)> {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let gone = Arc::strong_count(self) == 1;
            let changed = self.changed.load(Ordering::SeqCst);
            let now = Instant::now();
            if changed > p.saved && (gone || p.flush_to > p.attempted || now >= next_allowed) {
                return Some((changed, gone));
            }
            if gone {
                return None;
            }
            self.idle.store(true, Ordering::SeqCst);
            // The timeout covers a change whose wake-up came between the look and the wait.
            let wait = if changed > p.saved {
                next_allowed.saturating_duration_since(now)
            } else {
                Duration::from_millis(200)
            };
            p = self
                .wake
                .wait_timeout(p, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_followed_to_the_file_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("vol")).unwrap();
        // bans.txt -> vol/a (relative) -> <abs>/vol/b (absolute, not made yet).
        std::os::unix::fs::symlink("vol/a", d.join("bans.txt")).unwrap();
        std::os::unix::fs::symlink(d.join("vol/b"), d.join("vol/a")).unwrap();
        assert_eq!(resolve(&d.join("bans.txt")).unwrap(), d.join("vol/b"));
        save(&d.join("bans.txt"), "x\n").unwrap();
        assert_eq!(std::fs::read_to_string(d.join("vol/b")).unwrap(), "x\n");
        assert!(d.join("vol/a").symlink_metadata().unwrap().is_symlink());
        // A plain file is itself; a loop is an error, not a hang.
        assert_eq!(resolve(&d.join("vol/b")).unwrap(), d.join("vol/b"));
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        assert!(save(&d.join("loop"), "x\n").is_err());
    }

    #[test]
    fn expiries_round_trip_to_the_millisecond() {
        for ms in [0, 1, 999, 1000, 1_796_139_510_250, MAX_EXPIRY_MS, NEVER] {
            let mut line = String::new();
            write_line(
                &mut line,
                "192.0.2.1/32".parse().unwrap(),
                ms,
                Version::ZERO,
                Some("a\nb"),
            );
            let expiry = line.split(' ').nth(1).unwrap();
            let back = if expiry == "-" {
                NEVER
            } else {
                parse_expiry(expiry).unwrap()
            };
            assert_eq!(back, ms, "{line}");
            assert!(line.ends_with(" a b\n"), "{line}");
        }
        assert_eq!(parse_expiry("9999999999999"), Some(NEVER));
        assert_eq!(parse_expiry("184467440737095516150"), Some(NEVER));
        for bad in ["", "-1", "1.2345", "x", "1e3", ".5", "+1"] {
            assert_eq!(parse_expiry(bad), None, "{bad}");
        }
    }
}
