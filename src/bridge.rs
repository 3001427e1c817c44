//! [`Bridge`]: the per-call dispatch and its handle on the pool.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::Stream;

use crate::context::{self, DepthGuard, Placement};
use crate::error::PanicPayload;
use crate::iter::{self, BlockingIter};
use crate::pool::{lock, Config, Job, Pool, Shared};
use crate::wait::backoff;
use crate::{Error, Runtime};

/// Runs async code from blocking code, correctly from any calling context.
///
/// A `Bridge` owns a [`Runtime`] and a pool of loop threads. Each call looks
/// at the calling thread and picks the cheapest way that cannot deadlock:
///
/// | calling thread | how the call runs |
/// |---|---|
/// | a plain thread, a `spawn_blocking` thread of a multi_thread runtime, smol or async-std threads | **inline**: the future is polled once right here; if it is not ready, the runtime's `block_on` drives it on this thread |
/// | a task on a tokio multi_thread worker | **hand-off**: polled once right here; if not ready, `block_in_place` hands the worker's queue (its LIFO slot too) to another thread, then inline |
/// | a tokio current_thread runtime (`#[tokio::test]`), a `LocalSet`, the `block_on` thread of a multi_thread runtime, a nested call from inside a bridged future | **hop**: the factory closure is sent to a pooled loop thread; the caller parks until the output comes back |
///
/// Which way a call went never changes what the caller sees: the same output,
/// the same panic payload, the same timeout behaviour. Only the closure and
/// the output cross threads, so the future itself may be `!Send`.
///
/// `Bridge` is cheap to clone; clones share the runtime and the pool. The
/// pool starts no thread until a call hops; idle threads exit after the idle
/// timeout (10 s by default, see [`Builder`]), and all of them when the last
/// clone is dropped. Calls in flight at that moment still complete.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
///
/// let bridge = Bridge::new(Pollster);
/// let sum = bridge.run(|| async {
///     let a = async { 40 }.await;
///     a + 2
/// });
/// assert_eq!(sum, 42);
/// ```
pub struct Bridge<R: Runtime> {
    owner: Arc<Owner<R>>,
}

/// The part whose drop stops the pool: loop threads keep [`Shared`] alive but
/// not this.
struct Owner<R: Runtime> {
    shared: Arc<Shared<R>>,
}

impl<R: Runtime> Drop for Owner<R> {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

impl<R: Runtime> Clone for Bridge<R> {
    fn clone(&self) -> Self {
        Bridge {
            owner: Arc::clone(&self.owner),
        }
    }
}

impl<R: Runtime> fmt::Debug for Bridge<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.owner.shared;
        f.debug_struct("Bridge")
            .field("runtime", &std::any::type_name::<R>())
            .field("threads", &shared.pool.threads())
            .field("idle_threads", &shared.pool.idle())
            .field("thread_name", &shared.config.thread_name)
            .finish()
    }
}

impl<R: Runtime + Default> Default for Bridge<R> {
    fn default() -> Self {
        Bridge::new(R::default())
    }
}

/// Configures a [`Bridge`] before it starts.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
/// use std::time::Duration;
///
/// let bridge = Bridge::builder(Pollster)
///     .thread_name("db-bridge")
///     .idle_timeout(Duration::from_secs(2))
///     .max_threads(8)
///     .stream_capacity(64)
///     .build();
/// assert_eq!(bridge.run(|| async { 1 }), 1);
/// ```
pub struct Builder<R: Runtime> {
    runtime: R,
    config: Config,
}

impl<R: Runtime> fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("runtime", &std::any::type_name::<R>())
            .field("config", &self.config)
            .finish()
    }
}

impl<R: Runtime> Builder<R> {
    /// Prefix of the loop threads' names; each thread gets `{name}-{n}`.
    /// Default `"executor-bridge"`.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.config.thread_name = name.into();
        self
    }

    /// Stack size of the loop threads, in bytes. Default: the standard
    /// library's (2 MiB, or `RUST_MIN_STACK`).
    ///
    /// A size the system refuses makes the calls that need a new thread fail
    /// with [`Error::Spawn`]; the bridge stays usable.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.config.stack_size = Some(bytes);
        self
    }

    /// How long a loop thread waits for work before it exits. Default 10 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// The most loop threads alive at once. Default 512.
    ///
    /// When all of them are busy, further hops wait in a queue. Nested calls
    /// (made from inside a bridged future) never wait: they could be waiting
    /// for themselves, so they may start a thread beyond the limit.
    ///
    /// A live [`BlockingIter`] holds its loop thread until it ends or is
    /// dropped: with `max(n)`, `n` iterators nobody reads make further hops
    /// wait, so don't read more iterators in turn than the limit allows.
    /// [`run_timeout`](Bridge::run_timeout) still returns at its deadline
    /// while its call waits in the queue.
    ///
    /// # Panics
    ///
    /// Panics if `max` is 0.
    #[track_caller]
    pub fn max_threads(mut self, max: usize) -> Self {
        assert!(max > 0, "max_threads must be at least 1");
        self.config.max_threads = max;
        self
    }

    /// How many items a [`BlockingIter`] lets its stream run ahead of the
    /// consumer. Default 1024.
    ///
    /// Items travel in batches of what the stream had ready, at most
    /// `max(1, capacity / 8)` a batch; the stream is never more than
    /// `capacity` items plus the batch in hand ahead of the consumer.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    #[track_caller]
    pub fn stream_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "stream_capacity must be at least 1");
        self.config.stream_capacity = capacity;
        self
    }

    /// Builds the bridge. No thread starts until a call needs one.
    pub fn build(self) -> Bridge<R> {
        Bridge {
            owner: Arc::new(Owner {
                shared: Arc::new(Shared {
                    runtime: self.runtime,
                    config: self.config,
                    pool: Pool::new(),
                }),
            }),
        }
    }
}

impl<R: Runtime> Bridge<R> {
    /// A bridge over `runtime` with the default settings.
    pub fn new(runtime: R) -> Self {
        Bridge::builder(runtime).build()
    }

    /// A [`Builder`] to configure thread names, the idle timeout, the thread
    /// limit and the stream capacity.
    pub fn builder(runtime: R) -> Builder<R> {
        Builder {
            runtime,
            config: Config::default(),
        }
    }

    /// The runtime this bridge drives.
    pub fn runtime(&self) -> &R {
        &self.owner.shared.runtime
    }

    /// Number of loop threads alive right now, busy or idle.
    pub fn threads(&self) -> usize {
        self.owner.shared.pool.threads()
    }

    /// Runs the future made by `make` to completion and returns its output,
    /// from any calling context.
    ///
    /// `make` is called where the future will run (the caller's thread or a
    /// loop thread), so the future may be `!Send` and may use the runtime's
    /// context (tokio's `spawn`, `sleep`) from its first line. Pass a closure,
    /// not a future: `bridge.run(|| fetch(url))`.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use std::rc::Rc;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let len = bridge.run(|| async {
    ///     let shared = Rc::new(vec![1, 2, 3]); // !Send, held across an await
    ///     async {}.await;
    ///     shared.len()
    /// });
    /// assert_eq!(len, 3);
    /// ```
    ///
    /// A future is not a factory: passing one is a compile error.
    ///
    /// ```compile_fail
    /// use executor_bridge::{Bridge, Pollster};
    /// async fn fetch() -> u32 { 1 }
    /// let bridge = Bridge::new(Pollster);
    /// bridge.run(fetch()); // forgot the closure: `|| fetch()`
    /// ```
    ///
    /// # Panics
    ///
    /// - If the future, `make`, or the future's destructor panics, the panic is
    ///   resumed in the caller with its original payload.
    /// - Panics with "executor-bridge: failed to start a loop thread: ..." or
    ///   "executor-bridge: failed to start the runtime: ..." if the call
    ///   needed a thread or a runtime that could not be started; use
    ///   [`try_run`](Bridge::try_run) to get these as an [`Error`].
    /// - On a tokio multi_thread runtime, inside a `LocalSet` *task*, tokio
    ///   refuses to hand the thread off and panics with "can call blocking
    ///   only when running on the multi-threaded runtime" if the future is not
    ///   ready at once (tokio does not tell that thread from a worker); call
    ///   from the `LocalSet`'s own future, or use a current_thread runtime.
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the future completes. If the future
    /// needs the runtime the caller is itself driving (a task of the caller's
    /// own current_thread runtime), it can never complete: use
    /// [`run_timeout`](Bridge::run_timeout) there.
    #[track_caller]
    pub fn run<M, F>(&self, make: M) -> F::Output
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        if let Err(e) = self.start() {
            e.raise()
        }
        match context::placement() {
            Placement::Inline => self.run_here(make, false),
            Placement::HandOff => self.run_here(make, true),
            Placement::Hop => match self.hop(make) {
                Ok(out) => out,
                Err(e) => e.raise(),
            },
        }
    }

    /// Like [`run`](Bridge::run), but a panic or a failure to start comes
    /// back as an [`Error`] instead of unwinding.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let err = bridge.try_run(|| async { panic!("no such user") }).map(|()| ()).unwrap_err();
    /// assert!(err.is_panic());
    /// // the bridge stays usable
    /// assert_eq!(bridge.try_run(|| async { 7 }).unwrap(), 7);
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Panic`] if the future, `make` or the future's destructor
    ///   panicked, with the payload intact;
    /// - [`Error::Spawn`] / [`Error::Runtime`] if a loop thread or the runtime
    ///   could not be started.
    ///
    /// # Blocking
    ///
    /// As [`run`](Bridge::run).
    pub fn try_run<M, F>(&self, make: M) -> Result<F::Output, Error>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.start()?;
        match context::placement() {
            Placement::Inline => self.catch(|| self.run_here(make, false)),
            Placement::HandOff => self.catch(|| self.run_here(make, true)),
            Placement::Hop => self.hop(make),
        }
    }

    /// Like [`try_run`](Bridge::try_run), but gives up after `timeout`.
    ///
    /// The future always runs on a loop thread, so the calling thread can
    /// watch the clock. When the deadline passes, the future is dropped on
    /// its loop thread, and `run_timeout` returns [`Error::Timeout`] once its
    /// destructor has run.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use std::time::Duration;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let err = bridge
    ///     .run_timeout(Duration::from_millis(50), || std::future::pending::<()>())
    ///     .unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the deadline passed; otherwise as
    /// [`try_run`](Bridge::try_run). A panic raised by the future's destructor
    /// while it is being cancelled is reported as [`Error::Panic`].
    ///
    /// # Caveats
    ///
    /// Cancelling works at `.await` points: a future that blocks its thread
    /// without yielding is dropped when it next yields, and `run_timeout`
    /// returns then. Costs one hop (a few microseconds) even where `run`
    /// would run inline.
    pub fn run_timeout<M, F>(&self, timeout: Duration, make: M) -> Result<F::Output, Error>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.start()?;
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.try_run(make);
        };
        let (tx, rx) = oneshot::channel::<Result<Option<F::Output>, PanicPayload>>();
        let (cancel, cancelled) = oneshot::async_channel::<()>();
        // The factory waits here until a loop thread starts the call. A caller
        // whose deadline passes first (the job still queued behind busy
        // threads under `max_threads`) takes it back and drops it itself.
        let pending = Arc::new(Mutex::new(Some(make)));
        let unstarted = Arc::clone(&pending);
        #[cfg(feature = "tracing")]
        let span = tracing::Span::current();
        let job: Job<R> = Box::new(move |rt: &R, release: &mut dyn FnMut()| {
            let Some(make) = lock(&unstarted).take() else {
                return;
            };
            let fut = async move {
                let run = async move { Some(make().await) };
                let stop = async move {
                    let _ = cancelled.await;
                    None
                };
                futures_lite::future::or(run, stop).await
            };
            #[cfg(feature = "tracing")]
            let _entered = span.enter();
            let answer = catch_unwind(AssertUnwindSafe(|| rt.block_on(fut)));
            release();
            let _ = tx.send(answer);
        });
        self.shared()
            .submit(job, context::nested())
            .map_err(Error::Spawn)?;
        context::wait(move || {
            let answer = match rx.recv_deadline(deadline) {
                Ok(answer) => answer,
                Err(oneshot::RecvTimeoutError::Timeout) => {
                    let unstarted = lock(&pending).take();
                    if unstarted.is_some() {
                        // It never started: drop the factory here, so nothing
                        // of the call outlives this return.
                        drop(unstarted);
                        return Err(Error::Timeout(timeout));
                    }
                    drop(cancel);
                    match rx.recv() {
                        Ok(answer) => answer,
                        Err(_) => return Err(Error::Lost),
                    }
                }
                Err(oneshot::RecvTimeoutError::Disconnected) => return Err(Error::Lost),
            };
            match answer {
                Ok(Some(out)) => Ok(out),
                Ok(None) => Err(Error::Timeout(timeout)),
                Err(payload) => Err(Error::panic(payload)),
            }
        })
    }

    /// Turns the stream made by `make` into a blocking [`Iterator`].
    ///
    /// The stream runs on a loop thread (the consumer never drives it); items
    /// cross a bounded channel as soon as they exist, in batches of what was
    /// already ready. Dropping the iterator cancels the stream: it is dropped
    /// on its loop thread promptly, even while pending, and the thread is
    /// freed. A panic in the stream resumes in [`Iterator::next`].
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::{stream, StreamExt};
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let words: Vec<String> = bridge
    ///     .iter(|| stream::iter(["live", "word", "by", "word"]).map(str::to_owned))
    ///     .collect();
    /// assert_eq!(words.join(" "), "live word by word");
    /// ```
    ///
    /// # Panics
    ///
    /// Panics with "executor-bridge: failed to start a loop thread: ..." if
    /// no loop thread could be started; [`try_iter`](Bridge::try_iter)
    /// returns that as an [`Error`].
    #[track_caller]
    pub fn iter<M, S>(&self, make: M) -> BlockingIter<S::Item>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + 'static,
        S::Item: Send + 'static,
    {
        match self.try_iter(make) {
            Ok(iter) => iter,
            Err(e) => e.raise(),
        }
    }

    /// Like [`iter`](Bridge::iter), but a failure to start comes back as an
    /// [`Error`].
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] / [`Error::Runtime`] if a loop thread or the runtime
    /// could not be started.
    pub fn try_iter<M, S>(&self, make: M) -> Result<BlockingIter<S::Item>, Error>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + 'static,
        S::Item: Send + 'static,
    {
        self.spawn_iter(self.owner.shared.config.stream_capacity, make)
    }

    /// Like [`iter`](Bridge::iter), for a `Send` stream: the stream runs as a
    /// task on the runtime's own executor (tokio, smol, async-std), polled
    /// where its wake-ups land, instead of on a loop thread.
    ///
    /// An item that arrives while the consumer waits then wakes one sleeping
    /// thread (the consumer) instead of two in a row (the loop thread, then
    /// the consumer), which roughly halves the latency of a slow live
    /// stream. Everything else is as for `iter`: live, bounded, cancelled on
    /// drop (the stream is dropped on the runtime's thread), panics resumed
    /// in `next`. With a runtime that cannot spawn
    /// ([`Pollster`](crate::Pollster), `SmolExecutor`, most
    /// runtimes of your own) it is `iter`.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::stream;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let total: u32 = bridge.iter_spawned(|| stream::iter(1..=4)).sum();
    /// assert_eq!(total, 10);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`iter`](Bridge::iter).
    #[track_caller]
    pub fn iter_spawned<M, S>(&self, make: M) -> BlockingIter<S::Item>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        match self.try_iter_spawned(make) {
            Ok(iter) => iter,
            Err(e) => e.raise(),
        }
    }

    /// Like [`iter_spawned`](Bridge::iter_spawned), but a failure to start
    /// comes back as an [`Error`].
    ///
    /// # Errors
    ///
    /// As [`try_iter`](Bridge::try_iter).
    pub fn try_iter_spawned<M, S>(&self, make: M) -> Result<BlockingIter<S::Item>, Error>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        self.start()?;
        let (iter, producer) = iter::channel(self.owner.shared.config.stream_capacity);
        let produce = iter::produce(make, producer);
        #[cfg(feature = "tracing")]
        let produce = tracing::Instrument::instrument(produce, tracing::Span::current());
        // A panic left over (the stream's destructor, once the consumer has
        // gone) must not unwind into the runtime's executor.
        let task: crate::Task = Box::pin(async move {
            let _ = futures_lite::FutureExt::catch_unwind(AssertUnwindSafe(produce)).await;
        });
        let Err(task) = self.owner.shared.runtime.spawn(task) else {
            return Ok(iter);
        };
        let job: Job<R> = Box::new(move |rt: &R, _release: &mut dyn FnMut()| rt.block_on(task));
        self.shared()
            .submit(job, context::nested())
            .map_err(Error::Spawn)?;
        Ok(iter)
    }

    /// Starts `make`'s stream on a loop thread behind a channel of `capacity`
    /// items.
    pub(crate) fn spawn_iter<M, S>(
        &self,
        capacity: usize,
        make: M,
    ) -> Result<BlockingIter<S::Item>, Error>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + 'static,
        S::Item: Send + 'static,
    {
        self.start()?;
        let (iter, producer) = iter::channel(capacity);
        #[cfg(feature = "tracing")]
        let span = tracing::Span::current();
        let job: Job<R> = Box::new(move |rt: &R, _release: &mut dyn FnMut()| {
            #[cfg(feature = "tracing")]
            let _entered = span.enter();
            rt.block_on(iter::produce(make, producer));
        });
        self.shared()
            .submit(job, context::nested())
            .map_err(Error::Spawn)?;
        Ok(iter)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<R>> {
        &self.owner.shared
    }

    pub(crate) fn start(&self) -> Result<(), Error> {
        self.owner.shared.runtime.start().map_err(Error::Runtime)
    }

    pub(crate) fn catch<T>(&self, f: impl FnOnce() -> T) -> Result<T, Error> {
        catch_unwind(AssertUnwindSafe(f)).map_err(Error::panic)
    }

    /// Runs the call on this thread: one poll under the runtime's context,
    /// then the runtime's `block_on` (after a hand-off if asked).
    #[inline]
    #[track_caller]
    pub(crate) fn run_here<M, F>(&self, make: M, hand_off: bool) -> F::Output
    where
        M: FnOnce() -> F,
        F: Future,
    {
        let _depth = DepthGuard::enter();
        let rt = &self.owner.shared.runtime;
        let mut fut = pin!(async move { make().await });
        let finish = |fut| {
            if hand_off {
                context::hand_off(|| rt.block_on(fut))
            } else {
                rt.block_on(fut)
            }
        };
        // One poll and, if it is not ready, the whole wait under one `enter`.
        let mut unpolled = Some(fut.as_mut());
        let entered = rt.enter(|| {
            let mut fut = unpolled.take().expect("polled once");
            match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(out) => out,
                Poll::Pending => finish(fut),
            }
        });
        match entered {
            Some(out) => out,
            None => finish(unpolled.take().expect("not entered, not polled")),
        }
    }

    /// Runs the call on a loop thread and waits for its answer.
    fn hop<M, F>(&self, make: M) -> Result<F::Output, Error>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<F::Output, PanicPayload>>();
        #[cfg(feature = "tracing")]
        let span = tracing::Span::current();
        let job: Job<R> = Box::new(move |rt: &R, release: &mut dyn FnMut()| {
            #[cfg(feature = "tracing")]
            let _entered = span.enter();
            let out = catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async move { make().await })
            }));
            release();
            let _ = tx.send(out);
        });
        self.shared()
            .submit(job, context::nested())
            .map_err(Error::Spawn)?;
        backoff(|| !rx.has_message() && !rx.is_closed());
        match context::wait(move || rx.recv()) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(payload)) => Err(Error::panic(payload)),
            Err(_) => Err(Error::Lost),
        }
    }
}

#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send_sync_clone::<Bridge<crate::Pollster>>();
    send::<BlockingIter<u8>>();
    send::<Error>();
    sync::<Error>();
    // Debug whatever the runtime: a user's runtime need not be Debug.
    struct Plain;
    impl Runtime for Plain {
        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            pollster::block_on(fut)
        }
    }
    fn debug<T: fmt::Debug>() {}
    debug::<Bridge<Plain>>();
    debug::<Builder<Plain>>();
}
