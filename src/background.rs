//! Threads for work off the request path that takes no lock a request waits on
//! (recompiling after a list or DNS change), started at the lowest CPU priority the OS gives without privileges
//! (`SCHED_IDLE` on Linux). On a busy core they take what the request threads leave instead
//! of an equal share: a 1,000,000-line list recompiled every 2 s on the server's one core
//! tripled the requests' p99 at normal priority.

use std::io;
use std::thread::JoinHandle;

/// Spawns `f` on a thread named `name`, at background priority.
pub(crate) fn spawn<F, T>(name: &str, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_priority();
            f()
        })
}

/// How the threads of [`run`] and [`alongside`] are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// The lowest priority: only the CPU the request threads leave.
    Background,
    /// The process's own, for work that must not wait for idle time.
    Normal,
}

/// Runs `f` on a thread of its own at `priority` and waits for it: for heavy work the
/// calling thread has to wait for anyway (a full read of the fleet store), which then
/// takes only the CPU the request threads leave.
pub(crate) fn run<T: Send>(
    name: &str,
    priority: Priority,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    alongside(name, priority, f, || ()).map(|(t, ())| t)
}

/// Runs `work` on a thread of its own at `priority` while `here` runs on the calling
/// thread, and returns both results: for heavy work that can overlap with what the calling
/// thread waits on (decoding the pages of a full read while the next is fetched).
pub(crate) fn alongside<A: Send, B>(
    name: &str,
    priority: Priority,
    work: impl FnOnce() -> A + Send,
    here: impl FnOnce() -> B,
) -> io::Result<(A, B)> {
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, || {
                if priority == Priority::Background {
                    lower_priority();
                }
                work()
            })?;
        let b = here();
        let a = worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((a, b))
    })
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    // SCHED_IDLE rather than nice 19: measured on one pinned core, nice 19 still showed in
    // the requests' p99; SCHED_IDLE runs only on time no request thread wants.
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    // Not fatal: the work still gets done at normal priority.
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
    {
        log::debug!(target: "rocket_allow", "rocket-allow: background priority not set: {e:?}");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
}
