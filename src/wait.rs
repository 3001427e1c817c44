//! The one way the bridge blocks a thread on a future it does not run itself
//! (a hop's answer, a channel of a stream, a writer or a sink): parked
//! between polls, with an optional deadline, after a tokio worker hand-off.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking::Parker;

use crate::context;

thread_local! {
    /// A parker and its waker, reused by the waits of this thread. A wait
    /// takes it out and puts it back, so a nested wait (a future polled here
    /// waits too) gets a fresh one instead of consuming the outer wait's
    /// wake-up.
    static CACHE: Cell<Option<(Parker, Waker)>> = const { Cell::new(None) };
}

/// Polls `fut` on the current thread, parking between polls, until it
/// completes (`Some`) or `deadline` passes (`None`).
///
/// On a tokio multi_thread worker the worker is handed off first (see
/// [`context::hand_off`]), so whatever else was queued there keeps running.
/// No spinning and no yielding: on a machine whose cores are all busy, a
/// time slice given away costs more than a park.
#[track_caller]
pub(crate) fn block_on<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    context::hand_off(|| park_loop(fut, deadline))
}

fn park_loop<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    // A thread whose locals are being destroyed gets a fresh parker too.
    let cached = CACHE.try_with(Cell::take).ok().flatten();
    let (parker, waker) = cached.unwrap_or_else(new_parker);
    let out = wait(&parker, &waker, fut, deadline);
    let _ = CACHE.try_with(|cache| cache.set(Some((parker, waker))));
    out
}

fn new_parker() -> (Parker, Waker) {
    let (parker, unparker) = parking::pair();
    (parker, Waker::from(unparker))
}

fn wait<F: Future>(
    parker: &Parker,
    waker: &Waker,
    fut: F,
    deadline: Option<Instant>,
) -> Option<F::Output> {
    let mut cx = Context::from_waker(waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        match deadline {
            None => parker.park(),
            Some(deadline) => {
                if !parker.park_deadline(deadline) && Instant::now() >= deadline {
                    // One last look: the answer may have come with the deadline.
                    return match fut.as_mut().poll(&mut cx) {
                        Poll::Ready(out) => Some(out),
                        Poll::Pending => None,
                    };
                }
            }
        }
    }
}
