//! [`Runtime`]: what the bridge needs from an async runtime.

use std::future::Future;
use std::io;
use std::thread::{Builder, JoinHandle};

/// An async runtime the bridge can drive: "run an event loop on this thread
/// until this future completes".
///
/// Only [`block_on`](Runtime::block_on) is required. Implement it for your own
/// runtime and every method of [`Bridge`](crate::Bridge) works with it: the
/// per-call dispatch, the pool of loop threads, timeouts, panics carried
/// intact, streams and IO.
///
/// The provided methods are hooks that make calls cheaper or safer:
/// - [`start`](Runtime::start) starts background machinery lazily and reports
///   a failure as a value;
/// - [`enter`](Runtime::enter) sets the runtime's context on the caller's
///   thread without running its loop: the bridge polls a call's future once
///   there before blocking (a ready future costs one poll), drops values in
///   that context, and lets the runtime refuse a calling context it cannot
///   serve (by panicking);
/// - [`blocking_allowed`](Runtime::blocking_allowed) says whether `block_on`
///   may be called on the current thread (an executor that cannot nest says
///   no inside itself);
/// - [`spawn_loop`](Runtime::spawn_loop) starts a fresh named OS thread that
///   will run this runtime's loop.
///
/// A future of a runtime of yours runs on the caller's thread only on a
/// thread that runs no tokio runtime (where `blocking_allowed` holds), and
/// on a loop thread everywhere else, a tokio worker included (only the
/// [`Tokio`](crate::Tokio) adapter's context replaces a worker's own); see
/// [the table](crate#how-each-calling-context-is-served).
///
/// # Examples
///
/// A runtime of your own, here a thin wrapper over `futures`' executor, which
/// cannot run inside another `futures` executor and says so:
///
/// ```
/// use executor_bridge::{Bridge, Runtime};
/// use std::future::Future;
///
/// struct MyLoop;
///
/// impl Runtime for MyLoop {
///     fn block_on<F: Future>(&self, fut: F) -> F::Output {
///         futures::executor::block_on(fut)
///     }
///
///     fn blocking_allowed(&self) -> bool {
///         // `futures::executor::enter` fails inside one of its executors.
///         futures::executor::enter().is_ok()
///     }
/// }
///
/// let bridge = Bridge::new(MyLoop);
/// assert_eq!(bridge.run(|| async { 6 * 7 }), 42);
/// // Called from inside a `futures` executor, the bridge moves the call to a
/// // loop thread instead of nesting.
/// let nested = futures::executor::block_on(async { bridge.run(|| async { 1 }) });
/// assert_eq!(nested, 1);
/// ```
pub trait Runtime: Send + Sync + 'static {
    /// Drives `fut` to completion with this runtime's event loop on the
    /// current thread, and returns its output.
    ///
    /// The bridge calls it only where [`blocking_allowed`] holds, on a thread
    /// that drives no tokio runtime and runs no bridged future (or that has
    /// handed its tokio worker off), or on one of the bridge's own loop
    /// threads.
    ///
    /// [`blocking_allowed`]: Runtime::blocking_allowed
    fn block_on<F: Future>(&self, fut: F) -> F::Output;

    /// Starts whatever this runtime needs in the background (threads, a
    /// reactor) if it is not running yet.
    ///
    /// The bridge calls it before each call, so it must be cheap once
    /// started. The default does nothing.
    ///
    /// # Errors
    ///
    /// The error that kept the runtime from starting; the call fails with it
    /// ([`Error::is_runtime`](crate::Error::is_runtime)).
    fn start(&self) -> io::Result<()> {
        Ok(())
    }

    /// Runs `f` with this runtime's context set on the current thread,
    /// without running its loop, and returns `Some` of its result; or returns
    /// `None` without calling `f`.
    ///
    /// `Some` promises that a future polled inside `f` can register its
    /// interest with the runtime (tokio's `Handle::enter`; smol's and
    /// async-std's reactors are global), and that a value dropped inside `f`
    /// finds the runtime it needs. The bridge uses it on the caller's thread,
    /// where the call runs in place: to poll the future once before blocking
    /// (a ready future costs one poll), and to drop the caller's values
    /// there. It also calls it, with an `f` that does nothing, before every
    /// blocking wait: a runtime that cannot serve the calling context panics
    /// there, with a message saying why, instead of letting the caller hang.
    ///
    /// The default returns `None`: every poll and drop then happens inside
    /// [`block_on`](Runtime::block_on), which is always correct.
    ///
    /// It carries `#[track_caller]`: a panic here (a misuse it detects)
    /// points at the line that called the bridge.
    #[track_caller]
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let _ = f;
        None
    }

    /// Whether [`block_on`](Runtime::block_on) may be called on the current
    /// thread. Where it returns `false`, the bridge runs the call on one of its
    /// loop threads. The default is `true`.
    fn blocking_allowed(&self) -> bool {
        true
    }

    /// Starts a fresh OS thread, configured by `thread` (the bridge sets its
    /// name and stack size), that runs `main`. `main` calls
    /// [`block_on`](Runtime::block_on) for every job handed to the thread.
    ///
    /// Override it to prepare the thread for your runtime (thread-local
    /// state, CPU affinity). The default is `thread.spawn(main)`.
    ///
    /// `block_on` must still work on any thread: the bridge also calls it on
    /// the caller's own thread (where [`Bridge::run`](crate::Bridge::run)
    /// runs a call in place) and on the short-lived scoped thread that
    /// [`Bridge::run_scoped`](crate::Bridge::run_scoped) starts where it
    /// cannot block in place (a borrowing future cannot go to a loop
    /// thread); neither comes from this hook.
    ///
    /// # Errors
    ///
    /// The error of [`Builder::spawn`]; the call that needed the thread fails
    /// with it ([`Error::is_spawn`](crate::Error::is_spawn)) and the bridge
    /// keeps working. A panic of this hook is reported the same way.
    fn spawn_loop<F>(&self, thread: Builder, main: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        thread.spawn(main)
    }
}

impl<R: Runtime> Runtime for std::sync::Arc<R> {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        (**self).block_on(fut)
    }

    fn start(&self) -> io::Result<()> {
        (**self).start()
    }

    #[track_caller]
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        (**self).enter(f)
    }

    fn blocking_allowed(&self) -> bool {
        (**self).blocking_allowed()
    }

    fn spawn_loop<F>(&self, thread: Builder, main: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).spawn_loop(thread, main)
    }
}
