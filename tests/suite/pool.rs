//! The pool of loop threads: lazy start, names, reuse, idle exit, exit with
//! the last clone, the thread limit and its queue, and the accounting
//! (`threads()`, the `Debug` counters) on every path.
//!
//! Every bridge here has a thread name of its own, so counts by name are this
//! test's own even while other tests run. Also home of the helpers the other
//! modules of this group (faults, stress, tokio_adapter) share.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use executor_bridge::{BlockingIter, Bridge, Pollster, Runtime};
use futures_lite::{stream, Stream, StreamExt};

use crate::common::{
    self, eventually, per_runtime, threads_named, watchdog, Ctx, TestRuntime, LIMIT,
};

// ---------------------------------------------------------------------------
// Shared helpers.
// ---------------------------------------------------------------------------

/// A deadline no call of these tests should reach.
pub(crate) const LONG: Duration = Duration::from_secs(30);

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A thread name for a bridge of this test and adapter: `base` plus the
/// adapter's initial (p, t, s, a). Keep `base` at most 10 bytes: Linux keeps
/// 15 of a thread's name.
pub(crate) fn tagged<R: TestRuntime>(base: &str) -> String {
    format!("{base}{}", &R::NAME[..1])
}

/// Loop threads of the bridge named `name` that the kernel lists.
pub(crate) fn alive(name: &str) -> usize {
    threads_named(&format!("{name}-"))
}

/// The calling thread's name.
pub(crate) fn this_thread() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

/// The counters a bridge's `Debug` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) threads: usize,
    pub(crate) idle: usize,
    pub(crate) queued: usize,
}

fn debug_field(debug: &str, field: &str) -> usize {
    let key = format!(" {field}: ");
    let at = debug
        .find(&key)
        .unwrap_or_else(|| panic!("no `{field}` in {debug}"))
        + key.len();
    let digits: String = debug[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("`{field}` is no number in {debug}"))
}

/// `threads`, `idle_threads` and `queued`, read from the bridge's `Debug`.
pub(crate) fn stats<R: Runtime>(bridge: &Bridge<R>) -> Stats {
    let debug = format!("{bridge:?}");
    Stats {
        threads: debug_field(&debug, "threads"),
        idle: debug_field(&debug, "idle_threads"),
        queued: debug_field(&debug, "queued"),
    }
}

/// Waits (a while) until the bridge is at rest: every thread it counts is
/// alive and idle, nothing is queued, and the kernel lists exactly the
/// threads it counts.
#[track_caller]
pub(crate) fn assert_settled<R: Runtime>(bridge: &Bridge<R>, name: &str, what: &str) {
    let ok = eventually(Duration::from_secs(10), || {
        let s = stats(bridge);
        s.queued == 0
            && s.idle == s.threads
            && alive(name) == s.threads
            && bridge.threads() == s.threads
    });
    assert!(
        ok,
        "{what}: not at rest: {:?}, {} threads named {name}-",
        stats(bridge),
        alive(name)
    );
}

/// Waits until no thread named `name-*` is left.
#[track_caller]
pub(crate) fn assert_all_gone(name: &str, what: &str) {
    assert!(
        eventually(Duration::from_secs(10), || alive(name) == 0),
        "{what}: {} loop threads named {name}- left",
        alive(name)
    );
}

/// Yields one item, then waits forever: holds a loop thread while alive.
pub(crate) fn held() -> impl Stream<Item = u32> {
    stream::once(1u32).chain(stream::pending())
}

/// An iterator that holds one loop thread of `bridge` until dropped.
pub(crate) fn hold<R: Runtime>(bridge: &Bridge<R>) -> BlockingIter<u32> {
    let mut it = bridge.iter(held);
    assert_eq!(it.next(), Some(1), "the holding stream did not start");
    it
}

/// `0..n`, each item after a short block of its thread (so it works on
/// every runtime and takes its time).
pub(crate) fn slow(n: u32) -> impl Stream<Item = u32> {
    stream::iter(0..n).map(|i| {
        thread::sleep(ms(2));
        i
    })
}

/// `0..n`, each item after a sleep on the runtime's own timer.
pub(crate) fn ticks<R: TestRuntime>(n: u32) -> impl Stream<Item = u32> + Send {
    stream::iter(0..n).then(|i| async move {
        R::sleep(ms(1)).await;
        i
    })
}

/// A runtime whose `enter` says no, as a user's runtime may: every call
/// from a tokio runtime, and every nested call, hops to a loop thread.
#[derive(Clone, Debug)]
pub(crate) struct Hopping<R>(pub(crate) R);

impl<R: Runtime> Runtime for Hopping<R> {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }

    fn start(&self) -> io::Result<()> {
        self.0.start()
    }

    fn blocking_allowed(&self) -> bool {
        self.0.blocking_allowed()
    }
}

/// What [`Flaky::spawn_loop`] does.
pub(crate) const SPAWN_OK: u8 = 0;
pub(crate) const SPAWN_ERR: u8 = 1;
pub(crate) const SPAWN_PANIC: u8 = 2;
/// Starts the thread, lets it take its job, then reports an error anyway.
pub(crate) const SPAWN_THEN_ERR: u8 = 3;

/// A runtime whose `spawn_loop` hook fails on command.
#[derive(Clone, Debug)]
pub(crate) struct Flaky<R> {
    pub(crate) inner: R,
    pub(crate) mode: Arc<AtomicU8>,
}

impl<R> Flaky<R> {
    pub(crate) fn new(inner: R) -> Self {
        Flaky {
            inner,
            mode: Arc::new(AtomicU8::new(SPAWN_OK)),
        }
    }

    pub(crate) fn set(&self, mode: u8) {
        self.mode.store(mode, SeqCst);
    }
}

impl<R: Runtime> Runtime for Flaky<R> {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.inner.block_on(fut)
    }

    fn start(&self) -> io::Result<()> {
        self.inner.start()
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.inner.enter(f)
    }

    fn blocking_allowed(&self) -> bool {
        self.inner.blocking_allowed()
    }

    fn spawn_loop<F>(&self, thread: thread::Builder, main: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        match self.mode.load(SeqCst) {
            SPAWN_OK => thread.spawn(main),
            SPAWN_ERR => Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "flaky: no thread today",
            )),
            SPAWN_PANIC => panic!("flaky: spawn_loop blew up"),
            _ => {
                let (started, wait) = mpsc::channel();
                let handle = thread.spawn(move || {
                    let _ = started.send(());
                    main()
                })?;
                let _ = wait.recv_timeout(LONG);
                // `main` takes its job first thing: give it the time to.
                thread::sleep(ms(20));
                drop(handle);
                Err(io::Error::other("flaky: failed after spawning"))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Lazy start, names, reuse.
// ---------------------------------------------------------------------------

fn an_unused_bridge_owns_no_thread<R: TestRuntime>() {
    let name = tagged::<R>("plUnused");
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    let clone = bridge.clone();
    assert_eq!(bridge.threads(), 0);
    assert_eq!(alive(&name), 0);
    assert_eq!(
        stats(&bridge),
        Stats {
            threads: 0,
            idle: 0,
            queued: 0
        }
    );
    // A plain thread drives its calls itself: still no loop thread.
    let out = bridge.run(|| async {
        R::sleep(ms(1)).await;
        1
    });
    assert_eq!(out, 1);
    assert_eq!(bridge.try_run(|| async { 2 }).unwrap(), 2);
    assert_eq!(
        bridge.iter_direct(|| ticks::<R>(3)).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    thread::sleep(ms(20));
    assert_eq!(clone.threads(), 0, "{clone:?}");
    assert_eq!(alive(&name), 0);
}

fn loop_threads_carry_the_configured_name<R: TestRuntime>() {
    let name = tagged::<R>("plName");
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    let inner = bridge.clone();
    let nested = bridge
        .run(move || async move { inner.run_timeout(LONG, || async { this_thread() }).unwrap() });
    let timed = bridge
        .run_timeout(LONG, || async { this_thread() })
        .unwrap();
    let mut it =
        bridge.iter(|| stream::once_future(async { this_thread() }).chain(stream::pending()));
    let streamed = it.next().unwrap();
    for got in [&nested, &timed, &streamed] {
        assert!(
            got.starts_with(&format!("{name}-")),
            "ran on {got:?}, not a thread named {name}-N"
        );
    }
    assert!(
        alive(&name) >= 1,
        "no thread named {name}- in /proc/self/task"
    );
    assert_eq!(alive(&name), bridge.threads());
}

fn idle_threads_are_reused<R: TestRuntime>() {
    let name = tagged::<R>("plReuse");
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    let mut most = 0;
    for i in 0..50u32 {
        let out = bridge.run_timeout(LONG, move || async move { i }).unwrap();
        assert_eq!(out, i);
        most = most.max(bridge.threads());
        let inner = bridge.clone();
        let nested = bridge
            .run(move || async move { inner.run_timeout(LONG, move || async move { i + 1 }) });
        assert_eq!(nested.unwrap(), i + 1);
        most = most.max(bridge.threads());
    }
    // A call is answered once its thread is idle again, so calls one after
    // another always find that thread free.
    assert_eq!(most, 1, "{most} loop threads for calls made one at a time");
    assert_settled(&bridge, &name, "after 100 calls");
}

per_runtime!(
    an_unused_bridge_owns_no_thread,
    loop_threads_carry_the_configured_name,
    idle_threads_are_reused
);

// ---------------------------------------------------------------------------
// Idle exit and shutdown.
// ---------------------------------------------------------------------------

fn idle_threads_exit_after_the_idle_timeout<R: TestRuntime>() {
    let name = tagged::<R>("plIdle");
    let idle = ms(300);
    let bridge = Bridge::builder(R::make())
        .thread_name(&name)
        .idle_timeout(idle)
        .build();
    let iters: Vec<_> = (0..3).map(|_| hold(&bridge)).collect();
    assert_eq!(bridge.threads(), 3);
    assert_eq!(alive(&name), 3);
    drop(iters);
    let since = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || bridge.threads() == 0
            && alive(&name) == 0),
        "idle threads still alive: {:?}, {} named",
        stats(&bridge),
        alive(&name)
    );
    let took = since.elapsed();
    assert!(
        took >= idle / 2,
        "threads exited after {took:?}, before the idle timeout"
    );
    // Threads start again when needed.
    let it = hold(&bridge);
    assert_eq!(bridge.threads(), 1);
    assert_eq!(bridge.run_timeout(LONG, || async { 5 }).unwrap(), 5);
    assert_eq!(bridge.threads(), 2);
    drop(it);
    assert!(eventually(Duration::from_secs(10), || bridge.threads()
        == 0
        && alive(&name) == 0));
}

fn all_loop_threads_exit_when_the_last_clone_is_dropped<R: TestRuntime>() {
    let name = tagged::<R>("plLast");
    let bridge = Bridge::builder(R::make())
        .thread_name(&name)
        .idle_timeout(Duration::from_secs(3600))
        .build();
    let iters: Vec<_> = (0..4).map(|_| hold(&bridge)).collect();
    drop(iters);
    assert_settled(&bridge, &name, "four threads, idle");
    let clone = bridge.clone();
    drop(bridge);
    thread::sleep(ms(50));
    assert_eq!(alive(&name), 4, "a live clone keeps the pool");
    assert_eq!(clone.run_timeout(LONG, || async { 3 }).unwrap(), 3);
    drop(clone);
    // Idle threads are told to exit (and joined) by the drop itself: long
    // before their idle timeout. (The kernel may list a joined thread a
    // moment longer.)
    assert_all_gone(&name, "idle loop threads outlived the last clone");
}

fn calls_and_iterators_in_flight_complete_after_the_last_clone_is_dropped<R: TestRuntime>() {
    let name = tagged::<R>("plFly");
    let build = || {
        Bridge::builder(R::make())
            .thread_name(&name)
            .idle_timeout(Duration::from_secs(3600))
            .max_threads(2)
            .build()
    };

    // Iterators do not keep the bridge, they keep the pool: the only clone
    // is dropped at once, two streams running and four waiting in the queue.
    let bridge = build();
    let iters: Vec<BlockingIter<u32>> = (0..6).map(|_| bridge.iter(|| slow(20))).collect();
    let direct = bridge.iter_direct(|| ticks::<R>(20));
    drop(bridge);
    let consumers: Vec<_> = iters
        .into_iter()
        .map(|it| thread::spawn(move || it.collect::<Vec<u32>>()))
        .collect();
    for consumer in consumers {
        assert_eq!(
            consumer.join().unwrap(),
            (0..20).collect::<Vec<_>>(),
            "an iterator was cut short"
        );
    }
    assert_eq!(direct.collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
    assert_all_gone(&name, "iterators done");

    // Calls on other threads, each with its own clone, hopping; this thread
    // drops its clone while they are in flight, the last one to finish drops
    // the last clone.
    let bridge = build();
    let mut direct = bridge.iter_direct(|| ticks::<R>(5));
    assert_eq!(direct.next(), Some(0));
    let started = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..4u32)
        .map(|i| {
            let (b, started) = (bridge.clone(), Arc::clone(&started));
            thread::spawn(move || {
                let inner = b.clone();
                b.run(move || async move {
                    started.fetch_add(1, SeqCst);
                    // nested: a loop thread of its own
                    inner
                        .run_timeout(LONG, move || async move {
                            R::sleep(ms(100)).await;
                            i
                        })
                        .unwrap()
                })
            })
        })
        .collect();
    let timed = {
        let b = bridge.clone();
        thread::spawn(move || {
            b.run_timeout(LONG, || async {
                R::sleep(ms(100)).await;
                7
            })
        })
    };
    assert!(eventually(LONG, || started.load(SeqCst) == 4));
    drop(bridge);
    for (i, caller) in callers.into_iter().enumerate() {
        assert_eq!(caller.join().unwrap(), i as u32);
    }
    assert_eq!(timed.join().unwrap().unwrap(), 7);
    assert_eq!(direct.collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_all_gone(&name, "calls done");
}

fn a_bridge_dropped_on_its_own_loop_thread<R: TestRuntime>() {
    let name = tagged::<R>("plSelf");
    // The context comes from another bridge, so that nothing but the stream
    // holds a clone of this one.
    let carrier = Bridge::new(Pollster);
    for ctx in Ctx::all() {
        // `run` borrows a clone for the whole call, so the last clone can only
        // end up on a loop thread inside a stream the bridge runs.
        let bridge = Bridge::builder(R::make())
            .thread_name(&name)
            .idle_timeout(Duration::from_secs(3600))
            .build();
        let (go, wait) = async_channel::bounded::<()>(1);
        let last = bridge.clone();
        let dropped_on = ctx.run(&carrier, move |_| {
            let it = bridge.iter(move || {
                stream::once_future(async move {
                    let _ = wait.recv().await;
                    drop(last);
                    this_thread()
                })
            });
            drop(bridge);
            go.send_blocking(()).unwrap();
            it.collect::<Vec<String>>()
        });
        assert_eq!(dropped_on.len(), 1, "{ctx:?}");
        assert!(
            dropped_on[0].starts_with(&name),
            "{ctx:?}: dropped on {dropped_on:?}"
        );
        assert_all_gone(&name, &format!("{ctx:?}, consumed"));

        // The same with the iterator dropped before its stream ends.
        let bridge = Bridge::builder(R::make())
            .thread_name(&name)
            .idle_timeout(Duration::from_secs(3600))
            .build();
        let (tx, dropped) = mpsc::channel();
        let last = bridge.clone();
        ctx.run(&carrier, move |_| {
            let guard = crate::faults::ReportDrop(tx);
            let mut it = bridge.iter(move || {
                stream::iter(0u32..).map(move |i| {
                    let _ = (&last, &guard);
                    i
                })
            });
            drop(bridge);
            assert_eq!(it.next(), Some(0));
        });
        let on = dropped.recv_timeout(LONG).unwrap();
        assert!(on.starts_with(&name), "{ctx:?}: dropped on {on}");
        assert_all_gone(&name, &format!("{ctx:?}, dropped early"));
    }
}

per_runtime!(
    idle_threads_exit_after_the_idle_timeout,
    all_loop_threads_exit_when_the_last_clone_is_dropped,
    calls_and_iterators_in_flight_complete_after_the_last_clone_is_dropped,
    a_bridge_dropped_on_its_own_loop_thread
);

#[test]
fn an_endless_idle_timeout_keeps_the_loop_threads_working() {
    watchdog(LIMIT, || {
        let bridge = Bridge::builder(Pollster)
            .thread_name("plIdleMax")
            .idle_timeout(Duration::MAX)
            .build();
        for i in 0..5u32 {
            assert_eq!(
                bridge.run_timeout(LONG, move || async move { i }).unwrap(),
                i
            );
            thread::sleep(ms(10));
        }
        assert_eq!(bridge.threads(), 1);
        drop(bridge);
        assert_all_gone("plIdleMax", "dropped");
    });
}

/// A zero idle timeout: threads retire as soon as they are idle, racing with
/// callers that hand them work; nothing may be lost.
fn a_zero_idle_timeout_loses_no_call<R: TestRuntime>() {
    let name = tagged::<R>("plIdle0");
    let bridge = Bridge::builder(R::make())
        .thread_name(&name)
        .idle_timeout(Duration::ZERO)
        .build();
    let callers: Vec<_> = (0..4u32)
        .map(|t| {
            let b = bridge.clone();
            thread::spawn(move || {
                for i in 0..150u32 {
                    let v = t * 1000 + i;
                    assert_eq!(b.run_timeout(LONG, move || async move { v }).unwrap(), v);
                    if i % 25 == 0 {
                        let n: Vec<u32> = b.iter(move || stream::iter(0..v % 7)).collect();
                        assert_eq!(n.len() as u32, v % 7);
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
    assert!(
        eventually(LONG, || bridge.threads() == 0 && alive(&name) == 0),
        "{:?}",
        stats(&bridge)
    );
}

per_runtime!(a_zero_idle_timeout_loses_no_call);

// ---------------------------------------------------------------------------
// The thread limit and its queue.
// ---------------------------------------------------------------------------

fn max_threads_bounds_the_outer_calls_and_queues_the_rest<R: TestRuntime>() {
    let name = tagged::<R>("plMax");
    let bridge = Bridge::builder(R::make())
        .thread_name(&name)
        .max_threads(2)
        .build();
    let (release, wait) = async_channel::bounded::<()>(1);
    let callers: Vec<_> = (0..6u32)
        .map(|i| {
            let (b, wait) = (bridge.clone(), wait.clone());
            thread::spawn(move || {
                b.run_timeout(LONG, move || async move {
                    let _ = wait.recv().await;
                    i
                })
                .unwrap()
            })
        })
        .collect();
    // Two run, four wait in the queue.
    assert!(
        eventually(Duration::from_secs(10), || stats(&bridge)
            == Stats {
                threads: 2,
                idle: 0,
                queued: 4
            }),
        "{:?}",
        stats(&bridge)
    );
    thread::sleep(ms(50));
    assert_eq!(
        stats(&bridge),
        Stats {
            threads: 2,
            idle: 0,
            queued: 4
        }
    );
    assert_eq!(alive(&name), 2);
    release.close();
    let mut most = 0;
    while callers.iter().any(|c| !c.is_finished()) {
        most = most.max(bridge.threads()).max(alive(&name));
        thread::sleep(ms(1));
    }
    let outs: Vec<u32> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(outs, [0, 1, 2, 3, 4, 5]);
    assert!(most <= 2, "{most} loop threads with max_threads(2)");
    assert_settled(&bridge, &name, "queue drained");
}

fn nested_calls_never_wait_for_a_thread<R: TestRuntime>() {
    // One thread allowed, busy with the outer call: nested calls would wait
    // for it forever if they queued.
    let (name, bridge) = one_thread::<R>("plNest");
    let b1 = bridge.clone();
    let out = bridge
        .run_timeout(LONG, move || async move {
            let b2 = b1.clone();
            let run =
                b1.run(move || async move { b2.run_timeout(LONG, || async { 1u32 }).unwrap() + 1 });
            let timed = b1.run_timeout(LONG, || async { 10u32 }).unwrap();
            let iter: u32 = b1.iter(|| stream::iter([1u32, 2])).sum();
            let mut direct = b1.iter_direct(|| stream::iter([100u32]));
            let direct = direct.next_timeout(LONG).unwrap().unwrap();
            run + timed + iter + direct
        })
        .unwrap();
    assert_eq!(out, 115);
    assert_settled(&bridge, &name, "after nested calls");
}

/// A bridge of at most one loop thread, named after `tag` and the adapter.
fn one_thread<R: TestRuntime>(tag: &str) -> (String, Bridge<R>) {
    let name = tagged::<R>(tag);
    let bridge = Bridge::builder(R::make())
        .thread_name(&name)
        .max_threads(1)
        .build();
    (name, bridge)
}

fn max_threads_one_runs_queued_work_in_turn<R: TestRuntime>() {
    let (name, bridge) = one_thread::<R>("plMax1");
    let iters: Vec<_> = (0..4).map(|_| bridge.iter(|| slow(10))).collect();
    assert_eq!(stats(&bridge).queued, 3);
    for it in iters {
        assert_eq!(it.collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    }
    assert_settled(&bridge, &name, "after queued iterators");
    assert_eq!(bridge.threads(), 1);
}

fn run_timeout_returns_while_its_call_waits_in_the_queue<R: TestRuntime>() {
    let (name, bridge) = one_thread::<R>("plQueue");
    let it = hold(&bridge);
    let (guard, made) = common::DropFlag::new();
    let start = Instant::now();
    let err = bridge
        .run_timeout(ms(100), move || {
            let _guard = guard;
            async { 1 }
        })
        .unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        took >= ms(100) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // Taken out of the queue, its factory dropped, never run.
    assert!(
        common::is_set(&made),
        "the factory of a call cancelled in the queue is still alive"
    );
    assert_eq!(stats(&bridge).queued, 0);
    drop(it);
    assert_eq!(bridge.run_timeout(LONG, || async { 2 }).unwrap(), 2);
    assert_settled(&bridge, &name, "after a timeout in the queue");
}

/// A call cancelled in the queue whose factory's destructor panics: the
/// panic is `run_timeout`'s error, with its payload, never an unwind into the
/// caller (found from outside: it unwound).
fn a_queued_factory_whose_drop_panics_is_an_error_not_an_unwind<R: TestRuntime>() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            std::panic::panic_any(7u32);
        }
    }
    let (name, bridge) = one_thread::<R>("plQPanic");
    let it = hold(&bridge);
    let bomb = PanicsOnDrop;
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bridge.run_timeout(ms(50), move || {
            let _bomb = bomb;
            async { 1 }
        })
    }));
    let err = got
        .expect("run_timeout unwound instead of returning an error")
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.into_panic().downcast::<u32>().ok().map(|p| *p), Some(7));
    drop(it);
    assert_eq!(bridge.run_timeout(LONG, || async { 2 }).unwrap(), 2);
    assert_settled(&bridge, &name, "after a panicking drop in the queue");
}

per_runtime!(
    max_threads_bounds_the_outer_calls_and_queues_the_rest,
    nested_calls_never_wait_for_a_thread,
    max_threads_one_runs_queued_work_in_turn,
    run_timeout_returns_while_its_call_waits_in_the_queue,
    a_queued_factory_whose_drop_panics_is_an_error_not_an_unwind
);

/// Regression: 16 callers inside tokio current_thread runtimes, each outer
/// call making a nested call (which may start a thread beyond the limit):
/// the thread a nested call started must not take queued outer calls beyond
/// the limit, and the queue must drain.
#[cfg(feature = "tokio")]
fn outer_calls_stay_within_max_threads_while_nested_calls_start_threads<R: TestRuntime>() {
    // Outer `run` that hops (a runtime whose `enter` says no), nested `run`
    // that hops too; then outer and nested `run_timeout` on the adapter
    // itself.
    fn load<Q: Runtime, R: TestRuntime>(bridge: Bridge<Q>, name: &str, timeout: bool) {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..16u32)
            .map(|i| {
                let (b, running, most) = (bridge.clone(), Arc::clone(&running), Arc::clone(&most));
                thread::spawn(move || {
                    common::current_thread().block_on(async move {
                        let inner = b.clone();
                        let call = move || async move {
                            let now = running.fetch_add(1, SeqCst) + 1;
                            most.fetch_max(now, SeqCst);
                            let nested = move || async move {
                                R::sleep(ms(5)).await;
                                i
                            };
                            let got = if timeout {
                                inner.run_timeout(LONG, nested).unwrap()
                            } else {
                                inner.run(nested)
                            };
                            R::sleep(ms(2)).await;
                            running.fetch_sub(1, SeqCst);
                            got * 2
                        };
                        if timeout {
                            b.run_timeout(LONG, call).unwrap()
                        } else {
                            b.run(call)
                        }
                    })
                })
            })
            .collect();
        let outs: Vec<u32> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(outs, (0..16).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(SeqCst);
        assert!(
            most <= 2,
            "{most} outer calls ran at once with max_threads(2) (timeout: {timeout})"
        );
        assert!(most >= 1);
        assert_settled(&bridge, name, "the queue drained");
    }
    let name = tagged::<R>("plOuterH");
    load::<_, R>(
        Bridge::builder(Hopping(R::make()))
            .thread_name(&name)
            .max_threads(2)
            .build(),
        &name,
        false,
    );
    let name = tagged::<R>("plOuterT");
    load::<_, R>(
        Bridge::builder(R::make())
            .thread_name(&name)
            .max_threads(2)
            .build(),
        &name,
        true,
    );
}

#[cfg(feature = "tokio")]
per_runtime!(outer_calls_stay_within_max_threads_while_nested_calls_start_threads);

/// Regression: calls that time out while queued leave nothing behind: with
/// the only loop thread held, 200,000 `run_timeout(ZERO)` all time out, the
/// queue is empty after each, and a later hop is not slowed by dead entries.
#[test]
fn two_hundred_thousand_timeouts_in_the_queue_leave_it_empty() {
    watchdog(120, || {
        let bridge = Bridge::builder(Pollster)
            .thread_name("plZero")
            .max_threads(1)
            .build();
        let it = bridge.iter(held);
        // Unread: the stream is not even polled, but it holds the thread.
        assert!(eventually(Duration::from_secs(10), || bridge.threads() == 1));
        let made = Arc::new(AtomicUsize::new(0));
        for i in 0..200_000u32 {
            let made = Arc::clone(&made);
            let err = bridge
                .run_timeout(Duration::ZERO, move || {
                    made.fetch_add(1, SeqCst);
                    async move { i }
                })
                .unwrap_err();
            assert!(err.is_timeout(), "call {i}: {err:?}");
            if i % 20_000 == 0 {
                assert_eq!(stats(&bridge).queued, 0, "after call {i}");
            }
        }
        assert!(format!("{bridge:?}").contains(" queued: 0,"), "{bridge:?}");
        assert_eq!(
            made.load(SeqCst),
            0,
            "a call cancelled in the queue ran its factory"
        );
        assert_eq!(bridge.threads(), 1);
        drop(it);
        assert!(eventually(Duration::from_secs(10), || stats(&bridge).idle == 1));
        let start = Instant::now();
        assert_eq!(bridge.run_timeout(LONG, || async { 7 }).unwrap(), 7);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "a hop after 200,000 timeouts took {took:?}"
        );
        assert_eq!(made.load(SeqCst), 0);
        assert_settled(&bridge, "plZero", "after the timeouts");
    });
}

// ---------------------------------------------------------------------------
// `threads()` is exact on every path.
// ---------------------------------------------------------------------------

fn threads_counts_the_loop_threads_alive_on_every_path<R: TestRuntime>() {
    let name = tagged::<R>("plCount");
    let flaky = Flaky::new(R::make());
    let bridge = Bridge::builder(flaky.clone())
        .thread_name(&name)
        .idle_timeout(Duration::from_secs(3600))
        .max_threads(1)
        .build();
    let settled = |what: &str| assert_settled(&bridge, &name, what);

    // Success.
    assert_eq!(bridge.run_timeout(LONG, || async { 1 }).unwrap(), 1);
    settled("success");
    assert_eq!(bridge.threads(), 1);

    // Panics: the thread survives them.
    let err = bridge
        .run_timeout(LONG, || async { panic!("count-boom") })
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    let inner = bridge.clone();
    let nested = bridge
        .run(move || async move { inner.run_timeout(LONG, || async { panic!("nested-boom") }) });
    assert!(nested.unwrap_err().is_panic());
    let mut it = bridge
        .iter(|| stream::iter(0..3u32).map(|i| if i == 1 { panic!("stream-boom") } else { i }));
    assert_eq!(it.next(), Some(0));
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next())).is_err());
    settled("panics");

    // Timeouts: while running, and while queued behind a held thread.
    let err = bridge
        .run_timeout(ms(10), std::future::pending::<()>)
        .unwrap_err();
    assert!(err.is_timeout());
    settled("timeout while running");
    let held = hold(&bridge);
    let err = bridge.run_timeout(ms(10), || async { 1 }).unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(stats(&bridge).queued, 0, "a timed-out call stayed queued");
    drop(held);
    settled("timeout while queued");

    // Spawn failures: a nested call needs a new thread (the only one is busy).
    let threads = bridge.threads();
    for mode in [SPAWN_ERR, SPAWN_PANIC] {
        let f = flaky.clone();
        let inner = bridge.clone();
        let err = bridge
            .run_timeout(LONG, move || async move {
                f.set(mode);
                let err = inner.run_timeout(LONG, || async { 1 }).unwrap_err();
                f.set(SPAWN_OK);
                err
            })
            .unwrap();
        assert!(err.is_spawn(), "{err:?}");
        settled("spawn failure");
        assert_eq!(bridge.threads(), threads, "a failed start was counted");
    }

    // Dropped: every thread goes.
    drop(bridge);
    assert_all_gone(&name, "bridge dropped");
}

per_runtime!(threads_counts_the_loop_threads_alive_on_every_path);
