//! [`Smol`]: the adapter for smol (async-io's reactor, async-executor).
//!
//! ```
//! use std::time::Duration;
//!
//! let waited = executor_bridge::smol::run(|| async {
//!     smol::Timer::after(Duration::from_millis(5)).await;
//!     "done"
//! });
//! assert_eq!(waited, "done");
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::Runtime;

/// Drives futures with [`smol::block_on`], which runs async-io's global
/// reactor, so smol's networking, timers and `smol::spawn`ed tasks work.
///
/// With [`Smol::with_executor`], each `block_on` also runs an executor of
/// yours, so tasks spawned on it make progress while the bridge waits.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Smol};
///
/// let bridge = Bridge::new(Smol::default());
/// let task_output = bridge.run(|| async { smol::spawn(async { 21 * 2 }).await });
/// assert_eq!(task_output, 42);
/// ```
#[derive(Clone, Default)]
pub struct Smol {
    executor: Option<Arc<::smol::Executor<'static>>>,
}

impl Smol {
    /// An adapter on smol's global reactor and global executor.
    pub fn new() -> Self {
        Smol::default()
    }

    /// An adapter that runs `executor` inside every `block_on`, so tasks
    /// spawned on it advance while a bridged future runs.
    ///
    /// ```
    /// use executor_bridge::{Bridge, Smol};
    /// use std::sync::Arc;
    ///
    /// let ex = Arc::new(smol::Executor::new());
    /// let bridge = Bridge::new(Smol::with_executor(ex.clone()));
    /// let out = bridge.run(move || async move { ex.spawn(async { 5 }).await });
    /// assert_eq!(out, 5);
    /// ```
    pub fn with_executor(executor: Arc<::smol::Executor<'static>>) -> Self {
        Smol {
            executor: Some(executor),
        }
    }
}

impl fmt::Debug for Smol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smol")
            .field("own_executor", &self.executor.is_some())
            .finish()
    }
}

impl Runtime for Smol {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match &self.executor {
            None => ::smol::block_on(fut),
            Some(ex) => ::smol::block_on(ex.run(fut)),
        }
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        // async-io's reactor is global: a future may register from anywhere.
        Some(f())
    }
}

shortcuts!(Smol, "smol");
