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

use executor_bridge::{AsyncStd, Bridge, Pollster, Runtime, Smol, Tokio};
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

/// The group `{place}/{kind}`: a `kind` future called `from` somewhere,
/// per call.
fn kind_group(place: &str, kind: Kind, from: &str) -> Group {
    Group::new(
        format!("{place}/{}", kind.name()),
        format!("a {} future, called {from}; per call", kind.name()),
    )
}

/// One call of a `kind` future through `bridge`, as an op.
fn bridge_call<R: Runtime>(bridge: Bridge<R>, kind: Kind) -> impl Fn() -> u64 + Clone {
    move || bridge.run(move || work(kind))
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

/// A bridge over each runtime: `Tokio::new()`, a 1-worker multi_thread
/// runtime, Smol, AsyncStd and Pollster.
struct Bridges {
    tokio_new: Bridge<Tokio>,
    tokio_mt1: Bridge<Tokio>,
    smol: Bridge<Smol>,
    async_std: Bridge<AsyncStd>,
    pollster: Bridge<Pollster>,
}

impl Bridges {
    fn new() -> Self {
        Bridges {
            tokio_new: Bridge::new(Tokio::new()),
            tokio_mt1: Bridge::new(Tokio::from_runtime(multi_thread(1))),
            smol: Bridge::new(Smol),
            async_std: Bridge::new(AsyncStd),
            pollster: Bridge::new(Pollster),
        }
    }
}

// ===== calls from a plain thread =====

fn plain_thread(kind: Kind) -> Group {
    let b = Bridges::new();
    let ct = current_thread();
    let mt = multi_thread(1);
    let handle = mt.handle().clone();
    let actor = work_actor();
    kind_group("plain_thread", kind, "from a plain thread")
        .base("actor_reqwest_blocking")
        .pair(
            per_op("bridge_tokio_new", bridge_call(b.tokio_new, kind)),
            per_op("tokio_current_thread_block_on", move || {
                ct.block_on(work(kind))
            }),
        )
        .pair(
            per_op("bridge_tokio_mt1", bridge_call(b.tokio_mt1, kind)),
            per_op("tokio_mt1_handle_block_on", move || {
                handle.block_on(work(kind))
            }),
        )
        .pair(
            per_op("bridge_smol", bridge_call(b.smol, kind)),
            per_op("smol_block_on", move || smol::block_on(work(kind))),
        )
        .pair(
            per_op("bridge_async_std", bridge_call(b.async_std, kind)),
            per_op("async_std_task_block_on", move || {
                async_std::task::block_on(work(kind))
            }),
        )
        .pair(
            per_op("bridge_pollster", bridge_call(b.pollster, kind)),
            per_op("pollster_block_on", move || pollster::block_on(work(kind))),
        )
        .add(per_op("futures_lite_block_on", move || {
            futures_lite::future::block_on(work(kind))
        }))
        .add(per_op("actor_reqwest_blocking", move || actor.call(kind)))
        .add(per_op("fresh_thread_fresh_runtime", move || {
            fresh_thread_fresh_runtime(kind)
        }))
        .keep(mt)
}

// ===== calls from a task on a tokio multi_thread worker =====

/// A tokio multi_thread runtime whose contenders call from a task on its
/// workers.
struct Worker(Arc<TokioRt>);

impl Worker {
    /// A contender whose unit is one call of `op` from a task on the
    /// workers (a task per measurement, with its own clone of `op`).
    fn per_op(&self, name: &str, op: impl Fn() -> u64 + Clone + Send + 'static) -> Contender {
        let app = Arc::clone(&self.0);
        contender(name, move |n| {
            let op = op.clone();
            app.block_on(app.spawn(async move { timed(n, op) }))
                .expect("worker task")
        })
    }
}

fn tokio_worker(kind: Kind) -> Group {
    let app = multi_thread(2);
    let from_handle = Bridge::new(Tokio::from_handle(app.handle().clone()));
    let tokio_new = Bridge::new(Tokio::new());
    let handle = app.handle().clone();
    let actor = Arc::new(work_actor());
    let worker = Worker(Arc::new(app));
    kind_group(
        "tokio_worker",
        kind,
        "from a task on a 2-worker tokio multi_thread runtime",
    )
    .base("block_in_place_handle_block_on")
    .base("actor_reqwest_blocking")
    .add(worker.per_op("bridge_tokio_from_handle", bridge_call(from_handle, kind)))
    .add(worker.per_op("bridge_tokio_new", bridge_call(tokio_new, kind)))
    .add(worker.per_op("block_in_place_handle_block_on", move || {
        tokio::task::block_in_place(|| handle.block_on(work(kind)))
    }))
    .add(worker.per_op("actor_reqwest_blocking", move || actor.call(kind)))
}

// ===== calls from inside a tokio current_thread runtime =====

fn current_thread_runtime(kind: Kind) -> Group {
    let ct = Inside::current_thread();
    let b = Bridges::new();
    let actor = work_actor();
    kind_group(
        "current_thread",
        kind,
        "from inside a tokio current_thread runtime (block_on body)",
    )
    .base("actor_reqwest_blocking")
    .base("futures_lite_block_on")
    .add(ct.per_op("bridge_tokio_new", bridge_call(b.tokio_new, kind)))
    .add(ct.per_op("bridge_tokio_mt1", bridge_call(b.tokio_mt1, kind)))
    .add(ct.per_op("bridge_smol", bridge_call(b.smol, kind)))
    .add(ct.per_op("bridge_async_std", bridge_call(b.async_std, kind)))
    .add(ct.per_op("bridge_pollster", bridge_call(b.pollster, kind)))
    .add(ct.per_op("futures_lite_block_on", move || {
        futures_lite::future::block_on(work(kind))
    }))
    .add(ct.per_op("actor_reqwest_blocking", move || actor.call(kind)))
}

// ===== many callers at once =====

/// Threads calling at once, each inside a current_thread runtime of its own
/// if `in_rt`.
#[derive(Clone, Copy)]
struct Callers {
    threads: usize,
    in_rt: bool,
}

impl Callers {
    /// `threads` plain threads.
    fn plain(threads: usize) -> Self {
        Callers {
            threads,
            in_rt: false,
        }
    }

    /// `threads` threads, each inside a current_thread runtime of its own.
    fn in_current_thread(threads: usize) -> Self {
        Callers {
            threads,
            in_rt: true,
        }
    }

    /// Splits `n` calls over the threads, started together; the wall time
    /// from their start to the last one's end, scaled to `n`.
    fn timed(self, n: u64, call: impl Fn() -> u64 + Sync) -> Duration {
        let per = (n / self.threads as u64).max(1);
        let barrier = Barrier::new(self.threads + 1);
        let (call, barrier) = (&call, &barrier);
        let start = thread::scope(|s| {
            for _ in 0..self.threads {
                s.spawn(move || {
                    let ct = self.in_rt.then(current_thread);
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
            .mul_f64(n as f64 / (per * self.threads as u64) as f64)
    }

    /// A contender whose unit is one call of `op`, the calls split over
    /// the threads.
    fn per_op(self, name: &str, op: impl Fn() -> u64 + Sync + 'static) -> Contender {
        contender(name, move |n| self.timed(n, &op))
    }

    /// A contender whose unit is one call of a ready future through
    /// `bridge`, the calls split over the threads.
    fn bridge<R: Runtime>(self, name: &str, bridge: Bridge<R>) -> Contender {
        self.per_op(name, bridge_call(bridge, Kind::Ready))
    }
}

const CALLERS: [usize; 4] = [1, 2, 8, 32];

fn scaling_plain(threads: usize) -> Group {
    let callers = Callers::plain(threads);
    let mt = multi_thread(1);
    let handle = mt.handle().clone();
    let actor = work_actor();
    Group::new(
        format!("scaling_plain_{threads}"),
        format!(
            "{threads} plain threads calling one shared bridge (ready future); wall time per call"
        ),
    )
    .base("actor_reqwest_blocking")
    .add(callers.bridge("bridge_tokio_new", Bridge::new(Tokio::new())))
    .add(callers.per_op("tokio_mt1_handle_block_on", move || {
        handle.block_on(work(Kind::Ready))
    }))
    .pair(
        callers.bridge("bridge_smol", Bridge::new(Smol)),
        callers.per_op("smol_block_on", || smol::block_on(work(Kind::Ready))),
    )
    .pair(
        callers.bridge("bridge_pollster", Bridge::new(Pollster)),
        callers.per_op("pollster_block_on", || {
            pollster::block_on(work(Kind::Ready))
        }),
    )
    .add(callers.per_op("actor_reqwest_blocking", move || actor.call(Kind::Ready)))
    .keep(mt)
}

fn scaling_in_current_thread(threads: usize) -> Group {
    let callers = Callers::in_current_thread(threads);
    let tokio_mt = Bridge::new(Tokio::from_runtime(multi_thread(1)));
    let actor = work_actor();
    Group::new(
        format!("scaling_in_current_thread_{threads}"),
        format!(
            "{threads} threads, each inside its own tokio current_thread runtime, calling one shared bridge \
             (ready future); wall time per call"
        ),
    )
    .base("actor_reqwest_blocking")
    .add(callers.bridge("bridge_tokio_new", Bridge::new(Tokio::new())))
    .add(callers.bridge("bridge_tokio_mt1", tokio_mt))
    .add(callers.bridge("bridge_pollster", Bridge::new(Pollster)))
    .add(callers.per_op("actor_reqwest_blocking", move || actor.call(Kind::Ready)))
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
