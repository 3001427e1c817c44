//! cargo run --release --example soak --all-features -- [seconds]
//!
//! A soak test of the bridge (default 30 s): 64 caller threads mix `run`,
//! `run_scoped`, nested calls, `iter` and `iter_direct` with early drops,
//! `writer`, `sink` and `io`, `run_timeout` that times out, and panics
//! caught with `try_run` / `catch_unwind`, on every
//! enabled adapter (Pollster always; Tokio, Smol, AsyncStd with their
//! features), from plain threads, from inside current_thread runtimes and
//! from multi_thread worker tasks. Every caller checks every result.
//!
//! It reports the calls, items, timeouts and panics, the most bridge loop
//! threads seen, and the process's threads and RSS at the start, at the end,
//! and after the bridges' idle timeout (1 s) has passed. It exits non-zero if
//! any check failed, a caller hung, the threads did not return to the
//! baseline, or the RSS kept growing.
//!
//! The test suite runs a short version of the same code (`soak(&Config)`).

use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{Bridge, Pollster, Runtime};
use futures_lite::{stream, StreamExt};

/// What one soak run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long the callers keep going.
    pub duration: Duration,
    /// Number of caller threads, split evenly between plain threads,
    /// current_thread runtimes and multi_thread worker tasks.
    pub callers: usize,
    /// The bridges' idle timeout.
    pub idle_timeout: Duration,
    /// How long past `duration` the callers may take before they count as
    /// hung.
    pub grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            duration: Duration::from_secs(30),
            callers: 64,
            idle_timeout: Duration::from_secs(1),
            grace: Duration::from_secs(60),
        }
    }
}

/// What one soak run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub seconds: f64,
    pub adapters: Vec<&'static str>,
    pub callers: [usize; 3],
    pub calls: u64,
    pub nested: u64,
    pub items: u64,
    pub timeouts: u64,
    pub panics: u64,
    pub max_loop_threads: usize,
    pub max_loop_threads_per_adapter: Vec<(&'static str, usize)>,
    pub max_process_threads: usize,
    pub threads_start: usize,
    pub threads_end: usize,
    pub threads_after_idle: usize,
    pub idle_wait: Duration,
    pub rss_start_kb: u64,
    pub rss_mid_kb: u64,
    pub rss_end_kb: u64,
    pub rss_after_idle_kb: u64,
    /// Every failed check (the first few in full, then a count).
    pub failures: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Prints the figures and the verdict.
    pub fn print(&self) {
        let [plain, ct, mt] = self.callers;
        println!(
            "soak: {:.1} s, {} callers ({plain} plain threads, {ct} in current_thread runtimes, \
             {mt} multi_thread worker tasks), adapters: {}",
            self.seconds,
            plain + ct + mt,
            self.adapters.join(", ")
        );
        println!(
            "  calls {} (nested {}), items {}, timeouts {}, panics {}",
            self.calls, self.nested, self.items, self.timeouts, self.panics
        );
        let per: Vec<String> = self
            .max_loop_threads_per_adapter
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        println!(
            "  max bridge loop threads seen: {} ({}); max process threads: {}",
            self.max_loop_threads,
            per.join(", "),
            self.max_process_threads
        );
        println!(
            "  process threads: start {}, end {}, after idle timeout {} (back after {:.1} s)",
            self.threads_start,
            self.threads_end,
            self.threads_after_idle,
            self.idle_wait.as_secs_f64()
        );
        println!(
            "  RSS: start {} kB, at 1/3 {} kB, end {} kB, after idle timeout {} kB",
            self.rss_start_kb, self.rss_mid_kb, self.rss_end_kb, self.rss_after_idle_kb
        );
        if self.ok() {
            println!("  result: OK");
        } else {
            println!("  result: FAILED ({} failures)", self.failures.len());
            for f in self.failures.iter().take(20) {
                println!("    - {f}");
            }
        }
    }
}

fn main() {
    let mut config = Config::default();
    if let Some(arg) = std::env::args().nth(1) {
        let secs: f64 = arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: soak [seconds]");
            std::process::exit(2)
        });
        config.duration = Duration::from_secs_f64(secs);
    }
    let report = soak(&config);
    report.print();
    // Hung callers may still hold threads: leave without waiting for them.
    std::process::exit(if report.ok() { 0 } else { 1 });
}

// ---------------------------------------------------------------------------
// Process figures.
// ---------------------------------------------------------------------------

/// Threads of this process.
pub fn process_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size, from `/proc/self/status` (`VmRSS`), in kB.
pub fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The adapters, as the soak uses them.
// ---------------------------------------------------------------------------

/// Per-runtime futures: a short wait, a spawned task, a wait that never ends
/// in time.
trait Adapter: Runtime + Sized {
    const NAME: &'static str;
    fn make() -> Self;
    /// A short wait on this runtime's timer (Pollster: a few yields).
    fn pause(d: Duration) -> impl Future<Output = ()> + Send;
    /// `v`, computed by a task spawned on this runtime.
    fn task(v: u64) -> impl Future<Output = u64> + Send;
    /// Outlives every deadline the soak sets.
    fn forever() -> impl Future<Output = ()> + Send;
}

impl Adapter for Pollster {
    const NAME: &'static str = "pollster";
    fn make() -> Self {
        Pollster
    }
    async fn pause(d: Duration) {
        for _ in 0..(d.as_micros() % 4) {
            futures_lite::future::yield_now().await;
        }
    }
    async fn task(v: u64) -> u64 {
        futures_lite::future::yield_now().await;
        v
    }
    fn forever() -> impl Future<Output = ()> {
        std::future::pending()
    }
}

#[cfg(feature = "tokio")]
impl Adapter for executor_bridge::Tokio {
    const NAME: &'static str = "tokio";
    fn make() -> Self {
        executor_bridge::Tokio::new()
    }
    async fn pause(d: Duration) {
        tokio::time::sleep(d).await
    }
    async fn task(v: u64) -> u64 {
        tokio::spawn(async move { v }).await.unwrap()
    }
    async fn forever() {
        tokio::time::sleep(Duration::from_secs(3600)).await
    }
}

#[cfg(feature = "smol")]
impl Adapter for executor_bridge::Smol {
    const NAME: &'static str = "smol";
    fn make() -> Self {
        executor_bridge::Smol
    }
    async fn pause(d: Duration) {
        smol::Timer::after(d).await;
    }
    async fn task(v: u64) -> u64 {
        smol::spawn(async move { v }).await
    }
    async fn forever() {
        smol::Timer::after(Duration::from_secs(3600)).await;
    }
}

#[cfg(feature = "async-std")]
impl Adapter for executor_bridge::AsyncStd {
    const NAME: &'static str = "async-std";
    fn make() -> Self {
        executor_bridge::AsyncStd
    }
    async fn pause(d: Duration) {
        async_std::task::sleep(d).await
    }
    async fn task(v: u64) -> u64 {
        async_std::task::spawn(async move { v }).await
    }
    async fn forever() {
        async_std::task::sleep(Duration::from_secs(3600)).await
    }
}

// ---------------------------------------------------------------------------
// The work.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    nested: AtomicU64,
    items: AtomicU64,
    timeouts: AtomicU64,
    panics: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Stats {
    fn fail(&self, msg: String) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() < 100 {
            failures.push(msg);
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

macro_rules! check {
    ($stats:expr, $cond:expr, $($fmt:tt)*) => {
        if !$cond {
            $stats.fail(format!($($fmt)*));
        }
    };
}

/// The payload of the soak's own panics (silenced in the panic hook).
#[derive(Debug, PartialEq)]
struct Expected(u64);

const PANIC_PREFIX: &str = "soak-expected";

/// xorshift64*: a small, seedable, good-enough generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// One random operation on `b`, every result checked.
fn one_op<R: Adapter>(b: &Bridge<R>, rng: &mut Rng, st: &Stats) {
    let name = R::NAME;
    let x = rng.next() >> 1;
    match rng.below(100) {
        // A plain call: a timer, a spawned task.
        0..=29 => {
            let d = Duration::from_micros(rng.below(200));
            let got = b.run(move || async move {
                R::pause(d).await;
                R::task(x).await + 1
            });
            check!(
                st,
                got == x + 1,
                "{name}: run gave {got}, expected {}",
                x + 1
            );
            Stats::add(&st.calls, 1);
            // Now and then the same with borrowed data.
            if x % 4 == 0 {
                let mut local = Vec::with_capacity(3);
                local.extend([x, 1, 2]);
                let mut touched = 0;
                let sum = b.run_scoped(|| async {
                    R::pause(d).await;
                    touched += 1;
                    local.iter().fold(0u64, |a, v| a.wrapping_add(*v))
                });
                check!(
                    st,
                    sum == x.wrapping_add(3) && touched == 1,
                    "{name}: run_scoped gave {sum}, touched {touched}"
                );
                Stats::add(&st.calls, 1);
            }
        }
        // Nested calls: from inside a bridged future, they hop.
        30..=39 => {
            let inner = b.clone();
            let got = b.run(move || async move {
                R::pause(Duration::from_micros(10)).await;
                let a = inner.run(move || R::task(x));
                let c = inner.try_run(|| async { 2 }).unwrap_or(0);
                a + c
            });
            check!(
                st,
                got == x + 2,
                "{name}: nested run gave {got}, expected {}",
                x + 2
            );
            Stats::add(&st.calls, 3);
            Stats::add(&st.nested, 2);
        }
        // A stream, consumed in part (dropped early) or to the end.
        40..=54 => {
            let n = 1 + rng.below(300);
            let take = rng.below(n + 2);
            let items = move || {
                stream::iter(0..n).then(move |i| async move {
                    if i % 32 == 31 {
                        R::pause(Duration::from_micros(50)).await;
                    }
                    x + i
                })
            };
            let mut it = if x % 2 == 0 {
                b.iter(items)
            } else {
                b.iter_direct(items)
            };
            let mut got = 0;
            for (i, v) in it.by_ref().take(take as usize).enumerate() {
                check!(
                    st,
                    v == x + i as u64,
                    "{name}: item {i} was {v}, expected {}",
                    x + i as u64
                );
                got += 1;
            }
            if take >= n {
                check!(
                    st,
                    got == n,
                    "{name}: stream gave {got} items, expected {n}"
                );
                check!(st, it.next().is_none(), "{name}: stream went past its end");
            }
            drop(it);
            Stats::add(&st.items, got);
            Stats::add(&st.calls, 1);
        }
        // Blocking IO: a writer, a sink, an IO object.
        55..=64 => io_op::<R>(b, x, st),
        // A deadline that passes; now and then one that does not.
        65..=74 => {
            let t = Duration::from_millis(1 + rng.below(5));
            match b.run_timeout(t, R::forever) {
                Err(e) if e.is_timeout() => Stats::add(&st.timeouts, 1),
                Err(e) => st.fail(format!(
                    "{name}: run_timeout gave {e:?}, expected a timeout"
                )),
                Ok(()) => st.fail(format!("{name}: run_timeout of forever completed")),
            }
            Stats::add(&st.calls, 1);
            if x % 3 == 0 {
                let got = b.run_timeout(Duration::from_secs(60), move || R::task(x));
                check!(
                    st,
                    matches!(got, Ok(v) if v == x),
                    "{name}: run_timeout gave {got:?}"
                );
                Stats::add(&st.calls, 1);
            }
        }
        // A panic, reported by `try_run`.
        75..=84 => {
            let got = b.try_run(move || async move {
                R::pause(Duration::from_micros(20)).await;
                if x != u64::MAX {
                    panic!("{PANIC_PREFIX} {x}");
                }
            });
            let want = format!("the bridged future panicked: {PANIC_PREFIX} {x}");
            match got {
                Err(e) if e.is_panic() && e.to_string() == want => Stats::add(&st.panics, 1),
                other => st.fail(format!("{name}: try_run gave {other:?}, expected a panic")),
            }
            Stats::add(&st.calls, 1);
        }
        // A panic resumed by `run`, payload intact.
        85..=92 => {
            let got = catch_unwind(AssertUnwindSafe(|| {
                b.run(move || async move {
                    let v = R::task(x).await;
                    if v != u64::MAX {
                        panic_any(Expected(v));
                    }
                })
            }));
            match got {
                Err(p) if p.downcast_ref::<Expected>() == Some(&Expected(x)) => {
                    Stats::add(&st.panics, 1)
                }
                Err(p) => st.fail(format!(
                    "{name}: run resumed a wrong payload {:?}",
                    payload_message(&*p)
                )),
                Ok(()) => st.fail(format!("{name}: run did not resume the panic")),
            }
            Stats::add(&st.calls, 1);
        }
        // A stream that panics after `k` items: `next` resumes it.
        _ => {
            let k = rng.below(10);
            // Items ready at once (they travel in one batch with the panic
            // right behind) or each after a yield (one by one).
            let yielding = x % 2 == 0;
            let mut it = b.iter(move || {
                stream::iter(0u64..).then(move |i| async move {
                    if yielding {
                        futures_lite::future::yield_now().await;
                    }
                    if i == k {
                        panic_any(Expected(x));
                    }
                    i
                })
            });
            let mut seen = 0;
            let got = catch_unwind(AssertUnwindSafe(|| {
                for v in it.by_ref() {
                    if v != seen {
                        return Err(format!("{name}: stream item {v}, expected {seen}"));
                    }
                    seen += 1;
                }
                Ok(())
            }));
            match got {
                Err(p) if p.downcast_ref::<Expected>() == Some(&Expected(x)) => {
                    Stats::add(&st.panics, 1)
                }
                Err(_) => st.fail(format!("{name}: next resumed a wrong payload")),
                Ok(Err(msg)) => st.fail(msg),
                Ok(Ok(())) => st.fail(format!("{name}: panicking stream ended without a panic")),
            }
            check!(
                st,
                seen == k,
                "{name}: {seen} items before the panic, expected {k}"
            );
            check!(
                st,
                it.next().is_none(),
                "{name}: iterator not fused after a panic"
            );
            Stats::add(&st.items, seen);
            Stats::add(&st.calls, 1);
        }
    }
}

/// An `AsyncWrite` that keeps what it is given, as a file would.
struct Collect(Arc<Mutex<(Vec<u8>, bool)>>);

impl futures_lite::AsyncWrite for Collect {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().0.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.lock().unwrap().1 = true;
        std::task::Poll::Ready(Ok(()))
    }
}

/// One `writer`, `sink` or `io` session on `b`, checked.
fn io_op<R: Adapter>(b: &Bridge<R>, x: u64, st: &Stats) {
    let name = R::NAME;
    let n = 1 + (x % 5000) as usize;
    let data: Vec<u8> = (0..n).map(|i| (i as u64 ^ x) as u8).collect();
    match x % 3 {
        0 => {
            let kept = Arc::new(Mutex::new((Vec::new(), false)));
            let sink = Collect(kept.clone());
            let mut out = b.writer(move || sink);
            let wrote = data.chunks(700).try_for_each(|c| out.write_all(c));
            let closed = out.close();
            let kept = kept.lock().unwrap();
            check!(
                st,
                wrote.is_ok() && closed.is_ok() && kept.0 == data && kept.1,
                "{name}: writer: {wrote:?} {closed:?}, {} of {n} bytes, closed {}",
                kept.0.len(),
                kept.1
            );
        }
        1 => {
            let capacity = 1 + (x % 8) as usize;
            let sink = b.sink(capacity, |mut items| async move {
                let mut sum = 0u64;
                while let Some(v) = items.next().await {
                    if v % 64 == 0 {
                        R::pause(Duration::from_micros(20)).await;
                    }
                    sum += v;
                }
                sum
            });
            let sent = (0..n as u64).try_for_each(|v| sink.send(v));
            if x % 5 == 0 {
                drop(sink); // finishes in the background
            } else {
                let sum = sink.close();
                let want = (n as u64) * (n as u64 - 1) / 2;
                check!(
                    st,
                    sent.is_ok() && sum == want,
                    "{name}: sink: {sent:?}, sum {sum}, expected {want}"
                );
            }
            Stats::add(&st.items, n as u64);
        }
        _ => {
            let mut file = b.io(futures_lite::io::Cursor::new(Vec::new()));
            let pos = (x as usize) % n;
            let mut back = vec![0; n - pos];
            let got = file
                .write_all(&data)
                .and_then(|()| file.seek(SeekFrom::Start(pos as u64)))
                .and_then(|at| file.read_exact(&mut back).map(|()| at));
            check!(
                st,
                matches!(got, Ok(at) if at == pos as u64) && back == data[pos..],
                "{name}: io: {got:?}, read back {} bytes from {pos}",
                back.len()
            );
        }
    }
    Stats::add(&st.calls, 1);
}

/// The enabled adapters' bridges.
struct Bridges {
    ops: Vec<Op>,
    names: Vec<&'static str>,
    loop_threads: Vec<Box<dyn Fn() -> usize + Send + Sync>>,
}

type Op = Box<dyn Fn(&mut Rng, &Stats) + Send + Sync>;

impl Bridges {
    fn new(idle_timeout: Duration) -> Self {
        let mut bridges = Bridges {
            ops: Vec::new(),
            names: Vec::new(),
            loop_threads: Vec::new(),
        };
        bridges.add::<Pollster>("soak-pollster", idle_timeout);
        #[cfg(feature = "tokio")]
        bridges.add::<executor_bridge::Tokio>("soak-tokio", idle_timeout);
        #[cfg(feature = "smol")]
        bridges.add::<executor_bridge::Smol>("soak-smol", idle_timeout);
        #[cfg(feature = "async-std")]
        bridges.add::<executor_bridge::AsyncStd>("soak-astd", idle_timeout);
        bridges
    }

    fn add<R: Adapter>(&mut self, thread_name: &str, idle_timeout: Duration) {
        let b = Bridge::builder(R::make())
            .thread_name(thread_name)
            .idle_timeout(idle_timeout)
            .build();
        // Start the runtime's own threads (reactor, executor, workers) now,
        // so they count in the baseline: inline, no loop thread.
        assert_eq!(
            b.run(|| async {
                R::pause(Duration::from_micros(1)).await;
                R::task(1).await
            }),
            1
        );
        let counted = b.clone();
        self.loop_threads.push(Box::new(move || counted.threads()));
        self.ops.push(Box::new(move |rng, st| one_op(&b, rng, st)));
        self.names.push(R::NAME);
    }

    fn loop_threads(&self) -> Vec<usize> {
        self.loop_threads.iter().map(|f| f()).collect()
    }
}

fn caller_loop(bridges: &Bridges, seed: u64, stop: Instant, st: &Stats) {
    let mut rng = Rng(seed | 1);
    while Instant::now() < stop {
        let i = rng.below(bridges.ops.len() as u64) as usize;
        (bridges.ops[i])(&mut rng, st);
    }
}

/// Silences the soak's own panics; others print as usual.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let expected = payload.is::<Expected>()
            || payload_message(payload).is_some_and(|m| m.starts_with(PANIC_PREFIX));
        if !expected {
            default(info);
        }
    }));
}

/// Runs the soak and returns what it saw.
pub fn soak(config: &Config) -> Report {
    install_panic_hook();
    let bridges = Arc::new(Bridges::new(config.idle_timeout));
    let mut report = Report {
        adapters: bridges.names.clone(),
        ..Report::default()
    };

    // The baseline: the runtimes' own threads are up, no loop thread is.
    let settle = Instant::now() + config.idle_timeout + Duration::from_secs(10);
    while bridges.loop_threads().iter().sum::<usize>() > 0 && Instant::now() < settle {
        thread::sleep(Duration::from_millis(10));
    }
    report.threads_start = process_threads();
    report.rss_start_kb = rss_kb();

    // Monitor: loop threads and process threads, RSS at a third of the run.
    let stats = Arc::new(Stats::default());
    let done = Arc::new(AtomicBool::new(false));
    let begin = Instant::now();
    let stop = begin + config.duration;
    let monitor = {
        let bridges = bridges.clone();
        let done = done.clone();
        let third = begin + config.duration / 3;
        thread::Builder::new()
            .name("soak-monitor".into())
            .spawn(move || {
                let mut max_total = 0;
                let mut max_each = vec![0; bridges.names.len()];
                let mut max_process = 0;
                let mut rss_mid = None;
                while !done.load(Relaxed) {
                    let each = bridges.loop_threads();
                    max_total = max_total.max(each.iter().sum());
                    for (m, n) in max_each.iter_mut().zip(each) {
                        *m = (*m).max(n);
                    }
                    max_process = max_process.max(process_threads());
                    if rss_mid.is_none() && Instant::now() >= third {
                        rss_mid = Some(rss_kb());
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                (
                    max_total,
                    max_each,
                    max_process,
                    rss_mid.unwrap_or_else(rss_kb),
                )
            })
            .expect("start the monitor")
    };

    // The callers: plain threads, current_thread runtimes, worker tasks.
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("soak-caller-mt")
        .enable_all()
        .build()
        .expect("build the callers' multi_thread runtime");
    let finished = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..config.callers {
        let kind = i % 3;
        report.callers[kind] += 1;
        let bridges = bridges.clone();
        let stats = stats.clone();
        let finished = finished.clone();
        let mt = mt.handle().clone();
        let seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1);
        let handle = thread::Builder::new()
            .name(format!("soak-caller-{i}"))
            .spawn(move || {
                let body = move || caller_loop(&bridges, seed, stop, &stats);
                let outcome = catch_unwind(AssertUnwindSafe(|| match kind {
                    0 => body(),
                    1 => tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("build a current_thread runtime")
                        .block_on(async move { body() }),
                    _ => {
                        if let Err(e) = mt.block_on(mt.spawn(async move { body() })) {
                            std::panic::resume_unwind(e.into_panic())
                        }
                    }
                }));
                finished.fetch_add(1, Relaxed);
                outcome
            })
            .expect("start a caller");
        handles.push(handle);
    }

    // Wait for them, within the grace period.
    let hang_at = stop + config.grace;
    while finished.load(Relaxed) < config.callers && Instant::now() < hang_at {
        thread::sleep(Duration::from_millis(20));
    }
    let hung = config.callers - finished.load(Relaxed);
    if hung > 0 {
        report.failures.push(format!(
            "{hung} callers still running {:?} after the end",
            config.grace
        ));
    } else {
        for (i, handle) in handles.into_iter().enumerate() {
            if let Ok(Err(payload)) | Err(payload) = handle.join() {
                report.failures.push(format!(
                    "caller {i} panicked: {}",
                    payload_message(&*payload).unwrap_or("<non-string payload>")
                ));
            }
        }
    }
    done.store(true, Relaxed);
    let (max_total, max_each, max_process, rss_mid) = monitor.join().expect("monitor");
    if hung == 0 {
        drop(mt);
    } else {
        mt.shutdown_background();
    }
    report.seconds = begin.elapsed().as_secs_f64();
    report.calls = stats.calls.load(Relaxed);
    report.nested = stats.nested.load(Relaxed);
    report.items = stats.items.load(Relaxed);
    report.timeouts = stats.timeouts.load(Relaxed);
    report.panics = stats.panics.load(Relaxed);
    report.max_loop_threads = max_total;
    report.max_loop_threads_per_adapter = bridges.names.iter().copied().zip(max_each).collect();
    report.max_process_threads = max_process;
    report.rss_mid_kb = rss_mid;
    report.threads_end = process_threads();
    report.rss_end_kb = rss_kb();
    report.failures.extend(
        stats
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..),
    );

    // After the idle timeout: every loop thread gone, the process back to
    // its baseline.
    let idle_start = Instant::now();
    thread::sleep(config.idle_timeout);
    let limit = idle_start + config.idle_timeout + Duration::from_secs(15);
    loop {
        let back = bridges.loop_threads().iter().sum::<usize>() == 0
            && process_threads() <= report.threads_start;
        if back || Instant::now() >= limit {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    report.idle_wait = idle_start.elapsed();
    report.threads_after_idle = process_threads();
    report.rss_after_idle_kb = rss_kb();
    let loop_threads = bridges.loop_threads().iter().sum::<usize>();
    if loop_threads != 0 {
        report.failures.push(format!(
            "{loop_threads} loop threads alive after the idle timeout"
        ));
    }
    if report.threads_after_idle != report.threads_start {
        report.failures.push(format!(
            "{} process threads after the idle timeout, {} at the start",
            report.threads_after_idle, report.threads_start
        ));
    }
    // Generous bounds: no growth with the number of calls. Under load, the
    // last two thirds of the run may add at most half again plus 64 MiB;
    // once idle, at most three times the start plus 256 MiB.
    if report.rss_end_kb > report.rss_mid_kb + report.rss_mid_kb / 2 + 64 * 1024 {
        report.failures.push(format!(
            "RSS grew under steady load: {} kB at 1/3, {} kB at the end",
            report.rss_mid_kb, report.rss_end_kb
        ));
    }
    if report.rss_after_idle_kb > 3 * report.rss_start_kb + 256 * 1024 {
        report.failures.push(format!(
            "RSS {} kB after the idle timeout, {} kB at the start",
            report.rss_after_idle_kb, report.rss_start_kb
        ));
    }
    if report.calls == 0 {
        report.failures.push("no call was made".into());
    }
    report
}
