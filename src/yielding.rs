//! CPU work that yields the processor to requests.
//!
//! An admin reviewing a promotion makes the server build and compare
//! GraphQL schemas: tens of milliseconds of CPU per diff, asked for again
//! and again while a change is being prepared. Run on the request threads,
//! that work takes its share of the cores from production reads and
//! writes. [`compute`] runs it instead on a few threads of lower scheduling
//! priority (nice 10, about a tenth of a request thread's share when both
//! want a core): requests get the CPU first, and when nothing else runs the
//! work goes at full speed.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Threads running such work: two at once; more wait their turn.
const THREADS: usize = 2;

/// Their niceness (0 is a request thread's; 19 the lowest priority).
const NICENESS: i32 = 10;

/// Runs `work` on a low-priority thread and waits for its result; a panic
/// in `work` is raised again here.
pub async fn compute<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(work)));
    });
    if let Err(mpsc::SendError(job)) = queue().send(job) {
        // No thread could be started: run it here, at the usual priority.
        job();
    }
    match rx.await {
        Ok(Ok(result)) => result,
        Ok(Err(panicked)) => panic::resume_unwind(panicked),
        Err(_) => panic!("a yielding thread dropped its work"),
    }
}

/// The queue the threads take work from, started on first use.
fn queue() -> &'static mpsc::Sender<Job> {
    static QUEUE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..THREADS {
            let rx = rx.clone();
            let started = std::thread::Builder::new()
                .name(format!("crm-yielding-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { return };
                        job();
                    }
                });
            if let Err(err) = started {
                tracing::warn!("cannot start a low-priority thread: {err}");
            }
        }
        tx
    })
}

/// Lowers this thread's scheduling priority (Linux schedules threads, so
/// the rest of the process keeps its own).
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: gettid and setpriority have no memory-safety preconditions.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS) != 0
    };
    if failed {
        tracing::warn!("cannot lower a thread's priority: {}", std::io::Error::last_os_error());
    }
}
