//! The `Pollster` adapter: the generic suite on a runtime-free timer, plus
//! what is special about having no reactor.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::suite::{thread_sleep, LIMIT};
use common::watchdog;
use executor_bridge::{Bridge, Pollster};

async fn sleep(d: Duration) {
    thread_sleep(d).await;
}

bridge_suite!(Pollster, Pollster, crate::sleep);

#[test]
fn futures_completed_by_other_threads() {
    let bridge = Bridge::new(Pollster);
    let out = watchdog(LIMIT, move || {
        let (tx, rx) = async_channel::bounded(1);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send_blocking("from a thread").unwrap();
        });
        let out = bridge.run(move || async move { rx.recv().await.unwrap() });
        sender.join().unwrap();
        out
    });
    assert_eq!(out, "from a thread");
}

#[test]
fn plain_thread_calls_start_no_loop_thread() {
    let bridge = Bridge::builder(Pollster).thread_name("ebPL0").build();
    let b = bridge.clone();
    let sum = watchdog(LIMIT, move || {
        (0..100u32)
            .map(|i| {
                b.run(move || async move {
                    futures_lite::future::yield_now().await;
                    i
                })
            })
            .sum::<u32>()
    });
    assert_eq!(sum, 4950);
    assert_eq!(bridge.threads(), 0);
    assert_eq!(common::threads_named("ebPL0"), 0);
}

#[test]
fn a_future_that_needs_a_reactor_reports_its_panic() {
    // Without a tokio runtime tokio's timer panics; the bridge carries that
    // panic back intact instead of hanging or aborting.
    let bridge = Bridge::new(Pollster);
    let err = watchdog(LIMIT, move || {
        bridge
            .try_run(|| async { tokio::time::sleep(Duration::from_millis(1)).await })
            .unwrap_err()
    });
    assert!(err.is_panic(), "{err:?}");
    let text = common::suite::message(&*err.into_panic()).unwrap_or_default();
    assert!(text.starts_with("there is no reactor running"), "{text}");
}

#[test]
fn the_process_wide_shortcuts_work() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let (run, items) = watchdog(LIMIT, move || {
        let run = executor_bridge::pollster::run(move || async move {
            c.fetch_add(1, Ordering::SeqCst);
            2
        });
        let items: Vec<u8> =
            executor_bridge::pollster::iter(|| futures_lite::stream::iter([1u8, 2])).collect();
        (run, items)
    });
    assert_eq!((run, items), (2, vec![1, 2]));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(std::ptr::eq(
        executor_bridge::pollster::bridge(),
        executor_bridge::pollster::bridge()
    ));
}
