//! `Bridge::iter_spawned`: a `Send` stream run as a task on the runtime's own
//! executor (tokio, smol, async-std), or on a loop thread where the runtime
//! cannot spawn (Pollster). The same promises as `iter`: live, ordered,
//! bounded, cancelled on drop, panics resumed.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use executor_bridge::{Bridge, Runtime};
use futures_lite::{stream, StreamExt};

use common::eventually;
use common::suite::{is_set, DropFlag};

fn bridge<R: Runtime>(rt: R, tag: &str) -> Bridge<R> {
    Bridge::builder(rt)
        .thread_name(format!("ebIS{tag}"))
        .stream_capacity(8)
        .build()
}

/// Items arrive in order, and the first before the producer has made the
/// second (which waits for the consumer to have seen the first).
fn live_and_ordered<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = bridge(mk(), tag);
    let (seen_tx, seen_rx) = async_channel::bounded::<()>(1);
    let mut it = b.iter_spawned(move || {
        stream::once(1u32).chain(stream::unfold(seen_rx, |rx| async move {
            rx.recv().await.ok()?;
            Some((2u32, rx))
        }))
    });
    assert_eq!(it.next(), Some(1));
    seen_tx.send_blocking(()).unwrap();
    assert_eq!(it.next(), Some(2));
    drop(seen_tx);
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None, "fused");
    let all: Vec<u32> = b.iter_spawned(|| stream::iter(0..1000u32)).collect();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}
per_adapter!(live_and_ordered, 60);

/// A consumer that stops stalls the producer near the capacity.
fn bounded<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = bridge(mk(), tag);
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let mut it =
        b.iter_spawned(move || stream::repeat_with(move || counter.fetch_add(1, Ordering::SeqCst)));
    assert_eq!(it.next(), Some(0));
    std::thread::sleep(Duration::from_millis(100));
    let n = made.load(Ordering::SeqCst);
    assert!(
        n <= 8 + 1 + 2,
        "the stream ran {n} items ahead of a capacity of 8"
    );
    let rest: Vec<usize> = it.by_ref().take(100).collect();
    assert_eq!(rest, (1..101).collect::<Vec<_>>());
}
per_adapter!(bounded, 60);

/// Dropping the iterator drops a pending stream promptly.
fn cancelled_on_drop<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = bridge(mk(), tag);
    let (guard, flag) = DropFlag::new();
    let mut it = b.iter_spawned(move || {
        stream::once(1u32).chain(stream::unfold(guard, |g| async move {
            std::future::pending::<()>().await;
            Some((2u32, g))
        }))
    });
    assert_eq!(it.next(), Some(1));
    assert!(!is_set(&flag));
    drop(it);
    assert!(
        eventually(Duration::from_secs(10), || is_set(&flag)),
        "the stream was not dropped"
    );
}
per_adapter!(cancelled_on_drop, 60);

/// A panic of the stream resumes in `next` with its payload, after the items
/// before it; the bridge keeps working.
fn panics_resume<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = bridge(mk(), tag);
    let mut it = b.iter_spawned(|| {
        stream::iter(0..3u32).map(|i| {
            if i == 2 {
                std::panic::panic_any(String::from("stream broke"));
            }
            i
        })
    });
    assert_eq!(it.next(), Some(0));
    assert_eq!(it.next(), Some(1));
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next())).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("stream broke")
    );
    assert_eq!(it.next(), None);
    let again: Vec<u32> = b.iter_spawned(|| stream::iter(0..3u32)).collect();
    assert_eq!(again, [0, 1, 2]);
}
per_adapter!(panics_resume, 60);

/// With tokio, the stream runs on the runtime's worker, not on a loop thread,
/// and tokio's timers work in it.
#[cfg(feature = "tokio")]
#[test]
fn on_tokio_the_stream_runs_on_the_runtime() {
    common::watchdog(60, || {
        let b = bridge(executor_bridge::Tokio::new(), "tk");
        let names: Vec<String> = b
            .iter_spawned(|| {
                stream::iter(0..3).then(|_| async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    std::thread::current().name().unwrap_or("").to_owned()
                })
            })
            .collect();
        assert_eq!(names.len(), 3);
        assert!(
            names.iter().all(|n| n.starts_with("executor-bridge-tokio")),
            "{names:?}"
        );
        assert_eq!(b.threads(), 0, "no loop thread was needed");
    });
}

/// Where the runtime cannot spawn, a loop thread runs the stream.
#[test]
fn on_pollster_a_loop_thread_runs_it() {
    common::watchdog(60, || {
        let b = bridge(executor_bridge::Pollster, "pl");
        let names: Vec<String> = b
            .iter_spawned(|| {
                stream::iter(0..2).map(|_| std::thread::current().name().unwrap_or("").to_owned())
            })
            .collect();
        assert!(names.iter().all(|n| n.starts_with("ebISpl")), "{names:?}");
    });
}
