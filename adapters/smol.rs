//! [`Smol`]: the adapter for smol (async-io's reactor, async-executor).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};

use crate::pool::lock;
use crate::Runtime;

/// Drives futures with `smol::block_on` ([`async_io::block_on`]): the waiting thread runs async-io's
/// reactor itself (one wake-up per IO event), and smol's networking, timers
/// and `smol::spawn`ed tasks work.
///
/// To run an executor of your own inside every call, use [`SmolExecutor`].
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Smol};
///
/// let bridge = Bridge::new(Smol);
/// let task_output = bridge.run(|| async { smol::spawn(async { 21 * 2 }).await });
/// assert_eq!(task_output, 42);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Smol;

impl Runtime for Smol {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        ::async_io::block_on(fut)
    }

    /// async-io's reactor is global, with a thread of its own for when no
    /// thread waits in `block_on`; smol's executor is global too.
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        Some(f())
    }
}

/// Like [`Smol`], with an executor of yours kept running: tasks spawned on
/// it advance while a bridged call waits, and between calls.
///
/// The executor runs on a thread of the adapter (`bridge-smol-ex`), started
/// with the first call and stopped (joined) when the adapter is dropped;
/// other threads of yours may run it too. The bridged futures themselves run
/// in `block_on` ([`async_io::block_on`]), not inside the executor: a call
/// blocked inside one of the executor's runners would keep the executor's
/// wake-up for itself, and a task the call awaits would never run. As for
/// any runtime without [`Runtime::enter`], calls from a tokio runtime and
/// nested calls run on a loop thread.
///
/// # Panics
///
/// A task of the executor that calls the bridge synchronously while it runs
/// on the adapter's own thread panics (at the call's line) instead of
/// blocking the thread that runs the executor's tasks: `.await` there.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, SmolExecutor};
/// use std::sync::Arc;
///
/// let ex = Arc::new(smol::Executor::new());
/// let bridge = Bridge::new(SmolExecutor::new(ex.clone()));
/// let out = bridge.run(move || async move { ex.spawn(async { 5 }).await });
/// assert_eq!(out, 5);
/// ```
#[derive(Clone)]
pub struct SmolExecutor {
    executor: Arc<::async_executor::Executor<'static>>,
    driver: Arc<Driver>,
}

/// The thread that runs the executor, once started.
#[derive(Default)]
struct Driver {
    started: OnceLock<(async_channel::Sender<()>, JoinHandle<()>)>,
    starting: Mutex<()>,
}

impl SmolExecutor {
    /// An adapter that keeps `executor` running.
    pub fn new(executor: Arc<::async_executor::Executor<'static>>) -> Self {
        SmolExecutor {
            executor,
            driver: Arc::default(),
        }
    }

    /// The executor this adapter runs.
    pub fn executor(&self) -> &Arc<::async_executor::Executor<'static>> {
        &self.executor
    }
}

impl fmt::Debug for SmolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolExecutor")
            .field("started", &self.driver.started.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Runtime for SmolExecutor {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        if let Err(e) = self.start() {
            panic!("executor-bridge: failed to start the executor's thread: {e}");
        }
        ::async_io::block_on(fut)
    }

    /// Not on the adapter's own thread, whose tasks a call there would
    /// block.
    fn blocking_allowed(&self) -> bool {
        !self.on_own_thread()
    }

    /// Never (the executor advances only where it runs), and a misuse panic
    /// on the adapter's own thread: see [`SmolExecutor`]'s docs.
    #[track_caller]
    fn enter<T>(&self, _f: impl FnOnce() -> T) -> Option<T> {
        if self.on_own_thread() && !crate::context::dropping() {
            crate::context::misuse(format_args!(
                "executor-bridge: a task of `SmolExecutor`'s executor, running on the adapter's \
                 own thread, called the bridge synchronously: that thread runs the executor's \
                 tasks, and blocking it could keep the call from ever completing; `.await` the \
                 work in the task instead, or move the call into `blocking::unblock` or a thread \
                 of your own"
            ));
        }
        None
    }

    /// Starts the executor's thread.
    fn start(&self) -> io::Result<()> {
        let driver = &*self.driver;
        if driver.started.get().is_some() {
            return Ok(());
        }
        let _starting = lock(&driver.starting);
        if driver.started.get().is_some() {
            return Ok(());
        }
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let executor = Arc::clone(&self.executor);
        let thread = thread::Builder::new()
            .name("bridge-smol-ex".into())
            .spawn(move || {
                DRIVER_OF.set(Arc::as_ptr(&executor));
                let _ = ::async_io::block_on(executor.run(stopped.recv()));
            })?;
        let _ = driver.started.set((stop, thread));
        Ok(())
    }
}

thread_local! {
    /// On a `SmolExecutor`'s own thread: the executor it runs.
    static DRIVER_OF: Cell<*const ::async_executor::Executor<'static>> =
        const { Cell::new(std::ptr::null()) };
}

impl SmolExecutor {
    fn on_own_thread(&self) -> bool {
        std::ptr::eq(DRIVER_OF.get(), Arc::as_ptr(&self.executor))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.started.take() {
            drop(stop);
            // Not from the executor's own thread (a task that held the last
            // adapter): it ends once this returns.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
