//! Per-call cost of `Bridge::run` from each calling context, side by side
//! with what the same call costs without the bridge, in the same run: time
//! per call, ratios to the baselines (`x own`: the bridged call divided by
//! its runtime's own `block_on`) and thread wake-ups (voluntary context
//! switches of the whole process) per call, each row measured idle and with
//! one core kept busy by an unrelated spinning thread.
//!
//! Groups (criterion measures time; the tables printed at the end measure
//! time and switches in alternating rounds of the contenders, medians of
//! rounds), each for a `ready` future and a `yield_once` one (wakes itself
//! and returns `Pending` once):
//! - `plain_thread/{ready,yield_once}`: calls from a plain thread, for
//!   Tokio (`Tokio::new()`, caller-driven, and a 1-worker multi_thread
//!   runtime), Smol, AsyncStd and Pollster vs each runtime's own `block_on`,
//!   `futures_lite::future::block_on`, the reqwest::blocking actor pattern
//!   and a fresh thread + fresh runtime per call;
//! - `tokio_worker/{..}`: calls from a task on a tokio multi_thread worker
//!   (hand-off) vs `block_in_place(|| handle.block_on(f))` and the actor;
//! - `current_thread/{..}`: calls from inside a tokio current_thread runtime
//!   (the future runs on a loop thread of the bridge, the caller asleep) vs
//!   the actor and `futures_lite::future::block_on` (which is only possible
//!   for a future that needs no runtime);
//! - `scaling_plain_{1,2,8,32}` and `scaling_in_current_thread_{1,2,8,32}`:
//!   N callers on one shared bridge (ready future), wall time per call
//!   (aggregate).
//!
//! ```text
//! cargo bench --all-features --bench run
//! cargo bench --all-features --bench run -- plain_thread    # some groups only
//! ```

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{AsyncStd, Bridge, Pollster, Smol, Tokio};
use tokio::runtime::Runtime as TokioRt;

mod common;
use common::*;

/// Rounds of the tables, about how long each contender runs per round, and
/// criterion's warm-up and measurement times.
const SETTINGS: Settings = Settings {
    rounds: 9,
    target: Duration::from_millis(12),
    warm_up: Duration::from_millis(150),
    measurement: Duration::from_millis(400),
};

// ===== the futures under test =====

/// The future under test.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Ready on its first poll.
    Ready,
    /// Wakes itself and returns `Pending` once, then is ready.
    YieldOnce,
}

const KINDS: [Kind; 2] = [Kind::Ready, Kind::YieldOnce];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ready => "ready",
            Kind::YieldOnce => "yield_once",
        }
    }
}

/// One future type for both kinds, so every contender polls the same code.
struct Work {
    kind: Kind,
    yielded: bool,
}

fn work(kind: Kind) -> Work {
    Work {
        kind: black_box(kind),
        yielded: false,
    }
}

impl Future for Work {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        match self.kind {
            Kind::Ready => Poll::Ready(1),
            Kind::YieldOnce if self.yielded => Poll::Ready(2),
            Kind::YieldOnce => {
                self.yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// `n` calls of `call` in a row.
fn timed(n: u64, mut call: impl FnMut() -> u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        black_box(call());
    }
    t.elapsed()
}

/// The reqwest::blocking pattern: the actor spawns a task per request and
/// replies with its output.
fn work_actor() -> Actor<Kind, u64> {
    Actor::<Kind, u64>::start(|mut rx| async move {
        while let Some((kind, reply)) = rx.recv().await {
            tokio::spawn(async move {
                let _ = reply.send(work(kind).await);
            });
        }
    })
}

/// The classic recipe: a fresh thread and a fresh current_thread runtime per
/// call.
fn fresh_thread_fresh_runtime(kind: Kind) -> u64 {
    thread::spawn(move || current_thread().block_on(work(kind)))
        .join()
        .expect("join")
}

// ===== calls from a plain thread =====

fn plain_thread(kind: Kind) -> Group {
    let tokio_new = Bridge::new(Tokio::new());
    let ct = current_thread();
    let mt = multi_thread(1);
    let handle = mt.handle().clone();
    let tokio_mt = Bridge::new(Tokio::from_runtime(multi_thread(1)));
    let smol_bridge = Bridge::new(Smol);
    let async_std_bridge = Bridge::new(AsyncStd);
    let pollster_bridge = Bridge::new(Pollster);
    let actor = work_actor();
    Group::new(
        format!("plain_thread/{}", kind.name()),
        format!(
            "a {} future, called from a plain thread; per call",
            kind.name()
        ),
    )
    .base("actor_reqwest_blocking")
    .add(
        contender("bridge_tokio_new", move |n| {
            timed(n, || tokio_new.run(move || work(kind)))
        })
        .vs_own("tokio_current_thread_block_on"),
    )
    .add(contender("tokio_current_thread_block_on", move |n| {
        timed(n, || ct.block_on(work(kind)))
    }))
    .add(
        contender("bridge_tokio_mt1", move |n| {
            timed(n, || tokio_mt.run(move || work(kind)))
        })
        .vs_own("tokio_mt1_handle_block_on"),
    )
    .add(contender("tokio_mt1_handle_block_on", move |n| {
        timed(n, || handle.block_on(work(kind)))
    }))
    .add(
        contender("bridge_smol", move |n| {
            timed(n, || smol_bridge.run(move || work(kind)))
        })
        .vs_own("smol_block_on"),
    )
    .add(contender("smol_block_on", move |n| {
        timed(n, || smol::block_on(work(kind)))
    }))
    .add(
        contender("bridge_async_std", move |n| {
            timed(n, || async_std_bridge.run(move || work(kind)))
        })
        .vs_own("async_std_task_block_on"),
    )
    .add(contender("async_std_task_block_on", move |n| {
        timed(n, || async_std::task::block_on(work(kind)))
    }))
    .add(
        contender("bridge_pollster", move |n| {
            timed(n, || pollster_bridge.run(move || work(kind)))
        })
        .vs_own("pollster_block_on"),
    )
    .add(contender("pollster_block_on", move |n| {
        timed(n, || pollster::block_on(work(kind)))
    }))
    .add(contender("futures_lite_block_on", move |n| {
        timed(n, || futures_lite::future::block_on(work(kind)))
    }))
    .add(contender("actor_reqwest_blocking", move |n| {
        timed(n, || actor.call(kind))
    }))
    .add(contender("fresh_thread_fresh_runtime", move |n| {
        timed(n, || fresh_thread_fresh_runtime(kind))
    }))
    .keep(mt)
}

// ===== calls from a task on a tokio multi_thread worker =====

/// Runs `body(n)` in a task on `app`'s workers and returns what it timed.
fn on_worker<F, Fut>(app: &TokioRt, n: u64, body: F) -> Duration
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    app.block_on(app.spawn(body(n))).expect("worker task")
}

fn tokio_worker(kind: Kind) -> Group {
    let app = Arc::new(multi_thread(2));
    let from_handle = Bridge::new(Tokio::from_handle(app.handle().clone()));
    let tokio_new = Bridge::new(Tokio::new());
    let actor = Arc::new(work_actor());
    let (a1, a2, a3, a4) = (
        Arc::clone(&app),
        Arc::clone(&app),
        Arc::clone(&app),
        Arc::clone(&app),
    );
    Group::new(
        format!("tokio_worker/{}", kind.name()),
        format!(
            "a {} future, called from a task on a 2-worker tokio multi_thread runtime; per call",
            kind.name()
        ),
    )
    .base("block_in_place_handle_block_on")
    .base("actor_reqwest_blocking")
    .add(contender("bridge_tokio_from_handle", move |n| {
        let bridge = from_handle.clone();
        on_worker(&a1, n, move |n| async move {
            timed(n, || bridge.run(move || work(kind)))
        })
    }))
    .add(contender("bridge_tokio_new", move |n| {
        let bridge = tokio_new.clone();
        on_worker(&a2, n, move |n| async move {
            timed(n, || bridge.run(move || work(kind)))
        })
    }))
    .add(contender("block_in_place_handle_block_on", move |n| {
        let handle = a3.handle().clone();
        on_worker(&a3, n, move |n| async move {
            timed(n, || {
                tokio::task::block_in_place(|| handle.block_on(work(kind)))
            })
        })
    }))
    .add(contender("actor_reqwest_blocking", move |n| {
        let actor = Arc::clone(&actor);
        on_worker(
            &a4,
            n,
            move |n| async move { timed(n, || actor.call(kind)) },
        )
    }))
}

// ===== calls from inside a tokio current_thread runtime =====

/// `n` calls inside `ct`'s `block_on`.
fn in_runtime(ct: &TokioRt, n: u64, call: impl FnMut() -> u64) -> Duration {
    ct.block_on(async { timed(n, call) })
}

fn current_thread_runtime(kind: Kind) -> Group {
    let ct = Arc::new(current_thread());
    let tokio_new = Bridge::new(Tokio::new());
    let tokio_mt = Bridge::new(Tokio::from_runtime(multi_thread(1)));
    let smol_bridge = Bridge::new(Smol);
    let async_std_bridge = Bridge::new(AsyncStd);
    let pollster_bridge = Bridge::new(Pollster);
    let actor = work_actor();
    let clone = || Arc::clone(&ct);
    let (c1, c2, c3, c4, c5, c6, c7) = (
        clone(),
        clone(),
        clone(),
        clone(),
        clone(),
        clone(),
        clone(),
    );
    Group::new(
        format!("current_thread/{}", kind.name()),
        format!(
            "a {} future, called from inside a tokio current_thread runtime (block_on body); per call",
            kind.name()
        ),
    )
    .base("actor_reqwest_blocking")
    .base("futures_lite_block_on")
    .add(contender("bridge_tokio_new", move |n| {
        in_runtime(&c1, n, || tokio_new.run(move || work(kind)))
    }))
    .add(contender("bridge_tokio_mt1", move |n| {
        in_runtime(&c2, n, || tokio_mt.run(move || work(kind)))
    }))
    .add(contender("bridge_smol", move |n| {
        in_runtime(&c3, n, || smol_bridge.run(move || work(kind)))
    }))
    .add(contender("bridge_async_std", move |n| {
        in_runtime(&c4, n, || async_std_bridge.run(move || work(kind)))
    }))
    .add(contender("bridge_pollster", move |n| {
        in_runtime(&c5, n, || pollster_bridge.run(move || work(kind)))
    }))
    .add(contender("futures_lite_block_on", move |n| {
        in_runtime(&c6, n, || futures_lite::future::block_on(work(kind)))
    }))
    .add(contender("actor_reqwest_blocking", move |n| {
        in_runtime(&c7, n, || actor.call(kind))
    }))
}

// ===== many callers at once =====

/// Splits `n` calls over `callers` threads started together, each inside
/// a current_thread runtime of its own if `in_rt`; the wall time from their
/// start to the last one's end, scaled to `n`.
fn parallel(callers: usize, in_rt: bool, n: u64, call: impl Fn() -> u64 + Sync) -> Duration {
    let per = (n / callers as u64).max(1);
    let barrier = Barrier::new(callers + 1);
    let (call, barrier) = (&call, &barrier);
    let start = thread::scope(|s| {
        for _ in 0..callers {
            s.spawn(move || {
                let ct = in_rt.then(current_thread);
                barrier.wait();
                match ct {
                    Some(ct) => {
                        in_runtime(&ct, per, call);
                    }
                    None => {
                        timed(per, call);
                    }
                }
            });
        }
        barrier.wait();
        // The scope joins every caller before it returns.
        Instant::now()
    });
    start
        .elapsed()
        .mul_f64(n as f64 / (per * callers as u64) as f64)
}

const CALLERS: [usize; 4] = [1, 2, 8, 32];

fn scaling_plain(callers: usize) -> Group {
    let tokio_new = Bridge::new(Tokio::new());
    let mt = multi_thread(1);
    let handle = mt.handle().clone();
    let pollster_bridge = Bridge::new(Pollster);
    let smol_bridge = Bridge::new(Smol);
    let actor = work_actor();
    let ready = Kind::Ready;
    Group::new(
        format!("scaling_plain_{callers}"),
        format!(
            "{callers} plain threads calling one shared bridge (ready future); wall time per call"
        ),
    )
    .base("actor_reqwest_blocking")
    .add(contender("bridge_tokio_new", move |n| {
        parallel(callers, false, n, || tokio_new.run(move || work(ready)))
    }))
    .add(contender("tokio_mt1_handle_block_on", move |n| {
        parallel(callers, false, n, || handle.block_on(work(ready)))
    }))
    .add(
        contender("bridge_smol", move |n| {
            parallel(callers, false, n, || smol_bridge.run(move || work(ready)))
        })
        .vs_own("smol_block_on"),
    )
    .add(contender("smol_block_on", move |n| {
        parallel(callers, false, n, || smol::block_on(work(ready)))
    }))
    .add(
        contender("bridge_pollster", move |n| {
            parallel(callers, false, n, || {
                pollster_bridge.run(move || work(ready))
            })
        })
        .vs_own("pollster_block_on"),
    )
    .add(contender("pollster_block_on", move |n| {
        parallel(callers, false, n, || pollster::block_on(work(ready)))
    }))
    .add(contender("actor_reqwest_blocking", move |n| {
        parallel(callers, false, n, || actor.call(ready))
    }))
    .keep(mt)
}

fn scaling_in_current_thread(callers: usize) -> Group {
    let tokio_new = Bridge::new(Tokio::new());
    let tokio_mt = Bridge::new(Tokio::from_runtime(multi_thread(1)));
    let pollster_bridge = Bridge::new(Pollster);
    let actor = work_actor();
    let ready = Kind::Ready;
    Group::new(
        format!("scaling_in_current_thread_{callers}"),
        format!(
            "{callers} threads, each inside its own tokio current_thread runtime, calling one shared bridge \
             (ready future); wall time per call"
        ),
    )
    .base("actor_reqwest_blocking")
    .add(contender("bridge_tokio_new", move |n| {
        parallel(callers, true, n, || tokio_new.run(move || work(ready)))
    }))
    .add(contender("bridge_tokio_mt1", move |n| {
        parallel(callers, true, n, || tokio_mt.run(move || work(ready)))
    }))
    .add(contender("bridge_pollster", move |n| {
        parallel(callers, true, n, || pollster_bridge.run(move || work(ready)))
    }))
    .add(contender("actor_reqwest_blocking", move |n| {
        parallel(callers, true, n, || actor.call(ready))
    }))
}

fn main() {
    let mut c = criterion(SETTINGS).configure_from_args();
    for kind in KINDS {
        run_group(&mut c, &format!("plain_thread/{}", kind.name()), || {
            plain_thread(kind)
        });
    }
    for kind in KINDS {
        run_group(&mut c, &format!("tokio_worker/{}", kind.name()), || {
            tokio_worker(kind)
        });
    }
    for kind in KINDS {
        run_group(&mut c, &format!("current_thread/{}", kind.name()), || {
            current_thread_runtime(kind)
        });
    }
    for n in CALLERS {
        run_group(&mut c, &format!("scaling_plain_{n}"), || scaling_plain(n));
    }
    for n in CALLERS {
        run_group(&mut c, &format!("scaling_in_current_thread_{n}"), || {
            scaling_in_current_thread(n)
        });
    }
    print_report("run");
    c.final_summary();
}
