//! The pool's thread life cycle: lazy start, names, reuse, idle exit, exit
//! with the last clone, the thread limit, and spawn failures.
//!
//! Threads are counted by the name prefix each test gives its bridge (the
//! kernel keeps 15 bytes of a name); tests run one at a time so process-wide
//! counts stay meaningful.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::suite::LIMIT;
use common::{eventually, threads_named, watchdog};
use executor_bridge::{Bridge, Pollster};
use futures_lite::{stream, StreamExt};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stream that yields once and then waits forever: it holds a loop thread.
fn held() -> impl futures_lite::Stream<Item = u32> {
    stream::once(1u32).chain(stream::pending())
}

#[test]
fn a_bridge_never_used_owns_no_thread() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).thread_name("ebT0").build();
    let clone = bridge.clone();
    assert_eq!(bridge.threads(), 0);
    assert_eq!(threads_named("ebT0"), 0);
    // Calls from a plain thread run inline: still no thread.
    assert_eq!(bridge.run(|| async { 1 }), 1);
    assert_eq!(clone.threads(), 0);
    assert_eq!(threads_named("ebT0"), 0);
}

/// The Tokio adapter's runtime threads: "executor-bridge-tokio", 15 bytes
/// of it in `/proc` (no bridge in this file uses the default name).
#[cfg(feature = "tokio")]
fn tokio_runtime_threads() -> usize {
    threads_named("executor-bridg")
}

#[cfg(feature = "tokio")]
#[test]
fn the_tokio_adapter_starts_its_runtime_on_first_use() {
    let _serial = serial();
    assert_eq!(tokio_runtime_threads(), 0);
    let bridge = Bridge::builder(executor_bridge::Tokio::new())
        .thread_name("ebT9")
        .build();
    assert_eq!(
        tokio_runtime_threads(),
        0,
        "a runtime thread started before any call"
    );
    let b = bridge.clone();
    let out = watchdog(LIMIT, move || {
        b.run(|| async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            1
        })
    });
    assert_eq!(out, 1);
    assert!(tokio_runtime_threads() >= 1, "the runtime did not start");
    drop(bridge);
    assert!(
        eventually(Duration::from_secs(5), || tokio_runtime_threads() == 0),
        "the adapter's runtime threads outlived the bridge"
    );
}

#[test]
fn loop_threads_carry_the_configured_name() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).thread_name("ebT1").build();
    let b = bridge.clone();
    let names = watchdog(LIMIT, move || {
        let name = || thread::current().name().map(str::to_owned);
        let inner = b.clone();
        let nested = b.run(move || async move { inner.run(move || async move { name() }) });
        let timed = b
            .run_timeout(Duration::from_secs(LIMIT), move || async move { name() })
            .unwrap();
        let mut it =
            b.iter(move || stream::once_future(async move { name() }).chain(stream::pending()));
        let streamed = it.next().unwrap();
        let alive = threads_named("ebT1");
        (nested, timed, streamed, alive)
    });
    for name in [&names.0, &names.1, &names.2] {
        let name = name.as_deref().unwrap_or("");
        assert!(name.starts_with("ebT1-"), "{name:?}");
    }
    assert!(names.3 >= 1, "no thread named ebT1 in /proc/self/task");
}

#[test]
fn idle_threads_are_reused() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).thread_name("ebT2").build();
    let b = bridge.clone();
    let most = watchdog(LIMIT, move || {
        let mut most = 0;
        for i in 0..50u32 {
            let out = b
                .run_timeout(Duration::from_secs(LIMIT), move || async move { i })
                .unwrap();
            assert_eq!(out, i);
            most = most.max(b.threads());
        }
        most
    });
    // One call at a time: the thread that answered may still be on its way
    // back to the idle list when the next call comes (more than one, on a
    // loaded machine), but threads are reused, not one per call.
    assert!(most <= 10, "{most} loop threads for 50 sequential calls");
    assert_eq!(bridge.threads(), threads_named("ebT2"));
}

#[test]
fn idle_threads_exit_after_the_idle_timeout() {
    let _serial = serial();
    let idle = Duration::from_millis(400);
    let bridge = Bridge::builder(Pollster)
        .thread_name("ebT3")
        .idle_timeout(idle)
        .build();
    let b = bridge.clone();
    watchdog(LIMIT, move || {
        let iters: Vec<_> = (0..3).map(|_| b.iter(held)).collect();
        let mut iters = iters;
        for it in &mut iters {
            assert_eq!(it.next(), Some(1));
        }
        assert_eq!(b.threads(), 3);
        assert_eq!(threads_named("ebT3"), 3);
        drop(iters);
        let idle_since = Instant::now();
        assert!(
            eventually(Duration::from_secs(10), || b.threads() == 0
                && threads_named("ebT3") == 0),
            "idle threads still alive: {} (named: {})",
            b.threads(),
            threads_named("ebT3")
        );
        let took = idle_since.elapsed();
        assert!(
            took >= idle / 2,
            "threads exited after {took:?}, before the idle timeout"
        );
        // The bridge starts threads again when needed.
        let mut it = b.iter(held);
        assert_eq!(it.next(), Some(1));
        assert_eq!(b.threads(), 1);
    });
}

#[test]
fn all_loop_threads_exit_when_the_last_clone_is_dropped() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster)
        .thread_name("ebT4")
        .idle_timeout(Duration::from_secs(3600))
        .build();
    watchdog(LIMIT, move || {
        let mut iters: Vec<_> = (0..4).map(|_| bridge.iter(held)).collect();
        for it in &mut iters {
            assert_eq!(it.next(), Some(1));
        }
        drop(iters);
        let clone = bridge.clone();
        drop(bridge);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(threads_named("ebT4"), 4, "a live clone keeps the pool");
        assert_eq!(
            clone
                .run_timeout(Duration::from_secs(LIMIT), || async { 3 })
                .unwrap(),
            3
        );
        drop(clone);
        assert!(
            eventually(Duration::from_secs(5), || threads_named("ebT4") == 0),
            "{} loop threads outlived the bridge",
            threads_named("ebT4")
        );
    });
}

#[test]
fn calls_in_flight_complete_after_the_last_clone_is_dropped() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster).thread_name("ebT5").build();
    watchdog(LIMIT, move || {
        let (tx, rx) = async_channel::bounded::<u32>(1);
        let mut it = bridge.iter(move || {
            stream::unfold(rx, |rx| async move { Some((rx.recv().await.ok()?, rx)) })
        });
        drop(bridge);
        tx.send_blocking(1).unwrap();
        assert_eq!(it.next(), Some(1));
        tx.send_blocking(2).unwrap();
        drop(tx);
        assert_eq!(it.collect::<Vec<_>>(), [2]);
        assert!(
            eventually(Duration::from_secs(5), || threads_named("ebT5") == 0),
            "the loop thread outlived its last call"
        );
    });
}

#[test]
fn max_threads_limits_the_pool_and_queues_the_rest() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster)
        .thread_name("ebT6")
        .max_threads(2)
        .build();
    let b = bridge.clone();
    let (outs, most, named) = watchdog(LIMIT, move || {
        // Every call waits until `release` is dropped.
        let (release, wait) = async_channel::bounded::<()>(1);
        let callers: Vec<_> = (0..6u32)
            .map(|i| {
                let (b, wait) = (b.clone(), wait.clone());
                thread::spawn(move || {
                    b.run_timeout(Duration::from_secs(LIMIT), move || async move {
                        let _ = wait.recv().await;
                        i
                    })
                    .unwrap()
                })
            })
            .collect();
        let (mut most, mut named) = (0, 0);
        let start = Instant::now();
        while callers.iter().any(|c| !c.is_finished()) {
            if start.elapsed() > Duration::from_millis(200) {
                release.close();
            }
            most = most.max(b.threads());
            named = named.max(threads_named("ebT6"));
            thread::sleep(Duration::from_millis(2));
        }
        let outs: Vec<u32> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        (outs, most, named)
    });
    assert_eq!(outs, [0, 1, 2, 3, 4, 5]);
    assert!(most <= 2, "{most} loop threads with max_threads(2)");
    assert!(named <= 2, "{named} threads named ebT6 with max_threads(2)");
    assert!(most >= 1);
}

#[test]
fn nested_calls_never_wait_for_a_thread() {
    let _serial = serial();
    // One thread allowed, busy with the outer call: the nested calls would
    // wait for it forever if they queued.
    let bridge = Bridge::builder(Pollster)
        .thread_name("ebT7")
        .max_threads(1)
        .build();
    let out = watchdog(LIMIT, move || {
        let b1 = bridge.clone();
        bridge
            .run_timeout(Duration::from_secs(LIMIT), move || async move {
                let b2 = b1.clone();
                let run = b1.run(move || async move { b2.run(|| async { 1u32 }) + 1 });
                let iter: u32 = b1.iter(|| stream::iter([1u32, 2])).sum();
                run + iter
            })
            .unwrap()
    });
    assert_eq!(out, 5);
}

#[test]
fn a_thread_that_cannot_start_is_an_error_not_a_crash() {
    let _serial = serial();
    let bridge = Bridge::builder(Pollster)
        .thread_name("ebT8")
        .stack_size(1 << 50)
        .build();
    let b = bridge.clone();
    watchdog(LIMIT, move || {
        let err = b
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err();
        assert!(err.is_spawn(), "{err:?}");
        assert!(b.try_iter(|| stream::iter([1])).unwrap_err().is_spawn());
        let inner = b.clone();
        let nested = b.run(move || async move { inner.try_run(|| async { 1 }).unwrap_err() });
        assert!(nested.is_spawn(), "{nested:?}");
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            b.iter(|| stream::iter([1]))
        }))
        .unwrap_err();
        let text = common::suite::message(&*panic).unwrap_or_default();
        assert!(
            text.starts_with("executor-bridge: failed to start a loop thread"),
            "{text}"
        );
        // Inline calls need no thread and still work; no thread is counted.
        assert_eq!(b.run(|| async { 2 }), 2);
        assert_eq!(b.threads(), 0);
    });
    assert_eq!(threads_named("ebT8"), 0);
}
