//! Randomized invariant tests for every both-ways type of the crate:
//! [`Bridge::writer`], [`Bridge::sink`] (its plain stream and
//! [`SinkStream::results`](executor_bridge::SinkStream::results), and a
//! stream that outlives its consumer), [`Bridge::io`] (step by step against
//! `std::io::Cursor`), [`Bridge::reader`], [`Bridge::iter`] (capacity 0 and
//! 3) and [`Bridge::iter_direct`], on every adapter, from random calling
//! contexts (some calls from another thread and context mid-case), some
//! objects outliving their bridge.
//!
//! The async peers inject faults: `Pending` with a wake at once, later from a
//! timer thread, or from a thread of their own; partial reads and writes;
//! errors at a chosen byte or item; panics in the factory, a poll or `Drop`;
//! a poll that blocks its thread; a `Pending` that never ends. The blocking
//! side writes, sends, reads and polls in random sizes, flushes, closes,
//! times out, returns early (a drop without `close`), or panics mid-way.
//!
//! Every case is a small struct generated from its seed and printed with
//! `{:?}` when it fails, with the line that replays it. Environment:
//!
//! - `EB_SEED=<seed>`: replay that one case (on the adapters the test filter
//!   selects).
//! - `EB_CASES=<factor>`: scale every test's case count (`0.1` for a quick
//!   run). Above about 4 the slowest tests outgrow the 60 s watchdog of
//!   `per_runtime!`: a soak runs several seed sets instead, `EB_BASE=<n>`.
//! - `EB_SLOW=1`: list the cases that took over 20 ms.
//!
//! Each test prints its case count, time, and how many cases saw each
//! outcome (`--nocapture`): a generator that never reaches one shows there.
//!
//! Cases run in batches, each under a watchdog on a bridge of its own whose
//! threads are named after the test: after a batch every thread of that name
//! must be gone, and the process must not have grown its thread count (with
//! slack for the tests running beside this one).

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, BufRead, ErrorKind, Read, Seek, SeekFrom, Write};
use std::panic::{self, catch_unwind, panic_any, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Once};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{BlockingIter, BlockingSink, Bridge, Builder, SendError};
use futures_lite::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite, Stream, StreamExt};

use crate::common::TestRuntime;
use crate::common::{
    eventually, is_broken, message, per_runtime, thread_names, threads_named, watchdog, Ctx,
};

// ===========================================================================
// The machinery: a PRNG, seeds, batches, the watchdog, thread checks.
// ===========================================================================

/// The seed every run starts from unless `EB_SEED` replays one case.
const BASE_SEED: u64 = 0x1DEA_5EED_2024_0B1D;
/// Cases per bridge (and per watchdog).
const BATCH: usize = 25;
/// A batch that takes longer has hung.
const BATCH_SECS: u64 = 40;
/// Threads the process may have gained across a test: the tests running
/// beside it start and stop their own.
const THREAD_SLACK: usize = 96;
/// How long an abort or a drop may take to reach the peer.
const SETTLE: Duration = Duration::from_secs(10);

/// xorshift64*, seeded through splitmix64.
#[derive(Clone, Debug)]
struct Rng(u64);

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `0..n` (0 if `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo) as u64 + 1) as usize
    }

    /// True `per_mille` times in a thousand.
    fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        for chunk in out.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
        out
    }
}

/// What a case saw (its outcomes), counted over a test's cases.
type Tags = Vec<&'static str>;

/// A case of a test: generated from its seed, printed when it fails.
trait Case: fmt::Debug + Clone + Send + 'static {
    fn generate(seed: u64, rng: &mut Rng) -> Self;
    fn setting(&self) -> &Setting;
}

/// What every case has, whatever it tests.
#[derive(Clone, Copy, Debug)]
struct Setting {
    /// Its data and its peers' faults come from it too.
    seed: u64,
    /// The calling context the case runs in.
    ctx: Ctx,
    /// The object is made on a bridge of the case's own, dropped once the
    /// object exists: the object must go on working without it.
    orphan: bool,
}

impl Setting {
    fn new(seed: u64, rng: &mut Rng) -> Setting {
        Setting {
            seed,
            ctx: gen_ctx(rng),
            orphan: rng.chance(80),
        }
    }
}

/// What the peers of one batch share.
#[derive(Clone)]
struct Env {
    /// Thread name prefix of the batch's bridge and helper threads.
    prefix: String,
    alarm: Alarm,
}

/// The bridges of a case: the batch's, and a bridge of the case's own if
/// it is an orphan ([`Setting::orphan`]).
struct Bridges<'a, R: TestRuntime> {
    batch: &'a Bridge<R>,
    own: Option<Bridge<R>>,
}

impl<R: TestRuntime> Bridges<'_, R> {
    /// The bridge to make the case's object on.
    fn object(&self) -> &Bridge<R> {
        self.own.as_ref().unwrap_or(self.batch)
    }

    /// Drops the case's own bridge, if any: the object outlives it from
    /// here on.
    fn orphan(&mut self) {
        self.own = None;
    }
}

/// `EB_CASES`: a factor on every test's case count.
fn scale(default: usize) -> usize {
    let factor = std::env::var("EB_CASES")
        .ok()
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("EB_CASES={v:?}: expected a number (a factor)"))
        })
        .unwrap_or(1.0);
    ((default as f64 * factor).round() as usize).max(1)
}

/// `EB_BASE`: another set of seeds (a soak runs several).
fn base_offset() -> u64 {
    std::env::var("EB_BASE").map_or(0, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("EB_BASE={v:?}: expected a number"))
    })
}

/// `EB_SEED`: one case to replay (decimal or 0x-hex).
fn replay_seed() -> Option<u64> {
    let v = std::env::var("EB_SEED").ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => v.replace('_', "").parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("EB_SEED={v:?}: expected a seed")))
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// The payload of every panic the tests inject (the peers' and the user's):
/// who panicked, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Injected {
    by: &'static str,
    at: u64,
}

/// Raises `inj` (its raiser records it first, where the checks will look).
fn inject(inj: Injected) -> ! {
    panic_any(inj)
}

fn injected(payload: &(dyn Any + Send)) -> Option<Injected> {
    payload.downcast_ref::<Injected>().cloned()
}

fn text(payload: &(dyn Any + Send)) -> String {
    match injected(payload) {
        Some(inj) => format!("{inj:?}"),
        None => message(payload).unwrap_or_else(|| "<a payload of another type>".to_owned()),
    }
}

/// Injected panics are expected by the thousand: the panic hook stays quiet
/// about them (every other panic is reported as before).
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _serial = crate::common::hook_lock();
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Injected>() {
                previous(info);
            }
        }));
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`, catching a panic.
fn attempt<T>(f: impl FnOnce() -> T) -> Result<T, Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(f))
}

/// Runs the cases of one test on the adapter `R`: `build` sets up each
/// batch's bridge (and an orphan's own), `check` runs one case in its
/// calling context and panics if an invariant fails.
fn drive<R: TestRuntime, C: Case>(
    test: &'static str,
    tag: &str,
    default_cases: usize,
    build: fn(Builder<R>) -> Builder<R>,
    check: fn(Bridges<'_, R>, &Env, &C) -> Tags,
) {
    quiet_injected_panics();
    let prefix = format!("{tag}{}", &R::NAME[..1]);
    let replay = replay_seed();
    let seeds: Vec<(usize, u64)> = match replay {
        Some(seed) => vec![(0, seed)],
        None => {
            let base = match base_offset() {
                0 => BASE_SEED ^ name_hash(test),
                n => BASE_SEED ^ name_hash(test) ^ splitmix(n),
            };
            (0..scale(default_cases))
                .map(|i| (i, splitmix(base.wrapping_add(i as u64))))
                .collect()
        }
    };
    let threads_before = thread_names().len();
    let started = Instant::now();
    // How many cases saw each outcome: a generator that never reaches one
    // shows here.
    let mut tags = BTreeMap::<&'static str, usize>::new();
    for batch in seeds.chunks(BATCH) {
        let batch = batch.to_vec();
        let now = Arc::new(Mutex::new(String::from("starting the batch")));
        let (now2, prefix2) = (Arc::clone(&now), prefix.clone());
        let ran = attempt(|| {
            watchdog(BATCH_SECS, move || {
                let mut seen = BTreeMap::<&'static str, usize>::new();
                let name = prefix2.clone();
                let new_bridge =
                    move || build(Bridge::builder(R::make()).thread_name(&name)).build();
                let bridge = new_bridge();
                let env = Env {
                    alarm: Alarm::start(format!("{prefix2}+a")),
                    prefix: prefix2,
                };
                for (i, seed) in batch {
                    let case = C::generate(seed, &mut Rng::new(seed));
                    *lock(&now2) = format!("case {i}, EB_SEED={seed:#x}: {case:?}");
                    let t0 = Instant::now();
                    let Setting { ctx, orphan, .. } = *case.setting();
                    let out = attempt(|| {
                        let (env, case, new_bridge) =
                            (env.clone(), case.clone(), new_bridge.clone());
                        ctx.run(&bridge, move |batch| {
                            let own = orphan.then(new_bridge);
                            check(Bridges { batch: &batch, own }, &env, &case)
                        })
                    });
                    if std::env::var("EB_SLOW").is_ok() && t0.elapsed() > Duration::from_millis(20)
                    {
                        println!("SLOW {:?} {case:?}", t0.elapsed());
                    }
                    match out {
                        Ok(tags) => {
                            for tag in tags {
                                *seen.entry(tag).or_insert(0) += 1;
                            }
                        }
                        Err(payload) => panic!(
                            "invariants::{test} [{rt}] case {i} failed: {msg}\n\
                             replay: EB_SEED={seed:#x} cargo test --all-features --test pool_io \
                             invariants::{test}::{module}\n{case:#?}",
                            rt = R::NAME,
                            module = R::NAME.replace('-', "_"),
                            msg = text(&*payload),
                        ),
                    }
                }
                seen
            })
        });
        match ran {
            Ok(seen) => {
                for (tag, n) in seen {
                    *tags.entry(tag).or_insert(0) += n;
                }
            }
            Err(payload) => {
                let msg = text(&*payload);
                if msg.starts_with("watchdog") {
                    panic!("invariants::{test} [{}]: {msg}, in {}", R::NAME, lock(&now));
                }
                resume_unwind(payload);
            }
        }
        assert!(
            eventually(SETTLE, || threads_named(&prefix) == 0),
            "invariants::{test} [{}]: threads left after a batch: {:?}",
            R::NAME,
            thread_names()
                .into_iter()
                .filter(|n| n.starts_with(&prefix))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        eventually(SETTLE, || thread_names().len()
            <= threads_before + THREAD_SLACK),
        "invariants::{test} [{}]: the process went from {threads_before} threads to {}",
        R::NAME,
        thread_names().len()
    );
    println!(
        "invariants::{test} [{}]: {} cases in {:.2?}; {tags:?}",
        R::NAME,
        seeds.len(),
        started.elapsed()
    );
}

/// A calling context for a case: mostly the cheap ones.
fn gen_ctx(rng: &mut Rng) -> Ctx {
    match rng.below(100) {
        0..=44 => Ctx::Plain,
        45..=64 => Ctx::Nested,
        65..=79 => Ctx::FuturesBlockOn,
        _ => rng.pick(&Ctx::all()),
    }
}

/// An error kind a peer fails with (never `Interrupted`, which readers
/// retry by convention).
fn gen_kind(rng: &mut Rng) -> ErrorKind {
    rng.pick(&[
        ErrorKind::Other,
        ErrorKind::BrokenPipe,
        ErrorKind::ConnectionReset,
        ErrorKind::InvalidData,
        ErrorKind::TimedOut,
        ErrorKind::UnexpectedEof,
        ErrorKind::PermissionDenied,
        ErrorKind::WouldBlock,
    ])
}

/// How often a peer returns `Pending`, per mille of its polls.
fn gen_pending(rng: &mut Rng) -> u32 {
    rng.pick(&[0, 20, 100, 300, 500])
}

/// As [`gen_pending`], for a peer polled about `polls` times: some 40
/// `Pending`s at most, so that a case stays short.
fn gen_pending_for(rng: &mut Rng, polls: usize) -> u32 {
    let most = (40_000 / polls.max(1)).max(1);
    gen_pending(rng).min(u32::try_from(most).unwrap_or(u32::MAX))
}

// ===========================================================================
// Fault injection: late wakes from a timer thread or a thread of their own.
// ===========================================================================

/// A timer thread that wakes wakers at their deadlines; it exits when the
/// last handle is dropped (waking whatever is left).
#[derive(Clone)]
struct Alarm(mpsc::Sender<(Instant, Waker)>);

impl Alarm {
    fn start(name: String) -> Alarm {
        let (tx, rx) = mpsc::channel::<(Instant, Waker)>();
        thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut due: BTreeMap<(Instant, u64), Waker> = BTreeMap::new();
                let mut n = 0u64;
                loop {
                    let now = Instant::now();
                    while let Some(entry) = due.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        entry.remove().wake();
                    }
                    let got = match due.keys().next() {
                        Some(&(at, _)) => rx.recv_timeout(at.saturating_duration_since(now)),
                        None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    };
                    match got {
                        Ok((at, waker)) => {
                            n += 1;
                            due.insert((at, n), waker);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            due.into_values().for_each(Waker::wake);
                            return;
                        }
                    }
                }
            })
            .expect("spawn the alarm thread");
        Alarm(tx)
    }

    fn wake_after(&self, d: Duration, waker: Waker) {
        if let Err(mpsc::SendError((_, waker))) = self.0.send((Instant::now() + d, waker)) {
            waker.wake();
        }
    }
}

/// A peer's source of trouble.
struct Faults {
    rng: Rng,
    /// Per mille of polls that return `Pending`.
    pending: u32,
    alarm: Alarm,
    /// Name of the threads that wake it.
    waker_name: String,
}

impl Faults {
    fn new(seed: u64, pending: u32, env: &Env) -> Faults {
        Faults {
            rng: Rng::new(seed),
            pending,
            alarm: env.alarm.clone(),
            waker_name: format!("{}+t", env.prefix),
        }
    }

    /// Whether this poll returns `Pending`; if so, a wake is on its way: at
    /// once, from the timer thread, or from a thread started for it.
    fn pending(&mut self, cx: &mut Context<'_>) -> bool {
        if self.pending == 0 || !self.rng.chance(self.pending) {
            return false;
        }
        let waker = cx.waker().clone();
        let late = Duration::from_micros(self.rng.below(400));
        match self.rng.below(100) {
            0..=34 => waker.wake(),
            35..=94 => self.alarm.wake_after(late, waker),
            _ => {
                thread::Builder::new()
                    .name(self.waker_name.clone())
                    .spawn(move || {
                        thread::sleep(late);
                        waker.wake();
                    })
                    .expect("spawn a waking thread");
            }
        }
        true
    }

    /// Awaits an injected `Pending` or two (or none).
    async fn stall(&mut self) {
        poll_fn(|cx| {
            if self.pending(cx) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Waits `d`, woken by the timer thread.
    async fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        poll_fn(|cx| {
            let now = Instant::now();
            if now >= until {
                return Poll::Ready(());
            }
            self.alarm.wake_after(until - now, cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// At most `n`, at least 1 (if `n` is): a partial read or write.
    fn partial(&mut self, n: usize, max: usize) -> usize {
        n.min(self.rng.range(1, max.max(1)))
    }
}

/// Calls made from another context than the case's: `(op index, context)`,
/// about one op in twenty.
fn gen_elsewhere(rng: &mut Rng, ops: usize) -> Vec<(usize, Ctx)> {
    let others = &Ctx::all()[1..];
    let mut out = Vec::new();
    for i in 0..ops {
        if rng.chance(50) {
            out.push((i, rng.pick(others)));
        }
    }
    out
}

/// The context the op at `step` is called from, if another than the
/// case's (see [`gen_elsewhere`]).
fn called_from(elsewhere: &[(usize, Ctx)], step: usize) -> Option<Ctx> {
    elsewhere.iter().find(|e| e.0 == step).map(|e| e.1)
}

/// Runs `f` on the object in `obj` from `ctx` on a thread of its own (the
/// object moved there and back), or here.
fn elsewhere<R, O, T>(
    batch: &Bridge<R>,
    ctx: Option<Ctx>,
    obj: &mut Option<O>,
    f: impl FnOnce(&mut O) -> T + Send + 'static,
) -> T
where
    R: TestRuntime,
    O: Send + 'static,
    T: Send + 'static,
{
    match ctx {
        None => f(obj.as_mut().expect("the object")),
        Some(ctx) => {
            let mut moved = obj.take().expect("the object");
            let batch = batch.clone();
            // A thread of its own: the case's context may be a runtime that
            // another cannot start inside.
            let there = thread::Builder::new()
                .name("ivElsewhere".into())
                .spawn(move || {
                    ctx.run(&batch, move |_| {
                        let out = f(&mut moved);
                        (moved, out)
                    })
                })
                .expect("spawn a thread for a call elsewhere");
            let (back, out) = there.join().unwrap_or_else(|p| resume_unwind(p));
            *obj = Some(back);
            out
        }
    }
}

/// What one blocking call did.
enum Got<T> {
    Ok(T),
    Err(ErrorKind, String),
    Panic(Box<dyn Any + Send>),
}

impl<T> Got<T> {
    fn of(f: impl FnOnce() -> io::Result<T>) -> Got<T> {
        match attempt(f) {
            Ok(Ok(v)) => Got::Ok(v),
            Ok(Err(e)) => Got::Err(e.kind(), e.to_string()),
            Err(payload) => Got::Panic(payload),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Got<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Ok(v) => write!(f, "Ok({v:?})"),
            Got::Err(kind, msg) => write!(f, "Err({kind:?}, {msg:?})"),
            Got::Panic(p) => write!(f, "Panic({})", text(&**p)),
        }
    }
}

/// Drops `value` as the user's code panics with it held; checks the panic
/// that comes out is the user's.
#[track_caller]
fn panic_holding<T>(value: T, step: usize) {
    let out = attempt(move || {
        let _held = value;
        inject(Injected {
            by: "user",
            at: step as u64,
        })
    });
    let payload = out.expect_err("the user's panic");
    assert_eq!(
        injected(&*payload),
        Some(Injected {
            by: "user",
            at: step as u64
        }),
        "a panic during the user's unwind replaced the user's: {}",
        text(&*payload)
    );
}

/// How a case ends early with its object held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abort {
    /// A `?` returned early: the object dropped without a close.
    Return,
    /// The user's code panics with the object held.
    Panic,
}

impl Abort {
    const BOTH: [Abort; 2] = [Abort::Return, Abort::Panic];

    /// Ends the case at `step` this way, with `object` held.
    #[track_caller]
    fn end<T>(self, object: T, step: usize) {
        match self {
            Abort::Return => drop(object),
            Abort::Panic => panic_holding(object, step),
        }
    }
}

/// A peer's log: where the peer records the panic it raises, for the
/// checks to compare with the one that comes out.
trait Raises {
    fn raised(&mut self) -> &mut Option<Injected>;
}

/// Records the panic `by` raises at `at` in its log, lets go of the log,
/// and raises it.
fn raise<L: Raises>(mut log: MutexGuard<'_, L>, by: &'static str, at: u64) -> ! {
    let inj = Injected { by, at };
    *log.raised() = Some(inj.clone());
    drop(log);
    inject(inj)
}

/// A peer's factory: it gives `peer`, or, if `panics`, raises its panic
/// (`by`) instead.
fn factory<L, T>(
    log: &Arc<Mutex<L>>,
    panics: bool,
    by: &'static str,
    peer: T,
) -> impl FnOnce() -> T + Send + 'static
where
    L: Raises + Send + 'static,
    T: Send + 'static,
{
    let log = Arc::clone(log);
    move || {
        if panics {
            raise(lock(&log), by, 0);
        }
        peer
    }
}

/// Checks that the panic a call resumed is the one the peer (`who`)
/// raised.
#[track_caller]
fn assert_raised(payload: &(dyn Any + Send), raised: &Option<Injected>, what: &str, who: &str) {
    let inj = injected(payload);
    assert!(
        inj.is_some() && inj == *raised,
        "{what}: a panic that is not the {who}'s: {} (the {who}'s: {raised:?})",
        text(payload)
    );
}

// ===========================================================================
// Bridge::writer
// ===========================================================================

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WOp {
    /// `write` until this many bytes are taken (or it fails).
    Write(usize),
    Flush,
    Close,
    Abort(Abort),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WPanic {
    /// In `poll_write`, once it took this many bytes.
    Write(u64),
    /// In the n-th `poll_flush` (from 0).
    Flush(u32),
    Close,
    Drop,
    /// In the factory: there is no writer.
    Make,
}

/// The async writer's script.
#[derive(Clone, Debug)]
struct WPeer {
    /// A `poll_write` takes at most this many bytes (at least 1).
    max_write: usize,
    pending: u32,
    /// `poll_write` fails once it took this many bytes, and for good.
    error_at: Option<(u64, ErrorKind)>,
    /// The n-th `poll_flush` (from 0) fails.
    flush_error: Option<(u32, ErrorKind)>,
    close_error: Option<ErrorKind>,
    panic: Option<WPanic>,
    /// `poll_write` returns `Pending` for good once it took this many bytes.
    stuck_at: Option<u64>,
}

#[derive(Clone, Debug)]
struct WriterCase {
    setting: Setting,
    ops: Vec<WOp>,
    /// Calls made from another context.
    elsewhere: Vec<(usize, Ctx)>,
    peer: WPeer,
}

/// The bytes the ops write.
fn write_total(ops: &[WOp]) -> usize {
    ops.iter()
        .map(|op| if let WOp::Write(n) = op { *n } else { 0 })
        .sum()
}

fn gen_write_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => rng.range(1, 300),
        60..=84 => rng.range(301, 9_000),
        85..=96 => rng.range(9_001, 70_000),
        _ => rng.range(70_001, 700_000),
    }
}

impl Case for WriterCase {
    fn generate(seed: u64, rng: &mut Rng) -> Self {
        let mut ops = Vec::new();
        // A peer that stops taking bytes for good within the first chunk:
        // more than a chunk written (so that one reaches it), no more than
        // fits ahead of it, no flush, no close: only an abort ends it.
        let stuck = rng.chance(80);
        if stuck {
            let mut total = 0;
            while total <= 64 * 1024 {
                let n = gen_write_len(rng).min(60_000);
                total += n;
                ops.push(WOp::Write(n));
            }
            ops.push(WOp::Abort(rng.pick(&Abort::BOTH)));
        } else {
            for _ in 0..rng.range(0, 12) {
                ops.push(if rng.chance(200) {
                    WOp::Flush
                } else {
                    WOp::Write(gen_write_len(rng))
                });
            }
            let end = rng.pick(&[
                WOp::Close,
                WOp::Close,
                WOp::Abort(Abort::Return),
                WOp::Abort(Abort::Panic),
            ]);
            ops.push(end);
            if end == WOp::Close {
                for _ in 0..rng.range(0, 3) {
                    ops.push(rng.pick(&[WOp::Write(10), WOp::Flush, WOp::Close]));
                }
            }
        }
        let total = write_total(&ops);
        let at = |rng: &mut Rng| rng.below(total as u64 + 2);
        let flushes = ops.iter().filter(|op| **op == WOp::Flush).count() as u64;
        // Many bytes: bigger polls.
        let max_write = if total > 50_000 {
            rng.pick(&[512, 4096, 1 << 20])
        } else {
            rng.pick(&[1, 7, 512, 4096, 1 << 20])
        };
        let peer = WPeer {
            max_write,
            pending: gen_pending_for(rng, total / max_write.min(64 * 1024).div_ceil(2)),
            error_at: (!stuck && rng.chance(250)).then(|| (at(rng), gen_kind(rng))),
            flush_error: rng
                .chance(100)
                .then(|| (rng.below(flushes + 1) as u32, gen_kind(rng))),
            close_error: rng.chance(100).then(|| gen_kind(rng)),
            panic: match rng.below(100) {
                _ if stuck => rng.chance(300).then_some(WPanic::Drop),
                0..=9 => Some(WPanic::Write(at(rng))),
                10..=13 => Some(WPanic::Flush(rng.below(flushes + 1) as u32)),
                14..=17 => Some(WPanic::Close),
                18..=24 => Some(WPanic::Drop),
                25..=27 => Some(WPanic::Make),
                _ => None,
            },
            stuck_at: stuck.then(|| rng.below(60_000)),
        };
        WriterCase {
            elsewhere: gen_elsewhere(rng, ops.len()),
            setting: Setting::new(seed, rng),
            ops,
            peer,
        }
    }

    fn setting(&self) -> &Setting {
        &self.setting
    }
}

/// What the async writer saw.
#[derive(Default)]
struct WLog {
    received: Vec<u8>,
    /// The error it failed with (it fails for good).
    error: Option<(ErrorKind, String)>,
    /// The panic it raised.
    panic: Option<Injected>,
    close_polled: bool,
    /// `poll_close` returned `Ok`.
    closed_clean: bool,
    dropped: bool,
    /// It stopped taking bytes for good.
    stuck: bool,
    /// What a sink must never see.
    violations: Vec<String>,
}

impl fmt::Debug for WLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WLog")
            .field("received_bytes", &self.received.len())
            .field("error", &self.error)
            .field("panic", &self.panic)
            .field("close_polled", &self.close_polled)
            .field("closed_clean", &self.closed_clean)
            .field("dropped", &self.dropped)
            .field("stuck", &self.stuck)
            .field("violations", &self.violations)
            .finish()
    }
}

impl WLog {
    fn failed(&self) -> bool {
        self.error.is_some() || self.panic.is_some()
    }
}

impl Raises for WLog {
    fn raised(&mut self) -> &mut Option<Injected> {
        &mut self.panic
    }
}

struct WriterPeer {
    script: WPeer,
    faults: Faults,
    log: Arc<Mutex<WLog>>,
    written: u64,
    flushes: u32,
}

impl WriterPeer {
    fn fail(&self, log: &mut WLog, kind: ErrorKind, what: &str) -> io::Error {
        let msg = format!("injected {what} error after {} bytes", self.written);
        log.error = Some((kind, msg.clone()));
        io::Error::new(kind, msg)
    }
}

impl AsyncWrite for WriterPeer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.faults.pending(cx) {
            return Poll::Pending;
        }
        let mut log = lock(&this.log);
        if log.close_polled {
            log.violations.push("poll_write after poll_close".into());
        }
        if let Some((kind, msg)) = &log.error {
            return Poll::Ready(Err(io::Error::new(*kind, msg.clone())));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut n = this.faults.partial(buf.len(), this.script.max_write);
        if let Some(at) = this.script.stuck_at {
            if this.written == at {
                log.stuck = true;
                return Poll::Pending;
            }
            if at > this.written {
                n = n.min((at - this.written) as usize);
            }
        }
        if let Some((at, kind)) = this.script.error_at {
            if this.written == at {
                return Poll::Ready(Err(this.fail(&mut log, kind, "write")));
            }
            if at > this.written {
                n = n.min((at - this.written) as usize);
            }
        }
        if let Some(WPanic::Write(at)) = this.script.panic {
            if this.written == at {
                raise(log, "writer poll_write", this.written);
            }
            if at > this.written {
                n = n.min((at - this.written) as usize);
            }
        }
        log.received.extend_from_slice(&buf[..n]);
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.faults.pending(cx) {
            return Poll::Pending;
        }
        let mut log = lock(&this.log);
        if let Some((kind, msg)) = &log.error {
            return Poll::Ready(Err(io::Error::new(*kind, msg.clone())));
        }
        let n = this.flushes;
        this.flushes += 1;
        if let Some((at, kind)) = this.script.flush_error {
            if at == n {
                return Poll::Ready(Err(this.fail(&mut log, kind, "flush")));
            }
        }
        if this.script.panic == Some(WPanic::Flush(n)) {
            raise(log, "writer poll_flush", this.written);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.faults.pending(cx) {
            return Poll::Pending;
        }
        let mut log = lock(&this.log);
        if log.failed() && !log.close_polled {
            log.violations
                .push("poll_close after the sink failed".into());
        }
        log.close_polled = true;
        if let Some((kind, msg)) = &log.error {
            return Poll::Ready(Err(io::Error::new(*kind, msg.clone())));
        }
        if let Some(kind) = this.script.close_error {
            return Poll::Ready(Err(this.fail(&mut log, kind, "close")));
        }
        if this.script.panic == Some(WPanic::Close) {
            raise(log, "writer poll_close", this.written);
        }
        log.closed_clean = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for WriterPeer {
    fn drop(&mut self) {
        let mut log = lock(&self.log);
        log.dropped = true;
        if self.script.panic == Some(WPanic::Drop) && !thread::panicking() {
            raise(log, "writer drop", self.written);
        }
    }
}

/// How far a writer may run ahead of its sink: a buffer being filled, 8
/// chunks waiting, one being written.
const WRITE_AHEAD_BOUND: usize = 10 * 64 * 1024;

/// `write` until all of `buf` is taken, counting what was.
fn write_counted(w: &mut impl Write, buf: &[u8], accepted: &mut usize) -> io::Result<()> {
    let mut rest = buf;
    while !rest.is_empty() {
        let n = w.write(rest)?;
        assert!(
            n > 0 && n <= rest.len(),
            "write took {n} of {} bytes",
            rest.len()
        );
        *accepted += n;
        rest = &rest[n..];
    }
    Ok(())
}

fn writer_case<R: TestRuntime>(mut bridges: Bridges<'_, R>, env: &Env, case: &WriterCase) -> Tags {
    let seed = case.setting.seed;
    let data = Rng::new(seed ^ 0xDA7A).bytes(write_total(&case.ops));
    let log = Arc::new(Mutex::new(WLog::default()));
    let peer = WriterPeer {
        script: case.peer.clone(),
        faults: Faults::new(seed ^ 0xFA17, case.peer.pending, env),
        log: Arc::clone(&log),
        written: 0,
        flushes: 0,
    };
    let make_panics = case.peer.panic == Some(WPanic::Make);
    let mut w = Some(
        bridges
            .object()
            .writer(factory(&log, make_panics, "writer make", peer)),
    );
    bridges.orphan();
    // Bytes `write` took.
    let mut accepted = 0usize;
    // The first error the user saw, and whether the peer's panic resumed.
    let mut first_err: Option<(ErrorKind, String)> = None;
    let mut resumed = false;
    let mut user_closed = false;
    let mut close_ok = false;
    let mut aborted = false;
    let mut tags = Tags::new();
    for (step, &op) in case.ops.iter().enumerate() {
        let at = || format!("step {step} ({op:?})");
        if matches!(op, WOp::Abort(_)) && case.peer.stuck_at.is_some() {
            // Aborted in the middle of a write that never ends.
            let stuck = eventually(SETTLE, || lock(&log).stuck);
            assert!(stuck, "{}: the first chunk never reached the peer", at());
        }
        let writer = match op {
            WOp::Abort(how) => {
                how.end(w.take(), step);
                aborted = true;
                break;
            }
            _ => w.as_ref().expect("the writer"),
        };
        // Once the peer failed and the writer knows it, the next call fails.
        let must_fail = lock(&log).failed() && !close_ok && {
            let known = eventually(SETTLE, || format!("{writer:?}").contains("failed: true"));
            assert!(
                known,
                "{}: the peer failed; the writer never knew: {:?}",
                at(),
                lock(&log)
            );
            tags.push("a call after a known failure");
            true
        };
        let chunk = match op {
            WOp::Write(n) => data[accepted..accepted + n].to_vec(),
            _ => Vec::new(),
        };
        let ctx = called_from(&case.elsewhere, step);
        let (got, took) = elsewhere(bridges.batch, ctx, &mut w, move |writer| {
            let mut took = 0;
            let got = Got::of(|| match op {
                WOp::Write(_) => write_counted(writer, &chunk, &mut took),
                WOp::Flush => writer.flush(),
                _ => writer.close(),
            });
            (got, took)
        });
        accepted += took;
        if op == WOp::Close {
            user_closed = true;
        }
        // Once the peer failed, what it did not take is discarded, not
        // waiting.
        let (received, failed) = {
            let l = lock(&log);
            (l.received.len(), l.failed())
        };
        let behind = accepted - received.min(accepted);
        assert!(
            failed || behind <= WRITE_AHEAD_BOUND,
            "{}: {behind} bytes written and not yet at the peer",
            at()
        );
        match got {
            Got::Panic(payload) => {
                assert_raised(&*payload, &lock(&log).panic, &at(), "peer");
                assert!(!resumed, "{}: the peer's panic resumed twice", at());
                resumed = true;
            }
            Got::Ok(()) => {
                assert!(
                    !must_fail,
                    "{}: Ok although the peer had failed: {:?}",
                    at(),
                    lock(&log)
                );
                assert!(
                    first_err.is_none() && !resumed,
                    "{}: Ok after a failure ({first_err:?}, panic resumed: {resumed})",
                    at()
                );
                let l = lock(&log);
                match op {
                    WOp::Write(_) => assert!(!close_ok, "{}: a write after close took bytes", at()),
                    WOp::Flush => {
                        assert!(!close_ok, "{}: a flush after close succeeded", at());
                        assert!(!l.failed(), "{}: flush Ok, the peer failed: {l:?}", at());
                        assert_eq!(
                            l.received.len(),
                            accepted,
                            "{}: flush returned before every byte reached the peer",
                            at()
                        );
                    }
                    _ if close_ok => {}
                    _ => {
                        assert!(
                            l.closed_clean && l.dropped && !l.failed(),
                            "{}: close Ok, but the peer: closed {}, dropped {}, failed {:?} {:?}",
                            at(),
                            l.closed_clean,
                            l.dropped,
                            l.error,
                            l.panic
                        );
                        assert_eq!(l.received.len(), accepted, "{}: close lost bytes", at());
                        close_ok = true;
                    }
                }
            }
            Got::Err(kind, msg) => {
                if close_ok {
                    assert!(
                        op != WOp::Close && kind == ErrorKind::BrokenPipe,
                        "{}: after a clean close: Err({kind:?}, {msg})",
                        at()
                    );
                } else if resumed {
                    assert_eq!(kind, ErrorKind::Other, "{}: after the panic: {msg}", at());
                } else {
                    let peer_err = lock(&log).error.clone();
                    assert_eq!(
                        Some((kind, msg.clone())),
                        peer_err,
                        "{}: an error that is not the peer's",
                        at()
                    );
                    if let Some(first) = &first_err {
                        assert_eq!(
                            first,
                            &(kind, msg.clone()),
                            "{}: another error than before",
                            at()
                        );
                    }
                    first_err = Some((kind, msg));
                }
            }
        }
    }
    drop(w);
    assert!(
        eventually(SETTLE, || lock(&log).dropped),
        "the peer was never dropped"
    );
    let l = lock(&log);
    assert!(l.violations.is_empty(), "the peer saw: {:?}", l.violations);
    assert!(
        l.received.len() <= accepted && l.received[..] == data[..l.received.len()],
        "the peer received {} bytes, not a prefix of the {accepted} written",
        l.received.len()
    );
    if aborted {
        assert!(!l.close_polled, "aborted, yet the peer was closed");
    }
    assert!(!l.close_polled || user_closed, "closed without close");
    if user_closed {
        let peer_failed = l.failed();
        assert_eq!(
            l.closed_clean && !peer_failed,
            close_ok,
            "close: the peer closed cleanly: {}, failed: {:?} {:?}; close Ok: {close_ok}",
            l.closed_clean,
            l.error,
            l.panic
        );
        if peer_failed {
            assert!(
                first_err.is_some() || resumed,
                "the peer failed ({:?} {:?}) and the user never heard",
                l.error,
                l.panic
            );
        }
    }
    tags.push(match (close_ok, user_closed, aborted) {
        (true, ..) => "closed",
        (_, true, _) => "close failed",
        _ => "aborted",
    });
    if aborted && l.received.len() < accepted {
        tags.push("aborted with bytes unwritten");
    }
    if l.stuck {
        tags.push("aborted while stuck");
    }
    if first_err.is_some() {
        tags.push("error reached the user");
    }
    if resumed {
        tags.push("panic resumed");
    }
    tags
}

// ===========================================================================
// Bridge::sink
// ===========================================================================

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SOp {
    /// Send this many items (numbered on).
    Send(usize),
    Close,
    CloseWithUnsent,
    Abort(Abort),
}

/// The ends of a sink case: closed, or aborted.
const SINK_ENDS: [SOp; 4] = [
    SOp::Close,
    SOp::CloseWithUnsent,
    SOp::Abort(Abort::Return),
    SOp::Abort(Abort::Panic),
];

/// Where the consumer reads its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SMode {
    /// In the consumer itself.
    Direct,
    /// On a thread the consumer hands the stream to, as a request body is
    /// read by another task; the consumer waits for it.
    Handoff,
}

#[derive(Clone, Debug, Default)]
struct SConsumer {
    /// Returns once it received this many items.
    stop_after: Option<usize>,
    /// Waits a millisecond before it returns (items queue up meanwhile).
    linger: bool,
    /// Stops reading for good once it received this many items.
    stuck_after: Option<usize>,
    /// Panics once it received this many items.
    panic_at: Option<usize>,
    /// Something it owns panics in `Drop`.
    drop_panic: bool,
    /// Its factory panics: there is no consumer.
    make_panic: bool,
    pending: u32,
}

#[derive(Clone, Debug)]
struct SinkCase {
    setting: Setting,
    capacity: usize,
    mode: SMode,
    ops: Vec<SOp>,
    consumer: SConsumer,
}

impl Case for SinkCase {
    fn generate(seed: u64, rng: &mut Rng) -> Self {
        let mut ops = Vec::new();
        let mut total = 0;
        for _ in 0..rng.range(0, 8) {
            let n = rng.pick(&[1, 1, 2, 5, 20, 100]);
            total += n;
            ops.push(SOp::Send(n));
        }
        let capacity = rng.pick(&[1, 1, 2, 3, 4, 64]);
        // A consumer that stops reading for good (and never returns): the
        // items sent fit in the queue, and only an abort ends the case.
        let stuck = rng.chance(100);
        ops.push(if stuck {
            SOp::Abort(rng.pick(&Abort::BOTH))
        } else {
            rng.pick(&SINK_ENDS)
        });
        let mode = if rng.chance(250) {
            SMode::Handoff
        } else {
            SMode::Direct
        };
        let direct = mode == SMode::Direct;
        let at = |rng: &mut Rng| rng.range(0, total + 1);
        SinkCase {
            setting: Setting::new(seed, rng),
            capacity,
            mode,
            ops,
            consumer: SConsumer {
                stop_after: rng.chance(200).then(|| at(rng)),
                linger: rng.chance(500),
                panic_at: (direct && rng.chance(150)).then(|| at(rng)),
                drop_panic: direct && rng.chance(80),
                make_panic: rng.chance(30),
                stuck_after: stuck.then(|| rng.range(total.saturating_sub(capacity), total)),
                pending: gen_pending(rng),
            },
        }
    }

    fn setting(&self) -> &Setting {
        &self.setting
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// The stream ended (`None`).
    Clean,
    /// `results()` ended with this error.
    Err(ErrorKind, String),
    /// The handoff thread was told to stop waiting.
    Stopped,
}

/// What the consumer saw.
#[derive(Debug, Default)]
struct SLog {
    received: Vec<u32>,
    end: Option<End>,
    /// It returned or panicked (on its own, not cancelled).
    finished: bool,
    /// Its future was dropped (finished or cancelled).
    dropped: bool,
    panic: Option<Injected>,
    /// The most items it saw waiting.
    max_queued: usize,
    /// It stopped reading for good.
    stuck: bool,
    /// It is done reading and about to drop its stream.
    stopped_reading: bool,
    handoff_started: bool,
    handoff_done: bool,
}

impl Raises for SLog {
    fn raised(&mut self) -> &mut Option<Injected> {
        &mut self.panic
    }
}

/// Owned by the consumer: records its drop, and may panic there.
struct SGuard {
    log: Arc<Mutex<SLog>>,
    panic: bool,
}

impl Drop for SGuard {
    fn drop(&mut self) {
        let mut log = lock(&self.log);
        log.dropped = true;
        if self.panic && !thread::panicking() {
            let inj = Injected {
                by: "consumer drop",
                at: log.received.len() as u64,
            };
            if log.panic.is_none() {
                log.panic = Some(inj.clone());
            }
            drop(log);
            inject(inj);
        }
    }
}

type Items = Pin<Box<dyn Stream<Item = io::Result<u32>> + Send>>;

/// The consumer's stream as it reads it: through `results()`, or plain.
fn items(stream: executor_bridge::SinkStream<u32>, results: bool) -> Items {
    if results {
        Box::pin(stream.results())
    } else {
        Box::pin(stream.map(Ok))
    }
}

/// Hands `items` to a thread of its own (named `name`), as a consumer that
/// spawns a task with its stream would, which reads it until the script
/// or `stop` says; the count it read comes on the channel returned.
fn hand_off(
    name: String,
    items: Items,
    log: Arc<Mutex<SLog>>,
    script: SConsumer,
    mut faults: Faults,
    stop: async_channel::Receiver<()>,
) -> async_channel::Receiver<usize> {
    let (done_tx, done_rx) = async_channel::bounded(1);
    lock(&log).handoff_started = true;
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            let count = futures_lite::future::block_on(drain(
                items,
                &log,
                &script,
                &mut faults,
                Some(stop),
            ));
            lock(&log).handoff_done = true;
            let _ = done_tx.send_blocking(count);
        })
        .expect("spawn the handoff thread");
    done_rx
}

/// Reads `items` until the script says stop; `None` if told to stop from
/// outside first. Notes that it stopped reading before it drops the stream
/// (which refuses later sends).
async fn drain(
    mut items: Items,
    log: &Mutex<SLog>,
    script: &SConsumer,
    faults: &mut Faults,
    stop: Option<async_channel::Receiver<()>>,
) -> usize {
    let count = read(&mut items, log, script, faults, stop).await;
    lock(log).stopped_reading = true;
    drop(items);
    count
}

/// [`drain`]'s reading.
async fn read(
    items: &mut Items,
    log: &Mutex<SLog>,
    script: &SConsumer,
    faults: &mut Faults,
    stop: Option<async_channel::Receiver<()>>,
) -> usize {
    let mut count = 0;
    loop {
        if script.panic_at == Some(count) {
            let mut l = lock(log);
            l.finished = true;
            raise(l, "consumer", count as u64);
        }
        if script.stop_after == Some(count) {
            if script.linger {
                faults.sleep(Duration::from_millis(1)).await;
            }
            return count;
        }
        if script.stuck_after == Some(count) {
            lock(log).stuck = true;
            match &stop {
                None => futures_lite::future::pending::<()>().await,
                Some(stop) => {
                    let _ = stop.recv().await;
                    lock(log).end = Some(End::Stopped);
                    return count;
                }
            }
        }
        faults.stall().await;
        {
            let queued = items.size_hint().0;
            let mut l = lock(log);
            l.max_queued = l.max_queued.max(queued);
        }
        let next = async { Some(items.next().await) };
        let got = match &stop {
            None => next.await,
            Some(stop) => {
                let stopped = async {
                    let _ = stop.recv().await;
                    None
                };
                futures_lite::future::or(next, stopped).await
            }
        };
        match got {
            Some(Some(Ok(item))) => {
                lock(log).received.push(item);
                count += 1;
            }
            Some(Some(Err(e))) => {
                lock(log).end = Some(End::Err(e.kind(), e.to_string()));
                return count;
            }
            Some(None) => {
                lock(log).end = Some(End::Clean);
                return count;
            }
            None => {
                lock(log).end = Some(End::Stopped);
                return count;
            }
        }
    }
}

/// One sink case; with `results`, the consumer reads its stream through
/// `results()`.
fn sink_case<R: TestRuntime>(
    mut bridges: Bridges<'_, R>,
    env: &Env,
    case: &SinkCase,
    results: bool,
) -> Tags {
    let log = Arc::new(Mutex::new(SLog::default()));
    // Dropped at the end of the case: a handoff thread still waiting stops.
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let sink: BlockingSink<u32, usize> = {
        let (log, script, mode) = (Arc::clone(&log), case.consumer.clone(), case.mode);
        let mut faults = Faults::new(case.setting.seed ^ 0xC0, script.pending, env);
        let handoff_name = format!("{}+h", env.prefix);
        // Made here: a consumer aborted before it started is dropped too.
        let guard = SGuard {
            log: Arc::clone(&log),
            panic: script.drop_panic,
        };
        bridges.object().sink(
            case.capacity,
            move |stream| -> Pin<Box<dyn Future<Output = usize>>> {
                if script.make_panic {
                    let mut l = lock(&log);
                    l.finished = true;
                    raise(l, "consumer make", 0);
                }
                let items = items(stream, results);
                match mode {
                    SMode::Direct => Box::pin(async move {
                        let _guard = guard;
                        let count = drain(items, &log, &script, &mut faults, None).await;
                        lock(&log).finished = true;
                        count
                    }),
                    SMode::Handoff => Box::pin(async move {
                        let _guard = guard;
                        let log2 = Arc::clone(&log);
                        let done = hand_off(handoff_name, items, log2, script, faults, stop_rx);
                        let count = done.recv().await.unwrap_or(usize::MAX);
                        lock(&log).finished = true;
                        count
                    }),
                }
            },
        )
    };

    bridges.orphan();
    let mut sink = Some(sink);
    let mut seq = 0u32;
    let mut ok_sent: Vec<u32> = Vec::new();
    let mut refused = false;
    let mut closed = false;
    let mut aborted = false;
    let mut tags = Tags::new();
    let script = &case.consumer;
    // Where the consumer stops reading on its own (it returns, panics, or
    // waits for good).
    let stops_at = [
        script.stop_after,
        script.panic_at,
        script.stuck_after,
        script.make_panic.then_some(0),
    ]
    .into_iter()
    .flatten()
    .min();
    for (step, &op) in case.ops.iter().enumerate() {
        let at = || format!("step {step} ({op:?})");
        match op {
            SOp::Send(n) => {
                let s = sink.as_ref().expect("the sink");
                for _ in 0..n {
                    match attempt(|| s.send(seq)) {
                        Err(payload) => panic!("{}: send panicked: {}", at(), text(&*payload)),
                        Ok(Ok(())) => {
                            assert!(
                                !refused,
                                "{}: item {seq} queued after one was refused",
                                at()
                            );
                            ok_sent.push(seq);
                        }
                        Ok(Err(SendError(item))) => {
                            assert_eq!(item, seq, "{}: another item came back", at());
                            assert!(
                                lock(&log).finished || lock(&log).stopped_reading,
                                "{}: item {seq} refused while the consumer reads",
                                at()
                            );
                            if !refused {
                                tags.push("a send refused");
                            }
                            refused = true;
                        }
                    }
                    seq += 1;
                }
            }
            SOp::Close | SOp::CloseWithUnsent => {
                let s = sink.take().expect("the sink");
                closed = true;
                let with_unsent = op == SOp::CloseWithUnsent;
                let got = attempt(move || {
                    if with_unsent {
                        s.close_with_unsent()
                    } else {
                        (s.close(), Vec::new())
                    }
                });
                let l = lock(&log);
                let reads_all = stops_at.is_none_or(|k| k > ok_sent.len());
                match got {
                    Err(payload) => {
                        assert_raised(&*payload, &l.panic, &at(), "consumer");
                        tags.push("close resumed the consumer's panic");
                    }
                    Ok((count, unsent)) => {
                        if !unsent.is_empty() {
                            tags.push("unsent items came back");
                        }
                        assert!(l.panic.is_none(), "{}: the consumer's panic was lost", at());
                        assert_eq!(count, l.received.len(), "{}: the consumer's output", at());
                        if with_unsent {
                            let mut all = l.received.clone();
                            all.extend(&unsent);
                            assert_eq!(all, ok_sent, "{}: received + unsent != sent", at());
                        }
                    }
                }
                if reads_all {
                    assert_eq!(l.received, ok_sent, "{}: the consumer missed items", at());
                    assert_eq!(l.end, Some(End::Clean), "{}: the stream did not end", at());
                } else {
                    assert_ne!(l.end, Some(End::Clean), "{}: ended past its stop", at());
                }
                break;
            }
            SOp::Abort(how) => {
                how.end(sink.take(), step);
                aborted = true;
                break;
            }
        }
    }
    drop(sink);
    assert!(
        eventually(SETTLE, || lock(&log).dropped),
        "the consumer was never dropped: {:?}",
        lock(&log)
    );
    let handed_off = lock(&log).handoff_started;
    if aborted && handed_off && stops_at.is_none_or(|k| k > ok_sent.len()) {
        // The handed-off stream outlives the consumer: it yields every item
        // queued, then `results()` fails and the plain stream waits forever.
        let all = eventually(SETTLE, || lock(&log).received.len() >= ok_sent.len());
        assert!(
            all,
            "after the abort the handed-off stream lost items: {:?}",
            lock(&log)
        );
        if results {
            let ended = eventually(SETTLE, || lock(&log).end.is_some());
            assert!(ended, "after the abort `results()` never ended");
            let end = lock(&log).end.clone();
            assert!(
                matches!(end, Some(End::Err(ErrorKind::ConnectionAborted, _))),
                "after the abort `results()` ended with {end:?}"
            );
        } else {
            thread::sleep(Duration::from_millis(2));
        }
    }
    drop(stop_tx);
    assert!(
        eventually(SETTLE, || lock(&log).handoff_done || !handed_off),
        "the handoff thread never ended: {:?}",
        lock(&log)
    );
    let l = lock(&log);
    assert_eq!(
        l.received[..],
        ok_sent[..l.received.len().min(ok_sent.len())],
        "the consumer received items not sent, or out of order"
    );
    assert!(
        l.received.len() <= ok_sent.len(),
        "the consumer received more than was sent"
    );
    assert!(
        l.max_queued <= case.capacity,
        "{} items waited, capacity {}",
        l.max_queued,
        case.capacity
    );
    if aborted {
        assert!(
            l.end != Some(End::Clean),
            "the stream ended cleanly after an abort"
        );
        if let Some(End::Err(kind, _)) = &l.end {
            assert!(
                results && *kind == ErrorKind::ConnectionAborted,
                "after an abort: {:?}",
                l.end
            );
        }
    }
    assert!(closed || aborted, "the case neither closed nor aborted");
    tags.push(if closed { "closed" } else { "aborted" });
    if handed_off {
        tags.push("handed off");
    }
    if l.stuck {
        tags.push("aborted while stuck");
    }
    match &l.end {
        Some(End::Clean) => tags.push("the stream ended"),
        Some(End::Err(..)) => tags.push("results() failed"),
        Some(End::Stopped) => tags.push("still waiting after the abort"),
        None => {}
    }
    tags
}

// ===========================================================================
// Bridge::sink, its stream outliving the consumer
// ===========================================================================

/// A consumer that hands its stream to a thread and returns at once (as one
/// that spawns a task with it would): the stream outlives the consumer.
#[derive(Clone, Debug)]
struct DetachedCase {
    setting: Setting,
    capacity: usize,
    /// `results()` rather than the plain stream.
    results: bool,
    /// Items sent before the end (some may come back refused).
    sends: usize,
    end: SOp,
    pending: u32,
}

impl Case for DetachedCase {
    fn generate(seed: u64, rng: &mut Rng) -> Self {
        DetachedCase {
            setting: Setting::new(seed, rng),
            capacity: rng.pick(&[1, 2, 4, 64]),
            results: rng.chance(500),
            sends: rng.pick(&[0, 1, 3, 10, 50]),
            end: rng.pick(&SINK_ENDS),
            pending: gen_pending(rng),
        }
    }

    fn setting(&self) -> &Setting {
        &self.setting
    }
}

fn detached_case<R: TestRuntime>(
    mut bridges: Bridges<'_, R>,
    env: &Env,
    case: &DetachedCase,
) -> Tags {
    let log = Arc::new(Mutex::new(SLog::default()));
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let sink: BlockingSink<u32, ()> = {
        let log = Arc::clone(&log);
        let faults = Faults::new(case.setting.seed ^ 0xDE, case.pending, env);
        let name = format!("{}+h", env.prefix);
        let results = case.results;
        // Dropped with the factory, run or not.
        let guard = SGuard {
            log: Arc::clone(&log),
            panic: false,
        };
        bridges.object().sink(case.capacity, move |stream| {
            let _guard = guard;
            // A consumer that reads all, and returns at once: the stream
            // lives on in the thread.
            let items = items(stream, results);
            hand_off(name, items, log, SConsumer::default(), faults, stop_rx);
            async {}
        })
    };
    bridges.orphan();
    let mut ok_sent = Vec::new();
    for seq in 0..case.sends as u32 {
        if sink.send(seq).is_ok() {
            ok_sent.push(seq);
        }
    }
    let mut tags = Tags::new();
    let closed = matches!(case.end, SOp::Close | SOp::CloseWithUnsent);
    let mut unsent = None;
    match case.end {
        SOp::Close => sink.close(),
        SOp::CloseWithUnsent => unsent = Some(sink.close_with_unsent().1),
        SOp::Abort(how) => how.end(sink, 0),
        SOp::Send(_) => unreachable!("an end"),
    }
    assert!(
        eventually(SETTLE, || lock(&log).dropped),
        "the consumer's factory was never run or dropped"
    );
    if !lock(&log).handoff_started {
        // Aborted before the consumer started: no stream.
        return tags;
    }
    // The stream ends, but a plain stream after an abort waits for good
    // (items the consumer left unread are not its to see): it is told to
    // stop after a while.
    let ended = if closed || case.results {
        // Prompt.
        eventually(SETTLE, || lock(&log).end.is_some())
    } else {
        thread::sleep(Duration::from_millis(10));
        false
    };
    drop(stop_tx);
    assert!(
        eventually(SETTLE, || lock(&log).handoff_done),
        "the handoff thread never ended"
    );
    let l = lock(&log);
    let prefix = l.received[..] == ok_sent[..l.received.len().min(ok_sent.len())];
    let mut all = l.received.clone();
    all.extend(unsent.iter().flatten());
    let partition = unsent.is_none() || all == ok_sent;
    assert!(
        prefix && partition,
        "the stream yielded {:?}, not a prefix of the {:?} sent (unsent: {unsent:?})",
        l.received,
        ok_sent
    );
    assert!(
        !(closed && !case.results && !ended),
        "after close the handed-off stream never ended by itself: {l:?}"
    );
    match (&l.end, closed, case.results) {
        (Some(End::Clean), false, _) => panic!("the stream ended cleanly after an abort"),
        (Some(End::Err(kind, _)), _, true) if *kind == ErrorKind::ConnectionAborted => {
            tags.push("results() failed")
        }
        (Some(End::Clean), true, _) => tags.push("the stream ended"),
        (Some(End::Stopped), false, false) => tags.push("still waiting after the abort"),
        (end, _, _) => panic!(
            "closed: {closed}, results(): {}: the stream ended with {end:?} (ended in time: {ended})",
            case.results
        ),
    }
    tags
}

// ===========================================================================
// Bridge::io, against std::io::Cursor
// ===========================================================================

#[derive(Clone, Debug)]
enum IoOp {
    /// `read` into `len` bytes; the object reads at most `max` at once.
    Read {
        len: usize,
        max: usize,
    },
    /// `write` `len` bytes; the object takes at most `max` at once.
    Write {
        len: usize,
        max: usize,
    },
    Fill,
    /// `consume` this many, at most what `fill_buf` left.
    Consume(usize),
    Seek(SeekFrom),
    Flush,
    /// `BlockingIo::close` (a flush, then `poll_close`).
    Close,
    /// The object fails the next time it is called.
    Fail(ErrorKind),
    /// The object panics the next time it is called; the rest fails.
    Panic,
}

#[derive(Clone, Debug)]
struct IoCase {
    setting: Setting,
    /// `Some(capacity)`: a `BufReader` over the cursor (no writes then).
    buffered: Option<usize>,
    initial: usize,
    pending: u32,
    /// Calls made from another context.
    elsewhere: Vec<(usize, Ctx)>,
    ops: Vec<IoOp>,
}

impl Case for IoCase {
    fn generate(seed: u64, rng: &mut Rng) -> Self {
        let buffered = rng.chance(300).then(|| rng.pick(&[1, 3, 8, 64]));
        let initial = rng.pick(&[0, 5, 40, 200, 1000]);
        let mut ops = Vec::new();
        let mut len = initial;
        let n = rng.range(5, 60);
        while ops.len() < n {
            let seek = |rng: &mut Rng, len: usize| {
                let l = len as i64;
                match rng.below(3) {
                    0 => SeekFrom::Start(rng.below(len as u64 + 20)),
                    1 => SeekFrom::End(rng.range(0, len + 30) as i64 - l - 5),
                    _ => SeekFrom::Current(rng.range(0, 140) as i64 - 70),
                }
            };
            let read = |rng: &mut Rng| IoOp::Read {
                len: rng.pick(&[1, 2, 7, 30, 100, 5000]),
                max: rng.pick(&[1, 3, 64, 1 << 20]),
            };
            let write = |rng: &mut Rng| IoOp::Write {
                len: rng.pick(&[1, 2, 7, 30, 100]),
                max: rng.pick(&[1, 3, 64, 1 << 20]),
            };
            let op = match rng.below(100) {
                0..=19 => read(rng),
                20..=26 if buffered.is_none() => IoOp::Read { len: 0, max: 1 },
                27..=44 if buffered.is_none() => {
                    let op = write(rng);
                    if let IoOp::Write { len: n, .. } = op {
                        len += n;
                    }
                    op
                }
                45..=59 => IoOp::Fill,
                60..=71 => IoOp::Consume(rng.pick(&[0, 1, 3, 50, 10_000])),
                72..=87 => IoOp::Seek(seek(rng, len)),
                88..=90 if buffered.is_none() => IoOp::Flush,
                91 if buffered.is_none() => IoOp::Close,
                // Armed here, tripped by the next call that reaches the
                // object (on both sides alike).
                92..=96 => IoOp::Fail(gen_kind(rng)),
                97 => IoOp::Panic,
                _ => IoOp::Fill,
            };
            ops.push(op);
        }
        IoCase {
            setting: Setting::new(seed, rng),
            buffered,
            initial,
            pending: gen_pending(rng),
            elsewhere: gen_elsewhere(rng, ops.len()),
            ops,
        }
    }

    fn setting(&self) -> &Setting {
        &self.setting
    }
}

/// What the next call into a [`Flaky`] does; the test arms it between
/// calls.
#[derive(Debug)]
struct Armed {
    /// Fail the next call.
    fail: Option<ErrorKind>,
    /// Panic at the next call.
    panic: bool,
    /// Reads and writes take at most this many bytes.
    max: usize,
}

impl Armed {
    fn cell() -> Arc<Mutex<Armed>> {
        Arc::new(Mutex::new(Armed {
            fail: None,
            panic: false,
            max: usize::MAX,
        }))
    }
}

/// The error a model returns where the async object panics.
const MODEL_PANIC: &str = "the object panics here";

/// An object over `T` that fails, panics and takes partial reads and writes
/// as armed. The async one also returns `Pending`; the std model reports
/// its panic as an error.
struct Flaky<T> {
    inner: T,
    armed: Arc<Mutex<Armed>>,
    faults: Option<Faults>,
}

impl<T> Flaky<T> {
    /// What the next call does before it reaches `inner`: `Some` ends it.
    fn trip(&mut self, cx: Option<&mut Context<'_>>) -> Option<Poll<io::Error>> {
        if let (Some(faults), Some(cx)) = (&mut self.faults, cx) {
            if faults.pending(cx) {
                return Some(Poll::Pending);
            }
        }
        let mut armed = lock(&self.armed);
        if std::mem::take(&mut armed.panic) {
            if self.faults.is_none() {
                return Some(Poll::Ready(io::Error::other(MODEL_PANIC)));
            }
            drop(armed);
            inject(Injected {
                by: "io object",
                at: 0,
            });
        }
        let kind = armed.fail.take()?;
        Some(Poll::Ready(io::Error::new(kind, "injected io error")))
    }

    fn cap(&self, n: usize) -> usize {
        n.min(lock(&self.armed).max.max(1))
    }
}

macro_rules! trip {
    ($this:expr, $cx:expr) => {
        match $this.trip(Some($cx)) {
            Some(Poll::Pending) => return Poll::Pending,
            Some(Poll::Ready(e)) => return Poll::Ready(Err(e)),
            None => {}
        }
    };
}

macro_rules! trip_std {
    ($this:expr) => {
        if let Some(Poll::Ready(e)) = $this.trip(None) {
            return Err(e);
        }
    };
}

impl<T: AsyncRead + Unpin> AsyncRead for Flaky<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        trip!(this, cx);
        let n = this.cap(buf.len());
        Pin::new(&mut this.inner).poll_read(cx, &mut buf[..n])
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Flaky<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        trip!(this, cx);
        let n = this.cap(buf.len());
        Pin::new(&mut this.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        trip!(this, cx);
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        trip!(this, cx);
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

impl<T: AsyncBufRead + Unpin> AsyncBufRead for Flaky<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        trip!(this, cx);
        Pin::new(&mut this.inner).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().inner).consume(amt);
    }
}

impl<T: AsyncSeek + Unpin> AsyncSeek for Flaky<T> {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        trip!(this, cx);
        Pin::new(&mut this.inner).poll_seek(cx, pos)
    }
}

impl<T: Read> Read for Flaky<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        trip_std!(self);
        let n = self.cap(buf.len());
        self.inner.read(&mut buf[..n])
    }
}

impl<T: Write> Write for Flaky<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        trip_std!(self);
        let n = self.cap(buf.len());
        self.inner.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        trip_std!(self);
        self.inner.flush()
    }
}

impl<T: BufRead> BufRead for Flaky<T> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        trip_std!(self);
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
    }
}

impl<T: Seek> Seek for Flaky<T> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        trip_std!(self);
        self.inner.seek(pos)
    }
}

/// One step's result, as compared.
#[derive(Debug, PartialEq, Eq)]
enum Res {
    Bytes(Vec<u8>),
    N(u64),
    Unit,
    Err(ErrorKind),
    /// The model's stand-in for a panic of the object.
    Panic,
}

fn res<T>(r: io::Result<T>, f: impl FnOnce(T) -> Res) -> Res {
    match r {
        Ok(v) => f(v),
        Err(e) if e.to_string() == MODEL_PANIC => Res::Panic,
        Err(e) => Res::Err(e.kind()),
    }
}

type AsyncCursor = futures_lite::io::Cursor<Vec<u8>>;
type StdCursor = io::Cursor<Vec<u8>>;
type AsyncBuffered = futures_lite::io::BufReader<Flaky<AsyncCursor>>;

/// The object under test, behind `BlockingIo`.
enum UnderTest {
    Plain(executor_bridge::BlockingIo<Flaky<AsyncCursor>>),
    Buffered(executor_bridge::BlockingIo<AsyncBuffered>),
}

/// The std model it is compared with.
enum Model {
    Plain(Flaky<StdCursor>),
    Buffered(io::BufReader<Flaky<StdCursor>>),
}

/// Runs one step on either side (`Fail` and `Panic` are armed elsewhere;
/// `Consume` returns `Unit`).
macro_rules! step {
    ($side:expr, $op:expr, $data:expr) => {
        match $op {
            IoOp::Read { len, .. } => {
                let mut buf = vec![0; *len];
                res($side.read(&mut buf), |n| {
                    buf.truncate(n);
                    Res::Bytes(buf)
                })
            }
            IoOp::Fill => res($side.fill_buf(), |b| Res::Bytes(b.to_vec())),
            IoOp::Consume(n) => {
                $side.consume(*n);
                Res::Unit
            }
            IoOp::Seek(pos) => res($side.seek(*pos), Res::N),
            IoOp::Write { .. } | IoOp::Flush | IoOp::Close | IoOp::Fail(_) | IoOp::Panic => {
                unreachable!("written elsewhere")
            }
        }
    };
}

impl UnderTest {
    fn step(&mut self, op: &IoOp, data: &[u8]) -> Res {
        match (self, op) {
            (UnderTest::Plain(io), IoOp::Write { .. }) => res(io.write(data), |n| Res::N(n as u64)),
            (UnderTest::Plain(io), IoOp::Flush) => res(io.flush(), |()| Res::Unit),
            (UnderTest::Plain(io), IoOp::Close) => res(io.close(), |()| Res::Unit),
            (UnderTest::Plain(io), op) => step!(io, op, data),
            (UnderTest::Buffered(io), op) => step!(io, op, data),
        }
    }
}

impl Model {
    /// `filled`: what the last `fill_buf` returned is not all consumed.
    fn step(&mut self, op: &IoOp, data: &[u8], filled: bool) -> Res {
        match (self, op) {
            // An empty read reaches no object.
            (_, IoOp::Read { len: 0, .. }) => Res::Bytes(Vec::new()),
            (Model::Plain(m), IoOp::Write { .. }) => res(m.write(data), |n| Res::N(n as u64)),
            (Model::Plain(m), IoOp::Flush) => res(m.flush(), |()| Res::Unit),
            // The cursor's `poll_close` is a flush.
            (Model::Plain(m), IoOp::Close) => {
                res(m.flush().and_then(|()| m.flush()), |()| Res::Unit)
            }
            // A buffer not all consumed is not filled again (a `BufReader`
            // does the same on its own).
            (Model::Plain(m), IoOp::Fill) if filled => {
                res(m.inner.fill_buf(), |b| Res::Bytes(b.to_vec()))
            }
            (Model::Plain(m), op) => step!(m, op, data),
            (Model::Buffered(m), op) => step!(m, op, data),
        }
    }
}

fn io_case<R: TestRuntime>(mut bridges: Bridges<'_, R>, env: &Env, case: &IoCase) -> Tags {
    let seed = case.setting.seed;
    let initial = Rng::new(seed ^ 0x10).bytes(case.initial);
    let mut bytes = Rng::new(seed ^ 0x11);
    let (a_armed, m_armed) = (Armed::cell(), Armed::cell());
    let obj = Flaky {
        inner: AsyncCursor::new(initial.clone()),
        armed: Arc::clone(&a_armed),
        faults: Some(Faults::new(seed ^ 0x12, case.pending, env)),
    };
    let model_obj = Flaky {
        inner: StdCursor::new(initial),
        armed: Arc::clone(&m_armed),
        faults: None,
    };
    let b = bridges.object();
    let (io, mut model) = match case.buffered {
        None => (UnderTest::Plain(b.io(obj)), Model::Plain(model_obj)),
        Some(cap) => (
            UnderTest::Buffered(b.io(futures_lite::io::BufReader::with_capacity(cap, obj))),
            Model::Buffered(io::BufReader::with_capacity(cap, model_obj)),
        ),
    };
    bridges.orphan();
    let mut io = Some(io);
    // What the last `fill_buf` returned and nothing consumed yet.
    let mut avail = 0usize;
    let mut broken = false;
    let mut trace: Vec<String> = Vec::new();
    let mut tags: Tags = vec![if case.buffered.is_some() {
        "over a BufReader"
    } else {
        "over the cursor"
    }];
    for (step, op) in case.ops.iter().enumerate() {
        let arm = |f: &dyn Fn(&mut Armed)| {
            f(&mut lock(&a_armed));
            f(&mut lock(&m_armed));
        };
        match op {
            IoOp::Fail(kind) => {
                arm(&|a| a.fail = Some(*kind));
                continue;
            }
            IoOp::Panic => {
                arm(&|a| a.panic = true);
                continue;
            }
            IoOp::Read { max, .. } | IoOp::Write { max, .. } => arm(&|a| a.max = *max),
            _ => {}
        }
        let data = match op {
            IoOp::Write { len, .. } => bytes.bytes(*len),
            _ => Vec::new(),
        };
        let op = match op {
            IoOp::Consume(n) => IoOp::Consume((*n).min(avail)),
            op => op.clone(),
        };
        let ctx = called_from(&case.elsewhere, step);
        let (op2, data2) = (op.clone(), data.clone());
        let got = elsewhere(bridges.batch, ctx, &mut io, move |io| {
            attempt(|| io.step(&op2, &data2))
        });
        let at = |trace: &[String]| format!("step {step} ({op:?}), after {trace:?}");
        if broken {
            let got =
                got.unwrap_or_else(|p| panic!("{}: panicked again: {}", at(&trace), text(&*p)));
            let fine = match (&op, &got) {
                (IoOp::Consume(_), Res::Unit) => true,
                (IoOp::Read { len: 0, .. }, Res::Bytes(b)) => b.is_empty(),
                (_, Res::Err(kind)) => *kind == ErrorKind::Other,
                _ => false,
            };
            assert!(fine, "{}: after the object's panic: {got:?}", at(&trace));
            continue;
        }
        let expect = model.step(&op, &data, avail > 0);
        match got {
            Err(payload) => {
                assert_eq!(
                    expect,
                    Res::Panic,
                    "{}: panicked: {}",
                    at(&trace),
                    text(&*payload)
                );
                assert_eq!(
                    injected(&*payload).map(|i| i.by),
                    Some("io object"),
                    "{}: another panic: {}",
                    at(&trace),
                    text(&*payload)
                );
                broken = true;
                tags.push("the object panicked");
            }
            Ok(got) => assert_eq!(got, expect, "{}: BlockingIo vs std", at(&trace)),
        }
        if let Res::Err(kind) = expect {
            tags.push(if kind == ErrorKind::InvalidInput {
                "a seek refused"
            } else {
                "an injected error"
            });
        }
        avail = match (&op, &expect) {
            (IoOp::Fill, Res::Bytes(b)) => b.len(),
            (IoOp::Consume(n), _) => avail - n,
            // An empty read calls nothing, changes nothing.
            (IoOp::Read { len: 0, .. }, _) => avail,
            _ => 0,
        };
        trace.push(format!("{op:?} -> {expect:?}"));
        if trace.len() > 12 {
            trace.remove(0);
        }
    }
    // The two cursors, the object's (if `into_inner` gives it back) and the
    // model's.
    let (obj, m) = match (io.expect("the object"), model) {
        (UnderTest::Plain(io), Model::Plain(m)) => (io.into_inner().ok(), m),
        (UnderTest::Buffered(io), Model::Buffered(m)) => (
            io.into_inner()
                .ok()
                .map(futures_lite::io::BufReader::into_inner),
            m.into_inner(),
        ),
        _ => unreachable!("the same kind on both sides"),
    };
    let Some(obj) = obj else {
        assert!(broken, "into_inner refused an object that never panicked");
        return tags;
    };
    assert!(!broken, "into_inner gave back an object that panicked");
    assert_eq!(
        obj.inner.position(),
        m.inner.position(),
        "the final positions differ"
    );
    assert!(
        obj.inner.into_inner() == m.inner.into_inner(),
        "the final bytes differ"
    );
    tags.push("the final bytes compared");
    tags
}

// ===========================================================================
// Bridge::reader
// ===========================================================================

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ROp {
    /// `read` into this many bytes.
    Read(usize),
    /// `fill_buf`, then `consume` this percentage of what it returned.
    Fill(u8),
    /// Read until the end, an error or a panic.
    ToEnd,
    Abort(Abort),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RPanic {
    /// In `poll_read` at this byte.
    At(usize),
    /// In `Drop` (seen only where the source ended: at its `Ok(0)`).
    Drop,
    /// In the factory: there is no source.
    Make,
}

#[derive(Clone, Debug)]
struct ReaderCase {
    setting: Setting,
    len: usize,
    /// `poll_read` fails once at each of these bytes, in order.
    errors: Vec<(usize, ErrorKind)>,
    panic: Option<RPanic>,
    max_read: usize,
    pending: u32,
    /// `poll_read` returns `Pending` for good at this byte.
    stuck_at: Option<usize>,
    /// Calls made from another context.
    elsewhere: Vec<(usize, Ctx)>,
    ops: Vec<ROp>,
}

impl Case for ReaderCase {
    fn generate(seed: u64, rng: &mut Rng) -> Self {
        let len = match rng.below(100) {
            0..=29 => rng.range(0, 100),
            30..=69 => rng.range(101, 20_000),
            70..=94 => rng.range(20_001, 200_000),
            _ => rng.range(200_001, 600_000),
        };
        let mut errors: Vec<(usize, ErrorKind)> = (0..rng.pick(&[0, 0, 1, 2, 5]))
            .map(|_| (rng.range(0, len), gen_kind(rng)))
            .collect();
        errors.sort_by_key(|e| e.0);
        let panic = match rng.below(100) {
            0..=11 => Some(RPanic::At(rng.range(0, len))),
            12..=19 => Some(RPanic::Drop),
            20..=22 => Some(RPanic::Make),
            _ => None,
        };
        let read_len = |rng: &mut Rng| rng.pick(&[0, 1, 10, 1000, 16 * 1024, 40_000]);
        // A source that stops giving bytes for good: reads that never ask
        // for a byte at or past that point (or they would wait forever).
        let stuck_at = rng.chance(80).then(|| rng.range(0, len));
        let mut ops: Vec<ROp> = Vec::new();
        if let Some(stuck) = stuck_at {
            let mut asked = 0;
            for _ in 0..rng.range(0, 10) {
                let n = read_len(rng);
                if asked + n > stuck {
                    break;
                }
                asked += n;
                ops.push(ROp::Read(n));
            }
        } else {
            ops = (0..rng.range(0, 25))
                .map(|_| match rng.below(10) {
                    0..=4 => ROp::Read(read_len(rng)),
                    5..=7 => ROp::Fill(rng.pick(&[0, 10, 50, 100])),
                    _ => ROp::ToEnd,
                })
                .collect();
        }
        if rng.chance(300) {
            ops.push(ROp::Abort(rng.pick(&Abort::BOTH)));
        }
        let max_read = match len {
            0..=5_000 => rng.pick(&[1, 100, 5000, 1 << 20]),
            5_001..=50_000 => rng.pick(&[100, 5000, 1 << 20]),
            _ => rng.pick(&[4096, 1 << 20]),
        };
        ReaderCase {
            setting: Setting::new(seed, rng),
            len,
            errors,
            panic,
            max_read,
            pending: gen_pending_for(rng, len / max_read.min(16 * 1024).div_ceil(2)),
            stuck_at,
            elsewhere: gen_elsewhere(rng, ops.len()),
            ops,
        }
    }

    fn setting(&self) -> &Setting {
        &self.setting
    }
}

#[derive(Debug, Default)]
struct RLog {
    /// Bytes handed out.
    pos: usize,
    /// It stopped giving bytes for good.
    stuck: bool,
    panic: Option<Injected>,
    dropped: bool,
}

impl Raises for RLog {
    fn raised(&mut self) -> &mut Option<Injected> {
        &mut self.panic
    }
}

struct Source {
    stuck_at: Option<usize>,
    data: Arc<Vec<u8>>,
    errors: Vec<(usize, ErrorKind)>,
    next_error: usize,
    panic: Option<RPanic>,
    max_read: usize,
    faults: Faults,
    log: Arc<Mutex<RLog>>,
    pos: usize,
}

fn error_message(i: usize, at: usize) -> String {
    format!("injected error {i} at byte {at}")
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.faults.pending(cx) {
            return Poll::Pending;
        }
        let pos = this.pos;
        let mut n = this.faults.partial(buf.len(), this.max_read);
        n = n.min(this.data.len() - pos);
        if let Some(at) = this.stuck_at {
            if at == pos {
                lock(&this.log).stuck = true;
                return Poll::Pending;
            }
            n = n.min(at - pos);
        }
        if let Some(&(at, kind)) = this.errors.get(this.next_error) {
            if at == pos {
                this.next_error += 1;
                let msg = error_message(this.next_error - 1, at);
                return Poll::Ready(Err(io::Error::new(kind, msg)));
            }
            n = n.min(at - pos);
        }
        if let Some(RPanic::At(at)) = this.panic {
            if at == pos {
                raise(lock(&this.log), "source poll_read", at as u64);
            }
            if at > pos {
                n = n.min(at - pos);
            }
        }
        buf[..n].copy_from_slice(&this.data[pos..pos + n]);
        this.pos += n;
        lock(&this.log).pos = this.pos;
        Poll::Ready(Ok(n))
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let mut log = lock(&self.log);
        log.dropped = true;
        if self.panic == Some(RPanic::Drop) && !thread::panicking() {
            raise(log, "source drop", self.pos as u64);
        }
    }
}

/// How far a reader may read ahead of its consumer: 8 chunks of 16 KiB
/// waiting, one being read, one being consumed.
const READ_AHEAD_BOUND: usize = 10 * 16 * 1024;

/// What the consumer of a reader expects next.
struct RState<'a> {
    case: &'a ReaderCase,
    data: &'a [u8],
    log: &'a Mutex<RLog>,
    pos: usize,
    next_error: usize,
    /// A panic resumed: every later read fails.
    broken: bool,
    /// `Ok(0)` seen.
    ended: bool,
}

impl RState<'_> {
    /// Whether the source has nothing left before its end at `pos`.
    fn at_end(&self) -> bool {
        self.pos == self.data.len() && self.next_error == self.case.errors.len()
    }

    /// Judges one read's outcome (`Ok(bytes)` for a read or a fill); true
    /// if the reader has nothing more to give.
    fn judge(&mut self, what: &str, got: Got<Vec<u8>>) -> bool {
        let pos = self.pos;
        if self.broken {
            assert!(
                matches!(got, Got::Err(..)),
                "{what} at {pos} after the source's panic: {got:?}"
            );
            return true;
        }
        match got {
            Got::Ok(bytes) if bytes.is_empty() => {
                assert!(
                    self.at_end() && self.case.panic.is_none(),
                    "{what}: Ok(0) at byte {pos} of {} (errors seen {}/{}, panic {:?})",
                    self.data.len(),
                    self.next_error,
                    self.case.errors.len(),
                    self.case.panic
                );
                self.ended = true;
                true
            }
            Got::Ok(bytes) => {
                let end = pos + bytes.len();
                assert!(
                    end <= self.data.len() && bytes[..] == self.data[pos..end],
                    "{what}: bytes {pos}..{end} are not the source's"
                );
                if let Some(&(at, _)) = self.case.errors.get(self.next_error) {
                    assert!(end <= at, "{what}: {pos}..{end} skipped the error at {at}");
                }
                if let Some(RPanic::At(at)) = self.case.panic {
                    assert!(end <= at, "{what}: {pos}..{end} skipped the panic at {at}");
                }
                assert!(
                    self.case.panic != Some(RPanic::Make),
                    "{what}: bytes from a source whose factory panicked"
                );
                self.pos = end;
                let ahead = lock(self.log).pos.saturating_sub(self.pos);
                assert!(
                    ahead <= READ_AHEAD_BOUND,
                    "{what}: the source is {ahead} bytes ahead of the consumer"
                );
                false
            }
            Got::Err(kind, msg) => {
                let expected = self
                    .case
                    .errors
                    .get(self.next_error)
                    .filter(|_| self.case.panic != Some(RPanic::Make));
                assert!(
                    expected.is_some_and(|&(at, k)| {
                        at == pos && k == kind && msg == error_message(self.next_error, at)
                    }),
                    "{what}: Err({kind:?}, {msg}) at byte {pos}; expected {expected:?}"
                );
                self.next_error += 1;
                false
            }
            Got::Panic(payload) => {
                assert_raised(&*payload, &lock(self.log).panic, what, "source");
                match self.case.panic {
                    Some(RPanic::At(at)) => assert!(
                        pos == at && self.case.errors[self.next_error..].iter().all(|e| e.0 > at),
                        "{what}: the panic at byte {at} resumed at byte {pos}"
                    ),
                    Some(RPanic::Drop) => assert!(
                        self.at_end(),
                        "{what}: the destructor's panic resumed at byte {pos}, before the end"
                    ),
                    Some(RPanic::Make) => assert_eq!(pos, 0, "{what}: the factory's panic, late"),
                    None => unreachable!("recorded"),
                }
                self.broken = true;
                true
            }
        }
    }
}

fn reader_case<R: TestRuntime>(mut bridges: Bridges<'_, R>, env: &Env, case: &ReaderCase) -> Tags {
    let seed = case.setting.seed;
    let data = Arc::new(Rng::new(seed ^ 0x2EAD).bytes(case.len));
    let log = Arc::new(Mutex::new(RLog::default()));
    let source = Source {
        stuck_at: case.stuck_at,
        data: Arc::clone(&data),
        errors: case.errors.clone(),
        next_error: 0,
        panic: case.panic,
        max_read: case.max_read,
        faults: Faults::new(seed ^ 0x50, case.pending, env),
        log: Arc::clone(&log),
        pos: 0,
    };
    let make_panics = case.panic == Some(RPanic::Make);
    let mut r = Some(
        bridges
            .object()
            .reader(factory(&log, make_panics, "source make", source)),
    );
    bridges.orphan();
    let mut st = RState {
        case,
        data: &data,
        log: &log,
        pos: 0,
        next_error: 0,
        broken: false,
        ended: false,
    };
    fn read(r: &mut executor_bridge::BlockingReader<Vec<u8>>, len: usize) -> Got<Vec<u8>> {
        Got::of(|| {
            let mut buf = vec![0; len];
            let n = r.read(&mut buf)?;
            buf.truncate(n);
            Ok(buf)
        })
    }
    for (step, &op) in case.ops.iter().enumerate() {
        let what = format!("step {step} ({op:?})");
        let ctx = called_from(&case.elsewhere, step);
        let Some(reader) = r.as_mut() else { break };
        match op {
            ROp::Read(0) => {
                let got = read(reader, 0);
                assert!(
                    matches!(&got, Got::Ok(b) if b.is_empty()),
                    "{what}: an empty read: {got:?}"
                );
            }
            ROp::Read(len) => {
                let got = elsewhere(bridges.batch, ctx, &mut r, move |reader| read(reader, len));
                st.judge(&what, got);
            }
            ROp::Fill(pct) => {
                // Filled and consumed in one go, wherever it runs.
                let got = elsewhere(bridges.batch, ctx, &mut r, move |reader| {
                    let got = Got::of(|| reader.fill_buf().map(<[u8]>::to_vec));
                    if let Got::Ok(b) = &got {
                        reader.consume(b.len() * usize::from(pct) / 100);
                    }
                    got
                });
                let filled = match &got {
                    Got::Ok(b) if !b.is_empty() => Some(b.len()),
                    _ => None,
                };
                let before = st.pos;
                st.judge(&what, got);
                if let Some(len) = filled {
                    // `judge` took the whole buffer as read: only part of it
                    // was consumed.
                    st.pos = before + len * usize::from(pct) / 100;
                }
            }
            ROp::ToEnd => {
                // Each read takes bytes or an error, or ends it.
                for _ in 0..=case.len + case.errors.len() + 1 {
                    if st.judge(&what, read(reader, 8 * 1024)) {
                        break;
                    }
                }
            }
            ROp::Abort(how) => how.end(r.take(), step),
        }
    }
    if st.broken {
        if let Some(reader) = r.as_mut() {
            for i in 0..2 {
                let got = read(reader, 100);
                assert!(
                    matches!(got, Got::Err(..)),
                    "read {i} after the panic: {got:?}"
                );
            }
        }
    }
    let early = r.is_none();
    drop(r);
    assert!(
        eventually(SETTLE, || lock(&log).dropped),
        "the source was never dropped"
    );
    let mut tags = Tags::new();
    if st.ended {
        tags.push("read to the end");
    }
    if st.next_error > 0 {
        tags.push("errors returned in place");
    }
    if st.broken {
        tags.push("panic resumed");
    }
    if early {
        tags.push("dropped early");
    }
    if lock(&log).stuck {
        tags.push("dropped while stuck");
    }
    tags
}

// ===========================================================================
// Bridge::iter and Bridge::iter_direct
// ===========================================================================

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IOp {
    Next,
    /// `next_timeout` with this many microseconds.
    NextTimeout(u64),
    Abort(Abort),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IPanic {
    /// In `poll_next`, instead of item k.
    At(u32),
    /// In `Drop` (seen by `next` where the stream ended).
    Drop,
    /// In the factory: there is no stream.
    Make,
}

#[derive(Clone, Debug)]
struct IterCase {
    setting: Setting,
    items: u32,
    panic: Option<IPanic>,
    pending: u32,
    /// Calls made from another context.
    elsewhere: Vec<(usize, Ctx)>,
    /// `poll_next` returns `Pending` for good at this item.
    stuck_at: Option<u32>,
    /// `poll_next` blocks its thread for 40 ms before it yields this item.
    slow_at: Option<u32>,
    ops: Vec<IOp>,
}

impl Case for IterCase {
    fn generate(seed: u64, rng: &mut Rng) -> Self {
        let items = rng.pick(&[0, 1, 2, 5, 10, 30, 60]);
        let panic = match rng.below(100) {
            0..=11 => Some(IPanic::At(rng.range(0, items as usize) as u32)),
            12..=19 => Some(IPanic::Drop),
            20..=22 => Some(IPanic::Make),
            _ => None,
        };
        let timeout = |rng: &mut Rng| IOp::NextTimeout(rng.pick(&[0, 10, 300, 3000]));
        let call = |rng: &mut Rng| {
            if rng.chance(250) {
                timeout(rng)
            } else {
                IOp::Next
            }
        };
        // A stream that stops yielding for good at an item: no more calls
        // than items before it, then only timeouts.
        let stuck_at = (items > 0 && rng.chance(100)).then(|| rng.range(0, items as usize - 1));
        let mut ops: Vec<IOp> = match stuck_at {
            Some(k) => {
                let mut ops: Vec<IOp> = (0..rng.range(0, k)).map(|_| call(rng)).collect();
                ops.extend((0..rng.range(0, 3)).map(|_| timeout(rng)));
                ops
            }
            None => (0..rng.range(0, items as usize + 4))
                .map(|_| call(rng))
                .collect(),
        };
        // A poll that blocks its thread for longer than a timed-out
        // `next_timeout` waits for the stream to come back: the item must
        // still arrive, at a later call.
        let slow_at = (items > 0 && rng.chance(80)).then(|| rng.range(0, items as usize - 1));
        if let Some(k) = slow_at {
            if k < ops.len() {
                ops[k] = IOp::NextTimeout(rng.pick(&[0, 10, 300, 3000]));
            }
        }
        if rng.chance(250) {
            let at = rng.range(0, ops.len());
            ops.insert(at, IOp::Abort(rng.pick(&Abort::BOTH)));
        }
        IterCase {
            setting: Setting::new(seed, rng),
            items,
            panic,
            pending: gen_pending(rng),
            elsewhere: gen_elsewhere(rng, ops.len()),
            stuck_at: stuck_at.map(|k| k as u32),
            slow_at: slow_at.map(|k| k as u32),
            ops,
        }
    }

    fn setting(&self) -> &Setting {
        &self.setting
    }
}

#[derive(Debug, Default)]
struct ILog {
    /// Items yielded.
    yielded: u32,
    /// It stopped yielding for good.
    stuck: bool,
    panic: Option<Injected>,
    dropped: bool,
}

impl Raises for ILog {
    fn raised(&mut self) -> &mut Option<Injected> {
        &mut self.panic
    }
}

struct Numbers {
    stuck_at: Option<u32>,
    slow_at: Option<u32>,
    n: u32,
    k: u32,
    panic: Option<IPanic>,
    faults: Faults,
    log: Arc<Mutex<ILog>>,
}

impl Stream for Numbers {
    type Item = u32;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
        let this = self.get_mut();
        if this.faults.pending(cx) {
            return Poll::Pending;
        }
        if this.stuck_at == Some(this.k) {
            lock(&this.log).stuck = true;
            return Poll::Pending;
        }
        if this.panic == Some(IPanic::At(this.k)) {
            raise(lock(&this.log), "stream poll_next", u64::from(this.k));
        }
        if this.k == this.n {
            return Poll::Ready(None);
        }
        if this.slow_at == Some(this.k) {
            this.slow_at = None;
            thread::sleep(Duration::from_millis(40));
        }
        this.k += 1;
        lock(&this.log).yielded = this.k;
        Poll::Ready(Some(this.k - 1))
    }
}

impl Drop for Numbers {
    fn drop(&mut self) {
        let mut log = lock(&self.log);
        log.dropped = true;
        if self.panic == Some(IPanic::Drop) && !thread::panicking() {
            raise(log, "stream drop", u64::from(self.k));
        }
    }
}

/// How an iterator is made.
#[derive(Clone, Copy, Debug)]
enum IterKind {
    /// `iter` with this stream capacity.
    Pipe(usize),
    Direct,
}

/// One iterator case; `kind` says how the iterator is made (a `Pipe`'s
/// capacity is the bridge's: the test builds it so).
fn iter_case<R: TestRuntime>(
    mut bridges: Bridges<'_, R>,
    env: &Env,
    case: &IterCase,
    kind: IterKind,
) -> Tags {
    let log = Arc::new(Mutex::new(ILog::default()));
    let stream = Numbers {
        stuck_at: case.stuck_at,
        slow_at: case.slow_at,
        n: case.items,
        k: 0,
        panic: case.panic,
        faults: Faults::new(case.setting.seed ^ 0x17, case.pending, env),
        log: Arc::clone(&log),
    };
    let make = factory(
        &log,
        case.panic == Some(IPanic::Make),
        "stream make",
        stream,
    );
    let b = bridges.object();
    let (mut it, ahead): (Option<BlockingIter<u32>>, u32) = match kind {
        IterKind::Pipe(cap) => (Some(b.iter(make)), cap as u32 + 1),
        IterKind::Direct => (Some(b.iter_direct(make)), 1),
    };
    bridges.orphan();
    let batch = bridges.batch;
    // Drops the iterator: a stream's destructor may panic where `drop` runs
    // it.
    let drop_iter = |it: Option<BlockingIter<u32>>, what: &str| {
        if let Err(payload) = attempt(move || drop(it)) {
            assert_eq!(
                (injected(&*payload), case.panic),
                (lock(&log).panic.clone(), Some(IPanic::Drop)),
                "{what}: dropping the iterator panicked: {}",
                text(&*payload)
            );
        }
    };
    let mut next = 0u32;
    let mut finished = false;
    // After a panic resumed: every later call fails again.
    let mut broken = false;
    let mut timeouts = 0;
    for (step, &op) in case.ops.iter().enumerate() {
        let what = format!("step {step} ({op:?}) at item {next}");
        if it.is_none() {
            break;
        }
        let ctx = called_from(&case.elsewhere, step);
        if broken {
            let again = match op {
                IOp::Next => Some(
                    elsewhere(batch, ctx, &mut it, |iter| attempt(|| iter.next()))
                        .map(|item| format!("{item:?}"))
                        .map_err(|p| text(&*p)),
                ),
                IOp::NextTimeout(us) => {
                    let d = Duration::from_micros(us);
                    Some(
                        elsewhere(batch, ctx, &mut it, move |iter| {
                            attempt(|| iter.next_timeout(d))
                        })
                        .map_err(|p| text(&*p))
                        .and_then(|got| {
                            got.map(|item| format!("{item:?}"))
                                .map_err(|e| e.to_string())
                        }),
                    )
                }
                _ => None,
            };
            if let Some(again) = again {
                assert!(
                    matches!(&again, Err(e) if e.contains("failed in an earlier call")),
                    "{what}: after a panic, not failing again: {again:?}"
                );
                continue;
            }
        }
        // `Ok(Some(item))`, `Ok(None)` for the end, `Err(payload)`, or no
        // answer (a timeout).
        let got: Option<Result<Option<u32>, Box<dyn Any + Send>>> = match op {
            IOp::Next => Some(elsewhere(batch, ctx, &mut it, |iter| {
                attempt(|| iter.next())
            })),
            IOp::NextTimeout(us) => {
                let d = Duration::from_micros(us);
                match elsewhere(batch, ctx, &mut it, move |iter| {
                    attempt(|| iter.next_timeout(d))
                }) {
                    Ok(Ok(item)) => Some(Ok(item)),
                    Ok(Err(e)) if e.is_timeout() => None,
                    Ok(Err(e)) if e.is_panic() => Some(Err(e.into_panic())),
                    Ok(Err(e)) => panic!("{what}: next_timeout failed: {e}"),
                    Err(payload) => panic!("{what}: next_timeout panicked: {}", text(&*payload)),
                }
            }
            IOp::Abort(Abort::Return) => {
                drop_iter(it.take(), &what);
                break;
            }
            IOp::Abort(Abort::Panic) => {
                panic_holding(it.take(), step);
                break;
            }
        };
        match got {
            None => {
                assert!(!finished, "{what}: a timeout after the end");
                timeouts += 1;
            }
            Some(Ok(Some(item))) => {
                assert!(!finished, "{what}: item {item} after the end");
                assert_ne!(
                    case.panic,
                    Some(IPanic::Make),
                    "{what}: an item without a stream"
                );
                assert_eq!(item, next, "{what}: out of order");
                assert!(next < case.items, "{what}: more items than the stream has");
                next += 1;
                let yielded = lock(&log).yielded;
                assert!(
                    yielded - next <= ahead,
                    "{what}: the stream yielded {yielded}, the consumer took {next}"
                );
            }
            Some(Ok(None)) => {
                assert!(
                    finished || (next == case.items && case.panic.is_none()),
                    "{what}: the end after {next} of {} items (panic {:?})",
                    case.items,
                    case.panic
                );
                finished = true;
            }
            Some(Err(payload)) => {
                assert!(
                    !finished,
                    "{what}: a panic after the end: {}",
                    text(&*payload)
                );
                assert_raised(&*payload, &lock(&log).panic, &what, "stream");
                match case.panic {
                    Some(IPanic::At(k)) => assert_eq!(k, next, "{what}: the panic resumed early"),
                    Some(IPanic::Make) => assert_eq!(next, 0, "{what}: the factory's panic, late"),
                    _ => assert_eq!(next, case.items, "{what}: the destructor's panic, early"),
                }
                finished = true;
                broken = true;
            }
        }
    }
    if finished {
        if let Some(iter) = it.as_mut() {
            assert!(iter.is_finished(), "finished, yet not is_finished()");
            if broken {
                assert!(is_broken(iter), "after a panic, not failing again");
            } else {
                assert_eq!(iter.next(), None, "an item after the end");
            }
        }
    }
    let mut tags = Tags::new();
    if finished {
        tags.push(if lock(&log).panic.is_some() {
            "panic resumed"
        } else {
            "read to the end"
        });
    } else if it.is_none() {
        tags.push("dropped early");
    }
    if timeouts > 0 {
        tags.push("a timeout, nothing lost");
    }
    if lock(&log).stuck {
        tags.push("dropped while stuck");
    }
    drop_iter(it.take(), "at the end");
    assert!(
        eventually(SETTLE, || lock(&log).dropped),
        "the stream was never dropped"
    );
    tags
}

// ===========================================================================
// The tests
// ===========================================================================

/// Declares the tests, one a line: its name, its case type, the tag its
/// threads are named by, its cases a run (before `EB_CASES`), how each
/// batch's bridge is built, and the check of one case. Each runs on every
/// adapter, as `invariants::<name>::<adapter>`.
macro_rules! tests {
    ($($name:ident: $case:ty, $tag:literal, $cases:literal, $build:expr, $check:expr;)*) => {
        $(
            fn $name<R: TestRuntime>() {
                drive::<R, $case>(stringify!($name), $tag, $cases, $build, $check);
            }
        )*
        per_runtime!($($name),*);
    };
}

tests! {
    writer: WriterCase, "ivWr", 500, |b| b, writer_case;
    sink_stream: SinkCase, "ivSs", 400, |b| b, |b, env, case| sink_case(b, env, case, false);
    sink_results: SinkCase, "ivSr", 400, |b| b, |b, env, case| sink_case(b, env, case, true);
    sink_detached: DetachedCase, "ivSd", 200, |b| b, detached_case;
    io_vs_cursor: IoCase, "ivIo", 800, |b| b, io_case;
    reader: ReaderCase, "ivRd", 500, |b| b, reader_case;
    iter_cap0: IterCase, "ivIa", 600, |b| b,
        |b, env, case| iter_case(b, env, case, IterKind::Pipe(0));
    iter_cap3: IterCase, "ivIb", 600, |b| b.stream_capacity(3),
        |b, env, case| iter_case(b, env, case, IterKind::Pipe(3));
    iter_direct: IterCase, "ivId", 600, |b| b,
        |b, env, case| iter_case(b, env, case, IterKind::Direct);
}

// ===========================================================================
// Two sink defects these tests found, each in a minimal reproduction.
// ===========================================================================

/// A consumer hands its stream to a thread and returns; the thread waits on
/// the stream; `close()` returns, and the thread sees the end. (The stream
/// was cut when the consumer returned, answered `Pending` with nothing to
/// wake it after the commit.)
#[test]
fn a_handed_off_sink_stream_ends_with_close() {
    watchdog(60, || {
        let bridge = Bridge::new(executor_bridge::Pollster);
        let (tx, rx) = mpsc::channel();
        let returned = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&returned);
        let sink = bridge.sink(1, move |mut items: executor_bridge::SinkStream<u32>| {
            thread::spawn(move || {
                let end = futures_lite::future::block_on(items.next());
                let _ = tx.send(end);
            });
            async move { r.store(true, Ordering::SeqCst) }
        });
        // The consumer returned; the thread waits on the stream.
        assert!(eventually(SETTLE, || returned.load(Ordering::SeqCst)));
        thread::sleep(Duration::from_millis(50));
        sink.close();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Ok(None),
            "after close() the consumer's stream never ended"
        );
    });
}

/// A consumer hands its stream to a thread that reads it, and returns once
/// the thread read one item: the thread's stream skips no item. (The bridge
/// took the items still queued as unsent from the channel the thread read
/// too.)
#[test]
fn a_handed_off_sink_stream_skips_no_item() {
    watchdog(60, || {
        const N: u32 = 20_000;
        let bridge = Bridge::new(executor_bridge::Pollster);
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = async_channel::bounded::<()>(1);
        let sink = bridge.sink(
            N as usize,
            move |items: executor_bridge::SinkStream<u32>| {
                let (first_tx, first_rx) = async_channel::bounded::<()>(1);
                async move {
                    let _ = go_rx.recv().await;
                    thread::spawn(move || {
                        let mut items = items.results();
                        let mut got = Vec::new();
                        while let Some(Ok(item)) = futures_lite::future::block_on(items.next()) {
                            got.push(item);
                            let _ = first_tx.try_send(());
                        }
                        let _ = tx.send(got);
                    });
                    // Returns while the thread reads.
                    let _ = first_rx.recv().await;
                }
            },
        );
        for i in 0..N {
            sink.send(i).expect("queued");
        }
        go_tx.send_blocking(()).expect("go");
        let ((), unsent) = sink.close_with_unsent();
        let got = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the thread's items");
        let prefix: Vec<u32> = (0..got.len() as u32).collect();
        assert!(
            got == prefix,
            "the stream skipped items: it yielded {} items, the first gap after item {:?}; {} came back unsent",
            got.len(),
            got.windows(2).find(|w| w[1] != w[0] + 1).map(|w| w[0]),
            unsent.len()
        );
    });
}
