//! `BlockingIter`, made by `Bridge::iter_direct` and `Bridge::iter`: live,
//! pulled, bounded read-ahead, cancelled on drop, panics resumed, fused,
//! `next_timeout`, `size_hint`, `buffered`, `is_finished`, `Debug`, `Send`,
//! `!Send` streams; the futures-rs `block_on_stream` tests ported onto both;
//! regressions of reported defects.

use std::iter::FusedIterator;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{BlockingIter, Bridge, Pollster, Runtime};
use futures_lite::{stream, Stream, StreamExt};

use crate::common::{
    each_ctx, eventually, in_case, is_broken, is_set, message, per_runtime, watchdog, Ctx,
    DropFlag, Payload, TestRuntime, Way, LIMIT,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Every way, the read-ahead ones included.
const SETUPS: [Way; 4] = [Way::Direct, Way::Iter(0), Way::Iter(1), Way::Iter(64)];

/// The ways that read nothing ahead (the defaults).
const PULLED: [Way; 2] = [Way::Direct, Way::Iter(0)];

/// Runs `case` for each of `ways` from every calling context, on a bridge
/// made that way (`case` enters the context itself, with `Ctx::run`); a
/// failure names the way and the context.
fn each_way_and_ctx<R: TestRuntime>(ways: &[Way], mut case: impl FnMut(Way, Ctx, &Bridge<R>)) {
    for &way in ways {
        in_case(&format!("{way:?}"), || {
            each_ctx(&way.bridge::<R>(), |ctx, b| case(way, ctx, b));
        });
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// `0..n`, each item after a sleep on the adapter's own timer.
fn ticks<R: TestRuntime>(n: u32) -> impl Stream<Item = u32> + Send {
    stream::unfold(0u32, move |i| async move {
        if i < n {
            R::sleep(Duration::from_millis(1)).await;
            Some((i, i + 1))
        } else {
            None
        }
    })
}

/// What an endless, always-ready stream was asked for.
#[derive(Default)]
struct Counts {
    polls: AtomicUsize,
    items: AtomicUsize,
}

impl Counts {
    fn polls(&self) -> usize {
        self.polls.load(SeqCst)
    }
    fn items(&self) -> usize {
        self.items.load(SeqCst)
    }
}

/// `0, 1, 2, ...`, always ready, counting its polls and items.
fn counted(counts: Arc<Counts>) -> impl Stream<Item = usize> + Send {
    stream::poll_fn(move |_| {
        counts.polls.fetch_add(1, SeqCst);
        Poll::Ready(Some(counts.items.fetch_add(1, SeqCst)))
    })
}

/// `rounds` bursts of `burst` ready items, numbered from 0; before each burst
/// but the first it waits for a signal on `go` (and a 1 ms sleep on the
/// adapter's timer). `made` counts the items yielded.
fn gated<R: TestRuntime>(
    rounds: u32,
    burst: u32,
    go: async_channel::Receiver<()>,
    made: Arc<AtomicUsize>,
) -> impl Stream<Item = u32> + Send {
    stream::unfold((0u32, go), move |(i, go)| {
        let made = Arc::clone(&made);
        async move {
            if i == rounds * burst {
                return None;
            }
            if i > 0 && i % burst == 0 {
                go.recv().await.ok()?;
                R::sleep(Duration::from_millis(1)).await;
            }
            made.fetch_add(1, SeqCst);
            Some((i, (i + 1, go)))
        }
    })
}

/// `s`, owning `guard` (set when the stream is dropped).
fn guarded<S: Stream>(s: S, guard: DropFlag) -> impl Stream<Item = S::Item> {
    s.map(move |x| {
        let _owned = &guard;
        x
    })
}

/// One item, then pending forever; the guard is set when it is dropped.
fn one_then_pending(guard: DropFlag) -> impl Stream<Item = u32> + Send {
    guarded(stream::once(1u32).chain(stream::pending()), guard)
}

/// A stream over `0..n` whose destructor panics with `Payload(n)`.
struct PanicOnDrop {
    next: u32,
    n: u32,
}

impl Stream for PanicOnDrop {
    type Item = u32;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u32>> {
        if self.next < self.n {
            self.next += 1;
            Poll::Ready(Some(self.next - 1))
        } else {
            Poll::Ready(None)
        }
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic_any(Payload(self.n));
        }
    }
}

/// Calls `next` until the end or a panic: the items, and the panic's payload.
fn drain<T: Send + 'static>(
    it: &mut BlockingIter<T>,
) -> (Vec<T>, Option<Box<dyn std::any::Any + Send>>) {
    let mut items = Vec::new();
    loop {
        match catch_unwind(AssertUnwindSafe(|| it.next())) {
            Ok(Some(x)) => items.push(x),
            Ok(None) => return (items, None),
            Err(payload) => return (items, Some(payload)),
        }
    }
}

fn assert_send<T: Send>() {}
fn assert_fused<I: FusedIterator>() {}

// ---------------------------------------------------------------------------
// Order, liveness, pull semantics
// ---------------------------------------------------------------------------

/// Every item arrives, in order, then `None` for good; in every context.
fn items_arrive_in_order_then_the_end_for_good<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        let (timed, ready, after, finished) = ctx.run(b, move |b| {
            let timed: Vec<u32> = way.open(&b, || ticks::<R>(5)).collect();
            let mut it = way.open(&b, || stream::iter(0..3000u32));
            let ready: Vec<u32> = it.by_ref().collect();
            let after: Vec<Option<u32>> = (0..3).map(|_| it.next()).collect();
            (timed, ready, after, it.is_finished())
        });
        let what = format!("{way:?}, {ctx:?}");
        assert_eq!(timed, [0, 1, 2, 3, 4], "{what}");
        assert_eq!(ready, (0..3000).collect::<Vec<_>>(), "{what}");
        assert_eq!(after, [None, None, None], "{what}: not fused");
        assert!(finished, "{what}");
    });
}
per_runtime!(items_arrive_in_order_then_the_end_for_good);

/// An item reaches `next` while the stream waits for the consumer to have
/// seen it: an iterator that waited for more (to fill a batch) would hang,
/// and the stream has made exactly the items the consumer got.
fn live_items_reach_next_while_the_stream_waits_for_the_consumer<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        let got = ctx.run(b, move |b| {
            let (go, wait) = async_channel::bounded::<()>(1);
            let made = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&made);
            let mut it = way.open(&b, move || gated::<R>(4, 3, wait, counter));
            let mut got = Vec::new();
            for round in 0..4usize {
                for _ in 0..3 {
                    got.push(it.next().expect("an item before the end"));
                }
                // The stream waits for `go`: it made this round and no more.
                assert_eq!(made.load(SeqCst), (round + 1) * 3, "{way:?}: round {round}");
                if round < 3 {
                    go.try_send(())
                        .expect("the stream took the previous signal");
                }
            }
            assert_eq!(it.next(), None);
            got
        });
        assert_eq!(got, (0..12).collect::<Vec<_>>(), "{way:?}, {ctx:?}");
    });
}
per_runtime!(live_items_reach_next_while_the_stream_waits_for_the_consumer);

/// By default nothing is polled before `next` asks, and each `next` takes
/// exactly one item from an always-ready stream.
fn nothing_is_polled_before_next_asks<R: TestRuntime>() {
    each_way_and_ctx::<R>(&PULLED, |way, ctx, b| {
        ctx.run(b, move |b| {
            let counts = Arc::new(Counts::default());
            let c = Arc::clone(&counts);
            let mut it = way.open(&b, move || counted(c));
            thread::sleep(Duration::from_millis(20));
            assert_eq!(
                counts.polls(),
                0,
                "{way:?}, {ctx:?}: polled before the first next"
            );
            for i in 0..5 {
                assert_eq!(it.next(), Some(i), "{way:?}, {ctx:?}");
                thread::sleep(Duration::from_millis(5));
                assert_eq!(counts.items(), i + 1, "{way:?}, {ctx:?}: items taken ahead");
                assert_eq!(counts.polls(), i + 1, "{way:?}, {ctx:?}: polled ahead");
                assert_eq!(it.buffered(), 0, "{way:?}, {ctx:?}");
            }
        });
    });
}
per_runtime!(nothing_is_polled_before_next_asks);

/// Over a bounded channel: the sender sees back-pressure (the iterator takes
/// one message per `next`), and messages left when the iterator is dropped
/// are still in the channel.
fn a_bounded_channel_keeps_its_back_pressure<R: TestRuntime>() {
    each_way_and_ctx::<R>(&PULLED, |way, ctx, b| {
        ctx.run(b, move |b| {
            let what = format!("{way:?}, {ctx:?}");
            let (tx, rx) = async_channel::bounded::<u32>(2);
            let keep = rx.clone();
            tx.try_send(0).unwrap();
            tx.try_send(1).unwrap();
            assert!(tx.try_send(99).unwrap_err().is_full());
            let mut it = way.open(&b, move || rx);
            thread::sleep(Duration::from_millis(10));
            assert_eq!(tx.len(), 2, "{what}: taken before next");
            assert_eq!(it.next(), Some(0), "{what}");
            thread::sleep(Duration::from_millis(10));
            assert_eq!(tx.len(), 1, "{what}: taken ahead");
            tx.try_send(2).unwrap();
            assert!(
                tx.try_send(99).unwrap_err().is_full(),
                "{what}: no back-pressure"
            );
            assert_eq!(it.next(), Some(1), "{what}");
            tx.try_send(3).unwrap();
            assert_eq!(it.next(), Some(2), "{what}");
            drop(it);
            assert!(
                eventually(Duration::from_secs(10), || tx.receiver_count() == 1),
                "{what}: the stream was not dropped"
            );
            assert_eq!(
                keep.try_recv().ok(),
                Some(3),
                "{what}: a message left in the channel was lost"
            );
            assert!(keep.is_empty(), "{what}");
        });
    });
}
per_runtime!(a_bounded_channel_keeps_its_back_pressure);

/// An `iter` on a bridge with `stream_capacity(cap)` over an endless,
/// always-ready stream, consumed in five ever longer runs (1, 8, 15, 22 and
/// 29 items, each checked in order); after each run the consumer stops and
/// `stopped` looks at how far ahead the stream got (given the iterator, the
/// stream's counts and how many items were consumed). Returns the iterator
/// and that count; `b` is the bridge's, made by the caller, which keeps it
/// alive for what it checks next.
fn stop_and_go<R: TestRuntime>(
    b: &Bridge<R>,
    cap: usize,
    mut stopped: impl FnMut(&mut BlockingIter<usize>, &Counts, usize),
) -> (BlockingIter<usize>, usize) {
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    let mut it = b.iter(move || counted(c));
    let mut consumed = 0;
    for step in 0..5 {
        for _ in 0..(step * 7 + 1) {
            assert_eq!(it.next(), Some(consumed), "capacity {cap}");
            consumed += 1;
        }
        stopped(&mut it, &counts, consumed);
    }
    (it, consumed)
}

/// With `stream_capacity(n)` the stream never runs more than n items (plus
/// one in hand) ahead of a consumer that stops; the items come in order when
/// the consumer goes on.
fn a_capacity_bounds_the_read_ahead<R: TestRuntime>() {
    for cap in [1usize, 4, 64] {
        let b = Way::Iter(cap).bridge::<R>();
        let (mut it, consumed) = stop_and_go(&b, cap, |it, counts, consumed| {
            for _ in 0..3 {
                thread::sleep(Duration::from_millis(20));
                let made = counts.items();
                assert!(
                    made <= consumed + cap + 1,
                    "capacity {cap}: {made} made for {consumed} consumed"
                );
            }
            assert!(
                it.buffered() <= cap,
                "capacity {cap}: {} buffered",
                it.buffered()
            );
        });
        // It resumes when the consumer does.
        let rest: Vec<usize> = it.by_ref().take(500).collect();
        assert_eq!(
            rest,
            (consumed..consumed + 500).collect::<Vec<_>>(),
            "capacity {cap}"
        );
    }
}
per_runtime!(a_capacity_bounds_the_read_ahead);

/// With `stream_capacity(n)` the loop thread keeps polling while the consumer
/// is busy: a consumer that stops finds the stream at least n/2 (the demand
/// is topped up once half of it was used) and at most n items ahead of it.
fn a_capacity_lets_the_stream_run_ahead<R: TestRuntime>() {
    for cap in [1usize, 4, 64] {
        let b = Way::Iter(cap).bridge::<R>();
        let (it, _) = stop_and_go(&b, cap, |_, counts, consumed| {
            assert!(
                eventually(Duration::from_secs(10), || counts.items()
                    >= consumed + cap.div_ceil(2)),
                "capacity {cap}: the stream did not run {} ahead ({} made, {consumed} consumed)",
                cap.div_ceil(2),
                counts.items()
            );
        });
        drop(it);
    }
}
per_runtime!(a_capacity_lets_the_stream_run_ahead);

/// Items a stream had ready are returned without waiting for a batch to fill:
/// a long read-ahead gets a short burst at once.
fn batching_does_not_delay_ready_items<R: TestRuntime>() {
    let b = Way::Iter(256).bridge::<R>();
    let (go, wait) = async_channel::bounded::<()>(1);
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let mut it = b.iter(move || gated::<R>(3, 2, wait, counter));
    for round in 0..3u32 {
        // Both items of a burst, each within a generous bound, though 256 were asked.
        for i in 0..2 {
            let item = it
                .next_timeout(Duration::from_secs(20))
                .expect("an item in time");
            assert_eq!(item, Some(round * 2 + i));
        }
        let _ = go.try_send(());
    }
    assert_eq!(it.next(), None);
}
per_runtime!(batching_does_not_delay_ready_items);

/// Voluntary context switches of the calling thread so far: how many times
/// it went to sleep.
fn sleeps_so_far() -> u64 {
    // SAFETY: `getrusage` only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_nvcsw as u64
}

/// A live item wakes the consumer waiting in `next` once: the thread that
/// sends it holds no lock the woken consumer needs on its way out (a lock
/// held across the wake-up cost a second sleep on most items: 2.6 sleeps
/// per item on `Tokio::new()`, 1.6 on the others).
fn live_wakes<R: Runtime>(rt: R) {
    const ITEMS: usize = 300;
    let b = Bridge::new(rt);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(ITEMS);
    let producer = thread::spawn(move || {
        for i in 0..ITEMS {
            thread::sleep(Duration::from_micros(300));
            if tx.blocking_send(i).is_err() {
                break;
            }
        }
    });
    let mut it = b.iter_direct(move || stream::poll_fn(move |cx| rx.poll_recv(cx)));
    // The first item starts the runtime.
    assert_eq!(it.next(), Some(0));
    let before = sleeps_so_far();
    for i in 1..ITEMS {
        assert_eq!(it.next(), Some(i));
    }
    let per_item = (sleeps_so_far() - before) as f64 / (ITEMS - 1) as f64;
    producer.join().expect("producer");
    // One sleep per item, and slack for a loaded machine.
    assert!(
        per_item < 1.4,
        "{} sleeps per live item in `next`, where one is the floor",
        per_item
    );
}

fn a_live_item_wakes_the_consumer_once<R: TestRuntime>() {
    live_wakes(R::make());
}
per_runtime!(a_live_item_wakes_the_consumer_once);

#[cfg(feature = "tokio")]
#[test]
fn a_live_item_wakes_the_consumer_once_on_a_multi_thread_runtime() {
    watchdog(LIMIT, || {
        live_wakes(executor_bridge::Tokio::from_runtime(
            crate::common::multi_thread(),
        ))
    });
}

// ---------------------------------------------------------------------------
// Cancel on drop
// ---------------------------------------------------------------------------

/// What the stream is doing when the iterator is dropped.
#[derive(Clone, Copy, Debug)]
enum Dropped {
    /// Waiting on nothing, after one item.
    Pending,
    /// Waiting on the adapter's timer, after one item.
    OnTimer,
    /// Ready forever (waiting for demand or room).
    Endless,
    /// Never asked for an item.
    Unasked,
    /// After a `next_timeout` that timed out.
    AfterTimeout,
}

const DROPPED: [Dropped; 5] = [
    Dropped::Pending,
    Dropped::OnTimer,
    Dropped::Endless,
    Dropped::Unasked,
    Dropped::AfterTimeout,
];

impl Dropped {
    /// An iterator made `way` on `b` over a stream that owns `guard`, brought
    /// to this state.
    fn open<R: TestRuntime>(self, way: Way, b: &Bridge<R>, guard: DropFlag) -> BlockingIter<u32> {
        let mut it = way.open(b, move || -> BoxStream<u32> {
            match self {
                Dropped::OnTimer => Box::pin(guarded(
                    stream::once(1u32).chain(stream::once_future(async {
                        R::sleep(Duration::from_secs(60)).await;
                        2
                    })),
                    guard,
                )),
                Dropped::Endless => Box::pin(guarded(stream::repeat(1u32), guard)),
                _ => Box::pin(one_then_pending(guard)),
            }
        });
        match self {
            Dropped::Unasked => {}
            Dropped::AfterTimeout => {
                assert_eq!(it.next(), Some(1), "{self:?}");
                let err = it.next_timeout(Duration::from_millis(10)).unwrap_err();
                assert!(err.is_timeout(), "{self:?}: {err:?}");
            }
            _ => assert_eq!(it.next(), Some(1), "{self:?}"),
        }
        it
    }
}

fn dropping_the_iterator_drops_the_stream_promptly<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        for kind in DROPPED {
            let dropped = ctx.run(b, move |b| {
                let (guard, flag) = DropFlag::new();
                let it = kind.open(way, &b, guard);
                thread::sleep(Duration::from_millis(5));
                assert!(!is_set(&flag), "{kind:?}: dropped while the iterator lives");
                drop(it);
                eventually(Duration::from_secs(10), || is_set(&flag))
            });
            assert!(
                dropped,
                "{way:?}, {ctx:?}, {kind:?}: the stream was not dropped"
            );
        }
    });
}
per_runtime!(dropping_the_iterator_drops_the_stream_promptly);

/// A dropped iterator gives its loop thread back: with `max_threads(1)` a
/// later call still runs.
fn dropping_the_iterator_frees_its_loop_thread<R: TestRuntime>() {
    for way in SETUPS {
        for kind in DROPPED {
            let b = way.builder_on(R::make()).max_threads(1).build();
            let (guard, flag) = DropFlag::new();
            let it = in_case(&format!("{way:?}"), || kind.open(way, &b, guard));
            drop(it);
            let out = b.run_timeout(Duration::from_secs(10), || async { 7 });
            assert_eq!(
                out.ok(),
                Some(7),
                "{way:?}, {kind:?}: the loop thread was not freed"
            );
            assert!(is_set(&flag), "{way:?}, {kind:?}");
            let again: Vec<u32> = way.open(&b, || stream::iter(0..3)).collect();
            assert_eq!(again, [0, 1, 2], "{way:?}, {kind:?}");
        }
    }
}
per_runtime!(dropping_the_iterator_frees_its_loop_thread);

/// An iterator over a stream whose destructor panics can be dropped anywhere
/// (the panic does not escape a loop thread nor abort), and the bridge keeps
/// working, its one loop thread free again.
fn dropping_a_stream_whose_destructor_panics<R: TestRuntime>() {
    for way in SETUPS {
        let b = way.builder_on(R::make()).max_threads(1).build();
        let mut it = way.open(&b, || PanicOnDrop { next: 0, n: 5 });
        assert_eq!(it.next(), Some(0), "{way:?}");
        // Where the stream lives on the consumer's side, its destructor's panic
        // may surface here; with its payload if so.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(it))) {
            assert_eq!(
                payload.downcast_ref::<Payload>(),
                Some(&Payload(5)),
                "{way:?}"
            );
        }
        let out = b.run_timeout(Duration::from_secs(10), || async { 7 });
        assert_eq!(out.ok(), Some(7), "{way:?}");
    }
}
per_runtime!(dropping_a_stream_whose_destructor_panics);

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

/// A panic of `poll_next` resumes in `next` with its payload intact (a `&str`,
/// a `String`, any type), after the items before it; every later call fails;
/// in every context.
fn a_panic_in_poll_next_resumes_in_next<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        let (text, string, custom) = ctx.run(b, move |b| {
            let mut it = way.open(&b, || {
                ticks::<R>(5).map(|x| if x == 2 { panic!("stream-boom") } else { x })
            });
            let (items, payload) = drain(&mut it);
            assert_eq!(items, [0, 1]);
            assert!(is_broken(&mut it), "not failing after the panic");
            let text = message(&*payload.expect("a panic"));

            let mut it = way.open(&b, || {
                ticks::<R>(5).map(|x| if x == 3 { panic!("stream-boom-{x}") } else { x })
            });
            let (items, payload) = drain(&mut it);
            assert_eq!(items, [0, 1, 2]);
            let string = payload
                .expect("a panic")
                .downcast::<String>()
                .ok()
                .map(|s| *s);

            let mut it = way.open(&b, || {
                ticks::<R>(5).map(|x| if x == 1 { panic_any(Payload(x)) } else { x })
            });
            let (items, payload) = drain(&mut it);
            assert_eq!(items, [0]);
            assert!(it.is_finished());
            let custom = payload
                .expect("a panic")
                .downcast::<Payload>()
                .ok()
                .map(|p| *p);
            (text, string, custom)
        });
        let what = format!("{way:?}, {ctx:?}");
        assert_eq!(text.as_deref(), Some("stream-boom"), "{what}");
        assert_eq!(string.as_deref(), Some("stream-boom-3"), "{what}");
        assert_eq!(custom, Some(Payload(1)), "{what}");
    });
}
per_runtime!(a_panic_in_poll_next_resumes_in_next);

/// Items the stream yielded at once before panicking reach the consumer
/// before the panic, whatever the read-ahead.
fn items_ready_before_a_panic_arrive_before_it<R: TestRuntime>() {
    for way in SETUPS {
        let b = way.bridge::<R>();
        for ctx in [Ctx::Plain, Ctx::Nested, Ctx::FuturesBlockOn] {
            let (items, text) = ctx.run(&b, move |b| {
                let mut it = way.open(&b, || {
                    stream::iter(0..5u32)
                        .map(|x| if x == 3 { panic!("stream-boom-{x}") } else { x })
                });
                let (items, payload) = drain(&mut it);
                (items, payload.and_then(|p| message(&*p)))
            });
            assert_eq!(text.as_deref(), Some("stream-boom-3"), "{way:?}, {ctx:?}");
            assert_eq!(
                items,
                [0, 1, 2],
                "{way:?}, {ctx:?}: items yielded before the panic were lost"
            );
        }
    }
}
per_runtime!(items_ready_before_a_panic_arrive_before_it);

/// A panic of the factory resumes in the first `next`, payload intact.
fn a_panic_in_the_factory_resumes_in_next<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        let (payload, after) = ctx.run(b, move |b| {
            let mut it = way.open(&b, || -> stream::Iter<std::ops::Range<u32>> {
                panic_any(Payload(4))
            });
            let payload = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
            (
                payload.downcast::<Payload>().ok().map(|p| *p),
                is_broken(&mut it),
            )
        });
        assert_eq!(payload, Some(Payload(4)), "{way:?}, {ctx:?}");
        assert!(after, "{way:?}, {ctx:?}: not failing after the panic");
    });
}
per_runtime!(a_panic_in_the_factory_resumes_in_next);

/// A panic of the stream's destructor once it has ended resumes in the `next`
/// that would have returned `None`, after every item.
fn a_panic_in_the_destructor_resumes_in_next<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        let (items, payload, after) = ctx.run(b, move |b| {
            let mut it = way.open(&b, || PanicOnDrop { next: 0, n: 3 });
            let (items, payload) = drain(&mut it);
            let payload = payload
                .and_then(|p| p.downcast::<Payload>().ok())
                .map(|p| *p);
            (items, payload, is_broken(&mut it))
        });
        assert_eq!(items, [0, 1, 2], "{way:?}, {ctx:?}");
        assert_eq!(payload, Some(Payload(3)), "{way:?}, {ctx:?}");
        assert!(after, "{way:?}, {ctx:?}: not failing after the panic");
    });
}
per_runtime!(a_panic_in_the_destructor_resumes_in_next);

/// `next_timeout` reports a panic (of `poll_next`, or of the destructor once
/// the stream ended) as an error with its payload, and the iterator is
/// finished after.
fn next_timeout_reports_a_panic<R: TestRuntime>() {
    type Panicking = fn() -> BoxStream<u32>;
    let cases: [(&str, Panicking); 2] = [
        ("a panic of poll_next", || {
            Box::pin(ticks::<R>(3).map(|x| if x == 1 { panic_any(Payload(x)) } else { x }))
        }),
        ("a panic of the destructor", || {
            Box::pin(PanicOnDrop { next: 0, n: 1 })
        }),
    ];
    for way in SETUPS {
        let b = way.bridge::<R>();
        for (what, make) in cases {
            let mut it = way.open(&b, make);
            assert_eq!(
                it.next_timeout(Duration::from_secs(30)).unwrap(),
                Some(0),
                "{way:?}, {what}"
            );
            let err = it.next_timeout(Duration::from_secs(30)).unwrap_err();
            assert!(
                err.is_panic() && !err.is_timeout(),
                "{way:?}, {what}: {err:?}"
            );
            assert_eq!(
                err.into_panic().downcast_ref::<Payload>(),
                Some(&Payload(1)),
                "{way:?}, {what}"
            );
            assert!(is_broken(&mut it), "{way:?}, {what}");
        }
    }
}
per_runtime!(next_timeout_reports_a_panic);

/// After panics the bridge keeps working, without a loop thread lost per
/// panicking stream.
fn the_bridge_stays_usable_after_panicking_streams<R: TestRuntime>() {
    for way in SETUPS {
        let b = way.builder_on(R::make()).thread_name("st-panics").build();
        for i in 0..20u32 {
            let mut it = way.open(&b, move || {
                ticks::<R>(3).map(move |x| if x == 1 { panic_any(Payload(i)) } else { x })
            });
            let (items, payload) = drain(&mut it);
            assert_eq!(items, [0], "{way:?}");
            assert_eq!(
                payload.unwrap().downcast_ref::<Payload>(),
                Some(&Payload(i)),
                "{way:?}"
            );
        }
        let again: Vec<u32> = way.open(&b, || ticks::<R>(3)).collect();
        assert_eq!(again, [0, 1, 2], "{way:?}");
        assert!(
            b.threads() <= 4,
            "{way:?}: {} loop threads after 20 panicking streams",
            b.threads()
        );
    }
}
per_runtime!(the_bridge_stays_usable_after_panicking_streams);

#[test]
fn blocking_iter_is_a_fused_iterator_and_send() {
    assert_fused::<BlockingIter<u32>>();
    assert_send::<BlockingIter<u32>>();
    assert_send::<BlockingIter<Box<dyn std::any::Any + Send>>>();
}

// ---------------------------------------------------------------------------
// next_timeout
// ---------------------------------------------------------------------------

/// `next_timeout` on a pending stream times out near its deadline, the
/// iterator stays usable, and an item that comes right after a timeout is
/// delivered by the next call.
fn next_timeout_times_out_and_stays_usable<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        let what = format!("{way:?}, {ctx:?}");
        ctx.run(b, move |b| {
            let (go, wait) = async_channel::bounded::<()>(1);
            let made = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&made);
            let mut it = way.open(&b, move || gated::<R>(3, 1, wait, counter));
            assert_eq!(
                it.next_timeout(Duration::from_secs(30)).unwrap(),
                Some(0),
                "{what}"
            );
            for _ in 0..3 {
                let start = Instant::now();
                let err = it.next_timeout(Duration::from_millis(20)).unwrap_err();
                let waited = start.elapsed();
                assert!(err.is_timeout(), "{what}: {err:?}");
                assert_eq!(err.to_string(), "deadline of 20ms elapsed", "{what}");
                assert!(
                    waited >= Duration::from_millis(20),
                    "{what}: gave up after {waited:?}"
                );
                assert!(waited < Duration::from_secs(10), "{what}: {waited:?}");
                assert!(!it.is_finished(), "{what}");
            }
            // The item comes right after a timeout: the next call has it.
            go.try_send(()).unwrap();
            assert_eq!(
                it.next_timeout(Duration::from_secs(30)).unwrap(),
                Some(1),
                "{what}"
            );
            let err = it.next_timeout(Duration::from_millis(5)).unwrap_err();
            assert!(err.is_timeout(), "{what}");
            go.try_send(()).unwrap();
            thread::sleep(Duration::from_millis(30));
            // A plain `next` after a timeout, and an endless deadline.
            assert_eq!(it.next(), Some(2), "{what}");
            assert_eq!(it.next_timeout(Duration::MAX).unwrap(), None, "{what}");
            assert!(it.is_finished(), "{what}");
            assert_eq!(made.load(SeqCst), 3, "{what}");
        });
    });
}
per_runtime!(next_timeout_times_out_and_stays_usable);

/// Items that arrive around the deadlines of many short `next_timeout` calls
/// are all delivered, in order: none is lost to a timeout.
fn no_item_is_lost_to_a_timeout<R: TestRuntime>() {
    for way in SETUPS {
        let b = way.bridge::<R>();
        let (tx, rx) = async_channel::bounded::<u32>(1);
        let sender = thread::spawn(move || {
            for i in 0..150u32 {
                thread::sleep(Duration::from_micros(u64::from(i % 7) * 300));
                if tx.send_blocking(i).is_err() {
                    return;
                }
            }
        });
        let mut it = way.open(&b, move || rx);
        let mut got = Vec::new();
        let mut timeouts = 0u32;
        let start = Instant::now();
        loop {
            match it.next_timeout(Duration::from_millis(1)) {
                Ok(Some(x)) => got.push(x),
                Ok(None) => break,
                Err(e) => {
                    assert!(e.is_timeout(), "{way:?}: {e:?}");
                    timeouts += 1;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "{way:?}: {} items after 40 s",
                got.len()
            );
        }
        sender.join().unwrap();
        assert_eq!(
            got,
            (0..150).collect::<Vec<_>>(),
            "{way:?} ({timeouts} timeouts)"
        );
    }
}
per_runtime!(no_item_is_lost_to_a_timeout);

/// Buffered items come back from `next_timeout(ZERO)` without waiting.
fn buffered_items_come_back_without_waiting<R: TestRuntime>() {
    let b = Way::Iter(64).bridge::<R>();
    let mut it = b.iter(|| stream::iter(0..40u32).chain(stream::pending()));
    let mut got = vec![it.next().unwrap()];
    // The stream had 40 ready: the read-ahead holds some of them.
    let mut rounds = 0;
    while got.len() < 40 {
        let buffered = it.buffered();
        for _ in 0..buffered {
            got.push(
                it.next_timeout(Duration::ZERO)
                    .expect("a buffered item at once")
                    .unwrap(),
            );
        }
        assert_eq!(it.buffered(), 0);
        if got.len() < 40 {
            got.push(it.next().unwrap());
        }
        rounds += 1;
    }
    assert_eq!(got, (0..40).collect::<Vec<_>>());
    assert!(rounds < 40, "the stream never ran ahead");
    assert!(it
        .next_timeout(Duration::from_millis(10))
        .unwrap_err()
        .is_timeout());
}
per_runtime!(buffered_items_come_back_without_waiting);

// ---------------------------------------------------------------------------
// size_hint, buffered, is_finished, Debug
// ---------------------------------------------------------------------------

/// `size_hint` keeps the `Iterator` contract on every stream (the lower bound
/// never above what is left, the upper never below), and is exact at the end.
fn size_hint_never_promises_too_much<R: TestRuntime>() {
    fn check<T: Send + 'static>(what: &str, mut it: BlockingIter<T>, n: usize) {
        let mut left = n;
        loop {
            let (low, high) = it.size_hint();
            assert!(low <= left, "{what}: lower bound {low} with {left} left");
            assert!(
                high.is_none_or(|h| h >= left),
                "{what}: upper bound {high:?} with {left} left"
            );
            assert!(
                it.buffered() <= left,
                "{what}: {} buffered with {left} left",
                it.buffered()
            );
            match it.next() {
                Some(_) => left -= 1,
                None => break,
            }
        }
        assert_eq!(left, 0, "{what}");
        assert_eq!(it.size_hint(), (0, Some(0)), "{what}");
    }
    for way in SETUPS {
        let b = way.bridge::<R>();
        check(
            &format!("{way:?} ready"),
            way.open(&b, || stream::iter(0..50u32)),
            50,
        );
        check(&format!("{way:?} slow"), way.open(&b, || ticks::<R>(6)), 6);
        check(
            &format!("{way:?} empty"),
            way.open(&b, stream::empty::<u32>),
            0,
        );
        check(
            &format!("{way:?} mixed"),
            way.open(&b, || {
                stream::iter(0..5u32)
                    .chain(ticks::<R>(3))
                    .chain(stream::iter(0..5))
            }),
            13,
        );
    }
}
per_runtime!(size_hint_never_promises_too_much);

/// `is_finished` is false while items remain and true once `next` returned
/// `None` or panicked; a finished iterator's `next` is `None`.
fn is_finished_follows_the_end<R: TestRuntime>() {
    for way in SETUPS {
        let b = way.bridge::<R>();
        let mut it = way.open(&b, || ticks::<R>(3));
        assert!(!it.is_finished(), "{way:?}: before the first next");
        for _ in 0..3 {
            assert!(!it.is_finished(), "{way:?}");
            assert!(it.next().is_some(), "{way:?}");
        }
        assert_eq!(it.next(), None);
        assert!(it.is_finished(), "{way:?}");
        let mut it = way.open(&b, stream::empty::<u32>);
        assert_eq!(it.next(), None);
        assert!(it.is_finished(), "{way:?}");
    }
}
per_runtime!(is_finished_follows_the_end);

/// `Debug` names the type, says where the stream runs and how many items are
/// buffered, and that it finished.
fn debug_shows_the_state<R: TestRuntime>() {
    for way in SETUPS {
        let b = way.bridge::<R>();
        let mut it = way.open(&b, || stream::iter(0..100u32));
        assert_eq!(it.next(), Some(0));
        let shown = format!("{it:?}");
        assert!(shown.starts_with("BlockingIter"), "{shown}");
        assert!(
            shown.contains(&format!("buffered: {}", it.buffered())),
            "{shown}"
        );
        match way {
            Way::Direct => assert!(shown.contains("direct"), "{shown}"),
            Way::Iter(_) => assert!(shown.contains("loop thread"), "{shown}"),
        }
        it.by_ref().for_each(drop);
        let shown = format!("{it:?}");
        assert!(shown.contains("finished"), "{shown}");
    }
}
per_runtime!(debug_shows_the_state);

// ---------------------------------------------------------------------------
// Send, !Send, where the stream runs
// ---------------------------------------------------------------------------

/// An iterator moved to another thread mid-stream goes on there.
fn an_iterator_moves_to_another_thread_mid_stream<R: TestRuntime>() {
    each_way_and_ctx::<R>(&SETUPS, |way, ctx, b| {
        let (first, rest) = ctx.run(b, move |b| {
            let mut it = way.open(&b, || ticks::<R>(6));
            let first = it.next();
            let rest = thread::spawn(move || it.collect::<Vec<_>>())
                .join()
                .unwrap();
            (first, rest)
        });
        assert_eq!(first, Some(0), "{way:?}, {ctx:?}");
        assert_eq!(rest, [1, 2, 3, 4, 5], "{way:?}, {ctx:?}");
        // Moved right after a `next_timeout` that may have timed out.
        let got = ctx.run(b, move |b| {
            let mut it = way.open(&b, || ticks::<R>(6));
            let mut got = vec![it.next().unwrap()];
            match it.next_timeout(Duration::from_micros(100)) {
                Ok(Some(x)) => got.push(x),
                Ok(None) => panic!("the end after one item"),
                Err(e) => assert!(e.is_timeout(), "{e:?}"),
            }
            let rest = thread::spawn(move || it.collect::<Vec<_>>())
                .join()
                .unwrap();
            got.extend(rest);
            got
        });
        assert_eq!(got, [0, 1, 2, 3, 4, 5], "{way:?}, {ctx:?}: after a timeout");
    });
}
per_runtime!(an_iterator_moves_to_another_thread_mid_stream);

/// `iter` takes `!Send` streams (state held across awaits), in every context.
fn iter_takes_not_send_streams<R: TestRuntime>() {
    for cap in [0, 8] {
        let b = Way::Iter(cap).bridge::<R>();
        for ctx in Ctx::all() {
            let got = ctx.run(&b, |b| {
                let got: Vec<u32> = b
                    .iter(|| {
                        let rc = Rc::new(10u32);
                        stream::iter(0..3u32).then(move |i| {
                            let rc = Rc::clone(&rc);
                            async move {
                                R::sleep(Duration::from_millis(1)).await;
                                *rc + i
                            }
                        })
                    })
                    .collect();
                got
            });
            assert_eq!(got, [10, 11, 12], "capacity {cap}, {ctx:?}");
        }
    }
}
per_runtime!(iter_takes_not_send_streams);

/// `iter`'s factory and stream run on one of the bridge's loop threads.
fn iter_runs_the_stream_on_a_loop_thread<R: TestRuntime>() {
    let b = Bridge::builder(R::make()).thread_name("st-where").build();
    let names: Vec<String> = b
        .iter(|| {
            let made_on = thread::current().name().unwrap_or("").to_owned();
            stream::once(made_on).chain(stream::iter(0..2).then(|_| async {
                R::sleep(Duration::from_millis(1)).await;
                thread::current().name().unwrap_or("").to_owned()
            }))
        })
        .collect();
    assert_eq!(names.len(), 3);
    assert!(
        names.iter().all(|n| n.starts_with("st-where-")),
        "{names:?}"
    );
}
per_runtime!(iter_runs_the_stream_on_a_loop_thread);

/// On a plain thread `iter_direct` polls the stream on the caller's thread
/// and needs no loop thread.
fn iter_direct_polls_on_the_callers_thread<R: TestRuntime>() {
    let b = Bridge::builder(R::make()).thread_name("st-direct").build();
    let me = thread::current().id();
    let ids: Vec<thread::ThreadId> = b
        .iter_direct(|| {
            stream::iter(0..3).then(|_| async {
                R::sleep(Duration::from_millis(1)).await;
                thread::current().id()
            })
        })
        .collect();
    assert_eq!(ids, [me, me, me]);
    assert_eq!(b.threads(), 0, "no loop thread was needed");
    assert_eq!(crate::common::threads_named("st-direct"), 0);
}
per_runtime!(iter_direct_polls_on_the_callers_thread);

// ---------------------------------------------------------------------------
// futures-rs `block_on_stream` tests, ported onto both iterators
// ---------------------------------------------------------------------------

mod block_on_stream_ports {
    use std::sync::{Arc, Barrier};
    use std::thread;

    use executor_bridge::{BlockingIter, Bridge, Pollster};
    use futures::channel::{mpsc, oneshot};
    use futures::executor::block_on_stream;
    use futures::future::{self, FutureExt, TryFutureExt};
    use futures::stream::{self, FuturesOrdered, FuturesUnordered, StreamExt};

    use super::{PULLED, SETUPS};
    use crate::common::{per_runtime, TestRuntime};

    /// One step of a channel scenario.
    #[derive(Clone, Copy)]
    enum Step {
        Send(usize, u32),
        Next,
        Close,
    }

    /// futures-rs `stream_select_all::works_1`: three channels merged by
    /// `select_all`, sends interleaved with `next`.
    const SCENARIO: [Step; 12] = [
        Step::Send(1, 99),
        Step::Send(0, 33),
        Step::Next,
        Step::Next,
        Step::Send(1, 99),
        Step::Send(0, 33),
        Step::Next,
        Step::Next,
        Step::Send(2, 42),
        Step::Next,
        Step::Close,
        Step::Next,
    ];

    /// Runs [`SCENARIO`] over the iterator `open` makes of the merged
    /// channels: what each `next` returned.
    fn play<I: Iterator<Item = u32>>(
        open: impl FnOnce(Vec<mpsc::UnboundedReceiver<u32>>) -> I,
    ) -> Vec<Option<u32>> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::unbounded::<u32>()).unzip();
        let mut txs: Vec<_> = txs.into_iter().map(Some).collect();
        let mut it = open(rxs);
        let mut out = Vec::new();
        for step in SCENARIO {
            match step {
                Step::Send(ch, v) => txs[ch].as_ref().unwrap().unbounded_send(v).unwrap(),
                Step::Next => out.push(it.next()),
                Step::Close => txs.iter_mut().for_each(|tx| drop(tx.take())),
            }
        }
        out
    }

    /// `select_all` over channels yields what `block_on_stream` yields, for
    /// `iter_direct` and for `iter` with capacity 0.
    fn select_all_over_channels_as_block_on_stream<R: TestRuntime>() {
        let expected = play(|rxs| block_on_stream(stream::select_all(rxs)));
        assert_eq!(
            expected,
            [Some(33), Some(99), Some(33), Some(99), Some(42), None]
        );
        for way in PULLED {
            let b = way.bridge::<R>();
            let got = play(|rxs| way.open(&b, move || stream::select_all(rxs)));
            assert_eq!(got, expected, "{way:?}");
        }
    }
    per_runtime!(select_all_over_channels_as_block_on_stream);

    /// futures-rs `stream_select_all::issue_1626`: ready streams interleave.
    fn select_all_of_ready_streams_interleaves<R: TestRuntime>() {
        let make = || stream::select_all(vec![stream::iter(0..=2), stream::iter(10..=14)]);
        let expected: Vec<i32> = block_on_stream(make()).collect();
        assert_eq!(expected, [0, 10, 1, 11, 2, 12, 13, 14]);
        for way in SETUPS {
            let b = way.bridge::<R>();
            let got: Vec<i32> = way.open(&b, make).collect();
            assert_eq!(got, expected, "{way:?}");
        }
    }
    per_runtime!(select_all_of_ready_streams_interleaves);

    /// The iterator, made `way` on `b`, over the futures of three oneshot
    /// channels collected into `C` (`FuturesUnordered` or `FuturesOrdered`),
    /// and the channels' senders.
    fn three_futures<R, C>(
        way: super::Way,
        b: &Bridge<R>,
    ) -> (BlockingIter<C::Item>, [oneshot::Sender<i32>; 3])
    where
        R: TestRuntime,
        C: FromIterator<oneshot::Receiver<i32>> + futures::Stream + Send + 'static,
        C::Item: Send + 'static,
    {
        let (a_tx, a_rx) = oneshot::channel::<i32>();
        let (b_tx, b_rx) = oneshot::channel::<i32>();
        let (c_tx, c_rx) = oneshot::channel::<i32>();
        let it = way.open(b, move || vec![a_rx, b_rx, c_rx].into_iter().collect::<C>());
        (it, [a_tx, b_tx, c_tx])
    }

    /// futures-rs `stream_futures_unordered::works_1`: items in the order their
    /// futures complete, live.
    fn futures_unordered_yields_in_completion_order<R: TestRuntime>() {
        for way in SETUPS {
            let b = way.bridge::<R>();
            let (mut it, [a_tx, b_tx, c_tx]) = three_futures::<R, FuturesUnordered<_>>(way, &b);
            b_tx.send(99).unwrap();
            assert_eq!(it.next(), Some(Ok(99)), "{way:?}");
            a_tx.send(33).unwrap();
            c_tx.send(33).unwrap();
            assert_eq!(it.next(), Some(Ok(33)), "{way:?}");
            assert_eq!(it.next(), Some(Ok(33)), "{way:?}");
            assert_eq!(it.next(), None, "{way:?}");
        }
    }
    per_runtime!(futures_unordered_yields_in_completion_order);

    /// futures-rs `stream_futures_ordered::works_1`: items in push order.
    fn futures_ordered_yields_in_order<R: TestRuntime>() {
        for way in SETUPS {
            let b = way.bridge::<R>();
            let (mut it, [a_tx, b_tx, c_tx]) = three_futures::<R, FuturesOrdered<_>>(way, &b);
            b_tx.send(99).unwrap();
            let late = thread::spawn(move || {
                thread::sleep(std::time::Duration::from_millis(20));
                a_tx.send(33).unwrap();
                c_tx.send(33).unwrap();
            });
            assert_eq!(it.next(), Some(Ok(33)), "{way:?}");
            assert_eq!(it.next(), Some(Ok(99)), "{way:?}");
            assert_eq!(it.next(), Some(Ok(33)), "{way:?}");
            assert_eq!(it.next(), None, "{way:?}");
            late.join().unwrap();
        }
    }
    per_runtime!(futures_ordered_yields_in_order);

    /// futures-rs `stream_catch_unwind`: a panic the stream catches itself is
    /// an item, not a panic of the iterator.
    fn a_panic_caught_by_the_stream_is_an_item<R: TestRuntime>() {
        for way in SETUPS {
            let b = way.bridge::<R>();
            let mut it = way.open(&b, || {
                stream::iter(vec![Some(10), None, Some(11)])
                    .map(|o: Option<i32>| o.unwrap())
                    .catch_unwind()
            });
            assert_eq!(it.next().unwrap().ok(), Some(10), "{way:?}");
            assert!(it.next().unwrap().is_err(), "{way:?}");
            assert!(it.next().is_none(), "{way:?}");

            let it = way.open(&b, || stream::iter(vec![10, 11, 12]).catch_unwind());
            let got: Vec<i32> = it.map(|r| r.ok().unwrap()).collect();
            assert_eq!(got, [10, 11, 12], "{way:?}");
        }
    }
    per_runtime!(a_panic_caught_by_the_stream_is_an_item);

    /// futures-rs `future_try_flatten_stream`: a stream made by a future.
    fn a_stream_from_a_future<R: TestRuntime>() {
        for way in SETUPS {
            let b = way.bridge::<R>();
            let mut it = way.open(&b, || {
                future::ok::<_, bool>(stream::iter(vec![17, 19]).map(Ok)).try_flatten_stream()
            });
            assert_eq!(it.next(), Some(Ok(17)), "{way:?}");
            assert_eq!(it.next(), Some(Ok(19)), "{way:?}");
            assert_eq!(it.next(), None, "{way:?}");

            let mut it = way.open(&b, || {
                future::err::<stream::Pending<Result<bool, u32>>, _>(10u32).try_flatten_stream()
            });
            assert_eq!(it.next(), Some(Err(10)), "{way:?}");
            assert_eq!(it.next(), None, "{way:?}");

            let got: Vec<u32> = way
                .open(&b, || async { stream::iter(0..3u32) }.flatten_stream())
                .collect();
            assert_eq!(got, [0, 1, 2], "{way:?}");
        }
    }
    per_runtime!(a_stream_from_a_future);

    /// futures-rs `stream_buffer_unordered::works` (ignored there as flaky,
    /// rewritten here without its races): a buffered stream's items in the
    /// order their futures complete.
    fn buffer_unordered_yields_as_futures_complete<R: TestRuntime>() {
        for way in SETUPS {
            let b = way.bridge::<R>();
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..4).map(|_| oneshot::channel::<i32>()).unzip();
            let mut it = way.open(&b, move || stream::iter(rxs).buffer_unordered(4));
            let mut txs: Vec<_> = txs.into_iter().map(Some).collect();
            for i in [0usize, 2, 1, 3] {
                txs[i].take().unwrap().send(i as i32 + 1).unwrap();
                assert_eq!(it.next(), Some(Ok(i as i32 + 1)), "{way:?}");
            }
            assert_eq!(it.next(), None, "{way:?}");
        }
    }
    per_runtime!(buffer_unordered_yields_as_futures_complete);

    /// futures-rs `ready_queue::stress`: futures completed by threads at a
    /// barrier, taken with `take(n)`.
    #[test]
    fn futures_completed_by_other_threads_all_arrive() {
        crate::common::watchdog(crate::common::LIMIT, || {
            for way in SETUPS {
                let b = way.bridge_on(Pollster);
                for i in 0..60 {
                    let n = (i % 10) + 1;
                    let barrier = Arc::new(Barrier::new(n + 1));
                    let queue: FuturesUnordered<oneshot::Receiver<usize>> = (0..n)
                        .map(|num| {
                            let (tx, rx) = oneshot::channel();
                            let barrier = Arc::clone(&barrier);
                            thread::spawn(move || {
                                barrier.wait();
                                tx.send(num).unwrap();
                            });
                            rx
                        })
                        .collect();
                    barrier.wait();
                    let mut it: BlockingIter<_> = way.open(&b, move || queue);
                    let mut got: Vec<usize> = it.by_ref().take(n).map(|r| r.unwrap()).collect();
                    got.sort_unstable();
                    assert_eq!(got, (0..n).collect::<Vec<_>>(), "{way:?}");
                    assert_eq!(it.next(), None, "{way:?}");
                }
            }
        });
    }

    #[test]
    fn block_on_stream_and_both_iterators_agree_on_an_async_channel() {
        crate::common::watchdog(crate::common::LIMIT, || {
            // Pre-filled async channels, merged: the same order all three ways.
            let make = || {
                let (a_tx, a) = async_channel::unbounded::<u32>();
                let (b_tx, b2) = async_channel::unbounded::<u32>();
                for i in 0..5 {
                    a_tx.try_send(i).unwrap();
                    b_tx.try_send(100 + i).unwrap();
                }
                stream::select(a, b2)
            };
            let expected: Vec<u32> = block_on_stream(Box::pin(make())).collect();
            assert_eq!(expected.len(), 10);
            for way in PULLED {
                let b = Bridge::new(Pollster);
                let got: Vec<u32> = way.open(&b, make).collect();
                assert_eq!(got, expected, "{way:?}");
            }
        });
    }
}

// ---------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------

/// Reported: a stream ended silently once its bridge went away. The iterator
/// keeps what it needs: dropping the last `Bridge` clone (mid-stream, or
/// before the first item) loses no item.
fn a_stream_outlives_the_last_bridge_clone<R: TestRuntime>() {
    for way in SETUPS {
        let b = way.bridge::<R>();
        let it = way.open(&b, || ticks::<R>(20));
        goes_on_without_its_bridge(way, b, it);

        let b = way.bridge::<R>();
        let it = way.open(&b, || ticks::<R>(5));
        drop(b);
        assert_eq!(
            it.collect::<Vec<_>>(),
            [0, 1, 2, 3, 4],
            "{way:?}: before the first item"
        );
    }
}
per_runtime!(a_stream_outlives_the_last_bridge_clone);

/// Takes the first of `it`'s 20 items (`0..20`), drops `b` (the last clone
/// of its bridge), then checks the others still come.
fn goes_on_without_its_bridge<R: Runtime>(way: Way, b: Bridge<R>, mut it: BlockingIter<u32>) {
    assert_eq!(it.next(), Some(0), "{way:?}");
    drop(b);
    let rest: Vec<u32> = it.collect();
    assert_eq!(
        rest,
        (1..20).collect::<Vec<_>>(),
        "{way:?}: the stream ended early"
    );
}

/// Reported: `Pollster`, `stream_capacity(1)`, `max_threads(1)`: an `iter`
/// over a stream that yields one item then panics, never read and dropped,
/// kept the only loop thread.
#[test]
fn a_dropped_unread_panicking_stream_frees_the_only_loop_thread() {
    watchdog(LIMIT, || {
        for variant in 0..3 {
            let b = Bridge::builder(Pollster)
                .stream_capacity(1)
                .max_threads(1)
                .build();
            let mut it = b.iter(|| {
                stream::once(1u32).chain(stream::poll_fn(|_| -> Poll<Option<u32>> {
                    panic!("after one item")
                }))
            });
            match variant {
                0 => {}
                1 => thread::sleep(Duration::from_millis(50)),
                _ => {
                    assert_eq!(it.next(), Some(1));
                    thread::sleep(Duration::from_millis(50));
                }
            }
            drop(it);
            match b.run_timeout(Duration::from_secs(2), || async { 7 }) {
                Ok(out) => assert_eq!(out, 7),
                Err(e) => {
                    panic!("variant {variant}: the call after the dropped iterator failed: {e}")
                }
            }
        }
    });
}

#[cfg(feature = "tokio")]
mod tokio_regressions {
    use std::sync::mpsc;

    use executor_bridge::Tokio;

    use super::*;

    /// Reported: a stream ended silently when its bridge went away; with the
    /// tokio adapter, tasks spawned by the stream need the runtime after the
    /// last clone is gone.
    #[test]
    fn a_stream_spawning_tasks_outlives_the_last_bridge_clone() {
        watchdog(LIMIT, || {
            for way in SETUPS {
                let b = way.bridge_on(Tokio::new());
                let it = way.open(&b, || {
                    stream::iter(0..20u32).then(|i| async move {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            i
                        })
                        .await
                        .unwrap()
                    })
                });
                goes_on_without_its_bridge(way, b, it);
            }
        });
    }

    /// The stream of `Tokio::from_handle(h)`, `h`'s runtime dropped mid-stream:
    /// `next` panics (or goes on), `next_timeout` errs (or goes on); neither
    /// ever returns `None` before the end.
    #[test]
    fn a_stream_whose_runtime_was_dropped_never_ends_silently() {
        watchdog(LIMIT, || {
            for way in SETUPS {
                for drop_bridge in [false, true] {
                    for use_timeout in [false, true] {
                        let what = format!(
                            "{way:?}, bridge dropped {drop_bridge}, next_timeout {use_timeout}"
                        );
                        let rt = crate::common::multi_thread();
                        let b = way.bridge_on(Tokio::from_handle(rt.handle().clone()));
                        let mut it = way.open(&b, || {
                            stream::iter(0..20u32).then(|i| async move {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                i
                            })
                        });
                        assert_eq!(it.next(), Some(0), "{what}");
                        drop(rt);
                        if drop_bridge {
                            drop(b);
                        }
                        let mut expected = 1u32;
                        loop {
                            // An item, the end, or a failure (`Err`).
                            let next: Result<Option<u32>, ()> = if use_timeout {
                                it.next_timeout(Duration::from_secs(20)).map_err(drop)
                            } else {
                                catch_unwind(AssertUnwindSafe(|| it.next())).map_err(drop)
                            };
                            match next {
                                Ok(Some(x)) => assert_eq!(x, expected, "{what}"),
                                Ok(None) => {
                                    assert_eq!(
                                        expected, 20,
                                        "{what}: ended silently after {expected} items"
                                    );
                                    break;
                                }
                                Err(()) => break,
                            }
                            expected += 1;
                        }
                    }
                }
            }
        });
    }

    /// Every kind of tokio adapter, from every context: a stream that spawns
    /// tasks and sleeps arrives whole, and a dropped one stops. Every
    /// combination is tried; the failures are listed together.
    #[test]
    fn streams_on_every_kind_of_tokio_adapter() {
        type Kind = fn() -> (Tokio, Option<tokio::runtime::Runtime>);
        let kinds: [(&str, Kind); 4] = [
            ("new", || (Tokio::new(), None)),
            ("from_runtime(current_thread)", || {
                (Tokio::from_runtime(crate::common::current_thread()), None)
            }),
            ("from_runtime(multi_thread)", || {
                (Tokio::from_runtime(crate::common::multi_thread()), None)
            }),
            ("from_handle", || {
                let rt = crate::common::multi_thread();
                (Tokio::from_handle(rt.handle().clone()), Some(rt))
            }),
        ];
        let failures = watchdog(2 * LIMIT, move || {
            let mut failures = Vec::new();
            for (name, kind) in kinds {
                let (tokio, _keep) = kind();
                for way in SETUPS {
                    let b = way.bridge_on(tokio.clone());
                    for ctx in Ctx::all() {
                        let what = format!("{name}, {way:?}, {ctx:?}");
                        let b = b.clone();
                        let outcome = catch_unwind(AssertUnwindSafe(move || {
                            ctx.run(&b, move |b| {
                                let got: Vec<u32> = way
                                    .open(&b, || {
                                        stream::iter(0..5u32).then(|i| async move {
                                            tokio::spawn(async move {
                                                tokio::time::sleep(Duration::from_millis(1)).await;
                                                i
                                            })
                                            .await
                                            .unwrap()
                                        })
                                    })
                                    .collect();
                                let (guard, flag) = DropFlag::new();
                                let mut it = way.open(&b, move || {
                                    guarded(
                                        stream::once(1u32).chain(stream::once_future(async {
                                            tokio::time::sleep(Duration::from_secs(60)).await;
                                            2
                                        })),
                                        guard,
                                    )
                                });
                                assert_eq!(it.next(), Some(1));
                                drop(it);
                                (got, eventually(Duration::from_secs(10), || is_set(&flag)))
                            })
                        }));
                        match outcome {
                            Ok((got, dropped)) => {
                                if got != [0, 1, 2, 3, 4] {
                                    failures.push(format!("{what}: got {got:?}"));
                                }
                                if !dropped {
                                    failures.push(format!("{what}: the stream was not dropped"));
                                }
                            }
                            Err(payload) => failures.push(format!(
                                "{what}: panicked: {}",
                                message(&*payload).unwrap_or_else(|| "(not a string)".into())
                            )),
                        }
                    }
                }
            }
            failures
        });
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Spins for about `d` without yielding.
    fn spin(d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    /// Reported: an always-ready stream with a long read-ahead and a fast
    /// consumer starved another call on the same caller-driven runtime (its
    /// timer and spawned task never ran).
    #[test]
    fn a_busy_stream_does_not_starve_another_call_on_its_runtime() {
        for way in [Way::Direct, Way::Iter(1 << 16)] {
            for run in 0..3 {
                watchdog(LIMIT, move || {
                    let b = way.bridge_on(Tokio::new());
                    let mut it = way.open(&b, || {
                        stream::repeat_with(|| {
                            spin(Duration::from_micros(1));
                            1u64
                        })
                    });
                    assert_eq!(it.next(), Some(1));
                    let (tx, rx) = mpsc::channel();
                    let caller = {
                        let b = b.clone();
                        thread::spawn(move || {
                            let out = b.run(|| async {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                tokio::spawn(async { 1 }).await.unwrap()
                            });
                            let _ = tx.send(out);
                        })
                    };
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let mut items = 0u64;
                    let out = loop {
                        items += it.next().expect("an endless stream");
                        if let Ok(out) = rx.try_recv() {
                            break Some(out);
                        }
                        if Instant::now() > deadline {
                            break None;
                        }
                    };
                    drop(it);
                    assert_eq!(
                        out,
                        Some(1),
                        "{way:?}, run {run}: the call did not return within 30 s while the stream ran ({items} items)"
                    );
                    caller.join().unwrap();
                });
            }
        }
    }
}
