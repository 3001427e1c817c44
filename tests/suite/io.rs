//! Blocking IO into and out of async objects: [`Bridge::writer`] (pipelined,
//! bounded, errors never lost, finished on drop, cancelled on a panic),
//! [`Bridge::io`] (direct `Read`/`Write`/`BufRead`/`Seek`, nothing ahead or
//! behind) and [`Bridge::sink`] (bounded, ordered, the consumer's output and
//! panic back in `close`). Each from every calling context on every adapter
//! over scripted objects that wait on the adapter's own timer, then over real
//! parts: a reqwest upload to axum, tokio and smol sockets, tokio and
//! async-std files.
// The servers and temporary files below serve the tests of one runtime or
// another: without all three runtimes some of them go unused.
#![cfg_attr(
    not(all(feature = "tokio", feature = "smol", feature = "async-std")),
    allow(dead_code)
)]

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::thread;
use std::time::Duration;

use executor_bridge::{BlockingWriter, Bridge, Runtime, SendError};
use futures_lite::{AsyncRead, AsyncWrite, StreamExt};

use crate::common::{
    each_ctx, eventually, is_set, per_runtime, threads_named, watchdog, BoxFuture, Ctx, DropFlag,
    Payload, TestRuntime, LIMIT,
};

const KIB: usize = 1024;
/// The writer's chunk, as documented.
const CHUNK: usize = 64 * KIB;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` bytes of a pattern that shows a byte out of place.
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A wait before an operation: given the operation's index, maybe a future
/// to await first.
type Script = Box<dyn FnMut(usize) -> Option<BoxFuture<()>> + Send>;

/// Every `every`-th operation first naps on the runtime's own timer.
fn naps<R: TestRuntime>(every: usize) -> Script {
    Box::new(move |i| (i % every == every - 1).then(|| R::sleep(ms(1))))
}

/// A [`Script`] being played: the wait in progress, if any.
struct Waits {
    script: Script,
    waiting: Option<BoxFuture<()>>,
    /// Whether the script was asked about the operation about to happen.
    armed: bool,
}

impl Waits {
    fn new(script: Script) -> Waits {
        Waits {
            script,
            waiting: None,
            armed: false,
        }
    }

    /// Runs the script's wait for operation `index`, once; ready when the
    /// operation may happen.
    fn poll(&mut self, index: usize, cx: &mut Context<'_>) -> Poll<()> {
        if !self.armed {
            self.waiting = (self.script)(index);
            self.armed = true;
        }
        if let Some(w) = &mut self.waiting {
            ready!(w.as_mut().poll(cx));
            self.waiting = None;
        }
        self.armed = false;
        Poll::Ready(())
    }
}

/// What a [`Recorder`] was given.
#[derive(Default)]
struct Seen {
    data: Vec<u8>,
    flushes: usize,
    closed: bool,
    /// `flushes` when it was closed.
    flushes_at_close: usize,
    dropped: bool,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("bytes", &self.data.len())
            .field("flushes", &self.flushes)
            .field("closed", &self.closed)
            .field("dropped", &self.dropped)
            .finish()
    }
}

/// A scripted `AsyncWrite` that keeps what it is given.
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    waits: Waits,
    writes: usize,
    /// Fails writes once this many bytes were taken.
    fail_at: Option<usize>,
    fail_flush: bool,
    fail_close: bool,
}

fn failure() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "the disk said no")
}

fn is_failure(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.to_string() == "the disk said no"
}

impl Recorder {
    fn new(script: Script) -> (Recorder, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let rec = Recorder {
            seen: seen.clone(),
            waits: Waits::new(script),
            writes: 0,
            fail_at: None,
            fail_flush: false,
            fail_close: false,
        };
        (rec, seen)
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        ready!(me.waits.poll(me.writes, cx));
        me.writes += 1;
        let mut seen = lock(&me.seen);
        let room = me
            .fail_at
            .map_or(usize::MAX, |at| at.saturating_sub(seen.data.len()));
        if room == 0 {
            return Poll::Ready(Err(failure()));
        }
        let n = buf.len().min(room);
        seen.data.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fail_flush {
            return Poll::Ready(Err(failure()));
        }
        lock(&self.seen).flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fail_close {
            return Poll::Ready(Err(failure()));
        }
        let mut seen = lock(&self.seen);
        seen.closed = true;
        seen.flushes_at_close = seen.flushes;
        Poll::Ready(Ok(()))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        lock(&self.seen).dropped = true;
    }
}

/// A scripted `AsyncRead` over `data`, at most `piece` bytes a read.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    piece: usize,
    waits: Waits,
    reads: usize,
    /// Panics with `Payload(n)` at read number `n`.
    panic_at: Option<usize>,
}

impl Trickle {
    fn new(data: Vec<u8>, piece: usize, script: Script) -> Trickle {
        Trickle {
            data,
            pos: 0,
            piece,
            waits: Waits::new(script),
            reads: 0,
            panic_at: None,
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        ready!(me.waits.poll(me.reads, cx));
        if me.panic_at == Some(me.reads) {
            panic_any(Payload(me.reads as u32));
        }
        me.reads += 1;
        let n = buf.len().min(me.piece).min(me.data.len() - me.pos);
        buf[..n].copy_from_slice(&me.data[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(n))
    }
}

/// Writes `data` in pieces of varied sizes.
fn write_varied(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let sizes = [1, 7, 100, 4096, 65_536, 70_000, 3];
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - at);
        out.write_all(&data[at..at + n])?;
        at += n;
        i += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The writer, over a scripted sink, from every context.
// ---------------------------------------------------------------------------

fn writer_delivers_every_byte_in_order_and_closes_the_sink<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let (sink, seen) = Recorder::new(naps::<R>(5));
        let data = pattern(300 * KIB + 17, 1);
        let (want, s) = (data.clone(), seen.clone());
        ctx.run(bridge, move |b| {
            let mut out = b.writer(move || sink);
            write_varied(&mut out, &data[..100 * KIB]).unwrap();
            out.flush().unwrap();
            // Everything written so far reached the sink, then its flush ran.
            {
                let seen = lock(&s);
                assert_eq!(seen.data.len(), 100 * KIB, "{ctx:?}");
                assert_eq!(seen.flushes, 1, "{ctx:?}");
                assert!(!seen.closed, "{ctx:?}");
            }
            write_varied(&mut out, &data[100 * KIB..]).unwrap();
            out.close().unwrap();
        });
        // Closed before `close` returned; dropped on its loop thread right after.
        assert!(lock(&seen).closed, "{ctx:?}");
        assert!(eventually(ms(10_000), || lock(&seen).dropped), "{ctx:?}");
        let seen = lock(&seen);
        assert!(
            seen.data == want,
            "{ctx:?}: {} of {} bytes, or out of order",
            seen.data.len(),
            want.len()
        );
    });
}

fn writer_errors_reach_the_next_call_and_every_later_one<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        // A write that fails mid-stream.
        let (mut sink, seen) = Recorder::new(naps::<R>(3));
        sink.fail_at = Some(3 * CHUNK + 5);
        ctx.run(bridge, move |b| {
            let mut out = b.writer(move || sink);
            let data = pattern(CHUNK, 2);
            let mut written = 0;
            let err = loop {
                match out.write(&data) {
                    Ok(n) => written += n,
                    Err(e) => break e,
                }
                assert!(written < 64 * CHUNK, "{ctx:?}: the error never came");
            };
            assert!(is_failure(&err), "{ctx:?}: {err:?}");
            assert!(
                written >= 3 * CHUNK,
                "{ctx:?}: failed after {written} bytes"
            );
            let later = [out.write(b"x").map(drop), out.flush(), out.write_all(b"y")];
            for e in later {
                assert!(is_failure(&e.unwrap_err()), "{ctx:?}");
            }
            assert!(is_failure(&out.close().unwrap_err()), "{ctx:?}");
            // Closed already: the error again, never a late `Ok`.
            assert!(is_failure(&out.close().unwrap_err()), "{ctx:?}");
        });
        assert_eq!(lock(&seen).data.len(), 3 * CHUNK + 5, "{ctx:?}");

        // A write of the last, buffered bytes fails: close reports it.
        let (mut sink, _) = Recorder::new(naps::<R>(2));
        sink.fail_at = Some(0);
        ctx.run(bridge, move |b| {
            let mut out = b.writer(move || sink);
            out.write_all(b"only a few bytes").unwrap();
            assert!(is_failure(&out.close().unwrap_err()), "{ctx:?}");
        });

        // A flush fails; a close fails.
        let (mut sink, _) = Recorder::new(naps::<R>(2));
        sink.fail_flush = true;
        let (mut sink2, seen2) = Recorder::new(naps::<R>(2));
        sink2.fail_close = true;
        ctx.run(bridge, move |b| {
            let mut out = b.writer(move || sink);
            out.write_all(b"abc").unwrap();
            assert!(is_failure(&out.flush().unwrap_err()), "{ctx:?}");
            assert!(is_failure(&out.write(b"d").unwrap_err()), "{ctx:?}");
            assert!(is_failure(&out.close().unwrap_err()), "{ctx:?}");

            let mut out = b.writer(move || sink2);
            out.write_all(b"abc").unwrap();
            out.flush().unwrap();
            assert!(is_failure(&out.close().unwrap_err()), "{ctx:?}");
        });
        assert_eq!(lock(&seen2).data, b"abc", "{ctx:?}");
    });
}

fn a_closed_writer_refuses_writes_and_closes_once<R: TestRuntime>() {
    let bridge = Bridge::new(R::make());
    let (sink, seen) = Recorder::new(naps::<R>(2));
    let mut out = bridge.writer(move || sink);
    out.write_all(b"hello").unwrap();
    out.close().unwrap();
    assert_eq!(
        out.write(b"more").unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
    out.close().unwrap();
    drop(out);
    let seen = lock(&seen);
    assert_eq!(seen.data, b"hello");
    assert!(seen.closed);
}

/// `close` commits, a drop aborts: a writer dropped without `close`, by an
/// early return (`?`) as much as during a panic, drops its sink without
/// closing it and writes nothing more, so that the sink's consumer never
/// takes half a body for a whole one.
fn a_writer_dropped_without_close_is_aborted<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        for panics in [false, true] {
            // The sink waits on a gate that opens only after the drop: what
            // was written is still queued when the writer is dropped.
            let (gate_tx, gate) = async_channel::bounded::<()>(1);
            let script: Script = Box::new(move |_| {
                let gate = gate.clone();
                Some(Box::pin(async move {
                    let _ = gate.recv().await;
                }))
            });
            let (sink, seen) = Recorder::new(script);
            let outcome = ctx.run(bridge, move |b| {
                catch_unwind(AssertUnwindSafe(|| -> io::Result<()> {
                    let mut out = b.writer(move || sink);
                    out.write_all(&pattern(3 * CHUNK + 10, 4))?;
                    if panics {
                        panic_any(Payload(9));
                    }
                    // What a `?` on a failed read of the body's source does.
                    Err(io::Error::other("the source failed"))?
                }))
            });
            let case = format!("{ctx:?}, {}", if panics { "panic" } else { "early return" });
            match outcome {
                Ok(Err(e)) if !panics => assert_eq!(e.to_string(), "the source failed", "{case}"),
                Err(p) if panics => {
                    assert_eq!(p.downcast_ref::<Payload>(), Some(&Payload(9)), "{case}")
                }
                other => panic!("{case}: {:?}", other.map_err(|_| "a panic")),
            }
            assert!(
                eventually(ms(10_000), || lock(&seen).dropped),
                "{case}: the aborted sink was never dropped"
            );
            drop(gate_tx);
            let seen = lock(&seen);
            assert!(!seen.closed, "{case}: an aborted sink was closed");
            assert!(
                seen.data.is_empty(),
                "{case}: {} bytes written after the abort",
                seen.data.len()
            );
        }
    });
}

fn a_panicking_sink_resumes_in_the_writers_next_call<R: TestRuntime>() {
    struct Bomb;
    impl AsyncWrite for Bomb {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            panic_any(Payload(5))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        ctx.run(bridge, move |b| {
            let mut out = b.writer(|| Bomb);
            out.write_all(b"boom").unwrap();
            let payload = catch_unwind(AssertUnwindSafe(|| out.flush())).unwrap_err();
            assert_eq!(
                payload.downcast_ref::<Payload>(),
                Some(&Payload(5)),
                "{ctx:?}"
            );
            // Resumed once; afterwards an error, never a silent success.
            assert!(out.write_all(b"more").is_err(), "{ctx:?}");
            assert!(out.close().is_err(), "{ctx:?}");
        });
    });
}

fn a_stalled_sink_bounds_what_the_writer_takes<R: TestRuntime>() {
    let bridge = Bridge::new(R::make());
    let (open, gate) = async_channel::bounded::<()>(1);
    let script: Script = Box::new(move |i| {
        let gate = gate.clone();
        (i == 0).then(|| -> BoxFuture<()> {
            Box::pin(async move {
                let _ = gate.recv().await;
            })
        })
    });
    let (sink, seen) = Recorder::new(script);
    let accepted = Arc::new(AtomicUsize::new(0));
    let data = pattern(40 * CHUNK, 5);
    let (b, a, d) = (bridge.clone(), accepted.clone(), data.clone());
    let writer = thread::spawn(move || {
        let mut out = b.writer(move || sink);
        for piece in d.chunks(4 * KIB) {
            out.write_all(piece).unwrap();
            a.fetch_add(piece.len(), Ordering::SeqCst);
        }
        out.close().unwrap();
    });
    // The sink holds one chunk, 8 wait for it, one fills: then `write` blocks.
    let mut last = usize::MAX;
    assert!(eventually(ms(20_000), || {
        let now = accepted.load(Ordering::SeqCst);
        let stable = now == last && now > 0;
        last = now;
        thread::sleep(ms(50));
        stable
    }));
    let held = accepted.load(Ordering::SeqCst);
    assert!(
        (8 * CHUNK..=10 * CHUNK).contains(&held),
        "the writer took {held} bytes ({} chunks) while its sink was stalled",
        held as f64 / CHUNK as f64
    );
    open.send_blocking(()).unwrap();
    writer.join().unwrap();
    assert!(lock(&seen).data == data);
}

per_runtime!(
    writer_delivers_every_byte_in_order_and_closes_the_sink,
    writer_errors_reach_the_next_call_and_every_later_one,
    a_closed_writer_refuses_writes_and_closes_once,
    a_writer_dropped_without_close_is_aborted,
    a_panicking_sink_resumes_in_the_writers_next_call,
    a_stalled_sink_bounds_what_the_writer_takes,
);

// ---------------------------------------------------------------------------
// Direct IO, over scripted objects, from every context.
// ---------------------------------------------------------------------------

fn io_writes_reach_the_object_before_write_returns<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let (obj, seen) = Recorder::new(naps::<R>(2));
        let s = seen.clone();
        ctx.run(bridge, move |b| {
            let mut io = b.io(obj);
            for i in 0..20u8 {
                io.write_all(&[i; 300]).unwrap();
                assert_eq!(lock(&s).data.len(), 300 * (i as usize + 1), "{ctx:?}");
            }
            io.flush().unwrap();
            io.close().unwrap();
        });
        let seen = lock(&seen);
        assert_eq!(seen.data.len(), 6000);
        assert!(seen
            .data
            .chunks(300)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&x| x == i as u8)));
        assert!(seen.flushes >= 1 && seen.closed, "{ctx:?}: {seen:?}");
    });
}

/// `BlockingIo::close` is documented as "Closes the object ..., after
/// flushing it".
fn io_close_flushes_the_object_first<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let (obj, seen) = Recorder::new(naps::<R>(2));
        ctx.run(bridge, move |b| {
            let mut io = b.io(obj);
            io.write_all(b"unflushed").unwrap();
            io.close().unwrap();
        });
        let seen = lock(&seen);
        assert!(seen.closed, "{ctx:?}");
        assert_eq!(
            seen.flushes_at_close, 1,
            "{ctx:?}: closed without a flush first"
        );
    });
}

fn io_reads_nothing_ahead<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let data = pattern(10_000, 6);
        let obj = Trickle::new(data.clone(), 4000, naps::<R>(2));
        let pos = ctx.run(bridge, move |b| {
            let mut io = b.io(obj);
            let mut head = [0; 5];
            io.read_exact(&mut head).unwrap();
            assert_eq!(head, data[..5], "{ctx:?}");
            let mut more = vec![0; 6000];
            io.read_exact(&mut more).unwrap();
            assert_eq!(more, data[5..6005], "{ctx:?}");
            io.into_inner().expect("the object comes back").pos
        });
        assert_eq!(pos, 6005, "{ctx:?}: read ahead of the caller");
    });
}

/// Lines through `BufRead`, from a source that naps on its runtime's timer
/// before every third read, the reads at its end included.
fn io_buf_read_gives_every_line<R: TestRuntime>() {
    let text: String = (0..500)
        .map(|i| format!("line {i}: {}\n", "x".repeat(i % 40)))
        .collect();
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let obj = futures_lite::io::BufReader::with_capacity(
            100,
            Trickle::new(text.clone().into_bytes(), 333, naps::<R>(3)),
        );
        let lines = ctx.run(bridge, move |b| {
            b.io(obj)
                .lines()
                .collect::<io::Result<Vec<String>>>()
                .unwrap()
        });
        assert_eq!(lines, text.lines().collect::<Vec<_>>(), "{ctx:?}");
    });
}

/// A source at its end that, polled again, is pending once before it says
/// "end" again: a throttled or rate-limited reader does that, and
/// `futures::io::BufReader` polls its source again at each `fill_buf` once
/// empty.
struct PendingAtTheEnd(u32);

impl AsyncRead for PendingAtTheEnd {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0 += 1;
        if self.0 % 3 == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(0))
    }
}

#[test]
fn fill_buf_at_the_end_of_a_source_pending_on_a_second_poll() {
    watchdog(LIMIT, || {
        let bridge = Bridge::new(executor_bridge::Pollster);
        for ctx in Ctx::all() {
            ctx.run(&bridge, move |b| {
                let mut io = b.io(futures_lite::io::BufReader::new(PendingAtTheEnd(0)));
                for _ in 0..3 {
                    assert_eq!(io.fill_buf().unwrap(), b"", "{ctx:?}");
                }
                let mut line = String::new();
                assert_eq!(io.read_line(&mut line).unwrap(), 0, "{ctx:?}");
            });
        }
    });
}

fn io_seeks_like_std_on_the_same_data<R: TestRuntime>() {
    let data = pattern(50_000, 7);
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let d = data.clone();
        ctx.run(bridge, move |b| {
            let mut ours = b.io(futures_lite::io::Cursor::new(d.clone()));
            let mut std = io::Cursor::new(d);
            random_seeks(&mut ours, &mut std, 200, 8, &format!("{ctx:?}"));
        });
    });
}

/// Random seeks, reads and writes on both, every answer compared.
fn random_seeks(
    ours: &mut (impl Read + Write + Seek),
    std: &mut (impl Read + Write + Seek),
    ops: usize,
    seed: u64,
    what: &str,
) {
    let len = std.seek(SeekFrom::End(0)).unwrap() as i64;
    std.seek(SeekFrom::Start(0)).unwrap();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    for op in 0..ops {
        let pos = match next(3) {
            0 => SeekFrom::Start(next(len as u64 + 10)),
            1 => SeekFrom::End(-(next(len as u64) as i64)),
            _ => SeekFrom::Current(next(2000) as i64 - 1000),
        };
        let (a, b) = (ours.seek(pos), std.seek(pos));
        match (&a, &b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y, "{what}: op {op}, {pos:?}"),
            (Err(_), Err(_)) => continue,
            _ => panic!("{what}: op {op}, {pos:?}: ours {a:?}, std {b:?}"),
        }
        if next(4) == 0 {
            let bytes = pattern(1 + next(300) as usize, op as u64);
            ours.write_all(&bytes).unwrap();
            std.write_all(&bytes).unwrap();
        } else {
            let n = 1 + next(3000) as usize;
            let (mut x, mut y) = (vec![0; n], vec![0; n]);
            let got_x = read_up_to(ours, &mut x);
            let got_y = read_up_to(std, &mut y);
            assert_eq!(got_x, got_y, "{what}: op {op}: read lengths");
            assert!(x == y, "{what}: op {op}: different bytes");
        }
    }
    assert_eq!(
        ours.stream_position().unwrap(),
        std.stream_position().unwrap()
    );
}

/// Reads until `buf` is full or the end.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

fn a_panicking_object_resumes_in_the_call_then_fails<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let mut obj = Trickle::new(pattern(1000, 8), 100, naps::<R>(2));
        obj.panic_at = Some(2);
        ctx.run(bridge, move |b| {
            let mut io = b.io(obj);
            let mut buf = [0; 100];
            assert_eq!(io.read(&mut buf).unwrap(), 100, "{ctx:?}");
            assert_eq!(io.read(&mut buf).unwrap(), 100, "{ctx:?}");
            let payload = catch_unwind(AssertUnwindSafe(|| io.read(&mut buf))).unwrap_err();
            assert_eq!(
                payload.downcast_ref::<Payload>(),
                Some(&Payload(2)),
                "{ctx:?}"
            );
            assert_eq!(
                io.read(&mut buf).unwrap_err().kind(),
                io::ErrorKind::Other,
                "{ctx:?}"
            );
            assert!(io.into_inner().is_err(), "{ctx:?}");
        });
    });
}

per_runtime!(
    io_writes_reach_the_object_before_write_returns,
    io_close_flushes_the_object_first,
    io_reads_nothing_ahead,
    io_buf_read_gives_every_line,
    io_seeks_like_std_on_the_same_data,
    a_panicking_object_resumes_in_the_call_then_fails,
);

// ---------------------------------------------------------------------------
// The sink, from every context.
// ---------------------------------------------------------------------------

fn a_channel_sink_receives_every_item_in_order<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        // The consumer forwards into an async program's channel, read by a
        // thread of its own.
        let (tx, rx) = async_channel::bounded::<u32>(7);
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(v) = rx.recv_blocking() {
                got.push(v);
            }
            got
        });
        let forwarded = ctx.run(bridge, move |b| {
            let sink = b.sink(5, move |mut items| async move {
                let mut n = 0;
                while let Some(v) = items.next().await {
                    if v % 50 == 0 {
                        R::sleep(ms(1)).await;
                    }
                    tx.send(v).await.unwrap();
                    n += 1;
                }
                n
            });
            for v in 0..1000 {
                sink.send(v).unwrap();
            }
            sink.close()
        });
        assert_eq!(forwarded, 1000, "{ctx:?}");
        assert_eq!(
            reader.join().unwrap(),
            (0..1000).collect::<Vec<_>>(),
            "{ctx:?}"
        );
    });
}

fn a_futures_sink_is_fed_through_forward<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        let (tx, rx) = futures::channel::mpsc::channel::<String>(2);
        let reader =
            thread::spawn(move || futures::executor::block_on_stream(rx).collect::<Vec<_>>());
        let done = ctx.run(bridge, move |b| {
            let sink = b.sink(3, move |items| async move {
                R::sleep(ms(1)).await;
                futures::StreamExt::forward(futures::StreamExt::map(items, Ok), tx).await
            });
            for i in 0..300 {
                sink.send(format!("item {i}")).unwrap();
            }
            sink.close()
        });
        assert!(done.is_ok(), "{ctx:?}: {done:?}");
        let want: Vec<String> = (0..300).map(|i| format!("item {i}")).collect();
        assert_eq!(reader.join().unwrap(), want, "{ctx:?}");
    });
}

fn a_consumer_panic_resumes_in_close_and_send_gives_the_item_back<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        ctx.run(bridge, move |b| {
            let sink = b.sink(2, |mut items| async move {
                for _ in 0..3 {
                    items.next().await;
                    R::sleep(ms(1)).await;
                }
                panic_any(Payload(77));
            });
            let mut refused = None;
            for v in 0..10_000u32 {
                if let Err(SendError(back)) = sink.send(v) {
                    refused = Some((v, back));
                    break;
                }
                thread::sleep(Duration::from_micros(100));
            }
            let (sent, back) = refused.expect("send never refused an item");
            assert_eq!(back, sent, "{ctx:?}: send gave back another item");
            assert!(sink.is_closed(), "{ctx:?}");
            let payload = catch_unwind(AssertUnwindSafe(move || sink.close())).unwrap_err();
            assert_eq!(
                payload.downcast_ref::<Payload>(),
                Some(&Payload(77)),
                "{ctx:?}"
            );
        });
    });
}

fn a_consumer_that_finishes_early_gives_items_back<R: TestRuntime>() {
    let bridge = Bridge::new(R::make());
    let sink = bridge.sink(4, |mut items| async move {
        let first = items.next().await;
        let second = items.next().await;
        R::sleep(ms(1)).await;
        (first, second)
    });
    let mut back = None;
    for v in 0..10_000u32 {
        if let Err(e) = sink.send(v) {
            back = Some((v, e.into_inner()));
            break;
        }
        thread::sleep(Duration::from_micros(100));
    }
    let (sent, back) = back.expect("send never refused an item");
    assert_eq!(sent, back);
    assert_eq!(sink.close(), (Some(0), Some(1)));
}

fn the_sender_waits_while_the_consumer_is_capacity_behind<R: TestRuntime>() {
    let bridge = Bridge::new(R::make());
    for capacity in [1, 3] {
        let (give, tokens) = async_channel::unbounded::<()>();
        let taken = Arc::new(AtomicUsize::new(0));
        let t = taken.clone();
        let sink = Arc::new(bridge.sink(capacity, move |mut items| async move {
            let mut got = Vec::new();
            // One item per token.
            while tokens.recv().await.is_ok() {
                match items.next().await {
                    Some(v) => got.push(v),
                    None => break,
                }
                R::sleep(ms(1)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
            got
        }));
        let sent = Arc::new(AtomicUsize::new(0));
        let (s, n) = (sink.clone(), sent.clone());
        let sender = thread::spawn(move || {
            for v in 0..20 {
                s.send(v).unwrap();
                n.fetch_add(1, Ordering::SeqCst);
            }
        });
        for k in 0..5 {
            // The consumer took `k` items: exactly `k + capacity` went in.
            assert!(
                eventually(ms(20_000), || sent.load(Ordering::SeqCst) == k + capacity),
                "capacity {capacity}, {k} taken: {} sent",
                sent.load(Ordering::SeqCst)
            );
            thread::sleep(ms(30));
            assert_eq!(
                sent.load(Ordering::SeqCst),
                k + capacity,
                "capacity {capacity}, {k} taken"
            );
            give.send_blocking(()).unwrap();
            assert!(eventually(ms(20_000), || taken.load(Ordering::SeqCst) == k + 1));
        }
        for _ in 0..100 {
            give.send_blocking(()).unwrap();
        }
        sender.join().unwrap();
        let sink = Arc::into_inner(sink).expect("the sender thread is done");
        assert_eq!(sink.close(), (0..20).collect::<Vec<_>>());
    }
}

/// `close` commits, a drop aborts: a sink dropped without `close`, by an
/// early return as much as during a panic, cancels its consumer, which never
/// sees its stream end (so it never commits half of what was meant).
fn a_sink_dropped_without_close_cancels_its_consumer<R: TestRuntime>() {
    each_ctx(&Bridge::new(R::make()), |ctx, bridge| {
        for panics in [false, true] {
            let (open, gate) = async_channel::bounded::<()>(1);
            let (guard, dropped) = DropFlag::new();
            let finished = Arc::new(AtomicBool::new(false));
            let f = finished.clone();
            let outcome = ctx.run(bridge, move |b| {
                catch_unwind(AssertUnwindSafe(move || -> Result<(), &'static str> {
                    let sink = b.sink(64, move |mut items| async move {
                        let _guard = guard;
                        let _ = gate.recv().await;
                        while items.next().await.is_some() {}
                        f.store(true, Ordering::SeqCst);
                    });
                    for v in 0..20 {
                        sink.send(v).unwrap();
                    }
                    if panics {
                        panic_any(Payload(3));
                    }
                    Err("an early return")
                }))
            });
            let case = format!("{ctx:?}, {}", if panics { "panic" } else { "early return" });
            match outcome {
                Ok(Err(_)) if !panics => {}
                Err(p) if panics => {
                    assert_eq!(p.downcast_ref::<Payload>(), Some(&Payload(3)), "{case}")
                }
                other => panic!("{case}: {:?}", other.map_err(|_| "a panic")),
            }
            assert!(
                eventually(ms(10_000), || is_set(&dropped)),
                "{case}: never cancelled"
            );
            let _ = open.try_send(());
            thread::sleep(ms(20));
            assert!(
                !finished.load(Ordering::SeqCst),
                "{case}: the consumer saw its stream end after an abort"
            );
        }
    });
}

per_runtime!(
    a_channel_sink_receives_every_item_in_order,
    a_futures_sink_is_fed_through_forward,
    a_consumer_panic_resumes_in_close_and_send_gives_the_item_back,
    a_consumer_that_finishes_early_gives_items_back,
    the_sender_waits_while_the_consumer_is_capacity_behind,
    a_sink_dropped_without_close_cancels_its_consumer,
);

#[test]
#[should_panic(expected = "executor-bridge: a sink's capacity must be at least 1")]
fn a_sink_of_capacity_zero_panics() {
    let _ = Bridge::new(executor_bridge::Pollster)
        .sink(0, |_: executor_bridge::SinkStream<u8>| async {});
}

// ---------------------------------------------------------------------------
// No thread left behind.
// ---------------------------------------------------------------------------

fn writers_sinks_and_io_leave_no_thread_behind<R: TestRuntime>() {
    let name = format!("iol{}", &R::NAME[..2]);
    let bridge = Bridge::builder(R::make())
        .thread_name(name.clone())
        .idle_timeout(ms(100))
        .build();
    // Live writers and sinks hold a loop thread each.
    let writers: Vec<BlockingWriter> = (0..3)
        .map(|_| bridge.writer(|| Recorder::new(naps::<R>(2)).0))
        .collect();
    let sinks: Vec<_> = (0..2)
        .map(|_| {
            bridge.sink(1, |items: executor_bridge::SinkStream<u8>| async move {
                items.count().await
            })
        })
        .collect();
    assert!(
        eventually(ms(10_000), || threads_named(&name) >= 5),
        "{} threads",
        threads_named(&name)
    );
    // Closed, dropped, cancelled, panicked: all of them give their thread back.
    let mut writers = writers.into_iter();
    writers.next().unwrap().close().unwrap();
    drop(writers.next());
    let last = writers.next().unwrap();
    let _ = catch_unwind(AssertUnwindSafe(move || {
        let _last = last;
        panic_any(Payload(1));
    }));
    let mut sinks = sinks.into_iter();
    assert_eq!(sinks.next().unwrap().close(), 0);
    drop(sinks.next());
    let panicking = bridge.sink(1, |mut items: executor_bridge::SinkStream<u8>| async move {
        items.next().await;
        panic_any(Payload(2));
    });
    let _ = panicking.send(1);
    let _ = catch_unwind(AssertUnwindSafe(move || panicking.close()));
    for ctx in Ctx::all() {
        ctx.run(&bridge, |b| {
            let mut io = b.io(Recorder::new(naps::<R>(2)).0);
            io.write_all(b"direct").unwrap();
        });
    }
    assert!(
        eventually(ms(20_000), || threads_named(&name) == 0
            && bridge.threads() == 0),
        "{} threads named {name}, {} loop threads",
        threads_named(&name),
        bridge.threads()
    );
}

per_runtime!(writers_sinks_and_io_leave_no_thread_behind);

// ---------------------------------------------------------------------------
// Real parts: sockets, files, HTTP.
// ---------------------------------------------------------------------------

/// What a [`ByteServer`] connection received.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    bytes: Vec<u8>,
    /// Ended by the client's close (an EOF), not an error.
    eof: bool,
}

/// A std TCP server on 127.0.0.1 that keeps every byte of each connection
/// (or closes it after `close_after` bytes) and reports it.
struct ByteServer {
    addr: SocketAddr,
    received: mpsc::Receiver<Received>,
    stop: Arc<AtomicBool>,
}

impl ByteServer {
    fn start(close_after: Option<usize>) -> ByteServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::Builder::new()
            .name("byte-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    let (Ok(mut conn), tx) = (conn, tx.clone()) else {
                        continue;
                    };
                    thread::spawn(move || {
                        let mut bytes = Vec::new();
                        let mut buf = vec![0; 64 * KIB];
                        let eof = loop {
                            match conn.read(&mut buf) {
                                Ok(0) => break true,
                                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                                Err(_) => break false,
                            }
                            if close_after.is_some_and(|at| bytes.len() >= at) {
                                break false; // closed with data unread: a reset
                            }
                        };
                        drop(conn);
                        let _ = tx.send(Received { bytes, eof });
                    });
                }
            })
            .unwrap();
        ByteServer {
            addr,
            received,
            stop,
        }
    }

    fn next(&self) -> Received {
        self.received
            .recv_timeout(Duration::from_secs(30))
            .expect("the server saw no connection end")
    }
}

impl Drop for ByteServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// A writer over a socket to a [`ByteServer`], opened by `connect` inside
/// each calling context: the server gets every byte of `len` written in
/// varied pieces (a pattern from `seed`), then an end of file.
fn a_writer_over_tcp_delivers_every_byte<R, W>(
    bridge: &Bridge<R>,
    len: usize,
    seed: u64,
    connect: impl Fn(&Bridge<R>, SocketAddr) -> W + Copy + Send + 'static,
) where
    R: Runtime,
    W: AsyncWrite + Send + 'static,
{
    let server = ByteServer::start(None);
    each_ctx(bridge, |ctx, bridge| {
        let data = pattern(len, seed);
        let (d, addr) = (data.clone(), server.addr);
        ctx.run(bridge, move |b| {
            let stream = connect(&b, addr);
            let mut out = b.writer(move || stream);
            write_varied(&mut out, &d).unwrap();
            out.close().unwrap();
        });
        let got = server.next();
        assert!(got.eof, "{ctx:?}");
        assert!(
            got.bytes == data,
            "{ctx:?}: {} of {} bytes",
            got.bytes.len(),
            data.len()
        );
    });
}

/// A temporary file path, removed on drop.
struct TempPath(std::path::PathBuf);

impl TempPath {
    fn new(what: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        TempPath(std::env::temp_dir().join(format!(
            "executor-bridge-io-{}-{what}-{n}",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(feature = "tokio")]
mod tokio_parts {
    use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

    use super::*;
    use crate::realworld::http_client::{fnv1a, Client, Server, FNV_START};
    use executor_bridge::Tokio;

    fn bridge() -> Bridge<Tokio> {
        Bridge::new(Tokio::new())
    }

    fn connect(b: &Bridge<Tokio>, addr: SocketAddr) -> tokio::net::TcpStream {
        b.run(move || tokio::net::TcpStream::connect(addr)).unwrap()
    }

    #[test]
    fn a_writer_over_a_tokio_tcp_stream_delivers_every_byte() {
        watchdog(LIMIT, || {
            a_writer_over_tcp_delivers_every_byte(&bridge(), MIB + 3, 10, |b, addr| {
                connect(b, addr).compat_write()
            })
        });
    }

    /// Dropped without `close`, a writer over a socket is aborted: what the
    /// server gets is a prefix of what was written, never all of it (the
    /// last bytes were still in the writer's buffer).
    #[test]
    fn a_writer_dropped_without_close_never_delivers_all_over_tcp() {
        watchdog(LIMIT, || {
            let server = ByteServer::start(None);
            let bridge = bridge();
            for ctx in Ctx::all() {
                let data = pattern(3 * CHUNK + 1234, 11);
                let (d, addr) = (data.clone(), server.addr);
                ctx.run(&bridge, move |b| {
                    let stream = connect(&b, addr);
                    let mut out = b.writer(move || stream.compat_write());
                    out.write_all(&d).unwrap();
                });
                let got = server.next();
                assert!(
                    got.bytes.len() < data.len() && data.starts_with(&got.bytes),
                    "{ctx:?}: {} of {} bytes, a prefix: {}",
                    got.bytes.len(),
                    data.len(),
                    data.starts_with(&got.bytes)
                );
            }
        });
    }

    #[test]
    fn a_server_that_hangs_up_fails_the_writer_and_every_later_call() {
        watchdog(LIMIT, || {
            let server = ByteServer::start(Some(100 * KIB));
            let bridge = bridge();
            for ctx in Ctx::all() {
                let addr = server.addr;
                ctx.run(&bridge, move |b| {
                    let stream = connect(&b, addr);
                    let mut out = b.writer(move || stream.compat_write());
                    let data = pattern(CHUNK, 12);
                    let mut written = 0usize;
                    let err = loop {
                        if let Err(e) = out.write_all(&data).and_then(|()| out.flush()) {
                            break e;
                        }
                        written += data.len();
                        assert!(written < 1024 * MIB, "{ctx:?}: the hang-up was never seen");
                    };
                    let lost = [io::ErrorKind::BrokenPipe, io::ErrorKind::ConnectionReset];
                    assert!(lost.contains(&err.kind()), "{ctx:?}: {err:?}");
                    for later in [out.write(b"x").map(drop), out.flush(), out.close()] {
                        assert_eq!(later.unwrap_err().kind(), err.kind(), "{ctx:?}");
                    }
                });
                assert!(!server.next().eof, "{ctx:?}");
            }
        });
    }

    #[test]
    fn io_over_a_tokio_tcp_stream_reads_lines_and_nothing_ahead() {
        watchdog(LIMIT, || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let contexts = Ctx::all();
            let n = contexts.len();
            let server = thread::spawn(move || {
                for conn in listener.incoming().take(n) {
                    let mut conn = conn.unwrap();
                    for i in 0..100 {
                        writeln!(conn, "line {i}").unwrap();
                    }
                    conn.write_all(b"THE REST").unwrap();
                }
            });
            let bridge = bridge();
            for ctx in contexts {
                ctx.run(&bridge, move |b| {
                    let stream = connect(&b, addr).compat();
                    let mut io = b.io(futures_lite::io::BufReader::new(stream));
                    for i in 0..100 {
                        let mut line = String::new();
                        io.read_line(&mut line).unwrap();
                        assert_eq!(line, format!("line {i}\n"), "{ctx:?}");
                    }
                    // The rest is still in the object (its buffer, the socket).
                    let mut rest = io.into_inner().unwrap();
                    let rest = b.run(move || async move {
                        let mut s = String::new();
                        futures_lite::AsyncReadExt::read_to_string(&mut rest, &mut s)
                            .await
                            .map(|_| s)
                    });
                    assert_eq!(rest.unwrap(), "THE REST", "{ctx:?}");
                });
            }
            server.join().unwrap();
        });
    }

    #[test]
    fn seeks_on_a_tokio_file_match_std_on_the_same_data() {
        watchdog(LIMIT, || {
            let bridge = bridge();
            let data = pattern(200 * KIB, 13);
            for ctx in Ctx::all() {
                let (ours, theirs) = (TempPath::new("tokio-seek"), TempPath::new("std-seek"));
                std::fs::write(&ours.0, &data).unwrap();
                std::fs::write(&theirs.0, &data).unwrap();
                let (p, q) = (ours.0.clone(), theirs.0.clone());
                ctx.run(&bridge, move |b| {
                    let file = b
                        .run(move || async move {
                            tokio::fs::OpenOptions::new()
                                .read(true)
                                .write(true)
                                .open(p)
                                .await
                        })
                        .unwrap();
                    let mut file = b.io(file.compat());
                    let mut std = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(q)
                        .unwrap();
                    random_seeks(&mut file, &mut std, 150, 14, &format!("{ctx:?}"));
                    file.flush().unwrap();
                });
                let (a, b) = (
                    std::fs::read(&ours.0).unwrap(),
                    std::fs::read(&theirs.0).unwrap(),
                );
                assert!(
                    a == b,
                    "{ctx:?}: the files differ ({} and {} bytes)",
                    a.len(),
                    b.len()
                );
            }
        });
    }

    /// Writes `lines` generated lines into an upload; the answer it should get.
    fn generate(upload: &mut impl Write, lines: usize) -> String {
        let (mut len, mut hash) = (0, FNV_START);
        for i in 0..lines {
            let line = format!("{i:08} generated by blocking code\n");
            len += line.len();
            hash = fnv1a(hash, line.as_bytes());
            upload.write_all(line.as_bytes()).unwrap();
        }
        format!("{len} bytes, fnv1a {hash:016x}")
    }

    #[test]
    fn a_blocking_program_uploads_a_body_it_generates() {
        watchdog(LIMIT, || {
            let server = Server::start().unwrap();
            let bridge = bridge();
            let client = Client::with_bridge(bridge.clone()).unwrap();
            let contexts = Ctx::all();
            for &ctx in &contexts {
                let (c, url) = (client.clone(), server.url("/upload"));
                ctx.run(&bridge, move |_| {
                    let mut upload = c.upload(&url);
                    let want = generate(&mut upload, 50_000);
                    assert_eq!(upload.finish().unwrap(), want, "{ctx:?}");
                });
            }
            assert_eq!(server.uploads(), contexts.len());
            assert_eq!(server.broken_uploads(), 0);
        });
    }

    /// An upload dropped without `finish`, by an early return as much as by
    /// a panic, from every context: the server sees its body break off,
    /// never a short body as a whole one.
    #[test]
    fn an_upload_dropped_without_finish_never_arrives_whole() {
        watchdog(LIMIT, || {
            let server = Server::start().unwrap();
            let bridge = bridge();
            let client = Client::with_bridge(bridge.clone()).unwrap();
            for ctx in Ctx::all() {
                for panics in [false, true] {
                    let (c, url) = (client.clone(), server.url("/upload"));
                    let broken = server.broken_uploads();
                    let outcome = ctx.run(&bridge, move |_| {
                        catch_unwind(AssertUnwindSafe(move || -> io::Result<()> {
                            let mut upload = c.upload(&url);
                            generate(&mut upload, 20_000);
                            if panics {
                                panic_any(Payload(4));
                            }
                            Err(io::Error::other("the source failed"))?
                        }))
                    });
                    let case = format!("{ctx:?}, panics: {panics}");
                    assert_eq!(outcome.is_err(), panics, "{case}");
                    assert!(
                        eventually(ms(20_000), || server.broken_uploads() == broken + 1),
                        "{case}: the server did not see the body break off"
                    );
                    assert_eq!(
                        server.uploads(),
                        0,
                        "{case}: half a body taken for a whole one"
                    );
                }
            }
        });
    }
}

const MIB: usize = 1024 * KIB;

#[cfg(feature = "smol")]
#[test]
fn a_writer_over_a_smol_async_tcp_stream_delivers_every_byte() {
    watchdog(LIMIT, || {
        let bridge = Bridge::new(executor_bridge::Smol);
        a_writer_over_tcp_delivers_every_byte(&bridge, MIB + 5, 20, |b, addr| {
            b.run(move || smol::Async::<std::net::TcpStream>::connect(addr))
                .unwrap()
        })
    });
}

#[cfg(feature = "async-std")]
#[test]
fn an_async_std_file_written_then_read_back() {
    watchdog(LIMIT, || {
        let bridge = Bridge::new(executor_bridge::AsyncStd);
        for ctx in Ctx::all() {
            // Which context a hang happened in, should the watchdog fire.
            eprintln!("{ctx:?}");
            let path = TempPath::new("async-std");
            let data = pattern(700 * KIB + 1, 21);
            let (d, p) = (data.clone(), path.0.clone());
            let back = ctx.run(&bridge, move |b| {
                let q = p.clone();
                let file = b.run(move || async_std::fs::File::create(q)).unwrap();
                let mut out = b.writer(move || file);
                write_varied(&mut out, &d).unwrap();
                // async-std's `File::poll_close` does not flush (its drop
                // does, blocking): flush first, as its docs ask.
                out.flush().unwrap();
                out.close().unwrap();
                let on_disk = std::fs::read(&p).unwrap();
                let first = on_disk.iter().zip(&d).position(|(a, b)| a != b);
                assert!(
                    on_disk == d,
                    "{ctx:?}: std reads other bytes: {} of {}, first difference at {first:?}",
                    on_disk.len(),
                    d.len()
                );
                let file = b.run(move || async_std::fs::File::open(p)).unwrap();
                let mut back = Vec::new();
                b.io(file).read_to_end(&mut back).unwrap();
                back
            });
            assert!(
                back == data,
                "{ctx:?}: read back {} of {} bytes",
                back.len(),
                data.len()
            );
        }
    });
}
