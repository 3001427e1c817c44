//! Per-call cost of `Bridge::run` from each calling context, side by side
//! with what the same call costs without the bridge.
//!
//! Groups (compare medians within one group, measured in the same run):
//! - `plain_thread/{ready,yield_once}`: inline calls vs each runtime's own
//!   `block_on`, the fresh-thread-fresh-runtime recipe and the
//!   reqwest::blocking actor pattern;
//! - `tokio_worker/{..}`: calls from a task on a tokio multi_thread worker
//!   (hand-off) vs the actor and `block_in_place(|| handle.block_on(f))`;
//! - `current_thread/{..}`: calls from inside a tokio current_thread runtime
//!   (hop to a loop thread) vs the actor;
//! - `scaling_inline/N`, `scaling_hop/N`: aggregate calls/s with N callers
//!   on one shared bridge.
//!
//! ```text
//! cargo bench --features tokio,smol,async-std --bench run
//! ```

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use executor_bridge::{AsyncStd, Bridge, Pollster, Smol, Tokio};
use tokio::runtime::{Builder as RtBuilder, Handle, Runtime as TokioRt};
use tokio::sync::{mpsc, oneshot};

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

fn current_thread() -> TokioRt {
    RtBuilder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime")
}

/// The reqwest::blocking pattern: a background thread runs a current_thread
/// runtime, receives requests over a tokio mpsc channel, spawns a task per
/// request and replies over a tokio oneshot; the caller parks on the reply.
struct Actor {
    tx: Option<mpsc::UnboundedSender<(Kind, oneshot::Sender<u64>)>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Actor {
    fn start() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Kind, oneshot::Sender<u64>)>();
        let thread = thread::Builder::new()
            .name("actor".into())
            .spawn(move || {
                current_thread().block_on(async move {
                    while let Some((kind, reply)) = rx.recv().await {
                        tokio::spawn(async move {
                            let _ = reply.send(work(kind).await);
                        });
                    }
                });
            })
            .expect("actor thread");
        Actor {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Blocks the calling thread (whatever it is, as reqwest::blocking's
    /// `wait` does) until the actor replies.
    ///
    /// `unconstrained`: inside a tokio task (or a `block_on` future) the
    /// caller's coop budget is never refilled while this loop blocks, so after
    /// 128 calls tokio's oneshot would answer `Pending` forever (a livelock).
    fn call(&self, kind: Kind) -> u64 {
        let (reply, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .expect("actor running")
            .send((kind, reply))
            .expect("actor alive");
        futures_lite::future::block_on(tokio::task::unconstrained(rx)).expect("actor replied")
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The classic recipe: a fresh thread and a fresh current_thread runtime per
/// call.
fn fresh_thread_fresh_runtime(kind: Kind) -> u64 {
    thread::spawn(move || current_thread().block_on(work(kind)))
        .join()
        .expect("join")
}

fn plain_thread(c: &mut Criterion) {
    let tokio_bridge = Bridge::new(Tokio::new());
    let handle: Handle = tokio_bridge.runtime().handle().expect("runtime").clone();
    let ct = current_thread();
    let smol_bridge = Bridge::new(Smol::new());
    let async_std_bridge = Bridge::new(AsyncStd);
    let pollster_bridge = Bridge::new(Pollster);
    let actor = Actor::start();

    for kind in KINDS {
        let mut g = c.benchmark_group(format!("plain_thread/{}", kind.name()));
        g.bench_function("bridge_tokio", |b| {
            b.iter(|| tokio_bridge.run(move || work(kind)))
        });
        g.bench_function("tokio_current_thread_block_on", |b| {
            b.iter(|| ct.block_on(work(kind)))
        });
        g.bench_function("tokio_multi_thread_handle_block_on", |b| {
            b.iter(|| handle.block_on(work(kind)))
        });
        g.bench_function("bridge_smol", |b| {
            b.iter(|| smol_bridge.run(move || work(kind)))
        });
        g.bench_function("smol_block_on", |b| b.iter(|| smol::block_on(work(kind))));
        g.bench_function("bridge_async_std", |b| {
            b.iter(|| async_std_bridge.run(move || work(kind)))
        });
        g.bench_function("async_std_task_block_on", |b| {
            b.iter(|| async_std::task::block_on(work(kind)))
        });
        g.bench_function("bridge_pollster", |b| {
            b.iter(|| pollster_bridge.run(move || work(kind)))
        });
        g.bench_function("pollster_block_on", |b| {
            b.iter(|| pollster::block_on(work(kind)))
        });
        g.bench_function("futures_lite_block_on", |b| {
            b.iter(|| futures_lite::future::block_on(work(kind)))
        });
        g.bench_function("actor_reqwest_blocking", |b| b.iter(|| actor.call(kind)));
        g.bench_function("fresh_thread_fresh_runtime", |b| {
            b.iter(|| fresh_thread_fresh_runtime(kind))
        });
        g.finish();
    }
}

/// Runs `body(iters)` in a task on `app`'s workers and returns what it timed.
fn on_worker<F, Fut>(app: &TokioRt, iters: u64, body: F) -> Duration
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    app.block_on(app.spawn(body(iters))).expect("worker task")
}

fn tokio_worker(c: &mut Criterion) {
    let app = RtBuilder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("multi_thread runtime");
    let bridge = Bridge::new(Tokio::from_handle(app.handle().clone()));
    let actor = Arc::new(Actor::start());

    for kind in KINDS {
        let mut g = c.benchmark_group(format!("tokio_worker/{}", kind.name()));
        g.bench_function("bridge_tokio", |b| {
            b.iter_custom(|iters| {
                let bridge = bridge.clone();
                on_worker(&app, iters, move |iters| async move {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(bridge.run(move || work(kind)));
                    }
                    t.elapsed()
                })
            })
        });
        g.bench_function("actor_reqwest_blocking", |b| {
            b.iter_custom(|iters| {
                let actor = Arc::clone(&actor);
                on_worker(&app, iters, move |iters| async move {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(actor.call(kind));
                    }
                    t.elapsed()
                })
            })
        });
        g.bench_function("block_in_place_handle_block_on", |b| {
            b.iter_custom(|iters| {
                let handle = app.handle().clone();
                on_worker(&app, iters, move |iters| async move {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(tokio::task::block_in_place(|| handle.block_on(work(kind))));
                    }
                    t.elapsed()
                })
            })
        });
        g.finish();
    }
}

fn current_thread_runtime(c: &mut Criterion) {
    let ct = current_thread();
    let tokio_bridge = Bridge::new(Tokio::new());
    let pollster_bridge = Bridge::new(Pollster);
    let actor = Actor::start();

    for kind in KINDS {
        let mut g = c.benchmark_group(format!("current_thread/{}", kind.name()));
        g.bench_function("bridge_tokio", |b| {
            b.iter_custom(|iters| {
                ct.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(tokio_bridge.run(move || work(kind)));
                    }
                    t.elapsed()
                })
            })
        });
        g.bench_function("bridge_pollster", |b| {
            b.iter_custom(|iters| {
                ct.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(pollster_bridge.run(move || work(kind)));
                    }
                    t.elapsed()
                })
            })
        });
        g.bench_function("actor_reqwest_blocking", |b| {
            b.iter_custom(|iters| {
                ct.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(actor.call(kind));
                    }
                    t.elapsed()
                })
            })
        });
        g.finish();
    }
}

/// Splits `iters` calls over `threads` callers started together; returns the
/// wall time from the first start to the last finish, scaled to `iters`.
fn parallel<F>(threads: usize, iters: u64, body: F) -> Duration
where
    F: Fn(u64, &Barrier) -> (Instant, Instant) + Sync,
{
    let per = (iters / threads as u64).max(1);
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| body(per, &barrier)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("caller"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("a caller");
    let end = spans.iter().map(|s| s.1).max().expect("a caller");
    let done = per * threads as u64;
    (end - start).mul_f64(iters as f64 / done as f64)
}

/// Every caller calls `call` `per` times between two timestamps.
fn inline_callers<C: Fn() -> u64 + Sync>(n: usize, iters: u64, call: C) -> Duration {
    parallel(n, iters, |per, barrier| {
        barrier.wait();
        let t = Instant::now();
        for _ in 0..per {
            black_box(call());
        }
        (t, Instant::now())
    })
}

/// Same, each caller inside its own current_thread runtime.
fn hopping_callers<C: Fn() -> u64 + Sync>(n: usize, iters: u64, call: C) -> Duration {
    parallel(n, iters, |per, barrier| {
        let ct = current_thread();
        barrier.wait();
        ct.block_on(async {
            let t = Instant::now();
            for _ in 0..per {
                black_box(call());
            }
            (t, Instant::now())
        })
    })
}

const CALLERS: [usize; 4] = [1, 2, 8, 32];

fn scaling(c: &mut Criterion) {
    let tokio_bridge = Bridge::new(Tokio::new());
    let handle = tokio_bridge.runtime().handle().expect("runtime").clone();
    let pollster_bridge = Bridge::new(Pollster);
    let actor = Actor::start();

    let mut g = c.benchmark_group("scaling_inline");
    g.throughput(Throughput::Elements(1));
    for n in CALLERS {
        g.bench_function(BenchmarkId::new("bridge_tokio", n), |b| {
            b.iter_custom(|iters| {
                inline_callers(n, iters, || tokio_bridge.run(|| work(Kind::Ready)))
            })
        });
        g.bench_function(BenchmarkId::new("tokio_handle_block_on", n), |b| {
            b.iter_custom(|iters| inline_callers(n, iters, || handle.block_on(work(Kind::Ready))))
        });
        g.bench_function(BenchmarkId::new("bridge_pollster", n), |b| {
            b.iter_custom(|iters| {
                inline_callers(n, iters, || pollster_bridge.run(|| work(Kind::Ready)))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("scaling_hop");
    g.throughput(Throughput::Elements(1));
    for n in CALLERS {
        g.bench_function(BenchmarkId::new("bridge_tokio", n), |b| {
            b.iter_custom(|iters| {
                hopping_callers(n, iters, || tokio_bridge.run(|| work(Kind::Ready)))
            })
        });
        g.bench_function(BenchmarkId::new("actor_reqwest_blocking", n), |b| {
            b.iter_custom(|iters| hopping_callers(n, iters, || actor.call(Kind::Ready)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = plain_thread, tokio_worker, current_thread_runtime, scaling
}
criterion_main!(benches);
