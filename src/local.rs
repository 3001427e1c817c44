//! Async objects owned by blocking code: each operation on them is
//! dispatched like [`Bridge::run`](crate::Bridge::run), on the caller's
//! thread where that is safe, with the object sent to a loop thread and back
//! where it is not.
//!
//! [`Exec`] is a bridge with its runtime type erased, which is what the
//! iterators and IO objects keep: it keeps the runtime and the pool alive
//! for as long as they live.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::bridge::block_here;
use crate::context::{self, DepthGuard, Placement};
use crate::error::Payload;
use crate::pool::{Job, Pool, Ticket};
use crate::{wait, Carry, Error, Runtime};

/// A bridge's runtime and pool, seen without their type.
pub(crate) trait Exec: Send + Sync + 'static {
    /// Starts the runtime if needed.
    fn start(&self) -> Result<(), Error>;
    /// Where an operation from the current thread runs.
    #[track_caller]
    fn placement(&self) -> Placement;
    /// Polls `fut` once under the runtime's context, then waits for it on
    /// this thread as `placement` says (not [`Placement::Hop`]).
    #[track_caller]
    fn block_here(&self, placement: Placement, fut: Pin<&mut (dyn Future<Output = ()> + '_)>);
    /// Runs `work` on a loop thread; it gets the runtime to block on.
    fn submit(&self, work: LoopWork) -> Result<Ticket, Error>;
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
    fn block_here(&self, placement: Placement, fut: Pin<&mut (dyn Future<Output = ()> + '_)>) {
        poll_then_block(&self.runtime, placement, fut)
    }

    fn submit(&self, work: LoopWork) -> Result<Ticket, Error> {
        Pool::submit(self, Box::new(Work(Some(work))), context::nested()).map_err(Error::thread)
    }
}

/// Polls `fut` once under `rt`'s context, then waits for it here as
/// `placement` says; marks the thread as polling a bridged future meanwhile.
#[track_caller]
pub(crate) fn poll_then_block<R: Runtime, F: Future + ?Sized>(
    rt: &R,
    placement: Placement,
    mut fut: Pin<&mut F>,
) -> F::Output {
    let _depth = DepthGuard::enter();
    let first = rt.enter(|| fut.as_mut().poll(&mut Context::from_waker(Waker::noop())));
    if let Some(Poll::Ready(out)) = first {
        return out;
    }
    block_here(rt, placement, fut)
}

/// A job that is one closure: it delivers its own result.
struct Work(Option<LoopWork>);

impl<R: Runtime> Job<R> for Work {
    fn run(&mut self, rt: &R) {
        if let Some(work) = self.0.take() {
            work(rt);
        }
    }

    fn finish(self: Box<Self>) {}
}

/// What comes back from a loop thread: the object (unless the operation
/// panicked, which drops it there) and the operation's output, `None` if it
/// was cancelled first.
pub(crate) struct Back<S: ?Sized, O> {
    pub(crate) obj: Option<Pin<Box<S>>>,
    pub(crate) out: Result<Option<O>, Payload>,
}

/// An operation away on a loop thread.
pub(crate) struct Away<S: ?Sized, O> {
    back: oneshot::AsyncReceiver<Back<S, O>>,
    /// Dropped to cancel.
    cancel: Option<oneshot::Sender<()>>,
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
        let fut = pin!(context::own_budget(async {
            out = Some(poll_fn(|cx| op(obj.as_mut(), cx)).await);
        }));
        exec.block_here(placement, fut);
    }
    out.expect("the operation completed")
}

/// Sends `obj` to a loop thread and polls `op` on it there, until it
/// completes or [`Away::cancel`] stops it at its next poll.
pub(crate) fn send_away<S, O, Op>(
    exec: &Arc<dyn Exec>,
    obj: Pin<Box<S>>,
    mut op: Op,
) -> Result<Away<S, O>, Error>
where
    S: ?Sized + Send + 'static,
    O: Send + 'static,
    Op: FnMut(Pin<&mut S>, &mut Context<'_>) -> Poll<O> + Send + 'static,
{
    let (reply, back) = oneshot::async_channel();
    let (cancel, cancelled) = oneshot::async_channel::<()>();
    let carry = Carry::capture();
    let work = Box::new(move |rt: &dyn BlockOn| {
        let mut obj = obj;
        let answer = carry.run(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let mut out = None;
                {
                    let fut = pin!(async {
                        let stop = async {
                            let _ = cancelled.await;
                            None
                        };
                        let run = async { Some(poll_fn(|cx| op(obj.as_mut(), cx)).await) };
                        out = futures_lite::future::or(stop, run).await;
                    });
                    rt.block_on_dyn(fut);
                }
                out
            }))
        });
        let back = match answer {
            Ok(out) => Back {
                obj: Some(obj),
                out: Ok(out),
            },
            Err(payload) => {
                // Its state is whatever the panic left: drop it here, where
                // a panic of its destructor harms nobody.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(obj)));
                Back {
                    obj: None,
                    out: Err(payload),
                }
            }
        };
        let _ = reply.send(back);
    });
    exec.submit(work)?;
    Ok(Away {
        back,
        cancel: Some(cancel),
    })
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
