//! [`BlockingSink`]: items sent from blocking code into an async consumer.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use futures_lite::{future, FutureExt, Stream};

use crate::ending::{self, Closer, Watch};
use crate::error::Payload;
use crate::local::{BlockOn, Exec};
use crate::pool::{lock, Ticket};
use crate::{wait, Bridge, Carry, Error, Runtime};

/// A bounded sender from blocking code into an async consumer running on a
/// bridge's loop thread. Made by [`Bridge::sink`].
///
/// - **Bounded**: [`send`](Self::send) blocks while `capacity` items wait for
///   the consumer.
/// - **Ordered, nothing lost silently**: `send` returns `Ok` once the item is
///   queued for the consumer, which receives the items in order for as long
///   as it reads. An item sent after the consumer finished comes back in the
///   [`SendError`]; items queued that it left unread when it returned come
///   back from [`close_with_unsent`](Self::close_with_unsent).
/// - **`close` commits, a drop aborts.** [`close`](Self::close) ends the
///   consumer's stream and returns the consumer's output once it finished
///   (its last error, a websocket's close result); a panic of the consumer
///   resumes there. A sink dropped without `close`, by a `?` that returned
///   early as much as by a panic, cancels the consumer at once (dropped where
///   it runs, at its next `.await`): its stream never ends cleanly, so a
///   consumer never commits half of what was meant.
#[must_use = "a sink's consumer finishes only through `close`; dropped, it is cancelled"]
pub struct BlockingSink<T, O> {
    exec: Arc<dyn Exec>,
    /// The consumer's work: still queued when the sink is dropped, it is
    /// taken back (its factory never called).
    ticket: Option<Ticket>,
    items: Option<Sender<T>>,
    done: Receiver<Finished<T, O>>,
    /// Commits in `close`; dropped uncommitted, cancels the consumer.
    closer: Closer,
    unstarted: Option<Error>,
    /// Drops what the consumer left where it ran ([`Exec::dispose`]).
    dispose: fn(&dyn Exec, Left<T, O>),
}

/// What a finished consumer left to drop: its output, unread items.
type Left<T, O> = (Option<O>, Vec<T>);

/// What a consumer that finished leaves: its output (or panic), and the
/// items it did not read.
type Finished<T, O> = (Result<O, Payload>, Vec<T>);

/// The stream of items a [`BlockingSink`]'s consumer receives: every item
/// sent, in order. It is `Unpin`, so `items.next().await` works as it is.
///
/// It ends (`None`) only once the sink was [closed](BlockingSink::close). A
/// sink dropped without `close` aborts instead: the consumer is cancelled,
/// and this stream, wherever it went, never ends, so nothing takes an abort
/// for an end. Handed to another task that must see the abort (a request
/// body), use [`results`](Self::results), which ends with an error there.
#[derive(Debug)]
pub struct SinkStream<T> {
    items: Pin<Box<Receiver<T>>>,
    watch: Watch,
    /// Where the items sent and never read go when the stream is dropped:
    /// the consumer's unsent items, if it returns then.
    left: Arc<Mutex<Vec<T>>>,
}

impl<T> Drop for SinkStream<T> {
    /// Later sends fail and give their item back, as they would with the
    /// channel's only receiver gone; the items sent and never read are kept
    /// for [`BlockingSink::close_with_unsent`] (or dropped where the stream
    /// is, if the consumer has returned already).
    fn drop(&mut self) {
        self.items.close();
        let mut left = lock(&self.left);
        while let Ok(item) = self.items.try_recv() {
            left.push(item);
        }
    }
}

impl<T> Stream for SinkStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.items.as_mut().poll_next(cx) {
            Poll::Ready(None) if !self.watch.committed() => Poll::Pending,
            polled => polled,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.items.len(), None)
    }
}

impl<T: Send + 'static> SinkStream<T> {
    /// The same items as `Ok`, ending with `None` once the sink was closed,
    /// or with one [`io::ErrorKind::ConnectionAborted`] error if it was
    /// dropped without `close` (or the consumer returned before the end):
    /// the shape of a request body (`reqwest::Body::wrap_stream`, hyper's
    /// `StreamBody` after a `map`), which then fails instead of ending short.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::StreamExt;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let sink = bridge.sink(4, |items| async move {
    ///     // Another task would get `body`; this one just reads it.
    ///     let mut body = items.results();
    ///     let mut got = Vec::new();
    ///     while let Some(chunk) = body.next().await {
    ///         got.push(chunk?);
    ///     }
    ///     Ok::<_, std::io::Error>(got.concat())
    /// });
    /// sink.send(b"half a ".to_vec()).unwrap();
    /// sink.send(b"body".to_vec()).unwrap();
    /// assert_eq!(sink.close().unwrap(), b"half a body");
    /// ```
    pub fn results(self) -> impl Stream<Item = io::Result<T>> + Send + Unpin + 'static {
        let mut this = Some(self);
        futures_lite::stream::poll_fn(move |cx| {
            let Some(items) = this.as_mut() else {
                return Poll::Ready(None);
            };
            match items.items.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => Poll::Ready(Some(Ok(item))),
                Poll::Ready(None) => {
                    let committed = items.watch.committed();
                    this = None;
                    if committed {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Err(aborted())))
                    }
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

/// The error a [`SinkStream::results`] stream ends with after an abort.
fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the blocking side dropped its sink without closing it",
    )
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
    /// `futures::Sink` (`items.map(Ok).forward(sink)`), a request whose body
    /// is [`items.results()`](SinkStream::results). It may be `!Send`: `make`
    /// is called on the loop thread, where it runs.
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
    /// Panics if `capacity` is 0. The channel makes room for `capacity`
    /// items up front, as `Vec::with_capacity` does: a capacity too large to
    /// allocate fails as that does.
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
        let (closer, watch) = ending::ending();
        let carry = Carry::capture();
        let work = Box::new(move |rt: &dyn BlockOn| {
            carry.run(|| {
                let fut = std::pin::pin!(async move {
                    let left = Arc::new(Mutex::new(Vec::new()));
                    let stream = SinkStream {
                        items: Box::pin(items_rx.clone()),
                        watch: watch.clone(),
                        left: Arc::clone(&left),
                    };
                    let run = async { Some(make(stream).await) };
                    let stop = async {
                        watch.aborted().await;
                        None
                    };
                    let out = match AssertUnwindSafe(future::or(stop, run)).catch_unwind().await {
                        Ok(Some(out)) => Ok(out),
                        // Aborted: nobody waits for an answer; what is left
                        // is dropped here.
                        Ok(None) => return,
                        Err(payload) => Err(payload),
                    };
                    // A consumer that returned with its stream: the stream
                    // ends, later sends fail and give their item back, and
                    // the items it left are the caller's to take. A consumer
                    // that handed its stream to someone else (a request
                    // body) leaves the stream to them: it ends with `close`.
                    if items_rx.receiver_count() == 1 {
                        items_rx.close();
                        let mut left = lock(&left);
                        while let Ok(item) = items_rx.try_recv() {
                            left.push(item);
                        }
                    }
                    drop(items_rx);
                    let unsent = std::mem::take(&mut *lock(&left));
                    if let Err(undelivered) = done_tx.try_send((out, unsent)) {
                        // The sink is gone: dropped here, in the runtime's
                        // context.
                        let _ = catch_unwind(AssertUnwindSafe(move || drop(undelivered)));
                    }
                });
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| rt.block_on_dyn(fut))) {
                    // The runtime itself failed the consumer.
                    let _ = payload;
                }
            })
        });
        let (ticket, unstarted) = match self
            .start()
            .and_then(|()| Exec::submit(&**self.pool(), work))
        {
            Ok(ticket) => (Some(ticket), None),
            Err(e) => (None, Some(e)),
        };
        BlockingSink {
            exec: self.pool().clone(),
            ticket,
            items: Some(items),
            done,
            closer,
            unstarted,
            dispose: |exec, left| exec.dispose(Box::new(left)),
        }
    }
}

impl<T, O> BlockingSink<T, O> {
    /// Sends `item` to the consumer, waiting while `capacity` items wait for
    /// it. `Ok` means the item is queued for the consumer.
    ///
    /// # Errors
    ///
    /// Gives `item` back if the consumer has finished (call
    /// [`close`](Self::close) to see why), panicked, or could not start.
    ///
    /// # Panics
    ///
    /// The misuse panics of [`Bridge::run`] (a task of the bridge's own
    /// caller-driven runtime, `SmolExecutor`'s own thread).
    ///
    /// # Blocking
    ///
    /// While the consumer is `capacity` items behind.
    #[track_caller]
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        let Some(items) = &self.items else {
            return Err(SendError(item));
        };
        self.exec.check();
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

    /// Commits: ends the consumer's stream and returns the consumer's output
    /// once it has finished. Items it left unread (it returned before the
    /// end) are dropped where it ran; to have them back, use
    /// [`close_with_unsent`](Self::close_with_unsent).
    ///
    /// # Panics
    ///
    /// Resumes a panic of the consumer (or of `make`) with its payload;
    /// panics with "executor-bridge: failed to start a loop thread: ..." if
    /// the consumer could not start; the misuse panics of [`Bridge::run`].
    ///
    /// # Blocking
    ///
    /// Until the consumer has finished.
    #[track_caller]
    pub fn close(self) -> O {
        let (exec, dispose) = (Arc::clone(&self.exec), self.dispose);
        let (out, unsent) = self.close_with_unsent();
        if !unsent.is_empty() {
            dispose(&*exec, (None, unsent));
        }
        out
    }

    /// Like [`close`](Self::close), and gives back the items that `send`
    /// queued and the consumer left unread, in order, when it returned with
    /// its stream. (A consumer that handed its stream to another task, a
    /// request body, left the stream to that task: the stream ends there
    /// with `close`, and what it leaves unread is dropped where it is.)
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::StreamExt;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let (first, rest) = async_channel::bounded(1);
    /// let sink = bridge.sink(8, move |mut items| async move {
    ///     let taken = items.next().await; // one, then it stops reading
    ///     let _ = rest.recv().await;
    ///     taken
    /// });
    /// for n in 1..=3 {
    ///     sink.send(n).unwrap();
    /// }
    /// first.send_blocking(()).unwrap();
    /// let (taken, unsent) = sink.close_with_unsent();
    /// assert_eq!((taken, unsent), (Some(1), vec![2, 3]));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`close`](Self::close).
    #[track_caller]
    pub fn close_with_unsent(mut self) -> (O, Vec<T>) {
        if let Some(e) = self.unstarted.take() {
            e.raise()
        }
        self.exec.check();
        self.closer.commit();
        self.items = None;
        match wait::block_on(self.done.recv(), None) {
            Some(Ok((Ok(out), unsent))) => (out, unsent),
            Some(Ok((Err(payload), unsent))) => {
                (self.dispose)(&*self.exec, (None, unsent));
                resume_unwind(payload)
            }
            _ => Error::lost().raise(),
        }
    }
}

/// Bytes written into a sink of byte chunks: each `write` sends a copy of
/// its buffer as one item (wrap the sink in a [`std::io::BufWriter`] to send
/// fewer, bigger chunks). With [`SinkStream::results`] as a request body, a
/// blocking program streams an upload that a `?` or a panic aborts instead
/// of ending short ([the guide's recipe](crate::guide#an-upload-whose-body-blocking-code-writes)).
impl<T: From<Vec<u8>>, O> io::Write for BlockingSink<T, O> {
    /// # Errors
    ///
    /// [`io::ErrorKind::BrokenPipe`] once the consumer has finished.
    ///
    /// # Blocking
    ///
    /// As [`send`](Self::send).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.send(T::from(buf.to_vec())) {
            Ok(()) => Ok(buf.len()),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the sink's consumer has finished",
            )),
        }
    }

    /// Nothing to do: each `write` has handed its bytes over.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T, O> Drop for BlockingSink<T, O> {
    fn drop(&mut self) {
        // Decided before the items' channel closes (see `ending`).
        self.closer.abort();
        // What a consumer that finished on its own left is dropped where it
        // ran.
        self.done.close();
        if let Ok((out, unsent)) = self.done.try_recv() {
            (self.dispose)(&*self.exec, (out.ok(), unsent));
        }
        if let Some(ticket) = self.ticket {
            self.exec.withdraw(ticket);
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
