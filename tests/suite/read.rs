//! `Bridge::reader` (an async reader as `std::io::Read + BufRead`) and
//! `BlockingIter::into_reader` (a stream of byte chunks as the same), with
//! chunk streams, scripted readers, files (tokio's through
//! `tokio_util::compat`, smol's), TCP from a local server and an HTTP body
//! from a local axum server: partial reads, `read_exact`, `fill_buf` /
//! `consume`, `read_to_end`, `lines`, errors that do not end the reader,
//! panics, and an early drop cancelling the source.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{BlockingReader, Bridge, Pollster};
use futures_lite::{stream, AsyncRead, Stream, StreamExt};

use crate::common::{
    eventually, in_case, is_set, message, per_runtime, watchdog, Ctx, DropFlag, Payload,
    TestRuntime, Way, LIMIT,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The reader's chunk size and read-ahead, as documented.
const CHUNK: usize = 16 * 1024;
const CHUNKS_AHEAD: usize = 8;

/// `iter_direct` or `iter` under `into_reader`.
const WAYS: [Way; 2] = [Way::Direct, Way::Iter(0)];

/// Runs `case` under the watchdog once per way, on `b`, a failure naming
/// the way.
fn each_way(b: Bridge<Pollster>, mut case: impl FnMut(Way, &Bridge<Pollster>) + Send + 'static) {
    watchdog(LIMIT, move || {
        for way in WAYS {
            in_case(&format!("{way:?}"), || case(way, &b));
        }
    });
}

/// `n` numbered lines, 34 bytes each.
fn text(n: usize) -> String {
    (0..n)
        .map(|i| format!("line {i:05}: the quick brown fox\n"))
        .collect()
}

/// Reads everything `piece` bytes at a time at most; every read gives at
/// least one byte until the end.
fn read_in_pieces(reader: &mut impl Read, piece: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; piece];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(out),
            n => {
                assert!(n <= piece);
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
}

/// One step of a [`Script`].
#[derive(Clone, Debug)]
enum Step {
    Data(&'static [u8]),
    Fail(io::ErrorKind),
    /// Pending once, waking itself.
    Yield,
    /// Panics with `Payload(n)`.
    Panic(u32),
}

/// An async reader that plays its steps, then ends (`Ok(0)`).
struct Script {
    steps: VecDeque<Step>,
    pos: usize,
}

fn script(steps: &[Step]) -> Script {
    Script {
        steps: steps.iter().cloned().collect(),
        pos: 0,
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        match me.steps.front().cloned() {
            None => Poll::Ready(Ok(0)),
            Some(Step::Data(data)) => {
                let n = (data.len() - me.pos).min(buf.len());
                buf[..n].copy_from_slice(&data[me.pos..me.pos + n]);
                me.pos += n;
                if me.pos == data.len() {
                    me.steps.pop_front();
                    me.pos = 0;
                }
                Poll::Ready(Ok(n))
            }
            Some(Step::Fail(kind)) => {
                me.steps.pop_front();
                Poll::Ready(Err(io::Error::new(kind, "scripted failure")))
            }
            Some(Step::Yield) => {
                me.steps.pop_front();
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Step::Panic(n)) => panic_any(Payload(n)),
        }
    }
}

/// An async reader that says when it is dropped.
struct Guarded<A> {
    inner: A,
    _flag: DropFlag,
}

impl<A: AsyncRead + Unpin> AsyncRead for Guarded<A> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// An endless async reader that fills every buffer, counting the bytes taken
/// and the largest buffer it was given.
struct Endless {
    taken: Arc<AtomicUsize>,
    largest: Arc<AtomicUsize>,
}

impl AsyncRead for Endless {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        buf.fill(b'x');
        self.taken.fetch_add(buf.len(), SeqCst);
        self.largest.fetch_max(buf.len(), SeqCst);
        Poll::Ready(Ok(buf.len()))
    }
}

/// An async reader of `chunks`, each after a sleep on the adapter's timer.
fn slow_source<R: TestRuntime>(chunks: Vec<Vec<u8>>) -> impl AsyncRead + Send {
    use futures::TryStreamExt;
    Box::pin(slow_chunks::<R>(chunks)).into_async_read()
}

/// `chunks` as `io::Result` items, each after a sleep on the adapter's timer.
fn slow_chunks<R: TestRuntime>(
    chunks: Vec<Vec<u8>>,
) -> impl Stream<Item = io::Result<Vec<u8>>> + Send {
    stream::iter(chunks).then(|c| async move {
        R::sleep(Duration::from_millis(1)).await;
        Ok(c)
    })
}

/// Reads one byte at a time until the source's panic resumes: the bytes read
/// before it and the payload.
fn read_until_panic(reader: &mut impl Read) -> (Vec<u8>, Box<dyn std::any::Any + Send>) {
    let mut got = Vec::new();
    let payload = catch_unwind(AssertUnwindSafe(|| {
        let mut buf = [0; 1];
        loop {
            let n = reader.read(&mut buf).expect("no error before the panic");
            assert!(n > 0, "the reader ended instead of panicking");
            got.push(buf[0]);
        }
    }))
    .unwrap_err();
    (got, payload)
}

/// A custom error type that is not an `io::Error`.
#[derive(Debug, PartialEq, Eq)]
struct UpstreamGone(&'static str);

impl std::fmt::Display for UpstreamGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream gone: {}", self.0)
    }
}

impl std::error::Error for UpstreamGone {}

impl From<UpstreamGone> for io::Error {
    fn from(e: UpstreamGone) -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, e)
    }
}

fn assert_send<T: Send>(_: &T) {}

// ---------------------------------------------------------------------------
// Chunk streams through `into_reader`
// ---------------------------------------------------------------------------

const CHUNKS: [&str; 6] = ["ab", "c\nde", "", "f\n", "", "last line, no newline"];
const ALL: &[u8] = b"abc\ndef\nlast line, no newline";

fn chunks() -> impl Stream<Item = io::Result<&'static str>> + Send {
    stream::iter(CHUNKS).map(Ok)
}

#[test]
fn chunks_read_as_one_byte_stream() {
    each_way(Bridge::new(Pollster), |way, b| {
        let lines: Vec<String> = way
            .open(b, chunks)
            .into_reader()
            .lines()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(lines, ["abc", "def", "last line, no newline"], "{way:?}");

        let mut all = Vec::new();
        let n = way
            .open(b, chunks)
            .into_reader()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!((n, &all[..]), (ALL.len(), ALL), "{way:?}");

        for piece in [1, 2, 3, 7, 1000] {
            let bytes = read_in_pieces(&mut way.open(b, chunks).into_reader(), piece).unwrap();
            assert_eq!(bytes, ALL, "{way:?}, pieces of {piece}");
        }
    });
}

#[test]
fn read_exact_fill_buf_and_consume_cross_chunks() {
    each_way(Bridge::new(Pollster), |way, b| {
        let mut reader = way.open(b, chunks).into_reader();
        // A partial read gives a prefix of the bytes.
        let mut buf = [0; 16];
        let n = reader.read(&mut buf).unwrap();
        assert!(n >= 1 && ALL.starts_with(&buf[..n]), "{way:?}: {n}");
        let mut offset = n;
        // read_exact spans chunks.
        let mut five = [0; 5];
        reader.read_exact(&mut five).unwrap();
        assert_eq!(&five, &ALL[offset..offset + 5], "{way:?}");
        offset += 5;
        // fill_buf shows what comes next, consume takes part of it.
        let shown = reader.fill_buf().unwrap().to_vec();
        assert!(
            !shown.is_empty() && ALL[offset..].starts_with(&shown),
            "{way:?}: {shown:?}"
        );
        assert_eq!(reader.fill_buf().unwrap(), shown, "{way:?}: fill_buf twice");
        reader.consume(1);
        offset += 1;
        let shown = reader.fill_buf().unwrap().to_vec();
        assert!(ALL[offset..].starts_with(&shown), "{way:?}");
        reader.consume(0);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &ALL[offset..], "{way:?}");
        // The end, for good.
        assert_eq!(reader.read(&mut buf).unwrap(), 0, "{way:?}");
        assert_eq!(reader.read(&mut buf).unwrap(), 0, "{way:?}");
        assert!(reader.fill_buf().unwrap().is_empty(), "{way:?}");
        // read_exact past the end is UnexpectedEof.
        let mut reader = way.open(b, chunks).into_reader();
        let mut too_many = vec![0; ALL.len() + 1];
        let err = reader.read_exact(&mut too_many).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{way:?}");
    });
}

/// All that the iterator made `way` over `chunks` reads, as text.
fn read_string<C: AsRef<[u8]> + Send + 'static>(
    way: Way,
    b: &Bridge<Pollster>,
    chunks: Vec<io::Result<C>>,
) -> String {
    let mut s = String::new();
    way.open(b, move || stream::iter(chunks))
        .into_reader()
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[test]
fn every_chunk_type_reads() {
    each_way(Bridge::new(Pollster), |way, b| {
        let cases = [
            (
                read_string(
                    way,
                    b,
                    vec![Ok(b"x".to_vec()), Ok(Vec::new()), Ok(b"y".to_vec())],
                ),
                "xy",
                "Vec<u8>",
            ),
            (
                read_string(way, b, vec![Ok(String::from("é")), Ok("!".into())]),
                "é!",
                "String",
            ),
            (
                read_string(way, b, vec![Ok(&b"sl"[..]), Ok(&b"ice"[..])]),
                "slice",
                "&[u8]",
            ),
            (
                read_string(way, b, vec![Ok(Box::<[u8]>::from(&b"box"[..]))]),
                "box",
                "Box<[u8]>",
            ),
        ];
        for (got, want, chunk) in cases {
            assert_eq!(got, want, "{way:?}: {chunk} chunks");
        }

        let mut empty = way
            .open(b, stream::empty::<io::Result<&'static [u8]>>)
            .into_reader();
        assert_eq!(empty.read(&mut [0; 8]).unwrap(), 0, "{way:?}");
        let mut only_empty = way
            .open(b, || stream::iter([Ok::<_, io::Error>(""), Ok(""), Ok("")]))
            .into_reader();
        assert_eq!(only_empty.read(&mut [0; 8]).unwrap(), 0, "{way:?}");
    });
}

#[test]
fn twenty_thousand_small_chunks_arrive_intact() {
    each_way(
        Bridge::builder(Pollster).stream_capacity(64).build(),
        |way, b| {
            let expected = text(20_000);
            let lines: Vec<String> = expected.lines().map(|l| format!("{l}\n")).collect();
            let reader = way
                .open(b, move || stream::iter(lines).map(Ok::<_, io::Error>))
                .into_reader();
            let mut n = 0;
            for (i, line) in reader.lines().enumerate() {
                assert_eq!(
                    line.unwrap(),
                    format!("line {i:05}: the quick brown fox"),
                    "{way:?}"
                );
                n += 1;
            }
            assert_eq!(n, 20_000, "{way:?}");
            // And in reads that span many chunks.
            let lines: Vec<String> = expected.lines().map(|l| format!("{l}\n")).collect();
            let mut all = String::new();
            way.open(b, move || stream::iter(lines).map(Ok::<_, io::Error>))
                .into_reader()
                .read_to_string(&mut all)
                .unwrap();
            assert_eq!(all, expected, "{way:?}");
        },
    );
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// An `io::Error` item reaches `read` as it is (kind, message, inner error),
/// after every byte before it.
#[test]
fn an_io_error_arrives_as_it_is_after_the_bytes_before_it() {
    each_way(Bridge::new(Pollster), |way, b| {
        let mut reader = way
            .open(b, || {
                stream::iter(vec![
                    Ok(b"hello ".to_vec()),
                    Ok(b"world".to_vec()),
                    Err(io::Error::new(io::ErrorKind::ConnectionReset, "boom")),
                ])
            })
            .into_reader();
        let mut got = Vec::new();
        let err = reader.read_to_end(&mut got).unwrap_err();
        assert_eq!(
            got, b"hello world",
            "{way:?}: bytes before the error are kept"
        );
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{way:?}");
        assert_eq!(err.to_string(), "boom", "{way:?}");
        // The source ended after its error: so does the reader.
        assert_eq!(reader.read(&mut [0; 4]).unwrap(), 0, "{way:?}");

        // An io::Error wrapping a custom error keeps that error inside.
        let mut reader = way
            .open(b, || {
                stream::iter([
                    Ok("partial"),
                    Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        UpstreamGone("x"),
                    )),
                ])
            })
            .into_reader();
        let mut s = String::new();
        let err = reader.read_to_string(&mut s).unwrap_err();
        assert_eq!(s, "partial", "{way:?}");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{way:?}");
        let inner = err.into_inner().expect("the inner error");
        assert_eq!(
            inner.downcast_ref::<UpstreamGone>(),
            Some(&UpstreamGone("x")),
            "{way:?}"
        );

        // A user's `Into<io::Error>`, applied with map_err.
        let mut reader = way
            .open(b, || {
                stream::iter([Ok("partial"), Err(UpstreamGone("went away"))])
                    .map(|r| r.map_err(io::Error::from))
            })
            .into_reader();
        let mut buf = [0; 64];
        let n = reader.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"partial", "{way:?}");
        let err = reader.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted, "{way:?}");
    });
}

/// An error type that is not `io::Error` needs no `map_err`: it arrives as
/// `ErrorKind::Other`, the error itself inside.
#[test]
fn a_non_io_error_arrives_as_other_with_the_error_inside() {
    each_way(Bridge::new(Pollster), |way, b| {
        let mut reader = way
            .open(b, || {
                stream::iter([Ok("partial"), Err(UpstreamGone("went away"))])
            })
            .into_reader();
        let mut s = String::new();
        let err = reader.read_to_string(&mut s).unwrap_err();
        assert_eq!(s, "partial", "{way:?}");
        assert_eq!(err.kind(), io::ErrorKind::Other, "{way:?}");
        assert_eq!(err.to_string(), "upstream gone: went away", "{way:?}");
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<UpstreamGone>()),
            Some(&UpstreamGone("went away")),
            "{way:?}: {err:?}"
        );

        // A message as the error.
        let mut reader = way
            .open(b, || stream::iter([Ok("ab"), Err("no more")]))
            .into_reader();
        let mut s = String::new();
        let err = reader.read_to_string(&mut s).unwrap_err();
        assert_eq!(
            (s.as_str(), err.kind(), err.to_string()),
            ("ab", io::ErrorKind::Other, "no more".into())
        );

        // The bridge's own error: inside as it is; `io::Error::from` it for
        // its kind.
        let timeout = b
            .run_timeout(Duration::from_millis(1), std::future::pending::<()>)
            .unwrap_err();
        let timeout2 = b
            .run_timeout(Duration::from_millis(1), std::future::pending::<()>)
            .unwrap_err();
        let mut reader = way
            .open(b, move || stream::iter([Ok("ab"), Err(timeout)]))
            .into_reader();
        let mut s = String::new();
        let err = reader.read_to_string(&mut s).unwrap_err();
        assert_eq!(s, "ab");
        assert_eq!(err.kind(), io::ErrorKind::Other, "{way:?}");
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<executor_bridge::Error>());
        assert!(
            inner.is_some_and(executor_bridge::Error::is_timeout),
            "{way:?}: {err:?}"
        );
        let mut reader = way
            .open(b, move || {
                stream::iter([Ok("ab"), Err(io::Error::from(timeout2))])
            })
            .into_reader();
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{way:?}");
    });
}

/// An error does not end the reader: after `ab`, `TimedOut`, `cd`, a
/// `read_to_end` returns the error with `ab` read, and a retry reads `cd`.
#[test]
fn an_error_does_not_end_the_reader() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Pollster);
        let retry = |reader: &mut dyn Read, what: &str| {
            let mut got = Vec::new();
            let err = reader.read_to_end(&mut got).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{what}");
            assert_eq!(got, b"ab", "{what}");
            let mut rest = Vec::new();
            assert_eq!(reader.read_to_end(&mut rest).unwrap(), 2, "{what}");
            assert_eq!(rest, b"cd", "{what}: the retry");
            assert_eq!(reader.read(&mut [0; 4]).unwrap(), 0, "{what}: the end");
        };
        for way in WAYS {
            let mut reader = way
                .open(&b, || {
                    stream::iter([
                        Ok(&b"ab"[..]),
                        Err(io::Error::from(io::ErrorKind::TimedOut)),
                        Ok(&b"cd"[..]),
                    ])
                })
                .into_reader();
            retry(&mut reader, &format!("{way:?}"));
        }
        let mut reader = b.reader(|| {
            script(&[
                Step::Data(b"ab"),
                Step::Fail(io::ErrorKind::TimedOut),
                Step::Data(b"cd"),
            ])
        });
        retry(&mut reader, "reader");
        let mut reader = b.reader(|| {
            script(&[
                Step::Yield,
                Step::Data(b"ab"),
                Step::Yield,
                Step::Fail(io::ErrorKind::TimedOut),
                Step::Yield,
                Step::Data(b"cd"),
            ])
        });
        retry(&mut reader, "reader, pending between steps");

        // Line by line, an error line between good ones.
        let reader = b.reader(|| {
            script(&[
                Step::Data(b"line 1\nline 2\n"),
                Step::Fail(io::ErrorKind::InvalidData),
                Step::Data(b"line 3\n"),
            ])
        });
        let lines: Vec<Result<String, io::ErrorKind>> =
            reader.lines().map(|l| l.map_err(|e| e.kind())).collect();
        assert_eq!(
            lines,
            [
                Ok("line 1".into()),
                Ok("line 2".into()),
                Err(io::ErrorKind::InvalidData),
                Ok("line 3".into())
            ]
        );
    });
}

/// `Interrupted` from an async reader is retried, never returned.
#[test]
fn an_interrupted_async_read_is_retried() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Pollster);
        let mut reader = b.reader(|| {
            script(&[
                Step::Data(b"ab"),
                Step::Fail(io::ErrorKind::Interrupted),
                Step::Data(b"cd"),
            ])
        });
        let mut got = Vec::new();
        let mut buf = [0; 8];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read returned {e:?}"),
            }
        }
        assert_eq!(got, b"abcd");
    });
}

// ---------------------------------------------------------------------------
// Panics, empty reads, early drop
// ---------------------------------------------------------------------------

/// A panic of the source resumes in `read` with its payload, after every byte
/// before it (ready at once or each after a pending poll).
#[test]
fn a_panic_in_the_source_resumes_in_read() {
    watchdog(LIMIT, || {
        let b = Bridge::builder(Pollster).stream_capacity(16).build();
        for way in WAYS {
            for pending_first in [false, true] {
                let what = format!("{way:?}, pending first {pending_first}");
                let mut reader = way
                    .open(&b, move || {
                        stream::iter(0..3u8).then(move |i| async move {
                            if pending_first {
                                futures_lite::future::yield_now().await;
                            }
                            if i == 2 {
                                panic_any(Payload(7));
                            }
                            Ok::<_, io::Error>(vec![b'a' + i])
                        })
                    })
                    .into_reader();
                let (got, payload) = read_until_panic(&mut reader);
                assert_eq!(got, b"ab", "{what}");
                assert_eq!(
                    payload.downcast_ref::<Payload>(),
                    Some(&Payload(7)),
                    "{what}"
                );
            }
            let mut reader = way
                .open(&b, || {
                    stream::iter(0..2u8).map(|i| {
                        if i == 1 {
                            panic!("source exploded")
                        } else {
                            Ok::<_, io::Error>("z")
                        }
                    })
                })
                .into_reader();
            let (got, payload) = read_until_panic(&mut reader);
            assert_eq!(
                (got.as_slice(), message(&*payload).as_deref()),
                (&b"z"[..], Some("source exploded")),
                "{way:?}"
            );
        }
        // An async reader's panic.
        let mut reader = b.reader(|| {
            script(&[
                Step::Data(b"ab"),
                Step::Yield,
                Step::Data(b"c"),
                Step::Panic(9),
            ])
        });
        let (got, payload) = read_until_panic(&mut reader);
        assert_eq!(got, b"abc");
        assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(9)));
        // A panicking factory.
        let mut reader = b.reader(|| -> Script { panic_any(Payload(11)) });
        let payload = catch_unwind(AssertUnwindSafe(|| reader.read(&mut [0; 4]))).unwrap_err();
        assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(11)));
    });
}

/// `read(&mut [])` returns `Ok(0)` at once, even while the source has no data
/// yet; the reader goes on afterwards.
#[test]
fn an_empty_read_returns_at_once() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Pollster);
        for way in WAYS {
            let (go, wait) = async_channel::bounded::<()>(1);
            let mut reader = way
                .open(&b, move || {
                    stream::once_future(async move {
                        let _ = wait.recv().await;
                        Ok::<_, io::Error>(b"late".to_vec())
                    })
                })
                .into_reader();
            let start = Instant::now();
            assert_eq!(reader.read(&mut []).unwrap(), 0, "{way:?}");
            assert_eq!(reader.read(&mut []).unwrap(), 0, "{way:?}");
            assert!(start.elapsed() < Duration::from_secs(5), "{way:?}");
            go.try_send(()).unwrap();
            let mut s = String::new();
            reader.read_to_string(&mut s).unwrap();
            assert_eq!(s, "late", "{way:?}");
            assert_eq!(reader.read(&mut []).unwrap(), 0, "{way:?}: at the end");

            // A source pending for good.
            let mut reader = way
                .open(&b, stream::pending::<io::Result<Vec<u8>>>)
                .into_reader();
            assert_eq!(reader.read(&mut []).unwrap(), 0, "{way:?}");
        }
        let (go, wait) = async_channel::bounded::<()>(1);
        let mut reader = b.reader(move || {
            use futures::TryStreamExt;
            Box::pin(stream::once_future(async move {
                let _ = wait.recv().await;
                Ok::<_, io::Error>(b"late".to_vec())
            }))
            .into_async_read()
        });
        assert_eq!(reader.read(&mut []).unwrap(), 0);
        go.try_send(()).unwrap();
        let mut s = String::new();
        reader.read_to_string(&mut s).unwrap();
        assert_eq!(s, "late");
    });
}

#[test]
fn dropping_the_reader_early_cancels_the_source() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Pollster);
        for way in WAYS {
            // An endless chunk stream: the reader takes a few bytes and leaves.
            let (guard, dropped) = DropFlag::new();
            let mut reader = way
                .open(&b, move || {
                    stream::repeat(&b"0123456789"[..]).map(move |c| {
                        let _owned = &guard;
                        Ok::<_, io::Error>(c)
                    })
                })
                .into_reader();
            let mut buf = [0; 25];
            reader.read_exact(&mut buf).unwrap();
            assert_eq!(&buf[..], b"0123456789012345678901234", "{way:?}");
            assert!(!is_set(&dropped), "{way:?}");
            drop(reader);
            assert!(
                eventually(Duration::from_secs(10), || is_set(&dropped)),
                "{way:?}: the endless stream was not cancelled"
            );
        }
        // An async reader pending for good after its first bytes.
        let (guard, dropped) = DropFlag::new();
        let mut reader = b.reader(move || Guarded {
            inner: futures_lite::io::AsyncReadExt::chain(
                futures_lite::io::Cursor::new(b"only this".to_vec()),
                Pending,
            ),
            _flag: guard,
        });
        let mut buf = [0; 9];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"only this");
        drop(reader); // while the source waits
        assert!(
            eventually(Duration::from_secs(10), || is_set(&dropped)),
            "the pending reader was not cancelled"
        );
        // An endless async reader, the read-ahead full.
        let (guard, dropped) = DropFlag::new();
        let mut reader = b.reader(move || Guarded {
            inner: Endless {
                taken: Arc::default(),
                largest: Arc::default(),
            },
            _flag: guard,
        });
        reader.read_exact(&mut [0; 100]).unwrap();
        thread::sleep(Duration::from_millis(20));
        drop(reader);
        assert!(
            eventually(Duration::from_secs(10), || is_set(&dropped)),
            "the endless reader was not cancelled"
        );
    });
}

/// An async reader that is pending for good.
struct Pending;

impl AsyncRead for Pending {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------
// `Bridge::reader`: chunking, read-ahead, !Send sources, contexts
// ---------------------------------------------------------------------------

/// The async reader is read in chunks of up to 16 KiB, running ahead of a
/// consumer that stops, up to 8 chunks (plus one in hand), never further.
#[test]
fn the_reader_runs_a_bounded_way_ahead() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Pollster);
        let taken = Arc::new(AtomicUsize::new(0));
        let largest = Arc::new(AtomicUsize::new(0));
        let (t, l) = (Arc::clone(&taken), Arc::clone(&largest));
        let mut reader = b.reader(move || Endless {
            taken: t,
            largest: l,
        });
        let mut byte = [0; 1];
        reader.read_exact(&mut byte).unwrap();
        assert!(
            eventually(Duration::from_secs(10), || taken.load(SeqCst) >= 2 * CHUNK),
            "the reader did not read ahead: {} bytes taken",
            taken.load(SeqCst)
        );
        for _ in 0..3 {
            thread::sleep(Duration::from_millis(30));
            let n = taken.load(SeqCst);
            assert!(
                n <= (CHUNKS_AHEAD + 2) * CHUNK,
                "{n} bytes taken for 1 read"
            );
        }
        assert!(
            largest.load(SeqCst) <= CHUNK,
            "a read of {} bytes",
            largest.load(SeqCst)
        );
        // It goes on when the consumer does.
        let mut lots = vec![0; 40 * CHUNK];
        reader.read_exact(&mut lots).unwrap();
        assert!(lots.iter().all(|&c| c == b'x'));
    });
}

/// `reader` takes a `!Send` async reader, and the reader it returns is
/// `Send`: it works from another thread.
#[test]
fn the_reader_takes_not_send_sources_and_is_send() {
    watchdog(LIMIT, || {
        let b = Bridge::new(Pollster);
        let reader: BlockingReader<Vec<u8>> = b.reader(|| {
            let shared = Rc::new(text(100).into_bytes());
            futures_lite::io::Cursor::new((*shared).clone())
        });
        assert_send(&reader);
        let lines = thread::spawn(move || reader.lines().count())
            .join()
            .unwrap();
        assert_eq!(lines, 100);

        let mut reader = b.iter_direct(chunks).into_reader();
        let mut two = [0; 2];
        reader.read_exact(&mut two).unwrap();
        let rest = thread::spawn(move || {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            rest
        })
        .join()
        .unwrap();
        assert_eq!([&two[..], &rest[..]].concat(), ALL);
    });
}

#[test]
fn debug_shows_the_reader() {
    let b = Bridge::new(Pollster);
    let mut reader = b
        .iter_direct(|| stream::iter([Ok::<_, io::Error>("abcdef")]))
        .into_reader();
    let mut two = [0; 2];
    reader.read_exact(&mut two).unwrap();
    let shown = format!("{reader:?}");
    assert!(shown.starts_with("BlockingReader"), "{shown}");
    assert!(shown.contains("buffered_bytes: 4"), "{shown}");
    assert!(shown.contains("BlockingIter"), "{shown}");
}

/// Both kinds of reader work from every calling context, their source on
/// the adapter's timer.
fn readers_work_in_every_context<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let lines: Vec<Vec<u8>> = text(50)
        .lines()
        .map(|l| format!("{l}\n").into_bytes())
        .collect();
    for ctx in Ctx::all() {
        let lines = lines.clone();
        let (from_reader, from_direct, from_iter) = ctx.run(&b, move |b| {
            let l = lines.clone();
            let from_reader = b.reader(move || slow_source::<R>(l)).lines().count();
            let l = lines.clone();
            let mut from_direct = String::new();
            b.iter_direct(move || slow_chunks::<R>(l))
                .into_reader()
                .read_to_string(&mut from_direct)
                .unwrap();
            let mut from_iter = Vec::new();
            b.iter(move || slow_chunks::<R>(lines))
                .into_reader()
                .read_to_end(&mut from_iter)
                .unwrap();
            (from_reader, from_direct, from_iter)
        });
        assert_eq!(from_reader, 50, "{ctx:?}");
        assert_eq!(from_direct, text(50), "{ctx:?}");
        assert_eq!(from_iter, text(50).into_bytes(), "{ctx:?}");
    }
}
per_runtime!(readers_work_in_every_context);

// ---------------------------------------------------------------------------
// Real sources: files, TCP, HTTP
// ---------------------------------------------------------------------------

/// A file under the temp dir, removed on drop.
#[cfg(any(feature = "tokio", feature = "smol"))]
struct TempFile(std::path::PathBuf);

#[cfg(any(feature = "tokio", feature = "smol"))]
impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "executor-bridge-read-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn open(&self) -> std::fs::File {
        std::fs::File::open(&self.0).unwrap()
    }
}

#[cfg(any(feature = "tokio", feature = "smol"))]
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A std TCP server on 127.0.0.1:0 that sends `first`, waits (at most 5 s)
/// for the test's go-ahead, sends `rest`, closes its write side, then waits
/// (at most 10 s) for the client to close. The thread answers whether the
/// wait timed out and whether the client closed.
#[cfg(any(feature = "tokio", feature = "smol"))]
fn gated_server(
    first: &'static str,
    rest: &'static str,
) -> (
    std::net::SocketAddr,
    std::sync::mpsc::Sender<()>,
    thread::JoinHandle<(bool, bool)>,
) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(first.as_bytes()).unwrap();
        let timed_out = go_rx.recv_timeout(Duration::from_secs(5)).is_err();
        let _ = conn.write_all(rest.as_bytes());
        let _ = conn.shutdown(std::net::Shutdown::Write);
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // A close is an end of file, or a reset if bytes were left unread.
        let closed = match conn.read(&mut [0; 16]) {
            Ok(0) => true,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        };
        (timed_out, closed)
    });
    (addr, go, server)
}

/// A reader over a TCP connection to a [`gated_server`], once it has read
/// the server's first line; the server's go-ahead and its thread.
#[cfg(any(feature = "tokio", feature = "smol"))]
type OverTcp = (
    BlockingReader<Vec<u8>>,
    std::sync::mpsc::Sender<()>,
    thread::JoinHandle<(bool, bool)>,
);

/// The [`OverTcp`] of a [`gated_server`] sending `first` (a line), then
/// `rest`; `connect` makes the reader's factory for the server's address.
#[cfg(any(feature = "tokio", feature = "smol"))]
fn first_line_over_tcp<R, M, A>(
    b: &Bridge<R>,
    first: &'static str,
    rest: &'static str,
    connect: impl FnOnce(std::net::SocketAddr) -> M,
) -> OverTcp
where
    R: executor_bridge::Runtime,
    M: FnOnce() -> A + Send + 'static,
    A: AsyncRead + 'static,
{
    let (addr, go, server) = gated_server(first, rest);
    let mut reader = b.reader(connect(addr));
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, first, "the first line");
    (reader, go, server)
}

/// Over TCP (`open` gives the [`OverTcp`] of a server sending its two
/// arguments), the first line is readable while the server holds the rest
/// back, the rest comes after (a line, then the last bytes, no newline), and
/// the socket is closed once the reader is dropped.
#[cfg(any(feature = "tokio", feature = "smol"))]
fn a_tcp_stream_is_read_live(open: impl FnOnce(&'static str, &'static str) -> OverTcp) {
    let (mut reader, go, server) = open("first line\n", "second line\nthird");
    go.send(()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "second line\n");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "third");
    drop(reader);
    let (timed_out, closed) = server.join().unwrap();
    assert!(!timed_out, "the first line was held back");
    assert!(
        closed,
        "the socket was not closed when the reader was dropped"
    );
}

/// Over TCP (`open` as above), a reader dropped mid-stream, while its source
/// waits on the open socket, closes the socket.
#[cfg(any(feature = "tokio", feature = "smol"))]
fn dropping_a_tcp_reader_mid_stream_closes_the_socket(
    open: impl FnOnce(&'static str, &'static str) -> OverTcp,
) {
    let (reader, go, server) = open("hello\n", "");
    drop(reader); // while the source waits on the open socket
    go.send(()).unwrap();
    let (_, closed) = server.join().unwrap();
    assert!(
        closed,
        "the socket was not closed when the reader was dropped"
    );
}

#[cfg(feature = "tokio")]
mod tokio_sources {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use axum::body::{Body, Bytes};
    use axum::routing::get;
    use axum::Router;
    use executor_bridge::Tokio;
    use futures::FutureExt;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    use super::*;

    fn bridge() -> Bridge<Tokio> {
        Bridge::new(Tokio::new())
    }

    #[test]
    fn a_tokio_file() {
        watchdog(LIMIT, || {
            let contents = text(5_000); // ~170 KB: several 16 KiB chunks
            let file = TempFile::new("tokio", &contents);
            let b = bridge();
            let open = |f: &TempFile| {
                let std_file = f.open();
                move || tokio::fs::File::from_std(std_file).compat()
            };

            let mut all = Vec::new();
            b.reader(open(&file)).read_to_end(&mut all).unwrap();
            assert_eq!(all, contents.as_bytes());

            let pieces = read_in_pieces(&mut b.reader(open(&file)), 1000).unwrap();
            assert_eq!(pieces, contents.as_bytes());
            let bytes = read_in_pieces(&mut b.reader(open(&file)), 1).unwrap();
            assert_eq!(bytes.len(), contents.len());

            let lines: Vec<String> = b
                .reader(open(&file))
                .lines()
                .collect::<io::Result<_>>()
                .unwrap();
            assert_eq!(lines.len(), 5_000);
            assert_eq!(lines[4_999], "line 04999: the quick brown fox");
        });
    }

    /// A tokio file read from every calling context.
    #[test]
    fn a_tokio_file_from_every_context() {
        watchdog(LIMIT, || {
            let contents = text(1_000);
            let file = Arc::new(TempFile::new("tokio-ctx", &contents));
            let b = bridge();
            for ctx in Ctx::all() {
                let f = file.open();
                let all = ctx.run(&b, move |b| {
                    let mut all = String::new();
                    b.reader(move || tokio::fs::File::from_std(f).compat())
                        .read_to_string(&mut all)
                        .unwrap();
                    all
                });
                assert_eq!(all, contents, "{ctx:?}");
            }
        });
    }

    fn tokio_connect(
        addr: SocketAddr,
    ) -> impl FnOnce() -> tokio_util::compat::Compat<tokio::net::TcpStream> {
        move || {
            // Runs on the loop thread, inside the runtime's context.
            let std = std::net::TcpStream::connect(addr).unwrap();
            std.set_nonblocking(true).unwrap();
            tokio::net::TcpStream::from_std(std).unwrap().compat()
        }
    }

    #[test]
    fn a_tokio_tcp_stream_is_read_live() {
        watchdog(LIMIT, || {
            // The bridge outlives the reader: what it checks holds while
            // the bridge's loop threads live on.
            let b = bridge();
            a_tcp_stream_is_read_live(|first, rest| {
                first_line_over_tcp(&b, first, rest, tokio_connect)
            })
        });
    }

    #[test]
    fn dropping_a_tokio_tcp_reader_mid_stream_closes_the_socket() {
        watchdog(LIMIT, || {
            // The bridge outlives the reader: what it checks holds while
            // the bridge's loop threads live on.
            let b = bridge();
            dropping_a_tcp_reader_mid_stream_closes_the_socket(|first, rest| {
                first_line_over_tcp(&b, first, rest, tokio_connect)
            })
        });
    }

    // ----- An axum server, read through reqwest -----

    /// What the server's bodies did.
    #[derive(Default)]
    struct Log {
        produced: AtomicUsize,
        dropped: AtomicUsize,
        completed: AtomicUsize,
    }

    /// A body's state; counts itself dropped (and completed, if it was).
    struct Words {
        log: Arc<Log>,
        n: usize,
        next: usize,
        every: Duration,
        finished: bool,
    }

    impl Words {
        fn finish(mut self) {
            self.finished = true;
        }
    }

    impl Drop for Words {
        fn drop(&mut self) {
            self.log.dropped.fetch_add(1, SeqCst);
            if self.finished {
                self.log.completed.fetch_add(1, SeqCst);
            }
        }
    }

    /// `n` lines `word{i}\n`, one every `every`.
    fn words(log: Arc<Log>, n: usize, every: Duration) -> Body {
        let state = Words {
            log,
            n,
            next: 0,
            every,
            finished: false,
        };
        Body::from_stream(futures::stream::unfold(state, |mut w| async move {
            if w.next == w.n {
                w.finish();
                return None;
            }
            tokio::time::sleep(w.every).await;
            let line = format!("word{}\n", w.next);
            w.next += 1;
            w.log.produced.fetch_add(1, SeqCst);
            Some((Ok::<_, Infallible>(line), w))
        }))
    }

    /// A local axum server on its own runtime: `/words` (20 words, 5 ms
    /// apart), `/endless` (a word every 10 ms), `/broken` (two lines, then the
    /// connection breaks).
    struct Server {
        addr: SocketAddr,
        log: Arc<Log>,
        rt: Option<tokio::runtime::Runtime>,
    }

    impl Server {
        fn start() -> Server {
            let rt = crate::common::multi_thread();
            let log = Arc::new(Log::default());
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let (l1, l2) = (Arc::clone(&log), Arc::clone(&log));
            let app = Router::new()
                .route(
                    "/words",
                    get(move || async move { words(l1, 20, Duration::from_millis(5)) }),
                )
                .route(
                    "/endless",
                    get(move || async move { words(l2, usize::MAX, Duration::from_millis(10)) }),
                )
                .route(
                    "/broken",
                    get(|| async {
                        let ok = futures::stream::iter([
                            Ok::<_, io::Error>(Bytes::from("first\n")),
                            Ok(Bytes::from("second\n")),
                        ]);
                        let broken = futures::stream::once(async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err(io::Error::other("upstream broke"))
                        });
                        Body::from_stream(futures::StreamExt::chain(ok, broken))
                    }),
                );
            rt.spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Server {
                addr,
                log,
                rt: Some(rt),
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(rt) = self.rt.take() {
                rt.shutdown_background();
            }
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// The response body's chunks, as `iter_direct` wants them: a future that
    /// makes the stream, flattened.
    fn body(url: String) -> impl Stream<Item = reqwest::Result<Bytes>> + Send {
        async move { client().get(url).send().await.unwrap().bytes_stream() }.flatten_stream()
    }

    /// An HTTP body as a reader: `reqwest::Error` items need no `map_err`.
    #[test]
    fn an_http_body_as_a_reader() {
        watchdog(LIMIT, || {
            let server = Server::start();
            let b = bridge();
            let expected: Vec<String> = (0..20).map(|i| format!("word{i}")).collect();
            for way in WAYS {
                let url = server.url("/words");
                let lines: Vec<String> = way
                    .open(&b, move || body(url))
                    .into_reader()
                    .lines()
                    .collect::<io::Result<_>>()
                    .unwrap();
                assert_eq!(lines, expected, "{way:?}");
            }
            // `bytes_stream()` made in the factory from a response fetched first.
            let url = server.url("/words");
            let response = b.run(move || async move { client().get(url).send().await.unwrap() });
            let mut all = String::new();
            b.iter(move || response.bytes_stream())
                .into_reader()
                .read_to_string(&mut all)
                .unwrap();
            assert_eq!(
                all,
                expected
                    .iter()
                    .map(|w| format!("{w}\n"))
                    .collect::<String>()
            );
            assert!(
                eventually(Duration::from_secs(10), || server
                    .log
                    .completed
                    .load(SeqCst)
                    == 3),
                "{} bodies completed",
                server.log.completed.load(SeqCst)
            );
        });
    }

    /// A body that breaks mid-way: the bytes before, then `ErrorKind::Other`
    /// with the `reqwest::Error` inside.
    #[test]
    fn a_broken_http_body_reports_the_reqwest_error() {
        watchdog(LIMIT, || {
            let server = Server::start();
            let b = bridge();
            for way in WAYS {
                let url = server.url("/broken");
                let mut reader = way.open(&b, move || body(url)).into_reader();
                let mut got = Vec::new();
                let err = reader.read_to_end(&mut got).unwrap_err();
                assert_eq!(got, b"first\nsecond\n", "{way:?}");
                assert_eq!(err.kind(), io::ErrorKind::Other, "{way:?}: {err:?}");
                assert!(
                    err.get_ref().is_some_and(|e| e.is::<reqwest::Error>()),
                    "{way:?}: not a reqwest::Error inside: {err:?}"
                );
            }
        });
    }

    /// Dropping the reader mid-body closes the connection: the server's body
    /// is dropped, unfinished.
    #[test]
    fn dropping_an_http_body_reader_cancels_the_upstream() {
        watchdog(LIMIT, || {
            let server = Server::start();
            let b = bridge();
            for (i, way) in WAYS.into_iter().enumerate() {
                let url = server.url("/endless");
                let mut reader = way.open(&b, move || body(url)).into_reader();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert_eq!(line, "word0\n", "{way:?}");
                drop(reader);
                assert!(
                    eventually(Duration::from_secs(10), || server.log.dropped.load(SeqCst)
                        == i + 1),
                    "{way:?}: the server kept sending: {} words",
                    server.log.produced.load(SeqCst)
                );
            }
            assert_eq!(server.log.completed.load(SeqCst), 0);
        });
    }
}

#[cfg(feature = "smol")]
mod smol_sources {
    use executor_bridge::Smol;

    use super::*;

    #[test]
    fn a_smol_file() {
        watchdog(LIMIT, || {
            let contents = text(5_000);
            let file = TempFile::new("smol", &contents);
            let b = Bridge::new(Smol);

            let f = file.open();
            let mut all = String::new();
            b.reader(move || smol::fs::File::from(f))
                .read_to_string(&mut all)
                .unwrap();
            assert_eq!(all, contents);

            let f = file.open();
            let pieces =
                read_in_pieces(&mut b.reader(move || smol::fs::File::from(f)), 777).unwrap();
            assert_eq!(pieces, contents.as_bytes());

            let f = file.open();
            let last = b
                .reader(move || smol::fs::File::from(f))
                .lines()
                .last()
                .unwrap()
                .unwrap();
            assert_eq!(last, "line 04999: the quick brown fox");
        });
    }

    /// The factory of a smol reader over a connection to `addr`, made here.
    fn smol_connect(addr: std::net::SocketAddr) -> impl FnOnce() -> smol::net::TcpStream {
        let std = std::net::TcpStream::connect(addr).unwrap();
        move || smol::net::TcpStream::try_from(std).unwrap()
    }

    #[test]
    fn a_smol_tcp_stream_is_read_live() {
        watchdog(LIMIT, || {
            // The bridge outlives the reader, as above.
            let b = Bridge::new(Smol);
            a_tcp_stream_is_read_live(|first, rest| {
                first_line_over_tcp(&b, first, rest, smol_connect)
            })
        });
    }

    #[test]
    fn dropping_a_smol_tcp_reader_mid_stream_closes_the_socket() {
        watchdog(LIMIT, || {
            // The bridge outlives the reader, as above.
            let b = Bridge::new(Smol);
            dropping_a_tcp_reader_mid_stream_closes_the_socket(|first, rest| {
                first_line_over_tcp(&b, first, rest, smol_connect)
            })
        });
    }
}
