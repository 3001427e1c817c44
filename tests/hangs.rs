//! The known hangs of naive sync-to-async bridges, one test each, under a
//! watchdog: the crate completes, or, where completion is impossible by
//! construction, fails with a documented error within a bounded time.
//!
//! Some hazards also get a `control_*` test that shows the naive approach
//! really does hang or stall in this environment (bounded: the control gives
//! up after a short wait), so the main test is known to exercise something.
#![cfg(feature = "tokio")]

mod common;

use std::error::Error as _;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, threads_named, watchdog};
use executor_bridge::{Bridge, Pollster, Tokio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Builder as RtBuilder, Runtime as TokioRuntime};

/// The tests here count threads by name (the Tokio adapter's own runtime
/// threads are all called `executor-bridge`), so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn current_thread_rt() -> TokioRuntime {
    RtBuilder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread_rt(workers: usize, name: &str) -> TokioRuntime {
    RtBuilder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` as a task on a worker of a fresh multi_thread runtime.
fn on_worker<T: Send + 'static>(workers: usize, f: impl Future<Output = T> + Send + 'static) -> T {
    let rt = multi_thread_rt(workers, "hangs-mt");
    rt.block_on(async move { tokio::spawn(f).await.unwrap() })
}

/// A future that is ready once `deadline` passes, polled in a busy loop: lets
/// a control test give up on a naive `block_on` that would never return.
fn give_up_at(deadline: Instant) -> impl Future<Output = ()> {
    poll_fn(move |cx| {
        if Instant::now() >= deadline {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

// ---------------------------------------------------------------------------
// 1. A tokio future run from inside a current_thread runtime.
// ---------------------------------------------------------------------------

/// Control: `futures::executor::block_on` of a tokio timer inside a
/// current_thread runtime never returns (the timer driver needs the very
/// thread that is blocked).
#[test]
fn control_naive_block_on_of_a_tokio_timer_hangs_in_a_current_thread_runtime() {
    let _serial = serial();
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("naive-ct".into())
        .spawn(move || {
            let rt = current_thread_rt();
            rt.block_on(async { futures::executor::block_on(tokio::time::sleep(ms(10))) });
            let _ = tx.send(());
        })
        .unwrap();
    // The thread stays stuck for the rest of the process; it only parks.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(2)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "naive block_on was expected to hang"
    );
}

#[test]
fn tokio_timers_and_tcp_from_inside_a_current_thread_runtime() {
    let _serial = serial();
    watchdog(60, || {
        let bridge = Bridge::builder(Tokio::new()).thread_name("h-ct-io").build();
        let rt = current_thread_rt();
        rt.block_on(async {
            let slept = bridge.run(|| async {
                let start = Instant::now();
                tokio::time::sleep(ms(20)).await;
                start.elapsed()
            });
            assert!(slept >= ms(20), "{slept:?}");

            // A listener bound in one call accepts in a later one, and a
            // stream connected in one call is used in the next: the loop a
            // call runs on outlives the call.
            let listener = bridge.run(|| async { TcpListener::bind("127.0.0.1:0").await.unwrap() });
            let addr = listener.local_addr().unwrap();
            let server = thread::spawn({
                let bridge = bridge.clone();
                move || {
                    bridge.run(move || async move {
                        let (mut conn, _) = listener.accept().await.unwrap();
                        let mut buf = [0; 5];
                        conn.read_exact(&mut buf).await.unwrap();
                        conn.write_all(&buf).await.unwrap();
                        conn.shutdown().await.unwrap();
                    })
                }
            });
            let mut stream =
                bridge.run(move || async move { TcpStream::connect(addr).await.unwrap() });
            stream = bridge.run(move || async move {
                stream.write_all(b"hello").await.unwrap();
                stream
            });
            let echoed = bridge.run(move || async move {
                let mut out = Vec::new();
                stream.read_to_end(&mut out).await.unwrap();
                out
            });
            assert_eq!(echoed, b"hello");
            server.join().unwrap();

            // The caller's own runtime is still fine.
            tokio::time::sleep(ms(1)).await;
        });
    });
}

// ---------------------------------------------------------------------------
// 2. The cooperative budget (tokio#2376).
// ---------------------------------------------------------------------------

/// Control: inside a worker task, `futures::executor::block_on` of tokio
/// channel receives stalls once the task's coop budget (128) is spent: the
/// budget is only refilled when the task yields, which it never does.
#[test]
fn control_naive_block_on_stalls_on_the_coop_budget() {
    let _serial = serial();
    let stalled_at = on_worker(2, async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..1000u32 {
            tx.send(i).unwrap();
        }
        for i in 0..1000u32 {
            let recv = pin!(rx.recv());
            let give_up = pin!(give_up_at(Instant::now() + ms(500)));
            match futures::executor::block_on(futures::future::select(recv, give_up)) {
                futures::future::Either::Left((got, _)) => assert_eq!(got, Some(i)),
                futures::future::Either::Right(_) => return Some(i),
            }
        }
        None
    });
    let at = stalled_at.expect("naive block_on was expected to stall");
    assert!(at <= 200, "stalled at iteration {at}");
}

#[test]
fn a_thousand_bridged_calls_in_one_worker_task_do_not_stall() {
    let _serial = serial();
    watchdog(60, || {
        let bridge = Bridge::builder(Tokio::new()).thread_name("h-coop").build();
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

            // Already-ready channel values only: the first poll of each call
            // runs on the caller's spent budget.
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
fn a_thousand_bridged_calls_from_a_current_thread_runtime() {
    let _serial = serial();
    watchdog(60, || {
        let bridge = Bridge::builder(Tokio::new())
            .thread_name("h-coop-ct")
            .build();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let producer = thread::spawn(move || {
            for i in 0..1000 {
                tx.blocking_send(i).unwrap();
            }
        });
        current_thread_rt().block_on(async move {
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
        });
        producer.join().unwrap();
    });
}

// ---------------------------------------------------------------------------
// 3. `Handle::block_on` of an un-driven current_thread runtime.
// ---------------------------------------------------------------------------

/// Control: `Handle::block_on` of a current_thread runtime's timer from
/// another thread makes no progress until some thread drives the runtime.
#[test]
fn control_handle_block_on_of_an_undriven_current_thread_runtime_hangs() {
    let _serial = serial();
    let rt = current_thread_rt();
    let handle = rt.handle().clone();
    let (tx, rx) = mpsc::channel();
    let stuck = thread::spawn(move || {
        handle.block_on(async { tokio::time::sleep(ms(10)).await });
        let _ = tx.send(());
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "Handle::block_on was expected to hang"
    );
    // Driving the runtime from its owner releases it.
    rt.block_on(async {
        while !stuck.is_finished() {
            tokio::time::sleep(ms(5)).await;
        }
    });
    stuck.join().unwrap();
}

#[test]
fn try_from_handle_refuses_a_current_thread_runtime() {
    let _serial = serial();
    let rt = current_thread_rt();
    let err = Tokio::try_from_handle(rt.handle().clone()).unwrap_err();
    assert!(err.is_spawn(), "{err:?}");
    assert!(!err.is_panic() && !err.is_timeout());
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "failed to start the runtime: the Tokio adapter needs a multi_thread runtime, got CurrentThread"
        ),
        "{msg}"
    );
    let source = err
        .source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .expect("an io::Error source");
    assert_eq!(source.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::Other);

    // From inside the runtime too.
    let err = rt.block_on(async { Tokio::try_from_handle(tokio::runtime::Handle::current()) });
    assert!(err.unwrap_err().is_spawn());

    // A multi_thread handle is accepted and works, from anywhere.
    let mt = multi_thread_rt(1, "h-handle-mt");
    let bridge = Bridge::new(Tokio::try_from_handle(mt.handle().clone()).unwrap());
    assert_eq!(
        watchdog(30, move || bridge.run(|| async {
            tokio::time::sleep(ms(1)).await;
            3
        })),
        3
    );
}

#[test]
#[should_panic(expected = "executor-bridge: the Tokio adapter needs a multi_thread runtime")]
fn from_handle_panics_on_a_current_thread_handle() {
    let rt = current_thread_rt();
    let _ = Tokio::from_handle(rt.handle().clone());
}

#[test]
#[should_panic(expected = "executor-bridge: the Tokio adapter needs a multi_thread runtime")]
fn from_runtime_panics_on_a_current_thread_runtime() {
    let _ = Tokio::from_runtime(current_thread_rt());
}

#[test]
#[should_panic(expected = "executor-bridge: the Tokio adapter needs a multi_thread runtime")]
fn current_panics_inside_a_current_thread_runtime() {
    current_thread_rt().block_on(async {
        let _ = Tokio::current();
    });
}

#[test]
#[should_panic(expected = "there is no reactor running")]
fn current_panics_outside_a_runtime() {
    let _ = Tokio::current();
}

// ---------------------------------------------------------------------------
// 4. A bridged future that needs the caller's own current_thread runtime.
// ---------------------------------------------------------------------------

#[test]
fn awaiting_a_task_of_the_callers_current_thread_runtime_times_out() {
    let _serial = serial();
    watchdog(60, || {
        let bridge = Bridge::builder(Tokio::new()).thread_name("h-own").build();
        current_thread_rt().block_on(async {
            // A oneshot fed by a task of the caller's (blocked) runtime.
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
            assert!(start.elapsed() >= ms(300));
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{:?}",
                start.elapsed()
            );

            // The same with the task's JoinHandle itself.
            let other = tokio::spawn(async { 7 });
            let err = bridge
                .run_timeout(ms(100), move || async move { other.await.unwrap() })
                .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");

            // The bridge keeps working, and so does the caller's runtime once
            // the caller yields.
            assert_eq!(
                bridge.run(|| async {
                    tokio::time::sleep(ms(1)).await;
                    1
                }),
                1
            );
            assert_eq!(task.await.unwrap(), 6);
            let ok = bridge.run_timeout(Duration::from_secs(30), || async {
                tokio::time::sleep(ms(1)).await;
                2
            });
            assert_eq!(ok.unwrap(), 2);
        });
    });
}

/// The same for a stream: `next_timeout` gives up, the iterator stays usable,
/// and the item arrives once the caller lets its runtime run.
#[test]
fn a_stream_fed_by_the_callers_current_thread_runtime_times_out_per_item() {
    let _serial = serial();
    watchdog(60, || {
        let bridge = Bridge::builder(Tokio::new())
            .thread_name("h-own-it")
            .build();
        current_thread_rt().block_on(async {
            let (tx, rx) = tokio::sync::mpsc::channel::<u32>(1);
            let feeder = tokio::spawn(async move {
                for i in 0..3 {
                    tx.send(i).await.unwrap();
                }
            });
            let mut it = bridge.iter(move || {
                futures_lite::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|v| (v, rx))
                })
            });
            let err = it.next_timeout(ms(200)).unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            feeder.await.unwrap();
            // Everything left is buffered or on its way: blocking is fine now.
            let rest: Vec<u32> = it.by_ref().collect();
            assert_eq!(rest, [0, 1, 2]);
        });
    });
}

// ---------------------------------------------------------------------------
// 5. The LIFO slot of a blocked multi_thread worker (tokio#4941).
// ---------------------------------------------------------------------------

/// Control: a worker task spawns a task (it lands in the worker's LIFO slot,
/// which other workers cannot steal) and blocks waiting for it on a fresh
/// thread with a fresh runtime: the task never runs while the worker waits.
#[test]
fn control_naive_fresh_thread_waiting_on_a_lifo_slot_task_hangs() {
    let _serial = serial();
    let waited = on_worker(2, async {
        let task = tokio::spawn(async { 7 });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(current_thread_rt().block_on(task).unwrap());
        });
        rx.recv_timeout(Duration::from_secs(2))
    });
    assert_eq!(
        waited,
        Err(mpsc::RecvTimeoutError::Timeout),
        "the naive wait was expected to hang"
    );
}

#[test]
fn awaiting_a_just_spawned_task_from_a_multi_thread_worker_completes() {
    let _serial = serial();
    for workers in [1, 2, 4] {
        watchdog(60, move || {
            let bridge = Bridge::builder(Tokio::new()).thread_name("h-lifo").build();
            on_worker(workers, async move {
                for i in 0..200u32 {
                    // The task sits in this worker's LIFO slot.
                    let task = tokio::spawn(async move {
                        tokio::task::yield_now().await;
                        i * 2
                    });
                    let got = bridge.run(move || async move { task.await.unwrap() });
                    assert_eq!(got, i * 2);

                    let (tx, rx) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move { tx.send(i).unwrap() });
                    assert_eq!(bridge.run(move || async move { rx.await.unwrap() }), i);
                }
                // The Pollster adapter hands off just the same.
                let pollster = Bridge::new(Pollster);
                let task = tokio::spawn(async { 9 });
                assert_eq!(pollster.run(move || async move { task.await.unwrap() }), 9);
                // And so does a blocking iterator's `next`, whose stream runs
                // on a loop thread and awaits a task in the LIFO slot.
                let task = tokio::spawn(async { 11 });
                let mut it = bridge.iter(move || {
                    futures_lite::stream::once_future(async move { task.await.unwrap() })
                });
                assert_eq!(it.next(), Some(11));
                assert_eq!(it.next(), None);
            });
        });
    }
}

/// A nested call made while the outer call's first poll runs on the worker
/// (before any hand-off) blocks the worker thread itself, and a task the
/// caller just spawned sits in that worker's LIFO slot. The nested call must
/// hand the worker off before it waits, as a top-level call does.
#[test]
fn a_nested_call_in_the_first_poll_on_a_worker_awaits_a_lifo_slot_task() {
    let _serial = serial();
    watchdog(30, || {
        let bridge = Bridge::builder(Tokio::new()).thread_name("h-nest").build();
        on_worker(2, async move {
            let task = tokio::spawn(async { 5 });
            let inner = bridge.clone();
            let got = bridge
                .run(move || async move { inner.run(move || async move { task.await.unwrap() }) });
            assert_eq!(got, 5);
        });
    });
}

/// The same through a blocking iterator's `next` inside the first poll.
#[test]
fn a_nested_next_in_the_first_poll_on_a_worker_awaits_a_lifo_slot_task() {
    let _serial = serial();
    watchdog(30, || {
        let bridge = Bridge::builder(Tokio::new())
            .thread_name("h-nest-it")
            .build();
        on_worker(2, async move {
            let task = tokio::spawn(async { 6 });
            let inner = bridge.clone();
            let got = bridge.run(move || async move {
                let mut it = inner.iter(move || {
                    futures_lite::stream::once_future(async move { task.await.unwrap() })
                });
                it.next()
            });
            assert_eq!(got, Some(6));
        });
    });
}

// ---------------------------------------------------------------------------
// 6. Many bridges, each with its own runtime (reqwest#1054).
// ---------------------------------------------------------------------------

/// Threads of the Tokio adapters' own runtimes (`executor-bridge-tokio`,
/// truncated by the kernel) plus default-named loop threads.
fn runtime_threads() -> usize {
    threads_named("executor-bridge")
}

fn use_bridge(bridge: &Bridge<Tokio>, i: u32) {
    let port = bridge.run(move || async move {
        tokio::time::sleep(Duration::from_micros(200)).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    });
    assert_ne!(port, 0);
    // A loop thread too (an iterator always runs on one).
    let items: Vec<u32> = bridge
        .iter(move || futures_lite::stream::iter([i, i + 1]))
        .collect();
    assert_eq!(items, [i, i + 1]);
}

fn many_bridges(name: &'static str, peak: &mut usize) {
    // One after another, each created, used and dropped.
    for i in 0..200u32 {
        let bridge = Bridge::builder(Tokio::new()).thread_name(name).build();
        use_bridge(&bridge, i);
        drop(bridge);
        *peak = (*peak).max(runtime_threads() + threads_named(name));
    }
    // Many alive at once, used in turns.
    let bridges: Vec<_> = (0..64)
        .map(|_| Bridge::builder(Tokio::new()).thread_name(name).build())
        .collect();
    for round in 0..2u32 {
        for (i, bridge) in bridges.iter().enumerate() {
            use_bridge(bridge, round * 100 + i as u32);
        }
    }
    drop(bridges);
}

fn assert_no_pile_up(name: &str, base: usize, peak: usize) {
    assert!(
        eventually(Duration::from_secs(20), || runtime_threads() <= base
            && threads_named(name) == 0),
        "threads left behind: {} runtime (baseline {base}), {} `{name}`",
        runtime_threads(),
        threads_named(name)
    );
    // One after another, dropped runtimes must not accumulate.
    assert!(peak <= base + 40, "peak {peak} threads (baseline {base})");
}

#[test]
fn two_hundred_bridges_from_a_multi_thread_worker_task() {
    let _serial = serial();
    watchdog(120, || {
        let base = runtime_threads();
        let peak = on_worker(2, async {
            let mut peak = 0;
            many_bridges("h-many-mt", &mut peak);
            peak
        });
        assert_no_pile_up("h-many-mt", base, peak);
    });
}

#[test]
fn two_hundred_bridges_from_a_current_thread_runtime() {
    let _serial = serial();
    watchdog(120, || {
        let base = runtime_threads();
        let mut peak = 0;
        current_thread_rt().block_on(async { many_bridges("h-many-ct", &mut peak) });
        assert_no_pile_up("h-many-ct", base, peak);
    });
}

/// The real thing behind reqwest#1054: an HTTP client per bridge, 150 of
/// them, made and used from inside a runtime.
#[test]
fn a_reqwest_client_per_bridge_from_inside_a_runtime() {
    let _serial = serial();
    watchdog(120, || {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let server = std::sync::Arc::new(server);
        let serving = {
            let server = server.clone();
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let body = request.url().to_owned();
                    let _ = request.respond(tiny_http::Response::from_string(body));
                }
            })
        };
        let base = runtime_threads();
        on_worker(2, async move {
            let mut kept = Vec::new();
            for i in 0..150u32 {
                let bridge = Bridge::builder(Tokio::new())
                    .thread_name("h-reqwest")
                    .build();
                let client = bridge.run(|| async { reqwest::Client::new() });
                let url = format!("http://{addr}/{i}");
                let body =
                    bridge.run({
                        let client = client.clone();
                        move || async move {
                            client.get(url).send().await.unwrap().text().await.unwrap()
                        }
                    });
                assert_eq!(body, format!("/{i}"));
                if i % 10 == 0 {
                    kept.push((bridge, client));
                } else {
                    drop(client);
                }
            }
            // The kept ones still work.
            for (i, (bridge, client)) in kept.iter().enumerate() {
                let url = format!("http://{addr}/again/{i}");
                let client = client.clone();
                let body = bridge.run(move || async move {
                    client.get(url).send().await.unwrap().text().await.unwrap()
                });
                assert_eq!(body, format!("/again/{i}"));
            }
            // Drop each client on its bridge, then the bridges.
            for (bridge, client) in kept {
                bridge.run(move || async move { drop(client) });
            }
        });
        server.unblock();
        serving.join().unwrap();
        assert_no_pile_up("h-reqwest", base, 0);
    });
}

/// Documented limitation of `run`: inside a `LocalSet` task on a multi_thread
/// runtime tokio refuses the hand-off (it cannot tell that thread from a
/// worker) and panics, rather than hang.
#[test]
#[should_panic(expected = "can call blocking only when running on the multi-threaded runtime")]
fn run_in_a_local_set_task_on_a_multi_thread_runtime_panics() {
    let bridge = Bridge::builder(Tokio::new()).thread_name("h-local").build();
    let rt = multi_thread_rt(2, "h-local-mt");
    rt.block_on(async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let task = tokio::task::spawn_local(async move {
                    bridge.run(|| async {
                        tokio::time::sleep(ms(10)).await;
                        1
                    })
                });
                match task.await {
                    Ok(v) => v,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            })
            .await
    });
}
