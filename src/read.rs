//! Async byte sources as [`std::io::Read`]: [`Bridge::reader`] and
//! [`BlockingIter::into_reader`].

use std::fmt;
use std::io::{self, BufRead, Read};
use std::pin::Pin;

use futures_io::AsyncRead;
use futures_lite::{stream, AsyncReadExt, Stream};

use crate::{BlockingIter, Bridge, Error, Runtime};

/// Bytes read from the source in one go, at most.
const CHUNK: usize = 16 * 1024;
/// Chunks a reader's source may run ahead of the consumer.
const CHUNKS_AHEAD: usize = 8;

/// A blocking [`Read`] + [`BufRead`] over a stream of byte chunks running on
/// a bridge's loop thread.
///
/// Made by [`Bridge::reader`] (from an async reader) or
/// [`BlockingIter::into_reader`] (from a stream of `Result<chunk, error>`).
/// Errors of the source arrive as [`io::Error`] from `read`; dropping the
/// reader cancels the source, as dropping a [`BlockingIter`] does.
pub struct BlockingReader<B, E = io::Error> {
    chunks: BlockingIter<Result<B, E>>,
    chunk: Option<B>,
    pos: usize,
}

impl<B, E> BlockingIter<Result<B, E>>
where
    B: AsRef<[u8]>,
    E: Into<io::Error>,
{
    /// Reads a stream of byte chunks as one [`Read`] + [`BufRead`] byte
    /// stream. An `Err` item is returned by the `read` that reaches it.
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
    /// let reader = bridge.iter(move || stream::iter(chunks)).into_reader();
    /// let lines: Vec<String> = reader.lines().collect::<io::Result<_>>().unwrap();
    /// assert_eq!(lines, ["first line", "second line"]);
    /// ```
    pub fn into_reader(self) -> BlockingReader<B, E> {
        BlockingReader {
            chunks: self,
            chunk: None,
            pos: 0,
        }
    }
}

impl<R: Runtime> Bridge<R> {
    /// Reads the async reader made by `make` as a blocking [`Read`] +
    /// [`BufRead`], backed by the bridge's loop: the `SyncIoBridge` idea for
    /// any runtime.
    ///
    /// `make` returns a [`futures_io::AsyncRead`] (the trait futures-lite,
    /// smol and async-std use; tokio users wrap theirs with
    /// `tokio_util::compat::TokioAsyncReadCompatExt::compat`). It runs on a
    /// loop thread, read in chunks of up to 16 KiB, at most 8 chunks ahead of
    /// the consumer.
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
    /// # Panics
    ///
    /// Panics with "executor-bridge: failed to start a loop thread: ..." if no
    /// loop thread could be started; [`try_reader`](Bridge::try_reader)
    /// returns that as an [`Error`]. A panic of the source resumes in `read`.
    ///
    /// # Alternatives
    ///
    /// If the bytes come as a stream of chunks already (an HTTP body),
    /// [`BlockingIter::into_reader`] skips the copy into 16 KiB buffers.
    #[track_caller]
    pub fn reader<M, A>(&self, make: M) -> BlockingReader<Vec<u8>>
    where
        M: FnOnce() -> A + Send + 'static,
        A: AsyncRead + 'static,
    {
        match self.try_reader(make) {
            Ok(reader) => reader,
            Err(e) => e.raise(),
        }
    }

    /// Like [`reader`](Bridge::reader), but a failure to start comes back as
    /// an [`Error`].
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] / [`Error::Runtime`] if a loop thread or the runtime
    /// could not be started.
    pub fn try_reader<M, A>(&self, make: M) -> Result<BlockingReader<Vec<u8>>, Error>
    where
        M: FnOnce() -> A + Send + 'static,
        A: AsyncRead + 'static,
    {
        let chunks = self.spawn_iter(CHUNKS_AHEAD, move || chunks(make()))?;
        Ok(chunks.into_reader())
    }
}

/// The chunks an async reader yields, ending after the first error.
fn chunks<A: AsyncRead>(reader: A) -> impl Stream<Item = io::Result<Vec<u8>>> {
    let reader: Option<Pin<Box<A>>> = Some(Box::pin(reader));
    stream::unfold(reader, |reader| async move {
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
                Err(e) => return Some((Err(e), None)),
            }
        }
    })
}

impl<B, E> BlockingReader<B, E>
where
    B: AsRef<[u8]>,
    E: Into<io::Error>,
{
    /// The unread part of the current chunk, fetching chunks until one has
    /// bytes; empty at the end of the stream.
    fn fill(&mut self) -> io::Result<&[u8]> {
        loop {
            let remaining = match &self.chunk {
                Some(chunk) => chunk.as_ref().len() - self.pos,
                None => 0,
            };
            if remaining > 0 {
                break;
            }
            self.pos = 0;
            self.chunk = None;
            match self.chunks.next() {
                Some(Ok(chunk)) => self.chunk = Some(chunk),
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(&[]),
            }
        }
        let chunk = self.chunk.as_ref().map_or(&[][..], |c| c.as_ref());
        Ok(&chunk[self.pos..])
    }
}

impl<B, E> Read for BlockingReader<B, E>
where
    B: AsRef<[u8]>,
    E: Into<io::Error>,
{
    /// # Blocking
    ///
    /// Blocks until the source has bytes, has ended, or has failed.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl<B, E> BufRead for BlockingReader<B, E>
where
    B: AsRef<[u8]>,
    E: Into<io::Error>,
{
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.fill()
    }

    fn consume(&mut self, amt: usize) {
        let len = self.chunk.as_ref().map_or(0, |c| c.as_ref().len());
        self.pos = (self.pos + amt).min(len);
    }
}

impl<B, E> fmt::Debug for BlockingReader<B, E>
where
    B: AsRef<[u8]>,
{
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
