//! Helpers shared by the integration tests: a watchdog that turns a hang into
//! a failure, and thread counting.
#![allow(dead_code)]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` on a fresh thread and fails the test if it has not returned after
/// `secs` seconds. A panic inside `f` is resumed here with its payload.
#[track_caller]
pub fn watchdog<T, F>(secs: u64, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(());
            out
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join().expect("join") {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: the test hung for more than {secs} s")
        }
    }
}

/// Connects to `addr` from a fresh thread, which reads until the peer closes
/// and returns what it read as text.
pub fn read_all_from(addr: std::net::SocketAddr) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        use std::io::Read;
        let mut conn = std::net::TcpStream::connect(addr).expect("connect");
        let mut got = String::new();
        conn.read_to_string(&mut got).expect("read");
        got
    })
}

/// Names of this process's threads, as the kernel reports them (at most 15
/// bytes each).
pub fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            if let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) {
                names.push(name.trim_end().to_owned());
            }
        }
    }
    names
}

/// Number of threads of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    thread_names()
        .iter()
        .filter(|n| n.starts_with(prefix))
        .count()
}

/// Number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Polls `cond` every millisecond until it holds or `limit` passes; returns
/// whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Pieces of the cross-runtime suite: drop flags, panic payloads, a
/// runtime-free timer, and the call paths `bridge_suite!` runs each check on.
pub mod suite {
    use std::any::Any;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    use executor_bridge::{Bridge, Runtime};

    /// The watchdog limit of the suite, in seconds.
    pub const LIMIT: u64 = 30;

    /// Sets its flag when dropped.
    #[derive(Debug)]
    pub struct DropFlag(Arc<AtomicBool>);

    impl DropFlag {
        /// A guard and the flag it sets on drop.
        pub fn new() -> (DropFlag, Arc<AtomicBool>) {
            let flag = Arc::new(AtomicBool::new(false));
            (DropFlag(Arc::clone(&flag)), flag)
        }
    }

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Whether a [`DropFlag`] was dropped.
    pub fn is_set(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }

    /// A panic payload that is neither `&str` nor `String`.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Payload(pub u32);

    /// Panics with `payload` as it is (`std::panic::panic_any`), typed as any
    /// value so it fits in a future's or a factory's body.
    pub fn fail<T>(payload: impl Any + Send + 'static) -> T {
        std::panic::panic_any(payload)
    }

    /// The text of a `&str` or `String` panic payload.
    pub fn message(payload: &(dyn Any + Send)) -> Option<String> {
        if let Some(s) = payload.downcast_ref::<&str>() {
            Some((*s).to_owned())
        } else {
            payload.downcast_ref::<String>().cloned()
        }
    }

    /// A timer that needs no runtime: a helper thread completes it. (The
    /// helper is named, or it would show its creator's name in
    /// `/proc/self/task` and be counted as a loop thread.)
    pub async fn thread_sleep(d: Duration) {
        let (tx, rx) = async_channel::bounded::<()>(1);
        thread::Builder::new()
            .name("suite-timer".into())
            .spawn(move || {
                thread::sleep(d);
                let _ = tx.send_blocking(());
            })
            .expect("spawn a timer thread");
        let _ = rx.recv().await;
    }

    /// Where a check's bridge calls are made from.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Path {
        /// A plain thread: calls run inline.
        Inline,
        /// Inside a bridged future: calls are nested, so they hop.
        Nested,
        /// Inside a tokio current_thread runtime: calls hop.
        #[cfg(feature = "tokio")]
        CurrentThread,
    }

    /// Every path available with the enabled features.
    pub fn paths() -> Vec<Path> {
        #[allow(unused_mut)]
        let mut paths = vec![Path::Inline, Path::Nested];
        #[cfg(feature = "tokio")]
        paths.push(Path::CurrentThread);
        paths
    }

    /// Runs `f` with a clone of `bridge`, from `path`, under the watchdog.
    #[track_caller]
    pub fn on_path<R, T, F>(bridge: &Bridge<R>, path: Path, f: F) -> T
    where
        R: Runtime,
        T: Send + 'static,
        F: FnOnce(Bridge<R>) -> T + Send + 'static,
    {
        let bridge = bridge.clone();
        super::watchdog(LIMIT, move || match path {
            Path::Inline => f(bridge),
            Path::Nested => {
                let inner = bridge.clone();
                bridge.run(move || async move { f(inner) })
            }
            #[cfg(feature = "tokio")]
            Path::CurrentThread => ::tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a current_thread runtime")
                .block_on(async move { f(bridge) }),
        })
    }
}

/// Calling contexts for checks that run the same code from each: a plain
/// thread, a nested call, and with "tokio" a current_thread runtime and a
/// multi_thread worker task.
pub mod ctx {
    use executor_bridge::{Bridge, Pollster};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Ctx {
        /// A plain thread: calls run inline.
        Plain,
        /// Inside a future run by another bridge: calls hop.
        Nested,
        /// Inside a current_thread runtime: calls hop.
        #[cfg(feature = "tokio")]
        CurrentThread,
        /// A task on a multi_thread worker: calls hand off.
        #[cfg(feature = "tokio")]
        Worker,
    }

    pub fn contexts() -> Vec<Ctx> {
        vec![
            Ctx::Plain,
            Ctx::Nested,
            #[cfg(feature = "tokio")]
            Ctx::CurrentThread,
            #[cfg(feature = "tokio")]
            Ctx::Worker,
        ]
    }

    /// Runs `f` in `ctx`; a panic in `f` resumes here with its payload.
    pub fn in_ctx<T: Send + 'static>(ctx: Ctx, f: impl FnOnce() -> T + Send + 'static) -> T {
        match ctx {
            Ctx::Plain => f(),
            Ctx::Nested => Bridge::new(Pollster).run(move || async move { f() }),
            #[cfg(feature = "tokio")]
            Ctx::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move { f() }),
            #[cfg(feature = "tokio")]
            Ctx::Worker => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    match tokio::spawn(async move { f() }).await {
                        Ok(v) => v,
                        Err(e) => std::panic::resume_unwind(e.into_panic()),
                    }
                }),
        }
    }
}

/// One `#[test]` per enabled adapter for a generic check, each under a
/// watchdog of `secs` seconds; the check gets a maker of the adapter and a
/// short tag for thread names. Needs `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! per_adapter {
    ($check:ident, $secs:expr) => {
        mod $check {
            #[test]
            fn on_pollster() {
                crate::common::watchdog($secs, || super::$check(|| executor_bridge::Pollster, "p"));
            }
            #[cfg(feature = "tokio")]
            #[test]
            fn on_tokio() {
                crate::common::watchdog($secs, || super::$check(executor_bridge::Tokio::new, "t"));
            }
            #[cfg(feature = "smol")]
            #[test]
            fn on_smol() {
                crate::common::watchdog($secs, || super::$check(executor_bridge::Smol::new, "s"));
            }
            #[cfg(feature = "async-std")]
            #[test]
            fn on_async_std() {
                crate::common::watchdog($secs, || super::$check(|| executor_bridge::AsyncStd, "a"));
            }
        }
    };
}

/// The generic tests, the same for every adapter: outputs, panics, timeouts,
/// `!Send` futures, concurrency inside one call, and `BlockingIter`'s
/// properties, each on every [`suite::Path`].
///
/// `bridge_suite!(RuntimeType, runtime_expr, sleep_fn)`, where
/// `sleep_fn(Duration)` returns a future driven by that runtime's timer. Needs
/// `#[macro_use] mod common;`. The tests land in a module `generic`.
#[allow(unused_macros)]
macro_rules! bridge_suite {
    ($rt_ty:ty, $rt:expr, $sleep:path) => {
        mod generic {
            #![allow(unused_imports)]
            use super::*;

            use ::executor_bridge::{Bridge, Builder, Error};
            use ::futures_lite::{stream, Stream, StreamExt};
            use ::std::panic::{catch_unwind, AssertUnwindSafe};
            use ::std::rc::Rc;
            use ::std::sync::atomic::{AtomicUsize, Ordering};
            use ::std::sync::Arc;
            use ::std::thread;
            use ::std::time::{Duration, Instant};
            use $crate::common::eventually;
            use $crate::common::suite::{self as kit, fail, is_set, on_path, DropFlag, Payload};

            type B = Bridge<$rt_ty>;

            fn bridge() -> B {
                Bridge::new($rt)
            }

            fn builder() -> Builder<$rt_ty> {
                Bridge::builder($rt)
            }

            /// Sleeps on the adapter's own timer.
            async fn nap(ms: u64) {
                $sleep(Duration::from_millis(ms)).await;
            }

            /// `0..n`, a nap before each item.
            fn ticks(n: u32) -> impl Stream<Item = u32> {
                stream::unfold(0u32, move |i| async move {
                    if i < n {
                        nap(2).await;
                        Some((i, i + 1))
                    } else {
                        None
                    }
                })
            }

            fn bad_factory() -> ::std::future::Ready<u32> {
                panic!("factory-boom")
            }

            #[test]
            fn run_returns_the_output() {
                for path in kit::paths() {
                    let out = on_path(&bridge(), path, |b| {
                        let ready = b.run(|| async { 7u32 });
                        let pending = b.run(|| async {
                            nap(5).await;
                            35u32
                        });
                        let ok = b.try_run(|| async {
                            nap(1).await;
                            "ok"
                        });
                        (ready + pending, ok.unwrap())
                    });
                    assert_eq!(out, (42, "ok"), "{path:?}");
                }
            }

            #[test]
            fn calls_in_sequence_each_return_their_own_output() {
                for path in kit::paths() {
                    let outs = on_path(&bridge(), path, |b| {
                        (0..40u32)
                            .map(|i| {
                                b.run(move || async move {
                                    nap(1).await;
                                    i * 2
                                })
                            })
                            .collect::<Vec<_>>()
                    });
                    assert_eq!(outs, (0..40).map(|i| i * 2).collect::<Vec<_>>(), "{path:?}");
                }
            }

            #[test]
            fn run_resumes_a_str_panic_payload() {
                for path in kit::paths() {
                    let payload = on_path(&bridge(), path, |b| {
                        catch_unwind(AssertUnwindSafe(|| {
                            b.run(|| async {
                                nap(1).await;
                                panic!("boom-str")
                            })
                        }))
                        .unwrap_err()
                    });
                    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom-str"), "{path:?}");
                }
            }

            #[test]
            fn run_resumes_a_string_panic_payload() {
                for path in kit::paths() {
                    let payload = on_path(&bridge(), path, |b| {
                        catch_unwind(AssertUnwindSafe(|| {
                            b.run(|| async {
                                nap(1).await;
                                let user = 7;
                                panic!("no such user {user}")
                            })
                        }))
                        .unwrap_err()
                    });
                    assert_eq!(
                        payload.downcast_ref::<String>().map(String::as_str),
                        Some("no such user 7"),
                        "{path:?}"
                    );
                }
            }

            #[test]
            fn run_resumes_a_custom_panic_payload() {
                for path in kit::paths() {
                    let payload = on_path(&bridge(), path, |b| {
                        catch_unwind(AssertUnwindSafe(|| {
                            b.run(|| async {
                                nap(1).await;
                                fail::<u32>(Payload(7))
                            })
                        }))
                        .unwrap_err()
                    });
                    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(7)), "{path:?}");
                }
            }

            #[test]
            fn try_run_returns_the_panic_as_an_error() {
                for path in kit::paths() {
                    let (str_err, custom_err) = on_path(&bridge(), path, |b| {
                        let s = b
                            .try_run(|| async {
                                nap(1).await;
                                fail::<u32>("boom")
                            })
                            .unwrap_err();
                        let c = b
                            .try_run(|| async {
                                nap(1).await;
                                fail::<u32>(Payload(9))
                            })
                            .unwrap_err();
                        (s, c)
                    });
                    assert!(str_err.is_panic(), "{path:?}");
                    assert!(!str_err.is_timeout(), "{path:?}");
                    assert_eq!(str_err.to_string(), "the bridged future panicked: boom", "{path:?}");
                    assert_eq!(str_err.into_panic().downcast_ref::<&str>(), Some(&"boom"), "{path:?}");
                    assert!(custom_err.is_panic(), "{path:?}");
                    assert_eq!(
                        custom_err.into_panic().downcast_ref::<Payload>(),
                        Some(&Payload(9)),
                        "{path:?}"
                    );
                }
            }

            #[test]
            fn a_panicking_factory_is_reported_like_a_panicking_future() {
                for path in kit::paths() {
                    let (run, try_run, timed, iter) = on_path(&bridge(), path, |b| {
                        let run = catch_unwind(AssertUnwindSafe(|| b.run(bad_factory))).unwrap_err();
                        let try_run = b.try_run(bad_factory).unwrap_err();
                        let timed = b.run_timeout(Duration::from_secs(30), bad_factory).unwrap_err();
                        let mut it =
                            b.iter(|| -> stream::Iter<::std::ops::Range<u32>> { fail(Payload(4)) });
                        let iter = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
                        (run, try_run, timed, iter)
                    });
                    assert_eq!(run.downcast_ref::<&str>(), Some(&"factory-boom"), "{path:?}");
                    assert!(try_run.is_panic(), "{path:?}");
                    assert_eq!(try_run.into_panic().downcast_ref::<&str>(), Some(&"factory-boom"));
                    assert!(timed.is_panic(), "{path:?}");
                    assert_eq!(iter.downcast_ref::<Payload>(), Some(&Payload(4)), "{path:?}");
                }
            }

            #[test]
            fn the_bridge_stays_usable_after_panics() {
                for path in kit::paths() {
                    let b = bridge();
                    let (sum, threads) = on_path(&b, path, |b| {
                        let mut sum = 0;
                        for i in 0..20u32 {
                            let r = b.try_run(move || async move {
                                nap(1).await;
                                if i % 2 == 0 {
                                    fail::<u32>(Payload(i))
                                } else {
                                    i
                                }
                            });
                            match r {
                                Ok(v) => sum += v,
                                Err(e) => assert!(e.is_panic()),
                            }
                        }
                        let last = b.run(|| async {
                            nap(1).await;
                            1000
                        });
                        (sum + last, b.threads())
                    });
                    assert_eq!(sum, 1100, "{path:?}");
                    // A panicking call must not cost a loop thread each time.
                    assert!(threads <= 4, "{path:?}: {threads} loop threads after 20 calls");
                }
            }

            #[test]
            fn run_timeout_gives_up_near_the_deadline_and_drops_the_future() {
                let timeout = Duration::from_millis(150);
                for path in kit::paths() {
                    for on_timer in [false, true] {
                        let (err, elapsed, dropped) = on_path(&bridge(), path, move |b| {
                            let (guard, flag) = DropFlag::new();
                            let start = Instant::now();
                            let err = b
                                .run_timeout(timeout, move || async move {
                                    let _guard = guard;
                                    if on_timer {
                                        nap(60_000).await;
                                    } else {
                                        ::std::future::pending::<()>().await;
                                    }
                                    1u32
                                })
                                .unwrap_err();
                            (err, start.elapsed(), is_set(&flag))
                        });
                        let what = format!("{path:?}, on_timer {on_timer}");
                        assert!(err.is_timeout(), "{what}: {err:?}");
                        assert!(!err.is_panic(), "{what}");
                        assert!(matches!(err, Error::Timeout(d) if d == timeout), "{what}");
                        assert!(dropped, "{what}: the future was not dropped when run_timeout returned");
                        assert!(elapsed >= timeout, "{what}: returned early, after {elapsed:?}");
                        assert!(elapsed < timeout + Duration::from_secs(10), "{what}: {elapsed:?}");
                    }
                }
            }

            #[test]
            fn run_timeout_returns_the_output_in_time() {
                for path in kit::paths() {
                    let (out, elapsed, max) = on_path(&bridge(), path, |b| {
                        let start = Instant::now();
                        let out = b.run_timeout(Duration::from_secs(30), || async {
                            let rc = Rc::new(5u32);
                            nap(10).await;
                            *rc
                        });
                        let max = b.run_timeout(Duration::MAX, || async {
                            nap(1).await;
                            6u32
                        });
                        (out.unwrap(), start.elapsed(), max.unwrap())
                    });
                    assert_eq!((out, max), (5, 6), "{path:?}");
                    assert!(elapsed < Duration::from_secs(10), "{path:?}: {elapsed:?}");
                }
            }

            #[test]
            fn run_timeout_reports_panics() {
                struct PanicOnDrop;
                impl Drop for PanicOnDrop {
                    fn drop(&mut self) {
                        panic!("drop-boom");
                    }
                }
                for path in kit::paths() {
                    let (in_future, in_destructor) = on_path(&bridge(), path, |b| {
                        let a = b
                            .run_timeout(Duration::from_secs(30), || async {
                                nap(1).await;
                                fail::<u32>(Payload(3))
                            })
                            .unwrap_err();
                        // The destructor panics while the future is cancelled.
                        let d = b
                            .run_timeout(Duration::from_millis(50), || async {
                                let _p = PanicOnDrop;
                                ::std::future::pending::<u32>().await
                            })
                            .unwrap_err();
                        (a, d)
                    });
                    assert!(in_future.is_panic(), "{path:?}");
                    assert_eq!(in_future.into_panic().downcast_ref::<Payload>(), Some(&Payload(3)));
                    assert!(in_destructor.is_panic(), "{path:?}: {in_destructor:?}");
                    assert_eq!(in_destructor.to_string(), "the bridged future panicked: drop-boom");
                }
            }

            #[test]
            fn not_send_futures_and_streams_run_on_every_path() {
                for path in kit::paths() {
                    let out = on_path(&bridge(), path, |b| {
                        let run = b.run(|| async {
                            let rc = Rc::new(1u32);
                            nap(2).await;
                            *rc
                        });
                        let try_run = b
                            .try_run(|| async {
                                let rc = Rc::new(2u32);
                                nap(2).await;
                                *rc
                            })
                            .unwrap();
                        let timed = b
                            .run_timeout(Duration::from_secs(30), || async {
                                let rc = Rc::new(3u32);
                                nap(2).await;
                                *rc
                            })
                            .unwrap();
                        let iter: Vec<u32> = b
                            .iter(|| {
                                let rc = Rc::new(10u32);
                                stream::iter(0..3u32).then(move |i| {
                                    let rc = Rc::clone(&rc);
                                    async move {
                                        nap(1).await;
                                        *rc + i
                                    }
                                })
                            })
                            .collect();
                        (run, try_run, timed, iter)
                    });
                    assert_eq!(out, (1, 2, 3, vec![10, 11, 12]), "{path:?}");
                }
            }

            #[test]
            fn joined_sleeps_run_concurrently_inside_one_call() {
                for path in kit::paths() {
                    let (out, elapsed) = on_path(&bridge(), path, |b| {
                        let start = Instant::now();
                        let out = b.run(|| async {
                            let one = async {
                                nap(200).await;
                                1u32
                            };
                            let two = async {
                                nap(200).await;
                                2u32
                            };
                            let three = async {
                                nap(200).await;
                                3u32
                            };
                            ::futures::join!(one, two, three)
                        });
                        (out, start.elapsed())
                    });
                    assert_eq!(out, (1, 2, 3), "{path:?}");
                    assert!(elapsed >= Duration::from_millis(200), "{path:?}: {elapsed:?}");
                    // In sequence they would take 600 ms.
                    assert!(elapsed < Duration::from_millis(550), "{path:?}: {elapsed:?}");
                }
            }

            #[test]
            fn iter_is_ordered_and_fused() {
                for path in kit::paths() {
                    let (timed, ready, after_end, finished) = on_path(&bridge(), path, |b| {
                        let timed: Vec<u32> = b.iter(|| ticks(5)).collect();
                        let mut it = b.iter(|| stream::iter(0..10_000u32));
                        let ready: Vec<u32> = it.by_ref().collect();
                        let after_end: Vec<Option<u32>> = (0..3).map(|_| it.next()).collect();
                        (timed, ready, after_end, it.is_finished())
                    });
                    assert_eq!(timed, [0, 1, 2, 3, 4], "{path:?}");
                    assert_eq!(ready, (0..10_000).collect::<Vec<_>>(), "{path:?}");
                    assert_eq!(after_end, [None, None, None], "{path:?}");
                    assert!(finished, "{path:?}");
                }
            }

            #[test]
            fn iter_is_live() {
                for path in kit::paths() {
                    let out = on_path(&bridge(), path, |b| {
                        // The second item exists only once the consumer has
                        // received the first: an iterator that waited to
                        // fill a batch would hang here.
                        let (tx, rx) = ::async_channel::bounded::<u32>(1);
                        let mut it = b.iter(move || {
                            stream::unfold((0u32, rx), |(i, rx)| async move {
                                match i {
                                    0 => Some((100, (1, rx))),
                                    1 => {
                                        let v = rx.recv().await.ok()?;
                                        Some((v, (2, rx)))
                                    }
                                    _ => None,
                                }
                            })
                        });
                        let first = it.next();
                        tx.send_blocking(200).unwrap();
                        (first, it.next(), it.next())
                    });
                    assert_eq!(out, (Some(100), Some(200), None), "{path:?}");
                }
            }

            #[test]
            fn iter_keeps_its_stream_bounded() {
                for cap in [1usize, 64] {
                    let b = builder().stream_capacity(cap).build();
                    let made = Arc::new(AtomicUsize::new(0));
                    let counter = Arc::clone(&made);
                    let mut it = b.iter(move || {
                        stream::repeat_with(move || counter.fetch_add(1, Ordering::SeqCst))
                    });
                    assert_eq!(it.next(), Some(0));
                    // The consumer stops; the producer must stall.
                    let bound = cap + cap / 8 + 2;
                    for _ in 0..2 {
                        thread::sleep(Duration::from_millis(200));
                        let n = made.load(Ordering::SeqCst);
                        assert!(n <= bound, "capacity {cap}: the stream ran {n} items ahead");
                    }
                    // It resumes when the consumer does.
                    let rest: Vec<usize> = it.by_ref().take(500).collect();
                    assert_eq!(rest, (1..501).collect::<Vec<_>>(), "capacity {cap}");
                }
            }

            #[test]
            fn dropping_the_iterator_cancels_a_pending_stream() {
                for path in kit::paths() {
                    for kind in 0..3 {
                        let dropped = on_path(&bridge(), path, move |b| {
                            let (guard, flag) = DropFlag::new();
                            let mut it = b.iter(move || -> ::std::pin::Pin<Box<dyn Stream<Item = u32>>> {
                                match kind {
                                    // waiting on nothing
                                    0 => Box::pin(stream::once(1u32).chain(stream::unfold(
                                        guard,
                                        |g| async move {
                                            ::std::future::pending::<()>().await;
                                            Some((2u32, g))
                                        },
                                    ))),
                                    // waiting on the adapter's timer
                                    1 => Box::pin(stream::once(1u32).chain(stream::unfold(
                                        guard,
                                        |g| async move {
                                            nap(60_000).await;
                                            Some((2u32, g))
                                        },
                                    ))),
                                    // waiting for room in a full channel
                                    _ => Box::pin(stream::repeat_with(move || {
                                        let _keep = &guard;
                                        1u32
                                    })),
                                }
                            });
                            assert_eq!(it.next(), Some(1));
                            thread::sleep(Duration::from_millis(20));
                            drop(it);
                            eventually(Duration::from_secs(5), || is_set(&flag))
                        });
                        assert!(dropped, "{path:?}, kind {kind}: the stream was not dropped");
                    }
                }
            }

            #[test]
            fn a_panic_in_the_stream_resumes_in_next() {
                for path in kit::paths() {
                    let (first, text, custom, after) = on_path(&bridge(), path, |b| {
                        let mut it = b.iter(|| {
                            ticks(5).map(|x| if x == 2 { panic!("stream-boom-{x}") } else { x })
                        });
                        let first = (it.next(), it.next());
                        let text = catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
                        let after = (it.next(), it.next(), it.is_finished());
                        let mut custom = b.iter(|| {
                            ticks(3).map(|x| if x == 1 { fail::<u32>(Payload(x)) } else { x })
                        });
                        assert_eq!(custom.next(), Some(0));
                        let custom = catch_unwind(AssertUnwindSafe(|| custom.next())).unwrap_err();
                        (first, text, custom, after)
                    });
                    assert_eq!(first, (Some(0), Some(1)), "{path:?}");
                    assert_eq!(kit::message(&*text).as_deref(), Some("stream-boom-2"), "{path:?}");
                    assert_eq!(custom.downcast_ref::<Payload>(), Some(&Payload(1)), "{path:?}");
                    assert_eq!(after, (None, None, true), "{path:?}");
                }
            }

            #[test]
            fn items_yielded_before_a_panic_arrive_before_it() {
                for path in kit::paths() {
                    let (items, text) = on_path(&bridge(), path, |b| {
                        // 0, 1 and 2 are ready at once, then the stream panics:
                        // they were yielded, so the consumer must get them.
                        let mut it = b.iter(|| {
                            stream::iter(0..5u32).map(|x| if x == 3 { panic!("stream-boom-{x}") } else { x })
                        });
                        let mut items = Vec::new();
                        let text = loop {
                            match catch_unwind(AssertUnwindSafe(|| it.next())) {
                                Ok(Some(x)) => items.push(x),
                                Ok(None) => break None,
                                Err(payload) => break kit::message(&*payload),
                            }
                        };
                        (items, text)
                    });
                    assert_eq!(text.as_deref(), Some("stream-boom-3"), "{path:?}");
                    assert_eq!(items, [0, 1, 2], "{path:?}: items yielded before the panic were lost");
                }
            }

            #[test]
            fn next_timeout_times_out_then_delivers() {
                for path in kit::paths() {
                    let (err, waited, item, end, buffered) = on_path(&bridge(), path, |b| {
                        let mut it = b.iter(|| {
                            stream::once_future(async {
                                nap(300).await;
                                9u32
                            })
                        });
                        let start = Instant::now();
                        let err = it.next_timeout(Duration::from_millis(20)).unwrap_err();
                        let waited = start.elapsed();
                        let item = it.next_timeout(Duration::from_secs(30)).unwrap();
                        let end = it.next_timeout(Duration::from_secs(30)).unwrap();
                        // Buffered items come back without waiting.
                        let mut ready = b.iter(|| stream::iter(0..3u32));
                        assert_eq!(ready.next(), Some(0));
                        let buffered = ready.next_timeout(Duration::ZERO).unwrap();
                        (err, waited, item, end, buffered)
                    });
                    assert!(err.is_timeout(), "{path:?}: {err:?}");
                    assert!(waited >= Duration::from_millis(20), "{path:?}: {waited:?}");
                    assert!(waited < Duration::from_secs(10), "{path:?}: {waited:?}");
                    assert_eq!((item, end, buffered), (Some(9), None, Some(1)), "{path:?}");
                }
            }

            #[test]
            fn size_hint_counts_what_is_buffered() {
                for path in kit::paths() {
                    let hints = on_path(&bridge(), path, |b| {
                        let mut it = b.iter(|| stream::iter(1..=3u32));
                        let mut hints = vec![it.size_hint()];
                        assert_eq!(it.next(), Some(1));
                        hints.push(it.size_hint());
                        assert_eq!(it.buffered(), 2);
                        assert_eq!(it.by_ref().collect::<Vec<_>>(), [2, 3]);
                        hints.push(it.size_hint());
                        // On a slow stream the hint never promises too much.
                        let mut slow = b.iter(|| ticks(6));
                        let mut left = 6;
                        while slow.next().is_some() {
                            left -= 1;
                            let (low, high) = slow.size_hint();
                            assert!(low <= left, "{low} > {left}");
                            assert!(high.is_none_or(|h| h >= left));
                        }
                        hints
                    });
                    assert_eq!(hints, [(0, None), (2, None), (0, Some(0))], "{path:?}");
                }
            }

            #[test]
            fn an_iterator_can_be_consumed_on_another_thread() {
                for path in kit::paths() {
                    let (first, rest) = on_path(&bridge(), path, |b| {
                        let mut it = b.iter(|| ticks(6));
                        let first = it.next();
                        let rest = thread::spawn(move || it.collect::<Vec<_>>()).join().unwrap();
                        (first, rest)
                    });
                    assert_eq!(first, Some(0), "{path:?}");
                    assert_eq!(rest, [1, 2, 3, 4, 5], "{path:?}");
                }
            }
        }
    };
}
