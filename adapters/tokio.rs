//! [`Tokio`]: the adapter for tokio.

use std::cell::Cell;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use ::tokio::runtime::{Handle, Id, Runtime as TokioRuntime, RuntimeFlavor};

use crate::pool::lock;
use crate::relay::{self, Relay};
use crate::{Error, Runtime};

/// Drives futures on a long-lived tokio runtime.
///
/// The runtime persists across calls, so what one call creates keeps working
/// in the next: a connection pool (reqwest, sqlx, tonic clients), a bound
/// listener, a `tokio::spawn`ed task.
///
/// - [`Tokio::new`] (also `Default`) builds, on the first call, a
///   current_thread runtime that the **callers drive**: a thread waiting in a
///   bridged call runs the runtime's IO driver, timers and tasks itself, so an
///   IO event wakes the one thread that waits for it, as blocking IO does. A
///   driver thread named `bridge-tokio` keeps the runtime going while no
///   call waits (tasks spawned by one call keep running between calls, within
///   about a millisecond of going idle).
/// - [`Tokio::from_runtime`] takes a runtime you built: a current_thread one
///   is driven by the callers as above; a multi_thread one by its own
///   workers (callers sleep, workers wake them: two thread wake-ups per IO
///   event, but tasks never run on a caller's thread).
/// - [`Tokio::from_handle`] / [`Tokio::current`] use an application's
///   existing multi_thread runtime, driven by its workers.
///
/// Clones share the runtime. An owned runtime is shut down when the last
/// clone is dropped, waiting at most half a second for `spawn_blocking`
/// work still running (which then finishes on its own); from async code, in
/// the background (tokio forbids blocking there).
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Tokio};
///
/// let bridge = Bridge::new(Tokio::new());
/// // A listener bound in one call accepts in the next: the runtime persists.
/// let listener = bridge.run(|| async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
/// let addr = listener.local_addr().unwrap();
/// let client = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
/// let (_conn, _) = bridge.run(move || async move { listener.accept().await.unwrap() });
/// client.join().unwrap();
/// ```
///
/// # Caveats
///
/// With a caller-driven runtime, spawned tasks run on whichever thread waits
/// in a call (or on the driver thread): a task that blocks its thread delays
/// the calls waiting meanwhile, as on any current_thread runtime. A task of
/// such a runtime must not call its bridge synchronously: it runs inside the
/// very thread that would have to drive the call, and every blocking entry
/// point panics there (see `# Panics` of [`Runtime::enter`] below).
/// `block_in_place` panics in its tasks, as on any current_thread runtime
/// (in a bridged future it works, as from a plain thread). For CPU-heavy or
/// blocking tasks, give [`Tokio::from_runtime`] a multi_thread runtime.
#[derive(Clone)]
pub struct Tokio {
    inner: Arc<Inner>,
}

enum Inner {
    /// A runtime of ours, started on first use.
    Owned {
        started: OnceLock<Started>,
        /// A runtime given to [`Tokio::from_runtime`], until it starts.
        given: Mutex<Option<TokioRuntime>>,
    },
    /// An application's multi_thread runtime.
    Borrowed(Handle),
}

/// An owned runtime, running.
struct Started {
    handle: Handle,
    /// The runtime, shared with the driver thread so that either can be the
    /// last to drop it, outside its `block_on`.
    runtime: Arc<TokioRuntime>,
    /// `None` for a multi_thread runtime.
    callers: Option<Arc<Callers>>,
    driver: Option<JoinHandle<()>>,
}

/// How a started runtime runs calls.
enum Running<'a> {
    /// Its workers drive it: `Handle::block_on`.
    Workers(&'a Handle),
    /// The callers drive it.
    Callers(&'a Handle, &'a Callers, &'a TokioRuntime),
}

impl Default for Tokio {
    fn default() -> Self {
        Tokio::new()
    }
}

impl Tokio {
    /// An adapter that builds its own runtime on first use: a current_thread
    /// runtime with IO and time enabled, driven by the callers.
    pub fn new() -> Self {
        Tokio::owned(None)
    }

    /// An adapter that owns `runtime`, built by you: a current_thread runtime
    /// is driven by the callers (and a driver thread while none waits), a
    /// multi_thread runtime by its workers.
    pub fn from_runtime(runtime: TokioRuntime) -> Self {
        Tokio::owned(Some(runtime))
    }

    fn owned(given: Option<TokioRuntime>) -> Self {
        Tokio {
            inner: Arc::new(Inner::Owned {
                started: OnceLock::new(),
                given: Mutex::new(given),
            }),
        }
    }

    /// An adapter on an application's existing multi_thread runtime. The
    /// runtime is not shut down by the adapter.
    ///
    /// # Panics
    ///
    /// Panics with "executor-bridge: `Tokio::from_handle` needs a multi_thread
    /// runtime ..." for a current_thread handle: nothing but that runtime's
    /// own `block_on` can drive it, so calls would hang. Give the runtime
    /// itself to [`from_runtime`](Tokio::from_runtime) instead, or see
    /// [`try_from_handle`](Tokio::try_from_handle).
    #[track_caller]
    pub fn from_handle(handle: Handle) -> Self {
        match check_flavor(&handle) {
            Ok(()) => Tokio {
                inner: Arc::new(Inner::Borrowed(handle)),
            },
            Err(e) => panic!("executor-bridge: {e}"),
        }
    }

    /// Like [`from_handle`](Tokio::from_handle), but returns an error for a
    /// current_thread handle.
    ///
    /// # Errors
    ///
    /// [`Error::is_runtime`], its [`io::Error`] of kind
    /// [`io::ErrorKind::InvalidInput`], if `handle` belongs to a
    /// current_thread runtime.
    pub fn try_from_handle(handle: Handle) -> Result<Self, Error> {
        check_flavor(&handle).map_err(Error::runtime)?;
        Ok(Tokio {
            inner: Arc::new(Inner::Borrowed(handle)),
        })
    }

    /// An adapter on the multi_thread runtime the caller is running on.
    ///
    /// # Panics
    ///
    /// Panics with "executor-bridge: `Tokio::current` called outside a tokio
    /// runtime" outside one, and as [`from_handle`](Tokio::from_handle) inside
    /// a current_thread runtime.
    #[track_caller]
    pub fn current() -> Self {
        match Handle::try_current() {
            Ok(handle) => Tokio::from_handle(handle),
            Err(_) => panic!("executor-bridge: `Tokio::current` called outside a tokio runtime"),
        }
    }

    /// The runtime's handle, starting an owned runtime if needed: to spawn
    /// tasks on it, or to enter its context.
    ///
    /// A caller-driven runtime's handle does not drive it: its
    /// `Handle::block_on` waits for IO and timers only while some bridged
    /// call (or the driver thread) drives the runtime.
    ///
    /// # Errors
    ///
    /// The error of tokio's runtime builder, or of starting the driver
    /// thread, if an owned runtime could not be started.
    #[inline]
    pub fn handle(&self) -> io::Result<&Handle> {
        self.started().map(|running| match running {
            Running::Workers(handle) | Running::Callers(handle, ..) => handle,
        })
    }

    #[inline]
    fn started(&self) -> io::Result<Running<'_>> {
        match &*self.inner {
            Inner::Borrowed(handle) => Ok(Running::Workers(handle)),
            Inner::Owned { started, given } => {
                let started = match started.get() {
                    Some(started) => started,
                    None => start(started, given)?,
                };
                Ok(match &started.callers {
                    Some(callers) => Running::Callers(&started.handle, callers, &started.runtime),
                    None => Running::Workers(&started.handle),
                })
            }
        }
    }

    #[track_caller]
    fn running(&self) -> Running<'_> {
        match self.started() {
            Ok(running) => running,
            Err(e) => panic!("executor-bridge: the runtime failed: {e}"),
        }
    }
}

/// A handle the adapter can use: a multi_thread runtime's.
fn check_flavor(handle: &Handle) -> io::Result<()> {
    match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => Ok(()),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`Tokio::from_handle` needs a multi_thread runtime, got {other:?}: only its own \
                 `Runtime::block_on` can drive a current_thread runtime; give the runtime itself \
                 to `Tokio::from_runtime`"
            ),
        )),
    }
}

/// Starts an owned runtime: the first call's slow path.
#[cold]
#[inline(never)]
fn start<'a>(
    started: &'a OnceLock<Started>,
    given: &Mutex<Option<TokioRuntime>>,
) -> io::Result<&'a Started> {
    let mut given = lock(given);
    if let Some(started) = started.get() {
        return Ok(started);
    }
    let runtime = match given.take() {
        Some(runtime) => runtime,
        None => ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let handle = runtime.handle().clone();
    let runtime = Arc::new(runtime);
    let (callers, driver) = match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => {
            let callers = Arc::new(Callers::new(handle.id()));
            let shared = (Arc::clone(&callers), Arc::clone(&runtime));
            let driver = thread::Builder::new()
                .name("bridge-tokio".into())
                .spawn(move || drive_idle(shared.0, shared.1));
            match driver {
                Ok(driver) => {
                    let _ = callers.driver.set(driver.thread().clone());
                    (Some(callers), Some(driver))
                }
                Err(e) => {
                    // Keep the runtime for the next try: the closure that
                    // held its other clone is gone with the failed spawn.
                    *given = Arc::into_inner(runtime);
                    return Err(e);
                }
            }
        }
        _ => (None, None),
    };
    Ok(started.get_or_init(|| Started {
        handle,
        runtime,
        callers,
        driver,
    }))
}

impl fmt::Debug for Tokio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, started) = match &*self.inner {
            Inner::Owned { started, .. } => match started.get() {
                Some(Started {
                    callers: Some(_), ..
                }) => ("caller-driven", true),
                Some(_) => ("multi_thread", true),
                None => ("owned", false),
            },
            Inner::Borrowed(_) => ("borrowed multi_thread", true),
        };
        f.debug_struct("Tokio")
            .field("runtime", &kind)
            .field("started", &started)
            .finish()
    }
}

impl Runtime for Tokio {
    /// Runs `fut` on this thread: for a caller-driven runtime, polling it here
    /// and driving the runtime while it waits; otherwise `Handle::block_on`.
    ///
    /// # Panics
    ///
    /// Panics if an owned runtime cannot be started, or (tokio's "Cannot start
    /// a runtime from within a runtime") when called directly from async
    /// code; [`Bridge`](crate::Bridge) never does the latter.
    #[track_caller]
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match self.running() {
            Running::Workers(handle) => handle.block_on(fut),
            Running::Callers(handle, callers, rt) => callers.drive(handle, rt, fut),
        }
    }

    fn start(&self) -> io::Result<()> {
        self.started().map(|_| ())
    }

    /// Runs `f` inside the runtime's context (`Handle::enter`).
    ///
    /// # Panics
    ///
    /// Panics with "executor-bridge: a task of a caller-driven Tokio runtime
    /// called its bridge ..." when called from a task that such a runtime is
    /// running: the call would need that runtime, which only the calling
    /// thread (now blocked in the task) could drive.
    #[track_caller]
    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let (handle, callers) = match self.running() {
            Running::Workers(handle) => {
                let _entered = handle.enter();
                return Some(f());
            }
            Running::Callers(handle, callers, _) => (handle, callers),
        };
        let _entered = handle.enter();
        if DRIVING.get() == Some(callers.id) && !crate::context::dropping() {
            crate::context::misuse(format_args!(
                "executor-bridge: a task of a caller-driven Tokio runtime called its bridge, \
                 which needs that runtime while the calling thread, which drives it, is \
                 blocked in the task: `.await` the work in the task instead, move the call \
                 into `tokio::task::spawn_blocking`, or build the bridge's runtime as a \
                 multi_thread runtime (`Tokio::from_runtime`)"
            ));
        }
        Some(f())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Inner::Owned { started, .. } = self else {
            return;
        };
        let Some(started) = started.take() else {
            return;
        };
        if let Some(callers) = &started.callers {
            callers.stop();
        }
        if let Some(driver) = started.driver {
            if driver.thread().id() == thread::current().id() {
                // A task run by the driver thread dropped the last clone: the
                // driver drops the runtime once it is out of `block_on`.
                return;
            }
            let _ = driver.join();
        }
        // The driver thread has let go of its clone: this one is the last.
        let Some(runtime) = Arc::into_inner(started.runtime) else {
            return;
        };
        if Handle::try_current().is_ok() {
            // Inside a runtime blocking on the shutdown would panic or wait on
            // itself: let it finish in the background.
            runtime.shutdown_background();
        } else {
            runtime.shutdown_timeout(SHUTDOWN_WAIT);
        }
    }
}

/// How long dropping an owned runtime waits for `spawn_blocking` work.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);

// ===== A caller-driven current_thread runtime =====
//
// Only the thread inside a current_thread runtime's `Runtime::block_on`
// drives it (IO, timers, tasks); tokio hands that role between threads that
// call `block_on`. Callers poll their future outside `block_on` and enter it
// only to wait ("park"), so the role is free whenever no caller waits, and a
// future polled on one thread can make a nested call that another thread
// drives. The driver thread takes the role once no caller has parked for
// `IDLE`, and gives it back as soon as a caller parks.

/// How long the runtime may go undriven after an isolated call before the
/// driver thread takes over. While calls keep coming, the driver looks less
/// and less often (the period doubles up to [`BUSY_CHECK`]), so that it
/// costs next to no wake-ups: between calls of a busy program, tasks wait at
/// most about twice that.
const IDLE: Duration = Duration::from_millis(1);

/// The longest the driver thread sleeps between two looks while calls keep
/// coming.
const BUSY_CHECK: Duration = Duration::from_millis(16);

/// Wake-ups a future may give itself in a row (`yield_now`) before the
/// caller lets the runtime run its tasks and drivers once.
const YIELDS: u32 = 16;

thread_local! {
    /// The caller-driven runtime this thread drives right now (inside its
    /// `block_on`), if any.
    static DRIVING: Cell<Option<Id>> = const { Cell::new(None) };
    /// A caller's relay: its future's waker, which wakes the runtime's
    /// `block_on` while the caller parks in it. Kept between calls.
    static CALLER: relay::Slot = const { Cell::new(None) };
}

/// The caller-driven runtimes alive, by id (see [`driven_elsewhere`]).
static CALLER_DRIVEN: Mutex<Vec<Id>> = Mutex::new(Vec::new());

/// Whether `handle` is a caller-driven runtime's that this thread is not
/// driving: then the thread's own tokio scheduler, if any, is another
/// runtime's, whatever flavor `handle` has (a worker task that entered a
/// bridge's handle).
pub(crate) fn driven_elsewhere(handle: &Handle) -> bool {
    let id = handle.id();
    DRIVING.get() != Some(id) && lock(&CALLER_DRIVEN).contains(&id)
}

struct Callers {
    /// The runtime's id.
    id: Id,
    /// Threads inside the runtime's `block_on` to wait.
    parkers: AtomicUsize,
    /// Park entries, to tell an idle runtime from a busy one.
    parks: AtomicU64,
    /// The driver thread holds the runtime.
    holding: AtomicBool,
    /// The driver thread waits for the last parker to leave.
    release_wanted: AtomicBool,
    stop: AtomicBool,
    /// Wakes the driver's `block_on` while it holds the runtime.
    driver_waker: Mutex<Option<Waker>>,
    driver: OnceLock<Thread>,
}

impl Callers {
    fn new(id: Id) -> Self {
        lock(&CALLER_DRIVEN).push(id);
        Callers {
            id,
            parkers: AtomicUsize::new(0),
            parks: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            release_wanted: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            driver_waker: Mutex::new(None),
            driver: OnceLock::new(),
        }
    }
}

impl Drop for Callers {
    fn drop(&mut self) {
        lock(&CALLER_DRIVEN).retain(|id| *id != self.id);
    }
}

impl Callers {
    /// Runs `fut` to completion on this thread, driving the runtime while it
    /// waits.
    fn drive<F: Future>(&self, handle: &Handle, rt: &TokioRuntime, fut: F) -> F::Output {
        let _entered = handle.enter();
        // A nested drive (a task polled here drives too) gets a fresh relay.
        let caller = relay::Taken::from(&CALLER);
        let signal = caller.relay();
        let mut cx = Context::from_waker(caller.waker());
        let mut fut = pin!(fut);
        let mut yields = 0;
        loop {
            signal.reset();
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            if signal.woken() {
                yields += 1;
                if yields < YIELDS {
                    continue;
                }
            }
            let turn = yields > 0;
            yields = 0;
            self.park(rt, signal, turn);
        }
    }

    /// Waits inside the runtime's `block_on` until `signal` fires, or (for
    /// a `turn`) lets the runtime run once.
    fn park(&self, rt: &TokioRuntime, signal: &Relay, turn: bool) {
        self.parkers.fetch_add(1, SeqCst);
        self.parks.fetch_add(1, SeqCst);
        if self.holding.load(SeqCst) {
            self.wake_driver();
        }
        let previous = DRIVING.replace(Some(self.id));
        let mut turned = false;
        rt.block_on(poll_fn(|cx| {
            if turn {
                // One whole turn, even though the future's own flag is set:
                // tokio's `block_on` polls this before it runs tasks and
                // drivers, so returning at once would starve them.
                if turned {
                    return Poll::Ready(());
                }
                turned = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if signal.relay_to(cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        DRIVING.set(previous);
        signal.clear();
        if self.parkers.fetch_sub(1, SeqCst) == 1 && self.release_wanted.load(SeqCst) {
            self.unpark_driver();
        }
    }

    fn unpark_driver(&self) {
        if let Some(driver) = self.driver.get() {
            driver.unpark();
        }
    }

    /// Wakes the driver thread's `block_on`, outside the slot's lock.
    fn wake_driver(&self) {
        let waker = lock(&self.driver_waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn stop(&self) {
        self.stop.store(true, SeqCst);
        self.wake_driver();
        self.unpark_driver();
    }
}

/// The driver thread: holds the runtime while no caller parks in it.
fn drive_idle(callers: Arc<Callers>, rt: Arc<TokioRuntime>) {
    let mut period = IDLE;
    while !callers.stop.load(SeqCst) {
        // Take over only from a runtime that stayed undriven a whole period:
        // callers calling in a row keep it to themselves.
        let parks = callers.parks.load(SeqCst);
        thread::park_timeout(period);
        if callers.parks.load(SeqCst) != parks {
            // Busy: look again, later.
            period = (period * 2).min(BUSY_CHECK);
            continue;
        }
        if callers.parkers.load(SeqCst) > 0 {
            // A caller drives it: sleep until the last one leaves, which
            // wakes this thread.
            callers.release_wanted.store(true, SeqCst);
            if callers.parkers.load(SeqCst) > 0 && !callers.stop.load(SeqCst) {
                thread::park();
            }
            callers.release_wanted.store(false, SeqCst);
            period = IDLE;
            continue;
        }
        period = IDLE;
        if callers.stop.load(SeqCst) {
            break;
        }
        callers.holding.store(true, SeqCst);
        if callers.parkers.load(SeqCst) == 0 && !callers.stop.load(SeqCst) {
            let previous = DRIVING.replace(Some(callers.id));
            rt.block_on(poll_fn(|cx| {
                *lock(&callers.driver_waker) = Some(cx.waker().clone());
                if callers.parkers.load(SeqCst) > 0 || callers.stop.load(SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }));
            DRIVING.set(previous);
        }
        callers.holding.store(false, SeqCst);
        let driver_waker = lock(&callers.driver_waker).take();
        drop(driver_waker);
    }
    // A task this thread ran may have dropped the last clone of the adapter:
    // then this clone is the last, and the runtime goes down here.
    if let Some(rt) = Arc::into_inner(rt) {
        rt.shutdown_background();
    }
}
