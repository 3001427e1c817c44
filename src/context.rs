//! Which thread am I on: where a call runs, decided per call.
//!
//! The table in [the guide](crate::guide#how-each-calling-context-is-served)
//! is the written form of [`placement`]; each of its rows is a test.

use std::cell::Cell;

use crate::Runtime;

/// Where one call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Right here, with the runtime's `block_on`.
    Drive,
    /// Right here, with the runtime's `block_on`, after handing the tokio
    /// worker's queue (its LIFO slot too) to another thread.
    HandOff,
    /// Right here, polled under the runtime's context, the thread parked
    /// between polls while the runtime's own threads drive it.
    Park,
    /// On a loop thread of the bridge, the caller parked until it answers.
    Hop,
}

/// What the current thread is, as far as the bridge can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) enum Here {
    /// Drives no runtime we know of.
    Plain,
    /// A task on a tokio multi_thread worker.
    Worker,
    /// Inside a tokio runtime otherwise: a current_thread runtime, a
    /// `LocalSet`, the `block_on` thread of a multi_thread runtime, a thread
    /// that entered a handle, a task of a runtime the bridge itself drives.
    InRuntime,
    /// The thread is exiting and its thread-locals are being destroyed: only
    /// the path that needs none of them is safe.
    Exiting,
}

thread_local! {
    /// How many bridged futures this thread is polling right now.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Whether the outermost of them was called on a tokio multi_thread
    /// worker (a thread to hand off before blocking). Asked while `DEPTH` is
    /// above 0, as the bridge's own runtime context, entered meanwhile,
    /// hides the truth from `Handle::try_current` both ways: a worker looks
    /// like a current_thread runtime's thread under a caller-driven
    /// runtime's context, and a current_thread task like a worker under a
    /// multi_thread runtime's.
    static OUTER_WORKER: Cell<bool> = const { Cell::new(false) };
    /// [`MARK`]'s state: it is registered once a runtime's `block_on` has
    /// run on this thread (so it is destroyed before that runtime's own
    /// thread-locals are), and flags its own destruction.
    static MARK_STATE: Cell<u8> = const { Cell::new(UNMARKED) };
    static MARK: Mark = const { Mark };
    /// Set by a wait outside the runtime's `block_on` for the `enter` that
    /// wraps it, so that the runtime knows someone else must drive it.
    static WAITING: Cell<bool> = const { Cell::new(false) };
    /// Set by a misuse panic ([`misuse`]), which `try_run` lets unwind
    /// instead of returning it as the future's panic.
    static MISUSED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the next [`Runtime::enter`] on this thread as the one a wait
/// outside `block_on` runs in.
pub(crate) fn will_wait() {
    WAITING.set(true);
}

/// Whether this `enter` wraps a wait outside `block_on` (see [`will_wait`]);
/// the flag is cleared, so that the `enter`s nested inside it see `false`.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn waiting() -> bool {
    WAITING.replace(false)
}

const UNMARKED: u8 = 0;
const MARKED: u8 = 1;
const DESTROYED: u8 = 2;

/// Flags, when destroyed, that the thread's locals are going away.
struct Mark;

impl Drop for Mark {
    fn drop(&mut self) {
        MARK_STATE.set(DESTROYED);
    }
}

/// Notes that a runtime's `block_on` has run on this thread: its
/// thread-locals exist, so from now on the end of [`MARK`] tells that they
/// may be gone.
pub(crate) fn mark_runtime_used() {
    if MARK_STATE.get() == UNMARKED && MARK.try_with(|_| ()).is_ok() {
        MARK_STATE.set(MARKED);
    }
}

/// Marks the current thread as polling a bridged future until dropped.
pub(crate) struct DepthGuard(());

impl DepthGuard {
    /// For a future polled on the caller's thread, before the bridge enters
    /// its runtime's context there.
    pub(crate) fn enter() -> Self {
        DepthGuard::with(|| tokio_here() == Here::Worker)
    }

    /// For a future polled on a thread of the bridge's own.
    pub(crate) fn on_loop_thread() -> Self {
        DepthGuard::with(|| false)
    }

    fn with(on_worker: impl FnOnce() -> bool) -> Self {
        let depth = DEPTH.get();
        if depth == 0 {
            OUTER_WORKER.set(on_worker());
        }
        DEPTH.set(depth + 1);
        DepthGuard(())
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
    }
}

/// Whether the current thread is polling a bridged future (a call made now
/// is a nested call).
pub(crate) fn nested() -> bool {
    DEPTH.get() > 0
}

/// What the current thread is.
#[inline]
pub(crate) fn here() -> Here {
    if MARK_STATE.get() == DESTROYED {
        return Here::Exiting;
    }
    tokio_here()
}

/// Decides where a call from the current thread to a bridge over `rt` runs.
#[inline]
#[track_caller]
pub(crate) fn placement<R: Runtime>(rt: &R) -> Placement {
    let here = here();
    let block_here = match here {
        Here::Exiting => return Placement::Hop,
        _ if nested() => false,
        Here::Plain | Here::Worker => rt.blocking_allowed(),
        Here::InRuntime => false,
    };
    match (here, block_here) {
        (Here::Plain, true) => Placement::Drive,
        (Here::Worker, true) => Placement::HandOff,
        _ if rt.enter(|| ()).is_some() => Placement::Park,
        _ => Placement::Hop,
    }
}

#[cfg(feature = "tokio")]
#[inline]
fn tokio_here() -> Here {
    use ::tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) => match handle.runtime_flavor() {
            RuntimeFlavor::MultiThread if ::tokio::task::try_id().is_some() => Here::Worker,
            _ => Here::InRuntime,
        },
        Err(e) if e.is_thread_local_destroyed() => Here::Exiting,
        Err(_) => Here::Plain,
    }
}

#[cfg(not(feature = "tokio"))]
#[inline]
fn tokio_here() -> Here {
    Here::Plain
}

/// `fut`, polled outside the cooperative budget of whatever tokio task the
/// caller may be running inside: a bridged call's own polls must not use up
/// that budget, whose exhaustion defers wake-ups until the task yields,
/// which a blocked caller never does (tokio#2376).
#[inline]
pub(crate) fn own_budget<F: std::future::Future>(
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    #[cfg(feature = "tokio")]
    {
        ::tokio::task::unconstrained(fut)
    }
    #[cfg(not(feature = "tokio"))]
    {
        fut
    }
}

/// Runs `f`, which blocks, on the current thread; on a tokio multi_thread
/// worker, first hands the worker's queue (its LIFO slot too) to another
/// thread, so that the tasks queued there keep running.
///
/// # Panics
///
/// Inside a tokio `LocalSet` task on a multi_thread runtime, where tokio
/// refuses to hand the thread off, panics with the crate's own message at the
/// caller's line; `f` has not run then.
#[track_caller]
pub(crate) fn hand_off<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "tokio")]
    if on_worker() {
        return worker_hand_off(f);
    }
    f()
}

/// Whether the current thread is a tokio multi_thread worker (see
/// `OUTER_WORKER` for why a bridged future's poll asks its outermost call).
#[cfg(feature = "tokio")]
#[inline]
fn on_worker() -> bool {
    if nested() {
        OUTER_WORKER.get()
    } else {
        tokio_here() == Here::Worker
    }
}

#[cfg(feature = "tokio")]
#[track_caller]
fn worker_hand_off<T>(f: impl FnOnce() -> T) -> T {
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    let mut started = false;
    let out = catch_unwind(AssertUnwindSafe(|| {
        ::tokio::task::block_in_place(|| {
            started = true;
            f()
        })
    }));
    match out {
        Ok(out) => out,
        Err(payload) if started => resume_unwind(payload),
        // tokio refused before running `f`: a task of a `LocalSet` driven on a
        // multi_thread runtime looks like a worker task but cannot hand off.
        Err(_) => misuse(format_args!(
            "executor-bridge: cannot block inside a tokio `LocalSet` task on a multi_thread \
             runtime (tokio cannot hand that thread off, and blocking it could stall the \
             tasks queued behind it); call the bridge from `tokio::task::spawn_blocking`, \
             from outside the `LocalSet`, or use a current_thread runtime for the `LocalSet`"
        )),
    }
}

/// Panics for a misuse of the bridge (a calling context it cannot serve), at
/// the caller's line. `try_run` resumes such a panic instead of returning it:
/// it is not the future's.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
#[track_caller]
pub(crate) fn misuse(message: std::fmt::Arguments<'_>) -> ! {
    MISUSED.set(true);
    panic!("{message}")
}

/// Runs `f`, catching its panic; [`misused`] then tells a misuse panic.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Box<dyn std::any::Any + Send>> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    MISUSED.set(false);
    catch_unwind(AssertUnwindSafe(f))
}

/// Whether the panic [`catch`] caught last on this thread is a misuse panic.
pub(crate) fn misused() -> bool {
    MISUSED.get()
}

/// Raises a misuse panic caught by [`catch`] again, at the caller's line.
#[track_caller]
pub(crate) fn resume_misuse(payload: Box<dyn std::any::Any + Send>) -> ! {
    match payload.downcast::<String>() {
        Ok(message) => misuse(format_args!("{message}")),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
