//! Faults and misuse: panics everywhere user code can panic (a factory, a
//! future, its destructor, a stream, its destructor), iterators moved and
//! dropped in awkward places, loop threads that cannot start, thread-locals
//! whose destructors call the bridge, runtimes shut down underneath, and the
//! documented panics (their messages, and that they point at the caller's
//! line).

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::error::Error as _;
use std::future::{Future, Ready};
use std::io;
use std::panic::{self, catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{BlockingIter, Bridge, Error, Pollster};
use futures_lite::{stream, Stream, StreamExt};

use crate::common::{is_broken, message, per_runtime, watchdog, Ctx, Payload, TestRuntime, LIMIT};
use crate::pool::{
    alive, assert_all_gone, assert_settled, hold, ms, stats, tagged, this_thread, ticks, Flaky,
    Hopping, LONG, SPAWN_ERR, SPAWN_OK, SPAWN_PANIC, SPAWN_THEN_ERR,
};

/// Sends the name of the thread it is dropped on.
pub(crate) struct ReportDrop(pub(crate) mpsc::Sender<String>);

impl Drop for ReportDrop {
    fn drop(&mut self) {
        let _ = self.0.send(this_thread());
    }
}

/// The payload of the panic `f` must raise.
#[track_caller]
fn caught<T>(f: impl FnOnce() -> T) -> Box<dyn Any + Send> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => payload,
    }
}

fn text(payload: &(dyn Any + Send)) -> String {
    message(payload).unwrap_or_else(|| "<not a string>".to_owned())
}

/// The bridge still serves every kind of call from `ctx`.
#[track_caller]
fn still_works<R: TestRuntime>(bridge: &Bridge<R>, ctx: Ctx) {
    let out = ctx.run(bridge, |b| {
        let a = b.run(|| async {
            R::sleep(ms(1)).await;
            1
        });
        let c = b.run_timeout(LONG, || async { 2 }).unwrap();
        let d: Vec<u32> = b.iter(|| stream::iter([3, 4])).collect();
        let e: Vec<u32> = b.iter_direct(|| stream::iter([5])).collect();
        (a, c, d, e)
    });
    assert_eq!(
        out,
        (1, 2, vec![3, 4], vec![5]),
        "{ctx:?}: the bridge broke"
    );
}

// ---------------------------------------------------------------------------
// A factory that panics before its future or stream exists.
// ---------------------------------------------------------------------------

fn factory_panics<R: TestRuntime>() {
    let bridge = Bridge::builder(R::make())
        .thread_name(tagged::<R>("ftFac"))
        .build();
    for ctx in Ctx::all() {
        let payload = caught(|| {
            ctx.run(&bridge, |b| {
                b.run(|| -> Ready<u32> { panic_any(Payload(1)) })
            })
        });
        assert_eq!(
            payload.downcast_ref::<Payload>(),
            Some(&Payload(1)),
            "{ctx:?}"
        );

        let (tried, timed) = ctx.run(&bridge, |b| {
            let tried = b.try_run(|| -> Ready<u32> { panic!("factory {}", 2) });
            let timed = b.run_timeout(LONG, || -> Ready<u32> { panic_any(Payload(3)) });
            (tried, timed)
        });
        let err = tried.unwrap_err();
        assert!(
            err.is_panic() && !err.is_timeout() && !err.is_spawn(),
            "{ctx:?}: {err:?}"
        );
        assert_eq!(err.to_string(), "the bridged future panicked: factory 2");
        assert_eq!(err.panic_message(), Some("factory 2"));
        assert_eq!(text(&*err.into_panic()), "factory 2");
        let err = timed.unwrap_err();
        assert!(err.is_panic(), "{ctx:?}: {err:?}");
        assert_eq!(err.to_string(), "the bridged future panicked");
        assert_eq!(
            err.into_panic().downcast_ref::<Payload>(),
            Some(&Payload(3))
        );

        // A stream's factory: `next` resumes the panic, then the iterator
        // fails for good.
        let (piped, direct) = ctx.run(&bridge, |b| {
            let mut it = b.iter(|| -> stream::Iter<std::ops::Range<u32>> { panic_any(Payload(4)) });
            let piped = (caught(|| it.next()), is_broken(&mut it));
            let mut it =
                b.iter_direct(|| -> stream::Iter<std::ops::Range<u32>> { panic_any(Payload(5)) });
            let direct = (caught(|| it.next()), is_broken(&mut it));
            (piped, direct)
        });
        assert_eq!(
            piped.0.downcast_ref::<Payload>(),
            Some(&Payload(4)),
            "{ctx:?}"
        );
        assert!(piped.1, "{ctx:?}");
        assert_eq!(
            direct.0.downcast_ref::<Payload>(),
            Some(&Payload(5)),
            "{ctx:?}"
        );
        assert!(direct.1, "{ctx:?}");

        still_works(&bridge, ctx);
    }
}

// ---------------------------------------------------------------------------
// A future whose destructor panics.
// ---------------------------------------------------------------------------

/// Ready at once with `out`, or pending forever; panics when dropped.
struct DropPanics {
    out: Option<u32>,
    msg: &'static str,
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

fn ready_then_panics(out: u32) -> DropPanics {
    DropPanics {
        out: Some(out),
        msg: "dropped after ready",
    }
}

fn future_destructor_panics<R: TestRuntime>() {
    let bridge = Bridge::builder(R::make())
        .thread_name(tagged::<R>("ftDrop"))
        .build();
    for ctx in Ctx::all() {
        // After completing: the output is lost, the panic is what the caller
        // gets, from every method.
        let payload = caught(|| ctx.run(&bridge, |b| b.run(|| ready_then_panics(5))));
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"dropped after ready"),
            "{ctx:?}"
        );

        let (tried, timed_ready, timed_cancel, took) = ctx.run(&bridge, |b| {
            let tried = b.try_run(|| ready_then_panics(6));
            let timed_ready = b.run_timeout(LONG, || ready_then_panics(7));
            // Cancelled by the deadline: reported as the panic it is.
            let start = Instant::now();
            let timed_cancel = b.run_timeout(ms(50), || DropPanics {
                out: None,
                msg: "dropped on cancel",
            });
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
        assert!(took >= ms(50) && took < LONG, "{ctx:?}: {took:?}");

        still_works(&bridge, ctx);
    }
}

// ---------------------------------------------------------------------------
// Streams that panic, in their poll or their destructor.
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
        let _ = self.dropped.send(this_thread());
        if !thread::panicking() {
            panic_any("stream dropped");
        }
    }
}

fn stream_destructor_panics<R: TestRuntime>() {
    let name = tagged::<R>("ftSdrop");
    let bridge = Bridge::builder(R::make())
        .thread_name(&name)
        .max_threads(1)
        .build();
    for ctx in Ctx::all() {
        // Consumed to the end: the items, then `next` resumes the panic of the
        // destructor, then the iterator is finished. For both iterators.
        let (tx, dropped) = mpsc::channel();
        let tx2 = tx.clone();
        let (piped, direct) = ctx.run(&bridge, move |b| {
            let mut it = b.iter(move || PanickyStream::new(&[1, 2, 3], false, tx));
            let items: Vec<u32> = (0..3).map(|_| it.next().unwrap()).collect();
            let piped = (items, text(&*caught(|| it.next())), is_broken(&mut it));
            let mut it = b.iter_direct(move || PanickyStream::new(&[4, 5], false, tx2));
            let items: Vec<u32> = (0..2).map(|_| it.next().unwrap()).collect();
            let direct = (items, text(&*caught(|| it.next())), is_broken(&mut it));
            (piped, direct)
        });
        assert_eq!(
            piped,
            (vec![1, 2, 3], "stream dropped".to_owned(), true),
            "{ctx:?}"
        );
        assert_eq!(
            direct,
            (vec![4, 5], "stream dropped".to_owned(), true),
            "{ctx:?}"
        );
        let on = dropped.recv_timeout(LONG).unwrap();
        assert!(on.starts_with(&name), "{ctx:?}: dropped on {on}");

        // Dropped early, while pending: nobody is left to get the panic; the
        // loop thread must survive it and take the next job.
        assert_settled(&bridge, &name, "before");
        let threads = bridge.threads();
        let (tx, dropped) = mpsc::channel();
        let first = ctx.run(&bridge, move |b| {
            let mut it = b.iter(move || PanickyStream::new(&[1, 2, 3], true, tx));
            (it.next(), it.next(), it.next())
        });
        assert_eq!(first, (Some(1), Some(2), Some(3)));
        let on = dropped.recv_timeout(LONG).unwrap();
        assert!(on.starts_with(&name), "{ctx:?}: dropped on {on}");
        assert_settled(&bridge, &name, "after a stream's destructor panicked");
        assert_eq!(bridge.threads(), threads, "{ctx:?}: a loop thread died");
        assert!(
            crate::common::thread_names().contains(&on),
            "{ctx:?}: {on} is gone"
        );

        still_works(&bridge, ctx);
    }
}

/// A stream that yields `k` items at once and then panics: the consumer
/// must get the `k` items, then the panic, with every iterator.
fn stream_panics_after_ready_items<R: TestRuntime>() {
    let plain = Bridge::builder(R::make())
        .thread_name(tagged::<R>("ftSpanic"))
        .build();
    let ahead = Bridge::builder(R::make())
        .thread_name(tagged::<R>("ftSpanicC"))
        .stream_capacity(64)
        .build();
    let boom = |k: u32| {
        move || {
            stream::iter(0u32..).map(move |i| {
                if i == k {
                    panic_any(Payload(k));
                }
                i
            })
        }
    };
    for k in [0, 1, 3, 20, 100, 300] {
        let iters: [(&str, BlockingIter<u32>); 3] = [
            ("iter", plain.iter(boom(k))),
            ("iter with capacity", ahead.iter(boom(k))),
            ("iter_direct", plain.iter_direct(boom(k))),
        ];
        for (kind, mut it) in iters {
            let mut seen = Vec::new();
            let payload = caught(|| {
                for v in it.by_ref() {
                    seen.push(v);
                }
            });
            assert_eq!(
                payload.downcast_ref::<Payload>(),
                Some(&Payload(k)),
                "{kind}, k = {k}"
            );
            assert_eq!(
                seen,
                (0..k).collect::<Vec<_>>(),
                "{kind}: items yielded before the panic were lost"
            );
            assert!(is_broken(&mut it), "{kind}, k = {k}");
        }
    }
}

// ---------------------------------------------------------------------------
// Iterators moved to, and dropped on, other threads and contexts.
// ---------------------------------------------------------------------------

/// An endless stream of ready items that reports where it is dropped.
fn counting(dropped: mpsc::Sender<String>) -> impl Stream<Item = u32> + Send {
    let guard = ReportDrop(dropped);
    stream::iter(0u32..).map(move |i| {
        let _ = &guard;
        i
    })
}

fn iters_moved_across_threads<R: TestRuntime>() {
    let name = tagged::<R>("ftMove");
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    for ctx in Ctx::all() {
        // Made in `ctx`, read a little there, moved to a plain thread, read
        // and dropped there: the stream of `iter` is dropped on its loop
        // thread, the one of `iter_direct` where the iterator is.
        let (tx, dropped) = mpsc::channel();
        let (tx2, dropped2) = mpsc::channel();
        let (mut it, mut direct, first) = ctx.run(&bridge, move |b| {
            let mut it = b.iter(move || counting(tx));
            let mut direct = b.iter_direct(move || counting(tx2));
            let first = (it.next(), direct.next());
            (it, direct, first)
        });
        assert_eq!(first, (Some(0), Some(0)), "{ctx:?}");
        let (read, read2) = thread::Builder::new()
            .name("ft-consumer".into())
            .spawn(move || {
                let read: Vec<u32> = it.by_ref().take(1000).collect();
                let read2: Vec<u32> = direct.by_ref().take(1000).collect();
                drop((it, direct));
                (read, read2)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(read, (1..1001).collect::<Vec<_>>(), "{ctx:?}");
        assert_eq!(read2, (1..1001).collect::<Vec<_>>(), "{ctx:?}");
        let on = dropped.recv_timeout(LONG).unwrap();
        assert!(on.starts_with(&name), "{ctx:?}: dropped on {on}");
        assert_eq!(
            dropped2.recv_timeout(LONG).unwrap(),
            "ft-consumer",
            "{ctx:?}"
        );

        // Made on a plain thread, moved into `ctx`, read or not, dropped there.
        let (tx, dropped) = mpsc::channel();
        let it: BlockingIter<u32> = bridge.iter(move || counting(tx));
        let (tx2, _dropped2) = mpsc::channel();
        let mut direct = bridge.iter_direct(move || counting(tx2));
        assert_eq!(direct.next(), Some(0));
        let more = ctx.run(&bridge, move |_| {
            let more = direct.by_ref().take(3).collect::<Vec<_>>();
            drop((it, direct));
            more
        });
        assert_eq!(more, [1, 2, 3], "{ctx:?}");
        // Made on a loop thread and dropped there, or, if it was dropped
        // before its loop thread started, never made.
        match dropped.recv_timeout(LONG) {
            Ok(on) => assert!(
                on.starts_with(&name),
                "{ctx:?}: an unread stream dropped on {on}"
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Err(e) => panic!("{ctx:?}: an unread stream was never dropped: {e}"),
        }

        still_works(&bridge, ctx);
    }
}

per_runtime!(
    factory_panics,
    future_destructor_panics,
    stream_destructor_panics,
    stream_panics_after_ready_items,
    iters_moved_across_threads
);

// ---------------------------------------------------------------------------
// Loop threads that cannot start.
// ---------------------------------------------------------------------------

/// A stack size no system grants.
const ABSURD: usize = usize::MAX / 2;

#[track_caller]
fn assert_spawn_error(err: Error) {
    assert!(
        err.is_spawn() && !err.is_panic() && !err.is_timeout() && !err.is_runtime(),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("failed to start a loop thread: "),
        "{err}"
    );
    let source = err
        .source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .expect("an io::Error source");
    let kind = source.kind();
    // Converted, it keeps its cause's kind.
    assert_eq!(io::Error::from(err).kind(), kind);
}

fn a_stack_size_the_system_refuses_fails_only_the_calls_that_need_a_thread<R: TestRuntime>() {
    let name = tagged::<R>("ftStack");
    let bad = Bridge::builder(R::make())
        .thread_name(&name)
        .stack_size(ABSURD)
        .build();
    for _ in 0..3 {
        // Calls that run on the caller's thread need no loop thread.
        let out = bad.run(|| async {
            R::sleep(ms(1)).await;
            1
        });
        assert_eq!(out, 1);
        assert_eq!(
            bad.iter_direct(|| ticks::<R>(2)).collect::<Vec<_>>(),
            [0, 1]
        );
        // A deadline is a timer, not a loop thread.
        let got = bad.iter_direct(|| stream::iter([5])).next_timeout(LONG);
        assert_eq!(got.unwrap(), Some(5));

        // A hop needs one: an error, quickly, every time. Nested calls hop.
        let err = bad.run_timeout(LONG, || async { 3 }).unwrap_err();
        assert_spawn_error(err);
        let inner = bad.clone();
        let nested = bad.run(move || async move { inner.try_run(|| async { 2 }) });
        assert_spawn_error(nested.unwrap_err());
        let inner = bad.clone();
        let nested = bad.run(move || async move { inner.run_timeout(LONG, || async { 4 }) });
        assert_spawn_error(nested.unwrap_err());
        let mut it = bad.iter(|| stream::iter([6]));
        let panic = text(&*caught(|| it.next()));
        assert!(
            panic.starts_with("executor-bridge: failed to start a loop thread: "),
            "{panic}"
        );
        assert!(is_broken(&mut it));
        let mut it = bad.iter(|| stream::iter([7]));
        assert_spawn_error(it.next_timeout(LONG).unwrap_err());

        // A runtime whose calls hop from a nested call fails the same way.
        let hopping = Bridge::builder(Hopping(R::make()))
            .thread_name(&name)
            .stack_size(ABSURD)
            .build();
        let inner = hopping.clone();
        let err = hopping
            .run(move || async move { inner.try_run(|| async { 8 }) })
            .unwrap_err();
        assert_spawn_error(err);
        assert_eq!(hopping.threads(), 0);

        assert_eq!(bad.threads(), 0, "the failed starts were not rolled back");
        assert_eq!(stats(&bad).queued, 0);
    }
    assert_eq!(alive(&name), 0);
}

fn a_spawn_loop_hook_that_fails_is_a_spawn_error_and_is_rolled_back<R: TestRuntime>() {
    let name = tagged::<R>("ftHook");
    let flaky = Flaky::new(R::make());
    // One thread allowed: a leaked slot would make every later hop queue
    // forever.
    let bridge = Bridge::builder(flaky.clone())
        .thread_name(&name)
        .max_threads(1)
        .build();
    for (mode, cause) in [
        (SPAWN_ERR, "flaky: no thread today"),
        (
            SPAWN_PANIC,
            "the runtime's `spawn_loop` panicked: flaky: spawn_loop blew up",
        ),
    ] {
        flaky.set(mode);
        for _ in 0..3 {
            let err = bridge.run_timeout(LONG, || async { 1 }).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("failed to start a loop thread: {cause}")
            );
            assert_spawn_error(err);
            let inner = bridge.clone();
            let err = bridge
                .run(move || async move { inner.try_run(|| async { 2 }) })
                .unwrap_err();
            assert!(err.is_spawn(), "{err:?}");
            let panic = text(&*caught(|| bridge.iter(|| stream::iter([3])).next()));
            assert_eq!(
                panic,
                format!("executor-bridge: failed to start a loop thread: {cause}")
            );
            assert_eq!(bridge.threads(), 0);
            assert_eq!(stats(&bridge).queued, 0);
        }
    }
    flaky.set(SPAWN_OK);
    assert_eq!(bridge.run_timeout(LONG, || async { 4 }).unwrap(), 4);
    assert_eq!(
        bridge.iter(|| stream::iter([5, 6])).collect::<Vec<_>>(),
        [5, 6]
    );
    assert_settled(&bridge, &name, "after failed starts");

    // A start that fails while another outer call runs: the call waits in
    // the queue for that thread instead of failing.
    let name2 = tagged::<R>("ftHook2");
    let flaky2 = Flaky::new(R::make());
    let bridge2 = Bridge::builder(flaky2.clone())
        .thread_name(&name2)
        .max_threads(2)
        .build();
    let held = hold(&bridge2);
    flaky2.set(SPAWN_ERR);
    let b = bridge2.clone();
    let waiting = thread::spawn(move || b.run_timeout(LONG, || async { 7 }));
    assert!(
        crate::common::eventually(Duration::from_secs(10), || stats(&bridge2).queued == 1),
        "{:?}",
        stats(&bridge2)
    );
    flaky2.set(SPAWN_OK);
    drop(held);
    assert_eq!(waiting.join().unwrap().unwrap(), 7);
    assert_settled(&bridge2, &name2, "after a queued call");

    // A hook that fails after its thread took the job: whatever it says, the
    // call is answered once and the accounting holds.
    let name3 = tagged::<R>("ftHook3");
    let flaky3 = Flaky::new(R::make());
    let bridge3 = Bridge::builder(flaky3.clone())
        .thread_name(&name3)
        .max_threads(1)
        .build();
    flaky3.set(SPAWN_THEN_ERR);
    for i in 0..3 {
        let inner = bridge3.clone();
        // Nested, so that each needs a new thread.
        let got =
            bridge3.run(move || async move { inner.run_timeout(LONG, move || async move { i }) });
        match got {
            Ok(v) => assert_eq!(v, i),
            Err(e) => assert!(e.is_spawn(), "{e:?}"),
        }
    }
    flaky3.set(SPAWN_OK);
    assert_settled(&bridge3, &name3, "after a hook that failed late");
    assert_eq!(bridge3.run_timeout(LONG, || async { 9 }).unwrap(), 9);
    drop((bridge, bridge2, bridge3));
    for name in [name, name2, name3] {
        assert_all_gone(&name, "dropped");
    }
}

per_runtime!(
    a_stack_size_the_system_refuses_fails_only_the_calls_that_need_a_thread,
    a_spawn_loop_hook_that_fails_is_a_spawn_error_and_is_rolled_back
);

#[test]
fn a_sane_bridge_works_next_to_one_that_cannot_start_threads() {
    watchdog(LIMIT, || {
        let bad = Bridge::builder(Pollster)
            .thread_name("ftBad")
            .stack_size(ABSURD)
            .max_threads(1)
            .build();
        let good = Bridge::builder(Pollster)
            .thread_name("ftSane")
            .max_threads(1)
            .build();
        for _ in 0..3 {
            assert!(bad
                .run_timeout(LONG, || async { 1 })
                .unwrap_err()
                .is_spawn());
            assert_eq!(good.run_timeout(LONG, || async { 2 }).unwrap(), 2);
            let (g, b) = (good.clone(), bad.clone());
            let (ok, err) = good.run(move || async move {
                (
                    g.run_timeout(LONG, || async { 3 }),
                    b.run_timeout(LONG, || async { 4 }),
                )
            });
            assert_eq!(ok.unwrap(), 3);
            assert!(err.unwrap_err().is_spawn());
            assert_eq!(
                good.iter(|| stream::iter(0..3)).collect::<Vec<_>>(),
                [0, 1, 2]
            );
        }
        assert_eq!(bad.threads(), 0);
        assert_eq!(alive("ftBad"), 0);
        assert_eq!(good.threads(), 1);
    });
}

#[test]
#[should_panic(expected = "executor-bridge: a thread name may not contain a NUL byte")]
fn a_thread_name_with_a_nul_byte_panics_at_the_builder() {
    let _ = Bridge::builder(Pollster).thread_name("a\0b");
}

#[test]
#[should_panic(expected = "executor-bridge: failed to start a loop thread: ")]
fn next_panics_when_no_loop_thread_starts_for_iter() {
    let bad = Bridge::builder(Pollster).stack_size(ABSURD).build();
    let _ = bad.iter(|| stream::iter([1])).next();
}

#[test]
#[should_panic(expected = "executor-bridge: failed to start a loop thread: ")]
fn run_panics_when_a_hop_cannot_start_a_thread() {
    let bad = Bridge::builder(Hopping(Pollster))
        .stack_size(ABSURD)
        .build();
    let inner = bad.clone();
    bad.run(move || async move { inner.run(|| async { 1 }) });
}

// ---------------------------------------------------------------------------
// The builder's and `Error`'s documented panics.
// ---------------------------------------------------------------------------

#[test]
#[should_panic(expected = "executor-bridge: max_threads must be at least 1")]
fn max_threads_zero_panics() {
    let _ = Bridge::builder(Pollster).max_threads(0);
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
    assert_eq!(err.to_string(), "deadline of 10ms elapsed");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::TimedOut);
}

// ---------------------------------------------------------------------------
// Documented panics point at the caller's line.
// ---------------------------------------------------------------------------

/// Where a panic was raised.
#[derive(Debug)]
struct Site {
    message: String,
    file: String,
    line: u32,
}

/// Runs `f`, which must raise a panic whose message contains `needle` on
/// this thread; returns where the last such panic was raised. Other panics
/// go to the previous hook as usual.
fn panic_site(needle: &'static str, f: impl FnOnce()) -> Site {
    panic_site_on(needle, None, f)
}

/// As [`panic_site`], the panic raised on this thread or on a thread whose
/// name starts with `also_on`.
fn panic_site_on(needle: &'static str, also_on: Option<&'static str>, f: impl FnOnce()) -> Site {
    let _serial = crate::common::hook_lock();
    let me = thread::current().id();
    let ours = move || {
        thread::current().id() == me
            || also_on.is_some_and(|prefix| this_thread().starts_with(prefix))
    };
    let seen: Arc<Mutex<Option<Site>>> = Arc::default();
    let prev = Arc::new(panic::take_hook());
    {
        let (prev, seen) = (Arc::clone(&prev), Arc::clone(&seen));
        panic::set_hook(Box::new(move |info| {
            let text = message(info.payload()).unwrap_or_default();
            match info.location() {
                Some(at) if text.contains(needle) && ours() => {
                    *seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(Site {
                        message: text,
                        file: at.file().to_owned(),
                        line: at.line(),
                    });
                }
                _ => prev(info),
            }
        }));
    }
    let out = catch_unwind(AssertUnwindSafe(f));
    drop(panic::take_hook());
    match Arc::try_unwrap(prev) {
        Ok(prev) => panic::set_hook(prev),
        Err(_) => unreachable!("the hook that held the previous one is gone"),
    }
    let payload = out
        .err()
        .unwrap_or_else(|| panic!("no panic containing {needle:?}"));
    let site = seen.lock().unwrap_or_else(PoisonError::into_inner).take();
    site.unwrap_or_else(|| {
        panic!(
            "no panic containing {needle:?} was raised; got {:?}",
            message(&*payload)
        )
    })
}

/// Asserts that the panic was raised in this file, between lines `from` and
/// `to`: at the caller's line, not inside the crate.
#[track_caller]
fn assert_site(site: &Site, from: u32, to: u32) {
    assert!(
        site.file == file!() && site.line > from && site.line < to,
        "the panic {:?} points at {}:{}, not at the call in {}:{from}..{to}",
        site.message,
        site.file,
        site.line,
        file!()
    );
}

#[test]
fn builder_panics_point_at_the_callers_line() {
    let from = line!();
    let site = panic_site("may not contain a NUL byte", || {
        drop(Bridge::builder(Pollster).thread_name("a\0b"))
    });
    let to = line!();
    assert_site(&site, from, to);

    let from = line!();
    let site = panic_site("max_threads must be at least 1", || {
        drop(Bridge::builder(Pollster).max_threads(0))
    });
    let to = line!();
    assert_site(&site, from, to);
}

#[test]
fn into_panic_points_at_the_callers_line() {
    let err = Bridge::new(Pollster)
        .run_timeout(Duration::ZERO, std::future::pending::<()>)
        .unwrap_err();
    let from = line!();
    let site = panic_site("on an error that is not a panic", move || {
        drop(err.into_panic())
    });
    let to = line!();
    assert_site(&site, from, to);
}

#[test]
fn spawn_failure_panics_point_at_the_callers_line() {
    watchdog(LIMIT, || {
        let bad = Bridge::builder(Hopping(Pollster))
            .stack_size(ABSURD)
            .build();
        let inner = bad.clone();
        let from = line!();
        let site = panic_site("failed to start a loop thread", || {
            bad.run(move || async move { inner.run(|| async { 1 }) });
        });
        let to = line!();
        assert_site(&site, from, to);

        let bad = Bridge::builder(Pollster).stack_size(ABSURD).build();
        let mut it = bad.iter(|| stream::iter([1]));
        let from = line!();
        let site = panic_site("failed to start a loop thread", move || {
            let _ = it.next();
        });
        let to = line!();
        assert_site(&site, from, to);
    });
}

#[cfg(feature = "tokio")]
mod tokio_sites {
    use executor_bridge::{Bridge, Pollster, Tokio};

    use super::{assert_site, panic_site, panic_site_on};
    use crate::common::{current_thread, join, multi_thread, thread_sleep, watchdog, LIMIT};
    use crate::pool::ms;

    #[test]
    fn tokio_constructor_panics_point_at_the_callers_line() {
        let rt = current_thread();
        let handle = rt.handle().clone();
        let from = line!();
        let site = panic_site("needs a multi_thread runtime", move || {
            drop(Tokio::from_handle(handle))
        });
        let to = line!();
        assert_site(&site, from, to);

        let from = line!();
        let site = panic_site("called outside a tokio runtime", || drop(Tokio::current()));
        let to = line!();
        assert_site(&site, from, to);

        let from = line!();
        let site = panic_site("needs a multi_thread runtime", || {
            rt.block_on(async { drop(Tokio::current()) })
        });
        let to = line!();
        assert_site(&site, from, to);
    }

    #[test]
    fn the_own_task_panic_points_at_the_callers_line() {
        watchdog(LIMIT, || {
            let bridge = Bridge::new(Tokio::new());
            let inner = bridge.clone();
            let from = line!();
            // The task runs on the thread that drives the runtime: this one,
            // waiting in its call, or the driver thread.
            let needle = "a task of a caller-driven Tokio runtime called its bridge";
            let site = panic_site_on(needle, Some("bridge-tokio"), move || {
                bridge.run(move || async move {
                    join(tokio::spawn(async move { inner.run(|| async { 1 }) }).await)
                });
            });
            let to = line!();
            assert_site(&site, from, to);
        });
    }

    /// A `LocalSet` driven by a multi_thread runtime's `block_on` runs its
    /// tasks on that thread, which is no worker: a call there hops, as from
    /// a current_thread runtime, and answers.
    #[test]
    fn run_in_a_local_set_task_on_a_multi_thread_runtime_hops() {
        watchdog(LIMIT, || {
            let bridge = Bridge::new(Pollster);
            let rt = multi_thread();
            let local = tokio::task::LocalSet::new();
            let out = rt.block_on(local.run_until(async move {
                join(
                    tokio::task::spawn_local(async move {
                        bridge.run(|| async {
                            thread_sleep(ms(10)).await;
                            7
                        })
                    })
                    .await,
                )
            }));
            assert_eq!(out, 7);
        });
    }
}

// ---------------------------------------------------------------------------
// A thread-local whose destructor calls the bridge.
// ---------------------------------------------------------------------------

/// The name libtest gives test `test` of this module.
fn test_name(test: &str) -> String {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    format!("{module}::{test}")
}

/// Calls its closure when dropped.
struct OnExit(Option<Box<dyn FnOnce()>>);

impl Drop for OnExit {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

thread_local! {
    static ON_EXIT: RefCell<Option<OnExit>> = const { RefCell::new(None) };
}

/// On a fresh thread, a thread-local whose destructor calls the bridge, set
/// before (`before`) or after the thread's first call (the runtime's first
/// use there); returns what the destructor's calls returned.
fn thread_local_scenario<R: TestRuntime>(before: bool) -> String {
    let bridge = Bridge::builder(R::make()).thread_name("ftTls").build();
    let result = Arc::new(Mutex::new(None::<String>));
    let (b, r) = (bridge.clone(), Arc::clone(&result));
    let on_exit = move || {
        let got = catch_unwind(AssertUnwindSafe(|| {
            let run = b.run(|| async {
                R::sleep(ms(1)).await;
                7
            });
            let timed = b.run_timeout(LONG, || async {
                R::sleep(ms(1)).await;
                8
            });
            let direct: Vec<u32> = b.iter_direct(|| ticks::<R>(2)).collect();
            format!("run={run} run_timeout={timed:?} iter_direct={direct:?}")
        }));
        let got = got.unwrap_or_else(|payload| format!("panicked: {}", text(&*payload)));
        *r.lock().unwrap() = Some(got);
    };
    let user = bridge.clone();
    thread::Builder::new()
        .name("ft-tls-owner".into())
        .spawn(move || {
            let mut on_exit = Some(on_exit);
            let mut set = || {
                let f = on_exit.take().unwrap();
                ON_EXIT.with(|slot| *slot.borrow_mut() = Some(OnExit(Some(Box::new(f)))));
            };
            if before {
                set();
            }
            let out = user.run(|| async {
                R::sleep(ms(1)).await;
                1
            });
            assert_eq!(out, 1);
            assert_eq!(user.iter_direct(|| ticks::<R>(1)).count(), 1);
            if !before {
                set();
            }
        })
        .unwrap()
        .join()
        .expect("the thread panicked");
    let got = result.lock().unwrap().take();
    got.unwrap_or_else(|| "the destructor did not run".to_owned())
}

fn thread_local_destructor_calls_the_bridge<R: TestRuntime>(test: &str) {
    if let Some(when) = crate::common::scenario() {
        // In the child: run the scenario, report.
        let got = thread_local_scenario::<R>(when == "before");
        println!("scenario {} {when}: {got}", R::NAME);
        return;
    }
    for when in ["before", "after"] {
        let out = crate::common::child(&test_name(test), when);
        let want = format!(
            "scenario {} {when}: run=7 run_timeout=Ok(8) iter_direct=[0, 1]",
            R::NAME
        );
        assert!(
            out.contains(&want),
            "{when}: expected {want:?}; the child printed:\n{out}"
        );
    }
}

#[test]
fn a_thread_local_destructor_calls_the_bridge_pollster() {
    thread_local_destructor_calls_the_bridge::<Pollster>(
        "a_thread_local_destructor_calls_the_bridge_pollster",
    );
}

#[cfg(feature = "tokio")]
#[test]
fn a_thread_local_destructor_calls_the_bridge_tokio() {
    thread_local_destructor_calls_the_bridge::<executor_bridge::Tokio>(
        "a_thread_local_destructor_calls_the_bridge_tokio",
    );
}

#[cfg(feature = "smol")]
#[test]
fn a_thread_local_destructor_calls_the_bridge_smol() {
    thread_local_destructor_calls_the_bridge::<executor_bridge::Smol>(
        "a_thread_local_destructor_calls_the_bridge_smol",
    );
}

#[cfg(feature = "async-std")]
#[test]
fn a_thread_local_destructor_calls_the_bridge_async_std() {
    thread_local_destructor_calls_the_bridge::<executor_bridge::AsyncStd>(
        "a_thread_local_destructor_calls_the_bridge_async_std",
    );
}

// ---------------------------------------------------------------------------
// A runtime shut down underneath the bridge.
// ---------------------------------------------------------------------------

/// `Tokio::from_handle` of an application's runtime that is then dropped:
/// calls in flight and later calls fail (a panic or an error), from every
/// context; none hangs.
#[cfg(feature = "tokio")]
#[test]
fn calls_on_a_borrowed_runtime_that_was_shut_down_fail_instead_of_hanging() {
    use executor_bridge::Tokio;

    fn failed(err: &Error) -> bool {
        (err.is_panic() || err.is_runtime()) && !err.is_timeout()
    }

    watchdog(LIMIT, || {
        let rt = crate::common::multi_thread();
        let bridge = Bridge::builder(Tokio::from_handle(rt.handle().clone()))
            .thread_name("ftGone")
            .build();
        let out = bridge.run(|| async {
            tokio::time::sleep(ms(1)).await;
            1
        });
        assert_eq!(out, 1);

        // In flight when the runtime goes.
        let b = bridge.clone();
        let in_flight = thread::spawn(move || {
            b.try_run(|| async {
                tokio::time::sleep(LONG).await;
                2
            })
        });
        let mut it = bridge.iter(|| {
            stream::once(0).chain(stream::once_future(async {
                tokio::time::sleep(LONG).await;
                3
            }))
        });
        assert_eq!(it.next(), Some(0));
        thread::sleep(ms(50));
        drop(rt);
        let got = in_flight.join().unwrap();
        assert!(got.as_ref().is_err_and(failed), "a call in flight: {got:?}");
        let got = it.next_timeout(Duration::from_secs(10));
        assert!(
            got.as_ref().is_err_and(failed),
            "an item in flight: {got:?}"
        );

        // Later calls, from every context.
        for ctx in Ctx::all() {
            let (slept, timed, piped, direct) = ctx.run(&bridge, |b| {
                let slept = b.try_run(|| async {
                    tokio::time::sleep(ms(1)).await;
                    4
                });
                let timed = b.run_timeout(Duration::from_secs(10), || async {
                    tokio::time::sleep(ms(1)).await;
                    5
                });
                let sleepy = || {
                    stream::once_future(async {
                        tokio::time::sleep(ms(1)).await;
                        6
                    })
                };
                let piped = b.iter(sleepy).next_timeout(Duration::from_secs(10));
                let direct = b.iter_direct(sleepy).next_timeout(Duration::from_secs(10));
                (slept, timed, piped, direct)
            });
            assert!(
                slept.as_ref().is_err_and(failed),
                "{ctx:?}: try_run: {slept:?}"
            );
            assert!(
                timed.as_ref().is_err_and(failed),
                "{ctx:?}: run_timeout: {timed:?}"
            );
            assert!(
                piped.as_ref().is_err_and(failed),
                "{ctx:?}: iter: {piped:?}"
            );
            assert!(
                direct.as_ref().is_err_and(failed),
                "{ctx:?}: iter_direct: {direct:?}"
            );
        }
        // What needs no runtime still works.
        assert_eq!(bridge.run(|| async { 7 }), 7);
        drop(bridge);
        assert_all_gone("ftGone", "dropped");
    });
}
