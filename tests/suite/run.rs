//! `run`, `try_run`, `run_timeout` and `run_scoped`: what they return and
//! how they fail, which is the same wherever the call runs (each check runs
//! from every calling context, on every adapter): outputs, `!Send` futures,
//! concurrency inside one call, panic payloads intact from the factory, the
//! future and its destructor; `Error`'s predicates, texts and `io::Error`
//! kinds; `run_timeout` at its deadline whatever the future does;
//! `run_scoped` borrowing; and the documented panics, reported at the
//! caller's line.

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{self, catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{Bridge, Error, Pollster, Runtime};

use crate::common::{
    eventually, is_set, message, per_runtime, threads_named, watchdog, DropFlag, Payload,
};
use crate::common::{TestRuntime, LIMIT};
use crate::contexts::{fail, from_each, from_every_place, ms, Place, Sleep};

// ===== Runtimes of this module =====

/// `futures_lite::future::block_on`, no hook overridden: its `enter` says no,
/// so nested calls and calls from inside a tokio runtime hop.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoEnter;

impl Runtime for NoEnter {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures_lite::future::block_on(fut)
    }
}

/// A runtime that cannot start.
#[derive(Debug)]
struct Refusing;

impl Runtime for Refusing {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures_lite::future::block_on(fut)
    }

    fn start(&self) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no engine"))
    }
}

/// A runtime whose loop threads are refused.
#[derive(Debug)]
struct Threadless;

impl Runtime for Threadless {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures_lite::future::block_on(fut)
    }

    fn spawn_loop<F>(
        &self,
        _thread: thread::Builder,
        _main: F,
    ) -> io::Result<thread::JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "no threads today",
        ))
    }
}

/// A stack size no system grants: every loop thread fails to start.
const HUGE_STACK: usize = usize::MAX / 2;

fn nap(d: Duration) -> crate::common::BoxFuture<()> {
    Box::pin(crate::common::thread_sleep(d))
}

// ===== Outputs =====

/// Ready and pending outputs, forty calls in a row each with its own output,
/// through every entry point.
fn check_outputs<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    assert_eq!(b.run(|| async { 7u32 }), 7);
    let outs: Vec<u32> = (0..40u32)
        .map(|i| match i % 4 {
            0 => b.run(move || async move {
                sleep(ms(1)).await;
                i * 2
            }),
            1 => b
                .try_run(move || async move {
                    sleep(ms(1)).await;
                    i * 2
                })
                .unwrap(),
            2 => b
                .run_timeout(Duration::from_secs(LIMIT), move || async move {
                    sleep(ms(1)).await;
                    i * 2
                })
                .unwrap(),
            _ => b.run_scoped(|| async {
                sleep(ms(1)).await;
                i * 2
            }),
        })
        .collect();
    assert_eq!(outs, (0..40).map(|i| i * 2).collect::<Vec<_>>());
}

fn outputs<R: TestRuntime>() {
    from_every_place("outputs", check_outputs::<R>);
}

/// A `!Send` future and an output both built in the factory, where the
/// future runs: `Rc`s made there, held across awaits.
fn check_not_send<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    fn make(
        sleep: Sleep,
        tag: &'static str,
    ) -> impl FnOnce() -> Pin<Box<dyn Future<Output = String>>> + Send {
        move || {
            let shared = Rc::new(std::cell::RefCell::new(vec![tag]));
            let out = format!("{tag}:");
            Box::pin(async move {
                sleep(ms(1)).await;
                shared.borrow_mut().push("polled");
                sleep(ms(1)).await;
                format!("{out}{}", shared.borrow().join("+"))
            })
        }
    }
    assert_eq!(b.run(make(sleep, "run")), "run:run+polled");
    assert_eq!(b.try_run(make(sleep, "try")).unwrap(), "try:try+polled");
    let timed = b.run_timeout(Duration::from_secs(LIMIT), make(sleep, "timed"));
    assert_eq!(timed.unwrap(), "timed:timed+polled");
    assert_eq!(b.run_scoped(make(sleep, "scoped")), "scoped:scoped+polled");
}

fn not_send_futures<R: TestRuntime>() {
    from_every_place("!Send", check_not_send::<R>);
}

/// Arrives, then waits on the runtime's timer until `n` have arrived: `n` of
/// these complete only if they run concurrently.
async fn meet(sleep: Sleep, arrived: &AtomicU32, n: u32, out: u32) -> u32 {
    arrived.fetch_add(1, Ordering::SeqCst);
    while arrived.load(Ordering::SeqCst) < n {
        sleep(ms(1)).await;
    }
    out
}

/// Futures joined inside one call run concurrently: each waits for the
/// others to have started (in sequence, the first would wait forever).
fn check_concurrent<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let run = b.run(move || async move {
        let arrived = AtomicU32::new(0);
        futures::join!(
            meet(sleep, &arrived, 3, 1),
            meet(sleep, &arrived, 3, 2),
            meet(sleep, &arrived, 3, 3)
        )
    });
    assert_eq!(run, (1, 2, 3));
    let timed = b.run_timeout(Duration::from_secs(LIMIT), move || async move {
        let arrived = AtomicU32::new(0);
        futures::join!(meet(sleep, &arrived, 2, 4), meet(sleep, &arrived, 2, 5))
    });
    assert_eq!(timed.unwrap(), (4, 5));
    let scoped = b.run_scoped(|| async {
        let arrived = AtomicU32::new(0);
        futures::join!(meet(sleep, &arrived, 2, 6), meet(sleep, &arrived, 2, 7))
    });
    assert_eq!(scoped, (6, 7));
}

fn concurrency_inside_one_call<R: TestRuntime>() {
    from_every_place("concurrency", check_concurrent::<R>);
}

per_runtime!(outputs, not_send_futures, concurrency_inside_one_call);

// ===== Panics =====

/// The payload types a panic can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    String,
    Custom,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Str, Kind::String, Kind::Custom];

    fn raise<T>(self) -> T {
        match self {
            Kind::Str => panic!("boom-str"),
            Kind::String => {
                let n = 7;
                panic!("boom-string {n}")
            }
            Kind::Custom => fail(Payload(9)),
        }
    }

    /// The text `panic_message` and `Display` carry.
    fn text(self) -> Option<&'static str> {
        match self {
            Kind::Str => Some("boom-str"),
            Kind::String => Some("boom-string 7"),
            Kind::Custom => None,
        }
    }

    /// Whether `payload` is this kind's, intact (type and value).
    fn is(self, payload: &(dyn Any + Send)) -> bool {
        match self {
            Kind::Str => payload.downcast_ref::<&str>() == Some(&"boom-str"),
            Kind::String => {
                payload.downcast_ref::<String>().map(String::as_str) == Some("boom-string 7")
            }
            Kind::Custom => payload.downcast_ref::<Payload>() == Some(&Payload(9)),
        }
    }
}

/// Where the panic happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Factory,
    Future,
    /// The future's destructor, once the future has completed.
    Destructor,
}

/// Panics when dropped (unless already unwinding).
struct PanicOnDrop(Kind);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.0.raise::<()>();
        }
    }
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

fn panicking(
    sleep: Sleep,
    kind: Kind,
    at: At,
) -> impl FnOnce() -> LocalFuture<u32> + Send + 'static {
    move || match at {
        At::Factory => kind.raise(),
        At::Future => Box::pin(async move {
            sleep(ms(1)).await;
            kind.raise::<u32>()
        }),
        At::Destructor => Box::pin(async move {
            let _guard = PanicOnDrop(kind);
            sleep(ms(1)).await;
            5u32
        }),
    }
}

/// Checks an `Error` that carries `kind`'s panic, and gives back its payload.
fn panic_error(err: Error, kind: Kind) -> Box<dyn Any + Send> {
    assert!(err.is_panic(), "{err:?}");
    assert!(
        !err.is_timeout() && !err.is_spawn() && !err.is_runtime(),
        "{err:?}"
    );
    assert_eq!(err.panic_message(), kind.text(), "{err:?}");
    let text = match kind.text() {
        Some(text) => format!("the bridged future panicked: {text}"),
        None => "the bridged future panicked".to_owned(),
    };
    assert_eq!(err.to_string(), text);
    err.into_panic()
}

/// Every entry point, every payload type, every place a panic can start:
/// the caller gets the payload as it was raised.
fn check_panics<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    for kind in Kind::ALL {
        for at in [At::Factory, At::Future, At::Destructor] {
            let what = format!("{kind:?} in the {at:?}");
            let run =
                catch_unwind(AssertUnwindSafe(|| b.run(panicking(sleep, kind, at)))).unwrap_err();
            assert!(kind.is(&*run), "run, {what}");
            let tried = b.try_run(panicking(sleep, kind, at)).unwrap_err();
            assert!(kind.is(&*panic_error(tried, kind)), "try_run, {what}");
            let timed = b
                .run_timeout(Duration::from_secs(LIMIT), panicking(sleep, kind, at))
                .unwrap_err();
            assert!(kind.is(&*panic_error(timed, kind)), "run_timeout, {what}");
            let scoped = catch_unwind(AssertUnwindSafe(|| {
                b.run_scoped(panicking(sleep, kind, at))
            }))
            .unwrap_err();
            assert!(kind.is(&*scoped), "run_scoped, {what}");
        }
        // The destructor of a future that `run_timeout` cancels. On a
        // loaded machine the loop thread may start only after the deadline:
        // then the factory never runs, there is no destructor to panic, and
        // the call is a plain timeout.
        let (made, was_made) = DropFlag::new();
        let cancelled = b
            .run_timeout(ms(20), move || {
                drop(made);
                async move {
                    let _guard = PanicOnDrop(kind);
                    std::future::pending::<u32>().await
                }
            })
            .unwrap_err();
        if is_set(&was_made) {
            assert!(
                kind.is(&*panic_error(cancelled, kind)),
                "run_timeout cancelling, {kind:?}"
            );
        } else {
            assert!(
                cancelled.is_timeout(),
                "run_timeout cancelling, {kind:?}: {cancelled:?}"
            );
        }
    }
    // Still usable.
    assert_eq!(b.run(|| async { 1 }), 1);
}

fn panics_keep_their_payload<R: TestRuntime>() {
    from_every_place("panics", check_panics::<R>);
}

/// Panicking calls that hop do not cost a loop thread each: the thread that
/// caught the panic takes the next call.
fn panics_cost_no_thread<R: TestRuntime>() {
    let name = format!("rn-pa-{}", &R::NAME[..2]);
    let b = Bridge::builder(R::make()).thread_name(&name).build();
    let mut sum = 0;
    for i in 0..20u32 {
        let r = b.run_timeout(Duration::from_secs(LIMIT), move || async move {
            R::sleep(ms(1)).await;
            if i % 2 == 0 {
                fail(Payload(i))
            } else {
                i
            }
        });
        match r {
            Ok(v) => sum += v,
            Err(e) => assert_eq!(e.into_panic().downcast_ref::<Payload>(), Some(&Payload(i))),
        }
    }
    assert_eq!(sum, 100);
    assert_eq!(
        b.threads(),
        1,
        "20 calls in a row, half of them panicking, need one loop thread"
    );
    assert_eq!(threads_named(&format!("{name}-")), 1);
}

per_runtime!(panics_keep_their_payload, panics_cost_no_thread);

// ===== Error =====

#[test]
fn a_panic_error_says_so() {
    let b = Bridge::new(Pollster);
    let err = b.try_run(|| async { fail::<u32>("boom") }).unwrap_err();
    assert!(err.is_panic() && !err.is_timeout() && !err.is_spawn() && !err.is_runtime());
    assert_eq!(err.panic_message(), Some("boom"));
    assert_eq!(err.to_string(), "the bridged future panicked: boom");
    assert!(std::error::Error::source(&err).is_none());
    let io = io::Error::from(err);
    assert_eq!(io.kind(), io::ErrorKind::Other);
    let inner = io
        .get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .expect("the bridge's error is the source");
    assert_eq!(inner.to_string(), "the bridged future panicked: boom");
    let custom = b.try_run(|| async { fail::<u32>(Payload(3)) }).unwrap_err();
    assert_eq!(custom.panic_message(), None);
    assert_eq!(custom.to_string(), "the bridged future panicked");
    let payload = custom.try_into_panic().expect("a panic");
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(3)));
}

#[test]
fn a_timeout_error_says_so() {
    let b = Bridge::new(Pollster);
    let err = watchdog(LIMIT, move || {
        b.run_timeout(ms(50), std::future::pending::<()>)
            .unwrap_err()
    });
    assert!(err.is_timeout() && !err.is_panic() && !err.is_spawn() && !err.is_runtime());
    assert_eq!(err.panic_message(), None);
    assert_eq!(err.to_string(), "deadline of 50ms elapsed");
    assert!(std::error::Error::source(&err).is_none());
    let err = err.try_into_panic().expect_err("not a panic");
    assert!(err.is_timeout(), "try_into_panic gives the error back");
    let io = io::Error::from(err);
    assert_eq!(io.kind(), io::ErrorKind::TimedOut);
    assert_eq!(io.to_string(), "deadline of 50ms elapsed");
}

#[test]
fn a_spawn_error_keeps_its_cause() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Threadless);
        let err = b
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err();
        assert!(
            err.is_spawn() && !err.is_panic() && !err.is_timeout() && !err.is_runtime(),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "failed to start a loop thread: no threads today"
        );
        assert_eq!(err.panic_message(), None);
        let cause = std::error::Error::source(&err).expect("a cause");
        assert_eq!(cause.to_string(), "no threads today");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::PermissionDenied);
        // Calls that need no loop thread still run.
        assert_eq!(b.run(|| async { 2 }), 2);
        // The system refusing the thread: the kind of its error.
        let b = Bridge::builder(Pollster).stack_size(HUGE_STACK).build();
        let err = b
            .run_timeout(Duration::from_secs(1), || async { 1 })
            .unwrap_err();
        assert!(err.is_spawn(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("failed to start a loop thread: "),
            "{err}"
        );
        let kind = std::error::Error::source(&err)
            .and_then(|e| e.downcast_ref::<io::Error>())
            .expect("an io::Error cause")
            .kind();
        assert_eq!(io::Error::from(err).kind(), kind);
        assert_eq!(
            b.run(|| async { 3 }),
            3,
            "a call on the caller's thread needs no loop thread"
        );
    });
}

#[test]
fn a_runtime_error_keeps_its_cause() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Refusing);
        for err in [
            b.try_run(|| async { 1 }).unwrap_err(),
            b.run_timeout(Duration::from_secs(1), || async { 1 })
                .unwrap_err(),
        ] {
            assert!(
                err.is_runtime() && !err.is_panic() && !err.is_timeout() && !err.is_spawn(),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "the runtime failed: no engine");
            assert_eq!(
                std::error::Error::source(&err)
                    .map(|e| e.to_string())
                    .as_deref(),
                Some("no engine")
            );
            assert_eq!(io::Error::from(err).kind(), io::ErrorKind::Unsupported);
        }
    });
}

#[test]
fn errors_convert_with_the_question_mark() {
    fn boxed(b: &Bridge<Pollster>) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
        Ok(b.try_run(|| async { fail::<u32>("boxed") })?)
    }
    fn io_result(b: &Bridge<Pollster>) -> io::Result<u32> {
        Ok(b.run_timeout(ms(10), std::future::pending::<u32>)?)
    }
    fn is_send_sync<T: Send + Sync + 'static>(_: &T) {}
    let b = Bridge::new(Pollster);
    let err = boxed(&b).unwrap_err();
    is_send_sync(&err);
    assert_eq!(err.to_string(), "the bridged future panicked: boxed");
    assert!(err.downcast_ref::<Error>().is_some_and(Error::is_panic));
    let b2 = b.clone();
    let err = watchdog(LIMIT, move || io_result(&b2).unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

// ===== run_timeout =====

/// A future pending forever, and one on the runtime's timer: the call
/// returns at its deadline (not before), with the future already dropped.
fn check_deadline<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let timeout = ms(150);
    for on_timer in [false, true] {
        let (guard, dropped) = DropFlag::new();
        let start = Instant::now();
        let err = b
            .run_timeout(timeout, move || async move {
                let _guard = guard;
                if on_timer {
                    sleep(Duration::from_secs(20)).await;
                } else {
                    std::future::pending::<()>().await;
                }
                1u32
            })
            .unwrap_err();
        let elapsed = start.elapsed();
        assert!(err.is_timeout(), "on the timer: {on_timer}: {err:?}");
        assert_eq!(err.to_string(), "deadline of 150ms elapsed");
        assert!(
            is_set(&dropped),
            "on the timer: {on_timer}: the future outlived run_timeout"
        );
        assert!(
            elapsed >= timeout,
            "on the timer: {on_timer}: returned early, after {elapsed:?}"
        );
        assert!(
            elapsed < timeout + Duration::from_secs(10),
            "on the timer: {on_timer}: {elapsed:?}"
        );
    }
}

fn run_timeout_returns_at_its_deadline<R: TestRuntime>() {
    from_every_place("deadline", check_deadline::<R>);
}

/// Near the deadline, some calls complete and some time out; an output the
/// future produced is never dropped: it is returned.
fn run_timeout_never_drops_a_produced_output<R: TestRuntime>() {
    struct Out {
        delivered: bool,
        lost: Arc<AtomicU32>,
    }
    impl Drop for Out {
        fn drop(&mut self) {
            if !self.delivered {
                self.lost.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let b = Bridge::new(R::make());
    let lost = Arc::new(AtomicU32::new(0));
    let mut answers = 0;
    for i in 0..40u64 {
        let l = Arc::clone(&lost);
        let got = b.run_timeout(Duration::from_micros(250 * i), move || async move {
            R::sleep(ms(5)).await;
            Out {
                delivered: false,
                lost: l,
            }
        });
        match got {
            Ok(mut out) => out.delivered = true,
            Err(e) => assert!(e.is_timeout(), "{e:?}"),
        }
        answers += 1;
    }
    assert_eq!(answers, 40);
    // An output ready long before its deadline is returned, of course.
    let l = Arc::clone(&lost);
    let mut out = b
        .run_timeout(Duration::from_secs(LIMIT), move || async move {
            Out {
                delivered: false,
                lost: l,
            }
        })
        .expect("a ready output");
    out.delivered = true;
    drop(out);
    thread::sleep(ms(50));
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "outputs produced by the future and dropped"
    );
}

/// How long past its deadline a call whose future blocks may return: the
/// docs promise a few milliseconds; generous for a loaded machine, and well
/// below the 3 s the future blocks.
const BLOCKED_MARGIN: Duration = Duration::from_millis(1900);

/// Futures that block their thread: a synchronous sleep in the future, in
/// the factory, and a busy loop that never yields. The call still returns at
/// its deadline, `is_timeout` ("run_timeout must return at its deadline
/// whatever the future does"). A cancelled future's destructor, once it
/// started, is waited for (its outcome is the call's): one that sleeps
/// delays the return by as long.
fn check_blocking_futures<R: Runtime>(b: &Bridge<R>, _sleep: Sleep) {
    let timeout = ms(100);
    let blocked = Duration::from_secs(3);
    let slow_drop = ms(200);
    type Make = Box<dyn FnOnce() -> LocalFuture<u32> + Send>;
    struct SlowDrop(Duration);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            thread::sleep(self.0);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (guard, spun_out) = DropFlag::new();
    // Whether the factory of the destructor's case ran: on a loaded machine
    // the loop thread may start only after the deadline, and then there is
    // no destructor to wait for.
    let (made, was_made) = DropFlag::new();
    let spinning = Arc::clone(&stop);
    let cases: Vec<(&str, Make)> = vec![
        (
            "a synchronous sleep in the future",
            Box::new(move || {
                Box::pin(async move {
                    thread::sleep(blocked);
                    1
                })
            }),
        ),
        (
            "a synchronous sleep in the factory",
            Box::new(move || {
                thread::sleep(blocked);
                Box::pin(async { 2 })
            }),
        ),
        (
            "a destructor that sleeps when the future is cancelled",
            Box::new(move || {
                drop(made);
                Box::pin(async move {
                    let _slow = SlowDrop(slow_drop);
                    std::future::pending::<u32>().await
                })
            }),
        ),
        (
            "a busy loop that never yields",
            Box::new(move || {
                Box::pin(async move {
                    let _guard = guard;
                    while !spinning.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                    4
                })
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (what, make) in cases {
        let start = Instant::now();
        let got = b.run_timeout(timeout, make);
        let elapsed = start.elapsed();
        let earliest = match what.contains("destructor") && is_set(&was_made) {
            true => timeout + slow_drop,
            false => timeout,
        };
        match got {
            Err(e)
                if e.is_timeout() && elapsed >= earliest && elapsed < timeout + BLOCKED_MARGIN => {}
            Err(e) if e.is_timeout() => {
                failures.push(format!("{what}: timed out after {elapsed:?}"))
            }
            other => failures.push(format!("{what}: {other:?} after {elapsed:?}")),
        }
    }
    stop.store(true, Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "for a deadline of {timeout:?}: {}",
        failures.join("; ")
    );
    // Once the busy loop ends, its future is dropped on its loop thread.
    assert!(
        eventually(Duration::from_secs(LIMIT / 2), || is_set(&spun_out)),
        "the busy future was never dropped"
    );
}

fn run_timeout_returns_whatever_the_future_does<R: TestRuntime>() {
    from_every_place("blocking", check_blocking_futures::<R>);
}

/// `Duration::MAX` never comes; `Duration::ZERO` (and one nanosecond) comes
/// at once: a pending future times out promptly and is dropped; a ready one
/// may or may not make it, but the call returns either way.
fn check_extreme_timeouts<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let out = b.run_timeout(Duration::MAX, move || async move {
        sleep(ms(20)).await;
        6u32
    });
    assert_eq!(out.unwrap(), 6, "Duration::MAX");
    for timeout in [Duration::ZERO, Duration::from_nanos(1)] {
        let (guard, dropped) = DropFlag::new();
        let start = Instant::now();
        let err = b
            .run_timeout(timeout, move || async move {
                let _guard = guard;
                sleep(Duration::from_secs(20)).await;
            })
            .unwrap_err();
        assert!(err.is_timeout(), "{timeout:?}: {err:?}");
        assert_eq!(err.to_string(), format!("deadline of {timeout:?} elapsed"));
        assert!(
            is_set(&dropped),
            "{timeout:?}: the future outlived the call"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{timeout:?}: {:?}",
            start.elapsed()
        );
        match b.run_timeout(timeout, || async { 7u32 }) {
            Ok(v) => assert_eq!(v, 7),
            Err(e) => assert!(e.is_timeout(), "{timeout:?}: {e:?}"),
        }
    }
}

fn run_timeout_extreme_timeouts<R: TestRuntime>() {
    from_every_place("extreme timeouts", check_extreme_timeouts::<R>);
}

per_runtime!(
    run_timeout_returns_at_its_deadline,
    run_timeout_never_drops_a_produced_output,
    run_timeout_returns_whatever_the_future_does,
    run_timeout_extreme_timeouts
);

// ===== run_scoped =====

/// The factory and the future read and write the caller's locals, the
/// output borrows them, three levels deep.
fn check_borrows<R: Runtime>(b: &Bridge<R>, sleep: Sleep) {
    let words: Vec<String> = "borrowed not moved".split(' ').map(String::from).collect();
    let mut counter = 0usize;
    let mut log = Vec::new();
    let (counter_ref, log_ref, words_ref) = (&mut counter, &mut log, &words);
    let longest: &str = b.run_scoped(move || {
        *counter_ref += 1;
        let shared = Rc::new(words_ref.len()); // !Send, held across an await
        async move {
            sleep(ms(1)).await;
            *counter_ref += *shared;
            let log = log_ref;
            log.push(1);
            b.run_scoped(|| async {
                sleep(ms(1)).await;
                log.push(2);
                b.run_scoped(|| async {
                    sleep(ms(1)).await;
                    log.push(3);
                });
            });
            words_ref
                .iter()
                .max_by_key(|w| w.len())
                .expect("words")
                .as_str()
        }
    });
    assert_eq!(longest, "borrowed");
    assert_eq!(counter, 4);
    assert_eq!(log, [1, 2, 3]);
    let total: usize = b.run_scoped(|| async { words.iter().map(String::len).sum() });
    assert_eq!(total, 16);
}

fn run_scoped_borrows<R: TestRuntime>() {
    from_every_place("run_scoped", check_borrows::<R>);
}

per_runtime!(run_scoped_borrows);

/// The same on a runtime whose `enter` says no, where calls from a tokio
/// runtime and nested calls run on a fresh scoped thread.
#[test]
fn run_scoped_borrows_where_it_needs_a_thread() {
    watchdog(LIMIT, || {
        from_each(
            "run_scoped",
            &Bridge::new(NoEnter),
            &Place::all(),
            nap,
            check_borrows::<NoEnter>,
        )
    });
}

/// Where the call cannot run on the caller's thread, `run_scoped` runs it on
/// a fresh thread named `{prefix}-scoped`, gone once the call returns.
#[test]
fn run_scoped_hops_to_a_named_scoped_thread() {
    let b = Bridge::builder(NoEnter).thread_name("rn-sc").build();
    let names = watchdog(LIMIT, move || {
        let outer = b.clone();
        b.run(move || async move {
            let local = String::from("caller's");
            let name = outer.run_scoped(|| async {
                assert_eq!(local, "caller's");
                thread::current().name().map(str::to_owned)
            });
            (name, thread::current().name().map(str::to_owned))
        })
    });
    assert_eq!(names.0.as_deref(), Some("rn-sc-scoped"), "the nested call");
    assert_eq!(
        names.1.as_deref(),
        Some("watched"),
        "the outer call ran on the caller's thread"
    );
    assert!(
        eventually(Duration::from_secs(10), || threads_named("rn-sc-scoped")
            == 0),
        "the scoped thread is left"
    );
}

/// A scoped thread that cannot start is reported only where one is needed.
#[test]
fn run_scoped_needs_no_thread_on_the_callers_thread() {
    let b = Bridge::builder(NoEnter).stack_size(HUGE_STACK).build();
    let local = 5;
    assert_eq!(watchdog(LIMIT, move || b.run_scoped(|| async { local })), 5);
}

#[test]
#[should_panic(expected = "executor-bridge: failed to start a loop thread: ")]
fn run_scoped_panics_when_its_thread_cannot_start() {
    let b = Bridge::builder(NoEnter).stack_size(HUGE_STACK).build();
    let inner = b.clone();
    b.run(move || async move {
        let local = 7;
        inner.run_scoped(|| async { local })
    });
}

/// From a task on a multi_thread worker: `run_scoped` inside `run_scoped`
/// awaiting a task the caller spawned just before (in the worker's LIFO
/// slot). It used to hang.
#[cfg(feature = "tokio")]
fn nested_run_scoped_in_a_worker_awaits_a_just_spawned_task<R: Runtime>(make: fn() -> R) {
    for workers in [1, 2] {
        let b = Bridge::new(make());
        let out = crate::contexts::multi_thread(workers).block_on(async move {
            crate::common::join(
                tokio::spawn(async move {
                    let h = tokio::spawn(async {
                        tokio::task::yield_now().await;
                        21u32
                    });
                    let mut seen = Vec::new();
                    let out = b.run_scoped(|| async {
                        seen.push("outer");
                        b.run_scoped(|| async {
                            seen.push("inner");
                            h.await.unwrap() * 2
                        })
                    });
                    (out, seen)
                })
                .await,
            )
        });
        assert_eq!(out, (42, vec!["outer", "inner"]), "{workers} worker(s)");
    }
}

#[cfg(feature = "tokio")]
fn nested_run_scoped_in_a_worker<R: TestRuntime>() {
    nested_run_scoped_in_a_worker_awaits_a_just_spawned_task(R::make);
}

#[cfg(feature = "tokio")]
per_runtime!(nested_run_scoped_in_a_worker);

#[cfg(feature = "tokio")]
#[test]
fn nested_run_scoped_in_a_worker_on_a_runtime_without_enter() {
    watchdog(LIMIT, || {
        nested_run_scoped_in_a_worker_awaits_a_just_spawned_task(|| NoEnter)
    });
}

/// Tokio IO on the caller's borrowed buffers, from inside a current_thread
/// runtime (where `run` could only take `'static` data).
#[cfg(feature = "tokio")]
#[test]
fn run_scoped_does_tokio_io_on_borrowed_buffers_inside_a_runtime() {
    let reply = watchdog(LIMIT, || {
        let b = Bridge::new(executor_bridge::Tokio::new());
        crate::common::current_thread().block_on(async {
            let request = b"ping".to_vec();
            let mut reply = Vec::new();
            b.run_scoped(|| async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = async {
                    let (mut s, _) = listener.accept().await.unwrap();
                    let mut buf = [0; 4];
                    s.read_exact(&mut buf).await.unwrap();
                    s.write_all(&buf).await.unwrap();
                };
                let client = async {
                    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                    c.write_all(&request).await.unwrap();
                    c.read_to_end(&mut reply).await.unwrap();
                };
                tokio::join!(server, client);
            });
            reply
        })
    });
    assert_eq!(reply, b"ping");
}

// ===== Documented panics =====

#[test]
#[should_panic(expected = "executor-bridge: max_threads must be at least 1")]
fn max_threads_of_zero_panics() {
    let _ = Bridge::builder(Pollster).max_threads(0);
}

#[test]
#[should_panic(expected = "executor-bridge: a thread name may not contain a NUL byte")]
fn a_thread_name_with_a_nul_byte_panics() {
    let _ = Bridge::builder(Pollster).thread_name("a\0b");
}

#[test]
#[should_panic(
    expected = "called `Error::into_panic` on an error that is not a panic: deadline of 10ms elapsed"
)]
fn into_panic_on_a_timeout_panics() {
    let b = Bridge::new(Pollster);
    let err = b
        .run_timeout(ms(10), std::future::pending::<()>)
        .unwrap_err();
    let _ = err.into_panic();
}

#[test]
#[should_panic(expected = "executor-bridge: the runtime failed: no engine")]
fn run_panics_when_the_runtime_cannot_start() {
    Bridge::new(Refusing).run(|| async {});
}

#[test]
#[should_panic(expected = "executor-bridge: failed to start a loop thread: no threads today")]
fn run_panics_when_its_loop_thread_cannot_start() {
    let b = Bridge::new(Threadless);
    let inner = b.clone();
    // A nested call on a runtime without `enter` needs a loop thread.
    b.run(move || async move { inner.run(|| async {}) });
}

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Runs `f`, which must panic with a text starting with `prefix`, and
/// returns the file the panic hook saw that panic raised in: the last one
/// raised on this thread, or else on whatever thread (other tests, running
/// meanwhile, may raise the same panic). Other panics go to the previous
/// hook, which is put back after.
fn panic_file(prefix: &'static str, f: impl FnOnce()) -> String {
    let _one_at_a_time = crate::common::hook_lock();
    let seen: Arc<Mutex<Vec<(std::thread::ThreadId, String)>>> = Arc::default();
    let previous: Arc<Hook> = Arc::new(panic::take_hook());
    {
        let (seen, previous) = (Arc::clone(&seen), Arc::clone(&previous));
        panic::set_hook(Box::new(move |info| {
            let text = message(info.payload()).unwrap_or_default();
            match info.location() {
                Some(at) if text.starts_with(prefix) => seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((std::thread::current().id(), at.file().to_owned())),
                _ => previous(info),
            }
        }));
    }
    let outcome = catch_unwind(AssertUnwindSafe(f));
    drop(panic::take_hook());
    match Arc::try_unwrap(previous) {
        Ok(previous) => panic::set_hook(previous),
        Err(previous) => panic::set_hook(Box::new(move |info| previous(info))),
    }
    let payload = outcome.expect_err("no panic");
    let text = message(&*payload).unwrap_or_default();
    assert!(text.starts_with(prefix), "another panic: {text}");
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let me = std::thread::current().id();
    seen.iter()
        .rev()
        .find(|(thread, _)| *thread == me)
        .or(seen.last())
        .map(|(_, file)| file.clone())
        .expect("the hook saw no such panic")
}

#[test]
fn max_threads_of_zero_reports_the_callers_line() {
    let file = panic_file("executor-bridge: max_threads must be at least 1", || {
        let _ = Bridge::builder(Pollster).max_threads(0);
    });
    assert_eq!(file, file!());
}

#[test]
fn a_nul_thread_name_reports_the_callers_line() {
    let file = panic_file(
        "executor-bridge: a thread name may not contain a NUL byte",
        || {
            let _ = Bridge::builder(Pollster).thread_name("a\0b");
        },
    );
    assert_eq!(file, file!());
}

#[test]
fn into_panic_reports_the_callers_line() {
    let b = Bridge::new(Pollster);
    let err = watchdog(LIMIT, move || {
        b.run_timeout(ms(1), std::future::pending::<()>)
            .unwrap_err()
    });
    let file = panic_file("called `Error::into_panic`", move || {
        let _ = err.into_panic();
    });
    assert_eq!(file, file!());
}

#[test]
fn a_runtime_that_cannot_start_reports_the_callers_line() {
    let file = panic_file("executor-bridge: the runtime failed", || {
        Bridge::new(Refusing).run(|| async {})
    });
    assert_eq!(file, file!(), "run");
    let file = panic_file("executor-bridge: the runtime failed", || {
        let words = ["borrowed"];
        Bridge::new(Refusing).run_scoped(|| async { words.len() });
    });
    assert_eq!(file, file!(), "run_scoped");
    let file = panic_file("executor-bridge: the runtime failed", || {
        let _ = Bridge::new(Refusing)
            .iter(|| futures_lite::stream::iter([1]))
            .next();
    });
    assert_eq!(file, file!(), "iter's next");
    let file = panic_file("executor-bridge: the runtime failed", || {
        let _ = Bridge::new(Refusing)
            .iter_direct(|| futures_lite::stream::iter([1]))
            .next();
    });
    assert_eq!(file, file!(), "iter_direct's next");
}

#[test]
fn a_loop_thread_that_cannot_start_reports_the_callers_line() {
    let b = Bridge::new(Threadless);
    let file = panic_file("executor-bridge: failed to start a loop thread", || {
        let inner = b.clone();
        b.run(move || async move { inner.run(|| async {}) });
    });
    assert_eq!(file, file!(), "run");
    // run_scoped starts a thread of its own, refused by the system here.
    let scoped = Bridge::builder(NoEnter).stack_size(HUGE_STACK).build();
    let file = panic_file("executor-bridge: failed to start a loop thread", || {
        let inner = scoped.clone();
        scoped.run(move || async move {
            let local = 1;
            inner.run_scoped(|| async { local })
        });
    });
    assert_eq!(file, file!(), "run_scoped");
    let file = panic_file("executor-bridge: failed to start a loop thread", || {
        let _ = b.iter(|| futures_lite::stream::iter([1])).next();
    });
    assert_eq!(file, file!(), "iter's next");
}

/// A task of a caller-driven Tokio runtime calling its own bridge panics
/// (documented on `Tokio`'s `Runtime::enter`), at the line of that call.
#[cfg(feature = "tokio")]
#[test]
fn a_task_of_a_caller_driven_runtime_calling_its_bridge_reports_the_callers_line() {
    let b = Bridge::new(executor_bridge::Tokio::new());
    let file = panic_file(
        "executor-bridge: a task of a caller-driven Tokio runtime called its bridge",
        move || {
            let inner = b.clone();
            watchdog(LIMIT, move || {
                b.run(move || async move {
                    let task = tokio::spawn(async move { inner.run(|| async { 1 }) });
                    match task.await {
                        Ok(v) => v,
                        Err(e) => panic::resume_unwind(e.into_panic()),
                    }
                })
            });
        },
    );
    assert_eq!(file, file!());
}

// ===== Per adapter: what the old adapter files checked =====

/// Calls from a plain thread run there: `run`, `try_run`, `run_scoped` and
/// `iter_direct` start no loop thread (`run_timeout` and `iter` do).
fn plain_thread_calls_start_no_loop_thread<R: TestRuntime>() {
    let name = format!("rn-nl-{}", &R::NAME[..2]);
    let b = Bridge::builder(R::make()).thread_name(&name).build();
    let mut sum = 0;
    for i in 0..25u32 {
        sum += b.run(move || async move {
            R::sleep(ms(1)).await;
            i
        });
        sum += b.try_run(|| async { 1 }).unwrap();
        sum += b.run_scoped(|| async {
            R::sleep(ms(1)).await;
            1
        });
    }
    sum += b
        .iter_direct(|| futures_lite::stream::iter([1u32, 2]))
        .sum::<u32>();
    assert_eq!(sum, 300 + 25 + 25 + 3);
    assert_eq!(b.threads(), 0);
    assert_eq!(threads_named(&name), 0);
}

per_runtime!(plain_thread_calls_start_no_loop_thread);

#[test]
fn pollster_runs_futures_completed_by_other_threads() {
    let b = Bridge::new(Pollster);
    let out = watchdog(LIMIT, move || {
        let (tx, rx) = async_channel::bounded(1);
        let sender = thread::spawn(move || {
            thread::sleep(ms(20));
            tx.send_blocking("from a thread").unwrap();
        });
        let out = b.run(move || async move { rx.recv().await.unwrap() });
        sender.join().unwrap();
        out
    });
    assert_eq!(out, "from a thread");
}

/// Without a tokio runtime, tokio's timer panics: the bridge carries that
/// panic back intact instead of hanging or aborting.
#[test]
fn pollster_reports_the_panic_of_a_future_that_needs_a_reactor() {
    let b = Bridge::new(Pollster);
    let err = watchdog(LIMIT, move || {
        b.try_run(|| async { tokio::time::sleep(ms(1)).await })
            .unwrap_err()
    });
    assert!(err.is_panic(), "{err:?}");
    let text = message(&*err.into_panic()).unwrap_or_default();
    assert!(text.starts_with("there is no reactor running"), "{text}");
}

/// What replaced the process-wide shortcut modules: a `static` bridge.
#[test]
fn a_process_wide_bridge_in_a_static() {
    use std::sync::LazyLock;
    static BRIDGE: LazyLock<Bridge<Pollster>> = LazyLock::new(Bridge::default);
    let count = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&count);
    let (run, items) = watchdog(LIMIT, move || {
        let run = BRIDGE.run(move || async move {
            c.fetch_add(1, Ordering::SeqCst);
            2
        });
        let items: Vec<u8> = BRIDGE
            .iter(|| futures_lite::stream::iter([1u8, 2]))
            .collect();
        (run, items)
    });
    assert_eq!((run, items), (2, vec![1, 2]));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(std::ptr::eq(&*BRIDGE, &*BRIDGE));
}

#[cfg(feature = "tokio")]
#[test]
fn a_process_wide_tokio_bridge_in_a_static() {
    use std::sync::LazyLock;
    static BRIDGE: LazyLock<Bridge<executor_bridge::Tokio>> = LazyLock::new(Bridge::default);
    watchdog(LIMIT, || {
        a_listener_accepts_in_the_next_call(
            &BRIDGE,
            "from the static",
            || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() },
            |listener| listener.local_addr().unwrap(),
            |listener, text| async move {
                use tokio::io::AsyncWriteExt;
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.write_all(text).await.unwrap();
            },
        )
    });
}

/// Connects to `addr` from a fresh thread, which reads until the peer closes.
#[cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]
fn read_all_from(addr: std::net::SocketAddr) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        use std::io::Read;
        let mut conn = std::net::TcpStream::connect(addr).expect("connect");
        let mut got = String::new();
        conn.read_to_string(&mut got).expect("read");
        got
    })
}

/// A listener of the runtime's own, bound in one call, accepts in the next:
/// the runtime's reactor outlives a call. `bind` binds it on 127.0.0.1:0,
/// `addr` says where, `serve` accepts one connection and writes `text` into
/// it; a plain thread reads all of it.
#[cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]
fn a_listener_accepts_in_the_next_call<R, L, Bound, Served>(
    b: &Bridge<R>,
    text: &'static str,
    bind: impl FnOnce() -> Bound + Send + 'static,
    addr: impl FnOnce(&L) -> std::net::SocketAddr,
    serve: impl FnOnce(L, &'static [u8]) -> Served + Send + 'static,
) where
    R: Runtime,
    L: Send + 'static,
    Bound: Future<Output = L> + 'static,
    Served: Future<Output = ()> + 'static,
{
    let listener = b.run(bind);
    let client = read_all_from(addr(&listener));
    b.run(move || serve(listener, text.as_bytes()));
    assert_eq!(client.join().unwrap(), text, "what the client read");
}

/// A task spawned in one call keeps running between calls, and a later call
/// cancels it: `spawn` (run inside a call) starts a task that ticks its
/// counter every 5 ms; `cancel` cancels it, answering its output had it
/// finished (it never does: `None`).
#[cfg(any(feature = "smol", feature = "async-std"))]
fn a_spawned_ticker_keeps_ticking<R, Task, Cancelled>(
    b: &Bridge<R>,
    spawn: impl FnOnce(Arc<AtomicU32>) -> Task + Send + 'static,
    cancel: impl FnOnce(Task) -> Cancelled + Send + 'static,
) where
    R: Runtime,
    Task: Send + 'static,
    Cancelled: Future<Output = Option<()>> + 'static,
{
    let ticks = Arc::new(AtomicU32::new(0));
    let t = Arc::clone(&ticks);
    let task = b.run(move || async move { spawn(t) });
    let before = ticks.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), || ticks.load(Ordering::SeqCst)
            >= before + 5),
        "the ticker stopped between calls"
    );
    let cancelled = b.run(move || cancel(task));
    assert_eq!(cancelled, None, "the ticker finished by itself");
}

#[cfg(feature = "smol")]
#[test]
fn smol_a_listener_bound_in_one_call_accepts_in_the_next() {
    let b = Bridge::new(executor_bridge::Smol);
    watchdog(LIMIT, move || {
        a_listener_accepts_in_the_next_call(
            &b,
            "hello from the next call",
            || async { smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap() },
            |listener| listener.local_addr().unwrap(),
            |listener, text| async move {
                use smol::io::AsyncWriteExt;
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.write_all(text).await.unwrap();
            },
        )
    });
}

#[cfg(feature = "smol")]
#[test]
fn smol_a_spawned_ticker_keeps_ticking_between_calls() {
    let b = Bridge::new(executor_bridge::Smol);
    watchdog(LIMIT, move || {
        a_spawned_ticker_keeps_ticking(
            &b,
            |t| {
                smol::spawn(async move {
                    loop {
                        smol::Timer::after(ms(5)).await;
                        t.fetch_add(1, Ordering::SeqCst);
                    }
                })
            },
            |task| task.cancel(),
        )
    });
}

#[cfg(feature = "async-std")]
#[test]
fn async_std_a_listener_bound_in_one_call_accepts_in_the_next() {
    let b = Bridge::new(executor_bridge::AsyncStd);
    watchdog(LIMIT, move || {
        a_listener_accepts_in_the_next_call(
            &b,
            "hello from the next call",
            || async {
                async_std::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .unwrap()
            },
            |listener| listener.local_addr().unwrap(),
            |listener, text| async move {
                use async_std::io::WriteExt;
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.write_all(text).await.unwrap();
            },
        )
    });
}

#[cfg(feature = "async-std")]
#[test]
fn async_std_a_spawned_ticker_keeps_ticking_between_calls() {
    let b = Bridge::new(executor_bridge::AsyncStd);
    watchdog(LIMIT, move || {
        a_spawned_ticker_keeps_ticking(
            &b,
            |t| {
                async_std::task::spawn(async move {
                    loop {
                        async_std::task::sleep(ms(5)).await;
                        t.fetch_add(1, Ordering::SeqCst);
                    }
                })
            },
            |task| task.cancel(),
        )
    });
}

/// Blocking code that a call moved to `spawn_blocking` calls the bridge
/// again.
#[cfg(feature = "async-std")]
#[test]
fn async_std_spawn_blocking_inside_a_call_can_call_the_bridge_again() {
    let b = Bridge::new(executor_bridge::AsyncStd);
    let inner = b.clone();
    let out = watchdog(LIMIT, move || {
        b.run(move || async move {
            async_std::task::spawn_blocking(move || {
                inner.run(|| async {
                    async_std::task::sleep(ms(2)).await;
                    9u32
                })
            })
            .await
        })
    });
    assert_eq!(out, 9);
}

/// The misuse panic of a task of a bridge's own caller-driven runtime that
/// calls the bridge is raised at the line of the call, by every entry point
/// that has a caller's line (`Read`/`Write` methods are trait methods
/// without one), whether the call would have run in place or hopped.
#[cfg(feature = "tokio")]
#[test]
fn the_own_task_misuse_panic_reports_the_callers_line() {
    use executor_bridge::Tokio;
    const PREFIX: &str =
        "executor-bridge: a task of a caller-driven Tokio runtime called its bridge";
    type Case = fn(Bridge<Tokio>);
    let cases: Vec<(&str, Case)> = vec![
        ("run", |b| b.run(|| nap(ms(1)))),
        ("try_run", |b| {
            let _ = b.try_run(|| nap(ms(1)));
        }),
        ("run_scoped", |b| b.run_scoped(|| nap(ms(1)))),
        ("run_timeout", |b| {
            let _ = b.run_timeout(Duration::from_secs(LIMIT), || nap(ms(1)));
        }),
        ("iter's next", |b| {
            let _ = b.iter(|| futures_lite::stream::iter([1])).next();
        }),
        ("iter_direct's next", |b| {
            let mut it = b.iter_direct(|| futures_lite::stream::once_future(nap(ms(1))));
            let _ = it.next();
        }),
        ("next_timeout", |b| {
            let _ = b
                .iter(|| futures_lite::stream::iter([1]))
                .next_timeout(Duration::from_secs(LIMIT));
        }),
        ("sink's send", |b| {
            let sink = b.sink(1, |_items: executor_bridge::SinkStream<u8>| async {});
            let _ = sink.send(1);
        }),
        ("sink's close", |b| {
            let sink = b.sink(1, |_items: executor_bridge::SinkStream<u8>| async {});
            sink.close();
        }),
    ];
    let mut failures = Vec::new();
    for (what, case) in cases {
        let b = Bridge::new(Tokio::new());
        let got = catch_unwind(AssertUnwindSafe(|| {
            panic_file(PREFIX, move || {
                let inner = b.clone();
                b.run(move || async move {
                    if let Err(e) = tokio::spawn(async move { case(inner) }).await {
                        panic::resume_unwind(e.into_panic());
                    }
                })
            })
        }));
        match got {
            Ok(file) if file == file!() => {}
            Ok(file) => failures.push(format!("{what}: reported in {file}")),
            Err(p) => failures.push(format!("{what}: {}", message(&*p).unwrap_or_default())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));
}
