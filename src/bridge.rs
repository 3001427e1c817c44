//! [`Bridge`] and [`Builder`]: the per-call dispatch.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::context::{self, Placement};
use crate::error::Payload;
use crate::pool::{self, Job, Pool, Ticket};
use crate::{wait, Error, Runtime};

/// Runs async code from blocking code, correctly from any calling context.
///
/// A `Bridge` owns a [`Runtime`] and a pool of loop threads. Each call looks
/// at the calling thread: the future runs on the caller's thread where
/// nothing of the caller's own runtime can leak into it (a plain thread, a
/// tokio worker after a hand-off), and on a loop thread otherwise
/// ([the table](crate#how-each-calling-context-is-served)). Where it ran
/// never changes what the caller sees: the same output, the same panic
/// payload, the same timeout behaviour. Only the factory closure and the
/// output cross threads, so the future itself may be `!Send`; every value of
/// the caller's that the bridge drops is dropped in its runtime's context.
///
/// `Bridge` is cheap to clone; clones share the runtime and the pool. The
/// pool starts no thread until a call needs one; idle threads exit after the
/// idle timeout (10 s by default, see [`Builder`]), and all of them once the
/// last clone is dropped. Calls, iterators and IO objects still alive at that
/// moment keep working: they keep the runtime alive until they are done.
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
///
/// A bridge for the whole process, in one line:
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
/// use std::sync::LazyLock;
///
/// static BRIDGE: LazyLock<Bridge<Pollster>> = LazyLock::new(Bridge::default);
///
/// assert_eq!(BRIDGE.run(|| async { 7 }), 7);
/// ```
pub struct Bridge<R: Runtime> {
    owner: Arc<Owner<R>>,
}

/// The part whose drop stops the pool: loop threads, iterators and IO
/// objects keep the [`Pool`] alive, not this.
struct Owner<R: Runtime> {
    pool: Arc<Pool<R>>,
    stream_capacity: usize,
}

impl<R: Runtime> Drop for Owner<R> {
    fn drop(&mut self) {
        self.pool.shutdown();
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
        let pool = &self.owner.pool;
        f.debug_struct("Bridge")
            .field("runtime", &std::any::type_name::<R>())
            .field("threads", &pool.threads())
            .field("idle_threads", &pool.idle())
            .field("queued", &pool.queued())
            .field("thread_name", &pool.config.thread_name)
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
///     .thread_name("db")
///     .idle_timeout(Duration::from_secs(2))
///     .max_threads(8)
///     .stream_capacity(64)
///     .build();
/// assert_eq!(bridge.run(|| async { 1 }), 1);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<R: Runtime> {
    runtime: R,
    pool: pool::Config,
    stream_capacity: usize,
}

impl<R: Runtime> fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("runtime", &std::any::type_name::<R>())
            .field("pool", &self.pool)
            .field("stream_capacity", &self.stream_capacity)
            .finish()
    }
}

impl<R: Runtime> Builder<R> {
    /// Prefix of the loop threads' names: thread `n` is named `{name}-{n}`.
    /// Default `"bridge"`.
    ///
    /// Linux shows the first 15 bytes of a thread's name (in `ps`, `top`,
    /// debuggers): keep the prefix short enough for the number to show.
    ///
    /// # Panics
    ///
    /// Panics if `name` contains a NUL byte, which no thread name may hold.
    #[track_caller]
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(
            !name.contains('\0'),
            "executor-bridge: a thread name may not contain a NUL byte: {name:?}"
        );
        self.pool.thread_name = name;
        self
    }

    /// Stack size of the loop threads, in bytes. Default: the standard
    /// library's (2 MiB, or `RUST_MIN_STACK`).
    ///
    /// A size the system refuses makes the calls that need a new thread fail
    /// ([`Error::is_spawn`]); the bridge stays usable.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.pool.stack_size = Some(bytes);
        self
    }

    /// How long a loop thread waits for work before it exits. Default 10 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool.idle_timeout = timeout;
        self
    }

    /// The most calls that run on loop threads at once. Default 512.
    ///
    /// When that many are running, further calls that need a loop thread wait
    /// in a queue, and [`run_timeout`](Bridge::run_timeout) still returns at
    /// its deadline (its call taken out of the queue). Nested calls (made
    /// from inside a bridged future) never wait: they could be waiting for
    /// themselves, so they may start a thread beyond the limit, and such a
    /// thread never takes a queued call beyond it.
    ///
    /// A live [`BlockingIter`](crate::BlockingIter) made by
    /// [`iter`](Bridge::iter), a [`reader`](Bridge::reader), a
    /// [`writer`](Bridge::writer) and a [`sink`](Bridge::sink) each hold a
    /// loop thread until they end or are dropped, and count here; one that
    /// waits in the queue and is dropped is taken out of it, its factory
    /// never called.
    ///
    /// # Panics
    ///
    /// Panics if `max` is 0.
    #[track_caller]
    pub fn max_threads(mut self, max: usize) -> Self {
        assert!(max > 0, "executor-bridge: max_threads must be at least 1");
        self.pool.max_threads = max;
        self
    }

    /// How many items a stream bridged by [`iter`](Bridge::iter) may run
    /// ahead of the consumer. Default 0: the stream is polled only while
    /// [`next`](Iterator::next) waits for an item, as
    /// `futures::executor::block_on_stream` does, so nothing is taken from
    /// its source before the consumer asks.
    ///
    /// With a capacity, the loop thread keeps polling while the consumer is
    /// busy with earlier items (a slow consumer and a slow source overlap),
    /// and items travel in batches of what the stream had ready: throughput
    /// for bulk streams. The stream runs at most `capacity` items ahead; the
    /// consumer tops its demand up each time half of it was used (one wake of
    /// the loop thread per `capacity / 2` items), so a consumer that pauses
    /// finds between half of `capacity` and all of it read ahead. Items read
    /// ahead are dropped with the iterator.
    pub fn stream_capacity(mut self, capacity: usize) -> Self {
        self.stream_capacity = capacity;
        self
    }

    /// Builds the bridge. No thread starts until a call needs one.
    pub fn build(self) -> Bridge<R> {
        Bridge {
            owner: Arc::new(Owner {
                pool: Pool::new(self.runtime, self.pool),
                stream_capacity: self.stream_capacity,
            }),
        }
    }
}

impl<R: Runtime> Bridge<R> {
    /// A bridge over `runtime` with the default settings.
    pub fn new(runtime: R) -> Self {
        Bridge::builder(runtime).build()
    }

    /// A [`Builder`] to set thread names, the idle timeout, the thread limit
    /// and the stream capacity.
    pub fn builder(runtime: R) -> Builder<R> {
        Builder {
            runtime,
            pool: pool::Config::default(),
            stream_capacity: 0,
        }
    }

    /// The runtime this bridge drives.
    pub fn runtime(&self) -> &R {
        &self.owner.pool.runtime
    }

    /// Number of loop threads alive right now, busy or idle.
    pub fn threads(&self) -> usize {
        self.owner.pool.threads()
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
    /// - "executor-bridge: failed to start a loop thread: ..." or
    ///   "executor-bridge: the runtime failed: ..." if the call needed a thread
    ///   or a runtime that could not be started; [`try_run`](Bridge::try_run)
    ///   returns these as an [`Error`].
    /// - The runtime's refusals of the calling context: a task of a bridge's
    ///   own caller-driven [`Tokio`](crate::Tokio) runtime, a task on a
    ///   [`SmolExecutor`](crate::SmolExecutor)'s own thread (messages starting
    ///   "executor-bridge:", listed on the adapters). Every blocking entry
    ///   point of the bridge, its iterators, writers and sinks refuses the
    ///   same contexts.
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the future completes. A future that
    /// needs the runtime the caller is itself driving (a task of the caller's
    /// own current_thread runtime) can never complete: use
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
        match context::placement(self.runtime()) {
            Placement::Hop => match self.hop(make, None) {
                Ok(out) => out,
                Err(e) => e.raise(),
            },
            here => context::in_place(self.runtime(), here, async move { make().await }),
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
    /// - [`is_panic`](Error::is_panic) if the future, `make` or the future's
    ///   destructor panicked, with the payload intact;
    /// - [`is_spawn`](Error::is_spawn) / [`is_runtime`](Error::is_runtime) if
    ///   a loop thread or the runtime could not be started.
    ///
    /// # Panics
    ///
    /// Only the refusals of the calling context listed on
    /// [`run`](Bridge::run), which are not the future's panics.
    ///
    /// # Blocking
    ///
    /// As [`run`](Bridge::run).
    #[track_caller]
    pub fn try_run<M, F>(&self, make: M) -> Result<F::Output, Error>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.start()?;
        match context::placement(self.runtime()) {
            Placement::Hop => self.hop(make, None),
            here => match context::catch(|| {
                context::in_place(self.runtime(), here, async move { make().await })
            }) {
                Ok(out) => Ok(out),
                Err(payload) if context::misused() => context::resume_misuse(payload),
                Err(payload) => Err(Error::panic(payload)),
            },
        }
    }

    /// Like [`try_run`](Bridge::try_run), but gives up after `timeout`.
    ///
    /// The future always runs on a loop thread, so the calling thread can
    /// watch the clock. When the deadline passes, the future is dropped on its
    /// loop thread at its next `.await` point, and `run_timeout` returns once
    /// its destructor has run. A call still waiting in the queue (see
    /// [`Builder::max_threads`]) is taken out of it and its factory dropped,
    /// in the runtime's context. An output made after the caller gave up is
    /// dropped on the loop thread, in the runtime's context.
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
    /// A fallible future gives a nested `Result`. Most client errors convert
    /// from [`std::io::Error`], which this crate's [`Error`] converts into,
    /// so two `?` unwrap both without an error type of your own:
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use std::io;
    /// use std::time::Duration;
    ///
    /// # #[derive(Debug)] struct DbError;
    /// # impl From<io::Error> for DbError { fn from(_: io::Error) -> Self { DbError } }
    /// # async fn query() -> Result<u32, DbError> { Ok(3) }
    /// fn count(bridge: &Bridge<Pollster>) -> Result<u32, DbError> {
    ///     // `DbError: From<io::Error>`, as `sqlx::Error` is.
    ///     let n = bridge.run_timeout(Duration::from_secs(5), query).map_err(io::Error::from)??;
    ///     Ok(n)
    /// }
    /// assert_eq!(count(&Bridge::new(Pollster)).unwrap(), 3);
    /// ```
    ///
    /// # Errors
    ///
    /// [`is_timeout`](Error::is_timeout) if the deadline passed; otherwise as
    /// [`try_run`](Bridge::try_run). A panic raised by the future's destructor
    /// while it is being cancelled is reported as a panic, however long the
    /// panic hook takes. An output that was ready when the deadline passed is
    /// returned, not dropped.
    ///
    /// # Caveats
    ///
    /// A future that blocks its thread in a poll (a synchronous sleep, a busy
    /// loop) cannot be dropped until it yields: `run_timeout` then returns
    /// [`is_timeout`](Error::is_timeout) at most 20 ms after the deadline
    /// (later only if the machine is so loaded that the caller is not
    /// scheduled meanwhile), and the future is dropped on its loop thread
    /// when it next yields, the thread counted busy until then. A destructor
    /// that has started is waited for: one that blocks delays the return by
    /// as long. Costs one hop (a few microseconds) even where `run` would run
    /// on the caller's thread; the future does not see the caller's
    /// thread-locals (tokio's `task_local!` values included).
    #[track_caller]
    pub fn run_timeout<M, F>(&self, timeout: Duration, make: M) -> Result<F::Output, Error>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.start()?;
        context::check(self.runtime());
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.hop(make, Some((deadline, timeout))),
            // A deadline too far to represent never comes.
            None => self.hop(make, None),
        }
    }

    pub(crate) fn start(&self) -> Result<(), Error> {
        self.runtime().start().map_err(Error::runtime)
    }

    pub(crate) fn pool(&self) -> &Arc<Pool<R>> {
        &self.owner.pool
    }

    pub(crate) fn stream_capacity(&self) -> usize {
        self.owner.stream_capacity
    }

    /// Runs the call on a loop thread and waits for its answer, until
    /// `deadline` if there is one.
    #[track_caller]
    fn hop<M, F>(&self, make: M, deadline: Option<(Instant, Duration)>) -> Result<F::Output, Error>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        // Boxed: the hop's machinery is compiled once per output type, not
        // once per call site, for two allocations beside a thread's wake-up.
        // `make` still runs on the loop thread, at the first poll.
        self.hop_boxed(
            Box::new(move || Box::pin(async move { make().await })),
            deadline,
        )
    }

    #[track_caller]
    fn hop_boxed<O: Send + 'static>(
        &self,
        make: Make<O>,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<O, Error> {
        let (reply, mut answer) = oneshot::async_channel();
        // Only a call with a deadline can be cancelled, or needs to tell
        // what its future is doing when the deadline passes.
        let (cancel, watch) = match deadline {
            Some(_) => {
                let (cancel, cancelled) = oneshot::async_channel::<()>();
                let state = Arc::new(AtomicU8::new(PARKED));
                (Some(cancel), Some((cancelled, state)))
            }
            None => (None, None),
        };
        let state = watch.as_ref().map(|(_, state)| Arc::clone(state));
        let job = Call {
            make: Some(make),
            carry: crate::Carry::capture(),
            watch,
            out: None,
            reply: Some(reply),
        };
        let ticket = self
            .pool()
            .submit(Box::new(job), context::nested())
            .map_err(Error::thread)?;
        let answer = match wait::block_on(&mut answer, deadline.map(|(at, _)| at)) {
            Some(Ok(answer)) => answer,
            Some(Err(_)) => return Err(Error::lost()),
            None => {
                let (Some((_, timeout)), Some(state)) = (deadline, state) else {
                    unreachable!("no deadline, no timeout")
                };
                if let Ticket::Queued(id) = ticket {
                    if let Some(job) = self.pool().cancel(id) {
                        // It never started: its factory is dropped where
                        // the call would have run it; a panic of its
                        // destructor is the call's answer, as it would have
                        // been there.
                        let dropped = catch_unwind(AssertUnwindSafe(|| self.pool().dispose(job)));
                        return Err(match dropped {
                            Ok(()) => Error::timeout(timeout),
                            Err(payload) => Error::panic(payload),
                        });
                    }
                }
                drop(cancel);
                match wait_cancelled(&mut answer, &state) {
                    Some(answer) => answer,
                    None => return Err(Error::timeout(timeout)),
                }
            }
        };
        match answer {
            Ok(Some(out)) => Ok(out),
            Ok(None) => Err(Error::timeout(deadline.map_or(Duration::MAX, |(_, d)| d))),
            Err(payload) => Err(Error::panic(payload)),
        }
    }
}

/// What a call with a deadline is doing, for the caller that gave up on it.
const PARKED: u8 = 0;
const POLLING: u8 = 1;
const DROPPING: u8 = 2;

/// How long a timed-out call waits for its future to be dropped while the
/// future is inside a poll (blocking its thread, or computing).
const BLOCKED_GRACE: Duration = Duration::from_millis(20);

/// After a deadline: waits for the cancelled call's answer. While the
/// future is parked its drop is prompt; once its destructor has started,
/// its outcome is awaited, however long it takes (a panic there is the
/// call's answer); a future found inside a poll at the deadline and still
/// there a [`BLOCKED_GRACE`] later blocks its thread, and the caller gives
/// up on it.
fn wait_cancelled<T>(answer: &mut oneshot::AsyncReceiver<T>, state: &AtomicU8) -> Option<T> {
    let mut was_polling = state.load(Ordering::Acquire) == POLLING;
    loop {
        let until = match state.load(Ordering::Acquire) {
            DROPPING => None,
            _ => Some(Instant::now() + BLOCKED_GRACE),
        };
        match wait::block_on(&mut *answer, until) {
            Some(Ok(answer)) => return Some(answer),
            Some(Err(_)) => return None,
            None => {
                let polling = state.load(Ordering::Acquire) == POLLING;
                if polling && was_polling {
                    return None;
                }
                was_polling = polling;
            }
        }
    }
}

/// A hop: runs `make`'s future on a loop thread, and sends the answer back
/// once the thread is free again.
struct Call<M, O> {
    make: Option<M>,
    carry: crate::Carry,
    /// For a call with a deadline: its cancel signal (the sender dropped), and
    /// what its future is doing ([`PARKED`], [`POLLING`], [`DROPPING`]).
    watch: Option<(oneshot::AsyncReceiver<()>, Arc<AtomicU8>)>,
    out: Option<Answer<O>>,
    reply: Option<oneshot::Sender<Answer<O>>>,
}

/// A hop's factory, boxed.
type Make<O> = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = O>>> + Send>;

/// A hop's answer: the output, `None` if it was cancelled first, or the
/// panic.
type Answer<O> = Result<Option<O>, Payload>;

impl<R, M, F> Job<R> for Call<M, F::Output>
where
    R: Runtime,
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    fn run(&mut self, rt: &R) {
        let Some(make) = self.make.take() else {
            return;
        };
        let watch = self.watch.take();
        let out = self.carry.run(|| {
            catch_unwind(AssertUnwindSafe(|| match watch {
                Some((cancelled, state)) => rt.block_on(async move {
                    // The cancel signal is polled first: once it fired, the
                    // future is dropped without another poll.
                    let stop = async move {
                        let _ = cancelled.await;
                        None
                    };
                    // `make` too runs inside `Tracked`: a factory that blocks
                    // its thread counts as inside a poll.
                    let run =
                        async { Some(Tracked::new(async move { make().await }, &state).await) };
                    let out = futures_lite::future::or(stop, run).await;
                    state.store(PARKED, Ordering::Release);
                    out
                }),
                None => Some(rt.block_on(async move { make().await })),
            }))
        });
        self.out = Some(out);
    }

    fn finish(mut self: Box<Self>, rt: &R) {
        if let (Some(out), Some(reply)) = (self.out.take(), self.reply.take()) {
            if let Err(undelivered) = reply.send(out) {
                // The caller gave up: the output is dropped where it was
                // made, in the runtime's context.
                let out = undelivered.into_inner();
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    rt.block_on(async move { drop(out) });
                }));
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that tells, through `state`, when it is inside a poll or
    /// its destructor.
    struct Tracked<'a, F> {
        #[pin]
        fut: F,
        state: &'a AtomicU8,
    }

    impl<F> PinnedDrop for Tracked<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            this.state.store(DROPPING, Ordering::Release);
        }
    }
}

impl<'a, F> Tracked<'a, F> {
    fn new(fut: F, state: &'a AtomicU8) -> Self {
        Tracked { fut, state }
    }
}

impl<F: Future> Future for Tracked<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        this.state.store(POLLING, Ordering::Release);
        let out = this.fut.poll(cx);
        this.state.store(PARKED, Ordering::Release);
        out
    }
}

#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send_sync_clone::<Bridge<crate::Pollster>>();
    send::<crate::BlockingIter<u8>>();
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
