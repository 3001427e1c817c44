//! [`AsyncStd`]: the adapter for async-std.

use std::future::Future;

use crate::Runtime;

/// Drives futures with [`async_std::task::block_on`], so async-std's
/// networking, timers and `task::spawn` work.
///
/// **Legacy**: async-std is discontinued upstream in favour of smol. It keeps
/// working here for code that still depends on it; new code should use the
/// `Smol` adapter (feature `smol`).
///
/// # Examples
///
/// ```
/// use executor_bridge::{AsyncStd, Bridge};
///
/// let bridge = Bridge::new(AsyncStd);
/// assert_eq!(bridge.run(|| async { async_std::task::spawn(async { 3 }).await }), 3);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        ::async_std::task::block_on(fut)
    }

    /// async-std's executor and async-io's reactor are global, with threads
    /// of their own: a future polled anywhere is driven.
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        Some(f())
    }
}
