//! Async byte sinks as [`std::io::Write`]: [`Bridge::writer`].

use std::fmt;
use std::io::{self, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use futures_lite::{future, AsyncWrite, AsyncWriteExt, FutureExt};

use crate::ending::{self, Closer, Watch};
use crate::error::Payload;
use crate::local::{BlockOn, Exec};
use crate::pool::{lock, Ticket};
use crate::{wait, Bridge, Carry, Error, Runtime};

/// Bytes gathered before they travel to the loop thread as one chunk.
const CHUNK: usize = 64 * 1024;
/// Chunks that may wait for the sink, at most.
const CHUNKS_AHEAD: usize = 8;

/// A blocking [`Write`] over an async writer running on a bridge's loop
/// thread. Made by [`Bridge::writer`].
///
/// - **Pipelined and bounded**: `write` copies into a 64 KiB buffer and hands
///   full buffers to the loop thread, which writes them while the caller goes
///   on; when 8 of them wait for the sink, `write` blocks until the sink
///   takes one.
/// - [`flush`](Write::flush) returns once everything written so far reached
///   the sink and the sink's own `flush` returned; [`close`](Self::close)
///   then closes the sink (its `poll_close`: a socket's shutdown, a
///   compressor's trailer) and returns the sink's last error.
/// - **Errors are never lost**: an error of the sink fails the next `write`,
///   `flush` or `close` (every later one too), with the sink's error kind and
///   message; a panic of the sink (its destructor's too) resumes there.
/// - **`close` commits, a drop aborts.** Only [`close`](Self::close) closes
///   the sink. A writer dropped without `close`, by a `?` that returned early
///   as much as by a panic, is aborted: bytes not yet written are discarded
///   and the sink is dropped where it runs without being closed, at once,
///   even in the middle of a write, so that its consumer never takes half a
///   body for a whole one. What the consumer then sees depends on the sink
///   (a compressor without its trailer, a body that ends with an error); a
///   sink whose mere drop reads as a clean end on the other side (the write
///   half of `tokio::io::duplex`) cannot carry an abort: for a request body,
///   see [the guide's recipe](crate::guide#an-upload-whose-body-blocking-code-writes).
#[must_use = "a writer's bytes reach its sink only through `close`; dropped, it aborts"]
pub struct BlockingWriter {
    exec: Arc<dyn Exec>,
    /// The sink's work: still queued when the writer is dropped, it is taken
    /// back (its factory never called).
    ticket: Option<Ticket>,
    buf: Vec<u8>,
    /// `None` once closed.
    cmds: Option<Sender<Cmd>>,
    acks: Receiver<io::Result<()>>,
    shared: Arc<Shared>,
    /// Commits in `close`; dropped uncommitted, aborts the sink.
    closer: Closer,
}

/// What the writer and its loop thread share.
struct Shared {
    failed: Mutex<Failed>,
}

/// How the sink failed.
enum Failed {
    No,
    Error(io::ErrorKind, String),
    /// Resumed in the next call; `None` once it was.
    Panic(Option<Payload>),
}

enum Cmd {
    Data(Vec<u8>),
    Flush,
    Close,
}

impl<R: Runtime> Bridge<R> {
    /// Writes into the async writer made by `make` through a blocking
    /// [`Write`], the writer running on a loop thread: the upload body a
    /// synchronous program generates, a file or socket an async runtime owns,
    /// a compressor.
    ///
    /// `make` returns a [`futures_lite::AsyncWrite`] (`futures-io`'s trait;
    /// tokio users wrap theirs with
    /// `tokio_util::compat::TokioAsyncWriteCompatExt::compat_write`), `!Send`
    /// too: it is called on the loop thread, where the writer lives until it
    /// is closed or dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use std::io::Write;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let (reader, writer) = futures_lite::io::split(futures_lite::io::Cursor::new(Vec::new()));
    /// # drop(reader);
    /// let mut out = bridge.writer(move || writer);
    /// writeln!(out, "hello, {}", "bridge").unwrap();
    /// out.close().unwrap();
    /// ```
    ///
    /// # Alternatives
    ///
    /// Each `write` here returns once its bytes are buffered. Where every
    /// write must reach the sink before the call returns (request/response on
    /// one socket, a `Seek` in between), [`Bridge::io`] runs each operation
    /// directly.
    pub fn writer<M, W>(&self, make: M) -> BlockingWriter
    where
        M: FnOnce() -> W + Send + 'static,
        W: AsyncWrite + 'static,
    {
        let (cmds, cmds_rx) = async_channel::bounded(CHUNKS_AHEAD);
        let (acks_tx, acks) = async_channel::bounded(1);
        let (closer, watch) = ending::ending();
        let shared = Arc::new(Shared {
            failed: Mutex::new(Failed::No),
        });
        let sink = Sink {
            cmds: cmds_rx,
            acks: acks_tx,
            shared: Arc::clone(&shared),
        };
        let carry = Carry::capture();
        let work = Box::new(move |rt: &dyn BlockOn| {
            let shared = Arc::clone(&sink.shared);
            carry.run(|| {
                let mut fut = std::pin::pin!(async move {
                    let stop = async {
                        watch.aborted().await;
                        Ok(())
                    };
                    let run = AssertUnwindSafe(sink.run(make, &watch)).catch_unwind();
                    if let Err(payload) = future::or(stop, run).await {
                        // Recorded before `sink` (its answer channel) drops,
                        // so that a waiting call finds the panic.
                        *lock(&sink.shared.failed) = Failed::Panic(Some(payload));
                    }
                    drop(sink);
                });
                if let Err(payload) =
                    catch_unwind(AssertUnwindSafe(|| rt.block_on_dyn(fut.as_mut())))
                {
                    *lock(&shared.failed) = Failed::Panic(Some(payload));
                }
            })
        });
        let ticket = match self
            .start()
            .and_then(|()| Exec::submit(&**self.pool(), work))
        {
            Ok(ticket) => Some(ticket),
            Err(e) => {
                let e = io::Error::from(e);
                *lock(&shared.failed) = Failed::Error(e.kind(), e.to_string());
                None
            }
        };
        BlockingWriter {
            exec: self.pool().clone(),
            ticket,
            buf: Vec::new(),
            cmds: Some(cmds),
            acks,
            shared,
            closer,
        }
    }
}

/// The loop thread's end.
struct Sink {
    cmds: Receiver<Cmd>,
    acks: Sender<io::Result<()>>,
    shared: Arc<Shared>,
}

impl Sink {
    async fn run<M, W>(&self, make: M, watch: &Watch)
    where
        M: FnOnce() -> W,
        W: AsyncWrite,
    {
        let mut writer = Box::pin(make());
        let mut error: Option<io::Error> = None;
        loop {
            let Ok(cmd) = self.cmds.recv().await else {
                // Dropped without `close`: an abort, the writer dropped as
                // it is.
                return;
            };
            match cmd {
                Cmd::Data(data) => {
                    if error.is_none() {
                        if let Err(e) = writer.write_all(&data).await {
                            self.fail(&e);
                            error = Some(e);
                        }
                    }
                }
                Cmd::Flush => {
                    let done = match &error {
                        Some(e) => Err(same(e)),
                        None => writer.flush().await,
                    };
                    self.answer(done, &mut error).await;
                }
                Cmd::Close => {
                    let done = match &error {
                        Some(e) => Err(same(e)),
                        // `close` committed before it sent this; the check
                        // keeps any other way here from closing the sink.
                        None if watch.committed() => writer.close().await,
                        None => return,
                    };
                    // Its destructor's panic is part of the answer.
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(writer))) {
                        *lock(&self.shared.failed) = Failed::Panic(Some(payload));
                    }
                    self.answer(done, &mut error).await;
                    return;
                }
            }
        }
    }

    /// Records a failed flush or close, then answers the waiting call.
    async fn answer(&self, done: io::Result<()>, error: &mut Option<io::Error>) {
        if let Err(e) = &done {
            if error.is_none() {
                self.fail(e);
                *error = Some(same(e));
            }
        }
        let _ = self.acks.send(done).await;
    }

    fn fail(&self, e: &io::Error) {
        *lock(&self.shared.failed) = Failed::Error(e.kind(), e.to_string());
    }
}

/// An error like `e`: its kind and message (an `io::Error` cannot be cloned).
fn same(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

impl BlockingWriter {
    /// Commits: sends everything written, closes the sink (flushing it
    /// first), drops it, and returns its first error. Later writes fail:
    /// with the sink's error if it had one, with
    /// [`io::ErrorKind::BrokenPipe`] otherwise; closing again returns the
    /// sink's error again, or `Ok`.
    ///
    /// # Errors
    ///
    /// The first error the sink returned (for a write, its flush or its
    /// close), or the error of starting the writer. A sink that failed
    /// earlier is not closed.
    ///
    /// # Panics
    ///
    /// Resumes a panic of the sink, its destructor's included, with its
    /// payload.
    ///
    /// # Blocking
    ///
    /// Until the sink has taken every byte, closed and been dropped.
    pub fn close(&mut self) -> io::Result<()> {
        if self.cmds.is_none() {
            return self.failure();
        }
        self.closer.commit();
        let done = self.command(Cmd::Close);
        self.cmds = None;
        done
    }

    /// The error the sink failed with, if any, and an error once closed;
    /// resumes the sink's panic.
    fn check(&mut self) -> io::Result<()> {
        self.failure()?;
        if self.cmds.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the writer is closed",
            ));
        }
        Ok(())
    }

    /// The error the sink failed with, if any; resumes its panic.
    fn failure(&mut self) -> io::Result<()> {
        let mut failed = lock(&self.shared.failed);
        match &mut *failed {
            Failed::No => {}
            Failed::Error(kind, message) => return Err(io::Error::new(*kind, message.clone())),
            Failed::Panic(payload) => match payload.take() {
                Some(payload) => {
                    drop(failed);
                    resume_unwind(payload)
                }
                None => return Err(io::Error::other("the writer's sink panicked")),
            },
        }
        Ok(())
    }

    /// Hands the buffered bytes to the loop thread.
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        self.send(Cmd::Data(data))
    }

    fn send(&mut self, cmd: Cmd) -> io::Result<()> {
        let Some(cmds) = &self.cmds else {
            return self.check();
        };
        self.exec.check();
        match wait::block_on(cmds.send(cmd), None) {
            Some(Ok(())) => Ok(()),
            _ => self.check().and(Err(gone())),
        }
    }

    /// Sends the buffer and `cmd`, and waits for the loop thread's answer.
    fn command(&mut self, cmd: Cmd) -> io::Result<()> {
        self.check()?;
        self.send_buf()?;
        self.send(cmd)?;
        match wait::block_on(self.acks.recv(), None) {
            // A panic recorded with the answer resumes first.
            Some(Ok(done)) => self.failure().and(done),
            _ => self.check().and(Err(gone())),
        }
    }
}

/// The loop thread stopped without a word: it panicked or was dropped.
fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, Error::lost())
}

impl Write for BlockingWriter {
    /// # Blocking
    ///
    /// When 8 chunks of 64 KiB already wait for the sink, until it takes one.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CHUNK);
        }
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// # Blocking
    ///
    /// Until everything written so far reached the sink and its `flush`
    /// returned.
    fn flush(&mut self) -> io::Result<()> {
        self.command(Cmd::Flush)
    }
}

impl Drop for BlockingWriter {
    /// Aborts, unless closed: see the type's docs.
    fn drop(&mut self) {
        self.closer.abort();
        if let Some(ticket) = self.ticket {
            self.exec.withdraw(ticket);
        }
    }
}

impl fmt::Debug for BlockingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingWriter")
            .field("buffered_bytes", &self.buf.len())
            .field("closed", &self.cmds.is_none())
            .field("failed", &!matches!(*lock(&self.shared.failed), Failed::No))
            .finish()
    }
}
