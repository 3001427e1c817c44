//! [`AsyncStd`]: the adapter for async-std.
//!
//! **Legacy**: async-std is discontinued upstream in favour of smol. It keeps
//! working here for code that still depends on it; new code should use
//! [`Smol`](crate::Smol).
//!
//! ```
//! use std::time::Duration;
//!
//! let out = executor_bridge::async_std::run(|| async {
//!     async_std::task::sleep(Duration::from_millis(5)).await;
//!     7
//! });
//! assert_eq!(out, 7);
//! ```

use std::future::Future;

use crate::{Runtime, Task};

/// Drives futures with [`async_std::task::block_on`], so async-std's
/// networking, timers and `task::spawn` work.
///
/// **Legacy**: async-std is discontinued upstream in favour of smol; prefer
/// [`Smol`](crate::Smol) in new code.
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

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        // async-std's reactor and executor are global.
        Some(f())
    }

    fn spawn(&self, task: Task) -> Result<(), Task> {
        drop(::async_std::task::spawn(task));
        Ok(())
    }
}

shortcuts!(AsyncStd, "async-std");
