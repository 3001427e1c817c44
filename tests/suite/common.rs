//! What the tests share: a watchdog that turns a hang into a failure, the
//! calling contexts, one trait over the adapters, and thread counting.
#![allow(dead_code)]

use std::any::Any;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{BlockingIter, Bridge, Builder, Pollster, Runtime};
use futures_lite::Stream;

/// Serializes whatever replaces the (process-wide) panic hook, and the
/// tests that raise the panics such a hook looks for on shared threads: a
/// hook taken by one test while another's is in place loses panics.
pub fn hook_lock() -> std::sync::MutexGuard<'static, ()> {
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HOOK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The watchdog limit most tests use, in seconds: generous, for a loaded
/// machine.
pub const LIMIT: u64 = 60;

/// Runs `f` on a fresh thread and fails the test if it has not returned after
/// `secs` seconds. A panic inside `f` is resumed here with its payload.
#[track_caller]
pub fn watchdog<T, F>(secs: u64, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let out = watch(secs, Box::new(move || Box::new(f())));
    *out.downcast::<T>().expect("the output's own type")
}

fn watch(secs: u64, f: Job) -> Box<dyn Any + Send> {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(());
            out
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join().expect("join") {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: the test hung for more than {secs} s")
        }
    }
}

/// Runs `f`, naming `case` in its failure: a panic with a text payload is
/// raised again as `"{case}: {text}"`; any other payload is resumed as it is,
/// the case written to stderr first.
#[track_caller]
pub fn in_case<T>(case: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => match message(&*payload) {
            Some(text) => panic!("{case}: {text}"),
            None => {
                eprintln!("{case}: panicked (a payload without text, resumed)");
                std::panic::resume_unwind(payload)
            }
        },
    }
}

/// Polls `cond` every millisecond until it holds or `limit` passes; returns
/// whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Names of this process's threads, as the kernel reports them (at most 15
/// bytes each).
pub fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            if let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) {
                names.push(name.trim_end().to_owned());
            }
        }
    }
    names
}

/// Number of threads of this process whose name starts with `prefix`. Tests
/// that count threads give their bridge a thread name of their own.
pub fn threads_named(prefix: &str) -> usize {
    thread_names()
        .iter()
        .filter(|n| n.starts_with(prefix))
        .count()
}

/// Sets its flag when dropped.
#[derive(Debug)]
pub struct DropFlag(Arc<AtomicBool>);

impl DropFlag {
    /// A guard and the flag it sets on drop.
    pub fn new() -> (DropFlag, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (DropFlag(Arc::clone(&flag)), flag)
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Whether a [`DropFlag`] was dropped.
pub fn is_set(flag: &AtomicBool) -> bool {
    flag.load(Ordering::SeqCst)
}

/// A panic payload that is neither `&str` nor `String`.
#[derive(Debug, PartialEq, Eq)]
pub struct Payload(pub u32);

/// The text of a `&str` or `String` panic payload.
pub fn message(payload: &(dyn Any + Send)) -> Option<String> {
    if let Some(s) = payload.downcast_ref::<&str>() {
        Some((*s).to_owned())
    } else {
        payload.downcast_ref::<String>().cloned()
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The adapters under test, one interface: how to make one, and a timer
/// that needs that very runtime (so a future really depends on it).
pub trait TestRuntime: Runtime + Clone {
    /// Short name, for thread names and messages.
    const NAME: &'static str;
    /// A fresh adapter.
    fn make() -> Self;
    /// A sleep driven by this runtime's own timer.
    fn sleep(d: Duration) -> BoxFuture<()>;
}

impl TestRuntime for Pollster {
    const NAME: &'static str = "pollster";
    fn make() -> Self {
        Pollster
    }
    fn sleep(d: Duration) -> BoxFuture<()> {
        Box::pin(thread_sleep(d))
    }
}

#[cfg(feature = "tokio")]
impl TestRuntime for executor_bridge::Tokio {
    const NAME: &'static str = "tokio";
    fn make() -> Self {
        executor_bridge::Tokio::new()
    }
    fn sleep(d: Duration) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep(d))
    }
}

#[cfg(feature = "smol")]
impl TestRuntime for executor_bridge::Smol {
    const NAME: &'static str = "smol";
    fn make() -> Self {
        executor_bridge::Smol
    }
    fn sleep(d: Duration) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::after(d).await;
        })
    }
}

#[cfg(feature = "async-std")]
impl TestRuntime for executor_bridge::AsyncStd {
    const NAME: &'static str = "async-std";
    fn make() -> Self {
        executor_bridge::AsyncStd
    }
    fn sleep(d: Duration) -> BoxFuture<()> {
        Box::pin(async_std::task::sleep(d))
    }
}

/// A timer that needs no runtime: a helper thread completes it.
pub async fn thread_sleep(d: Duration) {
    let (tx, rx) = async_channel::bounded::<()>(1);
    thread::Builder::new()
        .name("test-timer".into())
        .spawn(move || {
            thread::sleep(d);
            let _ = tx.send_blocking(());
        })
        .expect("spawn a timer thread");
    let _ = rx.recv().await;
}

/// One `#[test]` per enabled adapter for a check generic over
/// [`TestRuntime`], each under the watchdog: `per_runtime!(check);` makes a
/// module `check` with tests `pollster`, `tokio`, `smol`, `async_std`, each
/// calling `check::<Adapter>()`; `per_runtime!(name => check(args));` makes
/// the module `name`, its tests calling `check::<Adapter>(args)`.
macro_rules! per_runtime {
    ($($check:ident),* $(,)?) => {
        $crate::common::per_runtime!($($check => $check()),*);
    };
    ($($name:ident => $check:ident($($arg:expr),*)),* $(,)?) => {$(
        mod $name {
            #[test]
            fn pollster() {
                $crate::common::watchdog($crate::common::LIMIT, || super::$check::<executor_bridge::Pollster>($($arg),*));
            }
            #[cfg(feature = "tokio")]
            #[test]
            fn tokio() {
                $crate::common::watchdog($crate::common::LIMIT, || super::$check::<executor_bridge::Tokio>($($arg),*));
            }
            #[cfg(feature = "smol")]
            #[test]
            fn smol() {
                $crate::common::watchdog($crate::common::LIMIT, || super::$check::<executor_bridge::Smol>($($arg),*));
            }
            #[cfg(feature = "async-std")]
            #[test]
            fn async_std() {
                $crate::common::watchdog($crate::common::LIMIT, || super::$check::<executor_bridge::AsyncStd>($($arg),*));
            }
        }
    )*};
}
pub(crate) use per_runtime;

/// A calling context: where blocking code that calls the bridge can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// A plain thread.
    Plain,
    /// Inside a future the same bridge runs (a nested call).
    Nested,
    /// The body of a tokio current_thread runtime (`#[tokio::test]`).
    #[cfg(feature = "tokio")]
    CurrentThread,
    /// A task spawned on a tokio current_thread runtime.
    #[cfg(feature = "tokio")]
    CurrentThreadTask,
    /// A `LocalSet` on a current_thread runtime, in a `spawn_local` task.
    #[cfg(feature = "tokio")]
    LocalSetTask,
    /// A task on a tokio multi_thread worker.
    #[cfg(feature = "tokio")]
    Worker,
    /// The `block_on` thread of a multi_thread runtime.
    #[cfg(feature = "tokio")]
    MultiThreadBlockOn,
    /// A `spawn_blocking` thread of a multi_thread runtime.
    #[cfg(feature = "tokio")]
    SpawnBlocking,
    /// A thread that entered a runtime's handle (`Handle::enter`).
    #[cfg(feature = "tokio")]
    EnteredHandle,
    /// Inside `smol::block_on`.
    #[cfg(feature = "smol")]
    SmolBlockOn,
    /// Inside `async_std::task::block_on`.
    #[cfg(feature = "async-std")]
    AsyncStdBlockOn,
    /// Inside `futures::executor::block_on`.
    FuturesBlockOn,
}

impl Ctx {
    /// Every context the enabled features allow.
    pub fn all() -> Vec<Ctx> {
        vec![
            Ctx::Plain,
            Ctx::Nested,
            #[cfg(feature = "tokio")]
            Ctx::CurrentThread,
            #[cfg(feature = "tokio")]
            Ctx::CurrentThreadTask,
            #[cfg(feature = "tokio")]
            Ctx::LocalSetTask,
            #[cfg(feature = "tokio")]
            Ctx::Worker,
            #[cfg(feature = "tokio")]
            Ctx::MultiThreadBlockOn,
            #[cfg(feature = "tokio")]
            Ctx::SpawnBlocking,
            #[cfg(feature = "tokio")]
            Ctx::EnteredHandle,
            #[cfg(feature = "smol")]
            Ctx::SmolBlockOn,
            #[cfg(feature = "async-std")]
            Ctx::AsyncStdBlockOn,
            Ctx::FuturesBlockOn,
        ]
    }

    /// Runs `f` (given a clone of `bridge`) from this context and returns its
    /// output; a panic in `f` resumes here with its payload.
    pub fn run<R, T, F>(self, bridge: &Bridge<R>, f: F) -> T
    where
        R: Runtime,
        T: Send + 'static,
        F: FnOnce(Bridge<R>) -> T + Send + 'static,
    {
        // Each caller's closure is erased here, so that the runtimes'
        // machinery below is compiled once, not once per test.
        let inner = bridge.clone();
        let job: Job = Box::new(move || Box::new(f(inner)));
        let out = match self {
            Ctx::Nested => nested(bridge, job),
            other => other.run_job(job),
        };
        *out.downcast::<T>().expect("the output's own type")
    }

    fn run_job(self, f: Job) -> Box<dyn Any + Send> {
        match self {
            Ctx::Plain => f(),
            Ctx::Nested => unreachable!("a nested call needs the bridge"),
            #[cfg(feature = "tokio")]
            Ctx::CurrentThread => current_thread().block_on(async move { f() }),
            #[cfg(feature = "tokio")]
            Ctx::CurrentThreadTask => current_thread()
                .block_on(async move { join(tokio::spawn(async move { f() }).await) }),
            #[cfg(feature = "tokio")]
            Ctx::LocalSetTask => {
                let local = tokio::task::LocalSet::new();
                current_thread().block_on(local.run_until(async move {
                    join(tokio::task::spawn_local(async move { f() }).await)
                }))
            }
            #[cfg(feature = "tokio")]
            Ctx::Worker => {
                multi_thread().block_on(async move { join(tokio::spawn(async move { f() }).await) })
            }
            #[cfg(feature = "tokio")]
            Ctx::MultiThreadBlockOn => multi_thread().block_on(async move { f() }),
            #[cfg(feature = "tokio")]
            Ctx::SpawnBlocking => {
                multi_thread().block_on(async move { join(tokio::task::spawn_blocking(f).await) })
            }
            #[cfg(feature = "tokio")]
            Ctx::EnteredHandle => {
                let rt = multi_thread();
                let _entered = rt.enter();
                f()
            }
            #[cfg(feature = "smol")]
            Ctx::SmolBlockOn => smol::block_on(async move { f() }),
            #[cfg(feature = "async-std")]
            Ctx::AsyncStdBlockOn => async_std::task::block_on(async move { f() }),
            Ctx::FuturesBlockOn => futures::executor::block_on(async move { f() }),
        }
    }
}

/// Runs `case` once per calling context (`case` enters the context itself,
/// with [`Ctx::run`]), a failure naming the context.
pub fn each_ctx<R: Runtime>(bridge: &Bridge<R>, mut case: impl FnMut(Ctx, &Bridge<R>)) {
    for ctx in Ctx::all() {
        in_case(&format!("{ctx:?}"), || case(ctx, bridge));
    }
}

/// How a stream becomes a [`BlockingIter`]: `iter_direct`, or `iter` on a
/// bridge with this `stream_capacity` (0, the default, reads nothing ahead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Direct,
    Iter(usize),
}

impl Way {
    /// The `stream_capacity` of a bridge for this way.
    pub fn capacity(self) -> usize {
        match self {
            Way::Direct => 0,
            Way::Iter(cap) => cap,
        }
    }

    /// A builder for this way (its capacity set), to set more on.
    pub fn builder_on<R: Runtime>(self, rt: R) -> Builder<R> {
        Bridge::builder(rt).stream_capacity(self.capacity())
    }

    /// A bridge for this way on a fresh adapter.
    pub fn bridge<R: TestRuntime>(self) -> Bridge<R> {
        self.bridge_on(R::make())
    }

    /// A bridge for this way on `rt`.
    pub fn bridge_on<R: Runtime>(self, rt: R) -> Bridge<R> {
        self.builder_on(rt).build()
    }

    /// The iterator over `make`'s stream, made this way on `b` (the capacity
    /// is `b`'s: see [`Way::bridge`]).
    pub fn open<R, M, S>(self, b: &Bridge<R>, make: M) -> BlockingIter<S::Item>
    where
        R: Runtime,
        M: FnOnce() -> S + Send + 'static,
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        match self {
            Way::Direct => b.iter_direct(make),
            Way::Iter(_) => b.iter(make),
        }
    }
}

/// Runs `f` inside a future `bridge` runs (outside [`Ctx::run`], whose
/// every instance would otherwise compile a bridge call of its own).
fn nested<R: Runtime>(bridge: &Bridge<R>, f: Job) -> Box<dyn Any + Send> {
    bridge.run(move || async move { f() })
}

/// A caller's closure, its output type erased.
pub type Job = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

#[cfg(feature = "tokio")]
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current_thread runtime")
}

#[cfg(feature = "tokio")]
pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a multi_thread runtime")
}

/// A task's output, its panic resumed with the payload.
#[cfg(feature = "tokio")]
pub fn join<T>(joined: Result<T, tokio::task::JoinError>) -> T {
    match joined {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

// ===== Child processes, for what can abort the process =====

/// The variable that tells a child process which scenario it runs.
const SCENARIO: &str = "EXECUTOR_BRIDGE_TEST_SCENARIO";

/// The scenario this process was started for by [`child`], if it is a child.
pub fn scenario() -> Option<String> {
    std::env::var(SCENARIO).ok()
}

/// Runs the test `test` (its full libtest name) of this binary alone in a
/// child process, with `scenario` selected, and returns what it printed.
/// Fails if the child fails, aborts, or runs longer than [`LIMIT`] (then it
/// is killed), or ran no test.
pub fn child(test: &str, scenario: &str) -> String {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let finished = eventually(Duration::from_secs(LIMIT), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !finished {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for the child");
    let (out, err) = (out.join().expect("stdout"), err.join().expect("stderr"));
    assert!(
        finished,
        "{test} ({scenario}) hung; stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        status.success() && out.contains("1 passed"),
        "{test} ({scenario}) failed: {status}; stdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// Runs `f` under the watchdog in a child process: the test `test` (its
/// full libtest name, the one calling this) run again alone, where this call
/// runs `f`. Fails if the child fails, aborts or hangs.
pub fn in_child(test: &str, f: impl FnOnce() + Send + 'static) {
    if scenario().as_deref() == Some(test) {
        watchdog(LIMIT, f);
        return;
    }
    child(test, test);
}

/// Whether `it` failed for good: finished, and every later call failing
/// again (a broken stream is never taken for one that ended): `next` panics
/// and `next_timeout` returns the error, both saying it failed earlier.
pub fn is_broken<T: Send + 'static>(it: &mut executor_bridge::BlockingIter<T>) -> bool {
    const EARLIER: &str = "failed in an earlier call: ";
    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next()));
    let next_failed = matches!(&next, Err(p) if message(&**p)
        .is_some_and(|m| m.starts_with(&format!("executor-bridge: {EARLIER}"))));
    let timed = it.next_timeout(Duration::from_secs(LIMIT));
    let timed_failed = matches!(&timed, Err(e) if e.to_string().starts_with(EARLIER));
    it.is_finished() && next_failed && timed_failed
}
