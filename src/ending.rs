//! How the stream of a [`BlockingWriter`](crate::BlockingWriter) or a
//! [`BlockingSink`](crate::BlockingSink) ends: committed by `close`, or
//! aborted by a drop without `close` (after a `?` or during a panic alike).
//!
//! One state, decided on the blocking side *before* any of its channels
//! closes, and read by every path of the async side that could end cleanly:
//! a channel found closed means an end only where the state says
//! "committed", so no interleaving of a drop with a poll in progress can turn
//! an abort into a clean end.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender};

const OPEN: u8 = 0;
const COMMITTED: u8 = 1;
const ABORTED: u8 = 2;

/// The blocking side's end: [`commit`](Closer::commit) before closing the
/// data channel; dropped uncommitted, it aborts.
#[derive(Debug)]
pub(crate) struct Closer {
    state: Arc<AtomicU8>,
    /// Dropped last: its closing wakes [`Watch::aborted`].
    _alarm: Sender<()>,
}

/// The async side's view of the ending.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    state: Arc<AtomicU8>,
    /// Boxed: a receiver is not `Unpin`, and the streams that hold a watch
    /// are.
    alarm: Box<Receiver<()>>,
}

/// A new, open ending.
pub(crate) fn ending() -> (Closer, Watch) {
    let state = Arc::new(AtomicU8::new(OPEN));
    let (alarm, wake) = async_channel::bounded(1);
    (
        Closer {
            state: Arc::clone(&state),
            _alarm: alarm,
        },
        Watch {
            state,
            alarm: Box::new(wake),
        },
    )
}

impl Closer {
    /// Commits: the stream ends cleanly once its channel closes.
    pub(crate) fn commit(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, COMMITTED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Aborts, unless committed: the stream never ends cleanly. Called by
    /// the blocking side's `Drop` before its other fields (channels) go.
    pub(crate) fn abort(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, ABORTED, Ordering::SeqCst, Ordering::SeqCst);
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Watch {
    /// Whether the blocking side committed: only then is a closed channel
    /// the end of the stream.
    pub(crate) fn committed(&self) -> bool {
        self.state.load(Ordering::SeqCst) == COMMITTED
    }

    /// Resolves once the blocking side is gone without committing; never if
    /// it committed.
    pub(crate) async fn aborted(&self) {
        let _ = self.alarm.recv().await;
        if self.committed() {
            std::future::pending::<()>().await;
        }
    }
}
