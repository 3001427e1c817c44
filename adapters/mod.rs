//! One module per runtime, each gated by its feature at the `mod` line.
//!
//! Each module holds the adapter type implementing [`Runtime`](crate::Runtime)
//! and three shortcuts on a process-wide bridge: `bridge()`, `run(..)` and
//! `iter(..)`.

/// Adds the process-wide shortcuts for one adapter to its module.
macro_rules! shortcuts {
    ($rt:ty, $name:literal) => {
        /// The process-wide bridge over the
        #[doc = concat!("`", stringify!($rt), "` adapter")]
        /// used by this module's shortcuts, created on first use. It is never
        /// dropped; its loop threads still exit when idle.
        pub fn bridge() -> &'static $crate::Bridge<$rt> {
            static BRIDGE: ::std::sync::OnceLock<$crate::Bridge<$rt>> =
                ::std::sync::OnceLock::new();
            BRIDGE.get_or_init(|| {
                $crate::Bridge::builder(<$rt>::default())
                    .thread_name(concat!("bridge-", $name))
                    .build()
            })
        }

        /// [`Bridge::run`]($crate::Bridge::run) on the process-wide
        #[doc = concat!("[`bridge()`](", "self::bridge", ").")]
        ///
        /// # Panics
        ///
        /// As [`Bridge::run`]($crate::Bridge::run): resumes the future's panic.
        #[track_caller]
        pub fn run<M, F>(make: M) -> F::Output
        where
            M: FnOnce() -> F + Send + 'static,
            F: ::std::future::Future + 'static,
            F::Output: Send + 'static,
        {
            bridge().run(make)
        }

        /// [`Bridge::iter`]($crate::Bridge::iter) on the process-wide
        #[doc = concat!("[`bridge()`](", "self::bridge", ").")]
        ///
        /// # Panics
        ///
        /// As [`Bridge::iter`]($crate::Bridge::iter).
        #[track_caller]
        pub fn iter<M, S>(make: M) -> $crate::BlockingIter<S::Item>
        where
            M: FnOnce() -> S + Send + 'static,
            S: ::futures_lite::Stream + 'static,
            S::Item: Send + 'static,
        {
            bridge().iter(make)
        }
    };
}

pub mod pollster;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub mod smol;

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub mod async_std;
