//! Where a call runs: what the calling thread is, the placement that follows
//! from it, and the two ways of running a call in place.
//!
//! Read top to bottom: [`here`] tells what the thread is, [`placement`]
//! decides, [`in_place`] runs a call on the caller's thread (the hop to a
//! loop thread lives with the pool's jobs, in `bridge.rs` and `local.rs`).
//! The table in [the README](crate#how-each-calling-context-is-served) is
//! the written form of [`placement`]; each of its rows is a test.
//!
//! The rule: a future runs on the caller's thread only where nothing of the
//! caller's own runtime can leak into it: on a thread that runs no tokio
//! runtime, and (for the [`Tokio`](crate::Tokio) adapter, whose context
//! replaces the caller's) on a multi_thread worker once its queue was handed
//! to another thread. Everywhere else the future runs on a loop thread of
//! the bridge, which runs nothing else: what the future sees (tokio's
//! `yield_now`, `spawn_local`, `block_in_place`, the current runtime) is what
//! it sees from a plain thread.

use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use crate::relay::{self, Relay};
use crate::Runtime;

// ===== What the current thread is =====

/// What the current thread is, as far as the bridge can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) enum Here {
    /// Runs no tokio runtime.
    Plain,
    /// A tokio multi_thread worker: blocking it needs a hand-off first.
    Worker,
    /// Inside a tokio runtime otherwise: a current_thread runtime or a task
    /// of one, a `LocalSet`, the `block_on` thread of a multi_thread
    /// runtime, a `spawn_blocking` thread, a thread that entered a handle.
    InRuntime,
    /// The thread is exiting and its thread-locals are being destroyed.
    Exiting,
}

thread_local! {
    /// How many bridged futures this thread is polling right now.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Whether the outermost of them was called on a tokio multi_thread
    /// worker: the bridge's own runtime context, entered meanwhile, hides
    /// the thread's kind from the checks of [`tokio_here`].
    static OUTER_WORKER: Cell<bool> = const { Cell::new(false) };
    /// [`MARK`]'s state: it is registered once a runtime's `block_on` has
    /// run on this thread (so it is destroyed before that runtime's own
    /// thread-locals are), and flags its own destruction.
    static MARK_STATE: Cell<u8> = const { Cell::new(UNMARKED) };
    static MARK: Mark = const { Mark };
    /// Set by a misuse panic ([`misuse`]), which `try_run` lets unwind
    /// instead of returning it as the future's panic.
    static MISUSED: Cell<bool> = const { Cell::new(false) };
    /// Set while [`drop_in`] drops a user's value: a drop blocks nothing, so
    /// a runtime's `enter` does not refuse the context then.
    static DROPPING: Cell<bool> = const { Cell::new(false) };
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

/// What the current thread is.
#[inline]
pub(crate) fn here() -> Here {
    if MARK_STATE.get() == DESTROYED {
        return Here::Exiting;
    }
    tokio_here()
}

/// Whether the current thread is polling a bridged future (a call made now
/// is a nested call).
pub(crate) fn nested() -> bool {
    DEPTH.get() > 0
}

/// What the current thread is as far as tokio goes.
///
/// A worker is told by tokio's scheduler (`worker_index`), not by the
/// current handle, which a task may have changed with `Handle::enter`. Only
/// worker 0 of a multi_thread runtime and a current_thread runtime's thread
/// look alike (both index 0); there the current handle's flavor decides, and
/// where a handle may hide the truth (a multi_thread handle entered by a
/// current_thread task, a bridge's own handle entered by a worker task), one
/// empty `block_in_place` asks tokio itself, once per thread and runtime.
#[cfg(feature = "tokio")]
#[inline]
fn tokio_here() -> Here {
    use ::tokio::runtime::{Handle, RuntimeFlavor};
    let handle = match Handle::try_current() {
        Ok(handle) => handle,
        Err(e) if e.is_thread_local_destroyed() => return Here::Exiting,
        Err(_) => return Here::Plain,
    };
    match ::tokio::runtime::worker_index() {
        None => Here::InRuntime,
        Some(index) if index > 0 => Here::Worker,
        Some(_) => match handle.runtime_flavor() {
            RuntimeFlavor::MultiThread => probe_worker(&handle),
            _ if crate::adapters::tokio::driven_elsewhere(&handle) => probe_worker(&handle),
            _ => Here::InRuntime,
        },
    }
}

#[cfg(not(feature = "tokio"))]
#[inline]
fn tokio_here() -> Here {
    Here::Plain
}

#[cfg(feature = "tokio")]
thread_local! {
    /// The runtime (by the current handle's id) whose scheduler this thread
    /// was found to be a multi_thread worker of, or not, by [`probe_worker`].
    static PROBED: Cell<Option<(::tokio::runtime::Id, Here)>> = const { Cell::new(None) };
}

/// Asks tokio whether this thread, scheduler index 0 under `handle`, is a
/// multi_thread worker: tokio hands a worker's queue off in
/// `block_in_place`, and refuses (panics) on a current_thread runtime's
/// thread. The answer is kept for the thread and handle.
#[cfg(feature = "tokio")]
#[cold]
fn probe_worker(handle: &::tokio::runtime::Handle) -> Here {
    let id = handle.id();
    if let Some((probed, here)) = PROBED.get() {
        if probed == id {
            return here;
        }
    }
    let here = match catch_unwind(|| ::tokio::task::block_in_place(|| ())) {
        Ok(()) => Here::Worker,
        Err(_) => Here::InRuntime,
    };
    PROBED.set(Some((id, here)));
    here
}

// ===== Where a call runs =====

/// Where one call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Right here, with the runtime's `block_on`.
    Drive,
    /// Right here, with the runtime's `block_on`, after handing the tokio
    /// worker's queue (its LIFO slot too) to another thread.
    HandOff,
    /// On a loop thread of the bridge, the caller asleep until it answers.
    Hop,
}

/// Where a call from the current thread to a bridge over `rt` runs, without
/// any check: for values dropped where their calls would run.
#[inline]
pub(crate) fn placement_of<R: Runtime>(rt: &R) -> Placement {
    decide(rt, here())
}

/// Decides where a call from the current thread to a bridge over `rt` runs,
/// after the runtime had its say on the calling context: a call it refuses
/// (a task of the bridge's own caller-driven runtime, `SmolExecutor`'s own
/// thread) panics here, at the caller's line, whatever the entry point.
#[inline]
#[track_caller]
pub(crate) fn placement<R: Runtime>(rt: &R) -> Placement {
    let here = here();
    let placement = decide(rt, here);
    if placement == Placement::Hop && here != Here::Exiting {
        let _ = rt.enter(|| ());
    }
    placement
}

fn decide<R: Runtime>(rt: &R, here: Here) -> Placement {
    match here {
        Here::Exiting => Placement::Hop,
        _ if nested() => Placement::Hop,
        Here::Plain if rt.blocking_allowed() => Placement::Drive,
        Here::Worker if sets_tokio_context::<R>() => Placement::HandOff,
        _ => Placement::Hop,
    }
}

/// Lets the runtime refuse the calling context (its `enter` panics there);
/// for the waits that run no future of their own (a stream's next item, a
/// writer's or a sink's hand-over), which must refuse what calls refuse.
#[inline]
#[track_caller]
pub(crate) fn check<R: Runtime>(rt: &R) {
    if here() != Here::Exiting {
        let _ = rt.enter(|| ());
    }
}

/// Whether `R`'s context replaces the caller's tokio context: only then may
/// a worker run its future in place. Any other runtime's future would see
/// the worker's runtime as its own (a tokio timer made there would bind to
/// it, where from a plain thread it finds no reactor).
#[inline]
#[cfg_attr(not(feature = "tokio"), allow(clippy::extra_unused_type_parameters))]
fn sets_tokio_context<R: Runtime>() -> bool {
    #[cfg(feature = "tokio")]
    {
        use std::any::TypeId;
        let r = TypeId::of::<R>();
        r == TypeId::of::<crate::Tokio>() || r == TypeId::of::<std::sync::Arc<crate::Tokio>>()
    }
    #[cfg(not(feature = "tokio"))]
    {
        false
    }
}

// ===== Running in place =====

/// Runs `fut` to completion on this thread, as `placement` (not a hop)
/// says: one poll under the runtime's context (a ready future costs no
/// more), then the runtime's `block_on`, after a hand-off on a worker. The
/// future is dropped under the runtime's context too, on every path.
#[track_caller]
pub(crate) fn in_place<R: Runtime, F: Future>(rt: &R, placement: Placement, fut: F) -> F::Output {
    let _depth = DepthGuard::enter(placement == Placement::HandOff);
    let first_poll = relay::Taken::from(&FIRST_POLL);
    let mut fut = pin!(InContext {
        rt,
        fut: Some(own_budget(fut)),
        first: None,
    });
    let first = rt.enter(|| {
        fut.as_mut()
            .poll(&mut Context::from_waker(first_poll.waker()))
    });
    match first {
        Some(Poll::Ready(out)) => return out,
        Some(Poll::Pending) => *fut.as_mut().project().first = Some(first_poll.relay()),
        None => {}
    }
    wait_in_place(rt, placement, fut)
}

/// The wait of [`in_place`], over the future behind a pointer: compiled once
/// per runtime and output type, not once per call site, for one indirect
/// call per poll.
fn wait_in_place<R: Runtime, T>(
    rt: &R,
    placement: Placement,
    mut fut: Pin<&mut dyn Future<Output = T>>,
) -> T {
    match placement {
        Placement::Drive => {
            let out = rt.block_on(fut.as_mut());
            mark_runtime_used();
            out
        }
        Placement::HandOff => hand_off(|| rt.block_on(fut.as_mut())),
        Placement::Hop => unreachable!("a hop does not run in place"),
    }
}

pin_project_lite::pin_project! {
    /// A future run in place, dropped under its runtime's context: as soon
    /// as it completes, or when the call unwinds.
    struct InContext<'r, R: Runtime, F> {
        rt: &'r R,
        #[pin]
        fut: Option<F>,
        // After a first poll outside `block_on`: the waker it was given.
        first: Option<&'r Relay>,
    }

    impl<R: Runtime, F> PinnedDrop for InContext<'_, R, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.fut.is_some() {
                // Run in place: this thread may block, and gives the context.
                drop_in(*this.rt, true, &mut Some(|| this.fut.set(None)));
            }
        }
    }
}

impl<R: Runtime, F: Future> Future for InContext<'_, R, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if let Some(first) = this.first.take() {
            // `block_on`'s first poll: what the first poll registered wakes
            // this waker now; poll again only once something did.
            if !first.relay_to(cx.waker()) {
                return Poll::Pending;
            }
        }
        let fut = this
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("polled after completion");
        let out = fut.poll(cx);
        if out.is_ready() {
            // Still inside the runtime's context.
            this.fut.set(None);
        }
        out
    }
}

thread_local! {
    /// The relay of a call's first poll, made before the runtime's
    /// `block_on` has a waker of its own: a wake-up is kept until that waker
    /// is known, and passed on to it after. So what the first poll registers
    /// (a lock's list of waiters, a channel's) holds a waker that works, and
    /// `block_on` does not poll again at once, which could race with an
    /// operation the first poll started (a lost wake-up of async-std's file
    /// lock was seen that way). Reused by the calls of this thread.
    static FIRST_POLL: relay::Slot = const { Cell::new(None) };
}

/// Runs `drop`, which drops a user's value, on this thread under `rt`'s
/// context: inside its `enter`, or, for a runtime without one and where
/// `may_block` (the thread may run `block_on`), inside its `block_on`. Takes
/// `drop` out of its option if it ran; leaves it there if this thread
/// cannot give it the runtime's context. During an unwind, a panic of the
/// destructor is swallowed: a second panic would abort the process.
pub(crate) fn drop_in<R: Runtime, D: FnOnce()>(rt: &R, may_block: bool, drop: &mut Option<D>) {
    drop_in_dyn(rt, may_block, &mut || {
        if let Some(drop) = drop.take() {
            drop();
        }
    });
}

/// [`drop_in`] over a closure behind a pointer (compiled once per runtime):
/// `drop` runs the destructor the first time it is called.
fn drop_in_dyn<R: Runtime>(rt: &R, may_block: bool, drop: &mut dyn FnMut()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = DROPPING.try_with(|d| d.set(false));
        }
    }
    let mut run = || {
        let _reset = Reset;
        let _ = DROPPING.try_with(|d| d.set(true));
        let entered = rt.enter(&mut *drop);
        if entered.is_none() && may_block {
            rt.block_on(async { drop() });
        }
    };
    if std::thread::panicking() {
        let _ = catch_unwind(AssertUnwindSafe(run));
    } else {
        run();
    }
}

/// Whether this thread is dropping a user's value for the bridge (see
/// [`drop_in`]): a runtime's `enter` must not refuse the context then.
#[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
pub(crate) fn dropping() -> bool {
    DROPPING.try_with(Cell::get).unwrap_or(false)
}

/// Marks the current thread as polling a bridged future until dropped.
pub(crate) struct DepthGuard(());

impl DepthGuard {
    /// For a future polled on the caller's thread; `on_worker` if the
    /// thread is a tokio multi_thread worker.
    pub(crate) fn enter(on_worker: bool) -> Self {
        let depth = DEPTH.get();
        if depth == 0 {
            OUTER_WORKER.set(on_worker);
        }
        DEPTH.set(depth + 1);
        DepthGuard(())
    }

    /// For a future polled on a thread of the bridge's own.
    pub(crate) fn on_loop_thread() -> Self {
        DepthGuard::enter(false)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
    }
}

/// `fut`, polled outside the cooperative budget of whatever tokio task the
/// caller may be running inside: a bridged call's own polls must not use up
/// that budget, whose exhaustion defers wake-ups until the task yields,
/// which a blocked caller never does (tokio#2376).
#[inline]
pub(crate) fn own_budget<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    #[cfg(feature = "tokio")]
    {
        ::tokio::task::unconstrained(fut)
    }
    #[cfg(not(feature = "tokio"))]
    {
        fut
    }
}

// ===== Blocking a thread =====

/// Runs `f`, which blocks, on the current thread; on a tokio multi_thread
/// worker, first hands the worker's queue (its LIFO slot too) to another
/// thread, so that the tasks queued there keep running.
///
/// # Panics
///
/// Where tokio refuses the hand-off (a thread the bridge took for a worker
/// that is none), panics with the crate's own message at the caller's line;
/// `f` has not run then.
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
        here() == Here::Worker
    }
}

#[cfg(feature = "tokio")]
#[track_caller]
fn worker_hand_off<T>(f: impl FnOnce() -> T) -> T {
    use std::panic::resume_unwind;
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
        Err(_) => misuse(format_args!(
            "executor-bridge: tokio refused to hand this thread off before blocking it \
             (`block_in_place`): it runs a tokio scheduler the bridge cannot block; call the \
             bridge from `tokio::task::spawn_blocking` or outside the runtime"
        )),
    }
}

// ===== Misuse =====

/// Panics for a misuse of the bridge (a calling context it cannot serve), at
/// the caller's line. `try_run` resumes such a panic instead of returning it:
/// it is not the future's.
#[track_caller]
pub(crate) fn misuse(message: std::fmt::Arguments<'_>) -> ! {
    MISUSED.set(true);
    panic!("{message}")
}

/// Runs `f`, catching its panic; [`misused`] then tells a misuse panic.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Box<dyn std::any::Any + Send>> {
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
