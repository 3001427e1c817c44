//! The `Smol` adapter: the generic suite on async-io's timer, plus state that
//! outlives a call, and `SmolExecutor` (a user's own executor).
#![cfg(feature = "smol")]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::suite::LIMIT;
use common::{eventually, watchdog};
use executor_bridge::smol::SmolExecutor;
use executor_bridge::{Bridge, Smol};

async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}

bridge_suite!(Smol, Smol, crate::sleep);

/// The same suite on an adapter that also runs an executor of the user's.
mod with_executor {
    use executor_bridge::smol::SmolExecutor;

    bridge_suite!(
        SmolExecutor,
        SmolExecutor::new(std::sync::Arc::new(smol::Executor::new())),
        crate::sleep
    );
}

#[test]
fn a_listener_bound_in_one_call_accepts_in_the_next() {
    let bridge = Bridge::new(Smol);
    watchdog(LIMIT, move || {
        let listener =
            bridge.run(|| async { smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
        let addr = listener.local_addr().unwrap();
        let client = common::read_all_from(addr);
        std::thread::sleep(Duration::from_millis(20));
        bridge.run(move || async move {
            use smol::io::AsyncWriteExt;
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"hello from the next call").await.unwrap();
        });
        assert_eq!(client.join().unwrap(), "hello from the next call");
    });
}

#[test]
#[allow(clippy::async_yields_async)] // the call's output is the task's handle
fn a_spawned_ticker_keeps_ticking_between_calls() {
    let bridge = Bridge::new(Smol);
    watchdog(LIMIT, move || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = Arc::clone(&ticks);
        let task = bridge.run(move || async move {
            smol::spawn(async move {
                loop {
                    smol::Timer::after(Duration::from_millis(5)).await;
                    t.fetch_add(1, Ordering::SeqCst);
                }
            })
        });
        let before = ticks.load(Ordering::SeqCst);
        assert!(
            eventually(Duration::from_secs(10), || ticks.load(Ordering::SeqCst)
                >= before + 5),
            "the ticker stopped between calls"
        );
        let cancelled = bridge.run(move || async move { task.cancel().await });
        assert_eq!(cancelled, None);
    });
}

#[test]
fn tasks_on_a_users_executor_advance_inside_calls_on_every_path() {
    let ex = Arc::new(smol::Executor::new());
    let bridge = Bridge::new(SmolExecutor::new(Arc::clone(&ex)));
    for path in common::suite::paths() {
        let ex = Arc::clone(&ex);
        let out = common::suite::on_path(&bridge, path, move |b| {
            let ex2 = Arc::clone(&ex);
            let run = b.run(move || async move {
                let t = ex2.spawn(async {
                    smol::Timer::after(Duration::from_millis(2)).await;
                    5u32
                });
                t.await
            });
            let streamed: Vec<u32> = b
                .iter(move || {
                    let t = ex.spawn(async { 6u32 });
                    futures_lite::stream::once_future(t)
                })
                .collect();
            (run, streamed)
        });
        assert_eq!(out, (5, vec![6]), "{path:?}");
    }
}
