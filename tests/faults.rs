//! Faults and misuse: panics in every place user code can panic (the factory,
//! the future, its destructor, a stream's destructor), iterators and bridges
//! dropped in awkward places, threads that cannot start, and the documented
//! panics of the builder and of `Error`. Every test that could hang runs
//! under a watchdog.
//!
//! Most checks run for every enabled adapter and from every calling context
//! the enabled features give: a plain thread, a nested call (inside a bridged
//! future, so the call hops), and with "tokio" a current_thread runtime (hop)
//! and a multi_thread worker task (hand-off).

#[macro_use]
mod common;

use std::any::Any;
use std::collections::VecDeque;
use std::error::Error as _;
use std::fmt::Debug;
use std::future::{ready, Future, Ready};
use std::io;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::ctx::{contexts, in_ctx, Ctx};
use common::{eventually, threads_named, watchdog};
use executor_bridge::{BlockingIter, Bridge, Error, Pollster, Runtime};
use futures_lite::{stream, Stream, StreamExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const LONG: Duration = Duration::from_secs(30);

/// A panic payload that is neither `&str` nor `String`, to see it arrive
/// intact.
#[derive(Debug, PartialEq)]
struct Payload(u32);

fn caught<T>(f: impl FnOnce() -> T) -> Box<dyn Any + Send> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => payload,
    }
}

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}

// ---------------------------------------------------------------------------
// Calling contexts and adapters.
// ---------------------------------------------------------------------------

fn bridge<R: Runtime>(rt: R, name: &str) -> Bridge<R> {
    Bridge::builder(rt).thread_name(name).build()
}

fn still_works<R: Runtime>(b: &Bridge<R>, ctx: Ctx) {
    let b = b.clone();
    let (a, c, d) = in_ctx(ctx, move || {
        let a = b.run(|| async { 1 });
        let c = b.run_timeout(LONG, || async { 2 }).unwrap();
        let d: Vec<u32> = b.iter(|| stream::iter([3, 4])).collect();
        (a, c, d)
    });
    assert_eq!((a, c, d), (1, 2, vec![3, 4]));
}

// ---------------------------------------------------------------------------
// A factory closure that panics before the future exists.
// ---------------------------------------------------------------------------

fn factory_panics<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = bridge(mk(), &format!("f-fac-{tag}"));
    for ctx in contexts() {
        // `run` resumes the panic with its payload.
        let c = b.clone();
        let payload = caught(|| {
            in_ctx(ctx, move || {
                c.run(|| -> Ready<u32> { panic_any(Payload(1)) })
            })
        });
        assert_eq!(
            payload.downcast_ref::<Payload>(),
            Some(&Payload(1)),
            "{ctx:?}"
        );

        // `try_run` and `run_timeout` report it.
        let c = b.clone();
        let (tried, timed) = in_ctx(ctx, move || {
            let tried = c.try_run(|| -> Ready<u32> { panic!("factory {}", 2) });
            let timed = c.run_timeout(LONG, || -> Ready<u32> { panic_any(Payload(3)) });
            (tried, timed)
        });
        let err = tried.unwrap_err();
        assert!(
            err.is_panic() && !err.is_timeout() && !err.is_spawn(),
            "{ctx:?}: {err:?}"
        );
        assert_eq!(err.to_string(), "the bridged future panicked: factory 2");
        assert_eq!(message(&*err.into_panic()), "factory 2");
        let err = timed.unwrap_err();
        assert!(err.is_panic(), "{ctx:?}: {err:?}");
        assert_eq!(err.to_string(), "the bridged future panicked");
        assert_eq!(
            err.into_panic().downcast_ref::<Payload>(),
            Some(&Payload(3))
        );

        // A stream's factory: `next` resumes it, then the iterator is done.
        let c = b.clone();
        let (payload, after) = in_ctx(ctx, move || {
            let mut it = c.iter(|| -> stream::Iter<std::ops::Range<u32>> { panic_any(Payload(4)) });
            let payload = caught(|| it.next());
            (payload, (it.next(), it.is_finished()))
        });
        assert_eq!(
            payload.downcast_ref::<Payload>(),
            Some(&Payload(4)),
            "{ctx:?}"
        );
        assert_eq!(after, (None, true));

        still_works(&b, ctx);
    }
}
per_adapter!(factory_panics, 120);

// ---------------------------------------------------------------------------
// A future whose destructor panics.
// ---------------------------------------------------------------------------

/// Ready at once with `out`, or pending forever; panics when dropped.
struct DropPanics {
    out: Option<u32>,
    msg: &'static str,
}

impl DropPanics {
    fn ready(out: u32, msg: &'static str) -> Self {
        DropPanics {
            out: Some(out),
            msg,
        }
    }

    fn pending(msg: &'static str) -> Self {
        DropPanics { out: None, msg }
    }
}

impl Future for DropPanics {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        match self.out.take() {
            Some(out) => Poll::Ready(out),
            None => Poll::Pending,
        }
    }
}

impl Drop for DropPanics {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic_any(self.msg);
        }
    }
}

fn future_destructor_panics<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = bridge(mk(), &format!("f-drop-{tag}"));
    for ctx in contexts() {
        // After completing: the output is lost, the panic is what the caller
        // gets, from `run` and from `try_run` alike.
        let c = b.clone();
        let payload = caught(|| {
            in_ctx(ctx, move || {
                c.run(|| DropPanics::ready(5, "dropped after ready"))
            })
        });
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"dropped after ready"),
            "{ctx:?}"
        );

        let c = b.clone();
        let (tried, timed_ready, timed_cancel, took) = in_ctx(ctx, move || {
            let tried = c.try_run(|| DropPanics::ready(6, "dropped after ready"));
            let timed_ready = c.run_timeout(LONG, || DropPanics::ready(7, "dropped after ready"));
            // When cancelled by the deadline: reported as the panic it is,
            // not as a timeout.
            let start = Instant::now();
            let timed_cancel = c.run_timeout(ms(50), || DropPanics::pending("dropped on cancel"));
            (tried, timed_ready, timed_cancel, start.elapsed())
        });
        for err in [tried.unwrap_err(), timed_ready.unwrap_err()] {
            assert!(err.is_panic(), "{ctx:?}: {err:?}");
            assert_eq!(
                err.to_string(),
                "the bridged future panicked: dropped after ready"
            );
        }
        let err = timed_cancel.unwrap_err();
        assert!(err.is_panic() && !err.is_timeout(), "{ctx:?}: {err:?}");
        assert_eq!(
            err.into_panic().downcast_ref::<&str>(),
            Some(&"dropped on cancel")
        );
        assert!(took >= ms(50) && took < LONG, "{took:?}");

        still_works(&b, ctx);
    }
}
per_adapter!(future_destructor_panics, 120);

// ---------------------------------------------------------------------------
// A stream whose destructor panics.
// ---------------------------------------------------------------------------

/// Yields `items`, then ends or stays pending; reports the thread it is
/// dropped on, then panics.
struct PanickyStream {
    items: VecDeque<u32>,
    then_pending: bool,
    dropped: mpsc::Sender<String>,
}

impl PanickyStream {
    fn new(items: &[u32], then_pending: bool, dropped: mpsc::Sender<String>) -> Self {
        PanickyStream {
            items: items.iter().copied().collect(),
            then_pending,
            dropped,
        }
    }
}

impl Stream for PanickyStream {
    type Item = u32;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u32>> {
        match self.items.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if self.then_pending => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

impl Drop for PanickyStream {
    fn drop(&mut self) {
        let name = thread::current().name().unwrap_or("<unnamed>").to_owned();
        let _ = self.dropped.send(name);
        if !thread::panicking() {
            panic_any("stream dropped");
        }
    }
}

fn idle_threads<R: Runtime + Debug>(b: &Bridge<R>) -> usize {
    let debug = format!("{b:?}");
    let rest = &debug[debug.find("idle_threads: ").expect(&debug) + "idle_threads: ".len()..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap()
}

fn loop_thread_name<R: Runtime>(b: &Bridge<R>) -> String {
    let mut it =
        b.iter(|| stream::once_future(async { thread::current().name().unwrap_or("").to_owned() }));
    it.next().unwrap()
}

fn stream_destructor_panics<R: Runtime + Debug>(mk: impl Fn() -> R, tag: &str) {
    let name = format!("f-sdrop-{tag}");
    let b = bridge(mk(), &name);
    for ctx in contexts() {
        // Consumed to the end: the items, then `next` resumes the panic,
        // then the iterator is finished.
        let (tx, dropped) = mpsc::channel();
        let c = b.clone();
        let (items, payload, after) = in_ctx(ctx, move || {
            let mut it = c.iter(move || PanickyStream::new(&[1, 2, 3], false, tx));
            let items: Vec<u32> = (0..3).map(|_| it.next().unwrap()).collect();
            let payload = caught(|| it.next());
            (items, payload, (it.next(), it.is_finished()))
        });
        assert_eq!(items, [1, 2, 3], "{ctx:?}");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"stream dropped"),
            "{ctx:?}"
        );
        assert_eq!(after, (None, true));
        assert!(dropped.recv_timeout(LONG).unwrap().starts_with(&name));

        // Dropped early, while pending: nobody is left to get the panic; the
        // loop thread must survive it and take the next job.
        assert!(eventually(LONG, || idle_threads(&b) == b.threads()));
        let before = loop_thread_name(&b);
        assert!(eventually(LONG, || idle_threads(&b) == b.threads()));
        let threads = b.threads();
        let (tx, dropped) = mpsc::channel();
        let c = b.clone();
        let first = in_ctx(ctx, move || {
            let mut it = c.iter(move || PanickyStream::new(&[1, 2, 3], true, tx));
            it.next()
        });
        assert_eq!(first, Some(1));
        assert_eq!(dropped.recv_timeout(LONG).unwrap(), before, "{ctx:?}");
        assert!(eventually(LONG, || idle_threads(&b) == b.threads()));
        assert_eq!(b.threads(), threads, "{ctx:?}: a loop thread died");
        assert_eq!(loop_thread_name(&b), before, "{ctx:?}");

        still_works(&b, ctx);
    }
}
per_adapter!(stream_destructor_panics, 120);

/// A stream that yields `k` items at once and then panics: whoever polls the
/// stream itself sees the `k` items, then the panic. So must the iterator's
/// consumer: the items may not vanish with the batch they travel in.
fn stream_panics_after_ready_items<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = bridge(mk(), &format!("f-spanic-{tag}"));
    for k in [1, 3, 20, 100] {
        let mut it = b.iter(move || {
            stream::iter(0u32..).map(move |i| {
                if i == k {
                    panic_any(Payload(k));
                }
                i
            })
        });
        let mut seen = Vec::new();
        let payload = caught(|| {
            for v in it.by_ref() {
                seen.push(v);
            }
        });
        assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(k)));
        assert_eq!(
            seen,
            (0..k).collect::<Vec<_>>(),
            "items the stream yielded before it panicked were lost"
        );
        assert_eq!(it.next(), None);
    }
}
per_adapter!(stream_panics_after_ready_items, 120);

// ---------------------------------------------------------------------------
// A `BlockingIter` moved to and dropped on another thread.
// ---------------------------------------------------------------------------

/// An endless stream of ready items that reports where it was dropped.
fn counting(dropped: mpsc::Sender<String>) -> impl Stream<Item = u32> {
    struct Guard(mpsc::Sender<String>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(thread::current().name().unwrap_or("").to_owned());
        }
    }
    let guard = Guard(dropped);
    stream::iter(0u32..).map(move |i| {
        let _ = &guard;
        i
    })
}

fn iter_moved_across_threads<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let name = format!("f-move-{tag}");
    let b = bridge(mk(), &name);
    for ctx in contexts() {
        // Made in `ctx`, read a little there, moved to a plain thread, read
        // and dropped there: the stream is dropped on its loop thread.
        let (tx, dropped) = mpsc::channel();
        let c = b.clone();
        let (mut it, first) = in_ctx(ctx, move || {
            let mut it = c.iter(move || counting(tx));
            let first = it.next();
            (it, first)
        });
        assert_eq!(first, Some(0));
        let read = thread::spawn(move || {
            let got: Vec<u32> = it.by_ref().take(1000).collect();
            drop(it);
            got
        })
        .join()
        .unwrap();
        assert_eq!(read, (1..1001).collect::<Vec<_>>());
        assert!(
            dropped.recv_timeout(LONG).unwrap().starts_with(&name),
            "{ctx:?}"
        );

        // Made on a plain thread, moved into `ctx` and dropped there unread.
        let (tx, dropped) = mpsc::channel();
        let it: BlockingIter<u32> = b.iter(move || counting(tx));
        in_ctx(ctx, move || drop(it));
        assert!(
            dropped.recv_timeout(LONG).unwrap().starts_with(&name),
            "{ctx:?}"
        );

        still_works(&b, ctx);
    }
}
per_adapter!(iter_moved_across_threads, 120);

// ---------------------------------------------------------------------------
// The last clone dropped while calls are in flight.
// ---------------------------------------------------------------------------

/// A stream of `n` items that takes its time (blocking its loop thread, so it
/// works on every runtime).
fn slow(n: u32) -> impl Stream<Item = u32> {
    stream::iter(0..n).map(|i| {
        thread::sleep(ms(5));
        i
    })
}

fn last_clone_dropped_with_calls_in_flight<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let name = format!("f-fly-{tag}");
    // A long idle timeout: only the shutdown can make the threads exit in
    // time. Two threads at most, so some iterators wait in the queue.
    let build = || {
        Bridge::builder(mk())
            .thread_name(&name)
            .idle_timeout(Duration::from_secs(3600))
            .max_threads(2)
            .build()
    };
    let all_gone = || {
        assert!(
            eventually(LONG, || threads_named(&name) == 0),
            "{} loop threads left",
            threads_named(&name)
        );
    };

    // Iterators do not keep the bridge alive: the only clone is dropped at
    // once, with two streams running and four waiting in the queue.
    let b = build();
    let iters: Vec<BlockingIter<u32>> = (0..6).map(|_| b.iter(|| slow(20))).collect();
    drop(b);
    let consumers: Vec<_> = iters
        .into_iter()
        .map(|it| thread::spawn(move || it.collect::<Vec<u32>>()))
        .collect();
    for consumer in consumers {
        assert_eq!(consumer.join().unwrap(), (0..20).collect::<Vec<_>>());
    }
    all_gone();

    // Calls on other threads, each with its own clone, from a hopping
    // context; this thread drops its clone while they are in flight, the
    // last caller to finish drops the last one.
    let b = build();
    let iters: Vec<BlockingIter<u32>> = (0..3).map(|_| b.iter(|| slow(20))).collect();
    let started = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..4u32)
        .map(|i| {
            let c = b.clone();
            let started = started.clone();
            thread::spawn(move || {
                in_ctx(Ctx::Nested, move || {
                    c.run(move || async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(ms(100));
                        i
                    })
                })
            })
        })
        .collect();
    assert!(eventually(LONG, || started.load(Ordering::SeqCst) > 0));
    drop(b);
    let consumers: Vec<_> = iters
        .into_iter()
        .map(|it| thread::spawn(move || it.collect::<Vec<u32>>()))
        .collect();
    for (i, caller) in callers.into_iter().enumerate() {
        assert_eq!(caller.join().unwrap(), i as u32);
    }
    for consumer in consumers {
        assert_eq!(consumer.join().unwrap(), (0..20).collect::<Vec<_>>());
    }
    all_gone();
}
per_adapter!(last_clone_dropped_with_calls_in_flight, 120);

// ---------------------------------------------------------------------------
// A bridge dropped from inside its own loop thread.
// ---------------------------------------------------------------------------

fn dropped_on_its_own_loop_thread<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let name = format!("f-self-{tag}");
    for ctx in contexts() {
        // `run` borrows a clone for the whole call, so the last clone can only
        // end up on a loop thread inside a stream (or a task) the bridge runs.
        let b = Bridge::builder(mk())
            .thread_name(&name)
            .idle_timeout(Duration::from_secs(3600))
            .build();
        let (go, wait) = async_channel::bounded::<()>(1);
        let last = b.clone();
        let (dropped_on, items) = in_ctx(ctx, move || {
            let it = b.iter(move || {
                stream::once_future(async move {
                    let _ = wait.recv().await;
                    drop(last);
                    thread::current().name().unwrap_or("").to_owned()
                })
            });
            drop(b);
            go.send_blocking(()).unwrap();
            let items: Vec<String> = it.collect();
            (items[0].clone(), items.len())
        });
        assert!(dropped_on.starts_with(&name), "{ctx:?}: {dropped_on}");
        assert_eq!(items, 1);
        assert!(eventually(LONG, || threads_named(&name) == 0), "{ctx:?}");

        // The same with the iterator dropped before the stream finishes.
        let b = Bridge::builder(mk())
            .thread_name(&name)
            .idle_timeout(Duration::from_secs(3600))
            .build();
        let (tx, dropped) = mpsc::channel();
        let last = b.clone();
        in_ctx(ctx, move || {
            let mut it = b.iter(move || {
                let last = last;
                counting(tx).map(move |i| {
                    let _ = &last;
                    i
                })
            });
            drop(b);
            assert_eq!(it.next(), Some(0));
        });
        assert!(dropped.recv_timeout(LONG).unwrap().starts_with(&name));
        assert!(eventually(LONG, || threads_named(&name) == 0), "{ctx:?}");
    }
}

per_adapter!(dropped_on_its_own_loop_thread, 120);

/// The last clone of a `Bridge<Tokio>` dropped by a task on the bridge's own
/// tokio runtime: the runtime must not be dropped (blocking) on its own
/// worker.
#[cfg(feature = "tokio")]
#[test]
fn tokio_bridge_dropped_by_a_task_on_its_own_runtime() {
    watchdog(60, || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("f-own-rt")
            .enable_all()
            .build()
            .unwrap();
        let b = Bridge::builder(executor_bridge::Tokio::from_runtime(rt))
            .thread_name("f-own-loop")
            .build();
        // Start a loop thread too, so the shutdown has one to stop.
        assert_eq!(b.iter(|| stream::iter([1])).count(), 1);
        let (done, finished) = mpsc::channel();
        let last = b.clone();
        b.run(move || async move {
            tokio::spawn(async move {
                tokio::time::sleep(ms(50)).await;
                drop(last);
                done.send(thread::current().name().unwrap_or("").to_owned())
                    .unwrap();
            });
        });
        drop(b);
        assert_eq!(finished.recv_timeout(LONG).unwrap(), "f-own-rt");
        assert!(eventually(LONG, || threads_named("f-own-") == 0));
    });
}

// ---------------------------------------------------------------------------
// A loop thread that cannot start.
// ---------------------------------------------------------------------------

/// A stack size no system grants.
const ABSURD: usize = usize::MAX / 2;

fn spawn_failure_is_an_error<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let name = format!("f-spawn-{tag}");
    let bad = Bridge::builder(mk())
        .thread_name(&name)
        .stack_size(ABSURD)
        .build();
    for _ in 0..3 {
        // Inline calls need no thread and keep working.
        assert_eq!(bad.run(|| async { 1 }), 1);
        // A hop needs one: an error, quickly, every time.
        let c = bad.clone();
        let (tried, timed, iter) = in_ctx(Ctx::Nested, move || {
            (
                c.try_run(|| async { 2 }),
                c.run_timeout(LONG, || async { 3 }),
                c.try_iter(|| stream::iter([4])).map(|_| ()),
            )
        });
        for err in [tried.unwrap_err(), timed.unwrap_err(), iter.unwrap_err()] {
            assert!(
                err.is_spawn() && !err.is_panic() && !err.is_timeout(),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with("failed to start a loop thread: "),
                "{err}"
            );
            assert!(err.source().unwrap().downcast_ref::<io::Error>().is_some());
        }
        // From a plain thread, `run_timeout` and `try_iter` still need one.
        assert!(bad
            .run_timeout(LONG, || async { 5 })
            .unwrap_err()
            .is_spawn());
        assert!(bad.try_iter(|| stream::iter([6])).unwrap_err().is_spawn());
        assert_eq!(bad.threads(), 0, "the failed starts were not rolled back");
    }
    #[cfg(feature = "tokio")]
    {
        let c = bad.clone();
        let err = in_ctx(Ctx::CurrentThread, move || c.try_run(|| async { 7 })).unwrap_err();
        assert!(err.is_spawn(), "{err:?}");
    }
    assert_eq!(threads_named(&name), 0);
}
per_adapter!(spawn_failure_is_an_error, 120);

#[test]
fn a_sane_bridge_works_next_to_one_that_cannot_start_threads() {
    watchdog(60, || {
        let bad = Bridge::builder(Pollster).stack_size(ABSURD).build();
        let good = Bridge::builder(Pollster).thread_name("f-sane").build();
        assert!(bad
            .run_timeout(LONG, || async { 1 })
            .unwrap_err()
            .is_spawn());
        assert_eq!(good.run_timeout(LONG, || async { 2 }).unwrap(), 2);
        let (g, b) = (good.clone(), bad.clone());
        let (ok, err) = in_ctx(Ctx::Nested, move || {
            (g.try_run(|| async { 3 }), b.try_run(|| async { 4 }))
        });
        assert_eq!(ok.unwrap(), 3);
        assert!(err.unwrap_err().is_spawn());
        assert_eq!(
            good.iter(|| stream::iter(0..3)).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    });
}

#[test]
#[should_panic(expected = "executor-bridge: failed to start a loop thread: ")]
fn iter_panics_when_no_loop_thread_starts() {
    let bad = Bridge::builder(Pollster).stack_size(ABSURD).build();
    let _ = bad.iter(|| stream::iter([1]));
}

#[test]
#[should_panic(expected = "executor-bridge: failed to start a loop thread: ")]
fn run_panics_when_a_hop_cannot_start_a_thread() {
    let bad = Bridge::builder(Pollster).stack_size(ABSURD).build();
    in_ctx(Ctx::Nested, move || bad.run(|| async { 1 }));
}

// ---------------------------------------------------------------------------
// The builder's and `Error`'s documented panics; the thread limit.
// ---------------------------------------------------------------------------

#[test]
#[should_panic(expected = "max_threads must be at least 1")]
fn max_threads_zero_panics() {
    let _ = Bridge::builder(Pollster).max_threads(0);
}

#[test]
#[should_panic(expected = "stream_capacity must be at least 1")]
fn stream_capacity_zero_panics() {
    let _ = Bridge::builder(Pollster).stream_capacity(0);
}

#[test]
#[should_panic(
    expected = "called `Error::into_panic` on an error that is not a panic: deadline of 10ms elapsed"
)]
fn into_panic_on_a_timeout_panics() {
    let err = Bridge::new(Pollster)
        .run_timeout(ms(10), std::future::pending::<()>)
        .unwrap_err();
    assert!(err.is_timeout());
    let _ = err.into_panic();
}

#[test]
fn try_into_panic_gives_a_non_panic_back() {
    let err = Bridge::new(Pollster)
        .run_timeout(ms(10), std::future::pending::<()>)
        .unwrap_err();
    let err: Error = err.try_into_panic().unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::TimedOut);
}

/// With one thread allowed, a nested call still gets a thread of its own (it
/// would wait for itself otherwise), and queued work completes.
#[test]
fn max_threads_one_neither_deadlocks_nested_calls_nor_loses_queued_work() {
    watchdog(60, || {
        let b = Bridge::builder(Pollster)
            .thread_name("f-max1")
            .max_threads(1)
            .build();
        let inner = b.clone();
        // run_timeout always runs on a loop thread; the nested call hops.
        let out = b.run_timeout(LONG, move || async move {
            let deeper = inner.clone();
            inner.run(move || async move { deeper.run(|| async { 3 }) * 2 })
        });
        assert_eq!(out.unwrap(), 6);
        let iters: Vec<_> = (0..4).map(|_| b.iter(|| slow(10))).collect();
        for it in iters {
            assert_eq!(it.count(), 10);
        }
    });
}

/// `run_timeout` promises to give up after its timeout. With every loop
/// thread busy (here: the only one, `max_threads(1)`, held by a live
/// iterator), its job waits in the queue; when the deadline passes it must
/// still return `Error::Timeout`, not wait for the job to start.
#[test]
fn run_timeout_returns_while_its_job_waits_in_the_queue() {
    watchdog(30, || {
        let b = Bridge::builder(Pollster)
            .thread_name("f-queue")
            .max_threads(1)
            .build();
        let it = b.iter(stream::pending::<u8>);
        let start = Instant::now();
        let err = b.run_timeout(ms(100), || ready(1)).unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        drop(it);
        assert_eq!(b.run_timeout(LONG, || ready(2)).unwrap(), 2);
    });
}

/// `idle_timeout(Duration::MAX)`: "never retire idle threads". The loop
/// threads must keep taking jobs (no overflow computing the deadline).
#[test]
fn an_endless_idle_timeout_keeps_the_loop_threads_working() {
    watchdog(60, || {
        let b = Bridge::builder(Pollster)
            .thread_name("f-idle-max")
            .idle_timeout(Duration::MAX)
            .build();
        for i in 0..5u32 {
            let got = b.try_run(|| ready(())).map(|()| i);
            assert_eq!(got.unwrap(), i);
            let got = b.run_timeout(LONG, move || ready(i));
            assert_eq!(got.unwrap(), i, "call {i}");
            thread::sleep(ms(20));
        }
        assert_eq!(b.threads(), 1);
    });
}

/// A zero idle timeout: threads retire as soon as they are idle, racing with
/// callers that hand them work; nothing may be lost.
#[test]
fn a_zero_idle_timeout_loses_no_call() {
    watchdog(120, || {
        let b = Bridge::builder(Pollster)
            .thread_name("f-idle-0")
            .idle_timeout(Duration::ZERO)
            .build();
        let callers: Vec<_> = (0..8u32)
            .map(|t| {
                let b = b.clone();
                thread::spawn(move || {
                    for i in 0..300u32 {
                        let v = t * 1000 + i;
                        assert_eq!(b.run_timeout(LONG, move || ready(v)).unwrap(), v);
                        if i % 50 == 0 {
                            let n: Vec<u32> = b.iter(move || stream::iter(0..v % 7)).collect();
                            assert_eq!(n.len() as u32, v % 7);
                        }
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        assert!(eventually(LONG, || threads_named("f-idle-0") == 0));
    });
}
