//! The context table: every calling context a user can be in, times `run`
//! and `iter`, times every adapter enabled. Each check uses the adapter's own
//! timer, so the future really needs its runtime, and runs under a watchdog
//! so a deadlock fails instead of hanging.
//!
//! Rows: a plain thread; tokio's `spawn_blocking` threads, current_thread
//! runtime (body and task), `LocalSet` (body and task), multi_thread worker
//! task (awaiting a task it just spawned; many calls in a row, past tokio's
//! coop budget), multi_thread `block_on` thread; smol's `block_on` and a
//! `smol::spawn` task; async-std's `block_on` and a `task::spawn` task; nested
//! calls three levels deep; a `Drop` impl that calls the bridge.

mod common;

use std::time::Duration;

async fn pollster_sleep(d: Duration) {
    common::suite::thread_sleep(d).await;
}

#[cfg(feature = "smol")]
async fn smol_sleep(d: Duration) {
    smol::Timer::after(d).await;
}

macro_rules! context_rows {
    ($module:ident, $rt_ty:ty, $rt:expr, $sleep:path) => {
        mod $module {
            #![allow(unused_imports)]
            use super::*;

            use ::executor_bridge::Bridge;
            use ::futures_lite::{stream, Stream, StreamExt};
            use ::std::rc::Rc;
            use ::std::sync::atomic::{AtomicU32, Ordering};
            use ::std::sync::Arc;
            use ::std::time::Duration;
            use $crate::common::suite::LIMIT;
            use $crate::common::watchdog;

            type B = Bridge<$rt_ty>;

            fn bridge() -> B {
                Bridge::new($rt)
            }

            async fn nap(ms: u64) {
                $sleep(Duration::from_millis(ms)).await;
            }

            fn ticks(n: u32) -> impl Stream<Item = u32> {
                stream::unfold(0u32, move |i| async move {
                    if i < n {
                        nap(2).await;
                        Some((i, i + 1))
                    } else {
                        None
                    }
                })
            }

            /// `run`, `try_run` and `run_timeout` from the current context.
            fn check_run(b: &B) {
                let out = b.run(|| async {
                    let rc = Rc::new(40u32);
                    nap(3).await;
                    *rc + 2
                });
                assert_eq!(out, 42);
                assert_eq!(b.run(|| async { 1u32 }), 1);
                let tried = b.try_run(|| async {
                    nap(1).await;
                    2u32
                });
                assert_eq!(tried.unwrap(), 2);
                let timed = b.run_timeout(Duration::from_secs(LIMIT), || async {
                    nap(1).await;
                    3u32
                });
                assert_eq!(timed.unwrap(), 3);
                let late = b.run_timeout(Duration::from_millis(20), || async {
                    nap(60_000).await;
                    4u32
                });
                assert!(late.unwrap_err().is_timeout());
            }

            /// `iter` from the current context: ordered, complete, and a
            /// `next_timeout` that gives up.
            fn check_iter(b: &B) {
                let items: Vec<u32> = b.iter(|| ticks(4)).collect();
                assert_eq!(items, [0, 1, 2, 3]);
                let mut slow = b.iter(|| {
                    stream::once_future(async {
                        nap(60_000).await;
                        0u32
                    })
                });
                assert!(slow
                    .next_timeout(Duration::from_millis(20))
                    .unwrap_err()
                    .is_timeout());
            }

            /// Three levels: a bridged future calls sync code that calls the
            /// bridge again.
            fn level(b: B, depth: u32) -> u32 {
                if depth == 0 {
                    return 0;
                }
                let inner = b.clone();
                b.run(move || async move {
                    nap(1).await;
                    level(inner, depth - 1) + 1
                })
            }

            /// Three levels of streams whose items come from nested streams.
            fn level_iter(b: B, depth: u32) -> u32 {
                if depth == 0 {
                    return 0;
                }
                let inner = b.clone();
                b.iter(move || {
                    ticks(2).then(move |i| {
                        let inner = inner.clone();
                        async move { i + level_iter(inner, depth - 1) }
                    })
                })
                .sum()
            }

            fn check_nested(b: &B) {
                assert_eq!(level(b.clone(), 3), 3);
                // 1 + 2 * (1 + 2 * (1 + 0))
                assert_eq!(level_iter(b.clone(), 3), 7);
            }

            /// Calls the bridge from its destructor.
            struct CallsOnDrop {
                b: B,
                out: Arc<AtomicU32>,
            }

            impl Drop for CallsOnDrop {
                fn drop(&mut self) {
                    let v = self.b.run(|| async {
                        nap(2).await;
                        5u32
                    });
                    let w: u32 = self.b.iter(|| ticks(3)).sum();
                    self.out.store(v + w, Ordering::SeqCst);
                }
            }

            /// Builds a [`CallsOnDrop`], lets `drop_it` drop it somewhere,
            /// and checks its calls completed.
            fn check_drop(drop_it: impl FnOnce(CallsOnDrop) + Send + 'static) {
                let out = Arc::new(AtomicU32::new(0));
                let guard = CallsOnDrop {
                    b: bridge(),
                    out: Arc::clone(&out),
                };
                watchdog(LIMIT, move || drop_it(guard));
                assert_eq!(out.load(Ordering::SeqCst), 8);
            }

            /// Runs `check` with a fresh bridge under the watchdog.
            fn row(check: impl FnOnce(&B) + Send + 'static) {
                let b = bridge();
                watchdog(LIMIT, move || check(&b));
            }

            #[test]
            fn plain_thread_run() {
                row(check_run);
            }

            #[test]
            fn plain_thread_iter() {
                row(check_iter);
            }

            #[test]
            fn nested_three_levels() {
                row(check_nested);
            }

            #[test]
            fn nested_mixed_run_and_iter() {
                row(|b| {
                    let (b1, b2) = (b.clone(), b.clone());
                    let out = b.run(move || async move {
                        nap(1).await;
                        b1.iter(move || {
                            ticks(3).then(move |i| {
                                let b2 = b2.clone();
                                async move {
                                    i + b2.run(move || async move {
                                        nap(1).await;
                                        10
                                    })
                                }
                            })
                        })
                        .sum::<u32>()
                    });
                    assert_eq!(out, 33);
                });
            }

            #[test]
            fn drop_inside_a_bridged_future() {
                check_drop(|guard| {
                    let b = guard.b.clone();
                    b.run(move || async move {
                        let _guard = guard;
                        nap(1).await;
                    });
                });
            }

            #[cfg(feature = "tokio")]
            mod tokio_rows {
                use super::*;

                fn current_thread() -> ::tokio::runtime::Runtime {
                    ::tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                }

                fn multi_thread(workers: usize) -> ::tokio::runtime::Runtime {
                    ::tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(workers)
                        .enable_all()
                        .build()
                        .unwrap()
                }

                /// Awaits a task, resuming its panic with the original payload.
                async fn joined<T>(handle: ::tokio::task::JoinHandle<T>) -> T {
                    match handle.await {
                        Ok(v) => v,
                        Err(e) => ::std::panic::resume_unwind(e.into_panic()),
                    }
                }

                fn spawn_blocking_multi_thread(check: fn(&B)) {
                    row(move |b| {
                        let b = b.clone();
                        multi_thread(2).block_on(async move {
                            joined(::tokio::task::spawn_blocking(move || check(&b))).await
                        })
                    });
                }

                fn spawn_blocking_current_thread(check: fn(&B)) {
                    row(move |b| {
                        let b = b.clone();
                        current_thread().block_on(async move {
                            joined(::tokio::task::spawn_blocking(move || check(&b))).await
                        })
                    });
                }

                fn current_thread_body(check: fn(&B)) {
                    row(move |b| current_thread().block_on(async move { check(b) }));
                }

                fn current_thread_task(check: fn(&B)) {
                    row(move |b| {
                        let b = b.clone();
                        current_thread().block_on(async move {
                            joined(::tokio::spawn(async move { check(&b) })).await
                        })
                    });
                }

                fn local_set_body(check: fn(&B)) {
                    row(move |b| {
                        let local = ::tokio::task::LocalSet::new();
                        local.block_on(&current_thread(), async move { check(b) })
                    });
                }

                fn local_set_task(check: fn(&B)) {
                    row(move |b| {
                        let b = b.clone();
                        let local = ::tokio::task::LocalSet::new();
                        local.block_on(&current_thread(), async move {
                            joined(::tokio::task::spawn_local(async move { check(&b) })).await
                        })
                    });
                }

                fn multi_thread_worker(check: fn(&B)) {
                    row(move |b| {
                        let b = b.clone();
                        multi_thread(2).block_on(async move {
                            joined(::tokio::spawn(async move { check(&b) })).await
                        })
                    });
                }

                fn multi_thread_block_on(check: fn(&B)) {
                    row(move |b| multi_thread(2).block_on(async move { check(b) }));
                }

                fn local_set_body_on_multi_thread(check: fn(&B)) {
                    row(move |b| {
                        let local = ::tokio::task::LocalSet::new();
                        local.block_on(&multi_thread(2), async move { check(b) })
                    });
                }

                #[test]
                fn spawn_blocking_multi_thread_run() {
                    spawn_blocking_multi_thread(check_run);
                }

                #[test]
                fn spawn_blocking_multi_thread_iter() {
                    spawn_blocking_multi_thread(check_iter);
                }

                #[test]
                fn spawn_blocking_current_thread_run() {
                    spawn_blocking_current_thread(check_run);
                }

                #[test]
                fn spawn_blocking_current_thread_iter() {
                    spawn_blocking_current_thread(check_iter);
                }

                #[test]
                fn current_thread_body_run() {
                    current_thread_body(check_run);
                }

                #[test]
                fn current_thread_body_iter() {
                    current_thread_body(check_iter);
                }

                #[test]
                fn current_thread_body_nested() {
                    current_thread_body(check_nested);
                }

                #[test]
                fn current_thread_task_run() {
                    current_thread_task(check_run);
                }

                #[test]
                fn current_thread_task_iter() {
                    current_thread_task(check_iter);
                }

                #[test]
                fn local_set_body_run() {
                    local_set_body(check_run);
                }

                #[test]
                fn local_set_body_iter() {
                    local_set_body(check_iter);
                }

                #[test]
                fn local_set_task_run() {
                    local_set_task(check_run);
                }

                #[test]
                fn local_set_task_iter() {
                    local_set_task(check_iter);
                }

                #[test]
                fn local_set_body_on_multi_thread_run() {
                    local_set_body_on_multi_thread(check_run);
                }

                #[test]
                fn local_set_body_on_multi_thread_iter() {
                    local_set_body_on_multi_thread(check_iter);
                }

                #[test]
                fn multi_thread_worker_run() {
                    multi_thread_worker(check_run);
                }

                #[test]
                fn multi_thread_worker_iter() {
                    multi_thread_worker(check_iter);
                }

                #[test]
                fn multi_thread_worker_nested() {
                    multi_thread_worker(check_nested);
                }

                #[test]
                fn multi_thread_block_on_run() {
                    multi_thread_block_on(check_run);
                }

                #[test]
                fn multi_thread_block_on_iter() {
                    multi_thread_block_on(check_iter);
                }

                #[test]
                fn multi_thread_worker_awaits_a_task_it_just_spawned() {
                    // tokio#4941: with one worker, the new task sits in the
                    // blocked worker's LIFO slot unless the worker hands off.
                    let b = bridge();
                    let out = watchdog(LIMIT, move || {
                        multi_thread(1).block_on(async move {
                            joined(::tokio::spawn(async move {
                                let h = ::tokio::spawn(async {
                                    ::tokio::task::yield_now().await;
                                    7u32
                                });
                                let run = b.run(move || async move { h.await.unwrap() });
                                let h = ::tokio::spawn(async { 8u32 });
                                let iter: Vec<u32> = b
                                    .iter(move || {
                                        stream::once_future(async move { h.await.unwrap() })
                                    })
                                    .collect();
                                let h = ::tokio::spawn(async { 9u32 });
                                let timed = b
                                    .run_timeout(Duration::from_secs(LIMIT), move || async move {
                                        h.await.unwrap()
                                    })
                                    .unwrap();
                                (run, iter, timed)
                            }))
                            .await
                        })
                    });
                    assert_eq!(out, (7, vec![8], 9));
                }

                #[test]
                fn multi_thread_worker_many_calls_past_the_coop_budget() {
                    // tokio#2376: blocking inside a task stalled at the 128th
                    // call, when the task's coop budget ran out.
                    let b = bridge();
                    let got = watchdog(LIMIT, move || {
                        multi_thread(1).block_on(async move {
                            joined(::tokio::spawn(async move {
                                let (tx, rx) = ::tokio::sync::mpsc::unbounded_channel();
                                for i in 0..300u32 {
                                    tx.send(i).unwrap();
                                }
                                let rx = Arc::new(::tokio::sync::Mutex::new(rx));
                                let mut got = Vec::new();
                                for _ in 0..300 {
                                    let rx = Arc::clone(&rx);
                                    got.push(
                                        b.run(move || async move { rx.lock().await.recv().await }),
                                    );
                                }
                                got
                            }))
                            .await
                        })
                    });
                    assert_eq!(got, (0..300).map(Some).collect::<Vec<_>>());
                }

                #[test]
                fn drop_inside_a_current_thread_task() {
                    check_drop(|guard| {
                        current_thread().block_on(async move {
                            joined(::tokio::spawn(async move {
                                ::tokio::task::yield_now().await;
                                drop(guard);
                            }))
                            .await
                        })
                    });
                }

                #[test]
                fn drop_inside_a_multi_thread_task() {
                    check_drop(|guard| {
                        multi_thread(2).block_on(async move {
                            joined(::tokio::spawn(async move {
                                ::tokio::task::yield_now().await;
                                drop(guard);
                            }))
                            .await
                        })
                    });
                }
            }

            #[cfg(feature = "smol")]
            mod smol_rows {
                use super::*;

                fn smol_block_on(check: fn(&B)) {
                    row(move |b| ::smol::block_on(async move { check(b) }));
                }

                fn smol_task(check: fn(&B)) {
                    row(move |b| {
                        let b = b.clone();
                        ::smol::block_on(::smol::spawn(async move { check(&b) }))
                    });
                }

                #[test]
                fn smol_block_on_run() {
                    smol_block_on(check_run);
                }

                #[test]
                fn smol_block_on_iter() {
                    smol_block_on(check_iter);
                }

                #[test]
                fn smol_block_on_nested() {
                    smol_block_on(check_nested);
                }

                #[test]
                fn smol_task_run() {
                    smol_task(check_run);
                }

                #[test]
                fn smol_task_iter() {
                    smol_task(check_iter);
                }

                #[test]
                fn drop_inside_a_smol_task() {
                    check_drop(|guard| {
                        ::smol::block_on(::smol::spawn(async move {
                            ::futures_lite::future::yield_now().await;
                            drop(guard);
                        }))
                    });
                }
            }

            #[cfg(feature = "async-std")]
            mod async_std_rows {
                use super::*;

                fn async_std_block_on(check: fn(&B)) {
                    row(move |b| ::async_std::task::block_on(async move { check(b) }));
                }

                fn async_std_task(check: fn(&B)) {
                    row(move |b| {
                        let b = b.clone();
                        ::async_std::task::block_on(::async_std::task::spawn(
                            async move { check(&b) },
                        ))
                    });
                }

                #[test]
                fn async_std_block_on_run() {
                    async_std_block_on(check_run);
                }

                #[test]
                fn async_std_block_on_iter() {
                    async_std_block_on(check_iter);
                }

                #[test]
                fn async_std_block_on_nested() {
                    async_std_block_on(check_nested);
                }

                #[test]
                fn async_std_task_run() {
                    async_std_task(check_run);
                }

                #[test]
                fn async_std_task_iter() {
                    async_std_task(check_iter);
                }

                #[test]
                fn drop_inside_an_async_std_task() {
                    check_drop(|guard| {
                        ::async_std::task::block_on(::async_std::task::spawn(async move {
                            ::async_std::task::yield_now().await;
                            drop(guard);
                        }))
                    });
                }
            }
        }
    };
}

context_rows!(
    with_pollster,
    executor_bridge::Pollster,
    executor_bridge::Pollster,
    crate::pollster_sleep
);

#[cfg(feature = "tokio")]
context_rows!(
    with_tokio,
    executor_bridge::Tokio,
    executor_bridge::Tokio::new(),
    ::tokio::time::sleep
);

#[cfg(feature = "smol")]
context_rows!(
    with_smol,
    executor_bridge::Smol,
    executor_bridge::Smol,
    crate::smol_sleep
);

#[cfg(feature = "async-std")]
context_rows!(
    with_async_std,
    executor_bridge::AsyncStd,
    executor_bridge::AsyncStd,
    ::async_std::task::sleep
);

/// The documented limit: inside a `LocalSet` *task* on a multi_thread
/// runtime tokio refuses the hand-off, and a call that is not ready at once
/// panics with tokio's message instead of hanging.
#[cfg(feature = "tokio")]
#[test]
fn local_set_task_on_multi_thread_panics_as_documented() {
    use executor_bridge::{Bridge, Pollster};
    let b = Bridge::new(Pollster);
    let payload = common::watchdog(common::suite::LIMIT, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            tokio::task::spawn_local(async move {
                let ready = b.run(|| async { 1u32 });
                assert_eq!(ready, 1, "a call that is ready at once needs no hand-off");
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    b.run(|| pollster_sleep(Duration::from_millis(5)))
                }))
                .unwrap_err()
            })
            .await
            .unwrap()
        })
    });
    let text = common::suite::message(&*payload).unwrap_or_default();
    assert!(
        text.starts_with("can call blocking only when running on the multi-threaded runtime"),
        "{text}"
    );
}
