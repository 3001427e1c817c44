//! [`Pollster`]: the runtime-free adapter, always available.

use std::future::Future;

use crate::Runtime;

/// Drives futures with [`pollster::block_on`]: no reactor, no timers, no
/// threads of its own.
///
/// For futures that need no runtime: channels, locks, hand-written state
/// machines, `async` code wrapping blocking calls, and futures completed by
/// other threads. A future that needs a reactor (tokio's or async-io's IO and
/// timers) needs that runtime's adapter.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
///
/// let bridge = Bridge::new(Pollster);
/// let (tx, rx) = async_channel::bounded(1);
/// std::thread::spawn(move || tx.send_blocking("from a thread"));
/// assert_eq!(bridge.run(move || async move { rx.recv().await.unwrap() }), "from a thread");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pollster;

impl Runtime for Pollster {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        pollster::block_on(fut)
    }

    /// No context to set; whatever wakes these futures, wakes them anywhere.
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        Some(f())
    }
}
