//! What a call carries from the caller's thread to the thread that runs it.
//!
//! With the `tracing` feature: the caller's current span and its dispatcher
//! (the subscriber), so that what the future records lands where the
//! caller's own events do, a thread-scoped subscriber
//! (`tracing::subscriber::with_default`, common in tests) included. Calls
//! that run on the caller's thread carry nothing: they already run there.

/// The caller's tracing context, to be re-entered on another thread.
#[cfg(feature = "tracing")]
pub(crate) struct Carry {
    dispatch: tracing::Dispatch,
    span: tracing::Span,
}

#[cfg(feature = "tracing")]
impl Carry {
    /// Takes the current thread's dispatcher and span.
    pub(crate) fn capture() -> Self {
        Carry {
            dispatch: tracing::dispatcher::get_default(Clone::clone),
            span: tracing::Span::current(),
        }
    }

    /// Runs `f` with the captured dispatcher as default and the span entered.
    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        tracing::dispatcher::with_default(&self.dispatch, || self.span.in_scope(f))
    }
}

/// Nothing to carry without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) struct Carry;

#[cfg(not(feature = "tracing"))]
impl Carry {
    pub(crate) fn capture() -> Self {
        Carry
    }

    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        f()
    }
}
