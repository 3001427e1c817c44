//! [`BlockingIter`]: an async [`Stream`] as a blocking [`Iterator`].

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::{future, FutureExt, Stream, StreamExt};

use crate::context::{self, Placement};
use crate::error::Payload;
use crate::local::{self, Away, Exec};
use crate::pool::Ticket;
use crate::{wait, Bridge, Carry, Error, Runtime};

/// A blocking [`Iterator`] over an async stream. Made by
/// [`Bridge::iter_direct`] (a `Send` stream polled by `next` itself) or
/// [`Bridge::iter`] (any stream, run on a loop thread).
///
/// - **Live**: an item reaches the consumer as soon as the stream yields it.
/// - **Pulled**: the stream is polled while `next` waits, and (for
///   [`iter`](Bridge::iter)) at most
///   [`stream_capacity`](crate::Builder::stream_capacity) items ahead; no
///   item is taken from its source that the consumer did not ask for, unless
///   a capacity says so.
/// - **Cancelled on drop**: the stream is dropped promptly, even while it is
///   waiting, where it runs, in its runtime's context; so are the items
///   read ahead and not returned.
/// - **Nothing lost silently**: `next` returns `None` only when the stream
///   ended; a panic of the stream resumes in `next` with its payload, and a
///   stream whose loop thread went away panics there with
///   "executor-bridge: the loop thread went away without an answer".
/// - **Fused**: after `None`, `next` returns `None` for good. After a panic
///   or a failure, every later call fails too (`next` panics with
///   "executor-bridge: failed in an earlier call: ...", `next_timeout`
///   returns that error), so that a broken stream is never taken for one
///   that ended.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
/// use futures_lite::stream;
///
/// let bridge = Bridge::new(Pollster);
/// let mut it = bridge.iter_direct(|| stream::iter(1..=3));
/// assert_eq!(it.next(), Some(1));
/// assert_eq!(it.collect::<Vec<_>>(), [2, 3]);
/// ```
#[must_use = "a stream bridged as an iterator does nothing unless read"]
pub struct BlockingIter<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    /// Polled by the consumer.
    Direct(Direct<T>),
    /// On a loop thread, items through a channel.
    Pipe(Pipe<T>),
    /// Could not start: `next` reports it.
    Failed(Error),
    /// Failed (the stream panicked, could not start, or its loop thread went
    /// away): every later call fails again, with this message.
    Broken(String),
    Done,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// A `Send` stream polled in `next`, moved to a loop thread for the items
/// that cannot be waited for on the caller's thread.
struct Direct<T> {
    exec: Arc<dyn Exec>,
    /// `None` while away on a loop thread.
    stream: Option<BoxStream<T>>,
    away: Option<Away<dyn Stream<Item = T> + Send, Option<T>>>,
    dispose: Disposer<BoxStream<T>>,
}

/// Drops a user's value where the bridge would run it ([`Exec::dispose`]);
/// made where the value's type is known to be `'static`.
type Disposer<V> = fn(&dyn Exec, V);

fn dispose<V: Send + 'static>(exec: &dyn Exec, value: V) {
    exec.dispose(Box::new(value));
}

/// What the loop thread sends the consumer.
enum Msg<T> {
    Item(T),
    Items(Vec<T>),
    End,
    Panic(Payload),
}

/// The consumer's end of a stream running on a loop thread.
struct Pipe<T> {
    exec: Arc<dyn Exec>,
    /// The stream's work: still queued when the consumer leaves, it is taken
    /// back.
    ticket: Ticket,
    items: Receiver<Msg<T>>,
    /// How many more items the consumer asks for.
    demand: Sender<usize>,
    buf: VecDeque<T>,
    /// Tokens sent and not yet answered with an item.
    asked: usize,
    read_ahead: usize,
    dispose: Disposer<Vec<T>>,
}

impl<R: Runtime> Bridge<R> {
    /// Turns the `Send` stream made by `make` into a blocking [`Iterator`]
    /// that polls it itself: each [`next`](Iterator::next) runs like
    /// [`run`](Bridge::run), on the caller's thread where that is safe.
    ///
    /// No loop thread, no channel, nothing read ahead: an item that arrives
    /// while `next` waits wakes the consumer once, as a plain channel does,
    /// and the stream is polled only inside `next`, as
    /// `futures::executor::block_on_stream` does. `make` runs at the first
    /// `next`, where the stream will be polled. Where `run` would use a loop
    /// thread, the stream is sent there for that item and back.
    ///
    /// For a `!Send` stream, or to let the stream run ahead of a slow
    /// consumer, use [`iter`](Bridge::iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let (tx, rx) = async_channel::bounded(1);
    /// std::thread::spawn(move || {
    ///     for word in ["live", "word", "by", "word"] {
    ///         tx.send_blocking(word).unwrap();
    ///     }
    /// });
    /// let words: Vec<&str> = bridge.iter_direct(move || rx).collect();
    /// assert_eq!(words.join(" "), "live word by word");
    /// ```
    ///
    /// # Panics
    ///
    /// [`next`](Iterator::next) panics as [`run`](Bridge::run) does: it
    /// resumes a panic of `make` or of the stream, and reports a failure to
    /// start the runtime or a loop thread.
    pub fn iter_direct<M, S>(&self, make: M) -> BlockingIter<S::Item>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        let stream: BoxStream<S::Item> = Box::pin(Lazy::new(make));
        BlockingIter {
            inner: Inner::Direct(Direct {
                exec: self.pool().clone(),
                stream: Some(stream),
                away: None,
                dispose,
            }),
        }
    }

    /// Turns the stream made by `make` into a blocking [`Iterator`], the
    /// stream running on a loop thread.
    ///
    /// Any stream, `!Send` too: `make` is called on the loop thread, where the
    /// stream lives until it ends or the iterator is dropped (then it is
    /// dropped there promptly, even while it waits, and the thread is
    /// freed). By default the stream is polled only while `next` waits for
    /// an item; [`Builder::stream_capacity`](crate::Builder::stream_capacity)
    /// lets it run ahead, items travelling in batches of what it had ready.
    ///
    /// For a `Send` stream, [`iter_direct`](Bridge::iter_direct) needs no
    /// thread and wakes one thread per item instead of two.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::{stream, StreamExt};
    /// use std::rc::Rc;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let words: Vec<String> = bridge
    ///     .iter(|| {
    ///         let prefix = Rc::new("#"); // !Send
    ///         stream::iter(1..=3).map(move |n| format!("{prefix}{n}"))
    ///     })
    ///     .collect();
    /// assert_eq!(words, ["#1", "#2", "#3"]);
    /// ```
    ///
    /// # Panics
    ///
    /// [`next`](Iterator::next) resumes a panic of `make` or of the stream,
    /// and panics with "executor-bridge: failed to start a loop thread: ..."
    /// if no loop thread could be started for it.
    pub fn iter<M, S>(&self, make: M) -> BlockingIter<S::Item>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + 'static,
        S::Item: Send + 'static,
    {
        self.pipe(self.stream_capacity(), make)
    }

    /// Starts `make`'s stream on a loop thread, `read_ahead` items ahead of
    /// the consumer at most.
    pub(crate) fn pipe<M, S>(&self, read_ahead: usize, make: M) -> BlockingIter<S::Item>
    where
        M: FnOnce() -> S + Send + 'static,
        S: Stream + 'static,
        S::Item: Send + 'static,
    {
        // Room for every item asked for (each message holds one at least),
        // plus the end.
        let slots = read_ahead.saturating_add(2).min(MAX_SLOTS);
        let (items_tx, items) = async_channel::bounded(slots);
        let (demand, demand_rx) = async_channel::unbounded();
        let carry = Carry::capture();
        let work = Box::new(move |rt: &dyn local::BlockOn| {
            carry.run(|| {
                let mut produce = std::pin::pin!(produce(make, demand_rx, items_tx.clone()));
                if let Err(payload) =
                    catch_unwind(AssertUnwindSafe(|| rt.block_on_dyn(produce.as_mut())))
                {
                    // The runtime itself failed the stream (a shut-down
                    // runtime, a panicking `block_on`).
                    let _ = items_tx.try_send(Msg::Panic(payload));
                }
            })
        });
        let inner = match self
            .start()
            .and_then(|()| Exec::submit(&**self.pool(), work))
        {
            Ok(ticket) => Inner::Pipe(Pipe {
                exec: self.pool().clone(),
                ticket,
                items,
                demand,
                buf: VecDeque::new(),
                asked: 0,
                read_ahead,
                dispose,
            }),
            Err(e) => Inner::Failed(e),
        };
        BlockingIter { inner }
    }
}

/// The most messages a pipe's channel holds; a longer read-ahead travels in
/// bigger batches.
const MAX_SLOTS: usize = 1024;

/// The most items one message carries.
const MAX_BATCH: usize = 256;

pin_project_lite::pin_project! {
    /// A stream made on its first poll, where it will run.
    #[project = LazyProj]
    enum Lazy<M, S> {
        Make { make: Option<M> },
        Stream { #[pin] stream: S },
    }
}

impl<M, S> Lazy<M, S> {
    fn new(make: M) -> Self {
        Lazy::Make { make: Some(make) }
    }
}

impl<M, S> Stream for Lazy<M, S>
where
    M: FnOnce() -> S,
    S: Stream,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if let LazyProj::Make { make } = self.as_mut().project() {
            let make = make.take().expect("a stream is made once");
            self.set(Lazy::Stream { stream: make() });
        }
        match self.project() {
            LazyProj::Stream { stream } => stream.poll_next(cx),
            LazyProj::Make { .. } => unreachable!("made above"),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Lazy::Stream { stream } => stream.size_hint(),
            Lazy::Make { .. } => (0, None),
        }
    }
}

/// Drives the stream on its loop thread: an item for each one asked for, the
/// first awaited, more only if ready; stops when the consumer leaves.
async fn produce<M, S>(make: M, demand: Receiver<usize>, items: Sender<Msg<S::Item>>)
where
    M: FnOnce() -> S,
    S: Stream,
{
    let pump = async {
        let mut stream = match catch_unwind(AssertUnwindSafe(make)) {
            Ok(stream) => Box::pin(stream),
            Err(payload) => return Msg::Panic(payload),
        };
        let mut tokens = 0usize;
        let end = loop {
            if tokens == 0 {
                match demand.recv().await {
                    Ok(n) => tokens = n,
                    // The consumer left; the stream is dropped with `pump`.
                    Err(_) => return Msg::End,
                }
            }
            while let Ok(n) = demand.try_recv() {
                tokens += n;
            }
            let first = match AssertUnwindSafe(stream.next()).catch_unwind().await {
                Ok(Some(item)) => item,
                Ok(None) => break Msg::End,
                Err(payload) => break Msg::Panic(payload),
            };
            tokens -= 1;
            let mut batch = Batch::One(first);
            // Take what is ready now, never waiting to fill a batch.
            let mut ended = None;
            while tokens > 0 && batch.len() < MAX_BATCH {
                match future::poll_once(AssertUnwindSafe(stream.next()).catch_unwind()).await {
                    Some(Ok(Some(item))) => {
                        batch = batch.push(item);
                        tokens -= 1;
                    }
                    Some(Ok(None)) => ended = Some(Msg::End),
                    Some(Err(payload)) => ended = Some(Msg::Panic(payload)),
                    None => break,
                }
                if ended.is_some() {
                    break;
                }
            }
            if items.send(batch.into_msg()).await.is_err() {
                return Msg::End;
            }
            if let Some(end) = ended {
                break end;
            }
        };
        // Drop the stream here, where a panic of its destructor can still
        // reach the consumer.
        match catch_unwind(AssertUnwindSafe(move || drop(stream))) {
            Ok(()) => end,
            Err(payload) => match end {
                Msg::Panic(first) => Msg::Panic(first),
                _ => Msg::Panic(payload),
            },
        }
    };
    let left = async {
        items.closed().await;
        None
    };
    // If the consumer leaves first, the pump (and the stream it owns) is
    // dropped at the end of this statement, on this thread; a consumer gone
    // before this starts (the work waited in the queue) leaves `make` uncalled.
    if let Some(end) = future::or(left, async { Some(pump.await) }).await {
        let _ = items.send(end).await;
    }
}

/// A batch in the making: one item needs no `Vec`.
enum Batch<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Batch<T> {
    fn len(&self) -> usize {
        match self {
            Batch::One(_) => 1,
            Batch::Many(items) => items.len(),
        }
    }

    fn push(self, item: T) -> Self {
        match self {
            Batch::One(first) => {
                let mut items = Vec::with_capacity(16);
                items.push(first);
                items.push(item);
                Batch::Many(items)
            }
            Batch::Many(mut items) => {
                items.push(item);
                Batch::Many(items)
            }
        }
    }

    fn into_msg(self) -> Msg<T> {
        match self {
            Batch::One(item) => Msg::Item(item),
            Batch::Many(items) => Msg::Items(items),
        }
    }
}

impl<T> Pipe<T> {
    /// The next item, waiting until `deadline`; `Err` for a panic or a lost
    /// loop thread, `Ok(None)` at the end, timeout as `Err(timeout)` by the
    /// caller when this returns `None`.
    #[track_caller]
    fn next(&mut self, deadline: Option<Instant>) -> Option<Result<Option<T>, Error>> {
        if let Some(item) = self.buf.pop_front() {
            self.ask();
            return Some(Ok(Some(item)));
        }
        if self.asked == 0 {
            self.asked = 1;
            let _ = self.demand.try_send(1);
        }
        self.ask();
        self.exec.check();
        let msg = wait::block_on(self.items.recv(), deadline)?;
        Some(match msg {
            Ok(Msg::Item(item)) => {
                self.asked = self.asked.saturating_sub(1);
                self.ask();
                Ok(Some(item))
            }
            Ok(Msg::Items(items)) => {
                self.asked -= items.len().min(self.asked);
                self.buf.extend(items);
                self.ask();
                Ok(self.buf.pop_front())
            }
            Ok(Msg::End) => Ok(None),
            Ok(Msg::Panic(payload)) => Err(Error::panic(payload)),
            Err(_) => Err(Error::lost()),
        })
    }

    /// Tops the demand up to the read-ahead, once it fell to half of it (one
    /// message asks for many items).
    fn ask(&mut self) {
        let want = self.read_ahead.saturating_sub(self.buf.len());
        if self.asked <= want / 2
            && self.asked < want
            && self.demand.try_send(want - self.asked).is_ok()
        {
            self.asked = want;
        }
    }
}

impl<T> Drop for Pipe<T> {
    fn drop(&mut self) {
        // Items read ahead and not returned are dropped where the stream
        // runs: those still in the channel too, which the loop thread would
        // otherwise leave to whichever side lets go of it last.
        self.items.close();
        let mut left: Vec<T> = self.buf.drain(..).collect();
        while let Ok(msg) = self.items.try_recv() {
            match msg {
                Msg::Item(item) => left.push(item),
                Msg::Items(items) => left.extend(items),
                Msg::End | Msg::Panic(_) => {}
            }
        }
        if !left.is_empty() {
            (self.dispose)(&*self.exec, left);
        }
        self.exec.withdraw(self.ticket);
    }
}

impl<T: Send + 'static> Direct<T> {
    #[track_caller]
    fn next(&mut self, deadline: Option<Instant>) -> Option<Result<Option<T>, Error>> {
        if let Some(away) = &mut self.away {
            let back = away.wait(deadline)?;
            self.away = None;
            if let Some(done) = self.back(back) {
                return Some(done);
            }
        }
        if let Err(e) = self.exec.start() {
            return Some(Err(e));
        }
        let placement = self.exec.placement();
        let Some(mut stream) = self.stream.take() else {
            return Some(Ok(None));
        };
        if placement == Placement::Hop {
            return self.next_away(stream, deadline);
        }
        // A deadline is a timer polled beside the stream, after it: an item
        // ready as the deadline passes is taken.
        let mut timer = deadline
            .map(|at| futures_timer::Delay::new(at.saturating_duration_since(Instant::now())));
        let polled = context::catch(|| {
            local::here(&*self.exec, placement, stream.as_mut(), |s, cx| {
                match s.poll_next(cx) {
                    Poll::Ready(item) => Poll::Ready(Some(item)),
                    Poll::Pending => match timer.as_mut().map(|timer| Pin::new(timer).poll(cx)) {
                        Some(Poll::Ready(())) => Poll::Ready(None),
                        _ => Poll::Pending,
                    },
                }
            })
        });
        match polled {
            Ok(Some(Some(item))) => {
                self.stream = Some(stream);
                Some(Ok(Some(item)))
            }
            Ok(Some(None)) => Some(self.drop_stream(stream).map(|()| None)),
            Ok(None) => {
                self.stream = Some(stream);
                None
            }
            Err(payload) => {
                let misused = context::misused();
                let _ = catch_unwind(AssertUnwindSafe(|| (self.dispose)(&*self.exec, stream)));
                if misused {
                    context::resume_misuse(payload)
                }
                Some(Err(Error::panic(payload)))
            }
        }
    }

    /// The next item, the stream polled on a loop thread.
    #[track_caller]
    fn next_away(
        &mut self,
        stream: BoxStream<T>,
        deadline: Option<Instant>,
    ) -> Option<Result<Option<T>, Error>> {
        let sent = local::send_away(&self.exec, stream, |s, cx| s.poll_next(cx), Option::is_none);
        let mut away = match sent {
            Ok(away) => away,
            Err((e, stream)) => {
                self.stream = Some(stream);
                return Some(Err(e));
            }
        };
        if let Some(back) = away.wait(deadline) {
            return self.back(back);
        }
        // Timed out: stop it at its next poll, and give a prompt stop the
        // chance to bring the stream (or a last item) home.
        away.cancel();
        match away.wait(Some(Instant::now() + CANCEL_GRACE)) {
            Some(back) => self.back(back),
            None => {
                self.away = Some(away);
                None
            }
        }
    }

    /// Takes back what a loop thread returned: `Some` if it ends the call.
    fn back(
        &mut self,
        back: Result<local::Back<dyn Stream<Item = T> + Send, Option<T>>, Error>,
    ) -> Option<Result<Option<T>, Error>> {
        let back = match back {
            Ok(back) => back,
            Err(e) => return Some(Err(e)),
        };
        self.stream = back.obj;
        match back.out {
            Ok(Some(item)) => Some(Ok(item)),
            // Cancelled before it had an item: the stream is home again.
            Ok(None) => None,
            Err(payload) => Some(Err(Error::panic(payload))),
        }
    }

    /// Drops an ended stream here, under the runtime's context, reporting a
    /// panic of its destructor.
    fn drop_stream(&self, stream: BoxStream<T>) -> Result<(), Error> {
        catch_unwind(AssertUnwindSafe(|| (self.dispose)(&*self.exec, stream))).map_err(Error::panic)
    }
}

impl<T> Drop for Direct<T> {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            (self.dispose)(&*self.exec, stream);
        }
    }
}

/// How long a timed-out `next_timeout` gives the stream to come back.
const CANCEL_GRACE: Duration = Duration::from_millis(20);

impl<T: Send + 'static> BlockingIter<T> {
    /// Waits at most `timeout` for the next item.
    ///
    /// Returns `Ok(Some(item))`, or `Ok(None)` at the end of the stream. An
    /// item that arrives just as the deadline passes is kept for the next
    /// call, never dropped. The deadline is a timer beside the stream (for
    /// [`iter_direct`](Bridge::iter_direct) where `next` would poll it in
    /// place) or the wait for the loop thread's answer.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use std::time::Duration;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let mut it = bridge.iter_direct(|| futures_lite::stream::pending::<u8>());
    /// let err = it.next_timeout(Duration::from_millis(20)).unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    ///
    /// # Errors
    ///
    /// [`is_timeout`](Error::is_timeout) if no item came in time (the
    /// iterator stays usable); a panic of the stream as
    /// [`is_panic`](Error::is_panic) with its payload; a failure to start as
    /// [`next`](Iterator::next) would report it. After any error but a
    /// timeout the iterator is finished, and every later call returns an
    /// error again ("failed in an earlier call: ...").
    ///
    /// # Caveats
    ///
    /// A deadline cannot interrupt a stream that blocks its thread inside a
    /// poll: polled in place, such a stream is waited for until its poll
    /// returns; polled on a loop thread, the call returns at the deadline
    /// (plus at most 20 ms) and the stream comes back with the next call. A
    /// zero timeout returns an item only if it is there without waiting:
    /// `iter_direct`'s stream is polled once, `iter`'s loop thread may not
    /// have produced it yet.
    #[track_caller]
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<T>, Error> {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(far_future);
        self.pull(Some(deadline))
            .unwrap_or(Err(Error::timeout(timeout)))
    }

    /// The next item, waiting until `deadline` (`None` if it passed). The
    /// iterator is finished after its end or an error: after its end every
    /// later call gives `Ok(None)`, after an error an error again.
    #[track_caller]
    pub(crate) fn pull(&mut self, deadline: Option<Instant>) -> Option<Result<Option<T>, Error>> {
        let got = match &mut self.inner {
            Inner::Direct(direct) => direct.next(deadline)?,
            Inner::Pipe(pipe) => pipe.next(deadline)?,
            Inner::Failed(_) => match std::mem::replace(&mut self.inner, Inner::Done) {
                Inner::Failed(e) => Err(e),
                _ => unreachable!("matched above"),
            },
            Inner::Broken(why) => Err(Error::failed_earlier(why)),
            Inner::Done => Ok(None),
        };
        match &got {
            Ok(Some(_)) => {}
            Ok(None) => self.inner = Inner::Done,
            Err(e) if e.is_timeout() => {}
            Err(e) => self.inner = Inner::Broken(e.to_string()),
        }
        Some(got)
    }

    /// The bridge's runtime and pool, while the stream has not ended.
    pub(crate) fn exec(&self) -> Option<&Arc<dyn Exec>> {
        match &self.inner {
            Inner::Direct(direct) => Some(&direct.exec),
            Inner::Pipe(pipe) => Some(&pipe.exec),
            Inner::Failed(_) | Inner::Broken(_) | Inner::Done => None,
        }
    }

    /// Number of items this iterator has received from its loop thread and
    /// not yet returned: they are returned without blocking. (Items the
    /// loop thread has produced and not yet handed over are not counted;
    /// 0 for [`iter_direct`](Bridge::iter_direct), which reads nothing
    /// ahead.)
    pub fn buffered(&self) -> usize {
        match &self.inner {
            Inner::Pipe(pipe) => pipe.buf.len(),
            _ => 0,
        }
    }

    /// Whether the stream has ended (or panicked, or failed) and every item
    /// was returned.
    pub fn is_finished(&self) -> bool {
        matches!(self.inner, Inner::Done | Inner::Broken(_))
    }
}

/// A deadline that never comes (`Instant` has no maximum).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

impl<T: Send + 'static> Iterator for BlockingIter<T> {
    type Item = T;

    /// The next item, blocking until the stream yields it.
    ///
    /// # Panics
    ///
    /// Resumes a panic of the stream (its factory, its `poll_next`, or its
    /// destructor once it has ended) with the original payload; panics with
    /// the [`Error`]'s message if the stream could not start or its loop
    /// thread went away. Every later call panics too, with
    /// "executor-bridge: failed in an earlier call: ...".
    #[track_caller]
    fn next(&mut self) -> Option<T> {
        match self
            .pull(None)
            .expect("a wait without a deadline completes")
        {
            Ok(item) => item,
            Err(e) => e.raise(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Inner::Direct(Direct {
                stream: Some(stream),
                ..
            }) => stream.size_hint(),
            Inner::Pipe(pipe) => (pipe.buf.len(), None),
            Inner::Done | Inner::Broken(_) => (0, Some(0)),
            _ => (0, None),
        }
    }
}

impl<T: Send + 'static> std::iter::FusedIterator for BlockingIter<T> {}

impl<T> fmt::Debug for BlockingIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, buffered) = match &self.inner {
            Inner::Direct(_) => ("direct", 0),
            Inner::Pipe(pipe) => ("loop thread", pipe.buf.len()),
            Inner::Failed(_) | Inner::Broken(_) => ("failed", 0),
            Inner::Done => ("finished", 0),
        };
        f.debug_struct("BlockingIter")
            .field("stream", &kind)
            .field("buffered", &buffered)
            .finish()
    }
}
