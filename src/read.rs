//! Async byte sources as [`std::io::Read`]: [`Bridge::reader`] and
//! [`BlockingIter::into_reader`].

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::Arc;

use futures_lite::{stream, AsyncRead, AsyncReadExt, Stream};

use crate::local::Exec;
use crate::{BlockingIter, Bridge, Runtime};

/// Bytes read from the source in one go, at most.
const CHUNK: usize = 16 * 1024;
/// Chunks a reader's source may run ahead of the consumer.
const CHUNKS_AHEAD: usize = 8;

/// A blocking [`Read`] + [`BufRead`] over a stream of byte chunks.
///
/// Made by [`Bridge::reader`] (from an async reader) or
/// [`BlockingIter::into_reader`] (from a stream of `Result<chunk, error>`).
///
/// - An error of the source is returned by the `read` that reaches it, after
///   every byte before it; the next `read` goes on with what the source gives
///   next. The reader ends only where the source does (an async reader's
///   `Ok(0)`, a chunk stream's end).
/// - A panic of the source resumes in `read` with its payload; a source that
///   could not start, or whose loop thread went away, is an [`io::Error`].
///   Either ends the reader for good: every later `read` fails too, so that
///   a reader that broke is never taken for one that reached its end.
/// - Dropping the reader cancels the source, as dropping a [`BlockingIter`]
///   does.
pub struct BlockingReader<B, E = io::Error> {
    chunks: BlockingIter<Result<B, E>>,
    chunk: Option<B>,
    pos: usize,
    /// Why the reader broke, for every read after the one that said so.
    broken: Option<(io::ErrorKind, String)>,
    /// Drops a chunk read to its end in the runtime's context
    /// ([`Exec::dispose`](crate::local::Exec::dispose)).
    dispose: Option<Disposer<B>>,
}

/// Where and how a reader drops its chunks.
type Disposer<B> = (Arc<dyn Exec>, fn(&dyn Exec, B));

impl<B, E> BlockingIter<Result<B, E>>
where
    B: AsRef<[u8]> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + Send + 'static,
{
    /// Reads a stream of byte chunks as one [`Read`] + [`BufRead`] byte
    /// stream. An `Err` item is returned by the `read` that reaches it, as an
    /// [`io::Error`] (an `io::Error` kept as it is, any other error as the
    /// source of an [`io::ErrorKind::Other`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use futures_lite::stream;
    /// use std::io::{self, BufRead};
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let chunks = vec![Ok::<_, io::Error>("first li"), Ok("ne\nsecond line\n")];
    /// let reader = bridge.iter_direct(move || stream::iter(chunks)).into_reader();
    /// let lines: Vec<String> = reader.lines().collect::<io::Result<_>>().unwrap();
    /// assert_eq!(lines, ["first line", "second line"]);
    /// ```
    ///
    pub fn into_reader(self) -> BlockingReader<B, E> {
        let drop_chunk: fn(&dyn Exec, B) = |exec, chunk| exec.dispose(Box::new(chunk));
        let dispose = self.exec().map(|exec| (Arc::clone(exec), drop_chunk));
        BlockingReader {
            chunks: self,
            chunk: None,
            pos: 0,
            broken: None,
            dispose,
        }
    }
}

impl<R: Runtime> Bridge<R> {
    /// Reads the async reader made by `make` as a blocking [`Read`] +
    /// [`BufRead`], the reader running on a loop thread: the
    /// `tokio_util::io::SyncIoBridge` idea for any runtime, from any context.
    ///
    /// `make` returns a [`futures_lite::AsyncRead`] (the `futures-io` trait
    /// that futures-lite, smol and async-std use; tokio users wrap theirs with
    /// `tokio_util::compat::TokioAsyncReadCompatExt::compat`), `!Send` too.
    /// It is read in chunks of up to 16 KiB, at most 8 chunks ahead of the
    /// consumer, so a slow consumer and a slow source overlap.
    ///
    /// # Examples
    ///
    /// ```
    /// use executor_bridge::{Bridge, Pollster};
    /// use std::io::Read;
    ///
    /// let bridge = Bridge::new(Pollster);
    /// let mut reader = bridge.reader(|| futures_lite::io::Cursor::new(b"hello, bridge".to_vec()));
    /// let mut text = String::new();
    /// reader.read_to_string(&mut text).unwrap();
    /// assert_eq!(text, "hello, bridge");
    /// ```
    ///
    /// # Alternatives
    ///
    /// Bytes read ahead are taken from the source: for a socket whose bytes
    /// past some point belong to someone else, [`Bridge::io`] reads exactly
    /// what each `read` asks for. A source that already yields chunks (an
    /// HTTP body) needs no copy into 16 KiB buffers:
    /// [`BlockingIter::into_reader`].
    pub fn reader<M, A>(&self, make: M) -> BlockingReader<Vec<u8>>
    where
        M: FnOnce() -> A + Send + 'static,
        A: AsyncRead + 'static,
    {
        self.pipe(CHUNKS_AHEAD, move || chunks(make()))
            .into_reader()
    }
}

/// The chunks an async reader yields: an error is a chunk of its own, and
/// reading goes on after it; the end is the reader's `Ok(0)`.
fn chunks<A: AsyncRead>(reader: A) -> impl Stream<Item = io::Result<Vec<u8>>> {
    let reader: Pin<Box<A>> = Box::pin(reader);
    stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0; CHUNK];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return None,
                Ok(n) => {
                    buf.truncate(n);
                    return Some((Ok(buf), Some(reader)));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some((Err(e), Some(reader))),
            }
        }
    })
}

/// An error of a chunk stream as an [`io::Error`], keeping an `io::Error`
/// as it is.
fn into_io<E: Into<Box<dyn StdError + Send + Sync>>>(e: E) -> io::Error {
    match e.into().downcast::<io::Error>() {
        Ok(e) => *e,
        Err(other) => io::Error::other(other),
    }
}

impl<B, E> BlockingReader<B, E>
where
    B: AsRef<[u8]> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + Send + 'static,
{
    /// The unread part of the current chunk, fetching chunks until one has
    /// bytes; empty at the end of the stream.
    fn fill(&mut self) -> io::Result<&[u8]> {
        if let Some((kind, message)) = &self.broken {
            return Err(io::Error::new(*kind, message.clone()));
        }
        while self.remaining() == 0 {
            self.pos = 0;
            self.drop_chunk();
            match self
                .chunks
                .pull(None)
                .expect("a wait without a deadline completes")
            {
                Ok(Some(Ok(chunk))) => self.chunk = Some(chunk),
                Ok(Some(Err(e))) => return Err(into_io(e)),
                Ok(None) => return Ok(&[]),
                Err(e) => {
                    let e = match e.try_into_panic() {
                        Ok(payload) => {
                            self.broken =
                                Some((io::ErrorKind::Other, "the reader's source panicked".into()));
                            resume_unwind(payload)
                        }
                        Err(e) => io::Error::from(e),
                    };
                    self.broken = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
            }
        }
        let chunk = self.chunk.as_ref().map_or(&[][..], |c| c.as_ref());
        Ok(&chunk[self.pos..])
    }

    fn remaining(&self) -> usize {
        self.chunk
            .as_ref()
            .map_or(0, |c| c.as_ref().len() - self.pos)
    }
}

impl<B, E> Read for BlockingReader<B, E>
where
    B: AsRef<[u8]> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + Send + 'static,
{
    /// # Blocking
    ///
    /// Blocks until the source has bytes, has ended, or has failed. An empty
    /// `buf` returns `Ok(0)` at once.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = self.fill()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl<B, E> BufRead for BlockingReader<B, E>
where
    B: AsRef<[u8]> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + Send + 'static,
{
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.fill()
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt.min(self.remaining());
    }
}

impl<B, E> BlockingReader<B, E> {
    /// Drops the current chunk, in the runtime's context.
    fn drop_chunk(&mut self) {
        if let (Some(chunk), Some((exec, dispose))) = (self.chunk.take(), &self.dispose) {
            dispose(&**exec, chunk);
        }
    }
}

impl<B, E> Drop for BlockingReader<B, E> {
    fn drop(&mut self) {
        self.drop_chunk();
    }
}

impl<B: AsRef<[u8]>, E> fmt::Debug for BlockingReader<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffered = self
            .chunk
            .as_ref()
            .map_or(0, |c| c.as_ref().len() - self.pos);
        f.debug_struct("BlockingReader")
            .field("buffered_bytes", &buffered)
            .field("chunks", &self.chunks)
            .finish()
    }
}
