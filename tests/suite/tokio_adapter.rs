//! The `Tokio` adapter: the caller-driven runtime of `Tokio::new` (what one
//! call spawns or creates keeps working between calls and in the next call,
//! from any thread and context), the cooperative budget, the other ways to
//! get a runtime (`from_runtime`, `from_handle`, `current`) and their errors,
//! the documented panic of a task calling its own bridge, runtimes dropped
//! from async code, and many bridges in a row.

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{Bridge, Tokio};
use futures_lite::stream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::common::{child, scenario};
use crate::common::{
    current_thread, eventually, is_set, join, multi_thread, threads_named, watchdog, Ctx, DropFlag,
    LIMIT,
};
use crate::pool::{alive, assert_all_gone, ms, this_thread, LONG};

fn bridge(name: &str) -> Bridge<Tokio> {
    Bridge::builder(Tokio::new()).thread_name(name).build()
}

/// A multi_thread runtime with named workers.
fn named_multi_thread(workers: usize, name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` as a task on a worker of a fresh multi_thread runtime.
fn on_worker<T: Send + 'static>(
    workers: usize,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    named_multi_thread(workers, "tk-worker").block_on(async move { join(tokio::spawn(f).await) })
}

// ---------------------------------------------------------------------------
// The caller-driven runtime: state outlives the call.
// ---------------------------------------------------------------------------

#[test]
#[allow(clippy::async_yields_async)] // the call's output is the task's handle
fn a_task_spawned_by_a_call_keeps_running_while_no_call_is_active() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkTick");
        let ticks = Arc::new(AtomicUsize::new(0));
        let last_on = Arc::new(Mutex::new(String::new()));
        let (t, on) = (Arc::clone(&ticks), Arc::clone(&last_on));
        let task = bridge.run(move || async move {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(ms(1));
                loop {
                    every.tick().await;
                    t.fetch_add(1, SeqCst);
                    *on.lock().unwrap() = this_thread();
                }
            })
        });
        // No call is active now: the driver thread runs the runtime.
        let before = ticks.load(SeqCst);
        assert!(
            eventually(Duration::from_secs(10), || ticks.load(SeqCst)
                >= before + 50),
            "the task stopped between calls: {} ticks",
            ticks.load(SeqCst) - before
        );
        assert_eq!(
            *last_on.lock().unwrap(),
            "bridge-tokio",
            "ticked while no call was active"
        );
        let cancelled = bridge.run(move || async move {
            task.abort();
            task.await.unwrap_err().is_cancelled()
        });
        assert!(cancelled);
        let after = ticks.load(SeqCst);
        thread::sleep(ms(50));
        assert_eq!(ticks.load(SeqCst), after, "an aborted task kept ticking");
    });
}

#[test]
fn a_spawned_accept_loop_serves_a_std_client_between_calls() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkAccept");
        let served = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&served);
        let addr = bridge.run(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (conn, _) = listener.accept().await.unwrap();
                    let s = Arc::clone(&s);
                    tokio::spawn(async move {
                        let (read, mut write) = conn.into_split();
                        let mut lines = tokio::io::BufReader::new(read).lines();
                        while let Some(line) = lines.next_line().await.unwrap() {
                            write
                                .write_all(format!("echo {line}\n").as_bytes())
                                .await
                                .unwrap();
                        }
                        s.fetch_add(1, SeqCst);
                    });
                }
            });
            addr
        });
        // Clients of std, with no bridged call in flight.
        for i in 0..5 {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(LONG)).unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            for j in 0..3 {
                writeln!(conn, "ping {i}.{j}").unwrap();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert_eq!(line, format!("echo ping {i}.{j}\n"));
            }
            drop((conn, reader));
        }
        assert!(eventually(Duration::from_secs(10), || served.load(SeqCst) == 5));
    });
}

#[test]
fn io_objects_created_in_one_call_work_in_the_next_from_other_threads_and_contexts() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkIo");
        // An echo server, spawned on the bridge's runtime.
        let addr = bridge.run(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 64];
                        loop {
                            let n = conn.read(&mut buf).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            conn.write_all(&buf[..n]).await.unwrap();
                        }
                    });
                }
            });
            addr
        });
        let contexts = Ctx::all();
        for (k, ctx) in contexts.iter().copied().enumerate() {
            // Connected in `ctx`, written in the next context, read back on a
            // plain thread, with a timer made in the first call.
            let next = contexts[(k + 1) % contexts.len()];
            let (conn, timer) = ctx.run(&bridge, move |b| {
                b.run(move || async move {
                    let conn = TcpStream::connect(addr).await.unwrap();
                    (conn, tokio::time::interval(ms(1)))
                })
            });
            let (conn, timer) = next.run(&bridge, move |b| {
                b.run(move || async move {
                    let (mut conn, mut timer) = (conn, timer);
                    conn.write_all(format!("hello from {ctx:?}").as_bytes())
                        .await
                        .unwrap();
                    timer.tick().await;
                    (conn, timer)
                })
            });
            let b = bridge.clone();
            let echoed = thread::spawn(move || {
                b.run(move || async move {
                    let (mut conn, mut timer) = (conn, timer);
                    let want = format!("hello from {ctx:?}").len();
                    let mut got = vec![0u8; want];
                    conn.read_exact(&mut got).await.unwrap();
                    timer.tick().await;
                    String::from_utf8(got).unwrap()
                })
            })
            .join()
            .unwrap();
            assert_eq!(
                echoed,
                format!("hello from {ctx:?}"),
                "{ctx:?} then {next:?}"
            );
        }
    });
}

#[test]
fn the_factory_runs_inside_the_runtime_context_from_every_context() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkFactory");
        let id = bridge.runtime().handle().unwrap().id();
        for ctx in Ctx::all() {
            let out = ctx.run(&bridge, |b| {
                // `tokio::spawn` and `Handle::current` in the closure body
                // itself, before any future is polled.
                let spawned = b.run(|| {
                    let h = tokio::spawn(async { 5u32 });
                    async move { h.await.unwrap() }
                });
                let seen = b.run(|| {
                    let h = Handle::current();
                    async move { (h.id(), h.runtime_flavor()) }
                });
                let timed = b
                    .run_timeout(LONG, || {
                        let h = tokio::spawn(async { 6u32 });
                        async move { h.await.unwrap() }
                    })
                    .unwrap();
                let piped: Vec<u32> = b
                    .iter(|| {
                        let h = tokio::spawn(async { 7u32 });
                        stream::once_future(async move { h.await.unwrap() })
                    })
                    .collect();
                let direct: Vec<u32> = b
                    .iter_direct(|| {
                        let h = tokio::spawn(async { 8u32 });
                        stream::once_future(async move { h.await.unwrap() })
                    })
                    .collect();
                (spawned, seen, timed, piped, direct)
            });
            assert_eq!(
                out,
                (5, (id, RuntimeFlavor::CurrentThread), 6, vec![7], vec![8]),
                "{ctx:?}"
            );
        }
    });
}

#[test]
fn spawn_blocking_threads_of_the_bridges_own_runtime_can_call_it() {
    let bridge = bridge("tkSpawnB");
    let inner = bridge.clone();
    let out = watchdog(LIMIT, move || {
        bridge.run(move || async move {
            join(
                tokio::task::spawn_blocking(move || {
                    let a = inner.run(|| async {
                        tokio::time::sleep(ms(2)).await;
                        1u32
                    });
                    let b: u32 = inner.iter(|| stream::iter([2u32, 3])).sum();
                    let c = inner.run_timeout(LONG, || async { 4u32 }).unwrap();
                    a + b + c
                })
                .await,
            )
        })
    });
    assert_eq!(out, 10);
}

// ---------------------------------------------------------------------------
// The cooperative budget (tokio#2376).
// ---------------------------------------------------------------------------

#[test]
fn a_thousand_bridged_calls_in_one_worker_task_complete() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkCoop");
        on_worker(2, async move {
            // A producer task on the caller's runtime, a channel the bridged
            // futures receive from, a timer now and then.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
            let producer = tokio::spawn(async move {
                for i in 0..1000 {
                    tx.send(i).await.unwrap();
                }
            });
            for i in 0..1000u32 {
                let (got, back) = bridge.run(move || async move {
                    if i % 50 == 0 {
                        tokio::time::sleep(ms(1)).await;
                    }
                    let got = rx.recv().await;
                    (got, rx)
                });
                rx = back;
                assert_eq!(got, Some(i));
            }
            producer.await.unwrap();

            // Values ready at once only: each call's first poll.
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            for i in 0..1000u32 {
                tx.send(i).unwrap();
            }
            let mut rx = Some(rx);
            for i in 0..1000u32 {
                let mut r = rx.take().unwrap();
                let (got, r) = bridge.run(move || async move { (r.recv().await, r) });
                rx = Some(r);
                assert_eq!(got, Some(i));
            }
        });
    });
}

#[test]
fn a_thousand_bridged_calls_in_one_current_thread_task_complete() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkCoopCt");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let producer = thread::spawn(move || {
            for i in 0..1000 {
                tx.blocking_send(i).unwrap();
            }
        });
        current_thread().block_on(async move {
            join(
                tokio::spawn(async move {
                    for i in 0..1000u32 {
                        let (got, back) = bridge.run(move || async move {
                            if i % 50 == 0 {
                                tokio::time::sleep(ms(1)).await;
                            }
                            (rx.recv().await, rx)
                        });
                        rx = back;
                        assert_eq!(got, Some(i));
                    }
                    // The caller's own runtime is fine afterwards.
                    tokio::time::sleep(ms(1)).await;
                })
                .await,
            )
        });
        producer.join().unwrap();
    });
}

// ---------------------------------------------------------------------------
// Other runtimes: `from_runtime`, `from_handle`, `current`.
// ---------------------------------------------------------------------------

#[test]
fn from_runtime_with_a_multi_thread_runtime_runs_on_its_workers() {
    watchdog(LIMIT, || {
        let tokio = Tokio::from_runtime(named_multi_thread(2, "tkMtOwn"));
        assert_eq!(
            format!("{tokio:?}"),
            r#"Tokio { runtime: "owned", started: false }"#
        );
        let bridge = Bridge::builder(tokio).thread_name("tkMtLoop").build();
        let (flavor, task_on) = bridge.run(|| async {
            let flavor = Handle::current().runtime_flavor();
            (flavor, tokio::spawn(async { this_thread() }).await.unwrap())
        });
        assert_eq!(flavor, RuntimeFlavor::MultiThread);
        assert_eq!(task_on, "tkMtOwn");
        assert_eq!(
            format!("{:?}", bridge.runtime()),
            r#"Tokio { runtime: "multi_thread", started: true }"#
        );

        // Tasks keep running between calls, and may call the bridge
        // (their worker is handed off).
        let ticks = Arc::new(AtomicUsize::new(0));
        let (t, inner) = (Arc::clone(&ticks), bridge.clone());
        #[allow(clippy::async_yields_async)] // the call returns the task's handle
        let task = bridge.run(move || async move {
            tokio::spawn(async move {
                let mut total = 0;
                for i in 0..20u32 {
                    tokio::time::sleep(ms(1)).await;
                    let h = tokio::spawn(async move { i });
                    total += inner.run(move || async move { h.await.unwrap() });
                    total += inner.iter(move || stream::iter([i])).sum::<u32>();
                    t.fetch_add(1, SeqCst);
                }
                total
            })
        });
        assert!(eventually(Duration::from_secs(20), || ticks.load(SeqCst) == 20));
        let total = bridge.run(move || async move { task.await.unwrap() });
        assert_eq!(total, 2 * (0..20).sum::<u32>());
        drop(bridge);
        assert_all_gone("tkMtLoop", "bridge dropped");
        assert!(
            eventually(Duration::from_secs(10), || threads_named("tkMtOwn") == 0),
            "its workers outlived it"
        );
    });
}

#[test]
fn from_runtime_with_a_current_thread_runtime_is_caller_driven() {
    watchdog(LIMIT, || {
        let bridge = Bridge::new(Tokio::from_runtime(current_thread()));
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = Arc::clone(&ticks);
        let flavor = bridge.run(move || async move {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ms(1)).await;
                    t.fetch_add(1, SeqCst);
                }
            });
            Handle::current().runtime_flavor()
        });
        assert_eq!(flavor, RuntimeFlavor::CurrentThread);
        assert_eq!(
            format!("{:?}", bridge.runtime()),
            r#"Tokio { runtime: "caller-driven", started: true }"#
        );
        let before = ticks.load(SeqCst);
        assert!(eventually(Duration::from_secs(10), || ticks.load(SeqCst)
            >= before + 20));
    });
}

#[test]
fn tokio_debug_tells_how_the_runtime_runs() {
    watchdog(LIMIT, || {
        let tokio = Tokio::new();
        assert_eq!(
            format!("{tokio:?}"),
            r#"Tokio { runtime: "owned", started: false }"#
        );
        let bridge = Bridge::new(tokio.clone());
        assert_eq!(
            format!("{tokio:?}"),
            r#"Tokio { runtime: "owned", started: false }"#,
            "started before a call"
        );
        assert_eq!(bridge.run(|| async { 1 }), 1);
        assert_eq!(
            format!("{tokio:?}"),
            r#"Tokio { runtime: "caller-driven", started: true }"#
        );
        // `handle()` starts it too.
        let other = Tokio::default();
        assert_eq!(
            other.handle().unwrap().runtime_flavor(),
            RuntimeFlavor::CurrentThread
        );
        assert_eq!(
            format!("{other:?}"),
            r#"Tokio { runtime: "caller-driven", started: true }"#
        );

        let rt = multi_thread();
        let borrowed = Tokio::from_handle(rt.handle().clone());
        assert_eq!(
            format!("{borrowed:?}"),
            r#"Tokio { runtime: "borrowed multi_thread", started: true }"#
        );
        let debug = format!("{:?}", Bridge::new(borrowed));
        assert!(debug.contains("Tokio"), "{debug}");
    });
}

#[test]
fn try_from_handle_refuses_a_current_thread_runtime() {
    let rt = current_thread();
    let err = Tokio::try_from_handle(rt.handle().clone()).unwrap_err();
    assert!(err.is_runtime(), "{err:?}");
    assert!(!err.is_panic() && !err.is_timeout() && !err.is_spawn());
    let msg = err.to_string();
    assert!(
        msg.starts_with("the runtime failed: `Tokio::from_handle` needs a multi_thread runtime, got CurrentThread"),
        "{msg}"
    );
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("an io::Error source");
    assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::InvalidInput
    );

    // From inside the runtime too.
    let err = rt.block_on(async { Tokio::try_from_handle(Handle::current()) });
    assert!(err.unwrap_err().is_runtime());

    // A multi_thread handle is accepted and works, from anywhere.
    let mt = multi_thread();
    let bridge = Bridge::new(Tokio::try_from_handle(mt.handle().clone()).unwrap());
    let out = watchdog(LIMIT, move || {
        bridge.run(|| async {
            tokio::time::sleep(ms(1)).await;
            3
        })
    });
    assert_eq!(out, 3);
}

#[test]
#[should_panic(expected = "executor-bridge: `Tokio::from_handle` needs a multi_thread runtime")]
fn from_handle_panics_on_a_current_thread_handle() {
    let rt = current_thread();
    let _ = Tokio::from_handle(rt.handle().clone());
}

#[test]
#[should_panic(expected = "executor-bridge: `Tokio::current` called outside a tokio runtime")]
fn current_panics_outside_a_runtime() {
    let _ = Tokio::current();
}

#[test]
#[should_panic(expected = "executor-bridge: `Tokio::from_handle` needs a multi_thread runtime")]
fn current_panics_inside_a_current_thread_runtime() {
    current_thread().block_on(async {
        let _ = Tokio::current();
    });
}

#[test]
fn a_users_multi_thread_runtime_is_shared_not_owned() {
    let rt = multi_thread();
    let bridge = Bridge::new(Tokio::from_handle(rt.handle().clone()));
    let b = bridge.clone();
    let seen = watchdog(LIMIT, move || b.run(|| async { Handle::current().id() }));
    assert_eq!(seen, rt.handle().id());
    let current = rt.block_on(async { Tokio::current() });
    assert_eq!(current.handle().unwrap().id(), rt.handle().id());
    drop((bridge, current));
    // The application's runtime outlives the bridge.
    assert_eq!(
        rt.block_on(async { tokio::spawn(async { 3 }).await.unwrap() }),
        3
    );
}

/// tokio#4941: one worker, the bridge on that same runtime, and the awaited
/// task in the blocked worker's LIFO slot.
#[test]
fn a_bridge_on_the_callers_own_runtime_awaits_tasks_it_just_spawned() {
    let out = watchdog(LIMIT, || {
        named_multi_thread(1, "tk-lifo").block_on(async {
            let bridge = Bridge::new(Tokio::current());
            join(
                tokio::spawn(async move {
                    let mut sum = 0;
                    for i in 0..50u32 {
                        let h = tokio::spawn(async move {
                            tokio::task::yield_now().await;
                            i
                        });
                        sum += bridge.run(move || async move { h.await.unwrap() });
                        let h = tokio::spawn(async move { i });
                        sum += bridge
                            .iter(move || stream::once_future(async move { h.await.unwrap() }))
                            .sum::<u32>();
                        // A nested call in the first poll, on the worker itself.
                        let h = tokio::spawn(async move { i });
                        let inner = bridge.clone();
                        sum += bridge.run(move || async move {
                            inner.run(move || async move { h.await.unwrap() })
                        });
                    }
                    sum
                })
                .await,
            )
        })
    });
    assert_eq!(out, 3 * (0..50).sum::<u32>());
}

#[test]
fn a_panic_on_the_hand_off_path_leaves_the_worker_usable() {
    let bridge = bridge("tkHandP");
    let out = watchdog(LIMIT, move || {
        on_worker(1, async move {
            let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                bridge.run(|| async {
                    tokio::time::sleep(ms(2)).await;
                    panic!("worker-boom")
                })
            }))
            .unwrap_err();
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"worker-boom"));
            // The worker and the caller's runtime go on.
            tokio::time::sleep(ms(2)).await;
            let h = tokio::spawn(async { 4u32 });
            bridge.run(move || async move { h.await.unwrap() })
        })
    });
    assert_eq!(out, 4);
}

// ---------------------------------------------------------------------------
// The documented limit: the caller's own current_thread runtime.
// ---------------------------------------------------------------------------

#[test]
fn awaiting_a_task_of_the_callers_current_thread_runtime_times_out() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkOwnCt");
        current_thread().block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(async move {
                // The bridged future that waited for this was cancelled.
                assert_eq!(tx.send(5), Err(5));
                6
            });
            let start = Instant::now();
            let err = bridge
                .run_timeout(ms(300), move || async move { rx.await.unwrap() })
                .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            assert_eq!(err.to_string(), "deadline of 300ms elapsed");
            let took = start.elapsed();
            assert!(
                took >= ms(300) && took < Duration::from_secs(20),
                "{took:?}"
            );

            // The bridge keeps working, and so does the caller's runtime once
            // the caller yields.
            let out = bridge.run(|| async {
                tokio::time::sleep(ms(1)).await;
                1
            });
            assert_eq!(out, 1);
            assert_eq!(task.await.unwrap(), 6);
        });
    });
}

#[test]
fn a_stream_fed_by_the_callers_current_thread_runtime_times_out_per_item() {
    watchdog(LIMIT, || {
        let bridge = bridge("tkOwnIt");
        current_thread().block_on(async {
            // Room for every item: with pull semantics the stream is polled
            // only while the consumer waits.
            let (tx, rx) = tokio::sync::mpsc::channel::<u32>(3);
            let feeder = tokio::spawn(async move {
                for i in 0..3 {
                    tx.send(i).await.unwrap();
                }
            });
            let mut it = bridge.iter(move || {
                stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
            });
            let err = it.next_timeout(ms(200)).unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            feeder.await.unwrap();
            // The late item was kept, the rest is in the channel: blocking is
            // fine now.
            assert_eq!(it.by_ref().collect::<Vec<u32>>(), [0, 1, 2]);
        });
    });
}

// ---------------------------------------------------------------------------
// A task of the caller-driven runtime that calls its own bridge.
// ---------------------------------------------------------------------------

/// Documented: such a call panics (it could never complete) instead of
/// hanging.
#[test]
#[should_panic(
    expected = "executor-bridge: a task of a caller-driven Tokio runtime called its bridge"
)]
fn a_task_of_the_caller_driven_runtime_that_calls_its_bridge_panics() {
    // Its panic may be raised on a `bridge-tokio` thread: keep it apart from
    // the test that looks for where that panic points.
    let _serial = crate::common::hook_lock();
    let bridge = Bridge::new(Tokio::new());
    let inner = bridge.clone();
    watchdog(LIMIT, move || {
        bridge.run(move || async move {
            join(
                tokio::spawn(async move {
                    inner.run(|| async {
                        tokio::time::sleep(ms(1)).await;
                        1
                    })
                })
                .await,
            )
        })
    });
}

#[test]
fn such_a_task_panics_on_the_driver_thread_too_and_the_remedies_work() {
    let _serial = crate::common::hook_lock();
    watchdog(LIMIT, || {
        let bridge = bridge("tkOwnTask");
        // Spawned through the handle, run by the driver thread between calls,
        // with every kind of call.
        let handle = bridge.runtime().handle().unwrap().clone();
        let inner = bridge.clone();
        let task = handle.spawn(async move {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inner.try_run(|| async { 1 })
            }));
            (
                this_thread(),
                run.map(|_| ()).map_err(|p| crate::common::message(&*p)),
            )
        });
        // Let the driver thread run it while no call waits.
        thread::sleep(ms(100));
        let (on, run) = bridge.run(move || async move { task.await.unwrap() });
        assert_eq!(on, "bridge-tokio");
        let msg = run
            .expect_err("a task called its bridge and did not panic")
            .unwrap_or_default();
        assert!(
            msg.starts_with(
                "executor-bridge: a task of a caller-driven Tokio runtime called its bridge"
            ),
            "{msg}"
        );

        // The remedies: `.await` the work in the task, or `spawn_blocking`.
        let inner = bridge.clone();
        let out = bridge.run(move || async move {
            let awaited = tokio::spawn(async {
                tokio::time::sleep(ms(1)).await;
                10
            })
            .await
            .unwrap();
            let blocking = tokio::task::spawn_blocking(move || {
                inner.run(|| async {
                    tokio::time::sleep(ms(1)).await;
                    20
                })
            })
            .await
            .unwrap();
            awaited + blocking
        });
        assert_eq!(out, 30);
    });
}

// ---------------------------------------------------------------------------
// Runtimes dropped from async code, or by their own tasks.
// ---------------------------------------------------------------------------

#[test]
fn the_last_clone_may_be_dropped_inside_async_code() {
    watchdog(LIMIT, || {
        // In a current_thread runtime's body, and in a task of it.
        for in_task in [false, true] {
            let bridge = bridge("tkDropAs");
            let (guard, gone) = DropFlag::new();
            bridge.run(move || async move {
                tokio::spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await
                });
            });
            current_thread().block_on(async move {
                if in_task {
                    join(tokio::spawn(async move { drop(bridge) }).await);
                } else {
                    drop(bridge);
                }
            });
            // Its runtime was shut down: its pending task dropped.
            assert!(
                eventually(Duration::from_secs(10), || is_set(&gone)),
                "in_task: {in_task}"
            );
            assert_all_gone("tkDropAs", "dropped in async code");
        }
        // On a multi_thread worker.
        let bridge = bridge("tkDropWk");
        assert_eq!(bridge.iter(|| stream::iter([1])).count(), 1);
        on_worker(2, async move { drop(bridge) });
        assert_all_gone("tkDropWk", "dropped on a worker");
    });
}

#[test]
fn the_last_clone_dropped_by_a_task_of_its_own_runtime() {
    watchdog(LIMIT, || {
        // Caller-driven: the task runs on the driver thread, between calls.
        let bridge = bridge("tkOwnDrop");
        assert_eq!(bridge.iter(|| stream::iter([1])).count(), 1);
        let (guard, gone) = DropFlag::new();
        let (done, finished) = std::sync::mpsc::channel();
        let last = bridge.clone();
        bridge.run(move || async move {
            tokio::spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            });
            tokio::spawn(async move {
                tokio::time::sleep(ms(50)).await;
                drop(last);
                done.send(this_thread()).unwrap();
            });
        });
        drop(bridge);
        assert_eq!(finished.recv_timeout(LONG).unwrap(), "bridge-tokio");
        assert!(
            eventually(Duration::from_secs(10), || is_set(&gone)),
            "the runtime was not shut down"
        );
        assert_all_gone("tkOwnDrop", "dropped by its own task");

        // A multi_thread runtime of its own: the task runs on its worker.
        let rt = named_multi_thread(1, "tkOwnRt");
        let bridge = Bridge::builder(Tokio::from_runtime(rt))
            .thread_name("tkOwnLoop")
            .build();
        assert_eq!(bridge.iter(|| stream::iter([1])).count(), 1);
        let (done, finished) = std::sync::mpsc::channel();
        let last = bridge.clone();
        bridge.run(move || async move {
            tokio::spawn(async move {
                tokio::time::sleep(ms(50)).await;
                drop(last);
                done.send(this_thread()).unwrap();
            });
        });
        drop(bridge);
        assert_eq!(finished.recv_timeout(LONG).unwrap(), "tkOwnRt");
        assert!(eventually(LONG, || threads_named("tkOwnRt")
            + alive("tkOwnLoop")
            == 0));
    });
}

// ---------------------------------------------------------------------------
// Many bridges (reqwest#1054): each with its own runtime, none left behind.
// ---------------------------------------------------------------------------

/// The driver threads of caller-driven runtimes.
fn driver_threads() -> usize {
    threads_named("bridge-tokio")
}

fn use_bridge(bridge: &Bridge<Tokio>, i: u32) {
    let port = bridge.run(move || async move {
        tokio::time::sleep(Duration::from_micros(200)).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    });
    assert_ne!(port, 0);
    // A loop thread too: `iter` always runs on one.
    let items: Vec<u32> = bridge.iter(move || stream::iter([i, i + 1])).collect();
    assert_eq!(items, [i, i + 1]);
}

/// 200 bridges made, used and dropped in a row, then 64 alive at once; the
/// threads they start go with them. Counted in a child process, where no
/// other test starts runtimes.
fn many_bridges_scenario(name: &'static str) -> String {
    let base = driver_threads() + alive(name);
    let mut peak = 0;
    for i in 0..200u32 {
        let bridge = Bridge::builder(Tokio::new()).thread_name(name).build();
        use_bridge(&bridge, i);
        drop(bridge);
        peak = peak.max(driver_threads() + alive(name));
    }
    let bridges: Vec<_> = (0..64)
        .map(|_| Bridge::builder(Tokio::new()).thread_name(name).build())
        .collect();
    for round in 0..2u32 {
        for (i, bridge) in bridges.iter().enumerate() {
            use_bridge(bridge, round * 100 + i as u32);
        }
    }
    let most = driver_threads() + alive(name);
    drop(bridges);
    let back = eventually(Duration::from_secs(20), || {
        driver_threads() + alive(name) <= base
    });
    format!(
        "base={base} back={back} peak_in_a_row_ok={} most_ok={}",
        peak <= base + 10,
        most >= 64 && most <= base + 128
    ) + &format!("\ndetails: peak {peak}, most {most}")
}

fn many_bridges(test: &str, from_worker: bool) {
    let name = if from_worker { "tkManyW" } else { "tkManyC" };
    if scenario().as_deref() == Some("many") {
        let got = if from_worker {
            on_worker(2, async move { many_bridges_scenario(name) })
        } else {
            current_thread().block_on(async move { many_bridges_scenario(name) })
        };
        println!("scenario many: {got}");
        return;
    }
    let out = child(&format!("tokio_adapter::{test}"), "many");
    assert!(
        out.contains("scenario many: base=0 back=true peak_in_a_row_ok=true most_ok=true"),
        "threads left behind or piled up; the child printed:\n{out}"
    );
}

#[test]
fn two_hundred_bridges_from_a_multi_thread_worker_leave_no_thread() {
    many_bridges(
        "two_hundred_bridges_from_a_multi_thread_worker_leave_no_thread",
        true,
    );
}

#[test]
fn two_hundred_bridges_from_a_current_thread_runtime_leave_no_thread() {
    many_bridges(
        "two_hundred_bridges_from_a_current_thread_runtime_leave_no_thread",
        false,
    );
}

/// The real thing behind reqwest#1054: an HTTP client per bridge, made and
/// used from inside a runtime.
#[test]
fn a_reqwest_client_per_bridge_from_inside_a_runtime() {
    watchdog(120, || {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let serving = {
            let server = Arc::clone(&server);
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let body = request.url().to_owned();
                    let _ = request.respond(tiny_http::Response::from_string(body));
                }
            })
        };
        on_worker(2, async move {
            let mut kept = Vec::new();
            for i in 0..40u32 {
                let bridge = Bridge::builder(Tokio::new())
                    .thread_name("tkReqwest")
                    .build();
                let client = bridge.run(|| async { reqwest::Client::new() });
                let url = format!("http://{addr}/{i}");
                let c = client.clone();
                let body = bridge.run(move || async move {
                    c.get(url).send().await.unwrap().text().await.unwrap()
                });
                assert_eq!(body, format!("/{i}"));
                if i % 10 == 0 {
                    kept.push((bridge, client));
                }
            }
            // The kept ones still work: their connection tasks kept running.
            for (i, (bridge, client)) in kept.iter().enumerate() {
                let url = format!("http://{addr}/again/{i}");
                let client = client.clone();
                let body = bridge.run(move || async move {
                    client.get(url).send().await.unwrap().text().await.unwrap()
                });
                assert_eq!(body, format!("/again/{i}"));
            }
            for (bridge, client) in kept {
                bridge.run(move || async move { drop(client) });
            }
        });
        server.unblock();
        serving.join().unwrap();
        assert_all_gone("tkReqwest", "clients done");
    });
}
