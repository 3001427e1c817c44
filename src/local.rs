//! Async objects owned by blocking code: each operation on them is
//! dispatched like [`Bridge::run`](crate::Bridge::run), on the caller's
//! thread where that is safe, with the object sent to a loop thread and back
//! where it is not.
//!
//! [`Exec`] is a bridge with its runtime type erased, which is what the
//! iterators and IO objects keep: it keeps the runtime and the pool alive
//! for as long as they live.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_lite::FutureExt;

use crate::context::{self, Placement};
use crate::error::Payload;
use crate::pool::{lock, Job, Pool, Ticket};
use crate::{wait, Carry, Error, Runtime};

/// A bridge's runtime and pool, seen without their type.
pub(crate) trait Exec: Send + Sync + 'static {
    /// Starts the runtime if needed.
    fn start(&self) -> Result<(), Error>;
    /// Where an operation from the current thread runs (a calling context
    /// the runtime refuses panics here).
    #[track_caller]
    fn placement(&self) -> Placement;
    /// Lets the runtime refuse the calling context before a wait that runs
    /// no future of its own.
    #[track_caller]
    fn check(&self);
    /// Runs `fut` on this thread as `placement` says (not [`Placement::Hop`]).
    #[track_caller]
    fn block_here(&self, placement: Placement, fut: Pin<&mut (dyn Future<Output = ()> + '_)>);
    /// Runs `work` on a loop thread; it gets the runtime to block on.
    fn submit(&self, work: LoopWork) -> Result<Ticket, Error>;
    /// Drops a user's value in the runtime's context ([`Pool::dispose`]).
    fn dispose(&self, value: Box<dyn Any + Send>);
    /// Takes work whose consumer went away out of the queue, if it still
    /// waits there, and drops it ([`Pool::withdraw`]).
    fn withdraw(&self, ticket: Ticket);
}

/// Work for a loop thread: it gets the runtime to block on.
pub(crate) type LoopWork = Box<dyn FnOnce(&dyn BlockOn) + Send>;

/// A runtime's `block_on`, for futures of any type.
pub(crate) trait BlockOn {
    fn block_on_dyn(&self, fut: Pin<&mut (dyn Future<Output = ()> + '_)>);
}

impl<R: Runtime> BlockOn for R {
    fn block_on_dyn(&self, fut: Pin<&mut (dyn Future<Output = ()> + '_)>) {
        self.block_on(fut)
    }
}

impl<R: Runtime> Exec for Pool<R> {
    fn start(&self) -> Result<(), Error> {
        self.runtime.start().map_err(Error::runtime)
    }

    #[track_caller]
    fn placement(&self) -> Placement {
        context::placement(&self.runtime)
    }

    #[track_caller]
    fn check(&self) {
        context::check(&self.runtime)
    }

    #[track_caller]
    fn block_here(&self, placement: Placement, fut: Pin<&mut (dyn Future<Output = ()> + '_)>) {
        context::in_place(&self.runtime, placement, fut)
    }

    fn submit(&self, work: LoopWork) -> Result<Ticket, Error> {
        Pool::submit(self, Box::new(Work(Some(work))), context::nested()).map_err(Error::thread)
    }

    fn dispose(&self, value: Box<dyn Any + Send>) {
        Pool::dispose(self, value)
    }

    fn withdraw(&self, ticket: Ticket) {
        Pool::withdraw(self, ticket)
    }
}

/// A job that is one closure: it delivers its own result.
struct Work(Option<LoopWork>);

impl<R: Runtime> Job<R> for Work {
    fn run(&mut self, rt: &R) {
        if let Some(work) = self.0.take() {
            work(rt);
        }
    }

    fn finish(self: Box<Self>, _: &R) {}
}

/// What comes back from a loop thread: the object (unless the operation
/// panicked or ended it, which drops it there) and the operation's output,
/// `None` if it was cancelled first.
pub(crate) struct Back<S: ?Sized, O> {
    pub(crate) obj: Option<Pin<Box<S>>>,
    pub(crate) out: Result<Option<O>, Payload>,
}

/// An operation away on a loop thread.
pub(crate) struct Away<S: ?Sized, O> {
    back: oneshot::AsyncReceiver<Back<S, O>>,
    /// Dropped to cancel.
    cancel: Option<oneshot::Sender<()>>,
    /// Where the operation went: still queued, it is taken back on drop.
    exec: Arc<dyn Exec>,
    ticket: Ticket,
}

impl<S: ?Sized, O> Drop for Away<S, O> {
    fn drop(&mut self) {
        self.exec.withdraw(self.ticket);
    }
}

/// Polls `op` on `obj` on the current thread, as `placement` says.
///
/// A panic of `op` unwinds out of here.
#[track_caller]
pub(crate) fn here<S, O>(
    exec: &dyn Exec,
    placement: Placement,
    obj: Pin<&mut S>,
    mut op: impl FnMut(Pin<&mut S>, &mut Context<'_>) -> Poll<O>,
) -> O
where
    S: ?Sized,
{
    let mut obj = obj;
    let mut out = None;
    {
        let fut = pin!(async {
            out = Some(poll_fn(|cx| op(obj.as_mut(), cx)).await);
        });
        exec.block_here(placement, fut);
    }
    out.expect("the operation completed")
}

/// Sends `obj` to a loop thread and polls `op` on it there, until it
/// completes or [`Away::cancel`] stops it at its next poll. An output for
/// which `ends` holds ends the object: it is dropped there, not sent back
/// (a panic of its destructor is the answer then).
///
/// # Errors
///
/// The object comes back with the error if no loop thread could take it.
#[allow(clippy::type_complexity)]
pub(crate) fn send_away<S, O, Op>(
    exec: &Arc<dyn Exec>,
    obj: Pin<Box<S>>,
    mut op: Op,
    ends: fn(&O) -> bool,
) -> Result<Away<S, O>, (Error, Pin<Box<S>>)>
where
    S: ?Sized + Send + 'static,
    O: Send + 'static,
    Op: FnMut(Pin<&mut S>, &mut Context<'_>) -> Poll<O> + Send + 'static,
{
    let (reply, back) = oneshot::async_channel();
    let (cancel, cancelled) = oneshot::async_channel::<()>();
    let carry = Carry::capture();
    // The object waits here until the thread takes it, so that a job that
    // never starts gives it back.
    let slot = Arc::new(Mutex::new(Some(obj)));
    let taken = Arc::clone(&slot);
    let work = Box::new(move |rt: &dyn BlockOn| {
        let Some(mut obj) = lock(&taken).take() else {
            return;
        };
        drop(taken);
        carry.run(|| {
            let fut = pin!(async move {
                let stop = async {
                    let _ = cancelled.await;
                    None
                };
                let run = async { Some(poll_fn(|cx| op(obj.as_mut(), cx)).await) };
                let out = AssertUnwindSafe(futures_lite::future::or(stop, run))
                    .catch_unwind()
                    .await;
                let back = match out {
                    Ok(Some(out)) if ends(&out) => Back {
                        obj: None,
                        out: finish_off(obj).map(|()| Some(out)),
                    },
                    Ok(out) => Back {
                        obj: Some(obj),
                        out: Ok(out),
                    },
                    // Its state is whatever the panic left: dropped here.
                    Err(payload) => {
                        let _ = finish_off(obj);
                        Back {
                            obj: None,
                            out: Err(payload),
                        }
                    }
                };
                if let Err(undelivered) = reply.send(back) {
                    // The caller went away: what it would have got is
                    // dropped here, in the runtime's context.
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(undelivered)));
                }
            });
            rt.block_on_dyn(fut);
        })
    });
    let ticket = match exec.submit(work) {
        Ok(ticket) => ticket,
        Err(e) => {
            let obj = lock(&slot)
                .take()
                .expect("a job that never ran leaves its object");
            return Err((e, obj));
        }
    };
    Ok(Away {
        back,
        cancel: Some(cancel),
        exec: Arc::clone(exec),
        ticket,
    })
}

/// Drops an object on its loop thread, its destructor's panic as a value.
fn finish_off<S: ?Sized>(obj: Pin<Box<S>>) -> Result<(), Payload> {
    catch_unwind(AssertUnwindSafe(move || drop(obj)))
}

impl<S: ?Sized, O> Away<S, O> {
    /// Waits for the operation to come back, until `deadline` if any.
    ///
    /// `Err(Error::lost)` if the loop thread went away without it.
    #[track_caller]
    pub(crate) fn wait(&mut self, deadline: Option<Instant>) -> Option<Result<Back<S, O>, Error>> {
        wait::block_on(&mut self.back, deadline).map(|got| got.map_err(|_| Error::lost()))
    }

    /// Asks the operation to stop at its next poll.
    pub(crate) fn cancel(&mut self) {
        self.cancel = None;
    }
}
