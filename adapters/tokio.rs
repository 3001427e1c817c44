//! [`Tokio`]: the adapter for tokio.
//!
//! ```
//! use std::time::Duration;
//!
//! let out = executor_bridge::tokio::run(|| async {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//!     "slept"
//! });
//! assert_eq!(out, "slept");
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use ::tokio::runtime::{Handle, Runtime as TokioRuntime, RuntimeFlavor};

use crate::{Error, Runtime, Task};

/// Drives futures on a long-lived tokio multi_thread runtime.
///
/// The runtime persists across calls, so what one call creates keeps working
/// in the next: a connection pool (reqwest, sqlx, tonic clients), a bound
/// listener, a `tokio::spawn`ed task. Futures run on the calling thread (or a
/// bridge loop thread) with `Handle::block_on`; the runtime's worker drives IO,
/// timers and spawned tasks.
///
/// - [`Tokio::new`] (also `Default`) builds its own runtime lazily, on the
///   first call, with one worker thread named `executor-bridge-tokio`.
/// - [`Tokio::from_runtime`] takes a runtime you built (more workers, other
///   settings).
/// - [`Tokio::from_handle`] / [`Tokio::current`] use an application's
///   existing multi_thread runtime.
///
/// Clones share the runtime. An owned runtime is shut down when the last
/// clone is dropped: waiting for its threads to exit from blocking code, in
/// the background from async code (where tokio forbids blocking).
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
#[derive(Clone)]
pub struct Tokio {
    inner: Arc<Inner>,
}

enum Inner {
    /// A runtime of ours, built on first use and dropped on its own thread.
    Owned {
        runtime: OnceLock<TokioRuntime>,
        build: Mutex<()>,
    },
    /// An application's runtime.
    Borrowed(Handle),
}

impl Default for Tokio {
    fn default() -> Self {
        Tokio::new()
    }
}

impl Tokio {
    /// An adapter that builds its own multi_thread runtime (one worker, IO and
    /// time enabled) on first use.
    pub fn new() -> Self {
        Tokio {
            inner: Arc::new(Inner::Owned {
                runtime: OnceLock::new(),
                build: Mutex::new(()),
            }),
        }
    }

    /// An adapter that owns `runtime`, built by you.
    ///
    /// # Panics
    ///
    /// Panics with "executor-bridge: the Tokio adapter needs a multi_thread
    /// runtime ..." if `runtime` is a current_thread runtime: only the thread
    /// inside its `Runtime::block_on` can drive one, and a bridge call made
    /// from that thread would wait on itself.
    #[track_caller]
    pub fn from_runtime(runtime: TokioRuntime) -> Self {
        check_flavor(runtime.handle()).unwrap_or_else(|e| panic!("executor-bridge: {e}"));
        let built = OnceLock::new();
        let _ = built.set(runtime);
        Tokio {
            inner: Arc::new(Inner::Owned {
                runtime: built,
                build: Mutex::new(()),
            }),
        }
    }

    /// An adapter on an application's existing multi_thread runtime. The
    /// runtime is not shut down by the adapter.
    ///
    /// # Panics
    ///
    /// Panics with "executor-bridge: the Tokio adapter needs a multi_thread
    /// runtime ..." for a current_thread handle; see
    /// [`try_from_handle`](Tokio::try_from_handle).
    #[track_caller]
    pub fn from_handle(handle: Handle) -> Self {
        check_flavor(&handle).unwrap_or_else(|e| panic!("executor-bridge: {e}"));
        Tokio {
            inner: Arc::new(Inner::Borrowed(handle)),
        }
    }

    /// Like [`from_handle`](Tokio::from_handle), but returns an error for a
    /// current_thread handle.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] with [`io::ErrorKind::InvalidInput`] if `handle`
    /// belongs to a current_thread runtime: `Handle::block_on` cannot drive
    /// its IO and timers from another thread, so calls would hang.
    pub fn try_from_handle(handle: Handle) -> Result<Self, Error> {
        check_flavor(&handle).map_err(Error::Runtime)?;
        Ok(Tokio {
            inner: Arc::new(Inner::Borrowed(handle)),
        })
    }

    /// An adapter on the multi_thread runtime the caller is running on.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime (tokio's "there is no reactor
    /// running" message), or inside a current_thread runtime (as
    /// [`from_handle`](Tokio::from_handle)).
    #[track_caller]
    pub fn current() -> Self {
        Tokio::from_handle(Handle::current())
    }

    /// The runtime's handle, starting an owned runtime if needed.
    ///
    /// # Errors
    ///
    /// The error of tokio's runtime builder, if an owned runtime could not be
    /// started.
    #[inline]
    pub fn handle(&self) -> io::Result<&Handle> {
        match &*self.inner {
            Inner::Borrowed(handle) => Ok(handle),
            Inner::Owned { runtime, .. } => match runtime.get() {
                Some(rt) => Ok(rt.handle()),
                None => self.build(),
            },
        }
    }

    /// Builds the owned runtime: the first call's slow path.
    #[cold]
    #[inline(never)]
    fn build(&self) -> io::Result<&Handle> {
        let Inner::Owned { runtime, build } = &*self.inner else {
            unreachable!("only an owned runtime is built")
        };
        let _building = crate::pool::lock(build);
        if let Some(rt) = runtime.get() {
            return Ok(rt.handle());
        }
        let rt = ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("executor-bridge-tokio")
            .enable_all()
            .build()?;
        Ok(runtime.get_or_init(|| rt).handle())
    }

    #[track_caller]
    fn started(&self) -> &Handle {
        match self.handle() {
            Ok(handle) => handle,
            Err(e) => panic!("executor-bridge: failed to start the runtime: {e}"),
        }
    }
}

fn check_flavor(handle: &Handle) -> io::Result<()> {
    match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => Ok(()),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the Tokio adapter needs a multi_thread runtime, got {other:?}: \
                 only the thread inside its `Runtime::block_on` can drive it"
            ),
        )),
    }
}

impl fmt::Debug for Tokio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, started) = match &*self.inner {
            Inner::Owned { runtime, .. } => ("owned", runtime.get().is_some()),
            Inner::Borrowed(_) => ("borrowed", true),
        };
        f.debug_struct("Tokio")
            .field("runtime", &kind)
            .field("started", &started)
            .finish()
    }
}

impl Runtime for Tokio {
    /// `Handle::block_on` on the adapter's runtime.
    ///
    /// # Panics
    ///
    /// Panics if the owned runtime cannot be built, or (tokio's message "Cannot
    /// start a runtime from within a runtime") when called directly from
    /// async code; [`Bridge`](crate::Bridge) never does the latter.
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.started().block_on(fut)
    }

    fn start(&self) -> io::Result<()> {
        self.handle().map(|_| ())
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let _entered = self.started().enter();
        Some(f())
    }

    fn spawn(&self, task: Task) -> Result<(), Task> {
        drop(self.started().spawn(task));
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Inner::Owned { runtime, .. } = self else {
            return;
        };
        let Some(rt) = runtime.take() else {
            return;
        };
        if Handle::try_current().is_ok() {
            // Inside a runtime (perhaps on one of this runtime's own threads)
            // blocking on the shutdown would panic or wait on itself: let the
            // workers finish in the background.
            rt.shutdown_background();
        } else {
            // Waits for the workers to exit, so no thread outlives the adapter.
            drop(rt);
        }
    }
}

shortcuts!(Tokio, "tokio");
