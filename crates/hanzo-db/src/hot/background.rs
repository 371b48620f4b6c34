//! Graph work (first builds and folding new rows in) runs on its own
//! threads at the lowest priority (`SCHED_IDLE`, and nice 10 where that
//! policy is refused), so the searches and writes that matter to a caller
//! go first when the cores are busy; the graph work still gets every idle
//! cycle. Measured at 768 dimensions on 2 cores, folding took about half of
//! the CPU while 8 writers inserted one record at a time. At nice 10 alone,
//! a writer woken by its `fsync` can wait for a graph thread to run out its
//! time slice; under `SCHED_IDLE` it preempts it at once (8 durable writers
//! after a 10,000-row load, three runs each: 17.3k → 21.8k inserts/s).

use tokio::sync::oneshot;

/// The nice value of graph threads (0 is normal, 19 the lowest priority),
/// kept under `SCHED_IDLE` and used alone where that policy is refused.
const NICE: i32 = 10;

/// Runs `f` on a new thread of lower priority; its result comes back
/// through the receiver (an error there means it panicked). Threads `f` starts inherit the priority. (A thread of
/// tokio's blocking pool would keep the lower priority for whatever it runs
/// next: an unprivileged thread cannot raise its priority again.)
pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<oneshot::Receiver<T>> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })?;
    Ok(rx)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_priority() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: `setpriority` takes plain integers and touches no memory of
    // ours; on Linux, PRIO_PROCESS with a thread id sets that thread only.
    // Failing leaves the thread at normal priority, which is harmless.
    unsafe {
        nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, NICE);
    }
    // SCHED_IDLE: a waking thread of normal policy preempts this one at
    // once, where the scheduler would otherwise let it run out its slice.
    let param = nix::libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call; with a thread id
    // this sets that thread's policy only. Failing leaves the nice value.
    unsafe {
        nix::libc::sched_setscheduler(tid, nix::libc::SCHED_IDLE, &param);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_thread_runs_at_lower_priority_and_the_caller_does_not() {
        let nice = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            // Field 19 (after the parenthesised name) is the nice value.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse::<i32>().unwrap()
        };
        // Field 41 is the scheduling policy (5: SCHED_IDLE).
        let policy = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(38).unwrap().parse::<i32>().unwrap()
        };
        let before = (nice(), policy());
        let rx = super::spawn("test-graph", move || {
            let child = std::thread::spawn(move || (nice(), policy()));
            ((nice(), policy()), child.join().unwrap())
        });
        let rx = rx.unwrap();
        let (inside, child) = rx.blocking_recv().unwrap();
        assert_eq!(inside.0, (before.0 + super::NICE).min(19));
        assert_eq!(inside.1, nix::libc::SCHED_IDLE);
        assert_eq!(child, inside, "threads it starts inherit both");
        assert_eq!((nice(), policy()), before);
    }
}
