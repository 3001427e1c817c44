//! Streams through the bridge, side by side with plain channels in the same
//! run: a live stream's latency (p50, p99) and thread wake-ups per item,
//! and the throughput of a ready stream; each measured idle and with one
//! core kept busy by an unrelated spinning thread.
//!
//! - `live_latency` (own table, printed at the end): a producer THREAD sends
//!   an item every 200 us into an `async_channel` (its send instant inside);
//!   the consumer measures send -> `next()` returning it. Contenders:
//!   `iter_direct`, `iter` (default pull, and `stream_capacity(64)`) on
//!   `Bridge<Tokio>`, `iter_direct` on `Bridge<Pollster>`,
//!   `futures::executor::block_on_stream` and `recv_blocking` on the same
//!   channel, vs a thread + `std::sync::mpsc::sync_channel`. Switches are
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use executor_bridge::{Bridge, Pollster, Tokio};
use futures_lite::stream;

// ===== harness: the same in every bench file =====

/// Voluntary context switches of the whole process so far: every sleep of
/// any of its threads, each one a wake-up later.
fn switches() -> u64 {
    // SAFETY: `getrusage` only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_nvcsw as u64
}

/// Voluntary context switches so far of this process's threads whose name
/// starts with `prefix` (from `/proc/self/task`).
fn named_switches(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let line = status
                .lines()
                .find(|l| l.starts_with("voluntary_ctxt_switches"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// The thread caller-driven `Tokio::new()` runtimes keep for when no call
/// waits: its wake-ups are shown apart (`drv`).
const DRIVER: &str = "bridge-tokio";

/// A thread that keeps one core busy until dropped.
struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("busy-core".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .expect("spinner thread");
        // Let it reach its core before anything is measured.
        thread::sleep(Duration::from_millis(2));
        Spinner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Idle machine, or one core kept busy by a [`Spinner`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Load {
    Idle,
    Busy,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::Busy => "busy_core",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::Busy => "busy",
        }
    }

    fn apply(self) -> Option<Spinner> {
        (self == Load::Busy).then(Spinner::start)
    }
}

/// One way of doing the operation: `run(n)` does it `n` times and returns
/// the time that took (its setup excluded).
struct Contender {
    name: String,
    /// The contender this one is the bridged version of (`x own` column).
    own: Option<&'static str>,
    run: Box<dyn FnMut(u64) -> Duration>,
}

fn contender(name: impl Into<String>, run: impl FnMut(u64) -> Duration + 'static) -> Contender {
    Contender {
        name: name.into(),
        own: None,
        run: Box::new(run),
    }
}

impl Contender {
    fn vs_own(mut self, own: &'static str) -> Self {
        self.own = Some(own);
        self
    }
}

/// Contenders doing the same operation, measured side by side.
struct Group {
    name: String,
    what: String,
    /// Contenders every other one is divided by (a ratio column each).
    bases: Vec<&'static str>,
    contenders: Vec<Contender>,
    /// Elements one `run` unit handles (criterion throughput, table per element).
    elements: u64,
    /// Bytes per element, for a MB/s column.
    bytes: Option<u64>,
    /// Something waits: measured idle and with a busy core.
    waits: bool,
    /// Criterion measures it idle only (the table still does both loads).
    criterion_idle_only: bool,
    /// Keeps servers, runtimes, files alive while the group runs.
    keep: Vec<Box<dyn std::any::Any>>,
}

#[allow(dead_code)]
impl Group {
    fn new(name: impl Into<String>, what: impl Into<String>) -> Group {
        Group {
            name: name.into(),
            what: what.into(),
            bases: Vec::new(),
            contenders: Vec::new(),
            elements: 1,
            bytes: None,
            waits: true,
            criterion_idle_only: false,
            keep: Vec::new(),
        }
    }

    fn base(mut self, name: &'static str) -> Self {
        self.bases.push(name);
        self
    }

    fn add(mut self, c: Contender) -> Self {
        self.contenders.push(c);
        self
    }

    fn elements(mut self, n: u64) -> Self {
        self.elements = n;
        self
    }

    fn bytes(mut self, b: u64) -> Self {
        self.bytes = Some(b);
        self
    }

    fn no_wait(mut self) -> Self {
        self.waits = false;
        self
    }

    fn criterion_idle_only(mut self) -> Self {
        self.criterion_idle_only = true;
        self
    }

    fn keep(mut self, x: impl std::any::Any) -> Self {
        self.keep.push(Box::new(x));
        self
    }
}

/// Whether this is a real run (`cargo bench`), not a smoke test.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn list_only() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// The benchmark filter given on the command line, if any.
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
        if WITH_VALUE.contains(&args[i].as_str()) {
            i += 2;
            continue;
        }
        if !args[i].starts_with('-') {
            return Some(args[i].clone());
        }
        i += 1;
    }
    None
}

/// Whether the group passes the command line's filter (a substring of the
/// group's name, or a criterion id inside the group).
fn selected(name: &str) -> bool {
    match filter() {
        None => true,
        Some(f) => name.contains(&f) || f.starts_with(name),
    }
}

static REPORT: Mutex<String> = Mutex::new(String::new());

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} us", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Builds the group if it is selected, measures it with criterion (idle,
/// and busy if it waits), then in alternating rounds for the table.
fn run_group(c: &mut Criterion, name: &str, build: impl FnOnce() -> Group) {
    if !selected(name) {
        return;
    }
    let mut g = build();
    let loads: &[Load] = if g.waits {
        &[Load::Idle, Load::Busy]
    } else {
        &[Load::Idle]
    };
    for &load in loads {
        if load == Load::Busy && g.criterion_idle_only {
            continue;
        }
        let _spinner = load.apply();
        let mut cg = c.benchmark_group(format!("{}/{}", g.name, load.name()));
        cg.sampling_mode(SamplingMode::Flat);
        match g.bytes {
            Some(b) => cg.throughput(Throughput::Bytes(b * g.elements)),
            None => cg.throughput(Throughput::Elements(g.elements)),
        };
        for ct in &mut g.contenders {
            let run = &mut ct.run;
            cg.bench_function(ct.name.as_str(), |b| b.iter_custom(&mut *run));
        }
        cg.finish();
    }
    if list_only() {
        return;
    }
    let table = table(&mut g, loads);
    REPORT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_str(&table);
}

/// How many units of `run` take about `target`, and how long they took
/// (the best of 3 tries at each size: a stall of the machine must not make
/// a fast contender look slow).
fn calibrate(run: &mut dyn FnMut(u64) -> Duration, target: Duration) -> (u64, Duration) {
    let mut n = 1u64;
    loop {
        let d = (0..3)
            .map(|_| run(n))
            .min()
            .unwrap_or_default()
            .max(Duration::from_nanos(1));
        if d >= target / 4 || n >= 1 << 26 {
            let scaled = (n as f64 * target.as_secs_f64() / d.as_secs_f64()) as u64;
            let ops = scaled.clamp(1, 1 << 28);
            return (ops, d.mul_f64(ops as f64 / n as f64));
        }
        n *= 4;
    }
}

/// Alternating rounds: every round runs every contender (rotated order)
/// under every load, about `TABLE_TARGET` each; medians of rounds. A
/// contender more than 20 times slower under a load than its (idle)
/// calibration said stops after 2 rounds there (a spinning channel under a
/// busy core can take seconds per unit).
fn table(g: &mut Group, loads: &[Load]) -> String {
    let (rounds, target) = if full_run() {
        (TABLE_ROUNDS, TABLE_TARGET)
    } else {
        (1, Duration::from_millis(1))
    };
    let k = g.contenders.len();
    let (ops, expect): (Vec<u64>, Vec<Duration>) = g
        .contenders
        .iter_mut()
        .map(|c| calibrate(&mut c.run, target))
        .unzip();
    // [load][contender] -> per round: ns per element, switches per element
    let mut time = vec![vec![Vec::new(); k]; loads.len()];
    let mut sw = vec![vec![Vec::new(); k]; loads.len()];
    let mut spent = vec![vec![Duration::ZERO; k]; loads.len()];
    let mut drv = vec![vec![Vec::new(); k]; loads.len()];
    for round in 0..rounds {
        for (li, &load) in loads.iter().enumerate() {
            let _spinner = load.apply();
            for j in 0..k {
                let i = (j + round) % k;
                if round >= 2 && spent[li][i] > expect[i] * (20 * round as u32) {
                    continue;
                }
                let elements = (ops[i] * g.elements) as f64;
                let d0 = named_switches(DRIVER);
                let s0 = switches();
                let d = (g.contenders[i].run)(ops[i]);
                let s1 = switches();
                let d1 = named_switches(DRIVER);
                spent[li][i] += d;
                time[li][i].push(d.as_nanos() as f64 / elements);
                sw[li][i].push(s1.saturating_sub(s0) as f64 / elements);
                drv[li][i].push(d1.saturating_sub(d0) as f64 / elements);
            }
        }
    }
    let index = |name: &str| {
        g.contenders
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no contender {name} in {}", g.name))
    };
    let bases: Vec<(String, usize)> = g
        .bases
        .iter()
        .map(|b| (format!("x {}", &b[..b.len().min(22)]), index(b)))
        .collect();
    let owns: Vec<Option<usize>> = g.contenders.iter().map(|c| c.own.map(index)).collect();
    let has_own = owns.iter().any(Option::is_some);
    let has_drv = drv.iter().flatten().any(|d| median(d) >= 0.005);
    // Median over rounds of this contender's time divided by that one's.
    let ratio = |li: usize, i: usize, b: usize| {
        let r: Vec<f64> = time[li][i]
            .iter()
            .zip(&time[li][b])
            .map(|(a, b)| a / b)
            .collect();
        median(&r)
    };
    let per = if g.elements == 1 { "op" } else { "item" };
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(out, "== {}: {}", g.name, g.what);
    let _ = writeln!(
        out,
        "   {rounds} rounds, each contender ~{target:?} per round (rotated order, {per}s/run = {per}s per measurement), medians of rounds; \
         `x B` = median of (time / B's time in the same round), >1 = slower; \
         sw/{per} = voluntary context switches of the whole process per {per}{}",
        if has_drv {
            format!(", drv = the share of `{DRIVER}` threads (Tokio::new()'s driver)")
        } else {
            String::new()
        }
    );
    let mut header = format!("{:<36} {:>8}", "contender", format!("{per}s/run"));
    for &load in loads {
        let _ = write!(header, " | {:>10}", format!("{} t/{per}", load.short()));
        if g.bytes.is_some() {
            let _ = write!(header, " {:>7}", "MB/s");
        }
        for (label, _) in &bases {
            let _ = write!(header, " {label:>w$}", w = label.len().max(6));
        }
        if has_own {
            let _ = write!(header, " {:>6}", "x own");
        }
        let _ = write!(header, " {:>7}", format!("sw/{per}"));
        if has_drv {
            let _ = write!(header, " {:>5}", "drv");
        }
    }
    let _ = writeln!(out, "{header}");
    for i in 0..k {
        let mut line = format!("{:<36} {:>8}", g.contenders[i].name, ops[i] * g.elements);
        for li in 0..loads.len() {
            let t = median(&time[li][i]);
            let _ = write!(line, " | {:>10}", fmt_time(t));
            if let Some(b) = g.bytes {
                let _ = write!(line, " {:>7.0}", b as f64 / t * 1e3);
            }
            for (label, b) in &bases {
                let _ = write!(line, " {:>w$.2}", ratio(li, i, *b), w = label.len().max(6));
            }
            if has_own {
                match owns[i] {
                    Some(o) => {
                        let _ = write!(line, " {:>6.2}", ratio(li, i, o));
                    }
                    None => {
                        let _ = write!(line, " {:>6}", "");
                    }
                }
            }
            let _ = write!(line, " {:>7.2}", median(&sw[li][i]));
            if has_drv {
                let _ = write!(line, " {:>5.2}", median(&drv[li][i]));
            }
        }
        let _ = writeln!(out, "{line}");
    }
    for (times, &load) in time.iter().zip(loads) {
        for (t, c) in times.iter().zip(&g.contenders) {
            if t.len() < rounds {
                let _ = writeln!(
                    out,
                    "   ({} {}: {} rounds only, too slow for more)",
                    c.name,
                    load.short(),
                    t.len()
                );
            }
        }
    }
    if has_own {
        let pairs: Vec<String> = g
            .contenders
            .iter()
            .filter_map(|c| c.own.map(|o| format!("{} / {o}", c.name)))
            .collect();
        let _ = writeln!(out, "   x own: {}", pairs.join(", "));
    }
    out
}

/// Prints the tables gathered by [`run_group`].
fn print_report(bench: &str) {
    let report = std::mem::take(&mut *REPORT.lock().unwrap_or_else(|e| e.into_inner()));
    if report.is_empty() {
        return;
    }
    println!();
    println!(
        "######## {bench}: same-run tables. The machine is a 2-core VM shared with other jobs: \
         absolute times are noisy; compare ratios and switch counts. ########"
    );
    print!("{report}");
}

// ===== end of harness =====

/// Rounds of the tables, and about how long each contender runs per round.
const TABLE_ROUNDS: usize = 11;
const TABLE_TARGET: Duration = Duration::from_millis(15);

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .sample_size(10)
        .nresamples(10_000)
        .without_plots()
}

// ===== throughput: 1,000,000 ready items =====

const N: u64 = 1_000_000;
const CAP: usize = 256;

/// `units` times: a producer thread sends `0..N` through a channel made by
/// `channel`, the consumer sums it.
fn via_thread<Tx, Rx>(
    units: u64,
    channel: impl Fn() -> (Tx, Rx),
    send: impl Fn(&Tx, u64) -> bool + Sync,
    sum: impl Fn(Rx) -> u64,
) -> Duration
where
    Tx: Send,
{
    let t = Instant::now();
    for _ in 0..units {
        let (tx, rx) = channel();
        let total = thread::scope(|s| {
            let send = &send;
            s.spawn(move || {
                for i in 0..N {
                    if !send(&tx, i) {
                        break;
                    }
                }
            });
            sum(rx)
        });
        assert_eq!(total, N * (N - 1) / 2);
    }
    t.elapsed()
}

fn throughput() -> Group {
    let direct = Bridge::new(Tokio::new());
    let cap256 = Bridge::builder(Tokio::new()).stream_capacity(CAP).build();
    let pollster_bridge = Bridge::new(Pollster);
    let check = |sum: u64| assert_eq!(sum, N * (N - 1) / 2);
    Group::new(
        "stream_1m_u64",
        "sum of 1,000,000 ready u64 from a stream (or a producer thread through a channel of 256); per item",
    )
    .elements(N)
    .criterion_idle_only()
    .base("std_sync_channel_256")
    .base("crossbeam_bounded_256")
    .add(
        contender("bridge_tokio_iter_direct", move |units| {
            let t = Instant::now();
            for _ in 0..units {
                check(direct.iter_direct(|| stream::iter(0..N)).sum());
            }
            t.elapsed()
        })
        .vs_own("futures_block_on_stream"),
    )
    .add(contender("bridge_tokio_iter_cap256", move |units| {
        let t = Instant::now();
        for _ in 0..units {
            check(cap256.iter(|| stream::iter(0..N)).sum());
        }
        t.elapsed()
    }))
    .add(
        contender("bridge_pollster_iter_direct", move |units| {
            let t = Instant::now();
            for _ in 0..units {
                check(pollster_bridge.iter_direct(|| stream::iter(0..N)).sum());
            }
            t.elapsed()
        })
        .vs_own("futures_block_on_stream"),
    )
    .add(contender("futures_block_on_stream", move |units| {
        let t = Instant::now();
        for _ in 0..units {
            check(futures::executor::block_on_stream(stream::iter(0..N)).sum());
        }
        t.elapsed()
    }))
    .add(contender("std_sync_channel_256", |units| {
        via_thread(
            units,
            || mpsc::sync_channel(CAP),
            |tx, i| tx.send(i).is_ok(),
            |rx| rx.iter().sum(),
        )
    }))
    .add(contender("crossbeam_bounded_256", |units| {
        via_thread(
            units,
            || crossbeam_channel::bounded(CAP),
            |tx, i| tx.send(i).is_ok(),
            |rx| rx.iter().sum(),
        )
    }))
    .add(contender("async_channel_256_recv_blocking", |units| {
        via_thread(
            units,
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
    let (s0, p0) = (switches(), first.1);
    let mut p1 = p0;
    for _ in 1..items {
        let (at, p) = next().expect("live item");
        lat.push(at.elapsed().as_secs_f64() * 1e6);
        p1 = p;
    }
    let s1 = switches();
    let d1 = named_switches(DRIVER);
    let per = (items - 1).max(1) as f64;
    LiveRun {
        lat,
        process_sw: s1.saturating_sub(s0) as f64 / per,
        producer_sw: p1.saturating_sub(p0) as f64 / per,
        driver_sw: d1.saturating_sub(d0) as f64 / per,
    }
}

struct LiveContender {
    name: &'static str,
    run: Box<dyn FnMut(usize) -> LiveRun>,
}

fn live(name: &'static str, run: impl FnMut(usize) -> LiveRun + 'static) -> LiveContender {
    LiveContender {
        name,
        run: Box::new(run),
    }
}

/// A live consumer of an async_channel fed by a producer thread, through
/// the iterator `iter` makes of the receiver.
fn live_async<I: Iterator<Item = Live>>(
    name: &'static str,
    iter: impl Fn(async_channel::Receiver<Live>) -> I + 'static,
) -> LiveContender {
    live(name, move |items| {
        let (tx, rx) = async_channel::bounded::<Live>(CAP);
        let p = producer(WARM + items, move |x| tx.send_blocking(x).is_ok());
        let mut it = iter(rx);
        let run = consume(items, || it.next());
        drop(it);
        p.join().expect("producer");
        run
    })
}

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
    let tokio_bridge = Bridge::new(Tokio::new());
    let cap64 = Bridge::builder(Tokio::new()).stream_capacity(64).build();
    let pollster_bridge = Bridge::new(Pollster);
    let (b1, b2) = (tokio_bridge.clone(), tokio_bridge.clone());
    let mut contenders = [
        live_async("bridge_tokio_iter_direct", move |rx| {
            b1.iter_direct(move || rx)
        }),
        live_async("bridge_tokio_iter_pull", move |rx| b2.iter(move || rx)),
        live_async("bridge_tokio_iter_cap64", move |rx| cap64.iter(move || rx)),
        live_async("bridge_pollster_iter_direct", move |rx| {
            pollster_bridge.iter_direct(move || rx)
        }),
        live_async("futures_block_on_stream", |rx| {
            futures::executor::block_on_stream(Box::pin(rx))
        }),
        live_async("async_channel_recv_blocking", |rx| {
            std::iter::from_fn(move || rx.recv_blocking().ok())
        }),
        live("std_sync_channel", |items| {
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
    // [load][contender] -> per round (p50, p99, process sw, producer sw, driver sw)
    let mut got = vec![vec![Vec::new(); k]; loads.len()];
    for round in 0..rounds {
        for (li, &load) in loads.iter().enumerate() {
            let _spinner = load.apply();
            for j in 0..k {
                let i = (j + round) % k;
                let run = (contenders[i].run)(items);
                got[li][i].push([
                    percentile(&run.lat, 0.5),
                    percentile(&run.lat, 0.99),
                    run.process_sw,
                    run.producer_sw,
                    run.driver_sw,
                ]);
            }
        }
    }
    let col = |li: usize, i: usize, f: fn(&[f64; 5]) -> f64| {
        median(&got[li][i].iter().map(f).collect::<Vec<_>>())
    };
    let ratio = |li: usize, i: usize, f: fn(&[f64; 5]) -> f64| {
        let r: Vec<f64> = got[li][i]
            .iter()
            .zip(&got[li][base])
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
         medians of rounds; `x std` = median of (this / std_sync_channel's, same round); sw/item = voluntary \
         switches of the whole process per item, `-prod` = without the producer thread's own (its sleeps), \
         `drv` = the share of `bridge-tokio` (Tokio::new()'s driver thread)"
    );
    let mut header = format!("{:<30}", "contender");
    for load in loads {
        let _ = write!(
            header,
            " | {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5}",
            load.short(),
            "p50",
            "p99",
            "p50 x",
            "p99 x",
            "sw/item",
            "-prod",
            "drv"
        );
    }
    let _ = writeln!(out, "{header}");
    for (i, c) in contenders.iter().enumerate() {
        let mut line = format!("{:<30}", c.name);
        for li in 0..loads.len() {
            let _ = write!(
                line,
                " | {:>5} {:>7.1} {:>7.1} {:>7.2} {:>7.2} {:>7.2} {:>6.2} {:>5.2}",
                "",
                col(li, i, |r| r[0]),
                col(li, i, |r| r[1]),
                ratio(li, i, |r| r[0]),
                ratio(li, i, |r| r[1]),
                col(li, i, |r| r[2]),
                col(li, i, |r| r[2] - r[3]),
                col(li, i, |r| r[4]),
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
    let mut c = criterion().configure_from_args();
    run_group(&mut c, "stream_1m_u64", throughput);
    live_latency();
    print_report("stream");
    c.final_summary();
}
