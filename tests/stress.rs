//! Load: many callers on one bridge, inline and hopping; many iterators
//! dropped early; many timeouts at once. Tests run one at a time, so thread
//! counts are this test's own.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use common::{eventually, threads_named, watchdog};
use executor_bridge::{Bridge, Pollster, Runtime};
use futures_lite::future::yield_now;
use futures_lite::{stream, StreamExt};

const CALLERS: usize = 32;
const CALLS: u32 = 2_000;
const LIMIT: u64 = 300;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sum each caller expects from its calls.
fn expected() -> u64 {
    u64::from(CALLS) * u64::from(CALLS - 1) / 2
}

/// Runs `caller(bridge, index)` on `CALLERS` threads at once (under the
/// watchdog) while sampling the pool; returns each caller's result and the
/// most loop threads seen, counted by the bridge and by name.
fn load<R, T>(
    bridge: &Bridge<R>,
    prefix: &'static str,
    caller: impl Fn(Bridge<R>, usize) -> T + Send + Sync + 'static,
) -> (Vec<T>, usize, usize)
where
    R: Runtime,
    T: Send + 'static,
{
    let bridge = bridge.clone();
    watchdog(LIMIT, move || {
        let caller = Arc::new(caller);
        let start = Arc::new(Barrier::new(CALLERS));
        let done = Arc::new(AtomicBool::new(false));
        let monitor = {
            let (bridge, done) = (bridge.clone(), Arc::clone(&done));
            thread::spawn(move || {
                let (mut most, mut named) = (0, 0);
                while !done.load(Ordering::SeqCst) {
                    most = most.max(bridge.threads());
                    named = named.max(threads_named(prefix));
                    thread::sleep(Duration::from_millis(1));
                }
                (most, named)
            })
        };
        let callers: Vec<_> = (0..CALLERS)
            .map(|i| {
                let (bridge, caller, start) =
                    (bridge.clone(), Arc::clone(&caller), Arc::clone(&start));
                thread::Builder::new()
                    .name(format!("caller-{i}"))
                    .spawn(move || {
                        start.wait();
                        caller(bridge, i)
                    })
                    .unwrap()
            })
            .collect();
        let outs: Vec<T> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        let (most, named) = monitor.join().unwrap();
        (outs, most, named)
    })
}

/// `CALLS` calls, each yielding once so it is not ready at the first poll.
fn calls<R: Runtime>(b: &Bridge<R>) -> u64 {
    (0..CALLS)
        .map(|i| {
            b.run(move || async move {
                yield_now().await;
                u64::from(i)
            })
        })
        .sum()
}

#[test]
fn inline_calls_from_32_threads() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).thread_name("ebS1").build();
    let (sums, most, named) = load(&bridge, "ebS1", |b, _| calls(&b));
    assert!(sums.iter().all(|&s| s == expected()), "{sums:?}");
    assert_eq!((most, named), (0, 0), "inline calls started loop threads");
}

#[cfg(feature = "tokio")]
#[test]
fn inline_calls_from_32_threads_on_tokio() {
    let _serial = serial();
    let bridge = Bridge::builder(executor_bridge::Tokio::new())
        .thread_name("ebS2")
        .build();
    let (sums, most, named) = load(&bridge, "ebS2", |b, _| {
        (0..CALLS)
            .map(|i| {
                b.run(move || async move {
                    tokio::task::yield_now().await;
                    u64::from(i)
                })
            })
            .sum::<u64>()
    });
    assert!(sums.iter().all(|&s| s == expected()), "{sums:?}");
    assert_eq!((most, named), (0, 0), "inline calls started loop threads");
}

#[test]
fn nested_calls_from_32_threads() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).thread_name("ebS3").build();
    let (sums, most, named) = load(&bridge, "ebS3", |b, _| {
        let inner = b.clone();
        b.run(move || async move { calls(&inner) })
    });
    assert!(sums.iter().all(|&s| s == expected()), "{sums:?}");
    // Each caller has one call in flight, and the thread of its previous
    // call may still be on its way back to the idle list.
    assert!(
        most <= 2 * CALLERS,
        "{most} loop threads for {CALLERS} callers"
    );
    assert!(
        named <= 2 * CALLERS,
        "{named} threads named ebS3 for {CALLERS} callers"
    );
}

#[cfg(feature = "tokio")]
fn from_current_thread_runtimes(
    max_threads: Option<usize>,
    prefix: &'static str,
) -> (usize, usize) {
    let mut builder = Bridge::builder(executor_bridge::Tokio::new()).thread_name(prefix);
    if let Some(max) = max_threads {
        builder = builder.max_threads(max);
    }
    let bridge = builder.build();
    let (sums, most, named) = load(&bridge, prefix, |b, _| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            (0..CALLS)
                .map(|i| {
                    b.run(move || async move {
                        tokio::task::yield_now().await;
                        u64::from(i)
                    })
                })
                .sum::<u64>()
        })
    });
    assert!(sums.iter().all(|&s| s == expected()), "{sums:?}");
    (most, named)
}

#[cfg(feature = "tokio")]
#[test]
fn hops_from_32_current_thread_runtimes() {
    let _serial = serial();
    let (most, named) = from_current_thread_runtimes(None, "ebS4");
    assert!(
        most <= 2 * CALLERS,
        "{most} loop threads for {CALLERS} callers"
    );
    assert!(
        named <= 2 * CALLERS,
        "{named} threads named ebS4 for {CALLERS} callers"
    );
}

#[cfg(feature = "tokio")]
#[test]
fn hops_from_32_current_thread_runtimes_with_max_threads() {
    let _serial = serial();
    let (most, named) = from_current_thread_runtimes(Some(4), "ebS5");
    assert!(most <= 4, "{most} loop threads with max_threads(4)");
    assert!(named <= 4, "{named} threads named ebS5 with max_threads(4)");
}

#[test]
fn early_dropped_iterators_leave_no_threads() {
    let _serial = serial();
    let baseline = common::thread_count();
    let bridge = Bridge::builder(Pollster)
        .thread_name("ebS6")
        .idle_timeout(Duration::from_millis(200))
        .build();
    let dropped = Arc::new(AtomicUsize::new(0));
    let b = bridge.clone();
    let d = Arc::clone(&dropped);
    watchdog(LIMIT, move || {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        for round in 0..20u32 {
            // 50 at a time: each holds a thread until it is dropped.
            let iters: Vec<_> = (0..50u32)
                .map(|i| {
                    let counted = Counted(Arc::clone(&d));
                    let mut it = b.iter(move || {
                        stream::repeat_with(move || {
                            let _keep = &counted;
                            round * 100 + i
                        })
                    });
                    assert_eq!(it.next(), Some(round * 100 + i));
                    it
                })
                .collect();
            drop(iters);
        }
    });
    assert!(
        eventually(Duration::from_secs(10), || dropped.load(Ordering::SeqCst)
            == 1000),
        "{} of 1000 streams dropped",
        dropped.load(Ordering::SeqCst)
    );
    assert!(
        eventually(Duration::from_secs(10), || bridge.threads() == 0
            && threads_named("ebS6") == 0),
        "loop threads left: {} ({} named ebS6)",
        bridge.threads(),
        threads_named("ebS6")
    );
    // Other tests' threads may come and go; a leak here would be hundreds.
    assert!(
        eventually(Duration::from_secs(10), || common::thread_count()
            <= baseline + 4),
        "{} threads now, {baseline} before",
        common::thread_count()
    );
}

#[test]
fn long_streams_consumed_by_16_threads_at_once() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).stream_capacity(64).build();
    let b = bridge.clone();
    let ok = watchdog(LIMIT, move || {
        let consumers: Vec<_> = (0..16u32)
            .map(|k| {
                let b = b.clone();
                thread::spawn(move || {
                    let items = b.iter(move || {
                        stream::iter(0..20_000u32).then(move |i| async move {
                            if i % 100 == 0 {
                                yield_now().await;
                            }
                            (k, i)
                        })
                    });
                    let mut n = 0u32;
                    for (kk, i) in items {
                        if kk != k || i != n {
                            return false;
                        }
                        n += 1;
                    }
                    n == 20_000
                })
            })
            .collect();
        consumers.into_iter().all(|c| c.join().unwrap())
    });
    assert!(
        ok,
        "a consumer saw items out of order or from another stream"
    );
}

#[test]
fn many_timeouts_at_once() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).thread_name("ebS7").build();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&dropped);
    let (results, _, _) = load(&bridge, "ebS7", move |b, _| {
        (0..20)
            .map(|_| {
                let counted = common::suite::DropFlag::new();
                let d = Arc::clone(&d);
                let err = b
                    .run_timeout(Duration::from_millis(5), move || async move {
                        let _flag = counted.0;
                        std::future::pending::<()>().await
                    })
                    .unwrap_err();
                if common::suite::is_set(&counted.1) {
                    d.fetch_add(1, Ordering::SeqCst);
                }
                err.is_timeout()
            })
            .filter(|&t| t)
            .count()
    });
    assert_eq!(
        results.iter().sum::<usize>(),
        CALLERS * 20,
        "not every call timed out"
    );
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        CALLERS * 20,
        "some futures were still alive when run_timeout returned"
    );
}
