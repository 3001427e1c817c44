//! The `AsyncStd` adapter (legacy): the generic suite on async-std's timer,
//! plus state that outlives a call.
#![cfg(feature = "async-std")]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::suite::LIMIT;
use common::{eventually, watchdog};
use executor_bridge::{AsyncStd, Bridge};

bridge_suite!(AsyncStd, AsyncStd, ::async_std::task::sleep);

#[test]
fn a_listener_bound_in_one_call_accepts_in_the_next() {
    let bridge = Bridge::new(AsyncStd);
    watchdog(LIMIT, move || {
        let listener = bridge.run(|| async {
            async_std::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap()
        });
        let addr = listener.local_addr().unwrap();
        let client = common::read_all_from(addr);
        std::thread::sleep(Duration::from_millis(20));
        bridge.run(move || async move {
            use async_std::io::WriteExt;
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"hello from the next call").await.unwrap();
        });
        assert_eq!(client.join().unwrap(), "hello from the next call");
    });
}

#[test]
#[allow(clippy::async_yields_async)] // the call's output is the task's handle
fn a_spawned_ticker_keeps_ticking_between_calls() {
    let bridge = Bridge::new(AsyncStd);
    watchdog(LIMIT, move || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = Arc::clone(&ticks);
        let task = bridge.run(move || async move {
            async_std::task::spawn(async move {
                loop {
                    async_std::task::sleep(Duration::from_millis(5)).await;
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
fn spawn_blocking_inside_a_call_can_call_the_bridge_again() {
    let bridge = Bridge::new(AsyncStd);
    let inner = bridge.clone();
    let out = watchdog(LIMIT, move || {
        bridge.run(move || async move {
            async_std::task::spawn_blocking(move || {
                inner.run(|| async {
                    async_std::task::sleep(Duration::from_millis(2)).await;
                    9u32
                })
            })
            .await
        })
    });
    assert_eq!(out, 9);
}
