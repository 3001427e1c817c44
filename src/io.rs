//! [`BlockingIo`]: an async IO object driven directly by blocking calls.

use std::fmt;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite};

use crate::context::Placement;
use crate::local::{self, Exec};
use crate::{Bridge, Error, Runtime};

/// An async IO object (a file, a socket) behind blocking [`Read`],
/// [`Write`], [`BufRead`] and [`Seek`], each as the object supports them.
/// Made by [`Bridge::io`].
///
/// Every call is one operation on the object, run like
/// [`Bridge::run`](crate::Bridge::run): on the caller's thread where that is
/// safe (no copy: the object reads into and writes from the caller's
/// buffer), with the object sent to a loop thread and back where it is not.
/// Nothing is read ahead or written behind: a `read` takes what it returns
/// from the source, a `write` has reached the object when it returns, a
/// `seek` lands where it says. This is `tokio_util::io::SyncIoBridge` for any
/// runtime, from any calling context, tokio's runtimes included.
///
/// A panic of the object resumes in the call that hit it; the object is
/// dropped then, and later calls fail with [`io::ErrorKind::Other`]. A call
/// that needs a loop thread where none can start fails, and keeps the
/// object. Dropped, the object is dropped where its calls run, in its
/// runtime's context.
pub struct BlockingIo<T> {
    exec: Arc<dyn Exec>,
    /// `None` once a panic dropped it.
    io: Option<Pin<Box<T>>>,
    /// [`BufRead`]: a copy of the object's filled buffer from its last
    /// `poll_fill_buf`, from `pos` on, not yet consumed (the object's
    /// buffer holds the same bytes). Borrowing the object's own buffer
    /// would need a second poll, outside the runtime's context, which a
    /// source at its end may answer by polling its inner reader again.
    filled: Vec<u8>,
    pos: usize,
    /// Drops the object where its calls run ([`Exec::dispose`]).
    dispose: fn(&dyn Exec, Pin<Box<T>>),
}

impl<R: Runtime> Bridge<R> {
    /// Wraps the async IO object `io` for blocking calls: [`Read`] if it is a
    /// [`futures_lite::AsyncRead`], [`Write`] for `AsyncWrite`, [`BufRead`]
    /// for `AsyncBufRead`, [`Seek`] for `AsyncSeek` (the `futures-io` traits;
    /// tokio's types convert with `tokio_util::compat`).
    ///
    /// The object must be `Send`: calls made where its runtime cannot be
    /// waited for move it to a loop thread for the call. Create it with
    /// [`run`](Bridge::run) (a socket's `connect`, a file's `open`), so that
    /// it is registered with the bridge's runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::io::Cursor;
    /// use std::io::{Read, Seek, SeekFrom, Write};
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let mut file = bridge.io(Cursor::new(Vec::new()));
    /// file.write_all(b"hello, bridge").unwrap();
    /// file.seek(SeekFrom::Start(7)).unwrap();
    /// let mut word = String::new();
    /// file.read_to_string(&mut word).unwrap();
    /// assert_eq!(word, "bridge");
    /// ```
    ///
    /// # Alternatives
    ///
    /// To stream bytes through, overlapping the caller's work with the
    /// object's, [`reader`](Bridge::reader) reads ahead and
    /// [`writer`](Bridge::writer) writes behind, on a loop thread; they take
    /// `!Send` objects too.
    pub fn io<T: Send + 'static>(&self, io: T) -> BlockingIo<T> {
        BlockingIo {
            exec: self.pool().clone(),
            io: Some(Box::pin(io)),
            filled: Vec::new(),
            pos: 0,
            dispose: |exec, io| exec.dispose(Box::new(io)),
        }
    }
}

impl<T: Send + 'static> BlockingIo<T> {
    /// The object, back from the bridge.
    ///
    /// # Errors
    ///
    /// Gives `self` back if a panic of the object dropped it.
    pub fn into_inner(mut self) -> Result<T, Self>
    where
        T: Unpin,
    {
        match self.io.take() {
            Some(io) => Ok(*Pin::into_inner(io)),
            None => Err(self),
        }
    }

    /// Closes the object (`poll_close`: a socket's write shutdown, a
    /// compressor's trailer), after flushing it.
    ///
    /// # Errors
    ///
    /// The object's error.
    ///
    /// # Blocking
    ///
    /// Until the object has closed.
    pub fn close(&mut self) -> io::Result<()>
    where
        T: AsyncWrite,
    {
        self.flush()?;
        self.both(|io, cx| io.poll_close(cx))?
    }

    /// Where the next operation runs (starting the runtime if needed).
    #[track_caller]
    fn placement(&self) -> io::Result<Placement> {
        self.exec.start()?;
        Ok(self.exec.placement())
    }

    /// Runs `op` wherever this call must run it: for operations whose state
    /// is all in the closure.
    fn both<O, Op>(&mut self, op: Op) -> io::Result<O>
    where
        O: Send + 'static,
        Op: FnMut(Pin<&mut T>, &mut Context<'_>) -> Poll<O> + Send + 'static,
    {
        match self.placement()? {
            Placement::Hop => self.away(op),
            here => self.here(here, op),
        }
    }

    /// Runs `op` on this thread, as `placement` (not a hop) says.
    fn here<O>(
        &mut self,
        placement: Placement,
        op: impl FnMut(Pin<&mut T>, &mut Context<'_>) -> Poll<O>,
    ) -> io::Result<O> {
        let exec = &*self.exec;
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| io::Error::other("the IO object panicked in an earlier call"))?;
        match catch_unwind(AssertUnwindSafe(|| {
            local::here(exec, placement, io.as_mut(), op)
        })) {
            Ok(out) => Ok(out),
            Err(payload) => {
                // Its state is whatever the panic left: dropped, where it
                // runs.
                if let Some(io) = self.io.take() {
                    let _ = catch_unwind(AssertUnwindSafe(|| (self.dispose)(exec, io)));
                }
                resume_unwind(payload)
            }
        }
    }

    /// Runs `op` on a loop thread, the object sent there and back.
    fn away<O, Op>(&mut self, op: Op) -> io::Result<O>
    where
        O: Send + 'static,
        Op: FnMut(Pin<&mut T>, &mut Context<'_>) -> Poll<O> + Send + 'static,
    {
        self.usable()?;
        let io = self.io.take().expect("usable");
        let mut away = match local::send_away(&self.exec, io, op, |_| false) {
            Ok(away) => away,
            Err((e, io)) => {
                // No loop thread could take it: it stays here, usable.
                self.io = Some(io);
                return Err(e.into());
            }
        };
        let back = away
            .wait(None)
            .expect("a wait without a deadline completes")?;
        self.io = back.obj;
        match back.out {
            Ok(Some(out)) => Ok(out),
            Ok(None) => Err(Error::lost().into()),
            Err(payload) => resume_unwind(payload),
        }
    }

    /// Drops the copy of the object's buffer: a read or a seek changes it.
    fn forget_filled(&mut self) {
        self.filled.clear();
        self.pos = 0;
    }

    fn usable(&mut self) -> io::Result<&mut Pin<Box<T>>> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::other("the IO object panicked in an earlier call"))
    }
}

impl<T: AsyncRead + Send + 'static> Read for BlockingIo<T> {
    /// # Blocking
    ///
    /// Until the object has bytes, has ended, or has failed. An empty `buf`
    /// returns `Ok(0)` at once.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.forget_filled();
        let here = self.placement()?;
        if here != Placement::Hop {
            return self.here(here, |io, cx| io.poll_read(cx, buf))?;
        }
        let mut owned = vec![0; buf.len()];
        let (n, owned) = self.away(move |io, cx| match io.poll_read(cx, &mut owned) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok((n, std::mem::take(&mut owned)))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        })??;
        buf[..n].copy_from_slice(&owned[..n]);
        Ok(n)
    }
}

impl<T: AsyncWrite + Send + 'static> Write for BlockingIo<T> {
    /// # Blocking
    ///
    /// Until the object took some of `buf`, or failed.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A write may change what a read would find next.
        self.forget_filled();
        let here = self.placement()?;
        if here != Placement::Hop {
            return self.here(here, |io, cx| io.poll_write(cx, buf))?;
        }
        let owned = buf.to_vec();
        self.away(move |io, cx| io.poll_write(cx, &owned))?
    }

    /// # Blocking
    ///
    /// Until the object has flushed.
    fn flush(&mut self) -> io::Result<()> {
        self.forget_filled();
        self.both(|io, cx| io.poll_flush(cx))?
    }
}

impl<T: AsyncBufRead + Send + 'static> BufRead for BlockingIo<T> {
    /// # Blocking
    ///
    /// Until the object's buffer has bytes, the object has ended, or failed.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled.len() {
            self.filled = self.both(|mut io, cx| match io.as_mut().poll_fill_buf(cx) {
                Poll::Ready(Ok(buf)) => Poll::Ready(Ok(buf.to_vec())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            })??;
            self.pos = 0;
        }
        Ok(&self.filled[self.pos..])
    }

    /// Consumes at most what the last [`fill_buf`](BufRead::fill_buf)
    /// returned and is still unread (nothing after a write or a seek).
    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.filled.len() - self.pos);
        if let Some(io) = self.io.as_mut() {
            io.as_mut().consume(amt);
        }
        self.pos += amt;
    }
}

impl<T: AsyncSeek + Send + 'static> Seek for BlockingIo<T> {
    /// # Blocking
    ///
    /// Until the object has moved.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.forget_filled();
        self.both(move |io, cx| io.poll_seek(cx, pos))?
    }
}

impl<T> Drop for BlockingIo<T> {
    /// Drops the object where its calls run: on this thread in the
    /// runtime's context, or on a loop thread.
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            (self.dispose)(&*self.exec, io);
        }
    }
}

impl<T> fmt::Debug for BlockingIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingIo")
            .field("io", &std::any::type_name::<T>())
            .field("usable", &self.io.is_some())
            .finish()
    }
}
