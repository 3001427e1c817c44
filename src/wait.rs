//! Blocking waits on futures, with an optional deadline.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Polls `fut` on the current thread, parking between polls, until it
/// completes (`Some`) or `deadline` passes (`None`).
pub(crate) fn block_on_deadline<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    let (parker, unparker) = parking::pair();
    let waker = Waker::from(unparker);
    let mut cx = Context::from_waker(&waker);
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

/// Yields the thread, while `waiting` holds, for a few
/// microseconds at most (parking and being woken costs more, on virtual
/// machines tens of microseconds). Returns whether `waiting` stopped holding.
pub(crate) fn backoff(mut waiting: impl FnMut() -> bool) -> bool {
    for _ in 0..BACKOFF_ROUNDS {
        if !waiting() {
            return true;
        }
        std::thread::yield_now();
    }
    !waiting()
}

/// Yields only, no busy-wait: `spin_loop` burns the time slice that the
/// thread being waited for needs whenever both share a CPU (a loaded machine,
/// a small VM), which made a hop cost as much as parking.
const BACKOFF_ROUNDS: u32 = 16;
