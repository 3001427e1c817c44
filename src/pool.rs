//! The loop threads that calls hop to.
//!
//! Threads start lazily, one per job when none is idle, and exit after an
//! idle timeout or once the pool is shut down. An idle thread parks on its
//! own mailbox: a caller puts the job there and unparks it, so handing a job
//! over costs one wake-up and no channel.
//!
//! Accounting, exact on every path: `threads` counts the threads alive, `outer`
//! the threads running an outer job (a call from outside the bridge). At most
//! `max_threads` outer jobs run at once; more wait in the queue. Nested jobs
//! (made from inside a bridged future) never wait, since they could be
//! waiting for themselves: they may start threads beyond the limit, and such a
//! thread takes a queued outer job only while the limit allows.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle, Thread, ThreadId};
use std::time::{Duration, Instant};

use crate::context::{self, DepthGuard, Placement};
use crate::error::{payload_message, Payload};
use crate::Runtime;

/// Work for a loop thread.
pub(crate) trait Job<R>: Send + 'static {
    /// Does the work, keeping its result for [`finish`](Job::finish).
    fn run(&mut self, rt: &R);
    /// Delivers the result. Called once the thread is back in the pool (or
    /// has taken the next job), so that a caller who calls again at once
    /// finds it free instead of starting another thread. A result nobody
    /// takes any more is dropped with `rt`'s `block_on`, in its context.
    fn finish(self: Box<Self>, rt: &R);
}

/// Settings of a pool.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_threads: usize,
}

impl Config {
    /// A builder for a thread of this pool, named `{thread_name}-{suffix}`.
    pub(crate) fn thread(&self, suffix: impl fmt::Display) -> thread::Builder {
        let builder = thread::Builder::new().name(format!("{}-{suffix}", self.thread_name));
        match self.stack_size {
            Some(size) => builder.stack_size(size),
            None => builder,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            thread_name: "bridge".to_owned(),
            stack_size: None,
            idle_timeout: Duration::from_secs(10),
            max_threads: 512,
        }
    }
}

/// Where a submitted job went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ticket {
    /// A thread has it.
    Started,
    /// It waits in the queue under this id (see [`Pool::cancel`]).
    Queued(u64),
}

enum Command<R> {
    Run(Box<dyn Job<R>>, bool),
    Exit,
}

/// One idle thread's mailbox.
struct Mailbox<R> {
    command: Mutex<Option<Command<R>>>,
    thread: Thread,
}

struct State<R> {
    idle: Vec<Arc<Mailbox<R>>>,
    queue: VecDeque<(u64, Box<dyn Job<R>>)>,
    threads: usize,
    outer: usize,
    next_job: u64,
    next_thread: u64,
    shutdown: bool,
    handles: Vec<(ThreadId, JoinHandle<()>)>,
}

/// A pool of loop threads over one runtime.
pub(crate) struct Pool<R> {
    pub(crate) runtime: R,
    pub(crate) config: Config,
    state: Mutex<State<R>>,
    /// This pool, for the threads it starts.
    me: Weak<Pool<R>>,
}

/// What a thread does once its job is done.
enum Next<R> {
    Run(Box<dyn Job<R>>, bool),
    Idle,
    Exit,
}

/// Locks `m`, ignoring poison: jobs run outside every lock of the pool and
/// their panics are caught, so a poisoned lock still holds consistent data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<R: Runtime> Pool<R> {
    pub(crate) fn new(runtime: R, config: Config) -> Arc<Self> {
        Arc::new_cyclic(|me| Pool {
            runtime,
            config,
            me: Weak::clone(me),
            state: Mutex::new(State {
                idle: Vec::new(),
                queue: VecDeque::new(),
                threads: 0,
                outer: 0,
                next_job: 0,
                next_thread: 0,
                shutdown: false,
                handles: Vec::new(),
            }),
        })
    }

    /// Number of loop threads alive (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        lock(&self.state).threads
    }

    /// Number of idle loop threads.
    pub(crate) fn idle(&self) -> usize {
        lock(&self.state).idle.len()
    }

    /// Number of jobs waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Hands `job` to an idle thread, starts a thread for it, or queues it.
    ///
    /// `nested` jobs (made from inside a bridged future) never queue.
    ///
    /// # Errors
    ///
    /// The error of starting a thread, when no thread could take the job
    /// later either: a nested job, or an outer job while no outer job runs.
    /// An outer job that found threads busy waits in the queue instead.
    pub(crate) fn submit(&self, job: Box<dyn Job<R>>, nested: bool) -> io::Result<Ticket> {
        let mut st = lock(&self.state);
        if !nested && st.outer >= self.config.max_threads {
            return Ok(st.enqueue(job));
        }
        if !nested {
            st.outer += 1;
        }
        if let Some(mailbox) = st.idle.pop() {
            drop(st);
            *lock(&mailbox.command) = Some(Command::Run(job, !nested));
            mailbox.thread.unpark();
            return Ok(Ticket::Started);
        }
        st.threads += 1;
        let id = st.next_thread;
        st.next_thread += 1;
        drop(st);

        match self.spawn(id, job, !nested) {
            Ok(()) => Ok(Ticket::Started),
            Err((e, job)) => {
                let mut st = lock(&self.state);
                st.threads -= 1;
                if !nested {
                    st.outer -= 1;
                    // Degrade instead of failing while a thread will free up.
                    if st.outer > 0 {
                        return Ok(st.enqueue(job));
                    }
                }
                Err(e)
            }
        }
    }

    /// Drops `value`, a user's, in the runtime's context: on this thread
    /// where it can have that context (the runtime's `enter`, or its
    /// `block_on` where a call would run in place), on a loop thread inside
    /// `block_on` otherwise (never queued behind `max_threads`: a drop is
    /// short). A panic of the destructor unwinds from here, wherever it ran,
    /// unless this thread is unwinding already.
    pub(crate) fn dispose<T: Send + 'static>(&self, value: T) {
        let mut drop_it = Some(move || drop(value));
        if context::here() != context::Here::Exiting {
            let may_block = context::placement_of(&self.runtime) == Placement::Drive;
            context::drop_in(&self.runtime, may_block, &mut drop_it);
        }
        let Some(drop_it) = drop_it else {
            return;
        };
        let (done, dropped) = oneshot::async_channel();
        let slot = Arc::new(Mutex::new(Some((drop_it, done))));
        if self
            .submit(Box::new(Dispose(Arc::clone(&slot))), true)
            .is_err()
        {
            // No thread to drop it on: here, as it is.
            if let Some((drop_it, _)) = lock(&slot).take() {
                let _ = catch_unwind(AssertUnwindSafe(drop_it));
            }
            return;
        }
        if std::thread::panicking() {
            return;
        }
        // The destructor's panic reaches the caller as it would in place.
        if let Some(Ok(Err(payload))) = crate::wait::block_on(dropped, None) {
            std::panic::resume_unwind(payload);
        }
    }

    /// Takes a job back out of the queue if no thread has taken it yet, and
    /// drops it (what it holds of the caller's, a factory) in the runtime's
    /// context: for the objects whose consumer went away while they waited
    /// for a loop thread.
    pub(crate) fn withdraw(&self, ticket: Ticket) {
        if let Ticket::Queued(id) = ticket {
            if let Some(job) = self.cancel(id) {
                self.dispose(job);
            }
        }
    }

    /// Takes a queued job back, if no thread has taken it yet.
    pub(crate) fn cancel(&self, id: u64) -> Option<Box<dyn Job<R>>> {
        let mut st = lock(&self.state);
        let pos = st.queue.iter().position(|(queued, _)| *queued == id)?;
        st.queue.remove(pos).map(|(_, job)| job)
    }

    /// Starts loop thread `id` with its first job; gives the job back with
    /// the error if the thread could not start.
    #[allow(clippy::type_complexity)]
    fn spawn(
        &self,
        id: u64,
        job: Box<dyn Job<R>>,
        outer: bool,
    ) -> Result<(), (io::Error, Box<dyn Job<R>>)> {
        let builder = self.config.thread(id);
        // The job goes through a mailbox so that a thread that never starts
        // gives it back.
        let first = Arc::new(Mutex::new(Some(job)));
        let handed = Arc::clone(&first);
        let pool = self.me.upgrade().expect("a pool in use is alive");
        let main = move || {
            let job = lock(&handed).take();
            drop(handed);
            if let Some(job) = job {
                pool.work(job, outer);
            }
        };
        let spawned = catch_unwind(AssertUnwindSafe(|| self.runtime.spawn_loop(builder, main)));
        let spawned = match spawned {
            Ok(spawned) => spawned,
            Err(payload) => Err(io::Error::other(format!(
                "the runtime's `spawn_loop` panicked: {}",
                payload_message(&*payload).unwrap_or("(no message)")
            ))),
        };
        match spawned {
            Ok(handle) => {
                let mut st = lock(&self.state);
                st.handles.retain(|(_, h)| !h.is_finished());
                st.handles.push((handle.thread().id(), handle));
                Ok(())
            }
            Err(e) => match lock(&first).take() {
                Some(job) => Err((e, job)),
                // The thread started and took the job after all: a hook that
                // failed after spawning. It runs; report success.
                None => Ok(()),
            },
        }
    }

    /// A loop thread's life: run jobs until told to exit or idle too long.
    fn work(self: Arc<Self>, first: Box<dyn Job<R>>, first_outer: bool) {
        let mailbox = Arc::new(Mailbox {
            command: Mutex::new(None),
            thread: thread::current(),
        });
        let mut next = Some((first, first_outer));
        loop {
            let (mut job, outer) = match next.take() {
                Some(job) => job,
                None => match self.wait(&mailbox) {
                    Some(job) => job,
                    None => return,
                },
            };
            {
                let _depth = DepthGuard::on_loop_thread();
                // A job reports its own panics to its caller; this only keeps
                // the thread's bookkeeping right should reporting panic too.
                let _ = catch_unwind(AssertUnwindSafe(|| job.run(&self.runtime)));
            }
            let after = self.done(&mailbox, outer);
            let _ = catch_unwind(AssertUnwindSafe(|| job.finish(&self.runtime)));
            match after {
                Next::Run(job, outer) => next = Some((job, outer)),
                Next::Idle => {}
                Next::Exit => return,
            }
        }
    }

    /// A thread finished a job: it takes a queued job if the limit allows,
    /// exits if the pool is shut down, or goes back on the idle list.
    fn done(&self, mailbox: &Arc<Mailbox<R>>, outer: bool) -> Next<R> {
        let mut st = lock(&self.state);
        if outer {
            st.outer -= 1;
        }
        if st.outer < self.config.max_threads {
            if let Some((_, job)) = st.queue.pop_front() {
                st.outer += 1;
                return Next::Run(job, true);
            }
        }
        if st.shutdown {
            st.exit();
            return Next::Exit;
        }
        st.idle.push(Arc::clone(mailbox));
        Next::Idle
    }

    /// Parks an idle thread until it gets a job (`Some`) or must exit (`None`,
    /// its bookkeeping already undone).
    fn wait(&self, mailbox: &Arc<Mailbox<R>>) -> Option<(Box<dyn Job<R>>, bool)> {
        // No deadline for an idle timeout too large to add.
        let mut deadline = Instant::now().checked_add(self.config.idle_timeout);
        loop {
            match lock(&mailbox.command).take() {
                Some(Command::Run(job, outer)) => return Some((job, outer)),
                Some(Command::Exit) => return None,
                None => {}
            }
            let Some(until) = deadline else {
                thread::park();
                continue;
            };
            let now = Instant::now();
            if now < until {
                thread::park_timeout(until - now);
                continue;
            }
            let mut st = lock(&self.state);
            match st.idle.iter().position(|m| Arc::ptr_eq(m, mailbox)) {
                Some(pos) => {
                    st.idle.swap_remove(pos);
                    st.exit();
                    // Nobody joins a thread that expired: detach it.
                    let me = thread::current().id();
                    st.handles.retain(|(id, _)| *id != me);
                    return None;
                }
                // A caller took this thread off the idle list and is about to
                // hand it a job: wait for it.
                None => deadline = None,
            }
        }
    }

    /// Stops the pool: idle threads exit now and are joined (unless the
    /// caller is one of them), busy ones after their job. Jobs still queued
    /// run first: their callers are waiting for them. Jobs submitted later
    /// still run, each thread exiting once it is done.
    pub(crate) fn shutdown(&self) {
        let mut st = lock(&self.state);
        st.shutdown = true;
        let idle = std::mem::take(&mut st.idle);
        let me = thread::current().id();
        let mut joins = Vec::new();
        for mailbox in &idle {
            st.exit();
            let id = mailbox.thread.id();
            if let Some(pos) = st.handles.iter().position(|(h, _)| *h == id) {
                let (_, handle) = st.handles.swap_remove(pos);
                if id != me {
                    joins.push(handle);
                }
            }
        }
        drop(st);
        for mailbox in idle {
            *lock(&mailbox.command) = Some(Command::Exit);
            mailbox.thread.unpark();
        }
        for handle in joins {
            let _ = handle.join();
        }
    }
}

/// A job that drops a value inside the runtime's `block_on`, and tells
/// whether its destructor panicked.
#[allow(clippy::type_complexity)]
struct Dispose<D>(Arc<Mutex<Option<(D, oneshot::Sender<Result<(), Payload>>)>>>);

impl<R: Runtime, D: FnOnce() + Send + 'static> Job<R> for Dispose<D> {
    fn run(&mut self, rt: &R) {
        if let Some((drop_it, done)) = lock(&self.0).take() {
            let dropped = catch_unwind(AssertUnwindSafe(|| rt.block_on(async move { drop_it() })));
            let _ = done.send(dropped);
        }
    }

    fn finish(self: Box<Self>, _: &R) {}
}

impl<R> State<R> {
    fn enqueue(&mut self, job: Box<dyn Job<R>>) -> Ticket {
        let id = self.next_job;
        self.next_job += 1;
        self.queue.push_back((id, job));
        Ticket::Queued(id)
    }

    /// Books a thread's exit.
    fn exit(&mut self) {
        self.threads -= 1;
    }
}
