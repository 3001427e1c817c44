//! Which thread am I on: the per-call dispatch decision.
//!
//! | calling thread | placement |
//! |---|---|
//! | drives no runtime we know of (plain thread, `spawn_blocking` of a multi_thread runtime) | [`Placement::Inline`] |
//! | a task on a tokio multi_thread runtime | [`Placement::HandOff`] |
//! | a tokio current_thread runtime, a `LocalSet`, a multi_thread runtime's `block_on` thread | [`Placement::Hop`] |
//! | inside a future the bridge is running (a nested call) | [`Placement::Hop`] |

use std::cell::Cell;

/// How one call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Right here, on the caller's thread.
    Inline,
    /// Right here, after handing the tokio worker's queue to another thread
    /// (`block_in_place`), should the future not be ready at once.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    HandOff,
    /// On a pooled loop thread, the caller parked until it answers.
    Hop,
}

thread_local! {
    /// How many bridged futures this thread is running right now.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as running a bridged future until dropped.
pub(crate) struct DepthGuard(());

impl DepthGuard {
    pub(crate) fn enter() -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        DepthGuard(())
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Whether the current thread is running a bridged future.
pub(crate) fn nested() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// Decides where a call from the current thread runs.
#[inline]
pub(crate) fn placement() -> Placement {
    if nested() {
        return Placement::Hop;
    }
    match tokio_thread() {
        TokioThread::None => Placement::Inline,
        TokioThread::Worker => Placement::HandOff,
        TokioThread::Other => Placement::Hop,
    }
}

/// What tokio says of the current thread.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
enum TokioThread {
    /// No tokio context (or the `tokio` feature is off).
    None,
    /// A task on a multi_thread runtime: a worker thread (or a
    /// `spawn_blocking` thread, where `block_in_place` is a no-op).
    Worker,
    /// current_thread, `block_on` of a multi_thread runtime, a thread that
    /// merely entered a handle, future flavors: blocking here could stall the
    /// runtime the caller drives.
    Other,
}

#[cfg(feature = "tokio")]
#[inline]
fn tokio_thread() -> TokioThread {
    use ::tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => TokioThread::None,
        Ok(handle) => match handle.runtime_flavor() {
            RuntimeFlavor::MultiThread if ::tokio::task::try_id().is_some() => TokioThread::Worker,
            _ => TokioThread::Other,
        },
    }
}

#[cfg(not(feature = "tokio"))]
#[inline]
fn tokio_thread() -> TokioThread {
    TokioThread::None
}

/// Runs `f`, which blocks, on the current thread; on a tokio multi_thread
/// worker, hands the worker's queue (its LIFO slot included) to another
/// thread first, so tasks the caller spawned keep running.
#[inline]
#[track_caller]
pub(crate) fn hand_off<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "tokio")]
    {
        ::tokio::task::block_in_place(f)
    }
    #[cfg(not(feature = "tokio"))]
    {
        f()
    }
}

/// Runs a blocking wait (for a hop's answer, a stream's next item): on a
/// tokio multi_thread worker, nested calls included, after a hand-off.
#[track_caller]
pub(crate) fn wait<T>(f: impl FnOnce() -> T) -> T {
    if tokio_thread() == TokioThread::Worker {
        hand_off(f)
    } else {
        f()
    }
}
