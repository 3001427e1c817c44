//! The `Tokio` adapter: the generic suite on tokio's timer, plus state that
//! outlives a call, tokio's context in the factory, and the adapter's own
//! runtime handling.
#![cfg(feature = "tokio")]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::suite::LIMIT;
use common::{eventually, watchdog};
use executor_bridge::{Bridge, Tokio};
use futures_lite::StreamExt;

bridge_suite!(Tokio, Tokio::new(), ::tokio::time::sleep);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Awaits a tokio task, resuming its panic with the original payload.
async fn joined<T>(handle: tokio::task::JoinHandle<T>) -> T {
    match handle.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[test]
fn a_listener_bound_in_one_call_accepts_in_the_next() {
    let bridge = Bridge::new(Tokio::new());
    watchdog(LIMIT, move || {
        let listener =
            bridge.run(|| async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
        let addr = listener.local_addr().unwrap();
        let client = common::read_all_from(addr);
        std::thread::sleep(Duration::from_millis(20));
        bridge.run(move || async move {
            use tokio::io::AsyncWriteExt;
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"hello from the next call").await.unwrap();
        });
        assert_eq!(client.join().unwrap(), "hello from the next call");
    });
}

#[test]
#[allow(clippy::async_yields_async)] // the call's output is the task's handle
fn a_spawned_ticker_keeps_ticking_between_calls() {
    let bridge = Bridge::new(Tokio::new());
    watchdog(LIMIT, move || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = Arc::clone(&ticks);
        let handle = bridge.run(move || async move {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    t.fetch_add(1, Ordering::SeqCst);
                }
            })
        });
        // No call in flight: the runtime's worker drives the task.
        let before = ticks.load(Ordering::SeqCst);
        assert!(
            eventually(Duration::from_secs(10), || ticks.load(Ordering::SeqCst)
                >= before + 5),
            "the ticker stopped between calls"
        );
        let alive = bridge.run(move || async move {
            handle.abort();
            handle.await.unwrap_err().is_cancelled()
        });
        assert!(alive);
    });
}

#[test]
fn the_factory_runs_inside_the_runtime_context_on_every_path() {
    let bridge = Bridge::new(Tokio::new());
    for path in common::suite::paths() {
        let out = common::suite::on_path(&bridge, path, |b| {
            // `tokio::spawn` and `Handle::current` in the closure body itself,
            // before any future is polled.
            let spawned = b.run(|| {
                let h = tokio::spawn(async { 5u32 });
                async move { h.await.unwrap() }
            });
            let flavor = b.run(|| {
                let flavor = tokio::runtime::Handle::current().runtime_flavor();
                async move { flavor }
            });
            let streamed: Vec<u32> = b
                .iter(|| {
                    let h = tokio::spawn(async { 6u32 });
                    futures_lite::stream::once_future(async move { h.await.unwrap() })
                })
                .collect();
            (spawned, flavor, streamed)
        });
        assert_eq!(out.0, 5, "{path:?}");
        assert_eq!(
            out.1,
            tokio::runtime::RuntimeFlavor::MultiThread,
            "{path:?}"
        );
        assert_eq!(out.2, [6], "{path:?}");
    }
}

#[test]
fn a_bridge_on_the_callers_own_runtime_awaits_tasks_it_just_spawned() {
    // The hardest case of tokio#4941: one worker, the bridge on that same
    // runtime, and the awaited task sitting in the blocked worker's LIFO slot.
    let out = watchdog(LIMIT, || {
        multi_thread(1).block_on(async {
            let bridge = Bridge::new(Tokio::current());
            joined(tokio::spawn(async move {
                let h = tokio::spawn(async {
                    tokio::task::yield_now().await;
                    7u32
                });
                let a = bridge.run(move || async move { h.await.unwrap() });
                let h = tokio::spawn(async { 8u32 });
                let b: Vec<u32> = bridge
                    .iter(move || {
                        futures_lite::stream::once_future(async move { h.await.unwrap() })
                    })
                    .collect();
                (a, b)
            }))
            .await
        })
    });
    assert_eq!(out, (7, vec![8]));
}

#[test]
fn spawn_blocking_threads_of_the_adapters_own_runtime_can_call_the_bridge() {
    let bridge = Bridge::new(Tokio::new());
    let inner = bridge.clone();
    let out = watchdog(LIMIT, move || {
        bridge.run(move || async move {
            joined(tokio::task::spawn_blocking(move || {
                let a = inner.run(|| async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    1u32
                });
                let b: u32 = inner.iter(|| futures_lite::stream::iter([2u32, 3])).sum();
                a + b
            }))
            .await
        })
    });
    assert_eq!(out, 6);
}

#[test]
fn a_panic_on_the_hand_off_path_leaves_the_worker_usable() {
    let bridge = Bridge::new(Tokio::new());
    let out = watchdog(LIMIT, move || {
        multi_thread(1).block_on(async move {
            joined(tokio::spawn(async move {
                let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    bridge.run(|| async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        panic!("worker-boom")
                    })
                }))
                .unwrap_err();
                assert_eq!(payload.downcast_ref::<&str>(), Some(&"worker-boom"));
                // The worker and the caller's runtime go on.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let h = tokio::spawn(async { 4u32 });
                bridge.run(move || async move { h.await.unwrap() })
            }))
            .await
        })
    });
    assert_eq!(out, 4);
}

#[test]
fn the_adapters_runtime_threads_carry_its_name() {
    let bridge = Bridge::new(Tokio::new());
    let name = watchdog(LIMIT, move || {
        bridge.run(|| async {
            tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
                .await
                .unwrap()
        })
    });
    assert_eq!(name.as_deref(), Some("executor-bridge-tokio"));
}

#[test]
fn the_last_clone_may_be_dropped_inside_async_code() {
    // tokio forbids dropping a runtime where blocking is not allowed; the
    // adapter's own runtime must cope with being dropped there.
    let bridge = Bridge::new(Tokio::new());
    watchdog(LIMIT, move || {
        assert_eq!(bridge.run(|| async { 1 }), 1);
        current_thread().block_on(async move {
            let b2 = bridge.clone();
            drop(bridge);
            joined(tokio::spawn(async move { drop(b2) })).await;
        });
    });
}

#[test]
fn a_current_thread_runtime_is_refused() {
    let rt = current_thread();
    let err = Tokio::try_from_handle(rt.handle().clone()).unwrap_err();
    assert!(err.is_spawn(), "{err:?}");
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    assert_eq!(source, Some(std::io::ErrorKind::InvalidInput));

    let panic = std::panic::catch_unwind(|| Tokio::from_handle(rt.handle().clone())).unwrap_err();
    let text = common::suite::message(&*panic).unwrap_or_default();
    assert!(text.starts_with("executor-bridge: "), "{text}");
    assert!(
        text.contains("the Tokio adapter needs a multi_thread runtime"),
        "{text}"
    );

    let panic = std::panic::catch_unwind(|| Tokio::from_runtime(current_thread())).unwrap_err();
    let text = common::suite::message(&*panic).unwrap_or_default();
    assert!(
        text.starts_with("executor-bridge: the Tokio adapter needs a multi_thread runtime"),
        "{text}"
    );
}

#[test]
fn a_users_multi_thread_runtime_is_shared_not_owned() {
    let rt = multi_thread(2);
    let bridge = Bridge::new(Tokio::from_handle(rt.handle().clone()));
    let b = bridge.clone();
    let seen = watchdog(LIMIT, move || {
        b.run(|| async { tokio::runtime::Handle::current().id() })
    });
    assert_eq!(seen, rt.handle().id());
    drop(bridge);
    // The application's runtime outlives the bridge.
    assert_eq!(
        rt.block_on(async { tokio::spawn(async { 3 }).await.unwrap() }),
        3
    );
}

#[test]
fn tasks_on_the_adapters_own_runtime_can_call_the_bridge() {
    // A task spawned inside a bridged future runs on the adapter's single
    // worker; its calls hand that worker off instead of blocking it.
    let bridge = Bridge::new(Tokio::new());
    let inner = bridge.clone();
    let out = watchdog(LIMIT, move || {
        bridge.run(move || async move {
            joined(tokio::spawn(async move {
                let h = tokio::spawn(async { 1u32 });
                let a = inner.run(move || async move { h.await.unwrap() });
                let b: u32 = inner
                    .iter(|| {
                        futures_lite::stream::iter([2u32, 3]).then(|x| async move {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            x
                        })
                    })
                    .sum();
                let c = inner
                    .run_timeout(Duration::from_secs(LIMIT), || async {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        4u32
                    })
                    .unwrap();
                a + b + c
            }))
            .await
        })
    });
    assert_eq!(out, 10);
}
