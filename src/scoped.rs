//! [`Bridge::run_scoped`]: calls whose closure and output may borrow.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::thread;

use crate::context::{self, DepthGuard, Placement};
use crate::{Bridge, Carry, Error, Runtime};

impl<R: Runtime> Bridge<R> {
    /// Like [`run`](Bridge::run), but `make`, its future and the output may
    /// borrow from the caller's stack.
    ///
    /// Where `run` would run the future on the caller's thread, so does
    /// `run_scoped`, at the same cost. Where `run` would send it to a pooled
    /// loop thread, `run_scoped` starts a fresh scoped thread instead
    /// (`std::thread::scope`; the pool only takes `'static` work), which
    /// costs a thread start, tens of microseconds.
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
    ///
    /// # Blocking
    ///
    /// As [`run`](Bridge::run).
    #[track_caller]
    pub fn run_scoped<'a, M, F>(&self, make: M) -> F::Output
    where
        M: FnOnce() -> F + Send + 'a,
        F: Future + 'a,
        F::Output: Send + 'a,
    {
        if let Err(e) = self.start() {
            e.raise()
        }
        let here = context::placement(self.runtime());
        if here != Placement::Hop {
            return context::in_place(self.runtime(), here, async move { make().await });
        }
        let rt = self.runtime();
        let carry = Carry::capture();
        let thread = self.pool().config.thread("scoped");
        // The whole scope is one blocking wait: it joins its thread at its end.
        let answer: Result<Result<F::Output, _>, Error> = context::hand_off(|| {
            thread::scope(|scope| {
                let handle = thread
                    .spawn_scoped(scope, move || {
                        carry.run(|| {
                            let _depth = DepthGuard::on_loop_thread();
                            catch_unwind(AssertUnwindSafe(|| {
                                rt.block_on(async move { make().await })
                            }))
                        })
                    })
                    .map_err(Error::thread)?;
                match handle.join() {
                    Ok(answer) => Ok(answer),
                    // The closure catches every panic; a join error means the
                    // output's own drop glue failed: pass it on.
                    Err(payload) => resume_unwind(payload),
                }
            })
        });
        match answer {
            Ok(Ok(out)) => out,
            Ok(Err(payload)) => resume_unwind(payload),
            Err(e) => e.raise(),
        }
    }
}
