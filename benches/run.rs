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
//!   (the future polled on the caller's thread, the runtime's own threads
//!   driving it) vs the actor and `futures_lite::future::block_on` (which is
//!   only possible for a future that needs no runtime);
//! - `scaling_plain_{1,2,8,32}` and `scaling_in_current_thread_{1,2,8,32}`:
//!   N callers on one shared bridge (ready future), wall time per call
//!   (aggregate).
//!
//! ```text
//! cargo bench --all-features --bench run
//! cargo bench --all-features --bench run -- plain_thread    # some groups only
//! ```

use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use executor_bridge::{AsyncStd, Bridge, Pollster, Smol, Tokio};
use tokio::runtime::{Builder as RtBuilder, Runtime as TokioRt};
use tokio::sync::{mpsc, oneshot};

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
const TABLE_ROUNDS: usize = 9;
const TABLE_TARGET: Duration = Duration::from_millis(12);

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(150))
        .measurement_time(Duration::from_millis(400))
        .sample_size(10)
        .nresamples(10_000)
        .without_plots()
}

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

fn current_thread() -> TokioRt {
    RtBuilder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime")
}

fn multi_thread(workers: usize) -> TokioRt {
    RtBuilder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("multi_thread runtime")
}

/// `n` calls of `call` in a row.
fn timed(n: u64, mut call: impl FnMut() -> u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        black_box(call());
    }
    t.elapsed()
}

/// The reqwest::blocking pattern: a background thread runs a current_thread
/// runtime, receives requests over a tokio mpsc channel, spawns a task per
/// request and replies over a tokio oneshot; the caller blocks on the reply.
struct Actor {
    tx: Option<mpsc::UnboundedSender<(Kind, oneshot::Sender<u64>)>>,
    thread: Option<JoinHandle<()>>,
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
    /// `wait` does) until the actor replies. `unconstrained`: inside a tokio
    /// task the caller's coop budget is never refilled while this blocks.
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
    let actor = Actor::start();
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
    let actor = Arc::new(Actor::start());
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
    let actor = Actor::start();
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
    let actor = Actor::start();
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
    let actor = Actor::start();
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
    let mut c = criterion().configure_from_args();
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
