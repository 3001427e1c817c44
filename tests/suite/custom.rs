//! A `Runtime` written by a user: only `block_on` is required, and every
//! entry point works with it from every calling context, with and without
//! the `enter` and `blocking_allowed` hooks, in an `Arc` too. The executors
//! here (`futures`' `block_on` and `LocalPool`) panic when nested inside
//! another `futures` executor: where `blocking_allowed` says so, the bridge
//! hops instead. Then the other hooks: `spawn_loop` (thread-locals it sets,
//! the thread name it is given, errors and panics it reports, a thread that
//! never runs its job) and `start` (a runtime that cannot start).

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, Builder, JoinHandle};
use std::time::Duration;

use executor_bridge::{Bridge, Runtime};
use futures_lite::stream;

use crate::common::{
    eventually, is_broken, message, thread_sleep, threads_named, watchdog, BoxFuture, Ctx, Payload,
    LIMIT,
};
use crate::contexts::{checks, fail, from_each, ms, Place};

/// The executor a [`User`] runtime drives futures with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    /// `futures::executor::block_on`: panics inside another `futures`
    /// executor.
    Futures,
    /// A fresh `futures::executor::LocalPool` per call: panics there too.
    LocalPool,
    /// `futures_lite::future::block_on`: nests anywhere.
    Lite,
}

/// A user's runtime: an engine, and which hooks it overrides.
#[derive(Clone, Copy, Debug)]
struct User {
    engine: Engine,
    /// Overrides `enter`: futures here are completed by other threads, so
    /// they may be polled outside `block_on`.
    enter: bool,
    /// Overrides `blocking_allowed` with `futures::executor::enter().is_ok()`.
    knows_nesting: bool,
}

impl Runtime for User {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match self.engine {
            Engine::Futures => futures::executor::block_on(fut),
            Engine::LocalPool => futures::executor::LocalPool::new().run_until(fut),
            Engine::Lite => futures_lite::future::block_on(fut),
        }
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.enter.then(f)
    }

    fn blocking_allowed(&self) -> bool {
        !self.knows_nesting || futures::executor::enter().is_ok()
    }
}

impl User {
    /// Whether `block_on` panics inside `futures::executor::block_on` and the
    /// runtime does not say so.
    fn nests_badly(&self) -> bool {
        self.engine != Engine::Lite && !self.knows_nesting
    }
}

/// The runtime-free timer: these runtimes have none of their own.
fn nap(d: Duration) -> BoxFuture<()> {
    Box::pin(thread_sleep(d))
}

/// Every entry point and three levels of nesting, from every place; a runtime
/// that nests badly is left out of `futures::executor::block_on` (see
/// [`a_runtime_that_nests_badly_panics_inside_a_futures_executor`]).
fn everything<R: Runtime>(bridge: Bridge<R>, nests_badly: bool) {
    watchdog(LIMIT * 2, move || {
        let places: Vec<Place> = Place::all()
            .into_iter()
            .filter(|p| !(nests_badly && *p == Place::Ctx(Ctx::FuturesBlockOn)))
            .collect();
        for (what, check) in checks::<R>() {
            from_each(what, &bridge, &places, nap, check);
        }
        from_each(
            "nested",
            &bridge,
            &places,
            nap,
            crate::contexts::check_nested::<R>,
        );
    });
}

macro_rules! user_runtimes {
    ($($name:ident: $engine:ident, enter $enter:literal, knows_nesting $knows:literal;)*) => {
        mod does_everything {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let rt = User { engine: Engine::$engine, enter: $enter, knows_nesting: $knows };
                    everything(Bridge::new(rt), rt.nests_badly());
                }
            )*
        }
        mod in_an_arc_does_everything {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let rt = User { engine: Engine::$engine, enter: $enter, knows_nesting: $knows };
                    everything(Bridge::new(Arc::new(rt)), rt.nests_badly());
                }
            )*
        }
    };
}

user_runtimes! {
    futures_executor: Futures, enter false, knows_nesting false;
    futures_executor_knowing_nesting: Futures, enter false, knows_nesting true;
    futures_executor_with_enter: Futures, enter true, knows_nesting false;
    futures_executor_with_enter_knowing_nesting: Futures, enter true, knows_nesting true;
    local_pool: LocalPool, enter false, knows_nesting false;
    local_pool_knowing_nesting: LocalPool, enter false, knows_nesting true;
    local_pool_with_enter: LocalPool, enter true, knows_nesting false;
    local_pool_with_enter_knowing_nesting: LocalPool, enter true, knows_nesting true;
    futures_lite: Lite, enter false, knows_nesting false;
    futures_lite_with_enter: Lite, enter true, knows_nesting false;
}

/// Called from inside `futures::executor::block_on`, a runtime whose
/// `block_on` would panic there but whose `blocking_allowed` says no: the
/// call does not nest the executor, it hops to a loop thread (with `enter`
/// or without: a future never waits on a thread that runs an executor).
#[test]
fn a_runtime_that_knows_it_cannot_nest_hops_inside_a_futures_executor() {
    for engine in [Engine::Futures, Engine::LocalPool] {
        for enter in [false, true] {
            let rt = User {
                engine,
                enter,
                knows_nesting: true,
            };
            let b = Bridge::builder(rt).thread_name("cu-hop").build();
            let (tried, ran_on) = watchdog(LIMIT, move || {
                futures::executor::block_on(async move {
                    let tried = b.try_run(|| async {
                        thread_sleep(ms(2)).await;
                        1
                    });
                    (tried.map_err(|e| e.to_string()), out_name(&b))
                })
            });
            assert_eq!(tried, Ok(1), "{rt:?}");
            assert!(ran_on.starts_with("cu-hop-"), "{rt:?}: ran on {ran_on}");
        }
    }
}

/// The name of the thread a pending call from here runs on.
fn out_name<R: Runtime>(b: &Bridge<R>) -> String {
    b.run(|| async {
        thread_sleep(ms(1)).await;
        thread::current().name().unwrap_or("").to_owned()
    })
}

/// The same runtimes without the `blocking_allowed` hook: the bridge cannot
/// know, calls `block_on` inside the executor, and the executor's panic comes
/// back to the caller as the call's panic (no hang, no abort); the bridge
/// stays usable. This is what the hook is for.
#[test]
fn a_runtime_that_nests_badly_panics_inside_a_futures_executor() {
    for engine in [Engine::Futures, Engine::LocalPool] {
        let rt = User {
            engine,
            enter: false,
            knows_nesting: false,
        };
        let b = Bridge::new(rt);
        let b2 = b.clone();
        let (tried, ran) = watchdog(LIMIT, move || {
            futures::executor::block_on(async move {
                let tried = b2
                    .try_run(|| async { 1 })
                    .map_err(|e| (e.is_panic(), e.to_string()));
                let ran = catch_unwind(AssertUnwindSafe(|| b2.run(|| async { 2 })))
                    .map_err(|p| message(&*p));
                (tried, ran)
            })
        });
        let (is_panic, text) = tried.expect_err("try_run nested the executor");
        assert!(is_panic, "{engine:?}: {text}");
        assert!(
            text.contains("cannot execute `LocalPool` executor from within another executor"),
            "{engine:?}: {text}"
        );
        let text = ran
            .expect_err("run nested the executor")
            .unwrap_or_default();
        assert!(
            text.starts_with("cannot execute `LocalPool` executor from within another executor"),
            "{engine:?}: {text}"
        );
        assert_eq!(
            watchdog(LIMIT, move || b.run(|| async { 3 })),
            3,
            "{engine:?}: still usable"
        );
    }
}

// ===== Hooks, instrumented =====

thread_local! {
    /// Set on the threads `spawn_loop` starts.
    static ON_OUR_LOOP: Cell<bool> = const { Cell::new(false) };
}

/// What an [`Instrumented`] runtime's `spawn_loop` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Spawn {
    /// Starts the thread, marking it.
    #[default]
    Mark,
    /// Refuses.
    Refuse,
    /// Panics.
    Panic,
    /// Starts the thread, then reports an error.
    StartThenFail,
    /// Starts a thread that drops its job without running it.
    DropMain,
}

/// Counts its hooks, marks its loop threads, and can be told to fail.
#[derive(Debug, Default)]
struct Instrumented {
    enter: bool,
    block_ons: AtomicUsize,
    starts: AtomicUsize,
    loops: AtomicUsize,
    refuse_start: AtomicBool,
    spawn: std::sync::Mutex<Spawn>,
}

impl Instrumented {
    fn new(enter: bool) -> Arc<Self> {
        Arc::new(Instrumented {
            enter,
            ..Instrumented::default()
        })
    }

    fn set_spawn(&self, spawn: Spawn) {
        *self.spawn.lock().unwrap() = spawn;
    }

    fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

impl Runtime for Instrumented {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.block_ons.fetch_add(1, Ordering::SeqCst);
        futures_lite::future::block_on(fut)
    }

    fn start(&self) -> io::Result<()> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        if self.refuse_start.load(Ordering::SeqCst) {
            Err(io::Error::new(io::ErrorKind::Unsupported, "no engine"))
        } else {
            Ok(())
        }
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.enter.then(f)
    }

    fn spawn_loop<F>(&self, thread: Builder, main: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        let spawn = *self.spawn.lock().unwrap();
        match spawn {
            Spawn::Refuse => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "no threads today",
            )),
            Spawn::Panic => panic!("spawn hook exploded"),
            Spawn::DropMain => thread.spawn(move || drop(main)),
            Spawn::Mark | Spawn::StartThenFail => {
                self.loops.fetch_add(1, Ordering::SeqCst);
                let handle = thread.spawn(move || {
                    ON_OUR_LOOP.with(|c| c.set(true));
                    main()
                })?;
                if spawn == Spawn::StartThenFail {
                    return Err(io::Error::other("started, then failed"));
                }
                Ok(handle)
            }
        }
    }
}

#[test]
fn ready_futures_skip_block_on_when_enter_is_provided() {
    let rt = Instrumented::new(true);
    let b = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        assert_eq!(b.run(|| async { 1 }), 1);
        assert_eq!(
            Instrumented::count(&rt.block_ons),
            0,
            "a ready future went through block_on"
        );
        // Pending at its first poll whatever the machine's load (a timer
        // could have fired before it).
        let pending = b.run(|| async {
            futures_lite::future::yield_now().await;
            2
        });
        assert_eq!(pending, 2);
        assert_eq!(Instrumented::count(&rt.block_ons), 1, "a pending future");
        assert!(
            Instrumented::count(&rt.starts) >= 2,
            "start is called before each call"
        );
    });
}

#[test]
fn without_enter_every_call_goes_through_block_on() {
    let rt = Instrumented::new(false);
    let b = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        assert_eq!(b.run(|| async { 1 }), 1);
        assert_eq!(Instrumented::count(&rt.block_ons), 1);
        let n = b.iter_direct(|| stream::iter([1, 2])).count();
        assert_eq!(n, 2);
        assert!(
            Instrumented::count(&rt.block_ons) >= 2,
            "iter_direct polls inside block_on too"
        );
    });
}

/// What a future sees of the thread it runs on.
fn on_loop() -> (bool, String) {
    (
        ON_OUR_LOOP.with(Cell::get),
        thread::current().name().unwrap_or("").to_owned(),
    )
}

/// Every call that runs on a loop thread runs on one `spawn_loop` started
/// (its thread-local set there is visible to the future) and named by the
/// bridge: `run_timeout`, `iter`, `reader`, a nested `run` and `iter_direct`
/// (the hook `enter` is not overridden, so nested calls hop). (A nested
/// `run_scoped` starts a thread of its own: see
/// [`loop_threads_are_the_ones_spawn_loop_prepared`].)
#[test]
fn loop_threads_are_the_ones_spawn_loop_starts() {
    let rt = Instrumented::new(false);
    let b = Bridge::builder(Arc::clone(&rt))
        .thread_name("cu-sl")
        .build();
    let seen = watchdog(LIMIT, move || {
        let mut seen = Vec::new();
        let timed = b
            .run_timeout(Duration::from_secs(LIMIT), || async { on_loop() })
            .unwrap();
        seen.push(("run_timeout", timed));
        let piped = b
            .iter(|| stream::once_future(async { on_loop() }))
            .next()
            .unwrap();
        seen.push(("iter", piped));
        let mut reader = b.reader(|| {
            let (on, name) = on_loop();
            futures_lite::io::Cursor::new(format!("{on} {name}").into_bytes())
        });
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        let (on, name) = text.split_once(' ').unwrap();
        seen.push(("reader", (on == "true", name.to_owned())));
        let inner = b.clone();
        let nested = b.run(move || async move {
            let run = inner.run(|| async { on_loop() });
            let direct = inner
                .iter_direct(|| stream::once_future(async { on_loop() }))
                .next()
                .unwrap();
            (run, direct)
        });
        seen.push(("a nested run", nested.0));
        seen.push(("a nested iter_direct", nested.1));
        seen
    });
    let mut failures = Vec::new();
    for (what, (on_our_loop, name)) in seen {
        if !on_our_loop || !name.starts_with("cu-sl-") {
            failures.push(format!(
                "{what}: on a thread spawn_loop started: {on_our_loop}, named {name:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));
    assert!(Instrumented::count(&rt.loops) >= 1);
}

/// A runtime that cannot start: every entry point reports its error, as an
/// `Error` (`is_runtime`, the cause kept), a panic with the error's text, or
/// an `io::Error` of the cause's kind; once it can start, the same bridge
/// works.
#[test]
fn a_runtime_that_cannot_start_is_an_error_everywhere() {
    let rt = Instrumented::new(false);
    rt.refuse_start.store(true, Ordering::SeqCst);
    let b = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        const PANIC: &str = "executor-bridge: the runtime failed: no engine";
        let err = b.try_run(|| async { 1 }).unwrap_err();
        assert!(
            err.is_runtime() && !err.is_spawn() && !err.is_panic(),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "the runtime failed: no engine");
        let err = b
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err();
        assert!(err.is_runtime(), "{err:?}");
        let panics: Vec<(&str, Option<String>)> = vec![
            (
                "run",
                catch_unwind(AssertUnwindSafe(|| b.run(|| async { 1 })))
                    .err()
                    .and_then(|p| message(&*p)),
            ),
            (
                "run_scoped",
                catch_unwind(AssertUnwindSafe(|| b.run_scoped(|| async { 1 })))
                    .err()
                    .and_then(|p| message(&*p)),
            ),
            (
                "iter's next",
                catch_unwind(AssertUnwindSafe(|| b.iter(|| stream::iter([1])).next()))
                    .err()
                    .and_then(|p| message(&*p)),
            ),
            (
                "iter_direct's next",
                catch_unwind(AssertUnwindSafe(|| {
                    b.iter_direct(|| stream::iter([1])).next()
                }))
                .err()
                .and_then(|p| message(&*p)),
            ),
        ];
        for (what, text) in panics {
            assert_eq!(text.as_deref(), Some(PANIC), "{what}");
        }
        let mut it = b.iter(|| stream::iter([1]));
        assert!(it
            .next_timeout(Duration::from_secs(1))
            .unwrap_err()
            .is_runtime());
        assert!(is_broken(&mut it), "an iterator that failed fails again");
        let mut direct = b.iter_direct(|| stream::iter([1]));
        assert!(direct
            .next_timeout(Duration::from_secs(1))
            .unwrap_err()
            .is_runtime());
        let mut reader = b.reader(|| futures_lite::io::Cursor::new(b"x".to_vec()));
        let err = reader.read(&mut [0; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        // Once it can start, the same bridge works.
        rt.refuse_start.store(false, Ordering::SeqCst);
        assert_eq!(b.run(|| async { 2 }), 2);
        assert_eq!(
            b.run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
        assert_eq!(b.iter(|| stream::iter([4])).collect::<Vec<_>>(), [4]);
    });
}

#[test]
#[should_panic(expected = "executor-bridge: the runtime failed: no engine")]
fn run_panics_when_start_fails() {
    let rt = Instrumented::new(false);
    rt.refuse_start.store(true, Ordering::SeqCst);
    Bridge::new(rt).run(|| async {});
}

/// A `spawn_loop` that refuses: calls needing a loop thread report
/// `is_spawn` with the hook's error; calls on the caller's thread still
/// run; the refused thread is not counted; once the hook accepts, it works.
#[test]
fn a_refused_loop_thread_is_an_error_and_the_bridge_recovers() {
    let rt = Instrumented::new(false);
    rt.set_spawn(Spawn::Refuse);
    let b = Bridge::builder(Arc::clone(&rt))
        .thread_name("cu-rf")
        .build();
    watchdog(LIMIT, move || {
        let err = b
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err();
        assert!(
            err.is_spawn() && !err.is_runtime() && !err.is_panic(),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "failed to start a loop thread: no threads today"
        );
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::PermissionDenied);
        let mut it = b.iter(|| stream::iter([1]));
        assert!(it
            .next_timeout(Duration::from_secs(1))
            .unwrap_err()
            .is_spawn());
        let text = catch_unwind(AssertUnwindSafe(|| b.iter(|| stream::iter([1])).next()))
            .err()
            .and_then(|p| message(&*p));
        assert_eq!(
            text.as_deref(),
            Some("executor-bridge: failed to start a loop thread: no threads today")
        );
        let mut reader = b.reader(|| futures_lite::io::Cursor::new(b"x".to_vec()));
        assert_eq!(
            reader.read(&mut [0; 4]).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        let inner = b.clone();
        let nested = b.run(move || async move { inner.try_run(|| async { 1 }).unwrap_err() });
        assert!(nested.is_spawn(), "a nested call: {nested:?}");
        assert_eq!(b.threads(), 0, "a refused thread is still counted");
        assert_eq!(threads_named("cu-rf"), 0);
        assert_eq!(
            b.run(|| async { 2 }),
            2,
            "a call on the caller's thread needs no loop thread"
        );
        rt.set_spawn(Spawn::Mark);
        assert_eq!(
            b.run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
        assert_eq!(b.iter(|| stream::iter([4])).collect::<Vec<_>>(), [4]);
    });
}

/// A `spawn_loop` that panics is reported like a refusal, with the panic's
/// text, and the bridge stays usable.
#[test]
fn a_panicking_spawn_loop_is_a_spawn_error() {
    let rt = Instrumented::new(false);
    rt.set_spawn(Spawn::Panic);
    let b = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        let err = b
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err();
        assert!(err.is_spawn() && !err.is_panic(), "{err:?}");
        assert_eq!(err.to_string(), "failed to start a loop thread: the runtime's `spawn_loop` panicked: spawn hook exploded");
        assert_eq!(b.threads(), 0);
        assert_eq!(b.run(|| async { 2 }), 2);
        rt.set_spawn(Spawn::Mark);
        assert_eq!(
            b.run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
    });
}

/// A hook that starts the thread and then reports an error: whether the
/// thread took the call first or not, the call either runs or reports
/// `is_spawn`, never hangs or loses its answer.
#[test]
fn a_spawn_loop_that_fails_after_starting_the_thread() {
    let rt = Instrumented::new(false);
    rt.set_spawn(Spawn::StartThenFail);
    let b = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        for i in 0..20u32 {
            match b.run_timeout(Duration::from_secs(LIMIT), move || async move { i }) {
                Ok(v) => assert_eq!(v, i),
                Err(e) => assert!(e.is_spawn(), "call {i}: {e:?}"),
            }
        }
        rt.set_spawn(Spawn::Mark);
        assert_eq!(
            b.run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
    });
}

/// A loop thread that goes away without running its job (a hook that drops
/// `main`): the call reports that, it does not hang.
#[test]
fn a_loop_thread_that_never_runs_its_job_is_reported() {
    let rt = Instrumented::new(false);
    rt.set_spawn(Spawn::DropMain);
    let b = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        let err = b
            .run_timeout(Duration::from_secs(LIMIT), || async { 1 })
            .unwrap_err();
        assert!(
            !err.is_panic() && !err.is_timeout() && !err.is_spawn() && !err.is_runtime(),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the loop thread went away without an answer"
        );
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::Other);
        let mut it = b.iter(|| stream::iter([1]));
        let err = it.next_timeout(Duration::from_secs(LIMIT)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the loop thread went away without an answer"
        );
        let mut reader = b.reader(|| futures_lite::io::Cursor::new(b"x".to_vec()));
        let err = reader.read(&mut [0; 4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the loop thread went away without an answer"
        );
        assert_eq!(
            b.run(|| async { 2 }),
            2,
            "a call on the caller's thread still runs"
        );
        rt.set_spawn(Spawn::Mark);
        assert_eq!(
            b.run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
    });
}

#[test]
#[should_panic(expected = "executor-bridge: the loop thread went away without an answer")]
fn next_panics_when_the_loop_thread_went_away() {
    let rt = Instrumented::new(false);
    rt.set_spawn(Spawn::DropMain);
    let b = Bridge::new(rt);
    let _ = b.iter(|| stream::iter([1])).next();
}

/// A thread-local a runtime wants, set by its `spawn_loop`: every call that
/// goes to a loop thread runs on a thread the hook prepared. `run_scoped`'s
/// scoped thread is documented not to come from the hook (a borrowing
/// future cannot go to a loop thread): it still runs, unprepared.
#[test]
fn loop_threads_are_the_ones_spawn_loop_prepared() {
    thread_local! {
        static PREPARED: Cell<bool> = const { Cell::new(false) };
    }
    #[derive(Debug)]
    struct Picky;
    impl Runtime for Picky {
        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            futures_lite::future::block_on(fut)
        }
        fn spawn_loop<F>(&self, thread: Builder, main: F) -> io::Result<JoinHandle<()>>
        where
            F: FnOnce() + Send + 'static,
        {
            thread.spawn(move || {
                PREPARED.with(|p| p.set(true));
                main()
            })
        }
    }
    let prepared = || async { PREPARED.with(Cell::get) };
    let b = Bridge::new(Picky);
    let out = watchdog(LIMIT, move || {
        let inner = b.clone();
        // The outer call runs in place, on the test's unprepared thread; the
        // nested ones cannot, and go to loop threads.
        b.run(move || async move {
            let outer = PREPARED.with(Cell::get);
            let run = inner.run(prepared);
            let timed = inner
                .run_timeout(Duration::from_secs(LIMIT), prepared)
                .unwrap();
            let piped: Vec<bool> = inner
                .iter(|| stream::once_future(async { PREPARED.with(Cell::get) }))
                .collect();
            let tried = inner.try_run(prepared).unwrap();
            let scoped = inner.run_scoped(prepared);
            (outer, run, timed, piped, tried, scoped)
        })
    });
    assert_eq!(out, (false, true, true, vec![true], true, false));
}

/// A panic in a user runtime's future keeps its payload on every path.
#[test]
fn panics_keep_their_payload_on_a_user_runtime() {
    let b = Bridge::new(User {
        engine: Engine::Futures,
        enter: false,
        knows_nesting: true,
    });
    watchdog(LIMIT, move || {
        for place in Place::all() {
            let (tried, ran) = place.run(&b, |b| {
                let tried = b.try_run(|| async {
                    thread_sleep(ms(1)).await;
                    fail::<u32>(Payload(1))
                });
                let ran = catch_unwind(AssertUnwindSafe(|| {
                    b.run(|| async {
                        thread_sleep(ms(1)).await;
                        panic!("custom-boom")
                    })
                }));
                (
                    tried.map_err(|e| e.into_panic().downcast_ref::<Payload>().map(|p| p.0)),
                    ran.map_err(|p| message(&*p)),
                )
            });
            assert_eq!(tried, Err(Some(1)), "{place:?}");
            assert_eq!(ran, Err(Some("custom-boom".to_owned())), "{place:?}");
        }
    });
}

/// Idle loop threads of a user runtime exit after the idle timeout.
#[test]
fn idle_loop_threads_of_a_user_runtime_exit() {
    let rt = Instrumented::new(false);
    let b = Bridge::builder(Arc::clone(&rt))
        .thread_name("cu-id")
        .idle_timeout(ms(100))
        .build();
    let b2 = b.clone();
    watchdog(LIMIT, move || {
        b2.run_timeout(Duration::from_secs(LIMIT), || async { 1 })
            .unwrap()
    });
    assert!(
        eventually(Duration::from_secs(LIMIT / 2), || b.threads() == 0
            && threads_named("cu-id") == 0),
        "idle threads left"
    );
}

/// A runtime whose waker, once it has woken the caller parked in
/// `block_on`, does not return until that caller's call has returned (or 5
/// seconds pass): a waker slow to return, as a preempted producer thread's
/// is. The bridge must hold no lock of its own across the runtime's wake-up
/// that the woken caller needs on its way out.
#[derive(Clone, Default)]
struct SlowWaker {
    state: Arc<SlowState>,
}

#[derive(Default)]
struct SlowState {
    /// The caller's call returned.
    returned: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
    /// A wake-up gave up waiting for the call to return.
    gave_up: AtomicBool,
}

struct Parked {
    thread: thread::Thread,
    state: Arc<SlowState>,
}

impl std::task::Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.thread.unpark();
        if thread::current().id() == self.thread.id() {
            return;
        }
        let returned = self.state.returned.lock().unwrap();
        let (returned, timeout) = self
            .state
            .changed
            .wait_timeout_while(returned, Duration::from_secs(5), |r| !*r)
            .unwrap();
        if timeout.timed_out() && !*returned {
            self.state.gave_up.store(true, Ordering::SeqCst);
        }
    }
}

impl Runtime for SlowWaker {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let waker = std::task::Waker::from(Arc::new(Parked {
            thread: thread::current(),
            state: Arc::clone(&self.state),
        }));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            thread::park();
        }
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        Some(f())
    }
}

#[test]
fn a_waker_slow_to_return_does_not_hold_up_the_woken_call() {
    watchdog(LIMIT, || {
        let rt = SlowWaker::default();
        let state = Arc::clone(&rt.state);
        let bridge = Bridge::new(rt);
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.send(7).expect("the call waits");
        });
        // The first poll is made before `block_on` (the runtime has
        // `enter`), so the sender wakes the bridge's waker, which wakes the
        // runtime's.
        let out = bridge.run(move || async move { rx.await.expect("sent") });
        *state.returned.lock().unwrap() = true;
        state.changed.notify_all();
        sender.join().expect("sender");
        assert_eq!(out, 7);
        assert!(
            !state.gave_up.load(Ordering::SeqCst),
            "the call returned only after the runtime's waker did"
        );
    });
}
