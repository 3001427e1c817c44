//! [`Relay`]: a waker that remembers it was woken and passes each wake-up
//! on to the waker registered at the time, kept per thread between calls.
//!
//! Two waits use it: a call's first poll, made before the runtime's
//! `block_on` has a waker of its own (`context::in_place`), and a caller
//! that polls its future outside a caller-driven tokio runtime and parks
//! inside it (`adapters::tokio`). In both, the future's waker must outlive
//! the registration of the waker that will wait.
//!
//! The waker slot is an [`AtomicWaker`]: the thread that wakes never holds
//! a lock while it wakes, so the woken thread, back from its wait at once,
//! never sleeps again on that lock (which cost one more thread wake-up per
//! item on a live stream).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::LocalKey;

use atomic_waker::AtomicWaker;

/// A wake-up flag, and the waker to pass wake-ups on to.
#[derive(Default)]
pub(crate) struct Relay {
    woken: AtomicBool,
    target: AtomicWaker,
}

/// A thread's relay and its waker, kept for the thread's next call.
pub(crate) type Slot = Cell<Option<(Arc<Relay>, Waker)>>;

impl Relay {
    /// Forgets the wake-ups so far.
    pub(crate) fn reset(&self) {
        self.woken.store(false, SeqCst);
    }

    /// Whether a wake-up came since the last [`reset`](Relay::reset).
    pub(crate) fn woken(&self) -> bool {
        self.woken.load(SeqCst)
    }

    /// Passes the next wake-up on to `waker`; whether one came already
    /// (then `waker` may not be woken).
    pub(crate) fn relay_to(&self, waker: &Waker) -> bool {
        self.target.register(waker);
        self.woken()
    }

    /// Stops passing wake-ups on.
    pub(crate) fn clear(&self) {
        drop(self.target.take());
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        self.target.wake();
    }
}

/// A thread's relay, taken out of its slot (a fresh one if the slot is
/// empty: a wait nested in another), reset, and put back cleared when
/// dropped, even by a panic.
pub(crate) struct Taken {
    /// Always `Some` until dropped.
    pair: Option<(Arc<Relay>, Waker)>,
    home: &'static LocalKey<Slot>,
}

impl Taken {
    pub(crate) fn from(home: &'static LocalKey<Slot>) -> Taken {
        let (relay, waker) = home.try_with(Cell::take).ok().flatten().unwrap_or_else(|| {
            let relay = Arc::new(Relay::default());
            let waker = Waker::from(Arc::clone(&relay));
            (relay, waker)
        });
        relay.reset();
        Taken {
            pair: Some((relay, waker)),
            home,
        }
    }

    pub(crate) fn relay(&self) -> &Relay {
        &self.pair.as_ref().expect("taken").0
    }

    /// The waker that wakes the relay.
    pub(crate) fn waker(&self) -> &Waker {
        &self.pair.as_ref().expect("taken").1
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some((relay, waker)) = self.pair.take() {
            // No wake-up of a finished wait may reach a waker of the next.
            relay.clear();
            let _ = self.home.try_with(|slot| slot.set(Some((relay, waker))));
        }
    }
}
