//! [`Relay`]: a waker that remembers it was woken and passes every wake-up
//! on to the waker registered at the time, kept per thread between calls.
//!
//! Two waits use it: a call's first poll, made before the runtime's
//! `block_on` has a waker of its own (`context::in_place`), and a caller
//! that polls its future outside a caller-driven tokio runtime and parks
//! inside it (`adapters::tokio`). In both, the future's waker must outlive
//! the registration of the waker that will wait, and a future may keep the
//! waker of its first poll for good: every wake-up is passed on, not only
//! the first.
//!
//! The thread that wakes holds the slot's lock only to clone the target
//! out, and wakes it after: the woken thread, back from its wait at once,
//! never sleeps again on that lock (which cost one more thread wake-up per
//! item on a live stream). Registering never wakes anything, so a runtime's
//! waker runs on the thread that woke the relay, never on the caller's.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::thread::LocalKey;

use crate::pool::lock;

/// A wake-up flag, and the waker to pass wake-ups on to.
#[derive(Default)]
pub(crate) struct Relay {
    woken: AtomicBool,
    target: Mutex<Option<Waker>>,
}

/// A thread's relay and its waker, kept for the thread's next wait.
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

    /// Passes the wake-ups from now on to `waker`; whether one came already
    /// (then `waker` may not be woken for it).
    pub(crate) fn relay_to(&self, waker: &Waker) -> bool {
        {
            let mut target = lock(&self.target);
            if !target.as_ref().is_some_and(|t| t.will_wake(waker)) {
                *target = Some(waker.clone());
            }
        }
        self.woken()
    }

    /// Stops passing wake-ups on.
    pub(crate) fn clear(&self) {
        let target = lock(&self.target).take();
        drop(target);
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        let target = lock(&self.target).clone();
        if let Some(target) = target {
            target.wake();
        }
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
            relay.clear();
            // Kept for the next wait only if no clone of its waker is left
            // (the pair holds two counts): a waker a future kept, woken
            // later, would otherwise wake the next wait of this thread.
            if Arc::strong_count(&relay) == 2 {
                let _ = self.home.try_with(|slot| slot.set(Some((relay, waker))));
            }
        }
    }
}
