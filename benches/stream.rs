//! Streams through the bridge, side by side with plain channels in the same
//! run: a live stream's latency (p50, p99) and thread wake-ups per item,
//! and the throughput of a ready stream; each measured idle and with one
//! core kept busy by an unrelated spinning thread.
//!
//! - `live_latency` (own table, printed at the end): a producer THREAD sends
//!   an item every 200 us into a channel (its send instant inside); the
//!   consumer measures send -> `next()` returning it. Each source is read
//!   the way a user would without the bridge, beside the bridge over the
//!   same source on each adapter: an `async_channel` (`recv_blocking`;
//!   `iter_direct` on `Tokio::new()`, `Tokio::from_runtime(multi_thread)`,
//!   `Pollster`, `Smol`, `AsyncStd`; `iter` pulled and with
//!   `stream_capacity(64)`; `futures::executor::block_on_stream`), a tokio
//!   `mpsc` channel (`blocking_recv`; rows `tk_`), and a std `sync_channel`
//!   (`recv`). `x own` compares a row with its source's own blocking
//!   receive, `x std` with the std channel, in the same round. Switches are
//!   counted for the whole process and, separately, without the producer
//!   thread's own (each of its 200 us sleeps is one).
//! - `stream_1m_u64` (criterion, and a table): sum 1,000,000 ready `u64`:
//!   `iter_direct`, `iter` with `stream_capacity(256)` vs a producer thread
//!   feeding std `sync_channel(256)`, crossbeam `bounded(256)`, and
//!   async-channel `bounded(256)` read with `recv_blocking`. Criterion
//!   measures it idle only (under a busy core, crossbeam's spinning takes
//!   seconds per million items); the table has both loads. (`iter` with the
//!   default pull semantics pays a thread round trip per item: see the
//!   latency table; it is left out here.)
//!
//! ```text
//! cargo bench --all-features --bench stream
//! cargo bench --all-features --bench stream -- live_latency   # latency only
//! ```

use std::fmt::Write as _;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use executor_bridge::{Bridge, Pollster, Tokio};
use futures_lite::stream;

mod common;
use common::*;

/// Rounds of the tables, about how long each contender runs per round, and
/// criterion's warm-up and measurement times.
const SETTINGS: Settings = Settings {
    rounds: 11,
    target: Duration::from_millis(15),
    warm_up: Duration::from_millis(300),
    measurement: Duration::from_millis(1200),
};

// ===== throughput: 1,000,000 ready items =====

const N: u64 = 1_000_000;
const CAP: usize = 256;

/// A producer thread sends `0..N` through a channel made by `channel`, the
/// consumer sums it.
fn via_thread<Tx, Rx>(
    channel: impl Fn() -> (Tx, Rx),
    send: impl Fn(&Tx, u64) -> bool + Sync,
    sum: impl Fn(Rx) -> u64,
) -> u64
where
    Tx: Send,
{
    let (tx, rx) = channel();
    thread::scope(|s| {
        let send = &send;
        s.spawn(move || {
            for i in 0..N {
                if !send(&tx, i) {
                    break;
                }
            }
        });
        sum(rx)
    })
}

/// A contender whose unit is one `sum` of the `N` items, checked.
fn summing(name: &str, mut sum: impl FnMut() -> u64 + 'static) -> Contender {
    per_op(name, move || assert_eq!(sum(), N * (N - 1) / 2))
}

fn throughput() -> Group {
    let direct = Bridge::new(Tokio::new());
    let cap256 = Bridge::builder(Tokio::new()).stream_capacity(CAP).build();
    let pollster_bridge = Bridge::new(Pollster);
    Group::new(
        "stream_1m_u64",
        "sum of 1,000,000 ready u64 from a stream (or a producer thread through a channel of 256); per item",
    )
    .elements(N)
    .criterion_idle_only()
    .base("std_sync_channel_256")
    .base("crossbeam_bounded_256")
    .add(
        summing("bridge_tokio_iter_direct", move || {
            direct.iter_direct(|| stream::iter(0..N)).sum()
        })
        .vs_own("futures_block_on_stream"),
    )
    .add(summing("bridge_tokio_iter_cap256", move || {
        cap256.iter(|| stream::iter(0..N)).sum()
    }))
    .add(
        summing("bridge_pollster_iter_direct", move || {
            pollster_bridge.iter_direct(|| stream::iter(0..N)).sum()
        })
        .vs_own("futures_block_on_stream"),
    )
    .add(summing("futures_block_on_stream", || {
        futures::executor::block_on_stream(stream::iter(0..N)).sum()
    }))
    .add(summing("std_sync_channel_256", || {
        via_thread(
            || mpsc::sync_channel(CAP),
            |tx, i| tx.send(i).is_ok(),
            |rx| rx.iter().sum(),
        )
    }))
    .add(summing("crossbeam_bounded_256", || {
        via_thread(
            || crossbeam_channel::bounded(CAP),
            |tx, i| tx.send(i).is_ok(),
            |rx| rx.iter().sum(),
        )
    }))
    .add(summing("async_channel_256_recv_blocking", || {
        via_thread(
            || async_channel::bounded(CAP),
            |tx, i| tx.send_blocking(i).is_ok(),
            |rx| {
                let mut sum = 0;
                while let Ok(v) = rx.recv_blocking() {
                    sum += v;
                }
                sum
            },
        )
    }))
}

// ===== live latency =====

/// Time between two live items.
const PERIOD: Duration = Duration::from_micros(200);
/// Items skipped at the start of each measurement.
const WARM: usize = 50;

/// A live item: the instant it was sent, and the producer thread's own
/// voluntary switches by then.
type Live = (Instant, u64);

/// Voluntary context switches of the calling thread so far.
fn thread_switches() -> u64 {
    // SAFETY: `getrusage` only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_nvcsw as u64
}

/// A producer thread: `total` items, one every [`PERIOD`] (on an absolute
/// schedule), through `send`, until it refuses.
fn producer(total: usize, send: impl Fn(Live) -> bool + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new()
        .name("producer".into())
        .spawn(move || {
            let start = Instant::now();
            for i in 1..=total {
                let at = start + PERIOD * i as u32;
                let now = Instant::now();
                if at > now {
                    thread::sleep(at - now);
                }
                if !send((Instant::now(), thread_switches())) {
                    break;
                }
            }
        })
        .expect("producer thread")
}

/// What one measurement of a live consumer saw.
struct LiveRun {
    /// Send -> `next()` returning it, microseconds.
    lat: Vec<f64>,
    /// Voluntary switches of the process per item.
    process_sw: f64,
    /// The producer thread's own share of them per item.
    producer_sw: f64,
    /// The share of `bridge-tokio` (a caller-driven Tokio runtime's driver
    /// thread) per item.
    driver_sw: f64,
    /// The consumer thread's own share per item: how often `next()` slept.
    /// One is the floor for a consumer that waits for each item.
    consumer_sw: f64,
}

/// Takes `WARM + items` items from `next`, timing the last `items`.
fn consume(items: usize, mut next: impl FnMut() -> Option<Live>) -> LiveRun {
    for _ in 0..WARM {
        next().expect("live item");
    }
    let mut lat = Vec::with_capacity(items);
    let first = next().expect("live item");
    lat.push(first.0.elapsed().as_secs_f64() * 1e6);
    let d0 = named_switches(DRIVER);
    let c0 = thread_switches();
    let (s0, p0) = (switches(), first.1);
    let mut p1 = p0;
    for _ in 1..items {
        let (at, p) = next().expect("live item");
        lat.push(at.elapsed().as_secs_f64() * 1e6);
        p1 = p;
    }
    let s1 = switches();
    let c1 = thread_switches();
    let d1 = named_switches(DRIVER);
    let per = (items - 1).max(1) as f64;
    LiveRun {
        lat,
        process_sw: s1.saturating_sub(s0) as f64 / per,
        producer_sw: p1.saturating_sub(p0) as f64 / per,
        driver_sw: d1.saturating_sub(d0) as f64 / per,
        consumer_sw: c1.saturating_sub(c0) as f64 / per,
    }
}

struct LiveContender {
    name: &'static str,
    /// The source's own blocking receive, which this row is compared with.
    own: &'static str,
    run: Box<dyn FnMut(usize) -> LiveRun>,
}

fn live(
    name: &'static str,
    own: &'static str,
    run: impl FnMut(usize) -> LiveRun + 'static,
) -> LiveContender {
    LiveContender {
        name,
        own,
        run: Box::new(run),
    }
}

/// The source's own blocking receive of each kind of row.
const OWN_ASYNC_CHANNEL: &str = "async_channel_recv_blocking";
const OWN_TOKIO_MPSC: &str = "tokio_mpsc_blocking_recv";
const OWN_STD: &str = "std_sync_channel";

/// A live consumer of an async_channel fed by a producer thread, through
/// the iterator `iter` makes of the receiver.
fn live_async<I: Iterator<Item = Live>>(
    name: &'static str,
    iter: impl Fn(async_channel::Receiver<Live>) -> I + 'static,
) -> LiveContender {
    live(name, OWN_ASYNC_CHANNEL, move |items| {
        let (tx, rx) = async_channel::bounded::<Live>(CAP);
        let p = producer(WARM + items, move |x| tx.send_blocking(x).is_ok());
        let mut it = iter(rx);
        let run = consume(items, || it.next());
        drop(it);
        p.join().expect("producer");
        run
    })
}

/// A live consumer of a tokio `mpsc` channel fed by a producer thread
/// (`blocking_send`), through the iterator `iter` makes of the receiver as
/// a stream.
fn live_tokio<I: Iterator<Item = Live>>(
    name: &'static str,
    iter: impl Fn(TokioStream) -> I + 'static,
) -> LiveContender {
    live(name, OWN_TOKIO_MPSC, move |items| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Live>(CAP);
        let p = producer(WARM + items, move |x| tx.blocking_send(x).is_ok());
        let mut it = iter(Box::pin(futures_lite::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })));
        let run = consume(items, || it.next());
        drop(it);
        p.join().expect("producer");
        run
    })
}

/// A tokio `mpsc` receiver as a stream.
type TokioStream = std::pin::Pin<Box<dyn futures_lite::Stream<Item = Live> + Send>>;

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn live_latency() {
    if !selected("live_latency") || list_only() {
        return;
    }
    let (rounds, items) = if full_run() { (7, 1000) } else { (1, 50) };
    // The bridge over each async source, on each adapter, beside the
    // source's own blocking receive and a std channel.
    let tokio_bridge = Bridge::new(Tokio::new());
    let cap64 = Bridge::builder(Tokio::new()).stream_capacity(64).build();
    let tokio_mt = Bridge::new(Tokio::from_runtime(multi_thread(1)));
    let pollster_bridge = Bridge::new(Pollster);
    #[cfg(feature = "smol")]
    let smol_bridge = Bridge::new(executor_bridge::Smol);
    #[cfg(feature = "async-std")]
    let async_std_bridge = Bridge::new(executor_bridge::AsyncStd);
    let (b1, b2, m1) = (tokio_bridge.clone(), tokio_bridge.clone(), tokio_mt.clone());
    let (b3, b4, m2, p2) = (
        tokio_bridge.clone(),
        tokio_bridge.clone(),
        tokio_mt.clone(),
        pollster_bridge.clone(),
    );
    let mut contenders = vec![
        live_async(OWN_ASYNC_CHANNEL, |rx| {
            std::iter::from_fn(move || rx.recv_blocking().ok())
        }),
        live_async("bridge_tokio_iter_direct", move |rx| {
            b1.iter_direct(move || rx)
        }),
        live_async("bridge_tokio_iter_pull", move |rx| b2.iter(move || rx)),
        live_async("bridge_tokio_iter_cap64", move |rx| cap64.iter(move || rx)),
        live_async("bridge_tokio_mt_iter_direct", move |rx| {
            m1.iter_direct(move || rx)
        }),
        live_async("bridge_pollster_iter_direct", move |rx| {
            pollster_bridge.iter_direct(move || rx)
        }),
        #[cfg(feature = "smol")]
        live_async("bridge_smol_iter_direct", move |rx| {
            smol_bridge.iter_direct(move || rx)
        }),
        #[cfg(feature = "async-std")]
        live_async("bridge_async_std_iter_direct", move |rx| {
            async_std_bridge.iter_direct(move || rx)
        }),
        live_async("futures_block_on_stream", |rx| {
            futures::executor::block_on_stream(Box::pin(rx))
        }),
        live(OWN_TOKIO_MPSC, OWN_TOKIO_MPSC, |items| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Live>(CAP);
            let p = producer(WARM + items, move |x| tx.blocking_send(x).is_ok());
            let run = consume(items, || rx.blocking_recv());
            drop(rx);
            p.join().expect("producer");
            run
        }),
        live_tokio("tk_bridge_tokio_iter_direct", move |rx| {
            b3.iter_direct(move || rx)
        }),
        live_tokio("tk_bridge_tokio_iter_pull", move |rx| b4.iter(move || rx)),
        live_tokio("tk_bridge_tokio_mt_iter_direct", move |rx| {
            m2.iter_direct(move || rx)
        }),
        live_tokio("tk_bridge_pollster_iter_direct", move |rx| {
            p2.iter_direct(move || rx)
        }),
        live(OWN_STD, OWN_STD, |items| {
            let (tx, rx) = mpsc::sync_channel::<Live>(CAP);
            let p = producer(WARM + items, move |x| tx.send(x).is_ok());
            let run = consume(items, || rx.recv().ok());
            drop(rx);
            p.join().expect("producer");
            run
        }),
    ];
    let base = contenders
        .iter()
        .position(|c| c.name == "std_sync_channel")
        .expect("baseline");
    let loads = [Load::Idle, Load::Busy];
    let k = contenders.len();
    // [load][contender] -> per round (p50, p99, process sw, producer sw, driver sw, consumer sw)
    let mut got = vec![vec![Vec::new(); k]; loads.len()];
    rotated_rounds(rounds, &loads, k, |_, li, i| {
        let run = (contenders[i].run)(items);
        got[li][i].push([
            percentile(&run.lat, 0.5),
            percentile(&run.lat, 0.99),
            run.process_sw,
            run.producer_sw,
            run.driver_sw,
            run.consumer_sw,
        ]);
    });
    let col = |li: usize, i: usize, f: fn(&[f64; 6]) -> f64| {
        median(&got[li][i].iter().map(f).collect::<Vec<_>>())
    };
    let own: Vec<usize> = contenders
        .iter()
        .map(|c| {
            contenders
                .iter()
                .position(|o| o.name == c.own)
                .expect("the source's own row")
        })
        .collect();
    let ratio_to = |li: usize, i: usize, to: usize, f: fn(&[f64; 6]) -> f64| {
        let r: Vec<f64> = got[li][i]
            .iter()
            .zip(&got[li][to])
            .map(|(a, b)| f(a) / f(b))
            .collect();
        median(&r)
    };
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "== live_latency: a producer thread sends one item every {PERIOD:?} into a channel (bounded {CAP}); \
         latency = its send -> the consumer's next() returning it, microseconds"
    );
    let _ = writeln!(
        out,
        "   {rounds} rounds x {items} items per contender (after {WARM} skipped), rotated order; p50/p99 per round, \
         medians of rounds; `x std` = median of (this p50 / std_sync_channel's, same round), `x own` the same against \
         the source's own blocking receive (rows `tk_` read a tokio mpsc channel, the others an async_channel), \
         `p99 x` = p99 against std's; \
         sw/item = voluntary \
         switches of the whole process per item, `-prod` = without the producer thread's own (its sleeps), \
         `drv` = the share of `bridge-tokio` (Tokio::new()'s driver thread), `cons` = the consumer thread's own \
         (how often next() slept; the floor is 1 for a consumer that waits for each item)"
    );
    let mut header = format!("{:<30}", "contender");
    for load in loads {
        let _ = write!(
            header,
            " | {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5} {:>5}",
            load.short(),
            "p50",
            "p99",
            "x own",
            "x std",
            "p99 x",
            "sw/item",
            "-prod",
            "drv",
            "cons"
        );
    }
    let _ = writeln!(out, "{header}");
    for (i, c) in contenders.iter().enumerate() {
        let mut line = format!("{:<30}", c.name);
        for li in 0..loads.len() {
            let _ = write!(
                line,
                " | {:>5} {:>7.1} {:>7.1} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>6.2} {:>5.2} {:>5.2}",
                "",
                col(li, i, |r| r[0]),
                col(li, i, |r| r[1]),
                ratio_to(li, i, own[i], |r| r[0]),
                ratio_to(li, i, base, |r| r[0]),
                ratio_to(li, i, base, |r| r[1]),
                col(li, i, |r| r[2]),
                col(li, i, |r| r[2] - r[3]),
                col(li, i, |r| r[4]),
                col(li, i, |r| r[5]),
            );
        }
        let _ = writeln!(out, "{line}");
    }
    REPORT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_str(&out);
}

fn main() {
    let mut c = criterion(SETTINGS).configure_from_args();
    run_group(&mut c, "stream_1m_u64", throughput);
    live_latency();
    print_report("stream");
    c.final_summary();
}
