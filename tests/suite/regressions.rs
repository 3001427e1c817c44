//! Regression tests, one group per defect found in review (`dNN_` is the
//! defect's number). Each asserts the correct behaviour: on the code that has
//! the defect it fails, hangs (the watchdog turns that into a failure after
//! [`HANG`] s) or aborts (those run in a child process, see [`in_child`]).
//!
//! "A value whose drop needs the runtime" is [`NeedsRt`]: its `Drop` calls
//! `tokio::spawn`, as a sqlx pooled connection does to go home. Dropped
//! outside a tokio context it panics; the bridge must drop what it owns of
//! the user's inside its runtime's context, so the spawned task runs
//! ([`Tally::assert_all_ran`]).

use std::io::{self, BufRead, Read, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::thread;
use std::time::Duration;

use executor_bridge::{
    AsyncStd, BlockingSink, Bridge, Pollster, Runtime, SinkStream, Smol, SmolExecutor, Tokio,
};
use futures_lite::{stream, AsyncRead, AsyncWrite, Stream, StreamExt};
use tokio::task::LocalSet;

use crate::common::{
    current_thread, eventually, is_set, join, message, multi_thread, watchdog, BoxFuture, DropFlag,
    TestRuntime,
};
use crate::run::NoEnter;

// ===== Shared helpers =====

/// Seconds after which a test that has not returned counts as hung.
const HANG: u64 = 20;

/// How long a spawned task may take to run.
const SOON: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `f` under the watchdog.
fn watched<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog(HANG, f)
}

/// `f`'s output, or the message it panicked with.
fn outcome<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|p| message(&*p).unwrap_or_else(|| "<a panic without a message>".into()))
}

fn tokio_bridge() -> Bridge<Tokio> {
    Bridge::new(Tokio::new())
}

/// Runs `f` inside the bridge's own tokio runtime's context (to drop a
/// [`NeedsRt`] the test itself holds).
fn in_runtime<T>(b: &Bridge<Tokio>, f: impl FnOnce() -> T) -> T {
    let _entered = b.runtime().handle().expect("the runtime").enter();
    f()
}

/// Counts the [`NeedsRt`] values made, and the tasks their drops spawned
/// that ran.
#[derive(Default)]
struct Tally {
    made: AtomicUsize,
    ran: AtomicUsize,
}

/// A value whose `Drop` needs a tokio runtime: it spawns a task there.
struct NeedsRt(Arc<Tally>);

impl Drop for NeedsRt {
    fn drop(&mut self) {
        let tally = Arc::clone(&self.0);
        tokio::spawn(async move {
            tally.ran.fetch_add(1, SeqCst);
        });
    }
}

impl Tally {
    fn new() -> Arc<Tally> {
        Arc::default()
    }

    fn item(self: &Arc<Self>) -> NeedsRt {
        self.made.fetch_add(1, SeqCst);
        NeedsRt(Arc::clone(self))
    }

    /// Whether, within [`SOON`], every value made was dropped and its task ran.
    fn all_ran(&self) -> bool {
        eventually(SOON, || {
            let made = self.made.load(SeqCst);
            made > 0 && self.ran.load(SeqCst) == made
        })
    }

    #[track_caller]
    fn assert_all_ran(&self) {
        assert!(
            self.all_ran(),
            "the tasks of {} of {} dropped values ran: the others were dropped outside the \
             bridge's runtime (their drop panicked) or never dropped",
            self.ran.load(SeqCst),
            self.made.load(SeqCst)
        );
    }
}

/// Panics with its message when dropped.
struct PanicsOnDrop(&'static str);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0)
    }
}

/// Where the blocking code that calls the bridge runs: a plain thread, or
/// somewhere inside a tokio current_thread runtime.
#[derive(Clone, Copy, Debug)]
enum Where {
    /// A plain thread.
    Plain,
    /// A `block_on` body (`#[tokio::test]`).
    Body,
    /// A task spawned on the runtime.
    Task,
    /// A `LocalSet` body: `local.block_on(&rt, ..)`.
    LocalBlockOn,
    /// A `LocalSet` body: `rt.block_on(local.run_until(..))`.
    LocalRunUntil,
    /// A `spawn_local` task of a `LocalSet`.
    SpawnLocal,
}

impl Where {
    /// Runs `f` there and returns its output; its panic resumes here.
    fn run<T: Send + 'static>(self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let rt = || current_thread();
        match self {
            Where::Plain => f(),
            Where::Body => rt().block_on(async move { f() }),
            Where::Task => {
                rt().block_on(async move { join(tokio::spawn(async move { f() }).await) })
            }
            Where::LocalBlockOn => LocalSet::new().block_on(&rt(), async move { f() }),
            Where::LocalRunUntil => rt().block_on(LocalSet::new().run_until(async move { f() })),
            Where::SpawnLocal => rt().block_on(LocalSet::new().run_until(async move {
                join(tokio::task::spawn_local(async move { f() }).await)
            })),
        }
    }
}

/// A module of tests, one per case, each under the watchdog. A case is not
/// named like a function of this module: it would shadow it.
macro_rules! cases {
    ($($group:ident { $($case:ident => $body:expr),* $(,)? })*) => {$(
        mod $group {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    watched(|| $body);
                }
            )*
        }
    )*};
}

/// A check taking a [`Where`], run from each place inside a current_thread
/// runtime.
macro_rules! in_each_current_thread_place {
    ($($check:ident),* $(,)?) => {$(
        cases!($check {
            body => super::$check(Where::Body),
            task => super::$check(Where::Task),
            local_set_block_on => super::$check(Where::LocalBlockOn),
            local_set_run_until => super::$check(Where::LocalRunUntil),
            spawn_local_task => super::$check(Where::SpawnLocal),
        });
    )*};
}

/// Tests that run their check in a child process: an abort (a panic in a
/// destructor during cleanup) or a thread spinning forever then fails the
/// test, not the suite.
macro_rules! child_tests {
    ($group:ident { $($name:ident => $check:expr),* $(,)? }) => {
        mod $group {
            use super::*;
            $(
                #[test]
                fn $name() {
                    in_child(concat!(stringify!($group), "::", stringify!($name)), $check);
                }
            )*
        }
    };
}

/// Runs `f` under the watchdog in a child process (see
/// [`common::in_child`]): `name` is the test's name within this module.
fn in_child(name: &str, f: impl FnOnce() + Send + 'static) {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    crate::common::in_child(&format!("{module}::{name}"), f);
}

// ===== 1. Tokio futures and `yield_now` inside a current_thread runtime =====

/// A user calls a bridged tokio future (a timer, a `yield_now`) from
/// `#[tokio::test]` code, a task or a `LocalSet`: it completes.
fn d01_tokio_future(at: Where) {
    let b = tokio_bridge();
    let out = at.run(move || {
        b.run(|| async {
            tokio::time::sleep(ms(2)).await;
            tokio::task::yield_now().await;
            7
        })
    });
    assert_eq!(out, 7);
}

/// The same for a runtime-free future that yields with tokio's `yield_now`.
fn d01_pollster_yield_now(at: Where) {
    let b = Bridge::new(Pollster);
    let out = at.run(move || {
        b.run(|| async {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            7
        })
    });
    assert_eq!(out, 7);
}

in_each_current_thread_place!(d01_tokio_future, d01_pollster_yield_now);

// ===== 2. `spawn_local` inside a bridged future called from a LocalSet =====

/// What tokio panics with for a `spawn_local` outside a `LocalSet`.
const SPAWN_LOCAL_REFUSED: &str = "`spawn_local` called from outside of a `task::LocalSet`";

async fn spawn_local_one() -> i32 {
    tokio::task::spawn_local(async { 1 })
        .await
        .expect("the local task")
}

fn via_run(b: &Bridge<Tokio>) -> i32 {
    b.run(spawn_local_one)
}

fn via_iter_direct(b: &Bridge<Tokio>) -> i32 {
    let mut it = b.iter_direct(|| stream::once_future(spawn_local_one()));
    it.next().expect("an item")
}

fn via_nested(b: &Bridge<Tokio>) -> i32 {
    let inner = b.clone();
    b.run(move || async move { inner.run(spawn_local_one) })
}

/// A bridged future runs outside the caller's `LocalSet`: `spawn_local`
/// there behaves as from a plain thread (tokio's panic, resumed in the
/// caller), instead of queueing a task on the blocked `LocalSet`.
fn d02_spawn_local_from_a_local_set_task(call: fn(&Bridge<Tokio>) -> i32) {
    let b = tokio_bridge();
    let plain = {
        let b = b.clone();
        outcome(move || call(&b))
    };
    let refused = plain
        .clone()
        .expect_err("spawn_local from a plain thread returned");
    assert!(
        refused.starts_with(SPAWN_LOCAL_REFUSED),
        "from a plain thread: {refused}"
    );
    let local = Where::SpawnLocal.run(move || outcome(move || call(&b)));
    assert_eq!(local, plain, "from a LocalSet task, against a plain thread");
}

cases!(d02_spawn_local_from_a_local_set_task {
    run => d02_spawn_local_from_a_local_set_task(via_run),
    iter_direct => d02_spawn_local_from_a_local_set_task(via_iter_direct),
    nested => d02_spawn_local_from_a_local_set_task(via_nested),
});

// ===== 3. `block_in_place` inside a bridged future =====

fn block_in_place_five(b: &Bridge<Tokio>) -> i32 {
    b.run(|| async { tokio::task::block_in_place(|| 5) })
}

/// `block_in_place` in a bridged future works wherever the caller is, as it
/// does from a plain thread.
fn d03_block_in_place(at: Where) {
    let b = tokio_bridge();
    let plain = {
        let b = b.clone();
        outcome(move || block_in_place_five(&b))
    };
    assert_eq!(plain, Ok(5), "from a plain thread");
    assert_eq!(
        at.run(move || outcome(move || block_in_place_five(&b))),
        plain
    );
}

in_each_current_thread_place!(d03_block_in_place);

// ===== 4. A tokio timer under another adapter, from a current_thread body =====

fn tokio_timer<R: Runtime>(b: &Bridge<R>) {
    b.run(|| tokio::time::sleep(ms(5)))
}

/// A tokio timer needs a tokio adapter: under another one it is refused
/// with tokio's "no reactor" panic from a `#[tokio::test]` body too, as from
/// a plain thread, instead of registering with the test's blocked runtime
/// and hanging.
fn d04_tokio_timer_under<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let plain = {
        let b = b.clone();
        outcome(move || tokio_timer(&b))
    };
    let refused = plain.clone().expect_err("a tokio timer ran without tokio");
    assert!(
        refused.contains("must be called from the context of a Tokio 1.x runtime"),
        "from a plain thread: {refused}"
    );
    assert_eq!(
        Where::Body.run(move || outcome(move || tokio_timer(&b))),
        plain
    );
}

cases!(d04_tokio_timer_under_another_adapter_from_a_body {
    smol => d04_tokio_timer_under::<Smol>(),
    pollster => d04_tokio_timer_under::<Pollster>(),
    async_std => d04_tokio_timer_under::<AsyncStd>(),
});

// ===== 5. task-locals =====

tokio::task_local! {
    static KEY: u32;
}

async fn read_key() -> Option<u32> {
    KEY.try_with(|v| *v).ok()
}

/// `run` and `run_timeout` see the caller's tokio task-locals alike.
fn d05_task_local_seen_alike() {
    let b = tokio_bridge();
    let (run, timed) = current_thread().block_on(async move {
        let task = tokio::spawn(KEY.scope(1, async move {
            let run = b.run(read_key);
            let timed = b.run_timeout(SOON, read_key).expect("run_timeout");
            (run, timed)
        }));
        join(task.await)
    });
    assert_eq!(run, timed, "run against run_timeout");
}

cases!(d05_task_local {
    run_and_run_timeout_alike => d05_task_local_seen_alike(),
});

// ===== 6. Entered handles on tokio workers and tasks =====

/// A worker task awaits a task it just spawned through the bridge, having
/// entered the bridge's runtime: the spawned task (in the worker's LIFO
/// slot) still runs.
fn d06_worker_awaits_its_spawned_task() {
    let b = tokio_bridge();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let got = rt.block_on(async move {
        let task = tokio::spawn(async move {
            let h = tokio::spawn(async { 5 });
            let _entered = b.runtime().handle().expect("the runtime").enter();
            b.run(move || h)
        });
        join(task.await)
    });
    assert_eq!(got.expect("the spawned task"), 5);
}

/// A current_thread task that entered a multi_thread runtime's handle is not
/// taken for a `LocalSet` task on a worker: its call completes.
fn d06_current_thread_task_in_a_multi_thread_handle() {
    let b = tokio_bridge();
    let mt = multi_thread();
    let handle = mt.handle().clone();
    let got = Where::Task.run(move || {
        let _entered = handle.enter();
        outcome(move || {
            b.run(|| async {
                tokio::time::sleep(ms(1)).await;
                7
            })
        })
    });
    assert_eq!(got, Ok(7));
}

cases!(d06_entered_handles {
    worker_awaits_its_spawned_task => d06_worker_awaits_its_spawned_task(),
    current_thread_task_in_a_multi_thread_handle => d06_current_thread_task_in_a_multi_thread_handle(),
});

// ===== 7. Items read ahead, dropped with the iterator =====

/// Items `iter` read ahead are dropped with the iterator inside the
/// bridge's runtime: no panic (two of them aborted the process), and each
/// one's task runs.
fn d07_read_ahead_items_dropped() {
    let b = Bridge::builder(Tokio::new()).stream_capacity(8).build();
    let tally = Tally::new();
    let t = Arc::clone(&tally);
    let mut it = b.iter(move || stream::iter(0..100).map(move |_| t.item()));
    let first = it.next().expect("an item");
    in_runtime(&b, || drop(first));
    thread::sleep(ms(50)); // the stream runs ahead
    drop(it);
    tally.assert_all_ran();
}

// ===== 8. A stream dropped by `iter_direct` =====

/// A stream that owns `value` and counts forever.
fn owning(value: NeedsRt) -> impl Stream<Item = u32> + Send + 'static {
    stream::unfold(
        (value, 0),
        |(value, n)| async move { Some((n, (value, n + 1))) },
    )
}

/// An `iter_direct` stream left after one item is dropped inside the
/// bridge's runtime, wherever the consumer is: no panic on a plain thread,
/// and from a `#[tokio::test]` body its task runs on the bridge's runtime,
/// not on the test's blocked one.
fn d08_iter_direct_left_after_one_item(at: Where) {
    let b = tokio_bridge();
    let tally = Tally::new();
    let value = tally.item();
    let t = Arc::clone(&tally);
    let (read, ran) = at.run(move || {
        let read = outcome(|| b.iter_direct(move || owning(value)).take(1).count());
        (read, t.all_ran())
    });
    assert_eq!(read, Ok(1));
    assert!(
        ran,
        "the stream's value was not dropped in the bridge's runtime"
    );
}

cases!(d08_iter_direct_left_after_one_item {
    plain_thread => d08_iter_direct_left_after_one_item(Where::Plain),
    current_thread_body => d08_iter_direct_left_after_one_item(Where::Body),
});

// ===== 9. Sinks and IO objects own values whose drop needs the runtime =====

/// `close` of a sink whose consumer left items in its queue returns the
/// consumer's output; the items are dropped in the runtime (two of them
/// dropped outside aborted the process).
fn d09_sink_closed_with_items_queued() {
    let b = tokio_bridge();
    let tally = Tally::new();
    let (go, gate) = async_channel::bounded::<()>(1);
    let sink = b.sink(4, move |mut items: SinkStream<NeedsRt>| async move {
        let first = items.next().await;
        let _ = gate.recv().await;
        drop(first);
        "done"
    });
    for _ in 0..3 {
        sink.send(tally.item()).expect("the consumer takes items");
    }
    go.send_blocking(()).expect("the consumer waits");
    thread::sleep(ms(50)); // the consumer has returned, its stream dropped
    assert_eq!(sink.close(), "done");
    tally.assert_all_ran();
}

/// A sink dropped without `close` after its consumer finished: the output
/// nobody takes is dropped in the runtime, without a panic.
fn d09_sink_dropped_with_its_output_waiting() {
    let b = tokio_bridge();
    let tally = Tally::new();
    let t = Arc::clone(&tally);
    let sink = b.sink(1, move |_items: SinkStream<u32>| async move { t.item() });
    assert!(
        eventually(SOON, || tally.made.load(SeqCst) == 1),
        "the consumer did not run"
    );
    thread::sleep(ms(50)); // its output waits in the sink
    assert_eq!(outcome(move || drop(sink)), Ok(()));
    tally.assert_all_ran();
}

/// A `BlockingIo` dropped on a plain thread drops its object in the
/// runtime, without a panic.
fn d09_io_object_dropped_on_a_plain_thread() {
    let b = tokio_bridge();
    let tally = Tally::new();
    let io = b.io(tally.item());
    assert_eq!(outcome(move || drop(io)), Ok(()));
    tally.assert_all_ran();
}

cases!(d09_values_owned_by_sinks_and_io {
    sink_dropped_with_its_output_waiting => d09_sink_dropped_with_its_output_waiting(),
    io_object_dropped_on_a_plain_thread => d09_io_object_dropped_on_a_plain_thread(),
});

// ===== 10. `run_timeout` drops what it gave up on in the runtime =====

/// A future that completes after `run_timeout` gave up on it (it blocked
/// its thread past the deadline and the grace): its output is dropped in the
/// runtime, not in the loop thread's bookkeeping outside it.
fn d10_output_made_after_the_caller_gave_up() {
    let b = tokio_bridge();
    let tally = Tally::new();
    let t = Arc::clone(&tally);
    let got = b.run_timeout(ms(20), move || async move {
        thread::sleep(ms(80));
        t.item()
    });
    match got {
        Ok(v) => in_runtime(&b, || drop(v)),
        Err(e) => assert!(e.is_timeout(), "{e}"),
    }
    tally.assert_all_ran();
}

/// A call still queued at its deadline: its factory, dropped by the caller,
/// is dropped in the runtime, without a panic.
fn d10_factory_dropped_from_the_queue() {
    let b = Bridge::builder(Tokio::new()).max_threads(1).build();
    let (release, gate) = async_channel::bounded::<()>(1);
    let busy = {
        let b = b.clone();
        thread::spawn(move || {
            b.run_timeout(Duration::from_secs(15), move || async move {
                let _ = gate.recv().await;
            })
        })
    };
    assert!(
        eventually(SOON, || b.threads() == 1),
        "the only thread did not start"
    );
    thread::sleep(ms(20));
    let tally = Tally::new();
    let value = tally.item();
    let got = outcome(|| b.run_timeout(ms(20), move || async move { drop(value) }));
    release.send_blocking(()).expect("the busy call waits");
    busy.join()
        .expect("the busy call")
        .expect("the busy call's output");
    match got {
        Ok(Err(e)) => assert!(e.is_timeout(), "{e}"),
        Ok(Ok(())) => panic!("the call was not queued: the scenario did not happen"),
        Err(panic) => panic!("dropping the queued factory panicked: {panic}"),
    }
    tally.assert_all_ran();
}

cases!(d10_run_timeout_drops {
    output_made_after_the_caller_gave_up => d10_output_made_after_the_caller_gave_up(),
    factory_dropped_from_the_queue => d10_factory_dropped_from_the_queue(),
});

// ===== 11. A spawned task runs while the bridged future yields =====

/// A bridged future that spawns a timer task and yields until it ran: the
/// task runs (it never did, and the caller spun forever; hence a child
/// process, which ends the spinning thread).
fn d11_spawned_task_runs_while_the_future_yields() {
    let b = tokio_bridge();
    let flag = Arc::new(AtomicBool::new(false));
    b.run(move || async move {
        let f = Arc::clone(&flag);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(100)).await;
            f.store(true, SeqCst);
        });
        while !flag.load(SeqCst) {
            tokio::task::yield_now().await;
        }
    });
}

// ===== 12. Blocking calls from a task of the bridge's own runtime =====

/// A future that completes only while the bridge's runtime (its tokio
/// runtime, its smol executor) runs.
type Nap = Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>;

fn tokio_nap() -> Nap {
    Arc::new(|| Box::pin(tokio::time::sleep(ms(1))))
}

fn executor_nap(ex: &Arc<smol::Executor<'static>>) -> Nap {
    let ex = Arc::clone(ex);
    Arc::new(move || Box::pin(ex.spawn(async {})))
}

/// `n` items, a nap before each.
fn naps(nap: Nap, n: u32) -> impl Stream<Item = u32> + Send + 'static {
    stream::iter(0..n).then(move |i| {
        let nap = nap();
        async move {
            nap.await;
            i
        }
    })
}

/// An async writer that takes every byte, each call after a nap.
struct NappingWriter {
    nap: Nap,
    pending: Option<BoxFuture<()>>,
}

impl NappingWriter {
    fn poll_nap(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let nap = &self.nap;
        ready!(self.pending.get_or_insert_with(|| nap()).as_mut().poll(cx));
        self.pending = None;
        Poll::Ready(())
    }
}

impl AsyncWrite for NappingWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.get_mut().poll_nap(cx));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_nap(cx));
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// A blocking call on the bridge whose work needs the bridge's runtime.
type Call<R> = fn(&Bridge<R>, Nap);

fn call_run<R: Runtime>(b: &Bridge<R>, nap: Nap) {
    b.run(move || nap())
}

fn call_iter_direct<R: Runtime>(b: &Bridge<R>, nap: Nap) {
    let _ = b.iter_direct(move || naps(nap, 2)).next();
}

fn call_iter<R: Runtime>(b: &Bridge<R>, nap: Nap) {
    let _ = b.iter(move || naps(nap, 2)).next();
}

fn call_writer<R: Runtime>(b: &Bridge<R>, nap: Nap) {
    let mut w = b.writer(move || NappingWriter { nap, pending: None });
    w.write_all(b"payload")
        .and_then(|()| w.flush())
        .expect("the writer");
}

fn call_sink<R: Runtime>(b: &Bridge<R>, nap: Nap) {
    let sink = b.sink(2, move |mut items: SinkStream<u32>| async move {
        while items.next().await.is_some() {
            nap().await;
        }
    });
    sink.send(1).expect("the consumer takes items");
    sink.close();
}

/// Runs `call` in a task of the bridge's own caller-driven tokio runtime
/// (on a thread that drives it); returns its outcome.
fn from_own_tokio_task(call: Call<Tokio>) -> Result<(), String> {
    let b = tokio_bridge();
    let inner = b.clone();
    b.run(move || async move {
        let task = tokio::spawn(async move { outcome(|| call(&inner, tokio_nap())) });
        task.await.expect("the task")
    })
}

/// Runs `call` in a task of a `SmolExecutor`'s executor, on the adapter's
/// own thread; returns its outcome.
fn from_own_executor_task(call: Call<SmolExecutor>) -> Result<(), String> {
    let ex = Arc::new(smol::Executor::new());
    let b = Bridge::new(SmolExecutor::new(Arc::clone(&ex)));
    let (inner, nap) = (b.clone(), executor_nap(&ex));
    let task = ex.spawn(async move { outcome(|| call(&inner, nap)) });
    b.run(move || task)
}

/// The call is refused with the crate's message, as `run` and
/// `iter_direct` are, instead of blocking the thread its work needs.
#[track_caller]
fn assert_refused(got: Result<(), String>) {
    let text = got.expect_err("the blocking call returned");
    assert!(text.starts_with("executor-bridge:"), "{text}");
}

cases!(
    d12_blocking_call_from_a_task_of_the_bridges_own_tokio_runtime {
        run_control => assert_refused(from_own_tokio_task(call_run)),
        iter_direct_control => assert_refused(from_own_tokio_task(call_iter_direct)),
        iter => assert_refused(from_own_tokio_task(call_iter)),
        writer => assert_refused(from_own_tokio_task(call_writer)),
        sink => assert_refused(from_own_tokio_task(call_sink)),
    }
    d12_blocking_call_from_a_task_on_the_smol_executors_own_thread {
        run_control => assert_refused(from_own_executor_task(call_run)),
        iter_direct_control => assert_refused(from_own_executor_task(call_iter_direct)),
        iter => assert_refused(from_own_executor_task(call_iter)),
        writer => assert_refused(from_own_executor_task(call_writer)),
        sink => assert_refused(from_own_executor_task(call_sink)),
    }
);

// ===== 13-15. Half bodies are never committed =====

/// What a [`Scripted`] writer was asked to do.
#[derive(Default)]
struct Seen {
    in_write: AtomicBool,
    closed: AtomicBool,
    dropped: AtomicBool,
}

/// An async writer that takes every byte, blocking its thread for
/// `write_sleep` in each `poll_write`, and records what it was asked.
struct Scripted {
    seen: Arc<Seen>,
    write_sleep: Duration,
    _bomb: Option<PanicsOnDrop>,
}

impl Scripted {
    fn new(seen: &Arc<Seen>, write_sleep: Duration) -> Self {
        Scripted {
            seen: Arc::clone(seen),
            write_sleep,
            _bomb: None,
        }
    }

    /// The same, its destructor panicking with `message`.
    fn panicking_on_drop(mut self, message: &'static str) -> Self {
        self._bomb = Some(PanicsOnDrop(message));
        self
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.seen.in_write.store(true, SeqCst);
        thread::sleep(self.write_sleep);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.seen.closed.store(true, SeqCst);
        Poll::Ready(Ok(()))
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.seen.dropped.store(true, SeqCst);
    }
}

/// Waits for the writer to be dropped; whether it was closed.
#[track_caller]
fn was_closed(seen: &Seen) -> bool {
    assert!(
        eventually(SOON, || seen.dropped.load(SeqCst)),
        "the writer was never dropped"
    );
    seen.closed.load(SeqCst)
}

/// A writer dropped without `close` (a `?` returned early) does not close
/// its sink: a consumer must not take half a body for a whole one.
fn d13_writer_dropped_without_close() {
    let b = Bridge::new(Pollster);
    let seen = Arc::new(Seen::default());
    let s = Arc::clone(&seen);
    let mut w = b.writer(move || Scripted::new(&s, Duration::ZERO));
    w.write_all(b"half a body").expect("write");
    // The sink exists and has the bytes (a writer aborted before its sink
    // was made never makes it).
    w.flush().expect("flush");
    drop(w);
    assert!(!was_closed(&seen), "poll_close was called");
}

/// A consumer of a sink: after its first item it sets `in_poll`, blocks
/// its thread for `sleep`, then (in the same poll) asks for the next item;
/// sets `committed` if it saw the end of the stream. Drops `guard` when
/// done or cancelled.
fn consumer(
    b: &Bridge<Pollster>,
    sleep: Duration,
    guard: DropFlag,
) -> (BlockingSink<u32, ()>, Arc<AtomicBool>, Arc<AtomicBool>) {
    let (in_poll, committed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (i, c) = (Arc::clone(&in_poll), Arc::clone(&committed));
    let sink = b.sink(4, move |mut items: SinkStream<u32>| async move {
        let _guard = guard;
        let _ = items.next().await;
        i.store(true, SeqCst);
        thread::sleep(sleep);
        while items.next().await.is_some() {}
        c.store(true, SeqCst);
    });
    (sink, in_poll, committed)
}

/// A sink dropped without `close` cancels its consumer: the consumer never
/// sees the end of its stream.
fn d13_sink_dropped_without_close() {
    let b = Bridge::new(Pollster);
    let (guard, gone) = DropFlag::new();
    let (sink, _, committed) = consumer(&b, Duration::ZERO, guard);
    sink.send(1).expect("the consumer takes items");
    drop(sink);
    assert!(
        eventually(SOON, || is_set(&gone)),
        "the consumer never ended"
    );
    assert!(
        !committed.load(SeqCst),
        "the consumer saw the end of its stream"
    );
}

cases!(d13_half_bodies {
    writer_dropped_without_close => d13_writer_dropped_without_close(),
    sink_dropped_without_close => d13_sink_dropped_without_close(),
});

const ROUNDS: usize = 200;

/// Runs `round` [`ROUNDS`] times, each under the watchdog; asserts that it
/// never returned `true`.
fn never_in_rounds(what: &str, round: impl Fn() -> bool + Send + Sync + 'static) {
    let round = Arc::new(round);
    let hits = (0..ROUNDS)
        .filter(|_| {
            let round = Arc::clone(&round);
            watched(move || round())
        })
        .count();
    println!("{what}: {hits} of {ROUNDS}");
    assert_eq!(hits, 0, "{what}: {hits} of {ROUNDS}");
}

/// The unwinding user code of the races: quiet (`resume_unwind` calls no
/// panic hook), and `thread::panicking()` holds while it unwinds.
fn fail_mid_body() -> ! {
    resume_unwind(Box::new("the user's code failed mid-body"))
}

/// A writer dropped during a panic while its loop thread is inside a
/// `poll_write` of the sink: the sink is never closed.
fn d14_writer_race_round(b: &Bridge<Pollster>) -> bool {
    let seen = Arc::new(Seen::default());
    let (s, watch, b) = (Arc::clone(&seen), Arc::clone(&seen), b.clone());
    let _ = catch_unwind(AssertUnwindSafe(move || {
        let mut w = b.writer(move || Scripted::new(&s, ms(30)));
        // More than a chunk: one travels to the sink.
        w.write_all(&vec![0; 64 * 1024 + 1]).expect("write");
        let in_write = || watch.in_write.load(SeqCst);
        assert!(
            eventually(SOON, in_write),
            "the chunk never reached the sink"
        );
        fail_mid_body() // `w` is dropped while this unwinds
    }));
    was_closed(&seen)
}

/// A sink dropped during a panic while its consumer is inside a poll: the
/// consumer never sees the end of its stream.
fn d15_sink_race_round(b: &Bridge<Pollster>) -> bool {
    let (guard, gone) = DropFlag::new();
    let (sink, in_poll, committed) = consumer(b, ms(30), guard);
    let _ = catch_unwind(AssertUnwindSafe(move || {
        let sink = sink;
        sink.send(1).expect("the consumer takes items");
        assert!(
            eventually(SOON, || is_set(&in_poll)),
            "the consumer never took the item"
        );
        fail_mid_body()
    }));
    assert!(
        eventually(SOON, || is_set(&gone)),
        "the consumer never ended"
    );
    committed.load(SeqCst)
}

cases!(d14_d15_races {
    d14_writer_dropped_while_panicking_is_never_closed => {
        let b = Bridge::new(Pollster);
        never_in_rounds("defect 14: clean closes", move || d14_writer_race_round(&b))
    },
    d15_sink_dropped_while_panicking_is_never_committed => {
        let b = Bridge::new(Pollster);
        never_in_rounds("defect 15: commits", move || d15_sink_race_round(&b))
    },
});

// ===== 16-19. IO objects =====

/// The same steps on a `BufRead + Write` object.
fn read_then_write(io: &mut (impl BufRead + Write)) {
    io.fill_buf().expect("fill_buf");
    io.write_all(b"bb").expect("write");
    let n = io.fill_buf().expect("fill_buf").len();
    io.consume(n);
    io.write_all(b"Z").expect("write");
}

/// A write between two `fill_buf`s: the second sees the object's bytes
/// after the write, as `std::io::Cursor` does, not a stale copy.
fn d16_io_fill_buf_after_a_write() {
    const START: &[u8] = b"aaaaaaaa";
    let mut std_cursor = io::Cursor::new(START.to_vec());
    read_then_write(&mut std_cursor);
    let b = Bridge::new(Pollster);
    let mut bridged = b.io(futures_lite::io::Cursor::new(START.to_vec()));
    read_then_write(&mut bridged);
    let bytes = bridged.into_inner().expect("the object").into_inner();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&std_cursor.into_inner())
    );
}

/// An async reader that panics.
struct PanickingSource;

impl AsyncRead for PanickingSource {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        panic!("the source failed")
    }
}

/// Three reads: each must fail, none may look like a clean end.
#[track_caller]
fn assert_reads_fail(reader: &mut impl Read) {
    let mut buf = [0; 16];
    for i in 0..3 {
        let got = reader.read(&mut buf);
        assert!(
            got.is_err(),
            "read {i}: {got:?} (a clean end of a failed source)"
        );
    }
}

/// A reader whose source panicked: the first read resumes the panic, every
/// later one fails (a clean EOF would pass a truncated body as whole).
fn d17_reader_after_its_source_panicked() {
    let b = Bridge::new(Pollster);
    let mut reader = b.reader(|| PanickingSource);
    let first = outcome(|| reader.read(&mut [0; 16]));
    assert!(first.is_err(), "the first read: {first:?}");
    assert_reads_fail(&mut reader);
}

/// A reader whose loop thread could not start: every read fails.
fn d17_reader_without_a_loop_thread() {
    let b = Bridge::builder(Pollster).stack_size(usize::MAX / 2).build();
    let mut reader = b.reader(|| futures_lite::io::Cursor::new(b"never read".to_vec()));
    assert_reads_fail(&mut reader);
}

/// An IO call that must hop (a runtime without `enter`, from a
/// `#[tokio::test]` body) while no loop thread can start: the call fails,
/// and the object is still there.
fn d18_io_object_kept_when_a_hop_fails() {
    let b = Bridge::builder(NoEnter).stack_size(usize::MAX / 2).build();
    let mut io = b.io(futures_lite::io::Cursor::new(b"kept".to_vec()));
    let (read, io) = Where::Body.run(move || {
        let read = io.read(&mut [0; 4]).map_err(|e| e.to_string());
        (read, io)
    });
    assert!(read.is_err(), "the read could not hop, yet: {read:?}");
    let back = io.into_inner().map(futures_lite::io::Cursor::into_inner);
    assert_eq!(back.ok(), Some(b"kept".to_vec()), "the object was lost");
}

/// A writer whose sink's destructor panics after a clean `poll_close`: the
/// first `close` resumes the panic instead of reporting success.
fn d19_writer_close_reports_a_destructor_panic() {
    const BOOM: &str = "the sink's destructor failed";
    let b = Bridge::new(Pollster);
    let seen = Arc::new(Seen::default());
    let s = Arc::clone(&seen);
    let mut w = b.writer(move || Scripted::new(&s, Duration::ZERO).panicking_on_drop(BOOM));
    w.write_all(b"a whole body").expect("write");
    match outcome(|| w.close()) {
        Err(text) => assert_eq!(text, BOOM),
        Ok(closed) => panic!("close returned {closed:?}"),
    }
}

cases!(d16_d19_io {
    d16_fill_buf_sees_a_write => d16_io_fill_buf_after_a_write(),
    d17_reads_after_the_source_panicked => d17_reader_after_its_source_panicked(),
    d17_reads_without_a_loop_thread => d17_reader_without_a_loop_thread(),
    d18_object_kept_when_a_hop_fails => d18_io_object_kept_when_a_hop_fails(),
    d19_close_reports_a_destructor_panic => d19_writer_close_reports_a_destructor_panic(),
});

// ===== 20. A destructor's panic under a slow panic hook =====

/// A cancelled future whose destructor panics is reported as a panic even
/// when the panic hook is slow (the process's hook: a child process only).
fn d20_destructor_panic_under_a_slow_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        thread::sleep(ms(100));
        default(info)
    }));
    let b = Bridge::new(Pollster);
    let got = b.run_timeout(ms(20), || async {
        let _bomb = PanicsOnDrop("the cancelled future's destructor failed");
        std::future::pending::<()>().await
    });
    let err = got.expect_err("a pending future returned");
    assert!(err.is_panic(), "{err:?}");
}

// ===== 21. `next_timeout` without a hop =====

/// `next_timeout` on a ready stream polls it in place, as `next` does: no
/// loop thread starts.
fn d21_next_timeout_on_a_ready_stream() {
    let b = Bridge::new(Pollster);
    let mut it = b.iter_direct(|| stream::iter(0..100u32));
    for i in 0..100 {
        assert_eq!(
            it.next_timeout(Duration::from_secs(1)).expect("an item"),
            Some(i)
        );
    }
    assert_eq!(b.threads(), 0, "loop threads started");
}

cases!(d21_next_timeout {
    ready_stream_starts_no_thread => d21_next_timeout_on_a_ready_stream(),
});

// ===== In child processes =====

child_tests!(in_a_child_process {
    d07_read_ahead_items_dropped_with_the_iterator => d07_read_ahead_items_dropped,
    d09_sink_close_with_items_queued => d09_sink_closed_with_items_queued,
    d11_spawned_timer_task_runs => d11_spawned_task_runs_while_the_future_yields,
    d20_destructor_panic_under_a_slow_panic_hook => d20_destructor_panic_under_a_slow_hook,
});
