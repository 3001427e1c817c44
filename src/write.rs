//! Async byte sinks as [`std::io::Write`]: [`Bridge::writer`].

use std::fmt;
use std::io::{self, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use futures_lite::{future, AsyncWrite, AsyncWriteExt, FutureExt};

use crate::error::Payload;
use crate::local::{BlockOn, Exec};
use crate::pool::lock;
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
///   message.
/// - **Drop**: without `close`, the writer finishes in the background, as
///   `BufWriter`'s drop does but without blocking the caller: what was
///   written is written and the sink closed on its loop thread (an error then
///   goes to `tracing`, with the `tracing` feature; call `close` to see it).
///   A writer dropped while its thread unwinds from a panic is cancelled
///   instead: bytes not yet written are discarded and the sink dropped
///   without being closed, so that a consumer does not take half a body for a
///   whole one.
pub struct BlockingWriter {
    buf: Vec<u8>,
    /// `None` once closed.
    cmds: Option<Sender<Cmd>>,
    acks: Receiver<io::Result<()>>,
    shared: Arc<Shared>,
    /// A message here cancels the sink (see the type's docs).
    cancel: Sender<()>,
}

/// What the writer and its loop thread share.
struct Shared {
    failed: Mutex<Failed>,
    /// The last bytes of a writer dropped without `close`.
    last: Mutex<Vec<u8>>,
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
        let (cancel, cancelled) = async_channel::bounded::<()>(1);
        let shared = Arc::new(Shared {
            failed: Mutex::new(Failed::No),
            last: Mutex::new(Vec::new()),
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
                    // A cancel is a message; the channel closing is not one.
                    let stop = async {
                        if cancelled.recv().await.is_err() {
                            future::pending::<()>().await;
                        }
                        Ok(())
                    };
                    let run = AssertUnwindSafe(sink.run(make)).catch_unwind();
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
        if let Err(e) = self
            .start()
            .and_then(|()| Exec::submit(&**self.pool(), work))
        {
            let e = io::Error::from(e);
            *lock(&shared.failed) = Failed::Error(e.kind(), e.to_string());
        }
        BlockingWriter {
            buf: Vec::new(),
            cmds: Some(cmds),
            acks,
            shared,
            cancel,
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
    async fn run<M, W>(&self, make: M)
    where
        M: FnOnce() -> W,
        W: AsyncWrite,
    {
        let mut writer = Box::pin(make());
        let mut error: Option<io::Error> = None;
        loop {
            let Ok(cmd) = self.cmds.recv().await else {
                // Dropped without `close`: finish in the background.
                let last = std::mem::take(&mut *lock(&self.shared.last));
                let closed = match error {
                    Some(e) => Err(e),
                    None => match writer.write_all(&last).await {
                        Ok(()) => writer.close().await,
                        Err(e) => Err(e),
                    },
                };
                if let Err(_e) = closed {
                    #[cfg(feature = "tracing")]
                    tracing::warn!(error = %_e, "a BlockingWriter dropped without close failed to finish");
                }
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
                Cmd::Flush | Cmd::Close => {
                    let close = matches!(cmd, Cmd::Close);
                    let done = match &error {
                        Some(e) => Err(same(e)),
                        None if close => writer.close().await,
                        None => writer.flush().await,
                    };
                    if let Err(e) = &done {
                        if error.is_none() {
                            self.fail(e);
                            error = Some(same(e));
                        }
                    }
                    let _ = self.acks.send(done).await;
                    if close {
                        return;
                    }
                }
            }
        }
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
    /// Sends everything written, closes the sink, and returns its last error.
    /// Later writes fail with [`io::ErrorKind::BrokenPipe`]; closing again
    /// returns the sink's error again, or `Ok`.
    ///
    /// # Errors
    ///
    /// The first error the sink returned (for a write, its flush or its
    /// close), or the error of starting the writer.
    ///
    /// # Blocking
    ///
    /// Until the sink has taken every byte and closed.
    pub fn close(&mut self) -> io::Result<()> {
        if self.cmds.is_none() {
            return self.failure();
        }
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
            Some(Ok(done)) => done,
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
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Cancel: the sink is dropped without another write or a close.
            let _ = self.cancel.try_send(());
            return;
        }
        // The loop thread writes these once the chunks before them are done,
        // then closes the sink: nothing here waits for it.
        *lock(&self.shared.last) = std::mem::take(&mut self.buf);
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
