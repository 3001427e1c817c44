//! The context table as tests: every calling context (each `Ctx`, plus the
//! other rows of the old table) times every entry point (`run`, `try_run`,
//! `run_timeout`, `run_scoped`, `iter`, `iter_direct`, `reader`) times every
//! adapter, each future waiting on its adapter's own timer so that it really
//! needs that runtime. Then: nested calls three levels deep, destructors that
//! call the bridge (in a future, a task, a stream, a cancelled call, at thread
//! exit), the tokio traps (a worker awaiting a task it just spawned, from a
//! call and from a nested call, tokio#4941; many calls past the coop budget,
//! tokio#2376), a `LocalSet` driven on a multi_thread runtime, and the table
//! again on `SmolExecutor` (whose `enter` says no, so calls hop).
//!
//! The checks and [`Place`] are shared with `custom` (user runtimes) and
//! `run`.

use std::any::Any;
use std::cell::RefCell;
use std::io::{self, BufRead};
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use executor_bridge::{Bridge, Runtime};
use futures_lite::{stream, Stream, StreamExt};

#[cfg(feature = "tokio")]
use crate::common::join;
use crate::common::{eventually, is_set, message, per_runtime, BoxFuture, Ctx, DropFlag, Payload};
use crate::common::{Job, TestRuntime, Way, LIMIT};

/// A timer of the runtime under test.
pub(crate) type Sleep = fn(Duration) -> BoxFuture<()>;

/// A check run from one place: the bridge, and its runtime's timer.
pub(crate) type Check<R> = fn(&Bridge<R>, Sleep);

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Panics with `payload` as it is, typed as any value.
pub(crate) fn fail<T>(payload: impl Any + Send + 'static) -> T {
    panic_any(payload)
}

/// `0..n`, each item after a nap on `sleep`.
pub(crate) fn ticks(sleep: Sleep, n: u32) -> impl Stream<Item = u32> + Send + 'static {
    stream::unfold(0u32, move |i| async move {
        if i < n {
            sleep(ms(1)).await;
            Some((i, i + 1))
        } else {
            None
        }
    })
}

/// Where blocking code can call the bridge from: every [`Ctx`], plus the
/// rows of the old table that `Ctx` does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Ctx(Ctx),
    /// A `spawn_blocking` thread of a current_thread runtime.
    #[cfg(feature = "tokio")]
    SpawnBlockingOnCurrentThread,
    /// The body of a `LocalSet` on a current_thread runtime.
    #[cfg(feature = "tokio")]
    LocalSetBody,
    /// A task on a multi_thread runtime with a single worker.
    #[cfg(feature = "tokio")]
    SingleWorker,
    /// `block_on(local.run_until(..))` on a multi_thread runtime: the body.
    /// (A `spawn_local` task there is no place to wait in: see
    /// `local_set_on_a_multi_thread_runtime`.)
    #[cfg(feature = "tokio")]
    MultiThreadLocalSetBody,
    /// A `smol::spawn` task.
    #[cfg(feature = "smol")]
    SmolTask,
    /// An `async_std::task::spawn` task.
    #[cfg(feature = "async-std")]
    AsyncStdTask,
}

impl Place {
    /// Every place the enabled features allow.
    pub(crate) fn all() -> Vec<Place> {
        let mut all: Vec<Place> = Ctx::all().into_iter().map(Place::Ctx).collect();
        let more: Vec<Place> = vec![
            #[cfg(feature = "tokio")]
            Place::SpawnBlockingOnCurrentThread,
            #[cfg(feature = "tokio")]
            Place::LocalSetBody,
            #[cfg(feature = "tokio")]
            Place::SingleWorker,
            #[cfg(feature = "tokio")]
            Place::MultiThreadLocalSetBody,
            #[cfg(feature = "smol")]
            Place::SmolTask,
            #[cfg(feature = "async-std")]
            Place::AsyncStdTask,
        ];
        all.extend(more);
        all
    }

    /// Runs `f` (given a clone of `bridge`) from this place; a panic in `f`
    /// resumes here with its payload.
    pub(crate) fn run<R, T, F>(self, bridge: &Bridge<R>, f: F) -> T
    where
        R: Runtime,
        T: Send + 'static,
        F: FnOnce(Bridge<R>) -> T + Send + 'static,
    {
        match self {
            Place::Ctx(ctx) => ctx.run(bridge, f),
            // Erased, so that the runtimes' machinery below is compiled once,
            // not once per test. (No feature, no such place.)
            #[allow(unreachable_patterns)]
            other => {
                let b = bridge.clone();
                let job: Job = Box::new(move || Box::new(f(b)));
                *other
                    .run_job(job)
                    .downcast::<T>()
                    .expect("the output's own type")
            }
        }
    }

    #[allow(unused_variables)] // `f`, without a feature
    fn run_job(self, f: Job) -> Box<dyn Any + Send> {
        match self {
            Place::Ctx(_) => unreachable!("run by `Ctx::run`"),
            #[cfg(feature = "tokio")]
            Place::SpawnBlockingOnCurrentThread => crate::common::current_thread()
                .block_on(async move { join(tokio::task::spawn_blocking(f).await) }),
            #[cfg(feature = "tokio")]
            Place::LocalSetBody => {
                let local = tokio::task::LocalSet::new();
                local.block_on(&crate::common::current_thread(), async move { f() })
            }
            #[cfg(feature = "tokio")]
            Place::SingleWorker => multi_thread(1)
                .block_on(async move { join(tokio::spawn(async move { f() }).await) }),
            #[cfg(feature = "tokio")]
            Place::MultiThreadLocalSetBody => {
                let local = tokio::task::LocalSet::new();
                multi_thread(2).block_on(local.run_until(async move { f() }))
            }
            #[cfg(feature = "smol")]
            Place::SmolTask => smol::block_on(smol::spawn(async move { f() })),
            #[cfg(feature = "async-std")]
            Place::AsyncStdTask => {
                async_std::task::block_on(async_std::task::spawn(async move { f() }))
            }
        }
    }
}

#[cfg(feature = "tokio")]
pub(crate) fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("build a multi_thread runtime")
}

/// Runs `check` from each of `places`, naming the check and the place in a
/// failure.
pub(crate) fn from_each<R: Runtime>(
    what: &str,
    bridge: &Bridge<R>,
    places: &[Place],
    sleep: Sleep,
    check: Check<R>,
) {
    for &place in places {
        let got = catch_unwind(AssertUnwindSafe(|| {
            place.run(bridge, move |b| check(&b, sleep))
        }));
        if let Err(payload) = got {
            let text =
                message(&*payload).unwrap_or_else(|| "(a panic without a text payload)".into());
            panic!("{what} from {place:?}: {text}");
        }
    }
}

/// [`from_each`] from every [`Place`], on a fresh bridge of `R` and its timer.
pub(crate) fn from_every_place<R: TestRuntime>(what: &str, check: Check<R>) {
    from_each(
        what,
        &Bridge::new(R::make()),
        &Place::all(),
        R::sleep,
        check,
    );
}

/// The checks of the table, by entry point.
pub(crate) fn checks<R: Runtime>() -> Vec<(&'static str, Check<R>)> {
    vec![
        ("run", check_run::<R>),
        ("try_run", check_try_run::<R>),
        ("run_timeout", check_run_timeout::<R>),
        ("run_scoped", check_run_scoped::<R>),
        ("iter", check_iter::<R>),
        ("iter_direct", check_iter_direct::<R>),
        ("reader", check_reader::<R>),
    ]
}

/// `run`: a `!Send` future made in the factory, pending on the runtime's
/// timer; a ready one; a panic's payload; the bridge still usable after it.
pub(crate) fn check_run<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let out = b.run(move || {
        let rc = Rc::new(40u32);
        async move {
            sleep(ms(3)).await;
            *rc + 2
        }
    });
    assert_eq!(out, 42);
    assert_eq!(b.run(|| async { 1u32 }), 1, "a ready future");
    let payload = catch_unwind(AssertUnwindSafe(|| {
        b.run(move || async move {
            sleep(ms(1)).await;
            fail::<u32>(Payload(5))
        })
    }))
    .unwrap_err();
    assert_eq!(
        payload.downcast_ref::<Payload>(),
        Some(&Payload(5)),
        "the panic's payload"
    );
    let again = b.run(move || async move {
        sleep(ms(1)).await;
        2u32
    });
    assert_eq!(again, 2, "a call after a panic");
}

/// `try_run`: the output, and a panic as an error with its payload.
pub(crate) fn check_try_run<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let out = b.try_run(move || {
        let rc = Rc::new(2u32);
        async move {
            sleep(ms(2)).await;
            *rc
        }
    });
    assert_eq!(out.unwrap(), 2);
    let err = b
        .try_run(move || async move {
            sleep(ms(1)).await;
            fail::<u32>("boom")
        })
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.panic_message(), Some("boom"));
    assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"boom"));
}

/// `run_timeout`: the output in time; a late future times out and is gone
/// when the call returns.
pub(crate) fn check_run_timeout<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let out = b.run_timeout(Duration::from_secs(LIMIT), move || {
        let rc = Rc::new(3u32);
        async move {
            sleep(ms(2)).await;
            *rc
        }
    });
    assert_eq!(out.unwrap(), 3);
    let (guard, dropped) = DropFlag::new();
    let late = b
        .run_timeout(ms(30), move || async move {
            let _guard = guard;
            sleep(Duration::from_secs(20)).await;
            4u32
        })
        .unwrap_err();
    assert!(late.is_timeout(), "{late:?}");
    assert!(
        is_set(&dropped),
        "the timed-out future outlived run_timeout"
    );
}

/// `run_scoped`: the factory and the future borrow and mutate the caller's
/// data, the output borrows it, and a nested `run_scoped` does too.
pub(crate) fn check_run_scoped<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let words: Vec<String> = ["borrowed", "not", "moved"].map(String::from).to_vec();
    let mut made = 0u32;
    let mut polled = 0u32;
    let longest: &str = {
        let (words, made, polled) = (&words, &mut made, &mut polled);
        b.run_scoped(move || {
            *made += 1;
            let rc = Rc::new(2u32); // !Send, held across an await
            async move {
                sleep(ms(2)).await;
                *polled += *rc;
                words
                    .iter()
                    .max_by_key(|w| w.len())
                    .expect("words")
                    .as_str()
            }
        })
    };
    assert_eq!((longest, made, polled), ("borrowed", 1, 2));
    let mut log = Vec::new();
    b.run_scoped(|| async {
        sleep(ms(1)).await;
        log.push(1);
        b.run_scoped(|| async {
            sleep(ms(1)).await;
            log.push(2);
        });
    });
    assert_eq!(log, [1, 2]);
}

/// `iter`: a `!Send` stream on the runtime's timer, in order; then the late
/// item and the panic of [`check_late_and_broken`].
pub(crate) fn check_iter<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let items: Vec<u32> = b
        .iter(move || {
            let base = Rc::new(10u32);
            ticks(sleep, 4).map(move |x| x + *base)
        })
        .collect();
    assert_eq!(items, [10, 11, 12, 13], "iter: a !Send stream");
    check_late_and_broken(b, sleep, Way::Iter(0));
}

/// `iter_direct`: as `iter`, for a `Send` stream.
pub(crate) fn check_iter_direct<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let items: Vec<u32> = b.iter_direct(move || ticks(sleep, 4)).collect();
    assert_eq!(items, [0, 1, 2, 3], "iter_direct");
    check_late_and_broken(b, sleep, Way::Direct);
}

/// An iterator made `way`: a late item (`next_timeout` gives up, then
/// delivers it), and a panic of the stream (resumed in `next` with its
/// payload, the iterator failing for good after it).
fn check_late_and_broken<R: Runtime>(b: &Bridge<R>, sleep: Sleep, way: Way) {
    // Late for sure: the item waits for a gate opened after the timeout.
    let (open, gate) = async_channel::bounded::<()>(1);
    let mut late = way.open(b, move || {
        stream::once_future(async move {
            sleep(ms(1)).await;
            let _ = gate.recv().await;
            9u32
        })
    });
    let err = late.next_timeout(ms(10)).unwrap_err();
    assert!(err.is_timeout(), "{way:?}: {err:?}");
    open.send_blocking(()).unwrap();
    assert_eq!(
        late.next_timeout(Duration::from_secs(LIMIT)).unwrap(),
        Some(9),
        "{way:?}: the late item was lost"
    );
    assert_eq!(late.next(), None, "{way:?}: after the late item");
    let mut bad = way.open(b, move || {
        ticks(sleep, 3).map(|x| if x == 1 { fail(Payload(x)) } else { x })
    });
    assert_eq!(bad.next(), Some(0), "{way:?}: before the panic");
    let payload = catch_unwind(AssertUnwindSafe(|| bad.next())).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<Payload>(),
        Some(&Payload(1)),
        "{way:?}: the panic's payload"
    );
    assert!(
        crate::common::is_broken(&mut bad),
        "{way:?}: not failing after a panic"
    );
}

/// A `!Send` async reader whose chunks come on the runtime's timer.
pub(crate) fn slow_reader(
    sleep: Sleep,
    chunks: Vec<&'static str>,
) -> impl futures_lite::AsyncRead + 'static {
    let rc = Rc::new(());
    let chunks = stream::iter(chunks).then(move |chunk| {
        let _keep = Rc::clone(&rc);
        async move {
            sleep(ms(1)).await;
            Ok::<_, io::Error>(chunk.as_bytes())
        }
    });
    futures::TryStreamExt::into_async_read(Box::pin(chunks))
}

/// `reader`: lines across chunk boundaries, every byte, in order.
pub(crate) fn check_reader<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let reader =
        b.reader(move || slow_reader(sleep, vec!["first li", "ne\nsecond line\n", "third"]));
    let lines: Vec<String> = reader.lines().collect::<io::Result<_>>().unwrap();
    assert_eq!(lines, ["first line", "second line", "third"]);
}

/// The check of the table for the entry point `what`, from every place.
fn table<R: TestRuntime>(what: &str) {
    let (_, check) = checks::<R>()
        .into_iter()
        .find(|(name, _)| *name == what)
        .expect("a check");
    from_every_place(what, check);
}

per_runtime!(
    table_run => table("run"),
    table_try_run => table("try_run"),
    table_run_timeout => table("run_timeout"),
    table_run_scoped => table("run_scoped"),
    table_iter => table("iter"),
    table_iter_direct => table("iter_direct"),
    table_reader => table("reader"),
);

/// The same table on `SmolExecutor`, whose `enter` says no: calls from a
/// tokio runtime and nested calls hop. Its timer is async-io's, as `Smol`'s.
#[cfg(feature = "smol")]
mod smol_executor {
    use std::sync::Arc;
    use std::time::Duration;

    use executor_bridge::{Bridge, SmolExecutor};

    use super::{checks, from_each, ms, Place};
    use crate::common::{watchdog, BoxFuture, LIMIT};

    fn bridge() -> Bridge<SmolExecutor> {
        Bridge::new(SmolExecutor::new(Arc::new(smol::Executor::new())))
    }

    fn sleep(d: Duration) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::after(d).await;
        })
    }

    fn table(what: &'static str) {
        watchdog(LIMIT, move || {
            let (_, check) = checks()
                .into_iter()
                .find(|(name, _)| *name == what)
                .expect("a check");
            from_each(what, &bridge(), &Place::all(), sleep, check);
        });
    }

    #[test]
    fn table_run() {
        table("run");
    }
    #[test]
    fn table_try_run() {
        table("try_run");
    }
    #[test]
    fn table_run_timeout() {
        table("run_timeout");
    }
    #[test]
    fn table_run_scoped() {
        table("run_scoped");
    }
    #[test]
    fn table_iter() {
        table("iter");
    }
    #[test]
    fn table_iter_direct() {
        table("iter_direct");
    }
    #[test]
    fn table_reader() {
        table("reader");
    }
    #[test]
    fn nested_three_levels() {
        watchdog(LIMIT, || {
            from_each(
                "nested",
                &bridge(),
                &Place::all(),
                sleep,
                super::check_nested,
            )
        });
    }

    /// The executor's tasks advance inside every call, from every place.
    #[test]
    fn tasks_of_the_executor_advance_inside_calls() {
        watchdog(LIMIT, || {
            let ex = Arc::new(smol::Executor::new());
            let bridge = Bridge::new(SmolExecutor::new(Arc::clone(&ex)));
            for place in Place::all() {
                let ex = Arc::clone(&ex);
                let out = place.run(&bridge, move |b| {
                    let ex2 = Arc::clone(&ex);
                    let run = b.run(move || async move {
                        ex2.spawn(async {
                            smol::Timer::after(ms(2)).await;
                            5u32
                        })
                        .await
                    });
                    let streamed: Vec<u32> = b
                        .iter(move || futures_lite::stream::once_future(ex.spawn(async { 6u32 })))
                        .collect();
                    (run, streamed)
                });
                assert_eq!(out, (5, vec![6]), "{place:?}");
            }
        });
    }

    /// A nested call awaiting a task of the executor, made by a future that
    /// awaited one of its tasks before: the outer call's executor loop is
    /// blocked in the nested call, and must not keep the executor's wake-up
    /// for itself (it hung: async-executor wakes one sleeping runner per
    /// scheduled task, and picked the blocked one).
    #[test]
    fn a_nested_call_after_awaiting_a_task_of_the_executor() {
        let out = watchdog(LIMIT, || {
            let ex = Arc::new(smol::Executor::new());
            let b = Bridge::new(SmolExecutor::new(Arc::clone(&ex)));
            let inner = b.clone();
            b.run(move || async move {
                ex.spawn(smol::Timer::after(Duration::from_millis(1))).await;
                inner.run(move || async move {
                    ex.spawn(async {
                        smol::Timer::after(Duration::from_millis(5)).await;
                        7u32
                    })
                    .await
                })
            })
        });
        assert_eq!(out, 7);
    }

    /// A task of the executor, running on the adapter's own thread, that
    /// calls the bridge synchronously: blocking that thread would keep the
    /// task it awaits from ever running (it hung). It panics with the
    /// crate's message instead, the task's output carries the panic, and the
    /// bridge keeps working.
    #[test]
    fn a_task_of_the_executor_calling_the_bridge_panics_instead_of_hanging() {
        let (joined, after) = watchdog(LIMIT, || {
            let ex = Arc::new(smol::Executor::new());
            let b = Bridge::new(SmolExecutor::new(Arc::clone(&ex)));
            let (inner, e2) = (b.clone(), Arc::clone(&ex));
            let task = ex.spawn(async move {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    inner.run(move || async move { e2.spawn(async { 40u32 }).await }) + 2
                }))
                .map_err(|p| crate::common::message(&*p).unwrap_or_default())
            });
            let joined = b.run(move || task);
            let ex2 = Arc::clone(&ex);
            let after = b.run(move || async move { ex2.spawn(async { 5u32 }).await });
            (joined, after)
        });
        let text = joined.expect_err("the call on the executor's own thread ran");
        assert!(
            text.starts_with("executor-bridge: a task of `SmolExecutor`'s executor"),
            "{text}"
        );
        assert_eq!(after, 5);
    }
}

// ===== Nested calls =====

/// `run` in `run` in `run`.
fn level<R: Runtime>(b: &Bridge<R>, sleep: Sleep, depth: u32) -> u32 {
    if depth == 0 {
        return 0;
    }
    let inner = b.clone();
    b.run(move || async move {
        sleep(ms(1)).await;
        level(&inner, sleep, depth - 1) + 1
    })
}

/// An iterator made `way` whose items come from nested iterators made the
/// same way: 1 + 2 * the level below.
fn level_stream<R: Runtime>(b: &Bridge<R>, sleep: Sleep, way: Way, depth: u32) -> u32 {
    if depth == 0 {
        return 0;
    }
    let inner = b.clone();
    way.open(b, move || {
        ticks(sleep, 2).then(move |i| {
            let inner = inner.clone();
            async move { i + level_stream(&inner, sleep, way, depth - 1) }
        })
    })
    .sum()
}

/// `run_scoped` in `run_scoped` in `run_scoped`, each writing one borrowed log.
fn level_scoped<R: Runtime>(b: &Bridge<R>, sleep: Sleep, log: &mut Vec<u32>, depth: u32) {
    if depth == 0 {
        return;
    }
    b.run_scoped(|| async {
        sleep(ms(1)).await;
        log.push(depth);
        level_scoped(b, sleep, log, depth - 1);
    });
}

/// Three levels of each entry point, and one chain mixing them.
pub(crate) fn check_nested<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    assert_eq!(level(b, sleep, 3), 3, "run");
    for (what, way) in [("iter", Way::Iter(0)), ("iter_direct", Way::Direct)] {
        assert_eq!(level_stream(b, sleep, way, 3), 7, "{what}");
    }
    let mut log = Vec::new();
    level_scoped(b, sleep, &mut log, 3);
    assert_eq!(log, [3, 2, 1], "run_scoped");
    let (b1, b2) = (b.clone(), b.clone());
    let mixed = b.run(move || async move {
        sleep(ms(1)).await;
        b1.iter_direct(move || {
            ticks(sleep, 3).then(move |i| {
                let b2 = b2.clone();
                async move {
                    let mut seen = 0;
                    b2.run_scoped(|| async {
                        sleep(ms(1)).await;
                        seen = b2.iter(move || ticks(sleep, 2)).count() as u32;
                    });
                    let b3 = b2.clone();
                    let timed = b2
                        .run_timeout(Duration::from_secs(LIMIT), move || async move {
                            sleep(ms(1)).await;
                            b3.try_run(|| async { 100u32 }).unwrap()
                        })
                        .unwrap();
                    i + seen * 10 + timed
                }
            })
        })
        .sum::<u32>()
    });
    assert_eq!(
        mixed,
        3 + 3 * (20 + 100),
        "run > iter_direct > run_scoped/run_timeout > iter/try_run"
    );
}

fn nested_three_levels<R: TestRuntime>() {
    from_every_place("nested", check_nested::<R>);
}

per_runtime!(nested_three_levels);

// ===== Destructors that call the bridge =====

/// Calls the bridge, every way, from its destructor, and records the sum of
/// what the calls returned.
pub(crate) struct CallsOnDrop<R: Runtime> {
    pub(crate) b: Bridge<R>,
    pub(crate) sleep: Sleep,
    pub(crate) out: Arc<AtomicU32>,
}

/// What a [`CallsOnDrop`] records once its calls are done.
pub(crate) const DROP_SUM: u32 = 5 + 3 + 3 + 7 + 1;

impl<R: Runtime> CallsOnDrop<R> {
    pub(crate) fn new(b: &Bridge<R>, sleep: Sleep) -> (Self, Arc<AtomicU32>) {
        let out = Arc::new(AtomicU32::new(0));
        let guard = CallsOnDrop {
            b: b.clone(),
            sleep,
            out: Arc::clone(&out),
        };
        (guard, out)
    }
}

impl<R: Runtime> Drop for CallsOnDrop<R> {
    fn drop(&mut self) {
        let sleep = self.sleep;
        let v = self.b.run(move || async move {
            sleep(ms(2)).await;
            5u32
        });
        let w: u32 = self.b.iter(move || ticks(sleep, 3)).sum();
        let x: u32 = self.b.iter_direct(move || ticks(sleep, 3)).sum();
        let y = self
            .b
            .run_timeout(Duration::from_secs(LIMIT), move || async move {
                sleep(ms(1)).await;
                7u32
            })
            .unwrap();
        let mut z = 0;
        self.b.run_scoped(|| async {
            sleep(ms(1)).await;
            z = 1;
        });
        self.out.store(v + w + x + y + z, Ordering::SeqCst);
    }
}

fn drop_calls_the_bridge<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    for place in Place::all() {
        // Dropped by the blocking code of that place.
        let (guard, out) = CallsOnDrop::new(&b, R::sleep);
        place.run(&b, move |_| drop(guard));
        assert_eq!(
            out.load(Ordering::SeqCst),
            DROP_SUM,
            "dropped from {place:?}"
        );
        // Dropped inside a bridged future called from that place.
        let (guard, out) = CallsOnDrop::new(&b, R::sleep);
        place.run(&b, move |b| {
            b.run(move || async move {
                let _guard = guard;
                R::sleep(ms(1)).await;
            })
        });
        assert_eq!(
            out.load(Ordering::SeqCst),
            DROP_SUM,
            "dropped in a future called from {place:?}"
        );
    }
}

per_runtime!(drop_calls_the_bridge);

/// Dropped with a stream when its iterator is dropped (on a loop thread for
/// `iter`), and with a future that `run_timeout` cancels (on its loop thread).
fn drop_in_a_stream_or_a_cancelled_future_calls_the_bridge<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    for way in [Way::Iter(0), Way::Direct] {
        let (guard, out) = CallsOnDrop::new(&b, R::sleep);
        let mut it = way.open(&b, move || {
            stream::once(1u32).chain(stream::unfold(guard, |g| async move {
                std::future::pending::<()>().await;
                Some((2, g))
            }))
        });
        assert_eq!(it.next(), Some(1), "{way:?}");
        drop(it);
        // `iter_direct`'s stream is dropped in `drop`; `iter`'s, after it, on
        // its loop thread.
        let done = match way {
            Way::Direct => out.load(Ordering::SeqCst) == DROP_SUM,
            Way::Iter(_) => eventually(Duration::from_secs(LIMIT / 2), || {
                out.load(Ordering::SeqCst) == DROP_SUM
            }),
        };
        assert!(
            done,
            "{way:?}: the stream's destructor did not complete its calls: {} of {DROP_SUM}",
            out.load(Ordering::SeqCst)
        );
    }
    let (guard, out) = CallsOnDrop::new(&b, R::sleep);
    let err = b
        .run_timeout(ms(20), move || async move {
            let _guard = guard;
            std::future::pending::<()>().await
        })
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        eventually(Duration::from_secs(LIMIT / 2), || out
            .load(Ordering::SeqCst)
            == DROP_SUM),
        "run_timeout: the cancelled future's destructor did not complete its calls"
    );
}

per_runtime!(drop_in_a_stream_or_a_cancelled_future_calls_the_bridge);

thread_local! {
    /// Holds a value until this thread's thread-locals are destroyed.
    static AT_EXIT: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// A thread that used the bridge exits with a [`CallsOnDrop`] in a
/// thread-local: once destroyed before the runtime's (and the bridge's own)
/// thread-locals, once after them, while they are gone.
fn calls_at_thread_exit<R: TestRuntime>() {
    for registered_first in [false, true] {
        let b = Bridge::new(R::make());
        let (guard, out) = CallsOnDrop::new(&b, R::sleep);
        thread::Builder::new()
            .name("exiting".into())
            .spawn(move || {
                if registered_first {
                    // Registered before every thread-local the calls below
                    // create: destroyed after them.
                    AT_EXIT.with(|_| ());
                }
                let one = b.run(|| async {
                    R::sleep(ms(1)).await;
                    1
                });
                assert_eq!(one, 1);
                let n = b.iter_direct(move || ticks(R::sleep, 2)).count();
                assert_eq!(n, 2);
                AT_EXIT.with(|slot| *slot.borrow_mut() = Some(Box::new(guard)));
            })
            .expect("spawn")
            .join()
            .expect("the exiting thread");
        assert_eq!(
            out.load(Ordering::SeqCst),
            DROP_SUM,
            "registered first: {registered_first}: the destructor's calls did not complete"
        );
    }
}

mod at_thread_exit {
    use super::calls_at_thread_exit;
    use crate::common::in_child;

    #[test]
    fn pollster() {
        in_child(
            "contexts::at_thread_exit::pollster",
            calls_at_thread_exit::<executor_bridge::Pollster>,
        );
    }
    #[cfg(feature = "tokio")]
    #[test]
    fn tokio() {
        in_child(
            "contexts::at_thread_exit::tokio",
            calls_at_thread_exit::<executor_bridge::Tokio>,
        );
    }
    #[cfg(feature = "smol")]
    #[test]
    fn smol() {
        in_child(
            "contexts::at_thread_exit::smol",
            calls_at_thread_exit::<executor_bridge::Smol>,
        );
    }
    #[cfg(feature = "async-std")]
    #[test]
    fn async_std() {
        in_child(
            "contexts::at_thread_exit::async_std",
            calls_at_thread_exit::<executor_bridge::AsyncStd>,
        );
    }
}

// ===== Calls past tokio's coop budget =====

/// 300 calls in a row, each taking one message of a tokio channel, and a
/// 300-item stream of them: inside a tokio task a wait that used up the
/// task's coop budget stalled after ~128 (tokio#2376).
fn check_many_calls<R: Runtime>(b: &Bridge<R>, _sleep: Sleep) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..300u32 {
        tx.send(i).unwrap();
    }
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let got: Vec<Option<u32>> = (0..300)
        .map(|_| {
            let rx = Arc::clone(&rx);
            b.run(move || async move { rx.lock().await.recv().await })
        })
        .collect();
    assert_eq!(got, (0..300).map(Some).collect::<Vec<_>>(), "run");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..300u32 {
        tx.send(i).unwrap();
    }
    drop(tx);
    let items = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    let got: Vec<u32> = b.iter_direct(move || items).collect();
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "iter_direct");
}

fn many_calls_in_a_row<R: TestRuntime>() {
    from_every_place("many calls", check_many_calls::<R>);
}

per_runtime!(many_calls_in_a_row);

// ===== tokio: a worker awaiting a task it just spawned =====

/// From a task on a multi_thread worker, each entry point awaits a task the
/// caller spawned just before: that task sits in the worker's LIFO slot, and
/// a worker that blocks without handing it off waits for itself
/// (tokio#4941).
#[cfg(feature = "tokio")]
fn worker_awaits_a_task_it_just_spawned<R: TestRuntime>() {
    for workers in [1, 2] {
        let b = Bridge::new(R::make());
        let out = multi_thread(workers).block_on(async move {
            join(
                tokio::spawn(async move {
                    let spawn = |v: u32| {
                        tokio::spawn(async move {
                            tokio::task::yield_now().await;
                            v
                        })
                    };
                    let h = spawn(1);
                    let run = b.run(move || async move { h.await.unwrap() });
                    let h = spawn(2);
                    let tried = b.try_run(move || async move { h.await.unwrap() }).unwrap();
                    let h = spawn(3);
                    let timed = b
                        .run_timeout(Duration::from_secs(LIMIT), move || async move {
                            h.await.unwrap()
                        })
                        .unwrap();
                    let h = spawn(4);
                    let mut scoped = 0;
                    b.run_scoped(|| async {
                        scoped = h.await.unwrap();
                    });
                    let h = spawn(5);
                    let direct: Vec<u32> = b
                        .iter_direct(move || stream::once_future(async move { h.await.unwrap() }))
                        .collect();
                    let h = spawn(6);
                    let piped: Vec<u32> = b
                        .iter(move || stream::once_future(async move { h.await.unwrap() }))
                        .collect();
                    (run, tried, timed, scoped, direct, piped)
                })
                .await,
            )
        });
        assert_eq!(out, (1, 2, 3, 4, vec![5], vec![6]), "{workers} worker(s)");
    }
}

#[cfg(feature = "tokio")]
per_runtime!(worker_awaits_a_task_it_just_spawned);

/// The same from a nested call: a call made (synchronously) by a future that
/// a call from the worker task is polling on the worker thread, at its first
/// poll (before the outer call has handed the worker off) or after an
/// await. The worker must still hand its queue off before the nested call
/// blocks it. Each case runs on a runtime of its own, all at the same time;
/// the test reports those that hung.
#[cfg(feature = "tokio")]
fn nested_calls_in_a_worker_await_a_task_it_just_spawned<R: TestRuntime>() {
    type Nested<R> = fn(&Bridge<R>, tokio::task::JoinHandle<u32>) -> u32;
    let cases: Vec<(&str, Nested<R>)> = vec![
        ("run", |b, h| b.run(move || async move { h.await.unwrap() })),
        ("try_run", |b, h| {
            b.try_run(move || async move { h.await.unwrap() }).unwrap()
        }),
        ("run_scoped", |b, h| {
            b.run_scoped(|| async { h.await.unwrap() })
        }),
        ("iter_direct", |b, h| {
            b.iter_direct(move || stream::once_future(async move { h.await.unwrap() }))
                .sum()
        }),
        ("iter", |b, h| {
            b.iter(move || stream::once_future(async move { h.await.unwrap() }))
                .sum()
        }),
        ("run_timeout", |b, h| {
            b.run_timeout(Duration::from_secs(LIMIT), move || async move {
                h.await.unwrap()
            })
            .unwrap()
        }),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .flat_map(|(what, nested)| [(what, nested, true), (what, nested, false)])
        .map(|(what, nested, at_first_poll)| {
            let (tx, rx) = std::sync::mpsc::channel();
            thread::spawn(move || {
                let b = Bridge::new(R::make());
                let got = catch_unwind(AssertUnwindSafe(|| {
                    multi_thread(1).block_on(async move {
                        join(
                            tokio::spawn(async move {
                                // Spawned by the worker task, on the worker's runtime.
                                let h = tokio::spawn(async {
                                    tokio::task::yield_now().await;
                                    7u32
                                });
                                let outer = b.clone();
                                outer.run(move || async move {
                                    if !at_first_poll {
                                        R::sleep(ms(1)).await;
                                    }
                                    nested(&b, h)
                                })
                            })
                            .await,
                        )
                    })
                }));
                let _ = tx.send(got.map_err(|p| message(&*p)));
            });
            let when = if at_first_poll {
                "at the first poll"
            } else {
                "after an await"
            };
            (format!("{what} {when}"), rx)
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(LIMIT / 2);
    let mut failures = Vec::new();
    for (what, rx) in runs {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(7)) => {}
            Ok(other) => failures.push(format!("{what}: {other:?}")),
            Err(_) => failures.push(format!("{what}: hung")),
        }
    }
    assert!(
        failures.is_empty(),
        "nested calls in a worker task: {}",
        failures.join("; ")
    );
}

#[cfg(feature = "tokio")]
per_runtime!(nested_calls_in_a_worker_await_a_task_it_just_spawned);

// ===== tokio: a `LocalSet` driven on a multi_thread runtime =====

/// What one call did: its output, or the text of its panic.
#[cfg(feature = "tokio")]
fn outcome<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| message(&*p).unwrap_or_default())
}

/// `block_on(local.run_until(..))` on a multi_thread runtime.
///
/// Its body and its `spawn_local` tasks run on the `block_on` thread, which
/// is no worker (tokio's scheduler says so, whatever the task ids and the
/// handle's flavor suggest): every call hops, as from a current_thread
/// runtime, and answers; the `LocalSet`'s other tasks still run, and the
/// bridge stays usable.
#[cfg(feature = "tokio")]
fn local_set_on_a_multi_thread_runtime<R: TestRuntime>() {
    for workers in [1, 2] {
        let b = Bridge::new(R::make());
        let bridge = b.clone();
        let local = tokio::task::LocalSet::new();
        let sleep = R::sleep;
        let (in_body, ready, pending, sibling) =
            multi_thread(workers).block_on(local.run_until(async move {
                let in_body = outcome(|| check_run(&b, sleep));
                let (ready, pending) = tokio::task::spawn_local(async move {
                    // Ready at the first poll: no hand-off needed.
                    let ready = vec![
                        ("run", outcome(|| b.run(|| async { 1u32 }))),
                        ("try_run", outcome(|| b.try_run(|| async { 2u32 }).unwrap())),
                        ("run_scoped", outcome(|| b.run_scoped(|| async { 3u32 }))),
                        (
                            "iter_direct",
                            outcome(|| b.iter_direct(|| stream::iter([4u32])).sum::<u32>()),
                        ),
                    ];
                    // Anything else: `Ok` holds what the call gave instead of a panic.
                    let pending = vec![
                        (
                            "run",
                            outcome(|| {
                                format!("{:?}", b.run(move || async move { sleep(ms(1)).await }))
                            }),
                        ),
                        (
                            "try_run",
                            outcome(|| {
                                format!(
                                    "{:?}",
                                    b.try_run(move || async move { sleep(ms(1)).await })
                                )
                            }),
                        ),
                        (
                            "run_scoped",
                            outcome(|| {
                                format!(
                                    "{:?}",
                                    b.run_scoped(move || async move { sleep(ms(1)).await })
                                )
                            }),
                        ),
                        (
                            "iter_direct",
                            outcome(|| {
                                format!("{:?}", b.iter_direct(move || ticks(sleep, 1)).count())
                            }),
                        ),
                        (
                            "run_timeout, ready",
                            outcome(|| {
                                format!(
                                    "{:?}",
                                    b.run_timeout(Duration::from_secs(LIMIT), || async {})
                                )
                            }),
                        ),
                        (
                            "iter, ready",
                            outcome(|| format!("{:?}", b.iter(|| stream::iter([1u32])).count())),
                        ),
                        (
                            "reader, ready",
                            outcome(|| {
                                let mut text = String::new();
                                let mut reader =
                                    b.reader(|| futures_lite::io::Cursor::new(b"ready".to_vec()));
                                format!(
                                    "{:?}",
                                    std::io::Read::read_to_string(&mut reader, &mut text)
                                )
                            }),
                        ),
                    ];
                    (ready, pending)
                })
                .await
                .expect("the spawn_local task");
                // Another task of the same `LocalSet` still runs.
                let sibling = tokio::task::spawn_local(async { 5u32 })
                    .await
                    .expect("a sibling task");
                (in_body, ready, pending, sibling)
            }));
        assert_eq!(
            in_body,
            Ok(()),
            "{workers} worker(s): the body of the LocalSet"
        );
        for ((what, got), want) in ready.into_iter().zip(1u32..) {
            assert_eq!(
                got,
                Ok(want),
                "{workers} worker(s): {what} of a ready future in a spawn_local task"
            );
        }
        let answers = ["()", "Ok(())", "()", "1", "Ok(())", "1", "Ok(5)"];
        for ((what, got), answer) in pending.into_iter().zip(answers) {
            assert_eq!(
                got,
                Ok(answer.to_owned()),
                "{workers} worker(s): {what} in a spawn_local task"
            );
        }
        assert_eq!(sibling, 5, "{workers} worker(s): the LocalSet's other task");
        // Still usable.
        crate::common::watchdog(LIMIT, move || check_run(&bridge, R::sleep));
    }
}

#[cfg(feature = "tokio")]
per_runtime!(local_set_on_a_multi_thread_runtime);
