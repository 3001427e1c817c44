//! [`BlockingIter`]: any async [`Stream`] as a blocking [`Iterator`].

use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use std::sync::Arc;

use async_channel::{Receiver, Sender, TryRecvError, TrySendError};
use event_listener::Event;
use futures_lite::{future, FutureExt, Stream, StreamExt};

use crate::context;
use crate::error::PanicPayload;
use crate::wait::{backoff, block_on_deadline};
use crate::Error;

/// What crosses from the stream's loop thread to the consumer.
pub(crate) enum Msg<T> {
    Items(Vec<T>),
    Panic(PanicPayload),
}

/// A blocking [`Iterator`] over an async stream running on a bridge's loop
/// thread. Made by [`Bridge::iter`](crate::Bridge::iter).
///
/// - **Live**: an item reaches the consumer as soon as the stream yields it;
///   only items the stream already had ready travel together.
/// - **Bounded**: the stream stalls when the consumer does (see
///   [`Builder::stream_capacity`](crate::Builder::stream_capacity)).
/// - **Cancelled on drop**: the stream is dropped on its loop thread
///   promptly, even while it is waiting, and the thread is freed.
/// - **Panics resume** in [`next`](Iterator::next) with their payload.
/// - **Fused**: after `None` (or a panic), `next` returns `None` for good.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
/// use futures_lite::stream;
///
/// let bridge = Bridge::new(Pollster);
/// let mut it = bridge.iter(|| stream::iter(1..=3));
/// assert_eq!(it.next(), Some(1));
/// assert_eq!(it.collect::<Vec<_>>(), [2, 3]);
/// ```
pub struct BlockingIter<T> {
    rx: Option<Receiver<Msg<T>>>,
    buf: std::vec::IntoIter<T>,
    flow: Arc<Flow>,
}

/// Wakes a producer stalled on a full channel only once the consumer has
/// drained it down to `low` batches, so that each wake-up refills several
/// batches instead of one.
struct Flow {
    room: Event,
    low: usize,
}

/// The producer's end: where a stream's items go.
pub(crate) struct Producer<T> {
    tx: Sender<Msg<T>>,
    batch: usize,
    flow: Arc<Flow>,
}

impl<T> Producer<T> {
    /// Sends `msg`; when the channel is full, waits for the consumer to
    /// drain it to the low-water mark. `Err` if the consumer left.
    async fn send(&self, mut msg: Msg<T>) -> Result<(), ()> {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => return Err(()),
                Err(TrySendError::Full(back)) => {
                    msg = back;
                    // A consumer that is keeping up frees a slot within
                    // microseconds: look again before parking this thread.
                    if backoff(|| self.tx.is_full() && !self.tx.is_closed()) {
                        continue;
                    }
                    let listener = self.flow.room.listen();
                    if self.tx.len() > self.flow.low && !self.tx.is_closed() {
                        listener.await;
                    }
                }
            }
        }
    }
}

/// Makes the consumer's and the producer's ends for a stream capacity.
pub(crate) fn channel<T>(capacity: usize) -> (BlockingIter<T>, Producer<T>) {
    let batch = (capacity / 8).max(1);
    let batches = (capacity.saturating_sub(batch) / batch).max(1);
    let (tx, rx) = async_channel::bounded(batches);
    let flow = Arc::new(Flow {
        room: Event::new(),
        low: batches / 2,
    });
    let iter = BlockingIter {
        rx: Some(rx),
        buf: Vec::new().into_iter(),
        flow: Arc::clone(&flow),
    };
    (iter, Producer { tx, batch, flow })
}

/// Drives the stream, sends what it yields, stops when the consumer leaves.
///
/// A panic (of `make`, of the stream, or of its destructor once it ended) is
/// sent after the items that were ready before it.
pub(crate) async fn produce<M, S>(make: M, producer: Producer<S::Item>)
where
    M: FnOnce() -> S,
    S: Stream,
{
    let tx = &producer.tx;
    let batch = producer.batch;
    let pump = async {
        let mut stream = match catch_unwind(AssertUnwindSafe(make)) {
            Ok(stream) => Box::pin(stream),
            Err(payload) => return Some(payload),
        };
        let panicked = loop {
            let first = match AssertUnwindSafe(stream.next()).catch_unwind().await {
                Ok(Some(item)) => item,
                Ok(None) => break None,
                Err(payload) => break Some(payload),
            };
            let mut items = Vec::with_capacity(batch.min(16));
            items.push(first);
            // Take what is ready now; never wait to fill a batch.
            let mut ended = None;
            while items.len() < batch {
                match future::poll_once(AssertUnwindSafe(stream.next()).catch_unwind()).await {
                    Some(Ok(Some(item))) => items.push(item),
                    Some(Ok(None)) => ended = Some(None),
                    Some(Err(payload)) => ended = Some(Some(payload)),
                    None => break,
                }
                if ended.is_some() {
                    break;
                }
            }
            if producer.send(Msg::Items(items)).await.is_err() {
                // The consumer left; the stream is dropped with this future.
                return None;
            }
            if let Some(end) = ended {
                break end;
            }
        };
        // Drop the stream here, where a panic of its destructor can still
        // reach the consumer.
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(stream)));
        panicked.or(dropped.err())
    };
    let pumped = async { Some(pump.await) };
    let left = async {
        tx.closed().await;
        None
    };
    // If the consumer leaves first, the pump (and the stream it owns) is
    // dropped at the end of this statement, on this thread.
    if let Some(Some(payload)) = pumped.or(left).await {
        let _ = producer.send(Msg::Panic(payload)).await;
    }
}

impl<T> BlockingIter<T> {
    /// Waits at most `timeout` for the next item.
    ///
    /// Returns `Ok(Some(item))`, or `Ok(None)` at the end of the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use std::time::Duration;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let mut it = bridge.iter(|| futures_lite::stream::pending::<u8>());
    /// let err = it.next_timeout(Duration::from_millis(20)).unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if no item came in time; the iterator stays usable.
    ///
    /// # Panics
    ///
    /// Resumes a panic of the stream, as [`next`](Iterator::next) does.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<T>, Error> {
        if let Some(item) = self.buf.next() {
            return Ok(Some(item));
        }
        let deadline = Instant::now().checked_add(timeout);
        let Some(rx) = &self.rx else {
            return Ok(None);
        };
        let got = match rx.try_recv() {
            Ok(msg) => Some(Ok(msg)),
            Err(TryRecvError::Closed) => Some(Err(())),
            Err(TryRecvError::Empty) => {
                let wait = || block_on_deadline(rx.recv(), deadline).map(|r| r.map_err(|_| ()));
                context::wait(wait)
            }
        };
        match got {
            None => Err(Error::Timeout(timeout)),
            Some(msg) => Ok(self.take(msg.ok())),
        }
    }

    /// Number of items received and not yet returned; they are returned
    /// without blocking.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the stream has ended (or panicked, or been cancelled) and every
    /// item was returned.
    pub fn is_finished(&self) -> bool {
        self.rx.is_none() && self.buf.len() == 0
    }

    fn take(&mut self, msg: Option<Msg<T>>) -> Option<T> {
        if let Some(rx) = &self.rx {
            if rx.len() <= self.flow.low {
                self.flow.room.notify(1);
            }
        }
        match msg {
            Some(Msg::Items(items)) => {
                self.buf = items.into_iter();
                self.buf.next()
            }
            Some(Msg::Panic(payload)) => {
                self.rx = None;
                resume_unwind(payload)
            }
            None => {
                self.rx = None;
                None
            }
        }
    }
}

/// Tries to receive for a few microseconds before the caller parks: a
/// producer that is filling the next batch, or was just woken to, usually
/// delivers sooner than a park and a wake-up would take.
fn try_recv_soon<T>(rx: &Receiver<T>) -> Result<T, TryRecvError> {
    backoff(|| rx.is_empty() && !rx.is_closed());
    rx.try_recv()
}

impl<T> Iterator for BlockingIter<T> {
    type Item = T;

    /// The next item, blocking until the stream yields it.
    ///
    /// # Panics
    ///
    /// Resumes a panic of the stream (its factory, its `poll_next`, or its
    /// destructor once it has ended) with the original payload; the iterator
    /// is finished afterwards.
    fn next(&mut self) -> Option<T> {
        if let Some(item) = self.buf.next() {
            return Some(item);
        }
        let rx = self.rx.as_ref()?;
        let msg = match try_recv_soon(rx) {
            Ok(msg) => Some(msg),
            Err(TryRecvError::Closed) => None,
            Err(TryRecvError::Empty) => context::wait(|| rx.recv_blocking().ok()),
        };
        self.take(msg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.rx.is_none() {
            (self.buf.len(), Some(self.buf.len()))
        } else {
            (self.buf.len(), None)
        }
    }
}

impl<T> std::iter::FusedIterator for BlockingIter<T> {}

impl<T> fmt::Debug for BlockingIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingIter")
            .field("buffered", &self.buf.len())
            .field("finished", &self.is_finished())
            .finish()
    }
}
