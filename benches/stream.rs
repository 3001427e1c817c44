//! `Bridge::iter` throughput and latency, side by side with a producer thread
//! feeding a bounded channel.
//!
//! - `stream_1m_u64`: sum 1,000,000 `u64` from an always-ready stream (items
//!   per second; compare medians within the group); `bridge_tokio_iter` uses
//!   the default stream capacity, `..._cap256` the channels' 256;
//! - `live_latency` (printed after the criterion groups, not a criterion
//!   bench): a producer yielding one item per millisecond, latency from the
//!   moment the item exists to the consumer's `next()` returning it, vs a
//!   thread + `sync_channel` and vs one hop of `run` from a current_thread
//!   runtime.
//!
//! ```text
//! cargo bench --features tokio --bench stream
//! cargo bench --features tokio --bench stream -- live_latency   # latency only
//! ```

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use executor_bridge::{Bridge, Pollster, Tokio};
use futures_lite::stream;

const N: u64 = 1_000_000;
const CAP: usize = 256;

fn throughput(c: &mut Criterion) {
    let tokio_bridge = Bridge::new(Tokio::new());
    // The same capacity as the channels below (the default may differ).
    let tokio_bridge_256 = Bridge::builder(Tokio::new()).stream_capacity(CAP).build();
    let pollster_bridge = Bridge::new(Pollster);

    let mut g = c.benchmark_group("stream_1m_u64");
    g.throughput(Throughput::Elements(N));
    g.bench_function("bridge_tokio_iter", |b| {
        b.iter(|| tokio_bridge.iter(|| stream::iter(0..N)).sum::<u64>())
    });
    g.bench_function("bridge_tokio_iter_cap256", |b| {
        b.iter(|| tokio_bridge_256.iter(|| stream::iter(0..N)).sum::<u64>())
    });
    g.bench_function("bridge_pollster_iter", |b| {
        b.iter(|| pollster_bridge.iter(|| stream::iter(0..N)).sum::<u64>())
    });
    g.bench_function("std_sync_channel_256", |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::sync_channel(CAP);
            let producer = thread::spawn(move || {
                for i in 0..N {
                    if tx.send(i).is_err() {
                        break;
                    }
                }
            });
            let sum: u64 = rx.iter().sum();
            producer.join().expect("producer");
            sum
        })
    });
    g.bench_function("crossbeam_bounded_256", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded(CAP);
            let producer = thread::spawn(move || {
                for i in 0..N {
                    if tx.send(i).is_err() {
                        break;
                    }
                }
            });
            let sum: u64 = rx.iter().sum();
            producer.join().expect("producer");
            sum
        })
    });
    g.bench_function("async_channel_256_recv_blocking", |b| {
        b.iter(|| {
            let (tx, rx) = async_channel::bounded(CAP);
            let producer = thread::spawn(move || {
                for i in 0..N {
                    if tx.send_blocking(i).is_err() {
                        break;
                    }
                }
            });
            let mut sum = 0u64;
            while let Ok(v) = rx.recv_blocking() {
                sum += v;
            }
            producer.join().expect("producer");
            sum
        })
    });
    g.bench_function("futures_block_on_stream", |b| {
        b.iter(|| futures::executor::block_on_stream(stream::iter(0..N)).sum::<u64>())
    });
    g.finish();
}

fn median_p90_p99(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9), at(0.99))
}

/// Latency of a live stream (one item per millisecond) through
/// `Bridge::iter`, vs a thread + `sync_channel`, vs one hop of `run`.
fn live_latency(samples: usize) {
    const WARM: usize = 20;
    let period = Duration::from_millis(1);
    let bridge = Bridge::new(Tokio::new());
    let mut rows: Vec<(&str, Vec<Duration>)> = Vec::new();

    // Bridge::iter over a tokio interval; each item is the instant it was made.
    let mut it = bridge.iter(move || {
        stream::unfold(tokio::time::interval(period), |mut iv| async move {
            iv.tick().await;
            Some((Instant::now(), iv))
        })
    });
    let lat: Vec<Duration> = (0..WARM + samples)
        .map(|_| it.next().expect("live item").elapsed())
        .skip(WARM)
        .collect();
    drop(it);
    rows.push(("bridge.iter (tokio interval), produce -> next()", lat));

    // The same through `iter_spawned`: the stream is a task on the runtime.
    let mut it = bridge.iter_spawned(move || {
        stream::unfold(tokio::time::interval(period), |mut iv| async move {
            iv.tick().await;
            Some((Instant::now(), iv))
        })
    });
    let lat: Vec<Duration> = (0..WARM + samples)
        .map(|_| it.next().expect("live item").elapsed())
        .skip(WARM)
        .collect();
    drop(it);
    rows.push((
        "bridge.iter_spawned (tokio interval), produce -> next()",
        lat,
    ));

    // A thread sleeping 1 ms between items, std sync_channel(256).
    let (tx, rx) = mpsc::sync_channel::<Instant>(CAP);
    let producer = thread::spawn(move || loop {
        thread::sleep(period);
        if tx.send(Instant::now()).is_err() {
            break;
        }
    });
    let lat: Vec<Duration> = (0..WARM + samples)
        .map(|_| rx.recv().expect("live item").elapsed())
        .skip(WARM)
        .collect();
    drop(rx);
    producer.join().expect("producer");
    rows.push(("thread + sync_channel(256), send -> recv()", lat));

    // One hop: `run` from a current_thread runtime, one call per millisecond.
    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    let (mut there, mut back, mut round) = (Vec::new(), Vec::new(), Vec::new());
    ct.block_on(async {
        for i in 0..WARM + samples {
            thread::sleep(period);
            let t0 = Instant::now();
            let ran_at = bridge.run(|| async { Instant::now() });
            let t2 = Instant::now();
            if i >= WARM {
                there.push(ran_at - t0);
                back.push(t2 - ran_at);
                round.push(t2 - t0);
            }
        }
    });
    rows.push(("hop: run() call -> future runs on loop thread", there));
    rows.push(("hop: future done -> run() returns", back));
    rows.push(("hop: run() round trip", round));

    println!();
    println!("live_latency: {samples} samples, one item per ms (microseconds)");
    println!("{:<56} {:>9} {:>9} {:>9}", "path", "median", "p90", "p99");
    for (name, v) in rows {
        let (m, p90, p99) = median_p90_p99(v);
        println!("{name:<56} {m:>9.1} {p90:>9.1} {p99:>9.1}");
    }
}

/// The benchmark filter given on the command line, if any (criterion's
/// options that take a value are skipped).
fn filter() -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--color",
        "--output-format",
        "--format",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--profile-time",
        "--plotting-backend",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if WITH_VALUE.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            return Some(a.clone());
        }
        i += 1;
    }
    None
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    targets = throughput
}

fn main() {
    benches();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test" || a == "--list");
    if !args.iter().any(|a| a == "--list") {
        match filter() {
            Some(f) if !"live_latency".contains(f.as_str()) => {}
            _ => live_latency(if quick { 20 } else { 500 }),
        }
    }
    Criterion::default().configure_from_args().final_summary();
}
