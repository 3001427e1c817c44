//! The pool of loop threads that calls hop to.
//!
//! Threads are started lazily, one per call in flight when none is idle, and
//! exit after an idle timeout or when the bridge is dropped. An idle thread
//! parks on its own slot: a caller puts the job there and unparks it, so a hop
//! costs one wake-up each way and no channel.

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crate::context::DepthGuard;
use crate::wait::backoff;
use crate::Runtime;

/// A unit of work for a loop thread: it gets the runtime to block on, and a
/// `release` callback to call once its result is ready and before it is
/// sent, so that the thread is back in the pool (or has taken the next queued
/// job) by the time the caller wakes up and perhaps calls again. The worker
/// calls `release` itself if the job did not.
pub(crate) type Job<R> = Box<dyn FnOnce(&R, &mut dyn FnMut()) + Send + 'static>;

/// What a loop thread does once a job released it.
enum After<R> {
    Idle,
    Run(Job<R>),
    Exit,
}

/// Settings shared by a bridge and its threads.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_threads: usize,
    pub(crate) stream_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            thread_name: "executor-bridge".to_owned(),
            stack_size: None,
            idle_timeout: Duration::from_secs(10),
            max_threads: 512,
            stream_capacity: 1024,
        }
    }
}

enum Command<R> {
    Run(Job<R>),
    Exit,
}

/// One idle thread's mailbox.
struct Slot<R> {
    command: Mutex<Option<Command<R>>>,
    thread: Thread,
}

struct State<R> {
    idle: Vec<Arc<Slot<R>>>,
    /// Jobs waiting for a thread while `max_threads` are all busy.
    queue: VecDeque<Job<R>>,
    threads: usize,
    next_id: u64,
    shutdown: bool,
    handles: Vec<(thread::ThreadId, JoinHandle<()>)>,
}

/// The pool. Owned by [`Shared`], which every loop thread keeps alive.
pub(crate) struct Pool<R> {
    state: Mutex<State<R>>,
}

pub(crate) struct Shared<R> {
    pub(crate) runtime: R,
    pub(crate) config: Config,
    pub(crate) pool: Pool<R>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Jobs run outside every lock and panics inside them are caught, so a
    // poisoned lock holds consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<R> Pool<R> {
    pub(crate) fn new() -> Self {
        Pool {
            state: Mutex::new(State {
                idle: Vec::new(),
                queue: VecDeque::new(),
                threads: 0,
                next_id: 0,
                shutdown: false,
                handles: Vec::new(),
            }),
        }
    }

    /// Number of loop threads alive (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        lock(&self.state).threads
    }

    /// Number of idle loop threads.
    pub(crate) fn idle(&self) -> usize {
        lock(&self.state).idle.len()
    }
}

impl<R: Runtime> Shared<R> {
    /// Hands `job` to an idle thread, or starts one.
    ///
    /// `urgent` calls (nested ones, from inside a bridged future) never wait
    /// in the queue: they would wait for themselves.
    pub(crate) fn submit(self: &Arc<Self>, job: Job<R>, urgent: bool) -> io::Result<()> {
        let mut st = lock(&self.pool.state);
        if let Some(slot) = st.idle.pop() {
            drop(st);
            *lock(&slot.command) = Some(Command::Run(job));
            slot.thread.unpark();
            return Ok(());
        }
        if st.threads >= self.config.max_threads && !urgent {
            st.queue.push_back(job);
            return Ok(());
        }
        st.threads += 1;
        let id = st.next_id;
        st.next_id += 1;
        drop(st);

        let mut builder = thread::Builder::new().name(format!("{}-{id}", self.config.thread_name));
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        let shared = Arc::clone(self);
        match self.runtime.spawn_loop(builder, move || shared.worker(job)) {
            Ok(handle) => {
                let mut st = lock(&self.pool.state);
                st.handles.retain(|(_, h)| !h.is_finished());
                st.handles.push((handle.thread().id(), handle));
                Ok(())
            }
            Err(e) => {
                // Roll the bookkeeping back; the job (and the caller's end of
                // its reply channel) was dropped with the closure.
                lock(&self.pool.state).threads -= 1;
                Err(e)
            }
        }
    }

    fn worker(self: Arc<Self>, first: Job<R>) {
        let slot = Arc::new(Slot {
            command: Mutex::new(None),
            thread: thread::current(),
        });
        let mut next = Some(first);
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match self.wait(&slot) {
                    Some(job) => job,
                    None => return,
                },
            };
            let mut after = None;
            {
                let _depth = DepthGuard::enter();
                let mut release = || {
                    if after.is_none() {
                        after = Some(self.release(&slot));
                    }
                };
                // A job reports its own panics to its caller; this only keeps
                // the thread alive should reporting itself panic.
                let _ = catch_unwind(AssertUnwindSafe(|| job(&self.runtime, &mut release)));
                release();
            }
            match after {
                Some(After::Run(job)) => next = Some(job),
                Some(After::Exit) => return,
                Some(After::Idle) | None => {}
            }
        }
    }

    /// A loop thread is done with its job: it takes a queued job, exits if
    /// the pool is shutting down, or goes back on the idle list.
    fn release(&self, slot: &Arc<Slot<R>>) -> After<R> {
        let mut st = lock(&self.pool.state);
        if let Some(job) = st.queue.pop_front() {
            return After::Run(job);
        }
        if st.shutdown {
            st.threads -= 1;
            return After::Exit;
        }
        st.idle.push(Arc::clone(slot));
        After::Idle
    }

    /// Parks an idle thread until it gets a job (`Some`) or must exit (`None`,
    /// with its bookkeeping already undone).
    fn wait(&self, slot: &Arc<Slot<R>>) -> Option<Job<R>> {
        // A caller that just got its answer often calls again at once.
        backoff(|| lock(&slot.command).is_none());
        // No deadline for an idle timeout too large to add.
        let mut deadline = Instant::now().checked_add(self.config.idle_timeout);
        loop {
            match lock(&slot.command).take() {
                Some(Command::Run(job)) => return Some(job),
                Some(Command::Exit) => return None,
                None => {}
            }
            let Some(until) = deadline else {
                thread::park();
                continue;
            };
            let now = Instant::now();
            if now >= until {
                let mut st = lock(&self.pool.state);
                if let Some(pos) = st.idle.iter().position(|s| Arc::ptr_eq(s, slot)) {
                    st.idle.swap_remove(pos);
                    st.threads -= 1;
                    // Nobody will join an expired thread: detach it.
                    let me = thread::current().id();
                    st.handles.retain(|(id, _)| *id != me);
                    return None;
                }
                // A caller took this thread off the idle list and is about to
                // hand it a job: wait for it.
                deadline = None;
                continue;
            }
            thread::park_timeout(until - now);
        }
    }

    /// Stops the pool: idle threads exit now (and are joined, unless the
    /// caller is one of the pool's own threads), busy ones after their job.
    pub(crate) fn shutdown(&self) {
        let mut st = lock(&self.pool.state);
        st.shutdown = true;
        let idle = std::mem::take(&mut st.idle);
        st.threads -= idle.len();
        let me = thread::current().id();
        let mut joins = Vec::new();
        for slot in &idle {
            let id = slot.thread.id();
            if let Some(pos) = st.handles.iter().position(|(h, _)| *h == id) {
                let (_, handle) = st.handles.swap_remove(pos);
                if id != me {
                    joins.push(handle);
                }
            }
        }
        // Queued jobs stay: every thread is busy while the queue is not empty,
        // and each one drains it before it exits.
        drop(st);
        for slot in idle {
            *lock(&slot.command) = Some(Command::Exit);
            slot.thread.unpark();
        }
        for handle in joins {
            let _ = handle.join();
        }
    }
}
