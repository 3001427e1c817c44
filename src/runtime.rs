//! The core trait: what the bridge needs from an async runtime.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::thread::{Builder, JoinHandle};

/// A background task handed to [`Runtime::spawn`].
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An async runtime the bridge can drive: "run an event loop on this thread
/// until this future completes".
///
/// Only [`block_on`](Runtime::block_on) is required. Implement it for your own
/// runtime and every feature of [`Bridge`](crate::Bridge) works with it: the
/// per-call dispatch, the pool of loop threads, timeouts, panics carried
/// intact, and [`BlockingIter`](crate::BlockingIter).
///
/// The provided methods are hooks an adapter may override:
/// - [`start`](Runtime::start) starts background machinery lazily and reports
///   failure as a value;
/// - [`enter`](Runtime::enter) lets the bridge poll a future once on the
///   caller's thread before blocking (the fast path for ready futures);
/// - [`spawn_loop`](Runtime::spawn_loop) starts a fresh named OS thread that
///   will run this runtime's loop.
///
/// # Examples
///
/// A runtime of your own, here a thin wrapper over `futures-lite`'s
/// `block_on`:
///
/// ```
/// use executor_bridge::{Bridge, Runtime};
/// use std::future::Future;
///
/// struct MyLoop;
///
/// impl Runtime for MyLoop {
///     fn block_on<F: Future>(&self, fut: F) -> F::Output {
///         futures_lite::future::block_on(fut)
///     }
/// }
///
/// let bridge = Bridge::new(MyLoop);
/// assert_eq!(bridge.run(|| async { 6 * 7 }), 42);
/// let doubled: Vec<u32> = bridge
///     .iter(|| futures_lite::stream::iter(1..=3))
///     .map(|x| x * 2)
///     .collect();
/// assert_eq!(doubled, [2, 4, 6]);
/// ```
pub trait Runtime: Send + Sync + 'static {
    /// Drives `fut` to completion with this runtime's event loop on the
    /// current thread, and returns its output.
    ///
    /// The bridge calls this only where blocking is safe: on a thread that
    /// drives no runtime it knows of, after handing a tokio worker off, or on
    /// one of its own loop threads. Implementations may panic if called from
    /// inside another executor; the bridge never does that.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;

    /// Starts whatever this runtime needs in the background (threads, a
    /// reactor) if it is not running yet.
    ///
    /// The bridge calls it before each call, so it must be cheap once
    /// started. The default does nothing.
    ///
    /// # Errors
    ///
    /// Returns the error that kept the runtime from starting; the bridge
    /// reports it as [`Error::Runtime`](crate::Error::Runtime).
    fn start(&self) -> io::Result<()> {
        Ok(())
    }

    /// Runs `f` with this runtime's context set on the current thread, without
    /// running its loop, and returns `Some` of its result.
    ///
    /// The bridge uses it to poll a future once on the caller's thread before
    /// blocking, so a future that is ready at once costs no more than a poll.
    /// Futures polled inside `f` must be able to register with the runtime
    /// from there (tokio's `Handle::enter`; smol's and async-std's reactors
    /// are global, so they need nothing).
    ///
    /// The default returns `None` without calling `f`: every poll then
    /// happens inside [`block_on`](Runtime::block_on), which is always
    /// correct.
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let _ = f;
        None
    }

    /// Runs `task` to completion in the background on this runtime's own
    /// executor, or gives it back (`Err`) if the runtime has no executor that
    /// makes progress without a `block_on` call. The default gives it back.
    ///
    /// [`Bridge::iter_spawned`](crate::Bridge::iter_spawned) uses it to poll a
    /// `Send` stream where its wake-ups land; given the task back, it runs the
    /// stream on a loop thread as [`Bridge::iter`](crate::Bridge::iter) does.
    /// The task catches its own panics.
    fn spawn(&self, task: Task) -> Result<(), Task> {
        Err(task)
    }

    /// Starts a fresh OS thread, configured by `thread` (its name and stack
    /// size are set by the bridge), that runs `main`. `main` calls
    /// [`block_on`](Runtime::block_on) for every job handed to the thread.
    ///
    /// Override it to prepare the thread for your runtime (thread-local
    /// state, CPU affinity). The default is `thread.spawn(main)`.
    ///
    /// # Errors
    ///
    /// Returns the error of [`Builder::spawn`]; the bridge reports it as
    /// [`Error::Spawn`](crate::Error::Spawn) and keeps working.
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

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        (**self).enter(f)
    }

    fn spawn(&self, task: Task) -> Result<(), Task> {
        (**self).spawn(task)
    }

    fn spawn_loop<F>(&self, thread: Builder, main: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        (**self).spawn_loop(thread, main)
    }
}
