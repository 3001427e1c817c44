//! The harness every bench shares: thread wake-ups from `getrusage`, a
//! busy core, same-run tables of contenders measured in rotated rounds.
//! Included by each bench with `mod common;`.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};

/// How a bench measures: rounds of its tables, about how long each
/// contender runs per round, criterion's warm-up and measurement times.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub rounds: usize,
    pub target: Duration,
    pub warm_up: Duration,
    pub measurement: Duration,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Criterion as `settings` say; the tables use them too.
pub fn criterion(settings: Settings) -> Criterion {
    let _ = SETTINGS.set(settings);
    Criterion::default()
        .warm_up_time(settings.warm_up)
        .measurement_time(settings.measurement)
        .sample_size(10)
        .nresamples(10_000)
        .without_plots()
}

/// Voluntary context switches of the whole process so far: every sleep of
/// any of its threads, each one a wake-up later.
pub fn switches() -> u64 {
    // SAFETY: `getrusage` only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_nvcsw as u64
}

/// Voluntary context switches so far of this process's threads whose name
/// starts with `prefix` (from `/proc/self/task`).
pub fn named_switches(prefix: &str) -> u64 {
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
pub const DRIVER: &str = "bridge-tokio";

/// A thread that keeps one core busy until dropped.
pub struct Spinner {
    pub stop: Arc<AtomicBool>,
    pub thread: Option<JoinHandle<()>>,
}

impl Spinner {
    pub fn start() -> Self {
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
pub enum Load {
    Idle,
    Busy,
}

impl Load {
    pub fn name(self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::Busy => "busy_core",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::Busy => "busy",
        }
    }

    pub fn apply(self) -> Option<Spinner> {
        (self == Load::Busy).then(Spinner::start)
    }
}

/// One way of doing the operation: `run(n)` does it `n` times and returns
/// the time that took (its setup excluded).
pub struct Contender {
    pub name: String,
    /// The contender this one is the bridged version of (`x own` column).
    pub own: Option<String>,
    pub run: Box<dyn FnMut(u64) -> Duration>,
}

pub fn contender(name: impl Into<String>, run: impl FnMut(u64) -> Duration + 'static) -> Contender {
    Contender {
        name: name.into(),
        own: None,
        run: Box::new(run),
    }
}

/// `n` calls of `op` in a row, each output through `black_box`; the time
/// they took.
pub fn timed<T>(n: u64, mut op: impl FnMut() -> T) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        black_box(op());
    }
    t.elapsed()
}

/// A contender whose unit is one call of `op`, [`timed`].
pub fn per_op<T>(name: impl Into<String>, mut op: impl FnMut() -> T + 'static) -> Contender {
    contender(name, move |n| timed(n, &mut op))
}

/// `n` calls of `op` inside `rt`'s `block_on` (the caller is inside a
/// runtime), [`timed`].
pub fn in_runtime<T>(rt: &tokio::runtime::Runtime, n: u64, op: impl FnMut() -> T) -> Duration {
    rt.block_on(async { timed(n, op) })
}

/// A tokio current_thread runtime whose contenders call from inside it
/// (its `block_on` body).
pub struct Inside(Arc<tokio::runtime::Runtime>);

impl Inside {
    /// A fresh current_thread runtime with IO and timers.
    pub fn current_thread() -> Self {
        Inside(Arc::new(current_thread()))
    }

    /// A contender whose unit is one call of `op` from inside the runtime
    /// (see [`in_runtime`]).
    pub fn per_op<T>(
        &self,
        name: impl Into<String>,
        mut op: impl FnMut() -> T + 'static,
    ) -> Contender {
        let rt = Arc::clone(&self.0);
        contender(name, move |n| in_runtime(&rt, n, &mut op))
    }
}

impl Contender {
    /// Compares this contender with `own` (its `x own` column): the same
    /// operation without the bridge.
    pub fn vs_own(mut self, own: impl Into<String>) -> Self {
        self.own = Some(own.into());
        self
    }
}

/// Contenders doing the same operation, measured side by side.
pub struct Group {
    pub name: String,
    pub what: String,
    /// Contenders every other one is divided by (a ratio column each).
    pub bases: Vec<&'static str>,
    pub contenders: Vec<Contender>,
    /// Elements one `run` unit handles (criterion throughput, table per element).
    pub elements: u64,
    /// Bytes per element, for a MB/s column.
    pub bytes: Option<u64>,
    /// Something waits: measured idle and with a busy core.
    pub waits: bool,
    /// Criterion measures it idle only (the table still does both loads).
    pub criterion_idle_only: bool,
    /// Keeps servers, runtimes, files alive while the group runs.
    pub keep: Vec<Box<dyn std::any::Any>>,
}

#[allow(dead_code)]
impl Group {
    pub fn new(name: impl Into<String>, what: impl Into<String>) -> Group {
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

    pub fn base(mut self, name: &'static str) -> Self {
        self.bases.push(name);
        self
    }

    pub fn add(mut self, c: Contender) -> Self {
        self.contenders.push(c);
        self
    }

    /// Adds `bridged` and, right after it, `own`: the same operation without
    /// the bridge, which `bridged` is compared with ([`Contender::vs_own`]).
    pub fn pair(self, bridged: Contender, own: Contender) -> Self {
        let name = own.name.clone();
        self.add(bridged.vs_own(name)).add(own)
    }

    pub fn elements(mut self, n: u64) -> Self {
        self.elements = n;
        self
    }

    pub fn bytes(mut self, b: u64) -> Self {
        self.bytes = Some(b);
        self
    }

    pub fn no_wait(mut self) -> Self {
        self.waits = false;
        self
    }

    pub fn criterion_idle_only(mut self) -> Self {
        self.criterion_idle_only = true;
        self
    }

    pub fn keep(mut self, x: impl std::any::Any) -> Self {
        self.keep.push(Box::new(x));
        self
    }
}

/// Whether this is a real run (`cargo bench`), not a smoke test.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn list_only() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// The benchmark filter given on the command line, if any.
pub fn filter() -> Option<String> {
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
pub fn selected(name: &str) -> bool {
    match filter() {
        None => true,
        Some(f) => name.contains(&f) || f.starts_with(name),
    }
}

pub static REPORT: Mutex<String> = Mutex::new(String::new());

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn fmt_time(ns: f64) -> String {
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
pub fn run_group(c: &mut Criterion, name: &str, build: impl FnOnce() -> Group) {
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
pub fn calibrate(run: &mut dyn FnMut(u64) -> Duration, target: Duration) -> (u64, Duration) {
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

/// `rounds` rounds; in each, under every one of `loads` in turn (applied
/// while it lasts), `measure(round, load index, contender index)` for each
/// of `k` contenders, the order rotated by one each round (no contender is
/// always first after a load change).
pub fn rotated_rounds(
    rounds: usize,
    loads: &[Load],
    k: usize,
    mut measure: impl FnMut(usize, usize, usize),
) {
    for round in 0..rounds {
        for (li, &load) in loads.iter().enumerate() {
            let _spinner = load.apply();
            for j in 0..k {
                measure(round, li, (j + round) % k);
            }
        }
    }
}

/// Alternating rounds: every round runs every contender (rotated order)
/// under every load, about the settings' `target` each; medians of rounds. A
/// contender more than 20 times slower under a load than its (idle)
/// calibration said stops after 2 rounds there (a spinning channel under a
/// busy core can take seconds per unit).
pub fn table(g: &mut Group, loads: &[Load]) -> String {
    let (rounds, target) = if full_run() {
        let settings = SETTINGS.get().expect("the bench's settings");
        (settings.rounds, settings.target)
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
    rotated_rounds(rounds, loads, k, |round, li, i| {
        if round >= 2 && spent[li][i] > expect[i] * (20 * round as u32) {
            return;
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
    });
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
    let owns: Vec<Option<usize>> = g
        .contenders
        .iter()
        .map(|c| c.own.as_deref().map(index))
        .collect();
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
            .filter_map(|c| c.own.as_ref().map(|o| format!("{} / {o}", c.name)))
            .collect();
        let _ = writeln!(out, "   x own: {}", pairs.join(", "));
    }
    out
}

/// Prints the tables gathered by [`run_group`].
pub fn print_report(bench: &str) {
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

// ===== The actor-thread baseline =====

/// A tokio current_thread runtime with IO and timers.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime")
}

/// A tokio multi_thread runtime of `workers` workers, with IO and timers.
pub fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("multi_thread runtime")
}

/// A request to an [`Actor`] and where its answer goes.
pub type Request<Q, A> = (Q, tokio::sync::oneshot::Sender<A>);

/// The reqwest::blocking pattern: a thread owns a current_thread runtime;
/// requests come over a tokio mpsc channel, answers go back over a tokio
/// oneshot the caller blocks on.
pub struct Actor<Q, A> {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Request<Q, A>>>,
    thread: Option<JoinHandle<()>>,
}

impl<Q: Send + 'static, A: Send + 'static> Actor<Q, A> {
    /// Starts the thread; `serve` runs in its runtime with the requests.
    pub fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(tokio::sync::mpsc::UnboundedReceiver<Request<Q, A>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let thread = thread::Builder::new()
            .name("actor".into())
            .spawn(move || current_thread().block_on(serve(rx)))
            .expect("actor thread");
        Actor {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Blocks whatever thread calls it, as reqwest::blocking's `wait` does
    /// (`unconstrained`: inside a tokio task the caller's coop budget is
    /// never refilled while this blocks).
    pub fn call(&self, q: Q) -> A {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .as_ref()
            .expect("actor running")
            .send((q, reply))
            .unwrap_or_else(|_| panic!("actor alive"));
        futures_lite::future::block_on(tokio::task::unconstrained(rx)).expect("actor replied")
    }
}

impl<Q, A> Drop for Actor<Q, A> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
