//! [`BlockingSink`]: items sent from blocking code into an async consumer.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use futures_lite::{future, Stream};

use crate::error::Payload;
use crate::local::{BlockOn, Exec};
use crate::{wait, Bridge, Carry, Error, Runtime};

/// A bounded sender from blocking code into an async consumer running on a
/// bridge's loop thread. Made by [`Bridge::sink`].
///
/// - **Bounded**: [`send`](Self::send) blocks while `capacity` items wait for
///   the consumer.
/// - **Ordered, nothing lost**: the consumer receives every item sent, in
///   order; an item the consumer can no longer take comes back in the
///   [`SendError`].
/// - [`close`](Self::close) ends the consumer's stream and returns the
///   consumer's output once it finished: its last error, a websocket's close
///   result. A panic of the consumer resumes there.
/// - **Drop**: without `close`, the stream ends and the consumer finishes in
///   the background. A sink dropped while its thread unwinds from a panic
///   cancels the consumer instead (dropped at its next `.await`, the items
///   still queued with it).
#[must_use = "a sink does nothing unless items are sent into it"]
pub struct BlockingSink<T, O> {
    items: Option<Sender<T>>,
    done: Receiver<Result<O, Payload>>,
    /// A message here cancels the consumer.
    cancel: Sender<()>,
    unstarted: Option<Error>,
}

/// The stream of items a [`BlockingSink`]'s consumer receives: every item
/// sent, in order, ending when the sink is closed or dropped. It is `Unpin`,
/// so `items.next().await` works as it is.
#[derive(Debug)]
pub struct SinkStream<T> {
    items: Pin<Box<Receiver<T>>>,
}

impl<T> Stream for SinkStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.items.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.items.len(), None)
    }
}

/// An item the consumer of a [`BlockingSink`] can no longer take (it has
/// finished, panicked, or could not start), given back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending into a sink whose consumer has finished")
    }
}

impl<T> StdError for SendError<T> {}

impl<R: Runtime> Bridge<R> {
    /// Runs the consumer made by `make` on a loop thread and returns a
    /// blocking sender into it: `make` gets the [`SinkStream`] of everything
    /// sent, at most `capacity` items ahead of the consumer.
    ///
    /// The consumer is any future: one that writes each item to a websocket,
    /// a Kafka producer, a channel of an async program, a
    /// `futures::Sink` (`items.map(Ok).forward(sink)`). It may be `!Send`:
    /// `make` is called on the loop thread, where it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::StreamExt;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let sink = bridge.sink(4, |mut items| async move {
    ///     let mut total = 0;
    ///     while let Some(n) = items.next().await {
    ///         total += n;
    ///     }
    ///     total
    /// });
    /// for n in 1..=10 {
    ///     sink.send(n).unwrap();
    /// }
    /// assert_eq!(sink.close(), 55);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    #[track_caller]
    pub fn sink<T, M, F>(&self, capacity: usize, make: M) -> BlockingSink<T, F::Output>
    where
        T: Send + 'static,
        M: FnOnce(SinkStream<T>) -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        assert!(
            capacity > 0,
            "executor-bridge: a sink's capacity must be at least 1"
        );
        let (items, items_rx) = async_channel::bounded(capacity);
        let (done_tx, done) = async_channel::bounded(1);
        let (cancel, cancelled) = async_channel::bounded::<()>(1);
        let carry = Carry::capture();
        let work = Box::new(move |rt: &dyn BlockOn| {
            let stream = SinkStream {
                items: Box::pin(items_rx),
            };
            let out = carry.run(|| {
                catch_unwind(AssertUnwindSafe(|| {
                    let mut out = None;
                    {
                        let mut fut = std::pin::pin!(async {
                            let run = async { Some(make(stream).await) };
                            // A cancel is a message; the channel closing is
                            // not one.
                            let stop = async {
                                if cancelled.recv().await.is_err() {
                                    future::pending::<()>().await;
                                }
                                None
                            };
                            out = future::or(stop, run).await;
                        });
                        rt.block_on_dyn(fut.as_mut());
                    }
                    out
                }))
            });
            let out = match out {
                Ok(Some(out)) => Ok(out),
                Ok(None) => return,
                Err(payload) => Err(payload),
            };
            let _ = done_tx.try_send(out);
        });
        let unstarted = self
            .start()
            .and_then(|()| Exec::submit(&**self.pool(), work))
            .err();
        BlockingSink {
            items: Some(items),
            done,
            cancel,
            unstarted,
        }
    }
}

impl<T, O> BlockingSink<T, O> {
    /// Sends `item` to the consumer, waiting while `capacity` items wait for
    /// it.
    ///
    /// # Errors
    ///
    /// Gives `item` back if the consumer has finished (call
    /// [`close`](Self::close) to see why), panicked, or could not start.
    ///
    /// # Blocking
    ///
    /// While the consumer is `capacity` items behind.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        let Some(items) = &self.items else {
            return Err(SendError(item));
        };
        match items.try_send(item) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(item)) => Err(SendError(item)),
            Err(async_channel::TrySendError::Full(item)) => {
                match wait::block_on(items.send(item), None) {
                    Some(Ok(())) => Ok(()),
                    Some(Err(async_channel::SendError(item))) => Err(SendError(item)),
                    None => unreachable!("a wait without a deadline completes"),
                }
            }
        }
    }

    /// Whether the consumer has stopped taking items.
    pub fn is_closed(&self) -> bool {
        self.items.as_ref().is_none_or(Sender::is_closed)
    }

    /// Ends the consumer's stream and returns the consumer's output once it
    /// has finished.
    ///
    /// # Panics
    ///
    /// Resumes a panic of the consumer (or of `make`) with its payload;
    /// panics with "executor-bridge: failed to start a loop thread: ..." if
    /// the consumer could not start.
    ///
    /// # Blocking
    ///
    /// Until the consumer has finished.
    #[track_caller]
    pub fn close(mut self) -> O {
        if let Some(e) = self.unstarted.take() {
            e.raise()
        }
        self.items = None;
        match wait::block_on(self.done.recv(), None) {
            Some(Ok(Ok(out))) => out,
            Some(Ok(Err(payload))) => resume_unwind(payload),
            _ => Error::lost().raise(),
        }
    }
}

impl<T, O> Drop for BlockingSink<T, O> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.cancel.try_send(());
        }
    }
}

impl<T, O> fmt::Debug for BlockingSink<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingSink")
            .field("queued", &self.items.as_ref().map_or(0, Sender::len))
            .field("closed", &self.is_closed())
            .finish()
    }
}
