//! `Bridge::reader` (an async reader as `std::io::Read + BufRead + Send`) and
//! `BlockingIter::into_reader` (a stream of byte chunks as the same) with real
//! sources: files (tokio's, through `tokio_util::compat`, and smol's), TCP
//! streams from a local server, chunked streams and an HTTP body. Partial
//! reads, `read_to_end`, `BufRead::lines`, errors mid-stream arriving as
//! `io::Error`, and an early drop cancelling the source.

#[path = "common/mod.rs"]
mod common;

#[cfg(feature = "tokio")]
#[allow(dead_code)]
#[path = "../examples/sse_relay.rs"]
mod sse_relay;

use std::io::{self, BufRead, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use common::{eventually, watchdog};
use executor_bridge::{BlockingReader, Bridge, Pollster};
use futures::stream::{self, StreamExt, TryStreamExt};

/// `n` numbered lines, about 40 bytes each.
fn text(n: usize) -> String {
    (0..n)
        .map(|i| format!("line {i:05}: the quick brown fox\n"))
        .collect()
}

/// A file under the temp dir, removed on drop.
#[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
struct TempFile(std::path::PathBuf);

#[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "executor-bridge-reader-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn open(&self) -> std::fs::File {
        std::fs::File::open(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn drop_flag() -> (DropFlag, Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(false));
    (DropFlag(flag.clone()), flag)
}

/// An async reader that says when it is dropped.
struct Guarded<R> {
    inner: R,
    _flag: DropFlag,
}

impl<R: futures::AsyncRead + Unpin> futures::AsyncRead for Guarded<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Reads everything with a small buffer: many partial reads, across chunk
/// boundaries.
fn read_in_small_pieces(reader: &mut impl Read, piece: usize) -> io::Result<Vec<u8>> {
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

/// A std TCP server on 127.0.0.1:0 that sends `first`, waits (at most 5 s)
/// for the test's go-ahead, sends `rest`, closes its write side, then waits
/// (at most 10 s) for the client to close. Returns the address, the go-ahead
/// sender, and the server thread, which answers whether the wait timed out
/// and whether the client closed.
#[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
fn gated_server(
    first: String,
    rest: String,
) -> (
    std::net::SocketAddr,
    mpsc::Sender<()>,
    thread::JoinHandle<(bool, bool)>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_tx, got_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(first.as_bytes()).unwrap();
        let timed_out = got_rx.recv_timeout(Duration::from_secs(5)).is_err();
        conn.write_all(rest.as_bytes()).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let closed = matches!(conn.read(&mut [0; 16]), Ok(0));
        (timed_out, closed)
    });
    (addr, got_tx, server)
}

// ---------------------------------------------------------------------------
// Chunked streams through `into_reader` (no runtime needed).
// ---------------------------------------------------------------------------

#[test]
fn chunks_read_as_one_byte_stream() {
    watchdog(30, || {
        let bridge = Bridge::new(Pollster);
        let chunks = || {
            stream::iter(["ab", "c\nde", "", "f\n", "", "last line, no newline"])
                .map(Ok::<_, io::Error>)
        };

        let lines: Vec<String> = bridge
            .iter(chunks)
            .into_reader()
            .lines()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(lines, ["abc", "def", "last line, no newline"]);

        let mut all = Vec::new();
        bridge
            .iter(chunks)
            .into_reader()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, b"abc\ndef\nlast line, no newline");

        // One byte at a time.
        let bytes = read_in_small_pieces(&mut bridge.iter(chunks).into_reader(), 1).unwrap();
        assert_eq!(bytes, all);

        // A read never spans two chunks, but read_exact does.
        let mut reader = bridge.iter(chunks).into_reader();
        let mut buf = [0; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
        let mut five = [0; 5];
        reader.read_exact(&mut five).unwrap();
        assert_eq!(&five, b"c\ndef");
        // fill_buf / consume.
        assert_eq!(reader.fill_buf().unwrap(), b"\n");
        reader.consume(1);
        assert_eq!(reader.fill_buf().unwrap(), b"last line, no newline");
        reader.consume(5);
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "line, no newline");
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
        assert_eq!(reader.read(&mut buf).unwrap(), 0);

        // Chunk types: Vec<u8>, &[u8], String, and an empty stream.
        let v: Vec<io::Result<Vec<u8>>> = vec![Ok(b"x".to_vec()), Ok(b"y".to_vec())];
        let mut s = String::new();
        bridge
            .iter(move || stream::iter(v))
            .into_reader()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "xy");
        let mut s = String::new();
        bridge
            .iter(|| stream::iter([Ok::<_, io::Error>(String::from("é")), Ok("!".into())]))
            .into_reader()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "é!");
        let mut empty = bridge
            .iter(stream::empty::<io::Result<&'static [u8]>>)
            .into_reader();
        assert_eq!(empty.read(&mut buf).unwrap(), 0);
    });
}

#[test]
fn a_large_stream_of_small_chunks_arrives_intact() {
    watchdog(60, || {
        let bridge = Bridge::new(Pollster);
        let expected = text(20_000); // ~700 KB, 20 000 chunks
        let lines: Vec<String> = expected.lines().map(|l| format!("{l}\n")).collect();
        let reader = bridge
            .iter(move || stream::iter(lines).map(Ok::<_, io::Error>))
            .into_reader();
        let mut n = 0;
        for (i, line) in reader.lines().enumerate() {
            assert_eq!(line.unwrap(), format!("line {i:05}: the quick brown fox"));
            n += 1;
        }
        assert_eq!(n, 20_000);
    });
}

#[derive(Debug)]
struct UpstreamGone(&'static str);

impl From<UpstreamGone> for io::Error {
    fn from(e: UpstreamGone) -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, e.0)
    }
}

#[test]
fn an_error_mid_stream_arrives_as_an_io_error_after_the_bytes_before_it() {
    watchdog(30, || {
        let bridge = Bridge::new(Pollster);

        // io::Error items.
        let mut reader = bridge
            .iter(|| {
                stream::iter(vec![
                    Ok(b"hello ".to_vec()),
                    Ok(b"world".to_vec()),
                    Err(io::Error::new(io::ErrorKind::ConnectionReset, "boom")),
                ])
            })
            .into_reader();
        let mut got = Vec::new();
        let err = reader.read_to_end(&mut got).unwrap_err();
        assert_eq!(got, b"hello world", "bytes before the error are kept");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(err.to_string(), "boom");

        // A custom error type converted with `Into<io::Error>`.
        let mut reader = bridge
            .iter(|| stream::iter([Ok("partial"), Err(UpstreamGone("upstream went away"))]))
            .into_reader();
        let mut buf = [0; 64];
        assert_eq!(reader.read(&mut buf).unwrap(), 7);
        let err = reader.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(err.to_string(), "upstream went away");

        // The bridge's own error type converts too.
        let mut reader = bridge
            .iter(|| {
                stream::iter([
                    Ok(b"ab".as_slice()),
                    Err(executor_bridge::Error::Timeout(Duration::from_millis(5))),
                ])
            })
            .into_reader();
        let mut s = String::new();
        let err = reader.read_to_string(&mut s).unwrap_err();
        assert_eq!(s, "ab");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        // Through `Bridge::reader`: an AsyncRead failing after some bytes.
        let mut reader = bridge.reader(|| {
            stream::iter(vec![
                Ok(b"line 1\nline 2\n".to_vec()),
                Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt")),
            ])
            .into_async_read()
        });
        let mut lines = (&mut reader).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "line 1");
        assert_eq!(lines.next().unwrap().unwrap(), "line 2");
        let err = lines.next().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "corrupt");
        // After the error the reader does not hang (the source ended).
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("{n} bytes after the error"),
        }
    });
}

/// Reads one byte at a time until the source's panic resumes; returns the
/// bytes read before it and the panic's message.
fn read_until_panic(reader: &mut impl Read) -> (Vec<u8>, String) {
    let mut buf = [0; 1];
    let mut got = Vec::new();
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
        let n = reader.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }))
    .unwrap_err();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .unwrap_or("?")
        .to_owned();
    (got, message)
}

#[test]
fn a_panic_in_the_source_resumes_in_read() {
    watchdog(30, || {
        let bridge = Bridge::new(Pollster);
        // Each chunk comes after a pending poll, as from a socket.
        let mut reader = bridge
            .iter(|| {
                stream::iter(0..3u8).then(|i| async move {
                    yield_now().await;
                    if i == 2 {
                        panic!("source exploded");
                    }
                    Ok::<_, io::Error>(vec![b'a' + i])
                })
            })
            .into_reader();
        let (got, message) = read_until_panic(&mut reader);
        assert_eq!(got, b"ab");
        assert_eq!(message, "source exploded");
    });
}

/// BUG (src/iter.rs, `produce`): chunks the source yielded in the same batch
/// as its panic are dropped with the batch, so the bytes before a panic are
/// lost when they were ready at once, and kept when they were not.
#[test]
fn bytes_ready_before_a_panic_are_not_lost() {
    watchdog(30, || {
        let bridge = Bridge::new(Pollster);
        let mut reader = bridge
            .iter(|| {
                stream::iter(0..3u8).map(|i| {
                    if i == 2 {
                        panic!("source exploded");
                    }
                    Ok::<_, io::Error>(vec![b'a' + i])
                })
            })
            .into_reader();
        let (got, message) = read_until_panic(&mut reader);
        assert_eq!(message, "source exploded");
        assert_eq!(got, b"ab", "bytes the source yielded before panicking");
    });
}

/// Pending once (waking itself), then ready.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

#[test]
fn dropping_the_reader_early_cancels_the_source() {
    watchdog(30, || {
        let bridge = Bridge::new(Pollster);

        // An endless chunked stream: the reader takes a few bytes and leaves.
        let (guard, dropped) = drop_flag();
        let mut reader = bridge
            .iter(move || {
                stream::repeat(b"0123456789".as_slice()).map(move |c| {
                    let _keep = &guard; // owned by the stream
                    Ok::<_, io::Error>(c)
                })
            })
            .into_reader();
        let mut buf = [0; 25];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..12], b"012345678901");
        assert!(!dropped.load(Ordering::SeqCst));
        drop(reader);
        assert!(
            eventually(Duration::from_secs(5), || dropped.load(Ordering::SeqCst)),
            "the endless stream was not cancelled"
        );

        // An async reader that is pending forever after its first bytes.
        let (guard, dropped) = drop_flag();
        let mut reader = bridge.reader(move || Guarded {
            inner: stream::iter(vec![Ok::<_, io::Error>(b"only this".to_vec())])
                .chain(stream::pending())
                .into_async_read(),
            _flag: guard,
        });
        let mut buf = [0; 9];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"only this");
        drop(reader); // while the source waits
        assert!(
            eventually(Duration::from_secs(5), || dropped.load(Ordering::SeqCst)),
            "the pending reader was not cancelled"
        );
    });
}

#[test]
fn the_reader_is_send_and_works_from_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    watchdog(30, || {
        let bridge = Bridge::new(Pollster);
        let reader: BlockingReader<Vec<u8>> =
            bridge.reader(|| futures::io::Cursor::new(text(100).into_bytes()));
        assert_send(&reader);
        let lines = thread::spawn(move || reader.lines().count())
            .join()
            .unwrap();
        assert_eq!(lines, 100);
    });
}

// ---------------------------------------------------------------------------
// tokio sources (tokio::fs::File, tokio::net::TcpStream, an HTTP body).
// ---------------------------------------------------------------------------

#[cfg(feature = "tokio")]
mod tokio_sources {
    use super::*;

    use executor_bridge::Tokio;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    use super::sse_relay;

    fn bridge() -> Bridge<Tokio> {
        Bridge::new(Tokio::new())
    }

    #[test]
    fn a_tokio_file() {
        watchdog(30, || {
            let contents = text(5_000); // ~190 KB: several 16 KiB chunks
            let file = TempFile::new("tokio", &contents);
            let bridge = bridge();

            let open = |f: &TempFile| {
                let std_file = f.open();
                move || tokio::fs::File::from_std(std_file).compat()
            };

            let mut all = Vec::new();
            bridge.reader(open(&file)).read_to_end(&mut all).unwrap();
            assert_eq!(all, contents.as_bytes());

            let pieces = read_in_small_pieces(&mut bridge.reader(open(&file)), 1000).unwrap();
            assert_eq!(pieces, contents.as_bytes());

            let lines: Vec<String> = bridge
                .reader(open(&file))
                .lines()
                .collect::<io::Result<_>>()
                .unwrap();
            assert_eq!(lines.len(), 5_000);
            assert_eq!(lines[4_999], "line 04999: the quick brown fox");
        });
    }

    #[test]
    fn a_tokio_tcp_stream_is_read_live() {
        watchdog(30, || {
            let (addr, got_first, server) =
                gated_server("first line\n".into(), "second line\nthird".into());
            let bridge = bridge();
            let mut reader = bridge.reader(move || {
                // Runs on the loop thread, inside the runtime's context.
                let std = std::net::TcpStream::connect(addr).unwrap();
                std.set_nonblocking(true).unwrap();
                tokio::net::TcpStream::from_std(std).unwrap().compat()
            });
            // The first line is readable while the server still holds the
            // rest back: the reader does not wait for a full buffer.
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "first line\n");
            got_first.send(()).unwrap();
            let mut rest = String::new();
            reader.read_to_string(&mut rest).unwrap();
            assert_eq!(rest, "second line\nthird");
            drop(reader);
            let (timed_out, closed) = server.join().unwrap();
            assert!(!timed_out, "the first line was held back");
            assert!(
                closed,
                "the socket was not closed when the reader was dropped"
            );
        });
    }

    #[test]
    fn dropping_a_tcp_reader_mid_stream_closes_the_socket() {
        watchdog(30, || {
            let (addr, go_on, server) = gated_server("hello\n".into(), String::new());
            let bridge = bridge();
            let mut reader = bridge.reader(move || {
                let std = std::net::TcpStream::connect(addr).unwrap();
                std.set_nonblocking(true).unwrap();
                tokio::net::TcpStream::from_std(std).unwrap().compat()
            });
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "hello\n");
            // Dropped while the source waits on the open socket...
            drop(reader);
            // ...then the server looks: its read sees the close.
            go_on.send(()).unwrap();
            let (_, closed) = server.join().unwrap();
            assert!(
                closed,
                "the socket was not closed when the reader was dropped"
            );
        });
    }

    #[test]
    fn an_http_body_as_a_reader() {
        watchdog(30, || {
            let words: Vec<String> = (0..20).map(|i| format!("word{i}\n")).collect();
            let upstream =
                sse_relay::Upstream::start(words.clone(), Duration::from_millis(5)).unwrap();
            let url = upstream.url();
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let bridge = bridge();
            let reader = bridge
                .iter(move || {
                    stream::once(async move { client.post(url).body("go").send().await })
                        .map_ok(|response| response.bytes_stream())
                        .try_flatten()
                        .map_err(io::Error::other)
                })
                .into_reader();
            let lines: Vec<String> = reader.lines().collect::<io::Result<_>>().unwrap();
            let expected: Vec<&str> = words.iter().map(|w| w.trim_end()).collect();
            assert_eq!(lines, expected);
            assert_eq!(upstream.log().completed(), 1);
        });
    }

    #[test]
    fn dropping_an_http_body_reader_cancels_the_upstream() {
        watchdog(30, || {
            let words: Vec<String> = (0..200).map(|i| format!("word{i}\n")).collect();
            let upstream = sse_relay::Upstream::start(words, Duration::from_millis(20)).unwrap();
            let url = upstream.url();
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let bridge = bridge();
            let mut reader = bridge
                .iter(move || {
                    stream::once(async move { client.post(url).body("go").send().await })
                        .map_ok(|response| response.bytes_stream())
                        .try_flatten()
                        .map_err(io::Error::other)
                })
                .into_reader();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "word0\n");
            drop(reader);
            assert!(
                eventually(Duration::from_secs(5), || upstream.log().cancelled() == 1),
                "the upstream kept going: {} words",
                upstream.log().produced().len()
            );
            assert!(upstream.log().produced().len() < 100);
        });
    }

    #[test]
    fn reading_from_inside_tokio_runtimes() {
        watchdog(30, || {
            let contents = text(1_000);
            let file = TempFile::new("tokio-ctx", &contents);
            let bridge = bridge();

            // A current_thread runtime (its thread blocks while reading; the
            // source runs on a loop thread).
            let (b, f) = (bridge.clone(), file.open());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let n = rt.block_on(async move {
                let reader = b.reader(move || tokio::fs::File::from_std(f).compat());
                reader.lines().count()
            });
            assert_eq!(n, 1_000);

            // A multi_thread worker (handed off while it blocks).
            let (b, f) = (bridge.clone(), file.open());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let all = rt.block_on(async move {
                tokio::spawn(async move {
                    let mut all = String::new();
                    b.reader(move || tokio::fs::File::from_std(f).compat())
                        .read_to_string(&mut all)
                        .unwrap();
                    all
                })
                .await
                .unwrap()
            });
            assert_eq!(all, contents);
        });
    }
}

// ---------------------------------------------------------------------------
// smol sources (smol::fs::File, smol::net::TcpStream).
// ---------------------------------------------------------------------------

#[cfg(feature = "smol")]
mod smol_sources {
    use super::*;

    use executor_bridge::Smol;

    #[test]
    fn a_smol_file() {
        watchdog(30, || {
            let contents = text(5_000);
            let file = TempFile::new("smol", &contents);
            let bridge = Bridge::new(Smol::new());

            let f = file.open();
            let mut all = String::new();
            bridge
                .reader(move || smol::fs::File::from(f))
                .read_to_string(&mut all)
                .unwrap();
            assert_eq!(all, contents);

            let f = file.open();
            let pieces =
                read_in_small_pieces(&mut bridge.reader(move || smol::fs::File::from(f)), 777)
                    .unwrap();
            assert_eq!(pieces, contents.as_bytes());

            let f = file.open();
            let last = bridge
                .reader(move || smol::fs::File::from(f))
                .lines()
                .last()
                .unwrap()
                .unwrap();
            assert_eq!(last, "line 04999: the quick brown fox");
        });
    }

    #[test]
    fn a_smol_tcp_stream_is_read_live() {
        watchdog(30, || {
            let (addr, got_first, server) =
                gated_server("first line\n".into(), "second line\n".into());
            let bridge = Bridge::new(Smol::new());
            let std = std::net::TcpStream::connect(addr).unwrap();
            let mut reader = bridge.reader(move || smol::net::TcpStream::try_from(std).unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "first line\n");
            got_first.send(()).unwrap();
            let rest: Vec<String> = reader.lines().collect::<io::Result<_>>().unwrap();
            assert_eq!(rest, ["second line"]);
            let (timed_out, closed) = server.join().unwrap();
            assert!(!timed_out, "the first line was held back");
            assert!(closed);
        });
    }

    #[test]
    fn dropping_a_smol_tcp_reader_mid_stream_closes_the_socket() {
        watchdog(30, || {
            let (addr, go_on, server) = gated_server("hello\n".into(), String::new());
            let bridge = Bridge::new(Smol::new());
            let std = std::net::TcpStream::connect(addr).unwrap();
            let mut reader = bridge.reader(move || smol::net::TcpStream::try_from(std).unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "hello\n");
            drop(reader); // while the source waits on the open socket
            go_on.send(()).unwrap();
            let (_, closed) = server.join().unwrap();
            assert!(
                closed,
                "the socket was not closed when the reader was dropped"
            );
        });
    }
}
