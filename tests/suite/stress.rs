//! Load: a randomized mix of every kind of call from every calling context
//! on a bridge with a tiny thread limit, bounded in time, then the
//! invariants (every call answered correctly, nothing queued, the thread
//! count exact, threads gone after the idle timeout); and the fixed loads of
//! the old suite (many callers on the caller's thread, nested, hopping, many
//! iterators dropped early, long streams, many timeouts at once).
//!
//! `EB_STRESS_SECS` sets the randomized run's length per adapter (default
//! 1.5 s), `EB_STRESS_SEED` its seed (printed on every run).

use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{Bridge, Runtime};
use futures_lite::{stream, Stream, StreamExt};

use crate::common::{
    eventually, is_set, message, per_runtime, watchdog, Ctx, DropFlag, Payload, TestRuntime,
};
use crate::pool::{alive, assert_all_gone, assert_settled, ms, slow, stats, tagged, Hopping, LONG};

/// A small, seedable generator (splitmix64): no dependency, reproducible.
#[derive(Clone, Copy, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn ms(&mut self, max: u64) -> Duration {
        ms(self.below(max + 1))
    }
}

fn stress_seed() -> u64 {
    match std::env::var("EB_STRESS_SEED") {
        Ok(s) => s.parse().expect("EB_STRESS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

fn stress_time() -> Duration {
    let secs: f64 = std::env::var("EB_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.5);
    Duration::from_secs_f64(secs)
}

/// What the callers saw.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    items: AtomicU64,
    timeouts: AtomicU64,
    panics: AtomicU64,
    /// Timed-out futures still being dropped when `run_timeout` returned.
    late_drops: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 20 {
            failures.push(what);
        }
    }

    fn check<T: PartialEq + std::fmt::Debug>(&self, op: &str, got: T, want: T) {
        if got != want {
            self.fail(format!("{op}: got {got:?}, want {want:?}"));
        }
    }
}

/// `0..n`, each item after a short sleep on the runtime's timer.
fn ticks<R: TestRuntime>(n: u32, rng: &mut Rng) -> impl Stream<Item = u32> + Send + 'static {
    let nap = rng.ms(1);
    stream::iter(0..n).then(move |i| async move {
        R::sleep(nap).await;
        i
    })
}

/// One random operation on `b` (or on `hop`, the same adapter with calls
/// that hop), checked.
fn one_op<R: TestRuntime, Q: Runtime>(
    b: &Bridge<R>,
    hop: &Bridge<Q>,
    eph: &str,
    rng: &mut Rng,
    tally: &Tally,
) {
    let v = rng.below(1_000_000) as u32;
    let op = rng.below(17);
    tally.ops.fetch_add(1, SeqCst);
    match op {
        0 => tally.check("run ready", b.run(move || async move { v }), v),
        1 => {
            let nap = rng.ms(2);
            let got = b.run(move || async move {
                R::sleep(nap).await;
                v * 2
            });
            tally.check("run", got, v * 2);
        }
        2 => {
            let inner = b.clone();
            let nap = rng.ms(1);
            let got = b.run(move || async move {
                inner.run(move || async move {
                    R::sleep(nap).await;
                    v
                }) + 1
            });
            tally.check("nested run", got, v + 1);
        }
        3 => {
            let inner = b.clone();
            let got =
                b.run(move || async move { inner.run_timeout(LONG, move || async move { v }) });
            tally.check("nested run_timeout", got.ok(), Some(v));
        }
        4 => {
            // A short deadline, a future that may or may not make it.
            let (deadline, nap) = (rng.ms(4), rng.ms(4));
            let (guard, dropped) = DropFlag::new();
            let got = b.run_timeout(deadline, move || async move {
                let _guard = guard;
                R::sleep(nap).await;
                v
            });
            match got {
                Ok(got) => tally.check("run_timeout in time", got, v),
                Err(e) if e.is_timeout() => {
                    tally.timeouts.fetch_add(1, SeqCst);
                    // Dropped by the time it returns, unless its loop thread
                    // was kept from running for the grace period (a loaded
                    // machine): then very soon after; never leaked.
                    if !is_set(&dropped) {
                        tally.late_drops.fetch_add(1, SeqCst);
                        if !eventually(Duration::from_secs(10), || is_set(&dropped)) {
                            tally.fail("a timed-out future was never dropped".into());
                        }
                    }
                }
                Err(e) => tally.fail(format!("run_timeout: {e:?}")),
            }
        }
        5 => tally.check(
            "run_timeout",
            b.run_timeout(LONG, move || async move { v }).ok(),
            Some(v),
        ),
        6 => {
            let err = b
                .try_run(move || async move { panic!("boom {v}") })
                .unwrap_err();
            tally.panics.fetch_add(1, SeqCst);
            tally.check(
                "try_run panic",
                err.panic_message().map(str::to_owned),
                Some(format!("boom {v}")),
            );
        }
        7 => {
            let payload = catch_unwind(AssertUnwindSafe(|| {
                b.run(move || async move {
                    R::sleep(ms(1)).await;
                    panic_any(Payload(v))
                })
            }))
            .unwrap_err();
            tally.panics.fetch_add(1, SeqCst);
            tally.check(
                "run panic",
                payload.downcast_ref::<Payload>(),
                Some(&Payload(v)),
            );
        }
        8 => {
            let n = rng.below(5) as u32;
            let items: Vec<u32> = b.iter(move || stream::iter(0..n)).collect();
            tally.items.fetch_add(items.len() as u64, SeqCst);
            tally.check("iter", items, (0..n).collect());
        }
        9 => {
            // Dropped early, its stream endless.
            let k = rng.below(4) as usize;
            let (guard, dropped) = DropFlag::new();
            let items: Vec<u32> = b
                .iter(move || {
                    stream::iter(0u32..).map(move |i| {
                        let _ = &guard;
                        i
                    })
                })
                .take(k)
                .collect();
            tally.check("iter dropped early", items, (0..k as u32).collect());
            if !eventually(Duration::from_secs(10), || is_set(&dropped)) {
                tally.fail("an iterator's stream outlived it".into());
            }
        }
        10 => {
            let n = rng.below(4) as u32;
            let stream = ticks::<R>(n, rng);
            let items: Vec<u32> = b.iter_direct(move || stream).collect();
            tally.items.fetch_add(items.len() as u64, SeqCst);
            tally.check("iter_direct", items, (0..n).collect());
        }
        11 => {
            let k = rng.below(3) as usize;
            let stream = ticks::<R>(10, rng);
            let items: Vec<u32> = b.iter_direct(move || stream).take(k).collect();
            tally.check("iter_direct dropped early", items, (0..k as u32).collect());
        }
        12 => {
            // A stream that panics after `k` items.
            let k = rng.below(3) as u32;
            let mut it = b.iter(move || {
                stream::iter(0..10u32).map(move |i| if i == k { panic_any(Payload(v)) } else { i })
            });
            let mut seen = Vec::new();
            let out = catch_unwind(AssertUnwindSafe(|| {
                for i in it.by_ref() {
                    seen.push(i);
                }
            }));
            tally.panics.fetch_add(1, SeqCst);
            tally.check("iter panic: items before it", seen, (0..k).collect());
            let payload = out.err();
            tally.check(
                "iter panic",
                payload.as_ref().and_then(|p| p.downcast_ref::<Payload>()),
                Some(&Payload(v)),
            );
        }
        13 => {
            // next_timeout with short deadlines: no item lost, none twice.
            let stream = ticks::<R>(3, rng);
            let mut it = if rng.below(2) == 0 {
                b.iter_direct(move || stream)
            } else {
                b.iter(move || stream)
            };
            let mut items = Vec::new();
            let mut rounds = 0;
            loop {
                rounds += 1;
                if rounds > 100_000 {
                    tally.fail("next_timeout never reached the end".into());
                    break;
                }
                match it.next_timeout(rng.ms(2)) {
                    Ok(Some(i)) => items.push(i),
                    Ok(None) => break,
                    Err(e) if e.is_timeout() => {
                        tally.timeouts.fetch_add(1, SeqCst);
                    }
                    Err(e) => {
                        tally.fail(format!("next_timeout: {e:?}"));
                        break;
                    }
                }
            }
            tally.check("next_timeout items", items, vec![0, 1, 2]);
        }
        14 => {
            // A clone made and dropped around a call.
            let c = b.clone();
            tally.check(
                "clone",
                c.run_timeout(LONG, move || async move { v }).ok(),
                Some(v),
            );
            drop(c);
        }
        15 => {
            // The same adapter, calls that hop (its `enter` says no).
            let inner = hop.clone();
            let got = hop.run(move || async move { inner.run(move || async move { v }) });
            tally.check("hop", got, v);
        }
        _ => {
            // A bridge of its own whose only clone goes while an iterator
            // and a call still use it.
            let eph = Bridge::builder(R::make())
                .thread_name(eph)
                .max_threads(1)
                .build();
            let it = eph.iter(|| slow(3));
            let direct = eph.iter_direct(|| stream::iter([7u32]));
            drop(eph);
            tally.check(
                "last clone dropped: iter",
                it.collect::<Vec<_>>(),
                vec![0, 1, 2],
            );
            tally.check(
                "last clone dropped: iter_direct",
                direct.collect::<Vec<_>>(),
                vec![7],
            );
        }
    }
}

fn randomized_stress<R: TestRuntime>() {
    let seed = stress_seed();
    eprintln!(
        "stress {}: seed {seed} (EB_STRESS_SEED={seed} to repeat)",
        R::NAME
    );
    let name = tagged::<R>("stRand");
    let hop_name = tagged::<R>("stHop");
    let eph_name = tagged::<R>("stEph");
    let bridge = Bridge::builder(R::make())
        .thread_name(&name)
        .max_threads(2)
        .idle_timeout(ms(300))
        .build();
    let hopping = Bridge::builder(Hopping(R::make()))
        .thread_name(&hop_name)
        .max_threads(2)
        .idle_timeout(ms(300))
        .build();
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + stress_time();
    let callers: Vec<_> = (0..6u64)
        .map(|k| {
            let (bridge, hopping, tally, eph) = (
                bridge.clone(),
                hopping.clone(),
                Arc::clone(&tally),
                eph_name.clone(),
            );
            let mut rng = Rng(seed ^ (k + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            thread::Builder::new()
                .name(format!("st-caller-{k}"))
                .spawn(move || {
                    let contexts = Ctx::all();
                    while Instant::now() < until {
                        let ctx = contexts[rng.below(contexts.len() as u64) as usize];
                        let mut local = Rng(rng.next());
                        let (hop, tally, eph) = (hopping.clone(), Arc::clone(&tally), eph.clone());
                        ctx.run(&bridge, move |b| {
                            for _ in 0..1 + local.below(8) {
                                one_op(&b, &hop, &eph, &mut local, &tally);
                            }
                        });
                    }
                })
                .unwrap()
        })
        .collect();
    for caller in callers {
        if let Err(payload) = caller.join() {
            panic!("seed {seed}: a caller died: {:?}", message(&*payload));
        }
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "seed {seed}: {failures:#?}");
    let ops = tally.ops.load(SeqCst);
    eprintln!(
        "stress {}: {ops} ops, {} items, {} timeouts ({} dropped late), {} panics",
        R::NAME,
        tally.items.load(SeqCst),
        tally.timeouts.load(SeqCst),
        tally.late_drops.load(SeqCst),
        tally.panics.load(SeqCst)
    );
    assert!(ops > 0);
    // At rest: nothing queued, every thread counted is alive and idle.
    assert_eq!(stats(&bridge).queued, 0, "seed {seed}");
    assert_eq!(stats(&hopping).queued, 0, "seed {seed}");
    assert_settled(&bridge, &name, &format!("seed {seed}"));
    assert_settled(&hopping, &hop_name, &format!("seed {seed}"));
    // Then gone after the idle timeout, the bridges still alive.
    assert!(
        eventually(Duration::from_secs(10), || bridge.threads()
            + hopping.threads()
            == 0
            && alive(&name) + alive(&hop_name) == 0),
        "seed {seed}: loop threads outlived the idle timeout: {:?} {:?}",
        stats(&bridge),
        stats(&hopping)
    );
    assert_all_gone(&eph_name, &format!("seed {seed}: bridges dropped"));
    // And the bridges still work.
    assert_eq!(bridge.run_timeout(LONG, || async { 1 }).unwrap(), 1);
}

per_runtime!(randomized_stress);

// ---------------------------------------------------------------------------
// Fixed loads.
// ---------------------------------------------------------------------------

const CALLERS: usize = 16;
const CALLS: u32 = 300;

fn expected() -> u64 {
    u64::from(CALLS) * u64::from(CALLS - 1) / 2
}

/// Runs `caller(bridge)` on `CALLERS` threads at once while sampling the
/// bridge's threads; returns each caller's result and the most loop threads
/// seen (counted by the bridge and by name).
fn load<R, T>(
    bridge: &Bridge<R>,
    name: &str,
    caller: impl Fn(Bridge<R>) -> T + Send + Sync + 'static,
) -> (Vec<T>, usize)
where
    R: Runtime,
    T: Send + 'static,
{
    let caller = Arc::new(caller);
    let start = Arc::new(Barrier::new(CALLERS));
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (bridge, done, name) = (bridge.clone(), Arc::clone(&done), name.to_owned());
        thread::spawn(move || {
            let mut most = 0;
            while !done.load(SeqCst) {
                most = most.max(bridge.threads()).max(alive(&name));
                thread::sleep(ms(1));
            }
            most
        })
    };
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (bridge, caller, start) = (bridge.clone(), Arc::clone(&caller), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                caller(bridge)
            })
        })
        .collect();
    let outs: Vec<T> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    done.store(true, SeqCst);
    (outs, monitor.join().unwrap())
}

/// `CALLS` calls, each pending once.
fn calls<R: TestRuntime>(b: &Bridge<R>) -> u64 {
    (0..CALLS)
        .map(|i| {
            b.run(move || async move {
                futures_lite::future::yield_now().await;
                u64::from(i)
            })
        })
        .sum()
}

fn calls_from_many_plain_threads_start_no_thread<R: TestRuntime>() {
    let name = tagged::<R>("stPlain");
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    let (sums, most) = load(&bridge, &name, |b| calls(&b));
    assert!(sums.iter().all(|&s| s == expected()), "{sums:?}");
    assert_eq!(most, 0, "calls on plain threads started loop threads");
}

fn nested_calls_from_many_threads<R: TestRuntime>() {
    let name = tagged::<R>("stNest");
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    let (sums, most) = load(&bridge, &name, |b| {
        let inner = b.clone();
        let parked = b.run(move || async move { calls(&inner) });
        let inner = b.clone();
        let hopped = b.run(move || async move {
            (0..CALLS / 10)
                .map(|i| {
                    inner
                        .run_timeout(LONG, move || async move { u64::from(i) })
                        .unwrap()
                })
                .sum::<u64>()
        });
        (parked, hopped)
    });
    let tenth = u64::from(CALLS / 10) * u64::from(CALLS / 10 - 1) / 2;
    assert!(sums.iter().all(|&s| s == (expected(), tenth)), "{sums:?}");
    // One nested hop in flight per caller.
    assert!(most <= CALLERS, "{most} loop threads for {CALLERS} callers");
}

#[cfg(feature = "tokio")]
fn hops_from_many_current_thread_runtimes_stay_within_max_threads<R: TestRuntime>() {
    let name = tagged::<R>("stHopCt");
    let bridge = Bridge::builder(Hopping(R::make()))
        .thread_name(&name)
        .max_threads(4)
        .build();
    let (sums, most) = load(&bridge, &name, |b| {
        crate::common::current_thread().block_on(async move {
            (0..CALLS / 3)
                .map(|i| {
                    b.run(move || async move {
                        futures_lite::future::yield_now().await;
                        u64::from(i)
                    })
                })
                .sum::<u64>()
        })
    });
    let want = u64::from(CALLS / 3) * u64::from(CALLS / 3 - 1) / 2;
    assert!(sums.iter().all(|&s| s == want), "{sums:?}");
    assert!(most <= 4, "{most} loop threads with max_threads(4)");
    assert_settled(&bridge, &name, "after the load");
}

fn many_timeouts_at_once<R: TestRuntime>() {
    let name = tagged::<R>("stTime");
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&dropped);
    let (timeouts, _) = load(&bridge, &name, move |b| {
        (0..20)
            .filter(|_| {
                let (guard, flag) = DropFlag::new();
                let err = b
                    .run_timeout(ms(5), move || async move {
                        let _guard = guard;
                        std::future::pending::<()>().await
                    })
                    .unwrap_err();
                if is_set(&flag) {
                    d.fetch_add(1, SeqCst);
                }
                err.is_timeout()
            })
            .count()
    });
    assert_eq!(
        timeouts.iter().sum::<usize>(),
        CALLERS * 20,
        "not every call timed out"
    );
    assert_eq!(
        dropped.load(SeqCst),
        CALLERS * 20,
        "futures still alive when run_timeout returned"
    );
    assert_settled(&bridge, &name, "after the timeouts");
}

per_runtime!(
    calls_from_many_plain_threads_start_no_thread,
    nested_calls_from_many_threads,
    many_timeouts_at_once
);

#[cfg(feature = "tokio")]
per_runtime!(hops_from_many_current_thread_runtimes_stay_within_max_threads);

#[test]
fn early_dropped_iterators_leave_no_thread() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    watchdog(120, || {
        let bridge = Bridge::builder(executor_bridge::Pollster)
            .thread_name("stEarly")
            .idle_timeout(ms(200))
            .build();
        let dropped = Arc::new(AtomicUsize::new(0));
        for round in 0..10u32 {
            // 40 at a time: each holds a thread until it is dropped.
            let iters: Vec<_> = (0..40u32)
                .map(|i| {
                    let counted = Counted(Arc::clone(&dropped));
                    let mut it = bridge.iter(move || {
                        stream::repeat_with(move || {
                            let _keep = &counted;
                            round * 100 + i
                        })
                    });
                    assert_eq!(it.next(), Some(round * 100 + i));
                    it
                })
                .collect();
            assert!(bridge.threads() >= 40, "{:?}", stats(&bridge));
            drop(iters);
        }
        assert!(
            eventually(Duration::from_secs(10), || dropped.load(SeqCst) == 400),
            "{} of 400 streams dropped",
            dropped.load(SeqCst)
        );
        assert!(
            eventually(Duration::from_secs(10), || bridge.threads() == 0
                && alive("stEarly") == 0),
            "loop threads left: {:?}, {} named",
            stats(&bridge),
            alive("stEarly")
        );
    });
}

#[test]
fn long_streams_consumed_by_16_threads_at_once() {
    let ok = watchdog(120, || {
        let bridge = Bridge::builder(executor_bridge::Pollster)
            .stream_capacity(64)
            .build();
        let consumers: Vec<_> = (0..16u32)
            .map(|k| {
                let b = bridge.clone();
                thread::spawn(move || {
                    let items = b.iter(move || {
                        stream::iter(0..5_000u32).then(move |i| async move {
                            if i % 100 == 0 {
                                futures_lite::future::yield_now().await;
                            }
                            (k, i)
                        })
                    });
                    let mut n = 0u32;
                    for (kk, i) in items {
                        if kk != k || i != n {
                            return false;
                        }
                        n += 1;
                    }
                    n == 5_000
                })
            })
            .collect();
        consumers.into_iter().all(|c| c.join().unwrap())
    });
    assert!(
        ok,
        "a consumer saw items out of order, from another stream, or too few"
    );
}
