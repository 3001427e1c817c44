//! A `Runtime` written by a user: only `block_on` is required, and every
//! feature of the bridge works with it, nested calls included (the
//! executors below panic when nested; the bridge hops instead).

mod common;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{Builder, JoinHandle};
use std::time::{Duration, Instant};

use common::suite::{fail, is_set, message, thread_sleep, DropFlag, Payload, LIMIT};
use common::{eventually, watchdog};
use executor_bridge::{Bridge, Runtime};
use futures_lite::{stream, StreamExt};

/// `futures::executor::block_on`: panics if nested in another executor.
#[derive(Debug)]
struct FuturesExecutor;

impl Runtime for FuturesExecutor {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures::executor::block_on(fut)
    }
}

/// A fresh `LocalPool` per call: also panics if nested.
#[derive(Debug)]
struct LocalPoolRuntime;

impl Runtime for LocalPoolRuntime {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures::executor::LocalPool::new().run_until(fut)
    }
}

fn nap(ms: u64) -> impl Future<Output = ()> {
    thread_sleep(Duration::from_millis(ms))
}

fn level<R: Runtime>(b: Bridge<R>, depth: u32) -> u32 {
    if depth == 0 {
        return 0;
    }
    let inner = b.clone();
    b.run(move || async move {
        nap(1).await;
        level(inner, depth - 1) + 1
    })
}

fn everything<R: Runtime>(bridge: Bridge<R>) {
    watchdog(LIMIT, move || {
        let b = &bridge;
        // run, with a !Send future
        let out = b.run(|| async {
            let rc = std::rc::Rc::new(41u32);
            nap(2).await;
            *rc + 1
        });
        assert_eq!(out, 42);
        // try_run, with a panic
        let err = b
            .try_run(|| async {
                nap(1).await;
                fail::<u32>(Payload(1))
            })
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(
            err.into_panic().downcast_ref::<Payload>(),
            Some(&Payload(1))
        );
        let payload = catch_unwind(AssertUnwindSafe(|| {
            b.run(|| async {
                nap(1).await;
                panic!("custom-boom")
            })
        }))
        .unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"custom-boom"));
        // run_timeout, both ways
        assert_eq!(
            b.run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
        let (guard, flag) = DropFlag::new();
        let start = Instant::now();
        let err = b
            .run_timeout(Duration::from_millis(50), move || async move {
                let _guard = guard;
                std::future::pending::<()>().await
            })
            .unwrap_err();
        assert!(err.is_timeout());
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(is_set(&flag), "the future outlived run_timeout");
        // iter: ordered, live-cancelled on drop
        let items: Vec<u32> = b
            .iter(|| {
                stream::iter(0..5u32).then(|i| async move {
                    nap(1).await;
                    i
                })
            })
            .collect();
        assert_eq!(items, [0, 1, 2, 3, 4]);
        let (guard, flag) = DropFlag::new();
        let mut it = b.iter(move || {
            stream::once(1u32).chain(stream::unfold(guard, |g| async move {
                std::future::pending::<()>().await;
                Some((2, g))
            }))
        });
        assert_eq!(it.next(), Some(1));
        drop(it);
        assert!(eventually(Duration::from_secs(5), || is_set(&flag)));
        // nested: run in run in run, iter in run, run in a stream
        assert_eq!(level(b.clone(), 3), 3);
        let (b1, b2) = (b.clone(), b.clone());
        let mixed = b.run(move || async move {
            b1.iter(move || {
                stream::iter(0..3u32).then(move |i| {
                    let b2 = b2.clone();
                    async move { i + b2.run(|| async { 10 }) }
                })
            })
            .sum::<u32>()
        });
        assert_eq!(mixed, 33);
    });
}

#[test]
fn nesting_these_executors_directly_panics() {
    // What the bridge avoids: the reason the nested tests below matter.
    let direct = catch_unwind(|| {
        futures::executor::block_on(async { futures::executor::block_on(async { 1 }) })
    });
    assert!(direct.is_err());
}

#[test]
fn futures_executor_does_everything() {
    everything(Bridge::new(FuturesExecutor));
}

#[test]
fn local_pool_does_everything() {
    everything(Bridge::new(LocalPoolRuntime));
}

#[test]
fn a_shared_runtime_in_an_arc_does_everything() {
    everything(Bridge::new(Arc::new(FuturesExecutor)));
}

/// Counts its hooks, marks its loop threads, and can be told to fail.
#[derive(Debug, Default)]
struct Instrumented {
    block_ons: AtomicUsize,
    loops: AtomicUsize,
    refuse_start: AtomicBool,
    refuse_threads: AtomicBool,
}

thread_local! {
    static ON_OUR_LOOP: Cell<bool> = const { Cell::new(false) };
}

impl Runtime for Instrumented {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.block_ons.fetch_add(1, Ordering::SeqCst);
        futures_lite::future::block_on(fut)
    }

    fn start(&self) -> io::Result<()> {
        if self.refuse_start.load(Ordering::SeqCst) {
            Err(io::Error::other("no engine"))
        } else {
            Ok(())
        }
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        Some(f())
    }

    fn spawn_loop<F>(&self, thread: Builder, main: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        if self.refuse_threads.load(Ordering::SeqCst) {
            return Err(io::Error::other("no threads today"));
        }
        self.loops.fetch_add(1, Ordering::SeqCst);
        thread.spawn(move || {
            ON_OUR_LOOP.with(|c| c.set(true));
            main()
        })
    }
}

#[test]
fn ready_futures_skip_block_on_when_enter_is_provided() {
    let rt = Arc::new(Instrumented::default());
    let bridge = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        assert_eq!(bridge.run(|| async { 1 }), 1);
        assert_eq!(
            rt.block_ons.load(Ordering::SeqCst),
            0,
            "a ready future went through block_on"
        );
        assert_eq!(
            bridge.run(|| async {
                nap(1).await;
                2
            }),
            2
        );
        assert_eq!(rt.block_ons.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn loop_threads_are_started_by_spawn_loop_with_the_bridges_name() {
    let rt = Arc::new(Instrumented::default());
    let bridge = Bridge::builder(Arc::clone(&rt)).thread_name("ebC1").build();
    let (on_loop, name) = watchdog(LIMIT, move || {
        bridge
            .run_timeout(Duration::from_secs(LIMIT), || async {
                (
                    ON_OUR_LOOP.with(Cell::get),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .unwrap()
    });
    assert!(
        on_loop,
        "the call did not run on a thread made by spawn_loop"
    );
    assert!(
        name.as_deref().unwrap_or("").starts_with("ebC1-"),
        "{name:?}"
    );
    assert_eq!(rt.loops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_runtime_that_cannot_start_is_an_error() {
    let rt = Arc::new(Instrumented::default());
    rt.refuse_start.store(true, Ordering::SeqCst);
    let bridge = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        let err = bridge.try_run(|| async { 1 }).unwrap_err();
        assert!(err.is_spawn(), "{err:?}");
        assert_eq!(err.to_string(), "failed to start the runtime: no engine");
        assert!(bridge
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err()
            .is_spawn());
        assert!(bridge
            .try_iter(|| stream::iter([1]))
            .unwrap_err()
            .is_spawn());
        let panic = catch_unwind(AssertUnwindSafe(|| bridge.run(|| async { 1 }))).unwrap_err();
        let text = message(&*panic).unwrap_or_default();
        assert!(
            text.starts_with("executor-bridge: failed to start the runtime: no engine"),
            "{text}"
        );
        // Once it can start, the same bridge works.
        rt.refuse_start.store(false, Ordering::SeqCst);
        assert_eq!(bridge.run(|| async { 2 }), 2);
    });
}

#[test]
fn a_refused_loop_thread_is_an_error_and_the_bridge_recovers() {
    let rt = Arc::new(Instrumented::default());
    rt.refuse_threads.store(true, Ordering::SeqCst);
    let bridge = Bridge::new(Arc::clone(&rt));
    watchdog(LIMIT, move || {
        let err = bridge
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err();
        assert!(err.is_spawn(), "{err:?}");
        assert!(err.to_string().contains("no threads today"), "{err}");
        assert!(bridge
            .try_iter(|| stream::iter([1]))
            .unwrap_err()
            .is_spawn());
        assert_eq!(bridge.threads(), 0, "a refused thread is still counted");
        assert_eq!(bridge.run(|| async { 2 }), 2, "inline calls need no thread");
        rt.refuse_threads.store(false, Ordering::SeqCst);
        assert_eq!(
            bridge
                .run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
        assert_eq!(bridge.iter(|| stream::iter([4])).collect::<Vec<_>>(), [4]);
    });
}
