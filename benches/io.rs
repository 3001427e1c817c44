//! Real IO through the bridge, side by side with what the same work costs
//! without it, in the same run: time per operation, ratios to the baselines
//! and thread wake-ups (voluntary context switches of the whole process)
//! per operation, each waiting row measured idle and with one core kept busy
//! by an unrelated spinning thread.
//!
//! Groups (criterion measures time; the tables printed at the end measure
//! time and switches in alternating rounds of the contenders, medians of
//! rounds):
//! - `tcp_rtt_64b_plain`: a 64-byte request/response round trip on a
//!   loopback socket kept across calls, from a plain thread: `bridge.run`
//!   over a tokio `TcpStream` (`Tokio::new()`, caller-driven, and
//!   `Tokio::from_runtime` of a 1-worker multi_thread runtime),
//!   `bridge.io` over the same kind of stream, tokio's `Handle::block_on`
//!   on a 1-worker multi_thread runtime, std blocking `TcpStream` (the
//!   physical limit), std non-blocking + `epoll_wait` (the floor of any
//!   reactor), and an actor thread owning a current_thread runtime (the
//!   `reqwest::blocking` pattern);
//! - `tcp_rtt_64b_in_current_thread`: the same round trip from inside a
//!   tokio current_thread runtime: the bridge vs the actor;
//! - `http_get_1_thread`, `http_get_8_threads`: HTTP/1.1 GET with
//!   keep-alive against a local axum server: `Bridge<Tokio>` +
//!   `reqwest::Client` vs `reqwest::blocking::Client`;
//! - `tcp_write_4k`: blocking writes of 4 KiB into a loopback socket
//!   (a discard server): `bridge.writer` and `bridge.io` over a tokio
//!   `TcpStream` (compat) vs std `TcpStream`, std `BufWriter` (64 KiB, the
//!   writer's chunk size) and tokio-util's `SyncIoBridge`;
//! - `file_write_4k`: the same into a fresh file per measurement: std `File`
//!   vs `bridge.writer` / `bridge.io` over `tokio::fs::File` and the
//!   `SyncIoBridge`.
//!
//! Every server (echo, discard, axum) runs in a child process (this binary,
//! re-executed with `EXECUTOR_BRIDGE_BENCH_SERVER` set), so its own
//! wake-ups are not counted in ours. Only loopback addresses are used.
//!
//! The `sync_io_bridge` rows are `tokio_util::io::SyncIoBridge` on a
//! multi_thread runtime's handle (it calls `handle.block_on` per operation).
//!
//! ```text
//! cargo bench --all-features --bench io
//! cargo bench --all-features --bench io -- tcp_rtt     # some groups only
//! ```

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use executor_bridge::{Bridge, Tokio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream as TokioTcp;
use tokio::runtime::{Builder as RtBuilder, Runtime as TokioRt};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
use tokio_util::io::SyncIoBridge;

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
        .measurement_time(Duration::from_millis(900))
        .sample_size(10)
        .nresamples(10_000)
        .without_plots()
}

// ===== the servers, in a child process =====

const SERVER_ENV: &str = "EXECUTOR_BRIDGE_BENCH_SERVER";

/// A server in a child process; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .env(SERVER_ENV, kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server child process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("child stdout"))
            .read_line(&mut line)
            .expect("server address");
        let addr = line.trim().parse().expect("a socket address");
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's main: serves on loopback until its stdin closes.
fn server_main(kind: &str) -> ! {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("{}", listener.local_addr().expect("local addr"));
    io::stdout().flush().expect("flush");
    // The parent holds our stdin: when it goes away, so do we.
    thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    match kind {
        "echo" => serve_threads(listener, |mut s| {
            let mut buf = [0u8; MSG];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        }),
        "discard" => serve_threads(listener, |mut s| {
            let mut buf = vec![0u8; 256 * 1024];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }),
        "http" => {
            use axum::serve::ListenerExt;
            listener.set_nonblocking(true).expect("nonblocking");
            RtBuilder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime")
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("tokio listener")
                        .tap_io(|tcp| {
                            let _ = tcp.set_nodelay(true);
                        });
                    let app =
                        axum::Router::new().route("/", axum::routing::get(|| async { HTTP_BODY }));
                    axum::serve(listener, app).await.expect("serve");
                });
        }
        other => panic!("unknown server {other}"),
    }
    std::process::exit(0)
}

fn serve_threads(listener: std::net::TcpListener, conn: fn(std::net::TcpStream)) {
    for s in listener.incoming() {
        let Ok(s) = s else { continue };
        let _ = s.set_nodelay(true);
        thread::spawn(move || conn(s));
    }
}

// ===== the operations =====

/// The round trip's message size.
const MSG: usize = 64;
const HTTP_BODY: &str = "hello from axum";

async fn tokio_rtt(s: &mut TokioTcp) {
    let mut buf = [7u8; MSG];
    s.write_all(&buf).await.expect("write");
    s.read_exact(&mut buf).await.expect("read");
}

fn std_rtt(s: &mut std::net::TcpStream) {
    let mut buf = [7u8; MSG];
    s.write_all(&buf).expect("write");
    s.read_exact(&mut buf).expect("read");
}

async fn connect_tokio(addr: SocketAddr) -> TokioTcp {
    let s = TokioTcp::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn connect_std(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn multi_thread(workers: usize) -> TokioRt {
    RtBuilder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("multi_thread runtime")
}

fn current_thread() -> TokioRt {
    RtBuilder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime")
}

fn timed(n: u64, mut op: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        op();
    }
    t.elapsed()
}

/// `bridge.run` of one round trip, the stream moved in and back out.
fn bridge_rtt(name: &str, bridge: Bridge<Tokio>, addr: SocketAddr) -> Contender {
    let mut stream = Some(bridge.run(move || connect_tokio(addr)));
    contender(name, move |n| {
        timed(n, || {
            let mut s = stream.take().expect("stream");
            stream = Some(bridge.run(move || async move {
                tokio_rtt(&mut s).await;
                s
            }));
        })
    })
}

/// The reqwest::blocking pattern: a thread owns a current_thread runtime and
/// the socket; requests come over a tokio mpsc channel, replies go back over
/// a tokio oneshot the caller blocks on.
/// A request to the actor: the message, and where its reply goes.
type Request = ([u8; MSG], tokio::sync::oneshot::Sender<[u8; MSG]>);

struct Actor {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Actor {
    fn start(addr: SocketAddr) -> Actor {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
        let thread = thread::Builder::new()
            .name("actor".into())
            .spawn(move || {
                current_thread().block_on(async move {
                    let mut s = connect_tokio(addr).await;
                    while let Some((mut buf, reply)) = rx.recv().await {
                        s.write_all(&buf).await.expect("write");
                        s.read_exact(&mut buf).await.expect("read");
                        let _ = reply.send(buf);
                    }
                })
            })
            .expect("actor thread");
        Actor {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Blocks whatever thread calls it, as reqwest::blocking's `wait` does
    /// (`unconstrained`: inside a tokio task the coop budget is never
    /// refilled while this blocks).
    fn call(&self) -> [u8; MSG] {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .as_ref()
            .expect("actor running")
            .send(([7u8; MSG], reply))
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

/// std non-blocking socket + `epoll_wait` (edge-triggered, as tokio's).
struct Epoll {
    stream: std::net::TcpStream,
    ep: OwnedFd,
}

impl Epoll {
    fn connect(addr: SocketAddr) -> Epoll {
        let stream = connect_std(addr);
        stream.set_nonblocking(true).expect("nonblocking");
        // SAFETY: plain syscalls on descriptors we own.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0, "epoll_create1");
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 0,
        };
        let rc = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut ev,
            )
        };
        assert_eq!(rc, 0, "epoll_ctl");
        Epoll { stream, ep }
    }

    fn rtt(&mut self) {
        let mut buf = [7u8; MSG];
        (&self.stream).write_all(&buf).expect("write");
        let mut got = 0;
        while got < MSG {
            match (&self.stream).read(&mut buf[got..]) {
                Ok(0) => panic!("echo server closed"),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
                    // SAFETY: `events` has room for 4 entries.
                    let rc = unsafe {
                        libc::epoll_wait(self.ep.as_raw_fd(), events.as_mut_ptr(), 4, -1)
                    };
                    if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                        panic!("epoll_wait: {}", io::Error::last_os_error());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn rtt_plain(addr: SocketAddr) -> Group {
    let mt = multi_thread(1);
    let mut mt_stream = mt.block_on(connect_tokio(addr));
    let handle = mt.handle().clone();
    let mut std_stream = connect_std(addr);
    let mut epoll = Epoll::connect(addr);
    let actor = Actor::start(addr);
    let io_bridge = Bridge::new(Tokio::new());
    let io_stream = io_bridge.run(move || connect_tokio(addr));
    let mut io = io_bridge.io(io_stream.compat());
    Group::new(
        "tcp_rtt_64b_plain",
        "64 B request/response on a kept loopback socket (echo server in a child process), from a plain thread; per round trip",
    )
    .base("std_blocking")
    .base("actor_current_thread")
    .add(bridge_rtt(
        "bridge_run_tokio_new",
        Bridge::new(Tokio::new()),
        addr,
    ))
    .add(
        bridge_rtt(
            "bridge_run_tokio_mt1",
            Bridge::new(Tokio::from_runtime(multi_thread(1))),
            addr,
        )
        .vs_own("tokio_mt1_handle_block_on"),
    )
    .add(contender("bridge_io_tokio_new", move |n| {
        timed(n, || {
            let mut buf = [7u8; MSG];
            io.write_all(&buf).expect("write");
            io.read_exact(&mut buf).expect("read");
        })
    }))
    .add(contender("tokio_mt1_handle_block_on", move |n| {
        timed(n, || handle.block_on(tokio_rtt(&mut mt_stream)))
    }))
    .add(contender("std_blocking", move |n| {
        timed(n, || std_rtt(&mut std_stream))
    }))
    .add(contender("std_nonblocking_epoll", move |n| {
        timed(n, || epoll.rtt())
    }))
    .add(contender("actor_current_thread", move |n| {
        timed(n, || {
            std::hint::black_box(actor.call());
        })
    }))
    .keep(mt)
    .keep(io_bridge)
}

/// Runs `n` operations inside `ct`'s `block_on` (the caller is inside a
/// tokio current_thread runtime).
fn in_runtime(ct: &TokioRt, n: u64, op: impl FnMut()) -> Duration {
    ct.block_on(async { timed(n, op) })
}

fn rtt_in_runtime(addr: SocketAddr) -> Group {
    let ct = Arc::new(current_thread());
    let in_ct = |name: &str, bridge: Bridge<Tokio>| {
        let ct = Arc::clone(&ct);
        let mut stream = Some(bridge.run(move || connect_tokio(addr)));
        contender(name, move |n| {
            in_runtime(&ct, n, || {
                let mut s = stream.take().expect("stream");
                stream = Some(bridge.run(move || async move {
                    tokio_rtt(&mut s).await;
                    s
                }));
            })
        })
    };
    let bridge_new = in_ct("bridge_run_tokio_new", Bridge::new(Tokio::new()));
    let bridge_mt = in_ct(
        "bridge_run_tokio_mt1",
        Bridge::new(Tokio::from_runtime(multi_thread(1))),
    );
    let actor = Actor::start(addr);
    let ct2 = Arc::clone(&ct);
    Group::new(
        "tcp_rtt_64b_in_current_thread",
        "the same round trip from inside a tokio current_thread runtime (its block_on body)",
    )
    .base("actor_current_thread")
    .add(bridge_new)
    .add(bridge_mt)
    .add(contender("actor_current_thread", move |n| {
        in_runtime(&ct2, n, || {
            std::hint::black_box(actor.call());
        })
    }))
}

/// Splits `n` operations over `threads` threads started together; the wall
/// time from their start to the last one's end, scaled to `n`.
fn parallel(threads: usize, n: u64, op: impl Fn() + Sync) -> Duration {
    if threads == 1 {
        return timed(n, op);
    }
    let per = (n / threads as u64).max(1);
    let barrier = std::sync::Barrier::new(threads + 1);
    let (op, barrier) = (&op, &barrier);
    let start = thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(move || {
                barrier.wait();
                for _ in 0..per {
                    op();
                }
            });
        }
        barrier.wait();
        // The scope joins every caller before it returns.
        Instant::now()
    });
    start
        .elapsed()
        .mul_f64(n as f64 / (per * threads as u64) as f64)
}

fn http_get(addr: SocketAddr, threads: usize) -> Group {
    let url: Arc<str> = format!("http://{addr}/").into();
    let via_bridge = |name: String, bridge: Bridge<Tokio>| {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client");
        let url = Arc::clone(&url);
        contender(name, move |n| {
            parallel(threads, n, || {
                let (client, url) = (client.clone(), Arc::clone(&url));
                let body = bridge.run(move || async move {
                    let resp = client.get(&*url).send().await.expect("GET");
                    resp.bytes().await.expect("body")
                });
                assert_eq!(body.len(), HTTP_BODY.len());
            })
        })
    };
    let blocking = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("blocking client");
    let blocking_url = Arc::clone(&url);
    let (name, suffix, base) = if threads == 1 {
        ("http_get_1_thread", "", "reqwest_blocking")
    } else {
        ("http_get_8_threads", "_x8", "reqwest_blocking_x8")
    };
    Group::new(
        name,
        format!(
            "HTTP/1.1 GET with keep-alive, local axum server in a child process, {threads} calling thread(s) \
             sharing one client; wall time per GET (aggregate)"
        ),
    )
    .base(base)
    .add(via_bridge(
        format!("bridge_tokio_new_reqwest{suffix}"),
        Bridge::new(Tokio::new()),
    ))
    .add(via_bridge(
        format!("bridge_tokio_mt1_reqwest{suffix}"),
        Bridge::new(Tokio::from_runtime(multi_thread(1))),
    ))
    .add(contender(format!("reqwest_blocking{suffix}"), move |n| {
        parallel(threads, n, || {
            let body = blocking
                .get(&*blocking_url)
                .send()
                .expect("GET")
                .bytes()
                .expect("body");
            assert_eq!(body.len(), HTTP_BODY.len());
        })
    }))
}

/// One write's size in the writer groups.
const WRITE: usize = 4096;

/// `n` writes of [`WRITE`] bytes, then a flush.
fn writes(n: u64, w: &mut impl Write) -> Duration {
    let chunk = [0x5au8; WRITE];
    let t = Instant::now();
    for _ in 0..n {
        w.write_all(&chunk).expect("write");
    }
    w.flush().expect("flush");
    t.elapsed()
}

fn tcp_writer(addr: SocketAddr) -> Group {
    let bridge = Bridge::new(Tokio::new());
    let mut std_stream = connect_std(addr);
    let mut buffered = BufWriter::with_capacity(64 * 1024, connect_std(addr));
    let s = bridge.run(move || connect_tokio(addr));
    let mut writer = bridge.writer(move || s.compat_write());
    let s = bridge.run(move || connect_tokio(addr));
    let mut io = bridge.io(s.compat());
    let mt = multi_thread(1);
    let mut sync_io =
        SyncIoBridge::new_with_handle(mt.block_on(connect_tokio(addr)), mt.handle().clone());
    Group::new(
        "tcp_write_4k",
        format!(
            "blocking writes of {WRITE} B into a kept loopback socket (discard server in a child process), \
             a flush at the end of each measurement; per write"
        ),
    )
    .base("std_tcpstream")
    .base("std_bufwriter_64k")
    .bytes(WRITE as u64)
    .add(contender("bridge_writer_tokio_new", move |n| {
        writes(n, &mut writer)
    }))
    .add(contender("bridge_io_tokio_new", move |n| writes(n, &mut io)))
    .add(contender("std_tcpstream", move |n| {
        writes(n, &mut std_stream)
    }))
    .add(contender("std_bufwriter_64k", move |n| {
        writes(n, &mut buffered)
    }))
    .add(contender("sync_io_bridge_mt1", move |n| {
        writes(n, &mut sync_io)
    }))
    .keep(mt)
    .keep(bridge)
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_writer() -> Group {
    let dir = std::env::temp_dir().join(format!("executor-bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let fresh = {
        let dir = dir.clone();
        move |name: &str| std::fs::File::create(dir.join(name)).expect("create file")
    };
    let bridge = Bridge::new(Tokio::new());
    let mt = multi_thread(1);
    let handle = mt.handle().clone();
    let (f1, f2, f3, f4) = (fresh.clone(), fresh.clone(), fresh.clone(), fresh);
    let (b1, b2) = (bridge.clone(), bridge.clone());
    Group::new(
        "file_write_4k",
        format!(
            "blocking writes of {WRITE} B into a fresh file per measurement (writes and close/flush timed, \
             the open not); per write"
        ),
    )
    .base("std_file")
    .bytes(WRITE as u64)
    .add(contender("bridge_writer_tokio_fs", move |n| {
        let f = f1("writer.bin");
        let t = Instant::now();
        let mut w = b1.writer(move || tokio::fs::File::from_std(f).compat_write());
        writes(n, &mut w);
        w.close().expect("close");
        t.elapsed()
    }))
    .add(contender("bridge_io_tokio_fs", move |n| {
        let f = f2("io.bin");
        let t = Instant::now();
        let mut io = b2.io(tokio::fs::File::from_std(f).compat());
        writes(n, &mut io);
        drop(io);
        t.elapsed()
    }))
    .add(contender("std_file", move |n| {
        let mut f = f3("std.bin");
        let t = Instant::now();
        writes(n, &mut f);
        drop(f);
        t.elapsed()
    }))
    .add(contender("sync_io_bridge_tokio_fs", move |n| {
        let f = f4("sync.bin");
        let t = Instant::now();
        let mut w = SyncIoBridge::new_with_handle(tokio::fs::File::from_std(f), handle.clone());
        writes(n, &mut w);
        drop(w);
        t.elapsed()
    }))
    .keep(mt)
    .keep(bridge)
    .keep(Scratch(dir))
}

fn main() {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        server_main(&kind);
    }
    let mut c = criterion().configure_from_args();
    if selected("tcp_rtt_64b") {
        let echo = Server::start("echo");
        run_group(&mut c, "tcp_rtt_64b_plain", || rtt_plain(echo.addr));
        run_group(&mut c, "tcp_rtt_64b_in_current_thread", || {
            rtt_in_runtime(echo.addr)
        });
    }
    if selected("http_get") {
        let http = Server::start("http");
        run_group(&mut c, "http_get_1_thread", || http_get(http.addr, 1));
        run_group(&mut c, "http_get_8_threads", || http_get(http.addr, 8));
    }
    if selected("tcp_write_4k") {
        let discard = Server::start("discard");
        run_group(&mut c, "tcp_write_4k", || tcp_writer(discard.addr));
    }
    run_group(&mut c, "file_write_4k", file_writer);
    print_report("io");
    c.final_summary();
}
