//! [`Bridge::run_scoped`]: calls whose closure and output may borrow.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::thread;

use crate::context::{self, DepthGuard, Placement};
use crate::{Bridge, Error, Runtime};

impl<R: Runtime> Bridge<R> {
    /// Like [`run`](Bridge::run), but `make`, its future and the output may
    /// borrow from the caller's stack.
    ///
    /// Where `run` would run inline or hand off, so does `run_scoped`, at the
    /// same cost. Where `run` would hop to a pooled loop thread, `run_scoped`
    /// starts a fresh scoped thread instead (`std::thread::scope`), which
    /// costs a thread start (tens of microseconds) per call: pooled threads
    /// only take `'static` work.
    ///
    /// | calling thread | `run` | `run_scoped` |
    /// |---|---|---|
    /// | plain thread, `spawn_blocking`, smol / async-std | inline | inline |
    /// | tokio multi_thread worker task | hand-off | hand-off |
    /// | current_thread runtime, `LocalSet`, nested call | hop to a pooled thread (~µs) | fresh scoped thread (~tens of µs) |
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let words = vec!["borrowed", "not", "moved"];
    /// let mut calls = 0;
    /// let n = bridge.run_scoped(|| async {
    ///     calls += 1;
    ///     words.iter().map(|w| w.len()).sum::<usize>()
    /// });
    /// assert_eq!((n, calls), (16, 1));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`run`](Bridge::run): the future's panic resumes in the caller with
    /// its payload; "executor-bridge: failed to start a loop thread: ..." if
    /// the scoped thread could not be started.
    #[track_caller]
    pub fn run_scoped<'a, M, F>(&self, make: M) -> F::Output
    where
        M: FnOnce() -> F + Send + 'a,
        F: Future + 'a,
        F::Output: Send + 'a,
    {
        match self.try_run_scoped(make) {
            Ok(out) => out,
            Err(e) => e.raise(),
        }
    }

    /// Like [`run_scoped`](Bridge::run_scoped), but a panic or a failure to
    /// start comes back as an [`Error`].
    ///
    /// # Errors
    ///
    /// As [`try_run`](Bridge::try_run).
    pub fn try_run_scoped<'a, M, F>(&self, make: M) -> Result<F::Output, Error>
    where
        M: FnOnce() -> F + Send + 'a,
        F: Future + 'a,
        F::Output: Send + 'a,
    {
        self.start()?;
        match context::placement() {
            Placement::Inline => self.catch(|| self.run_here(make, false)),
            Placement::HandOff => self.catch(|| self.run_here(make, true)),
            Placement::Hop => {
                let shared = self.shared();
                let mut thread =
                    thread::Builder::new().name(format!("{}-scoped", shared.config.thread_name));
                if let Some(size) = shared.config.stack_size {
                    thread = thread.stack_size(size);
                }
                let rt = &shared.runtime;
                #[cfg(feature = "tracing")]
                let span = tracing::Span::current();
                thread::scope(|scope| {
                    let handle = thread
                        .spawn_scoped(scope, move || {
                            #[cfg(feature = "tracing")]
                            let _entered = span.enter();
                            let _depth = DepthGuard::enter();
                            catch_unwind(AssertUnwindSafe(|| {
                                rt.block_on(async move { make().await })
                            }))
                        })
                        .map_err(Error::Spawn)?;
                    match handle.join() {
                        Ok(Ok(out)) => Ok(out),
                        Ok(Err(payload)) => Err(Error::panic(payload)),
                        // The closure catches every panic; a join error means
                        // the output's own drop glue failed: pass it on.
                        Err(payload) => resume_unwind(payload),
                    }
                })
            }
        }
    }
}
