//! [`Smol`]: the adapter for smol (async-io's reactor, async-executor).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

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

/// Like [`Smol`], but every `block_on` also runs an executor of yours, so
/// that tasks spawned on it advance while a bridged call waits.
///
/// Tasks of such an executor advance only inside `block_on`, so calls from a
/// tokio runtime and nested calls run on a loop thread.
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
}

impl SmolExecutor {
    /// An adapter that runs `executor` inside every `block_on`.
    pub fn new(executor: Arc<::async_executor::Executor<'static>>) -> Self {
        SmolExecutor { executor }
    }

    /// The executor this adapter runs.
    pub fn executor(&self) -> &Arc<::async_executor::Executor<'static>> {
        &self.executor
    }
}

impl fmt::Debug for SmolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolExecutor").finish_non_exhaustive()
    }
}

impl Runtime for SmolExecutor {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        ::async_io::block_on(self.executor.run(fut))
    }
}
