//! The matrix: entry points × calling contexts × adapters × behaviours of
//! real futures, one table each, every cell compared with the same cell run
//! from a plain thread in the same run.
//!
//! The suite around it passed with futures that were well-behaved toys;
//! what escaped it were futures that do what real libraries do (tokio's
//! `yield_now`, `spawn_local`, `block_in_place`, task-locals, a timer of the
//! other runtime, a value whose `Drop` spawns a task as a sqlx pooled
//! connection does), called from contexts the toys never met together.
//!
//! - The tables: [`entries`] (how a cell calls the bridge), [`contexts`]
//!   (where the blocking code is), [`adapters`], [`behaviours`] (what the
//!   future does). Adding one is one line there.
//! - Which cells run: [`in_full`] (every tokio context × every behaviour for
//!   `run`, `iter_direct` and `sink`, and a few more products), then
//!   [`all_pairs`] covers every pair of dimension values the full part left.
//! - What a cell must give: [`expected`]: the same cell's outcome from a
//!   plain thread, except where a rule says otherwise (task-locals, the
//!   refused contexts). Each cell also checks what must hold anywhere
//!   (values that need the runtime dropped in it, early drops that abort),
//!   and each batch of cells that no loop thread outlives its bridge.
//! - Cells run in batches, one per context and adapter: the context is
//!   entered once and its cells run inside it, under a watchdog that names
//!   the cell that hung. A test reports all its failures at once, each with
//!   its coordinates; [`KNOWN_DEFECTS`] lists cells that fail on the
//!   current code for a reason in the library.
//!
//! The tests split the cells by adapter (parallel), plus one
//! `#[tokio::test]` that runs the cells of its own body, and one that runs
//! the thread-local-destructor cells in a child process (a defect there
//! aborts the process). Each prints how many cells it ran, and how long
//! that took (`--nocapture`). `EXECUTOR_BRIDGE_MATRIX=full` runs every valid
//! cell instead (about 24,000 with all features, some 20 s).

use std::any::Any;
use std::cell::{Cell as StdCell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{ready, Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{BlockingIter, Bridge, Error, Pollster, Runtime, SinkStream};
use futures_lite::{stream, AsyncRead, AsyncWrite, Stream, StreamExt};

use crate::common::{eventually, message, thread_sleep, threads_named, BoxFuture, DropFlag};

/// How long a call that should complete may take.
const LONG: Duration = Duration::from_secs(30);
/// How long something that happens in the background (a drop, a spawned
/// task) may take.
const SOON: Duration = Duration::from_secs(5);
/// A cell that has not finished after this long hung.
const CELL_LIMIT: Duration = Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ===== The tables =====

/// Entry-point flags: polls the future on the caller's thread where `run`
/// would; has an early-drop form; hands values (an output, items) over.
const HERE: u8 = 1;
const EARLY: u8 = 2;
const VALUES: u8 = 4;

/// An entry point: how a cell calls the bridge with the behaviour's work.
struct Entry<R: Runtime> {
    name: &'static str,
    flags: u8,
    call: EntryFn<R>,
}

fn entry<R: Runtime>(name: &'static str, flags: u8, call: EntryFn<R>) -> Entry<R> {
    Entry { name, flags, call }
}

type EntryFn<R> = fn(&Bridges<R>, &mut Case) -> String;

#[rustfmt::skip]
fn entries<R: Runtime>() -> Vec<Entry<R>> {
    let e = entry::<R>;
    vec![
        e("run",                        HERE | VALUES,         e_run::<R>),
        e("try_run",                    HERE | VALUES,         e_try_run::<R>),
        e("run_timeout",                EARLY | VALUES,        e_run_timeout::<R>),
        e("run_scoped",                 HERE | VALUES,         e_run_scoped::<R>),
        e("iter",                       EARLY | VALUES,        e_iter::<R>),
        e("iter, stream_capacity(4)",   EARLY | VALUES,        e_iter_capacity::<R>),
        e("iter_direct",                HERE | EARLY | VALUES, e_iter_direct::<R>),
        e("iter_direct + next_timeout", HERE | EARLY | VALUES, e_direct_timeout::<R>),
        e("iter + next_timeout",        EARLY | VALUES,        e_iter_timeout::<R>),
        e("reader",                     EARLY,                 e_reader::<R>),
        e("writer",                     EARLY,                 e_writer::<R>),
        e("io",                         HERE,                  e_io::<R>),
        e("sink",                       EARLY | VALUES,        e_sink::<R>),
    ]
}

/// The entry points' names and flags, whatever the runtime.
fn entry_info() -> Vec<(&'static str, u8)> {
    entries::<Pollster>()
        .into_iter()
        .map(|e| (e.name, e.flags))
        .collect()
}

/// Context flags: what the bridge takes a call from there for (a plain
/// thread, a tokio multi_thread worker, a task of the bridge's own runtime;
/// none of these: somewhere it must not block, so the call hops); a tokio
/// context (in the full product); where its cells run (the
/// `#[tokio::test]`, a child process); the executor whose thread it blocks
/// (see [`Adapter::executor`]).
const PLAIN: u8 = 1;
const WORKER: u8 = 2;
const OWN: u8 = 4;
const TOKIO: u8 = 8;
const TOKIO_TEST: u8 = 16;
const CHILD: u8 = 32;
const SMOL_GLOBAL: u8 = 64;
#[cfg_attr(not(feature = "async-std"), allow(dead_code))]
const ASYNC_STD_GLOBAL: u8 = 128;

/// A calling context: runs a batch of cells from there.
struct Ctx {
    name: &'static str,
    flags: u8,
    enter: fn(&Scope, Batch),
}

fn ctx(name: &'static str, flags: u8, enter: fn(&Scope, Batch)) -> Ctx {
    Ctx { name, flags, enter }
}

#[rustfmt::skip]
fn contexts() -> Vec<Ctx> {
    let c = ctx;
    vec![
        c("plain thread",                           PLAIN,                    plain),
        #[cfg(feature = "tokio")]
        c("tokio worker task",                      WORKER | TOKIO,           tokio_ctx::worker),
        #[cfg(feature = "tokio")]
        c("tokio worker task, handle entered",      WORKER | TOKIO,           tokio_ctx::worker_entered),
        #[cfg(feature = "tokio")]
        c("tokio worker task, one worker",          WORKER | TOKIO,           tokio_ctx::single_worker),
        #[cfg(feature = "tokio")]
        c("multi_thread block_on body",             TOKIO,                    tokio_ctx::mt_block_on),
        #[cfg(feature = "tokio")]
        c("current_thread body",                    TOKIO,                    tokio_ctx::ct_body),
        #[cfg(feature = "tokio")]
        c("current_thread task",                    TOKIO,                    tokio_ctx::ct_task),
        #[cfg(feature = "tokio")]
        c("#[tokio::test] body",                    TOKIO | TOKIO_TEST,       plain),
        #[cfg(feature = "tokio")]
        c("LocalSet body",                          TOKIO,                    tokio_ctx::local_set_body),
        #[cfg(feature = "tokio")]
        c("spawn_local task",                       TOKIO,                    tokio_ctx::spawn_local_task),
        #[cfg(feature = "tokio")]
        c("multi_thread LocalSet body",             TOKIO,                    tokio_ctx::mt_local_set_body),
        #[cfg(feature = "tokio")]
        c("multi_thread spawn_local task",          TOKIO,                    tokio_ctx::mt_spawn_local_task),
        #[cfg(feature = "tokio")]
        c("spawn_blocking",                         TOKIO,                    tokio_ctx::spawn_blocking),
        #[cfg(feature = "tokio")]
        c("current_thread spawn_blocking",          TOKIO,                    tokio_ctx::ct_spawn_blocking),
        #[cfg(any(feature = "tokio", feature = "smol"))]
        c("task of the bridge's own runtime",       OWN | TOKIO,              own_task),
        c("smol::block_on",                         PLAIN,                    smol_block_on),
        c("smol::spawn task",                       PLAIN | SMOL_GLOBAL,      smol_task),
        #[cfg(feature = "async-std")]
        c("async_std::task::block_on",              PLAIN,                    async_std_block_on),
        #[cfg(feature = "async-std")]
        c("async_std task",                         PLAIN | ASYNC_STD_GLOBAL, async_std_task),
        c("futures::executor::block_on",            PLAIN,                    futures_block_on),
        c("nested call",                            0,                        nested),
        c("thread-local destructor, runtime alive", PLAIN | CHILD,            tls_early),
        c("thread-local destructor, runtime gone",  CHILD,                    tls_late),
    ]
}

/// What a task of the bridge's own runtime may do.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Own {
    /// The adapter has no tasks of its own.
    None,
    /// Its tasks must not block on the bridge: refused with a panic.
    Refused,
    /// Its tasks run on multi_thread workers.
    Worker,
}

/// An adapter: how to run a batch of cells on a fresh bridge over it.
struct Adapter {
    name: &'static str,
    /// Its context replaces the caller's tokio context.
    tokio: bool,
    /// Has a reactor (sockets).
    reactor: bool,
    own: Own,
    /// The global executor its `spawn` uses ([`SMOL_GLOBAL`],
    /// [`ASYNC_STD_GLOBAL`]), if any: a context that blocks one of that
    /// executor's threads (one in all for smol's, by default) keeps a
    /// future that awaits its task from ever completing, the limit the
    /// README states ("a future that waits for something only the caller's
    /// own blocked runtime drives").
    executor: u8,
    run: fn(&Job) -> Out,
}

fn adapter(
    name: &'static str,
    tokio: bool,
    reactor: bool,
    (own, executor): (Own, u8),
    run: fn(&Job) -> Out,
) -> Adapter {
    Adapter {
        name,
        tokio,
        reactor,
        own,
        executor,
        run,
    }
}

#[rustfmt::skip]
fn adapters() -> Vec<Adapter> {
    let a = adapter;
    vec![
        #[cfg(feature = "tokio")]
        a("Tokio::new()",                      true,  true,  (Own::Refused, 0),             |j| batch(j, new_tokio)),
        #[cfg(feature = "tokio")]
        a("Tokio::from_runtime(multi_thread)", true,  true,  (Own::Worker, 0),              |j| batch(j, new_tokio_mt)),
        #[cfg(feature = "smol")]
        a("Smol",                              false, true,  (Own::None, SMOL_GLOBAL),      |j| batch(j, new_smol)),
        #[cfg(feature = "smol")]
        a("SmolExecutor",                      false, true,  (Own::Refused, 0),             |j| batch(j, new_smol_executor)),
        #[cfg(feature = "async-std")]
        a("AsyncStd",                          false, true,  (Own::None, ASYNC_STD_GLOBAL), |j| batch(j, new_async_std)),
        a("Pollster",                          false, false, (Own::None, 0),                |j| batch(j, new_pollster)),
    ]
}

/// Behaviour flags: what the entry's future (stream, object, consumer)
/// holds beyond its work (a value whose drop needs the runtime,
/// [`NeedsRt`]; one whose drop panics, [`Bomb`]); its values (the output,
/// the items) need the runtime to drop; the entry's early-drop form; the
/// caller sets a tokio task-local around the call; the work awaits a task
/// it spawned.
const HOLDS_RT: u8 = 1;
const HOLDS_BOMB: u8 = 2;
const VALUES_RT: u8 = 4;
const DROPPED_EARLY: u8 = 8;
const TASK_LOCAL: u8 = 16;
/// The work awaits a task it spawned on the adapter's executor.
const SPAWNS: u8 = 32;

/// A behaviour of a real future.
struct Behaviour {
    name: &'static str,
    /// Whether it exists under the adapter.
    applies: fn(&Adapter) -> bool,
    /// The future's work, made where the call runs; its output shows.
    work: fn(&Kit) -> BoxFuture<u32>,
    flags: u8,
    /// What the outcome from a plain thread must be like (a check of the
    /// reference itself).
    plain: fn(&Adapter, &str) -> bool,
}

fn behaviour(
    name: &'static str,
    applies: fn(&Adapter) -> bool,
    work: fn(&Kit) -> BoxFuture<u32>,
    flags: u8,
    plain: fn(&Adapter, &str) -> bool,
) -> Behaviour {
    Behaviour {
        name,
        applies,
        work,
        flags,
        plain,
    }
}

#[rustfmt::skip]
fn behaviours() -> Vec<Behaviour> {
    let b = behaviour;
    vec![
        b("yield_now after a wait",              any,        w_yield,          0,                          no_panic),
        b("tokio's yield_now",                   not_tokio,  w_tokio_yield,    0,                          no_panic),
        b("tokio spawn_local",                   any,        w_spawn_local,    0,                          spawn_local_refused),
        b("tokio block_in_place",                any,        w_block_in_place, 0,                          no_panic),
        b("self-wake loop awaiting its task",    any,        w_self_wake,      SPAWNS,                     no_panic),
        b("the other runtime's timer",           any,        w_other_timer,    0,                          other_timer),
        b("spawn and join",                      any,        w_spawn_join,     SPAWNS,                     no_panic),
        b("TCP round trip",                      reactor,    w_tcp,            0,                          no_panic),
        b("tokio task_local",                    any,        w_task_local,     TASK_LOCAL,                 no_panic),
        b("wake from a std thread",              any,        w_foreign_wake,   0,                          no_panic),
        b("keeps its first poll's waker",        any,        w_first_waker,    0,                          no_panic),
        b("held value needs the runtime",        tokio_only, w_ready,          HOLDS_RT,                   no_panic),
        b("values need the runtime",             tokio_only, w_ready,          VALUES_RT,                  no_panic),
        b("panic in poll",                       any,        w_panic,          0,                          boom_7),
        b("panic in drop",                       any,        w_ready,          HOLDS_BOMB,                 boom_9),
        b("early drop",                          any,        w_ready,          DROPPED_EARLY,              no_panic),
        b("early drop, value needs the runtime", tokio_only, w_ready,          DROPPED_EARLY | HOLDS_RT,   no_panic),
        b("early drop, panic in drop",           any,        w_ready,          DROPPED_EARLY | HOLDS_BOMB, anything),
    ]
}

fn any(_: &Adapter) -> bool {
    true
}
fn not_tokio(a: &Adapter) -> bool {
    !a.tokio
}
fn reactor(a: &Adapter) -> bool {
    a.reactor
}
fn tokio_only(a: &Adapter) -> bool {
    a.tokio
}

fn anything(_: &Adapter, _: &str) -> bool {
    true
}
fn no_panic(_: &Adapter, got: &str) -> bool {
    !got.contains("panic")
}
fn spawn_local_refused(_: &Adapter, got: &str) -> bool {
    got.contains("`spawn_local` called from outside of a `task::LocalSet`")
}
fn other_timer(a: &Adapter, got: &str) -> bool {
    if a.tokio {
        no_panic(a, got)
    } else {
        got.contains("must be called from the context of a Tokio 1.x runtime")
    }
}
fn boom_7(_: &Adapter, got: &str) -> bool {
    got.contains("panic Boom(7)")
}
fn boom_9(_: &Adapter, got: &str) -> bool {
    got.contains("panic Boom(9)")
}

/// Cells that fail on the current code for a defect in the library, each
/// with the reason: (entry, context, adapter, behaviour, why); `*` matches
/// anything. They still run; their failures are printed, not counted.
#[rustfmt::skip]
const KNOWN_DEFECTS: &[(&str, &str, &str, &str, &str)] = &[];

// ===== Behaviours =====

/// A panic payload that is neither `&str` nor `String` (shown with
/// `Debug`).
#[allow(dead_code)]
#[derive(Debug)]
struct Boom(u32);

fn fail<T>(payload: Boom) -> T {
    panic_any(payload)
}

fn w_ready(k: &Kit) -> BoxFuture<u32> {
    let sleep = k.sleep;
    Box::pin(async move {
        sleep(ms(1)).await;
        1
    })
}

fn w_yield(k: &Kit) -> BoxFuture<u32> {
    let (sleep, yield_now) = (k.sleep, k.yield_now);
    Box::pin(async move {
        sleep(ms(1)).await;
        for _ in 0..3 {
            yield_now().await;
        }
        2
    })
}

fn w_tokio_yield(k: &Kit) -> BoxFuture<u32> {
    let sleep = k.sleep;
    Box::pin(async move {
        sleep(ms(1)).await;
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        3
    })
}

fn w_spawn_local(_: &Kit) -> BoxFuture<u32> {
    Box::pin(async {
        tokio::task::spawn_local(async { 4 })
            .await
            .expect("the local task")
    })
}

fn w_block_in_place(_: &Kit) -> BoxFuture<u32> {
    Box::pin(async { tokio::task::block_in_place(|| 5) })
}

/// Spawns a task that sets a flag after 100 µs and yields until it did.
fn w_self_wake(k: &Kit) -> BoxFuture<u32> {
    let (sleep, yield_now, spawn) = (k.sleep, k.yield_now, Arc::clone(&k.spawn));
    Box::pin(async move {
        let flag = Arc::new(AtomicBool::new(false));
        let set = Arc::clone(&flag);
        let task = spawn(Box::pin(async move {
            sleep(Duration::from_micros(100)).await;
            set.store(true, SeqCst);
            6
        }));
        while !flag.load(SeqCst) {
            yield_now().await;
        }
        task.await
    })
}

fn w_other_timer(k: &Kit) -> BoxFuture<u32> {
    let sleep = k.other_sleep;
    Box::pin(async move {
        sleep(ms(1)).await;
        7
    })
}

fn w_spawn_join(k: &Kit) -> BoxFuture<u32> {
    let (sleep, spawn) = (k.sleep, Arc::clone(&k.spawn));
    Box::pin(async move {
        spawn(Box::pin(async move {
            sleep(ms(1)).await;
            8
        }))
        .await
    })
}

fn w_tcp(k: &Kit) -> BoxFuture<u32> {
    let tcp = k.tcp.expect("an adapter with a reactor");
    Box::pin(async move {
        let echoed = tcp(echo_server()).await.expect("the TCP round trip");
        assert_eq!(echoed, b"ping", "the echo");
        9
    })
}

tokio::task_local! {
    static KEY: u32;
}

/// The value the caller gives the task-local.
const KEY_VALUE: u32 = 11;

/// The task-local as seen at the first poll and after a wait: 1111 if
/// visible both times, 0 if never.
fn w_task_local(k: &Kit) -> BoxFuture<u32> {
    let sleep = k.sleep;
    Box::pin(async move {
        let first = KEY.try_with(|v| *v).unwrap_or(0);
        sleep(ms(1)).await;
        first * 100 + KEY.try_with(|v| *v).unwrap_or(0)
    })
}

fn w_foreign_wake(_: &Kit) -> BoxFuture<u32> {
    Box::pin(async {
        let (tx, rx) = async_channel::bounded(1);
        thread::Builder::new()
            .name("mx-waker".into())
            .spawn(move || {
                thread::sleep(ms(1));
                let _ = tx.send_blocking(10u32);
            })
            .expect("spawn a waker thread");
        rx.recv().await.expect("the value")
    })
}

/// A hand-written future that keeps the waker of its first poll for good
/// and never registers another: a std thread wakes it three times, and it
/// is ready after the third. The `Future` contract asks only that the
/// latest waker be woken, but futures written this way exist, and every
/// plain `block_on` completes them.
fn w_first_waker(_: &Kit) -> BoxFuture<u32> {
    struct KeepsFirst {
        wakes: Arc<AtomicUsize>,
        started: bool,
    }
    impl Future for KeepsFirst {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.wakes.load(SeqCst) >= 3 {
                return Poll::Ready(10);
            }
            if !self.started {
                self.started = true;
                let (waker, wakes) = (cx.waker().clone(), Arc::clone(&self.wakes));
                thread::Builder::new()
                    .name("mx-waker".into())
                    .spawn(move || {
                        for _ in 0..3 {
                            thread::sleep(ms(1));
                            wakes.fetch_add(1, SeqCst);
                            waker.wake_by_ref();
                        }
                    })
                    .expect("spawn a waker thread");
            }
            Poll::Pending
        }
    }
    Box::pin(KeepsFirst {
        wakes: Arc::new(AtomicUsize::new(0)),
        started: false,
    })
}

fn w_panic(k: &Kit) -> BoxFuture<u32> {
    let sleep = k.sleep;
    Box::pin(async move {
        sleep(ms(1)).await;
        fail::<u32>(Boom(7))
    })
}

/// A std TCP echo server on the loopback, one per process.
fn echo_server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
        let addr = listener.local_addr().expect("its address");
        thread::Builder::new()
            .name("mx-echo".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    thread::spawn(move || {
                        let mut buf = [0; 64];
                        while let Ok(n @ 1..) = conn.read(&mut buf) {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            })
            .expect("spawn the echo server");
        addr
    })
}

/// Sends "ping" and reads the echo, on any futures-io socket.
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "async-std")),
    allow(dead_code)
)]
async fn ping<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<Vec<u8>> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"ping").await?;
    let mut buf = [0; 4];
    s.read_exact(&mut buf).await?;
    Ok(buf.to_vec())
}

// ===== What the adapters give the behaviours =====

type Sleep = fn(Duration) -> BoxFuture<()>;
type Tcp = fn(SocketAddr) -> BoxFuture<io::Result<Vec<u8>>>;
type Spawn = Arc<dyn Fn(BoxFuture<u32>) -> BoxFuture<u32> + Send + Sync>;

/// An adapter's own ways, for the behaviours.
#[derive(Clone)]
struct Kit {
    /// A timer of the adapter's runtime.
    sleep: Sleep,
    /// The adapter's `yield_now`: tokio's for tokio, futures-lite's otherwise.
    yield_now: fn() -> BoxFuture<()>,
    /// A timer of the other runtime: smol's under tokio, tokio's otherwise.
    other_sleep: Sleep,
    /// Spawns a task on the adapter's executor (a thread for Pollster);
    /// returns its output.
    spawn: Spawn,
    /// A TCP round trip with the adapter's own socket type.
    tcp: Option<Tcp>,
    /// The bridge's tokio runtime, for the values the caller drops.
    handle: Option<tokio::runtime::Handle>,
}

fn lite_yield() -> BoxFuture<()> {
    Box::pin(futures_lite::future::yield_now())
}
fn tokio_sleep(d: Duration) -> BoxFuture<()> {
    Box::pin(tokio::time::sleep(d))
}
#[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
fn smol_sleep(d: Duration) -> BoxFuture<()> {
    Box::pin(async move {
        smol::Timer::after(d).await;
    })
}

/// An adapter under test.
trait Under: Runtime + Clone {
    fn kit(&self) -> Kit;
    /// Its own tokio runtime's handle, if it has one.
    fn own_handle(&self) -> Option<tokio::runtime::Handle> {
        None
    }
    /// Runs a batch in a task of the bridge's own runtime, if it has one.
    fn own_task(_: &Bridge<Self>) -> Option<OwnTask> {
        None
    }
}

type OwnTask = Arc<dyn Fn(Batch) + Send + Sync>;

fn new_pollster(_: &str) -> Pollster {
    Pollster
}

impl Under for Pollster {
    fn kit(&self) -> Kit {
        Kit {
            sleep: |d| Box::pin(thread_sleep(d)),
            yield_now: lite_yield,
            other_sleep: tokio_sleep,
            spawn: Arc::new(|task: BoxFuture<u32>| -> BoxFuture<u32> {
                let (tx, rx) = async_channel::bounded(1);
                thread::Builder::new()
                    .name("mx-task".into())
                    .spawn(move || {
                        let _ = tx.send_blocking(pollster::block_on(task));
                    })
                    .expect("spawn a task thread");
                Box::pin(async move { rx.recv().await.expect("the task's output") })
            }),
            tcp: None,
            handle: None,
        }
    }
}

#[cfg(feature = "tokio")]
fn new_tokio(_: &str) -> executor_bridge::Tokio {
    executor_bridge::Tokio::new()
}

/// Its runtime's threads are named after the bridge's, and counted with
/// its loop threads.
#[cfg(feature = "tokio")]
fn new_tokio_mt(prefix: &str) -> executor_bridge::Tokio {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{prefix}-w"))
        .enable_all()
        .build()
        .expect("a multi_thread runtime");
    executor_bridge::Tokio::from_runtime(rt)
}

#[cfg(feature = "tokio")]
impl Under for executor_bridge::Tokio {
    fn kit(&self) -> Kit {
        Kit {
            sleep: tokio_sleep,
            yield_now: || Box::pin(tokio::task::yield_now()),
            other_sleep: smol_sleep,
            spawn: Arc::new(|task: BoxFuture<u32>| -> BoxFuture<u32> {
                let task = tokio::spawn(task);
                Box::pin(async move { task.await.expect("the task") })
            }),
            tcp: Some(|addr| {
                Box::pin(async move {
                    use tokio_util::compat::TokioAsyncReadCompatExt;
                    ping(tokio::net::TcpStream::connect(addr).await?.compat()).await
                })
            }),
            handle: self.own_handle(),
        }
    }

    fn own_handle(&self) -> Option<tokio::runtime::Handle> {
        self.handle().ok().cloned()
    }

    fn own_task(b: &Bridge<Self>) -> Option<OwnTask> {
        let handle = b.runtime().own_handle()?;
        Some(Arc::new(move |f| {
            let task = handle.spawn(async move { f() });
            crate::common::join(futures::executor::block_on(task))
        }))
    }
}

#[cfg(feature = "smol")]
fn smol_tcp(addr: SocketAddr) -> BoxFuture<io::Result<Vec<u8>>> {
    Box::pin(async move { ping(smol::net::TcpStream::connect(addr).await?).await })
}

#[cfg(feature = "smol")]
impl Under for executor_bridge::Smol {
    fn kit(&self) -> Kit {
        Kit {
            sleep: smol_sleep,
            yield_now: lite_yield,
            other_sleep: tokio_sleep,
            spawn: Arc::new(|task: BoxFuture<u32>| -> BoxFuture<u32> {
                Box::pin(smol::spawn(task))
            }),
            tcp: Some(smol_tcp),
            handle: None,
        }
    }
}

#[cfg(feature = "smol")]
fn new_smol(_: &str) -> executor_bridge::Smol {
    executor_bridge::Smol
}

#[cfg(feature = "smol")]
fn new_smol_executor(_: &str) -> executor_bridge::SmolExecutor {
    executor_bridge::SmolExecutor::new(Arc::new(smol::Executor::new()))
}

#[cfg(feature = "smol")]
impl Under for executor_bridge::SmolExecutor {
    fn kit(&self) -> Kit {
        let ex = Arc::clone(self.executor());
        Kit {
            sleep: smol_sleep,
            yield_now: lite_yield,
            other_sleep: tokio_sleep,
            spawn: Arc::new(move |task: BoxFuture<u32>| -> BoxFuture<u32> {
                Box::pin(ex.spawn(task))
            }),
            tcp: Some(smol_tcp),
            handle: None,
        }
    }

    /// A task of the executor, on the adapter's own thread.
    fn own_task(b: &Bridge<Self>) -> Option<OwnTask> {
        let b = b.clone();
        Some(Arc::new(move |f| {
            // The adapter's thread starts with the first call.
            b.run(|| async {});
            let task = b.runtime().executor().spawn(async move { f() });
            futures::executor::block_on(task)
        }))
    }
}

#[cfg(feature = "async-std")]
fn new_async_std(_: &str) -> executor_bridge::AsyncStd {
    executor_bridge::AsyncStd
}

#[cfg(feature = "async-std")]
impl Under for executor_bridge::AsyncStd {
    fn kit(&self) -> Kit {
        Kit {
            sleep: |d| Box::pin(async_std::task::sleep(d)),
            yield_now: lite_yield,
            other_sleep: tokio_sleep,
            spawn: Arc::new(|task: BoxFuture<u32>| -> BoxFuture<u32> {
                Box::pin(async_std::task::spawn(task))
            }),
            tcp: Some(|addr| {
                Box::pin(async move { ping(async_std::net::TcpStream::connect(addr).await?).await })
            }),
            handle: None,
        }
    }
}

// ===== Values the cells watch =====

/// Counts the [`NeedsRt`] values made, the tasks their drops spawned that
/// ran, and the drops outside the bridge's tokio runtime.
#[derive(Default)]
struct Tally {
    /// The bridge's runtime, where they must be dropped.
    runtime: Option<tokio::runtime::Id>,
    made: AtomicUsize,
    ran: AtomicUsize,
    /// Dropped outside any tokio runtime.
    outside: AtomicUsize,
    /// Dropped in another tokio runtime (the caller's).
    elsewhere: AtomicUsize,
}

impl Tally {
    fn item(self: &Arc<Self>) -> NeedsRt {
        self.made.fetch_add(1, SeqCst);
        NeedsRt(Arc::clone(self))
    }

    /// Whether every value made was dropped in a runtime and its task ran,
    /// within [`SOON`].
    fn check(&self) -> Result<(), String> {
        let wrong = || self.outside.load(SeqCst) + self.elsewhere.load(SeqCst);
        let settled = || wrong() > 0 || self.ran.load(SeqCst) == self.made.load(SeqCst);
        if eventually(SOON, settled) && wrong() == 0 {
            return Ok(());
        }
        Err(format!(
            "of {} values whose drop needs the runtime, {} were dropped outside any tokio \
             runtime, {} in another one than the bridge's, and {} had their task run",
            self.made.load(SeqCst),
            self.outside.load(SeqCst),
            self.elsewhere.load(SeqCst),
            self.ran.load(SeqCst)
        ))
    }
}

/// A value whose `Drop` spawns a tokio task, as a sqlx pooled connection
/// does to go home. Dropped outside a tokio runtime it counts that and
/// panics (unless already panicking); dropped in another runtime than the
/// bridge's, it counts that.
struct NeedsRt(Arc<Tally>);

impl Drop for NeedsRt {
    fn drop(&mut self) {
        let tally = Arc::clone(&self.0);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                if tally.runtime.is_some_and(|id| id != handle.id()) {
                    tally.elsewhere.fetch_add(1, SeqCst);
                }
                handle.spawn(async move {
                    tally.ran.fetch_add(1, SeqCst);
                });
            }
            Err(_) => {
                tally.outside.fetch_add(1, SeqCst);
                if !thread::panicking() {
                    panic!("a value whose drop needs the runtime was dropped outside it");
                }
            }
        }
    }
}

/// Panics with `Boom(9)` when dropped (unless already panicking).
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic_any(Boom(9))
        }
    }
}

/// What a cell's future (stream, object, consumer) holds and drops with
/// itself: a flag that tells it was dropped, and the behaviour's value.
struct Held {
    _flag: DropFlag,
    _needs: Option<NeedsRt>,
    _bomb: Option<Bomb>,
}

/// A future holding [`Held`]: dropped with the future, not when it
/// completes.
struct Holding<T> {
    fut: BoxFuture<T>,
    _held: Held,
}

impl<T> Future for Holding<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.fut.as_mut().poll(cx)
    }
}

type ValStream = Pin<Box<dyn Stream<Item = Val> + Send>>;

/// A stream holding [`Held`].
struct HoldingStream {
    stream: ValStream,
    _held: Held,
}

impl Stream for HoldingStream {
    type Item = Val;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Val>> {
        self.stream.as_mut().poll_next(cx)
    }
}

/// A value a call hands over: a number, and for the values behaviour one
/// whose drop needs the runtime.
struct Val {
    n: u32,
    _needs: Option<NeedsRt>,
}

/// Makes the values of a cell.
#[derive(Clone)]
struct Vals(Option<Arc<Tally>>);

impl Vals {
    fn make(&self, n: u32) -> Val {
        Val {
            n,
            _needs: self.0.as_ref().map(Tally::item),
        }
    }
}

/// An async reader and writer running the work: a read gives `"{n};"`
/// once the work gave `n`, then the end (or, early, nothing ever again); the
/// first write awaits the work first. Logs what it was asked.
struct Obj {
    work: Option<Box<dyn FnOnce() -> BoxFuture<u32> + Send>>,
    fut: Option<BoxFuture<u32>>,
    n: Option<u32>,
    out: Vec<u8>,
    pos: usize,
    then_pending: bool,
    log: Arc<Mutex<Vec<String>>>,
    _held: Held,
}

impl Obj {
    fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<u32> {
        if let Some(n) = self.n {
            return Poll::Ready(n);
        }
        if let Some(work) = self.work.take() {
            self.fut = Some(work());
        }
        let fut = self.fut.as_mut().expect("the work");
        let n = ready!(fut.as_mut().poll(cx));
        self.fut = None;
        self.n = Some(n);
        self.out = format!("{n};").into_bytes();
        lock(&self.log).push(format!("work {n}"));
        Poll::Ready(n)
    }
}

impl AsyncRead for Obj {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_work(cx));
        if this.pos < this.out.len() {
            let n = buf.len().min(this.out.len() - this.pos);
            buf[..n].copy_from_slice(&this.out[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(n));
        }
        if this.then_pending {
            // Never woken: only an abort ends it.
            return Poll::Pending;
        }
        Poll::Ready(Ok(0))
    }
}

impl AsyncWrite for Obj {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_work(cx));
        lock(&self.log).push(format!("wrote {}", buf.len()));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.log).push("closed".into());
        Poll::Ready(Ok(()))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ===== One cell =====

/// The bridges of a batch: one plain, one with a stream capacity.
struct Bridges<R: Runtime> {
    main: Bridge<R>,
    capacity: Bridge<R>,
}

/// A cell being run: the behaviour's parts, and what it found wrong.
struct Case {
    kit: Kit,
    work: fn(&Kit) -> BoxFuture<u32>,
    flags: u8,
    tally: Arc<Tally>,
    /// Whether to check more than the outcome (not in a refused context).
    checks: bool,
    problems: Vec<String>,
}

impl Case {
    fn new(beh: &Behaviour, kit: &Kit, checks: bool) -> Self {
        Case {
            kit: kit.clone(),
            work: beh.work,
            flags: beh.flags,
            tally: Arc::new(Tally {
                runtime: kit.handle.as_ref().map(tokio::runtime::Handle::id),
                ..Tally::default()
            }),
            checks,
            problems: Vec::new(),
        }
    }

    fn early(&self) -> bool {
        self.flags & DROPPED_EARLY != 0
    }

    fn values_need_rt(&self) -> bool {
        self.flags & VALUES_RT != 0
    }

    /// The work, to make where the call runs.
    fn work(&self) -> impl FnOnce() -> BoxFuture<u32> + Send + 'static {
        let (work, kit) = (self.work, self.kit.clone());
        move || work(&kit)
    }

    fn vals(&self) -> Vals {
        Vals(self.values_need_rt().then(|| Arc::clone(&self.tally)))
    }

    /// What the entry's future (stream, object, consumer) holds, and the
    /// flag its drop sets.
    fn held(&self) -> (Held, Arc<AtomicBool>) {
        let (flag, dropped) = DropFlag::new();
        let held = Held {
            _flag: flag,
            _needs: (self.flags & HOLDS_RT != 0).then(|| self.tally.item()),
            _bomb: (self.flags & HOLDS_BOMB != 0).then(|| Bomb),
        };
        (held, dropped)
    }

    /// The behaviour as a call's future; `pend`: it waits forever after
    /// its work.
    fn future(
        &self,
        pend: bool,
    ) -> (
        impl FnOnce() -> Holding<Val> + Send + 'static,
        Arc<AtomicBool>,
    ) {
        let (work, vals, (held, dropped)) = (self.work(), self.vals(), self.held());
        let make = move || Holding {
            fut: Box::pin(async move {
                let n = work().await;
                if pend {
                    std::future::pending::<()>().await;
                }
                vals.make(n)
            }),
            _held: held,
        };
        (make, dropped)
    }

    /// The behaviour as a stream: its work's value, then 2, 3, 4 (early:
    /// nothing ever again); `late`: the first item comes after 40 ms.
    fn stream(&self, late: bool) -> (StreamMaker, Arc<AtomicBool>) {
        let (work, vals, (held, dropped)) = (self.work(), self.vals(), self.held());
        let (early, sleep) = (self.early(), self.kit.sleep);
        let make = move || {
            let more = vals.clone();
            let first = stream::once_future(async move {
                if late {
                    sleep(ms(40)).await;
                }
                vals.make(work().await)
            });
            let stream: ValStream = if early && !late {
                Box::pin(first.chain(stream::pending()))
            } else {
                Box::pin(first.chain(stream::iter([2, 3, 4]).map(move |n| more.make(n))))
            };
            HoldingStream {
                stream,
                _held: held,
            }
        };
        (Box::new(make), dropped)
    }

    /// The behaviour as an async reader/writer.
    fn object(&self, log: &Arc<Mutex<Vec<String>>>) -> (Obj, Arc<AtomicBool>) {
        let (held, dropped) = self.held();
        let obj = Obj {
            work: Some(Box::new(self.work())),
            fut: None,
            n: None,
            out: Vec::new(),
            pos: 0,
            then_pending: self.early(),
            log: Arc::clone(log),
            _held: held,
        };
        (obj, dropped)
    }

    /// A value the caller got: its number; dropped in the bridge's runtime
    /// if it needs one (on a thread of its own: the caller's thread may be
    /// exiting).
    fn show(&self, v: Val) -> u32 {
        let n = v.n;
        match (&v._needs, &self.kit.handle) {
            (Some(_), Some(handle)) => {
                let handle = handle.clone();
                thread::Builder::new()
                    .name("mx-dropper".into())
                    .spawn(move || {
                        let _entered = handle.enter();
                        drop(v);
                    })
                    .expect("spawn a dropper")
                    .join()
                    .expect("the dropper");
            }
            _ => drop(v),
        }
        n
    }

    fn problem(&mut self, problem: impl Into<String>) {
        if self.checks {
            self.problems.push(problem.into());
        }
    }

    /// Checks that `dropped` is set within [`SOON`].
    fn dropped_soon(&mut self, dropped: &AtomicBool, what: &str) {
        if !eventually(SOON, || dropped.load(SeqCst)) {
            self.problem(format!("{what} was not dropped"));
        }
    }

    /// After the call: every value that needs the runtime was dropped in it
    /// and its task ran.
    fn finish(&mut self) {
        if self.checks && self.tally.made.load(SeqCst) > 0 {
            if let Err(e) = self.tally.check() {
                self.problems.push(e);
            }
        }
    }
}

type StreamMaker = Box<dyn FnOnce() -> HoldingStream + Send>;

/// A panic payload, shown.
fn describe(payload: &(dyn Any + Send)) -> String {
    if let Some(boom) = payload.downcast_ref::<Boom>() {
        format!("panic {boom:?}")
    } else if let Some(text) = message(payload) {
        format!("panic: {text}")
    } else {
        "panic (an opaque payload)".into()
    }
}

/// An error of the bridge, shown.
fn describe_error(e: Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_panic() {
        format!("error: {}", describe(&*e.into_panic()))
    } else {
        format!("error: {e}")
    }
}

fn describe_io(e: &io::Error) -> String {
    format!("io error {:?}: {e}", e.kind())
}

/// Drops `value`: "ok", or its panic shown.
fn dropping<T>(value: T) -> String {
    catch(move || drop(value)).map_or_else(|p| p, |()| "ok".into())
}

/// `f`'s output, or its panic shown.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| describe(&*p))
}

// ===== Entry points =====

fn e_run<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let (make, _) = c.future(false);
    match catch(|| b.main.run(make)) {
        Ok(v) => format!("ok {}", c.show(v)),
        Err(p) => p,
    }
}

fn e_try_run<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let (make, _) = c.future(false);
    match catch(|| b.main.try_run(make)) {
        Ok(Ok(v)) => format!("ok {}", c.show(v)),
        Ok(Err(e)) => describe_error(e),
        Err(p) => p,
    }
}

/// Early: the deadline passes while the future waits after its work; the
/// future is gone when the call returns.
fn e_run_timeout<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let early = c.early();
    let (make, dropped) = c.future(early);
    let timeout = if early { ms(20) } else { LONG };
    match catch(|| b.main.run_timeout(timeout, make)) {
        Ok(Ok(v)) => format!("ok {}", c.show(v)),
        Ok(Err(e)) => {
            if e.is_timeout() && !dropped.load(SeqCst) {
                c.problem("the timed-out future outlived run_timeout");
            }
            describe_error(e)
        }
        Err(p) => p,
    }
}

fn e_run_scoped<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let (make, _) = c.future(false);
    let mut polled = 0u32;
    let counter = &mut polled;
    let got = catch(move || {
        b.main.run_scoped(move || {
            let fut = make();
            async move {
                *counter += 1;
                fut.await
            }
        })
    });
    match got {
        Ok(v) => format!("ok {} (borrowed {polled})", c.show(v)),
        Err(p) => p,
    }
}

fn e_iter<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    iter_cell(c, false, |s| b.main.iter(s))
}

fn e_iter_capacity<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    iter_cell(c, false, |s| b.capacity.iter(s))
}

fn e_iter_direct<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    iter_cell(c, false, |s| b.main.iter_direct(s))
}

fn e_direct_timeout<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    iter_cell(c, true, |s| b.main.iter_direct(s))
}

fn e_iter_timeout<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    iter_cell(c, true, |s| b.main.iter(s))
}

/// The next item, with `next` or (`timed`) `next_timeout`.
fn pull(it: &mut BlockingIter<Val>, timed: bool) -> Result<Option<Val>, String> {
    if timed {
        match catch(|| it.next_timeout(LONG)) {
            Ok(Ok(item)) => Ok(item),
            Ok(Err(e)) => Err(describe_error(e)),
            Err(p) => Err(p),
        }
    } else {
        catch(|| it.next())
    }
}

/// A stream entry point: all items; for the values behaviour, one item and
/// the iterator dropped (items read ahead go with it); early, untimed: one
/// item and the iterator dropped while the stream waits; early, timed: a
/// deadline that passes before the first item, which then still comes.
fn iter_cell(
    c: &mut Case,
    timed: bool,
    make: impl FnOnce(StreamMaker) -> BlockingIter<Val>,
) -> String {
    let late = c.early() && timed;
    let (stream, dropped) = c.stream(late);
    let mut it = make(stream);
    let mut shown = String::new();
    if late {
        match catch(|| it.next_timeout(ms(5))) {
            Ok(Err(e)) if e.is_timeout() => shown.push_str("timeout, then "),
            Ok(Ok(item)) => {
                let n = item.map(|v| c.show(v));
                return format!("{n:?} before the deadline");
            }
            Ok(Err(e)) => return after_failure(describe_error(e), it),
            Err(p) => return after_failure(p, it),
        }
    } else if c.early() || c.values_need_rt() {
        return match pull(&mut it, timed) {
            Ok(Some(v)) => {
                let n = c.show(v);
                let gone = dropping(it);
                if c.early() {
                    c.dropped_soon(&dropped, "the stream of a dropped iterator");
                }
                format!("first {n}, then dropped: {gone}")
            }
            Ok(None) => "no item".into(),
            Err(p) => after_failure(p, it),
        };
    }
    let mut items = Vec::new();
    let end = loop {
        match pull(&mut it, timed) {
            Ok(Some(v)) => items.push(c.show(v)),
            Ok(None) => break "end".to_owned(),
            Err(p) => {
                let after = match pull(&mut it, timed) {
                    Ok(None) => "end".to_owned(),
                    Ok(Some(v)) => format!("item {}", c.show(v)),
                    Err(p) => p,
                };
                break format!("{p}, then {after}");
            }
        }
    };
    if items.is_empty() {
        // A refusal (or a stream that failed at once) shows as it is.
        return after_failure(format!("{shown}{end}, no items"), it);
    }
    format!("{shown}items {items:?}, {end}")
}

/// What a failed cell shows: its failure first, then what dropping the
/// iterator did if that panicked too (a factory never called, dropped with
/// a value whose destructor panics).
fn after_failure(failure: String, it: BlockingIter<Val>) -> String {
    match dropping(it) {
        ok if ok == "ok" => failure,
        gone => format!("{failure}, then dropped: {gone}"),
    }
}

/// Early: the reader dropped after its first bytes, while its source waits.
fn e_reader<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let log = Arc::default();
    let (obj, dropped) = c.object(&log);
    let mut reader = b.main.reader(move || obj);
    if c.early() {
        let mut buf = [0u8; 64];
        return match catch(|| reader.read(&mut buf)) {
            Ok(Ok(n)) => {
                let gone = dropping(reader);
                c.dropped_soon(&dropped, "the source of a dropped reader");
                let first = String::from_utf8_lossy(&buf[..n]).into_owned();
                format!("first {first:?}, then dropped: {gone}")
            }
            Ok(Err(e)) => describe_io(&e),
            Err(p) => p,
        };
    }
    let mut text = String::new();
    match catch(|| reader.read_to_string(&mut text)) {
        Ok(Ok(_)) => format!("ok {text:?}"),
        Ok(Err(e)) => describe_io(&e),
        Err(p) => p,
    }
}

/// Early: the writer dropped without `close`: an abort, the sink dropped
/// and never closed.
fn e_writer<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let log = Arc::default();
    let (obj, dropped) = c.object(&log);
    let mut writer = b.main.writer(move || obj);
    let written = catch(|| writer.write_all(b"abc").and_then(|()| writer.flush()));
    if c.early() {
        return match written {
            Ok(Ok(())) => {
                let gone = dropping(writer);
                c.dropped_soon(&dropped, "the sink of a dropped writer");
                let log = lock(&log).clone();
                if log.iter().any(|l| l == "closed") {
                    c.problem("a writer dropped without close closed its sink");
                }
                format!("aborted ({gone}), log {log:?}")
            }
            Ok(Err(e)) => describe_io(&e),
            Err(p) => p,
        };
    }
    let closed = match written {
        Ok(Ok(())) => catch(|| writer.close()),
        other => other,
    };
    let shown = match closed {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => describe_io(&e),
        Err(p) => p,
    };
    format!("{shown}, log {:?}", lock(&log))
}

fn e_io<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let log = Arc::default();
    let (obj, _) = c.object(&log);
    let mut io = b.main.io(obj);
    let mut text = String::new();
    let used = catch(|| {
        io.read_to_string(&mut text)?;
        io.write_all(b"x")?;
        io.flush()
    });
    let used = match used {
        Ok(Ok(())) => format!("ok {text:?}"),
        Ok(Err(e)) => describe_io(&e),
        Err(p) => p,
    };
    format!("{used}; dropped: {}", dropping(io))
}

/// The consumer does the work, then sums the items until the end.
/// Early: the sink dropped without `close`: an abort, the consumer dropped
/// and never shown the end.
fn e_sink<R: Runtime>(b: &Bridges<R>, c: &mut Case) -> String {
    let (work, vals, (held, dropped)) = (c.work(), c.vals(), c.held());
    let saw_end = Arc::new(AtomicBool::new(false));
    let (out, end) = (vals.clone(), Arc::clone(&saw_end));
    let sink = b.main.sink(2, move |mut items: SinkStream<Val>| Holding {
        fut: Box::pin(async move {
            let n = work().await;
            let mut sum = 0;
            while let Some(v) = items.next().await {
                sum += v.n;
            }
            end.store(true, SeqCst);
            out.make(n + 10 * sum)
        }),
        _held: held,
    });
    let sent = catch(|| {
        // A consumer that finished (a panic) refuses items: its outcome
        // comes from `close`.
        let _ = sink.send(vals.make(1));
    });
    if let Err(p) = sent {
        return p;
    }
    if c.early() {
        let gone = dropping(sink);
        c.dropped_soon(&dropped, "the consumer of a dropped sink");
        if saw_end.load(SeqCst) {
            c.problem("the consumer of a sink dropped without close saw the end");
        }
        return format!("aborted ({gone})");
    }
    let closed = catch(move || {
        let _ = sink.send(vals.make(2));
        sink.close()
    });
    match closed {
        Ok(v) => format!("ok {}", c.show(v)),
        Err(p) => p,
    }
}

// ===== Calling contexts =====

/// A batch of cells, run from a context.
type Batch = Box<dyn FnOnce() + Send>;

/// What a context may need of the bridge under test.
struct Scope {
    /// One call, so that the bridge's and runtime's thread-locals exist on
    /// the calling thread.
    warm: Arc<dyn Fn() + Send + Sync>,
    /// Runs a batch inside a future the bridge runs.
    nest: Arc<dyn Fn(Batch) + Send + Sync>,
    /// The bridge's own tokio runtime's handle, if any.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    handle: Option<tokio::runtime::Handle>,
    /// Runs a batch in a task of the bridge's own runtime, if it has tasks.
    #[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
    own_task: Option<OwnTask>,
}

impl Scope {
    fn of<R: Under>(b: &Bridge<R>, kit: &Kit) -> Scope {
        let (warm, nest, kit) = (b.clone(), b.clone(), kit.clone());
        Scope {
            warm: Arc::new(move || {
                let kit = kit.clone();
                warm.run(move || w_ready(&kit));
            }),
            nest: Arc::new(move |f| nest.run(move || async move { f() })),
            handle: b.runtime().own_handle(),
            own_task: R::own_task(b),
        }
    }
}

fn plain(_: &Scope, f: Batch) {
    f()
}

#[cfg(any(feature = "tokio", feature = "smol"))]
fn own_task(s: &Scope, f: Batch) {
    (s.own_task.as_ref().expect("an adapter with tasks"))(f)
}

fn smol_block_on(_: &Scope, f: Batch) {
    smol::block_on(async move { f() })
}

fn smol_task(_: &Scope, f: Batch) {
    smol::block_on(smol::spawn(async move { f() }))
}

#[cfg(feature = "async-std")]
fn async_std_block_on(_: &Scope, f: Batch) {
    async_std::task::block_on(async move { f() })
}

#[cfg(feature = "async-std")]
fn async_std_task(_: &Scope, f: Batch) {
    async_std::task::block_on(async_std::task::spawn(async move { f() }))
}

fn futures_block_on(_: &Scope, f: Batch) {
    futures::executor::block_on(async move { f() })
}

fn nested(s: &Scope, f: Batch) {
    (s.nest)(f)
}

/// The contexts inside tokio runtimes: each batch gets runtimes of its own.
#[cfg(feature = "tokio")]
mod tokio_ctx {
    use tokio::runtime::{Builder, Runtime};
    use tokio::task::LocalSet;

    use super::{Batch, Scope};
    use crate::common::join;

    fn multi_thread() -> Runtime {
        workers(2)
    }

    fn workers(n: usize) -> Runtime {
        Builder::new_multi_thread()
            .worker_threads(n)
            .thread_name("mx-rt")
            .enable_all()
            .build()
            .expect("a multi_thread runtime")
    }

    fn current_thread() -> Runtime {
        crate::common::current_thread()
    }

    pub(super) fn worker(_: &Scope, f: Batch) {
        let rt = multi_thread();
        join(rt.block_on(rt.spawn(async move { f() })))
    }

    /// Worker 0, whose scheduler index a current_thread runtime's thread
    /// shares.
    pub(super) fn single_worker(_: &Scope, f: Batch) {
        let rt = workers(1);
        join(rt.block_on(rt.spawn(async move { f() })))
    }

    /// The bridge's own runtime's handle for a tokio adapter, another
    /// runtime's otherwise.
    pub(super) fn worker_entered(s: &Scope, f: Batch) {
        let other = s.handle.is_none().then(multi_thread);
        let handle = match (&s.handle, &other) {
            (Some(own), _) => own.clone(),
            (None, Some(other)) => other.handle().clone(),
            (None, None) => unreachable!("made above"),
        };
        let rt = multi_thread();
        join(rt.block_on(rt.spawn(async move {
            let _entered = handle.enter();
            f()
        })))
    }

    pub(super) fn mt_block_on(_: &Scope, f: Batch) {
        multi_thread().block_on(async move { f() })
    }

    pub(super) fn ct_body(_: &Scope, f: Batch) {
        current_thread().block_on(async move { f() })
    }

    pub(super) fn ct_task(_: &Scope, f: Batch) {
        current_thread().block_on(async move { join(tokio::spawn(async move { f() }).await) })
    }

    pub(super) fn local_set_body(_: &Scope, f: Batch) {
        LocalSet::new().block_on(&current_thread(), async move { f() })
    }

    pub(super) fn spawn_local_task(_: &Scope, f: Batch) {
        let local = LocalSet::new();
        join(local.block_on(&current_thread(), async move {
            tokio::task::spawn_local(async move { f() }).await
        }))
    }

    pub(super) fn mt_local_set_body(_: &Scope, f: Batch) {
        multi_thread().block_on(LocalSet::new().run_until(async move { f() }))
    }

    pub(super) fn mt_spawn_local_task(_: &Scope, f: Batch) {
        let local = LocalSet::new();
        join(multi_thread().block_on(
            local.run_until(async move { tokio::task::spawn_local(async move { f() }).await }),
        ))
    }

    pub(super) fn spawn_blocking(_: &Scope, f: Batch) {
        let rt = multi_thread();
        join(rt.block_on(rt.spawn_blocking(f)))
    }

    pub(super) fn ct_spawn_blocking(_: &Scope, f: Batch) {
        let rt = current_thread();
        join(rt.block_on(rt.spawn_blocking(f)))
    }
}

thread_local! {
    /// Runs its batch when the thread's locals are destroyed.
    static AT_EXIT: RefCell<Option<AtExit>> = const { RefCell::new(None) };
}

struct AtExit(Option<Batch>);

impl Drop for AtExit {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f()
        }
    }
}

/// The batch runs in a thread-local's destructor of an exiting thread that
/// used the bridge, registered after the bridge's and runtime's locals
/// (destroyed before them) or before them (`runtime_gone`: destroyed
/// after).
fn at_exit(s: &Scope, f: Batch, runtime_gone: bool) {
    let warm = Arc::clone(&s.warm);
    thread::Builder::new()
        .name("mx-exiting".into())
        .spawn(move || {
            QUIET.set(true);
            if runtime_gone {
                AT_EXIT.with(|_| ());
            }
            warm();
            AT_EXIT.with(|slot| *slot.borrow_mut() = Some(AtExit(Some(f))));
        })
        .expect("spawn an exiting thread")
        .join()
        .expect("the exiting thread");
}

fn tls_early(s: &Scope, f: Batch) {
    at_exit(s, f, false)
}

fn tls_late(s: &Scope, f: Batch) {
    at_exit(s, f, true)
}

// ===== The rules =====

/// What the bridge takes a call from a context for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// A thread that runs no tokio runtime: the call runs here.
    Plain,
    /// A tokio multi_thread worker: here after a hand-off, for a tokio
    /// adapter.
    Worker,
    /// The call runs on a loop thread.
    Away,
    /// The call is refused with a panic.
    Refused,
}

fn class(ctx: &Ctx, a: &Adapter) -> Class {
    if ctx.flags & OWN != 0 {
        return match a.own {
            Own::Refused => Class::Refused,
            _ => Class::Worker,
        };
    }
    if ctx.flags & PLAIN != 0 {
        Class::Plain
    } else if ctx.flags & WORKER != 0 {
        Class::Worker
    } else {
        Class::Away
    }
}

/// Whether the cell exists at all.
fn valid(t: &Tables, cell: &Cell) -> bool {
    let (flags, ctx, a, beh) = t.parts(cell);
    (ctx.flags & OWN == 0 || a.own != Own::None)
        && (beh.applies)(a)
        && (beh.flags & DROPPED_EARLY == 0 || flags & EARLY != 0)
        && (beh.flags & VALUES_RT == 0 || flags & VALUES != 0)
        && (beh.flags & SPAWNS == 0 || ctx.flags & a.executor == 0)
}

/// Whether the call of a cell runs its future on the caller's thread: an
/// entry point that can, from a plain thread, or for a tokio adapter from a
/// multi_thread worker.
fn runs_here(t: &Tables, cell: &Cell) -> bool {
    let (flags, ctx, a, _) = t.parts(cell);
    let class = class(ctx, a);
    flags & HERE != 0 && (class == Class::Plain || (class == Class::Worker && a.tokio))
}

/// What a cell must give.
#[derive(Debug)]
enum Expect {
    /// This outcome.
    Exactly(String),
    /// The crate's refusal.
    Refused,
}

/// The outcome a cell must give: the same cell's from a plain thread; for
/// a task-local, the plain outcome where the call runs on the caller's
/// thread and the outcome without the task-local elsewhere; in a refused
/// context, the crate's panic.
fn expected(t: &Tables, cell: &Cell, refs: &Refs) -> Option<Expect> {
    let (_, ctx, a, beh) = t.parts(cell);
    if class(ctx, a) == Class::Refused {
        return Some(Expect::Refused);
    }
    let r = refs.get(&Cell {
        ctx: t.plain,
        ..*cell
    })?;
    Some(Expect::Exactly(
        if beh.flags & TASK_LOCAL != 0 && !runs_here(t, cell) {
            r.unset.clone()?
        } else {
            r.outcome.clone()
        },
    ))
}

// ===== Which cells run =====

/// One cell: indices into the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Cell {
    entry: usize,
    ctx: usize,
    adapter: usize,
    beh: usize,
}

/// The tables, built once.
struct Tables {
    entries: Vec<(&'static str, u8)>,
    contexts: Vec<Ctx>,
    adapters: Vec<Adapter>,
    behaviours: Vec<Behaviour>,
    /// The plain thread's index.
    plain: usize,
}

impl Tables {
    fn get() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(|| {
            let contexts = contexts();
            let plain = contexts
                .iter()
                .position(|c| c.name == "plain thread")
                .expect("a plain thread");
            Tables {
                entries: entry_info(),
                contexts,
                adapters: adapters(),
                behaviours: behaviours(),
                plain,
            }
        })
    }

    fn parts(&self, c: &Cell) -> (u8, &Ctx, &Adapter, &Behaviour) {
        (
            self.entries[c.entry].1,
            &self.contexts[c.ctx],
            &self.adapters[c.adapter],
            &self.behaviours[c.beh],
        )
    }

    /// The cell's coordinates.
    fn name(&self, c: &Cell) -> String {
        format!(
            "[{} | {} | {} | {}]",
            self.entries[c.entry].0,
            self.contexts[c.ctx].name,
            self.adapters[c.adapter].name,
            self.behaviours[c.beh].name
        )
    }

    fn sizes(&self) -> [usize; 4] {
        [
            self.entries.len(),
            self.contexts.len(),
            self.adapters.len(),
            self.behaviours.len(),
        ]
    }
}

impl Cell {
    fn of(v: &[usize]) -> Cell {
        Cell {
            entry: v[0],
            ctx: v[1],
            adapter: v[2],
            beh: v[3],
        }
    }
}

/// The cells run in full, beyond all pairs: every tokio context (and the
/// task of the bridge's own runtime) × every behaviour for `run`,
/// `iter_direct` and `sink`; every entry point in a task of the bridge's own
/// runtime; the task-local in every context through `run` and
/// `run_timeout`.
///
/// With `EXECUTOR_BRIDGE_MATRIX=full` in the environment, every valid cell
/// runs (the whole product; minutes rather than seconds).
fn in_full(t: &Tables, cell: &Cell) -> bool {
    if std::env::var("EXECUTOR_BRIDGE_MATRIX").as_deref() == Ok("full") {
        return true;
    }
    let (name, _) = t.entries[cell.entry];
    let (_, ctx, _, beh) = t.parts(cell);
    (ctx.flags & TOKIO != 0 && ["run", "iter_direct", "sink"].contains(&name))
        || ctx.flags & OWN != 0
        || (beh.flags & TASK_LOCAL != 0 && ["run", "run_timeout"].contains(&name))
}

/// Greedy all-pairs: valid rows (one value of each dimension) that cover
/// every pair of values of two dimensions that some valid row has and no
/// row of `seed` covers; each new row the valid one that covers the most
/// pairs still uncovered (the first such, so the result is deterministic).
fn all_pairs(
    sizes: &[usize],
    valid: impl Fn(&[usize]) -> bool,
    seed: &[Vec<usize>],
) -> Vec<Vec<usize>> {
    let dims = sizes.len();
    let dim_pairs: Vec<(usize, usize)> = (0..dims)
        .flat_map(|i| (i + 1..dims).map(move |j| (i, j)))
        .collect();
    let mut base = Vec::new();
    let mut total = 0;
    for &(i, j) in &dim_pairs {
        base.push(total);
        total += sizes[i] * sizes[j];
    }
    let pairs_of = |row: &[usize]| -> Vec<usize> {
        let pairs = dim_pairs.iter().zip(&base);
        pairs
            .map(|(&(i, j), b)| b + row[i] * sizes[j] + row[j])
            .collect()
    };
    // Every valid row, with its pairs.
    let mut rows: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let mut row = vec![0; dims];
    'all: loop {
        if valid(&row) {
            rows.push((row.clone(), pairs_of(&row)));
        }
        for d in (0..dims).rev() {
            row[d] += 1;
            if row[d] < sizes[d] {
                continue 'all;
            }
            row[d] = 0;
        }
        break;
    }
    let mut wanted = vec![false; total];
    rows.iter()
        .flat_map(|(_, p)| p)
        .for_each(|&p| wanted[p] = true);
    seed.iter()
        .flat_map(|r| pairs_of(r))
        .for_each(|p| wanted[p] = false);
    let mut chosen = Vec::new();
    loop {
        let score = |pairs: &[usize]| pairs.iter().filter(|&&p| wanted[p]).count();
        rows.retain(|(_, pairs)| score(pairs) > 0);
        let Some(best) = (0..rows.len()).rev().max_by_key(|&i| score(&rows[i].1)) else {
            return chosen;
        };
        let (row, pairs) = rows.swap_remove(best);
        pairs.iter().for_each(|&p| wanted[p] = false);
        chosen.push(row);
    }
}

/// Every cell of the matrix: the full part, then the rows of all pairs.
fn all_cells() -> &'static [Cell] {
    static CELLS: OnceLock<Vec<Cell>> = OnceLock::new();
    CELLS.get_or_init(|| {
        let t = Tables::get();
        let sizes = t.sizes();
        let is_valid = |v: &[usize]| valid(t, &Cell::of(v));
        let mut full = Vec::new();
        for entry in 0..sizes[0] {
            for ctx in 0..sizes[1] {
                for adapter in 0..sizes[2] {
                    for beh in 0..sizes[3] {
                        let row = [entry, ctx, adapter, beh];
                        let cell = Cell::of(&row);
                        if valid(t, &cell) && in_full(t, &cell) {
                            full.push(row.to_vec());
                        }
                    }
                }
            }
        }
        let pairs = all_pairs(&sizes, is_valid, &full);
        let cells: BTreeSet<Cell> = full.iter().chain(&pairs).map(|v| Cell::of(v)).collect();
        cells.into_iter().collect()
    })
}

// ===== Running batches =====

/// A batch of cells for one context and one adapter.
struct Job {
    ctx: usize,
    cells: Vec<Cell>,
    /// The reference run: a task-local cell runs twice, with the
    /// task-local set and without.
    reference: bool,
    /// Run on the calling thread (the `#[tokio::test]` body) instead of a
    /// thread of its own.
    here: bool,
}

/// A cell's outcome and the problems it found.
struct Got {
    outcome: String,
    problems: Vec<String>,
}

/// A batch's results.
struct Out {
    /// Each cell's; `true` for a run with the task-local set.
    got: Vec<(Cell, bool, Got)>,
    /// A hang, or threads left behind.
    failure: Option<String>,
}

/// The cell running now, and since when (`None`: between cells).
#[derive(Default)]
struct Progress(Mutex<(Option<Cell>, Option<Instant>)>);

impl Progress {
    fn at(&self, cell: Option<Cell>) {
        *lock(&self.0) = (cell, Some(Instant::now()));
    }

    /// The cell that has been running for more than [`CELL_LIMIT`].
    fn hung(&self) -> Option<Option<Cell>> {
        let (cell, since) = *lock(&self.0);
        since
            .filter(|since| since.elapsed() > CELL_LIMIT)
            .map(|_| cell)
    }
}

static NEXT_BRIDGE: AtomicUsize = AtomicUsize::new(0);

/// Runs a batch on fresh bridges over the runtime `make` builds.
fn batch<R: Under>(job: &Job, make: fn(&str) -> R) -> Out {
    let t = Tables::get();
    let n = NEXT_BRIDGE.fetch_add(1, SeqCst);
    let names = [format!("mx{n}"), format!("mx{n}c")];
    let rt = make(&names[0]);
    let bridges = Arc::new(Bridges {
        main: Bridge::builder(rt.clone()).thread_name(&names[0]).build(),
        capacity: Bridge::builder(rt.clone())
            .thread_name(&names[1])
            .stream_capacity(4)
            .build(),
    });
    let kit = rt.kit();
    drop(rt);
    let scope = Scope::of(&bridges.main, &kit);
    let results = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::new(Progress::default());
    let cells = job.cells.clone();
    let reference = job.reference;
    let work: Batch = {
        let (b, results, progress) = (
            Arc::clone(&bridges),
            Arc::clone(&results),
            Arc::clone(&progress),
        );
        Box::new(move || {
            QUIET.set(true);
            let entries = entries::<R>();
            for cell in cells {
                progress.at(Some(cell));
                let refused =
                    class(&t.contexts[cell.ctx], &t.adapters[cell.adapter]) == Class::Refused;
                let runs = if reference && t.behaviours[cell.beh].flags & TASK_LOCAL != 0 {
                    vec![true, false]
                } else {
                    vec![t.behaviours[cell.beh].flags & TASK_LOCAL != 0]
                };
                for scoped in runs {
                    let got = run_cell(&b, &kit, &entries[cell.entry], cell, scoped, !refused);
                    lock(&results).push((cell, scoped, got));
                }
            }
            progress.at(None);
        })
    };
    let enter = t.contexts[job.ctx].enter;
    let hung = if job.here {
        watched_here(&progress, move || {
            enter(&scope, work);
            drop(scope);
        })
    } else {
        watched(&progress, move || {
            enter(&scope, work);
            drop(scope);
        })
    };
    let failure = match hung {
        Some(failure) => Some(failure),
        None => {
            drop(bridges);
            let left = || {
                names
                    .iter()
                    .map(|n| threads_named(&format!("{n}-")))
                    .sum::<usize>()
            };
            (!eventually(SOON * 2, || left() == 0)).then(|| {
                format!(
                    "{} loop threads outlived their bridges: {:?}",
                    left(),
                    thread_names_of(&names)
                )
            })
        }
    };
    let got = std::mem::take(&mut *lock(&results));
    Out { got, failure }
}

fn thread_names_of(prefixes: &[String]) -> Vec<String> {
    crate::common::thread_names()
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(&format!("{p}-"))))
        .collect()
}

/// Runs one cell.
fn run_cell<R: Runtime>(
    b: &Bridges<R>,
    kit: &Kit,
    entry: &Entry<R>,
    cell: Cell,
    scoped: bool,
    checks: bool,
) -> Got {
    let beh = &Tables::get().behaviours[cell.beh];
    let mut case = Case::new(beh, kit, checks);
    let call = |case: &mut Case| {
        catch(|| (entry.call)(b, case)).unwrap_or_else(|p| format!("the cell itself failed: {p}"))
    };
    let outcome = if scoped {
        catch(|| KEY.sync_scope(KEY_VALUE, || call(&mut case)))
            .unwrap_or_else(|p| format!("the task-local could not be set: {p}"))
    } else {
        call(&mut case)
    };
    case.finish();
    Got {
        outcome,
        problems: case.problems,
    }
}

/// Runs `f` on a thread of its own; returns a failure naming the cell that
/// hung, if one did (the thread is left to it).
fn watched(progress: &Arc<Progress>, f: impl FnOnce() + Send + 'static) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    progress.at(None);
    thread::Builder::new()
        .name("mx-batch".into())
        .spawn(move || {
            QUIET.set(true);
            let _ = tx.send(catch(f));
        })
        .expect("spawn a batch thread");
    loop {
        match rx.recv_timeout(ms(50)) {
            Ok(Ok(())) => return None,
            Ok(Err(p)) => return Some(format!("the batch failed: {p}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Some("the batch vanished".into()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(cell) = progress.hung() {
                    let t = Tables::get();
                    return Some(match cell {
                        Some(cell) => format!("hung in {}", t.name(&cell)),
                        None => "hung entering or leaving the context".into(),
                    });
                }
            }
        }
    }
}

/// Runs `f` on this thread (the `#[tokio::test]` body); a hang aborts the
/// process after naming the cell, since nothing else can end it.
fn watched_here(progress: &Arc<Progress>, f: impl FnOnce()) -> Option<String> {
    let done = Arc::new(AtomicBool::new(false));
    let (d, p) = (Arc::clone(&done), Arc::clone(progress));
    progress.at(None);
    let monitor = thread::spawn(move || {
        while !d.load(SeqCst) {
            if let Some(cell) = p.hung() {
                let at = cell.map_or("entering or leaving the context".into(), |c| {
                    Tables::get().name(&c)
                });
                eprintln!("matrix: hung in {at}: aborting");
                std::process::abort();
            }
            thread::sleep(ms(50));
        }
    });
    QUIET.set(true);
    let out = catch(f);
    QUIET.set(false);
    done.store(true, SeqCst);
    let _ = monitor.join();
    out.err().map(|p| format!("the batch failed: {p}"))
}

// ===== A test =====

/// The reference outcomes: from a plain thread, with and without the
/// task-local set.
struct Ref {
    outcome: String,
    unset: Option<String>,
}

type Refs = BTreeMap<Cell, Ref>;

/// Runs the cells `select` picks (with their references) and reports every
/// failure.
fn run_matrix(test: &str, select: impl Fn(&Tables, &Cell) -> bool) {
    let start = Instant::now();
    quiet_panics();
    echo_server();
    let t = Tables::get();
    let cells: Vec<Cell> = all_cells()
        .iter()
        .filter(|c| select(t, c))
        .copied()
        .collect();
    let mut failures = Vec::new();
    // By entry of KNOWN_DEFECTS: how many cells failed, and the first.
    let mut known: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    let mut count = 0;
    let mut report = |cell: Option<&Cell>, what: String, failures: &mut Vec<String>| match cell {
        Some(cell) if known_defect(t, cell).is_some() => {
            let k = known_defect(t, cell).expect("a known defect");
            let first = || format!("{} {what}", t.name(cell));
            known.entry(k).or_insert_with(|| (0, first())).0 += 1;
        }
        Some(cell) => failures.push(format!("{} {what}", t.name(cell))),
        None => failures.push(what),
    };
    // The references: the same cells from a plain thread.
    let mut wanted: BTreeMap<usize, BTreeSet<Cell>> = BTreeMap::new();
    for cell in &cells {
        if class(&t.contexts[cell.ctx], &t.adapters[cell.adapter]) != Class::Refused {
            let plain = Cell {
                ctx: t.plain,
                ..*cell
            };
            wanted.entry(cell.adapter).or_default().insert(plain);
        }
    }
    let mut refs = Refs::new();
    for (adapter, plain_cells) in wanted {
        let job = Job {
            ctx: t.plain,
            cells: plain_cells.into_iter().collect(),
            reference: true,
            here: false,
        };
        let out = (t.adapters[adapter].run)(&job);
        if let Some(f) = out.failure {
            report(
                None,
                format!("[plain thread | {}] {f}", t.adapters[adapter].name),
                &mut failures,
            );
        }
        for (cell, scoped, got) in out.got {
            count += 1;
            let (_, _, a, beh) = t.parts(&cell);
            for p in got.problems {
                report(Some(&cell), p, &mut failures);
            }
            let r = refs.entry(cell).or_insert_with(|| Ref {
                outcome: String::new(),
                unset: None,
            });
            if beh.flags & TASK_LOCAL != 0 && !scoped {
                r.unset = Some(got.outcome);
                continue;
            }
            if !(beh.plain)(a, &got.outcome) {
                report(
                    Some(&cell),
                    format!("from a plain thread gave {:?}", short(&got.outcome)),
                    &mut failures,
                );
            }
            r.outcome = got.outcome;
        }
    }
    // The task-local rule on a plain thread: seen exactly where the call
    // runs on the caller's thread.
    for (cell, r) in &refs {
        if let Some(unset) = &r.unset {
            let seen = r.outcome != *unset;
            if seen != runs_here(t, cell) {
                report(
                    Some(cell),
                    format!(
                        "task-local seen: {seen} ({:?}, unset {:?})",
                        short(&r.outcome),
                        short(unset)
                    ),
                    &mut failures,
                );
            }
        }
    }
    // The cells, in batches: one per context and adapter.
    let mut batches: BTreeMap<(usize, usize), Vec<Cell>> = BTreeMap::new();
    for cell in cells.iter().filter(|c| c.ctx != t.plain) {
        batches
            .entry((cell.ctx, cell.adapter))
            .or_default()
            .push(*cell);
    }
    count += cells.iter().filter(|c| c.ctx == t.plain).count();
    for ((ctx, adapter), cells) in batches {
        quiet_panics();
        let job = Job {
            ctx,
            cells,
            reference: false,
            here: t.contexts[ctx].flags & TOKIO_TEST != 0,
        };
        let out = (t.adapters[adapter].run)(&job);
        let ran: BTreeSet<Cell> = out.got.iter().map(|(c, _, _)| *c).collect();
        if let Some(f) = out.failure {
            let unrun = job.cells.iter().filter(|c| !ran.contains(c)).count();
            report(
                None,
                format!(
                    "[{} | {}] {f} ({unrun} cells not run)",
                    t.contexts[ctx].name, t.adapters[adapter].name
                ),
                &mut failures,
            );
        }
        let mut by_entry = BTreeMap::new();
        for (cell, _, got) in out.got {
            count += 1;
            for p in got.problems {
                report(Some(&cell), p, &mut failures);
            }
            match expected(t, &cell, &refs) {
                None => report(Some(&cell), "has no reference".into(), &mut failures),
                Some(Expect::Refused) if got.outcome.starts_with("panic: executor-bridge:") => {}
                Some(Expect::Refused) => report(
                    Some(&cell),
                    format!("gave {:?}, not the crate's refusal", short(&got.outcome)),
                    &mut failures,
                ),
                Some(Expect::Exactly(want)) if want == got.outcome => {}
                Some(Expect::Exactly(want)) => report(
                    Some(&cell),
                    format!(
                        "gave {:?}, from a plain thread {:?}",
                        short(&got.outcome),
                        short(&want)
                    ),
                    &mut failures,
                ),
            }
            if t.behaviours[cell.beh].flags & TASK_LOCAL != 0 {
                by_entry.insert(t.entries[cell.entry].0, (cell, got.outcome));
            }
        }
        // `run` and `run_timeout` see task-locals alike wherever `run` hops.
        if let (Some((run, a)), Some((_, b))) = (by_entry.get("run"), by_entry.get("run_timeout")) {
            if !runs_here(t, run) && a != b {
                report(
                    Some(run),
                    format!("gave {:?}, run_timeout {:?}", short(a), short(b)),
                    &mut failures,
                );
            }
        }
    }
    println!("{test}: {count} cells in {:.1?}", start.elapsed());
    for (k, (n, first)) in &known {
        println!(
            "known defect ({}) in {n} cells, e.g. {first}",
            KNOWN_DEFECTS[*k].4
        );
    }
    assert!(
        failures.is_empty(),
        "matrix: {} failures in {test} ({count} cells):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// An outcome for a report: the crate's messages are long.
fn short(outcome: &str) -> String {
    const MAX: usize = 160;
    match outcome.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &outcome[..at]),
        None => outcome.to_owned(),
    }
}

/// The entry of [`KNOWN_DEFECTS`] that matches the cell, if any.
fn known_defect(t: &Tables, cell: &Cell) -> Option<usize> {
    let m = |pattern: &str, name: &str| pattern == "*" || pattern == name;
    KNOWN_DEFECTS.iter().position(|&(e, c, a, b, _)| {
        m(e, t.entries[cell.entry].0)
            && m(c, t.contexts[cell.ctx].name)
            && m(a, t.adapters[cell.adapter].name)
            && m(b, t.behaviours[cell.beh].name)
    })
}

/// The cells of a test: those of `adapter` run from regular contexts.
fn of_adapter(adapter: &'static str) -> impl Fn(&Tables, &Cell) -> bool {
    move |t: &Tables, c: &Cell| {
        t.adapters[c.adapter].name == adapter && t.contexts[c.ctx].flags & (TOKIO_TEST | CHILD) == 0
    }
}

// ===== Quiet panics =====

thread_local! {
    /// Set on the threads that run cells: their panics are expected.
    static QUIET: StdCell<bool> = const { StdCell::new(false) };
}

/// A panic that tells whether the hook below is installed.
struct Probe;

static PROBED: AtomicBool = AtomicBool::new(false);

/// Keeps the panics of the cells (thousands, each with a backtrace under
/// `RUST_BACKTRACE`) out of the output: the panic hook skips threads that
/// run cells and threads named `mx…` (the bridges' and runtimes' here).
/// Other tests may replace the hook meanwhile: it is installed again if a
/// probe panic does not reach it.
fn quiet_panics() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    let _one = crate::common::hook_lock();
    if INSTALLED.load(SeqCst) {
        PROBED.store(false, SeqCst);
        let _ = catch_unwind(|| panic_any(Probe));
        if PROBED.load(SeqCst) {
            return;
        }
    }
    INSTALLED.store(true, SeqCst);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().is::<Probe>() {
            PROBED.store(true, SeqCst);
        } else if !quiet_thread() {
            previous(info)
        }
    }));
}

/// Whether the current thread's panics are expected. Safe in a thread-local
/// destructor: `QUIET` has none, and the name comes from the kernel.
fn quiet_thread() -> bool {
    QUIET.with(StdCell::get)
        || std::fs::read_to_string("/proc/thread-self/comm")
            .is_ok_and(|name| name.starts_with("mx"))
}

// ===== The tests =====

/// The rows of [`all_pairs`] with the full part cover every pair of values
/// of two dimensions that a valid cell has.
#[test]
fn every_pair_is_covered() {
    let t = Tables::get();
    let [e, c, a, b] = t.sizes();
    let pairs = |cell: &Cell| {
        let v = [cell.entry, cell.ctx, cell.adapter, cell.beh];
        let mut p = Vec::new();
        for i in 0..4 {
            for j in i + 1..4 {
                p.push((i, v[i], j, v[j]));
            }
        }
        p
    };
    let mut wanted = BTreeSet::new();
    for entry in 0..e {
        for ctx in 0..c {
            for adapter in 0..a {
                for beh in 0..b {
                    let cell = Cell {
                        entry,
                        ctx,
                        adapter,
                        beh,
                    };
                    if valid(t, &cell) {
                        wanted.extend(pairs(&cell));
                    }
                }
            }
        }
    }
    let cells = all_cells();
    let covered: BTreeSet<_> = cells.iter().flat_map(pairs).collect();
    let missing: Vec<_> = wanted.difference(&covered).collect();
    let full = cells.iter().filter(|c| in_full(t, c)).count();
    println!(
        "matrix: {} cells: {full} in full, {} more for all {} pairs",
        cells.len(),
        cells.len() - full,
        wanted.len()
    );
    assert!(missing.is_empty(), "pairs not covered: {missing:?}");
    assert!(cells.iter().all(|c| valid(t, c)), "an invalid cell");
}

#[cfg(feature = "tokio")]
#[test]
fn cells_tokio_new() {
    run_matrix("matrix::cells_tokio_new", of_adapter("Tokio::new()"));
}

#[cfg(feature = "tokio")]
#[test]
fn cells_tokio_multi_thread() {
    run_matrix(
        "matrix::cells_tokio_multi_thread",
        of_adapter("Tokio::from_runtime(multi_thread)"),
    );
}

#[cfg(feature = "smol")]
#[test]
fn cells_smol() {
    run_matrix("matrix::cells_smol", of_adapter("Smol"));
}

#[cfg(feature = "smol")]
#[test]
fn cells_smol_executor() {
    run_matrix("matrix::cells_smol_executor", of_adapter("SmolExecutor"));
}

#[cfg(feature = "async-std")]
#[test]
fn cells_async_std() {
    run_matrix("matrix::cells_async_std", of_adapter("AsyncStd"));
}

#[test]
fn cells_pollster() {
    run_matrix("matrix::cells_pollster", of_adapter("Pollster"));
}

/// The cells of a `#[tokio::test]` body, run in this one.
#[cfg(feature = "tokio")]
#[tokio::test]
async fn cells_in_a_tokio_test_body() {
    run_matrix("matrix::cells_in_a_tokio_test_body", |t, c| {
        t.contexts[c.ctx].flags & TOKIO_TEST != 0
    });
}

/// The cells of thread-local destructors, in a child process: a defect
/// there aborts the process.
#[test]
fn cells_in_thread_local_destructors() {
    in_child("cells_in_thread_local_destructors", || {
        run_matrix("matrix::cells_in_thread_local_destructors", |t, c| {
            t.contexts[c.ctx].flags & CHILD != 0
        })
    });
}

/// Runs `f` in a child process (see [`crate::common::in_child`]): `name` is
/// the test's name within this module.
fn in_child(name: &str, f: impl FnOnce() + Send + 'static) {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    crate::common::in_child(&format!("{module}::{name}"), f);
}
