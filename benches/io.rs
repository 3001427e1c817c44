//! Real IO through the bridge, side by side with what the same work costs
//! without it, in the same run: time per operation, ratios to the baselines
//! and thread wake-ups (voluntary context switches of the whole process)
//! per operation, each waiting row measured idle and with one core kept busy
//! by an unrelated spinning thread.
//!
//! Groups (criterion measures time; the tables printed at the end measure
//! time and switches in alternating rounds of the contenders, medians of
//! rounds):
//! - `tcp_rtt_64b_plain`: a 64-byte request/response round trip on a
//!   loopback socket kept across calls, from a plain thread: `bridge.run`
//!   over a tokio `TcpStream` (`Tokio::new()`, caller-driven, and
//!   `Tokio::from_runtime` of a 1-worker multi_thread runtime),
//!   `bridge.io` over the same kind of stream, tokio's `Handle::block_on`
//!   on a 1-worker multi_thread runtime, std blocking `TcpStream` (the
//!   physical limit), std non-blocking + `epoll_wait` (the floor of any
//!   reactor), and an actor thread owning a current_thread runtime (the
//!   `reqwest::blocking` pattern);
//! - `tcp_rtt_64b_in_current_thread`: the same round trip from inside a
//!   tokio current_thread runtime: the bridge vs the actor;
//! - `http_get_1_thread`, `http_get_8_threads`: HTTP/1.1 GET with
//!   keep-alive against a local axum server: `Bridge<Tokio>` +
//!   `reqwest::Client` vs `reqwest::blocking::Client`;
//! - `tcp_write_4k`: blocking writes of 4 KiB into a loopback socket
//!   (a discard server): `bridge.writer` and `bridge.io` over a tokio
//!   `TcpStream` (compat) vs std `TcpStream`, std `BufWriter` (64 KiB, the
//!   writer's chunk size) and tokio-util's `SyncIoBridge`;
//! - `file_write_4k`: the same into a fresh file per measurement: std `File`
//!   vs `bridge.writer` / `bridge.io` over `tokio::fs::File` and the
//!   `SyncIoBridge`.
//!
//! Every server (echo, discard, axum) runs in a child process (this binary,
//! re-executed with `EXECUTOR_BRIDGE_BENCH_SERVER` set), so its own
//! wake-ups are not counted in ours. Only loopback addresses are used.
//!
//! The `sync_io_bridge` rows are `tokio_util::io::SyncIoBridge` on a
//! multi_thread runtime's handle (it calls `handle.block_on` per operation).
//!
//! ```text
//! cargo bench --all-features --bench io
//! cargo bench --all-features --bench io -- tcp_rtt     # some groups only
//! ```

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{Bridge, Tokio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream as TokioTcp;
use tokio::runtime::Builder as RtBuilder;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
use tokio_util::io::SyncIoBridge;

mod common;
use common::*;

/// Rounds of the tables, about how long each contender runs per round, and
/// criterion's warm-up and measurement times.
const SETTINGS: Settings = Settings {
    rounds: 11,
    target: Duration::from_millis(15),
    warm_up: Duration::from_millis(300),
    measurement: Duration::from_millis(900),
};

// ===== the servers, in a child process =====

const SERVER_ENV: &str = "EXECUTOR_BRIDGE_BENCH_SERVER";

/// A server in a child process; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .env(SERVER_ENV, kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server child process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("child stdout"))
            .read_line(&mut line)
            .expect("server address");
        let addr = line.trim().parse().expect("a socket address");
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's main: serves on loopback until its stdin closes.
fn server_main(kind: &str) -> ! {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("{}", listener.local_addr().expect("local addr"));
    io::stdout().flush().expect("flush");
    // The parent holds our stdin: when it goes away, so do we.
    thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    match kind {
        "echo" => serve_threads(listener, |mut s| {
            let mut buf = [0u8; MSG];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        }),
        "discard" => serve_threads(listener, |mut s| {
            let mut buf = vec![0u8; 256 * 1024];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }),
        "http" => {
            use axum::serve::ListenerExt;
            listener.set_nonblocking(true).expect("nonblocking");
            RtBuilder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime")
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("tokio listener")
                        .tap_io(|tcp| {
                            let _ = tcp.set_nodelay(true);
                        });
                    let app =
                        axum::Router::new().route("/", axum::routing::get(|| async { HTTP_BODY }));
                    axum::serve(listener, app).await.expect("serve");
                });
        }
        other => panic!("unknown server {other}"),
    }
    std::process::exit(0)
}

fn serve_threads(listener: std::net::TcpListener, conn: fn(std::net::TcpStream)) {
    for s in listener.incoming() {
        let Ok(s) = s else { continue };
        let _ = s.set_nodelay(true);
        thread::spawn(move || conn(s));
    }
}

// ===== the operations =====

/// The round trip's message size.
const MSG: usize = 64;
const HTTP_BODY: &str = "hello from axum";

async fn tokio_rtt(s: &mut TokioTcp) {
    let mut buf = [7u8; MSG];
    s.write_all(&buf).await.expect("write");
    s.read_exact(&mut buf).await.expect("read");
}

fn std_rtt(s: &mut std::net::TcpStream) {
    let mut buf = [7u8; MSG];
    s.write_all(&buf).expect("write");
    s.read_exact(&mut buf).expect("read");
}

async fn connect_tokio(addr: SocketAddr) -> TokioTcp {
    let s = TokioTcp::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn connect_std(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// One round trip through `bridge.run` on a socket to `addr` (connected
/// here), the stream moved in and back out, as an op.
fn bridge_rtt(bridge: Bridge<Tokio>, addr: SocketAddr) -> impl FnMut() {
    let mut stream = Some(bridge.run(move || connect_tokio(addr)));
    move || {
        let mut s = stream.take().expect("stream");
        stream = Some(bridge.run(move || async move {
            tokio_rtt(&mut s).await;
            s
        }));
    }
}

/// The reqwest::blocking pattern over one socket: the actor owns it and
/// answers each message with the echo.
fn socket_actor(addr: SocketAddr) -> Actor<[u8; MSG], [u8; MSG]> {
    Actor::<[u8; MSG], [u8; MSG]>::start(move |mut rx| async move {
        let mut s = connect_tokio(addr).await;
        while let Some((mut buf, reply)) = rx.recv().await {
            s.write_all(&buf).await.expect("write");
            s.read_exact(&mut buf).await.expect("read");
            let _ = reply.send(buf);
        }
    })
}

/// std non-blocking socket + `epoll_wait` (edge-triggered, as tokio's).
struct Epoll {
    stream: std::net::TcpStream,
    ep: OwnedFd,
}

impl Epoll {
    fn connect(addr: SocketAddr) -> Epoll {
        let stream = connect_std(addr);
        stream.set_nonblocking(true).expect("nonblocking");
        // SAFETY: plain syscalls on descriptors we own.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0, "epoll_create1");
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 0,
        };
        let rc = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut ev,
            )
        };
        assert_eq!(rc, 0, "epoll_ctl");
        Epoll { stream, ep }
    }

    fn rtt(&mut self) {
        let mut buf = [7u8; MSG];
        (&self.stream).write_all(&buf).expect("write");
        let mut got = 0;
        while got < MSG {
            match (&self.stream).read(&mut buf[got..]) {
                Ok(0) => panic!("echo server closed"),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
                    // SAFETY: `events` has room for 4 entries.
                    let rc = unsafe {
                        libc::epoll_wait(self.ep.as_raw_fd(), events.as_mut_ptr(), 4, -1)
                    };
                    if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                        panic!("epoll_wait: {}", io::Error::last_os_error());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn rtt_plain(addr: SocketAddr) -> Group {
    let mt = multi_thread(1);
    let mut mt_stream = mt.block_on(connect_tokio(addr));
    let handle = mt.handle().clone();
    let mut std_stream = connect_std(addr);
    let mut epoll = Epoll::connect(addr);
    let actor = socket_actor(addr);
    let io_bridge = Bridge::new(Tokio::new());
    let io_stream = io_bridge.run(move || connect_tokio(addr));
    let mut io = io_bridge.io(io_stream.compat());
    Group::new(
        "tcp_rtt_64b_plain",
        "64 B request/response on a kept loopback socket (echo server in a child process), from a plain thread; per round trip",
    )
    .base("std_blocking")
    .base("actor_current_thread")
    .add(per_op(
        "bridge_run_tokio_new",
        bridge_rtt(Bridge::new(Tokio::new()), addr),
    ))
    .add(
        per_op(
            "bridge_run_tokio_mt1",
            bridge_rtt(Bridge::new(Tokio::from_runtime(multi_thread(1))), addr),
        )
        .vs_own("tokio_mt1_handle_block_on"),
    )
    .add(per_op("bridge_io_tokio_new", move || {
        let mut buf = [7u8; MSG];
        io.write_all(&buf).expect("write");
        io.read_exact(&mut buf).expect("read");
    }))
    .add(per_op("tokio_mt1_handle_block_on", move || {
        handle.block_on(tokio_rtt(&mut mt_stream))
    }))
    .add(per_op("std_blocking", move || std_rtt(&mut std_stream)))
    .add(per_op("std_nonblocking_epoll", move || epoll.rtt()))
    .add(per_op("actor_current_thread", move || actor.call([7u8; MSG])))
    .keep(mt)
    .keep(io_bridge)
}

fn rtt_in_runtime(addr: SocketAddr) -> Group {
    let ct = Inside::current_thread();
    let bridge_new = bridge_rtt(Bridge::new(Tokio::new()), addr);
    let bridge_mt = bridge_rtt(Bridge::new(Tokio::from_runtime(multi_thread(1))), addr);
    let actor = socket_actor(addr);
    Group::new(
        "tcp_rtt_64b_in_current_thread",
        "the same round trip from inside a tokio current_thread runtime (its block_on body)",
    )
    .base("actor_current_thread")
    .add(ct.per_op("bridge_run_tokio_new", bridge_new))
    .add(ct.per_op("bridge_run_tokio_mt1", bridge_mt))
    .add(ct.per_op("actor_current_thread", move || actor.call([7u8; MSG])))
}

/// Splits `n` operations over `threads` threads started together; the wall
/// time from their start to the last one's end, scaled to `n`.
fn parallel(threads: usize, n: u64, op: impl Fn() + Sync) -> Duration {
    if threads == 1 {
        return timed(n, op);
    }
    let per = (n / threads as u64).max(1);
    let barrier = std::sync::Barrier::new(threads + 1);
    let (op, barrier) = (&op, &barrier);
    let start = thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(move || {
                barrier.wait();
                timed(per, op);
            });
        }
        barrier.wait();
        // The scope joins every caller before it returns.
        Instant::now()
    });
    start
        .elapsed()
        .mul_f64(n as f64 / (per * threads as u64) as f64)
}

fn http_get(addr: SocketAddr, threads: usize) -> Group {
    let url: Arc<str> = format!("http://{addr}/").into();
    let via_bridge = |name: String, bridge: Bridge<Tokio>| {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client");
        let url = Arc::clone(&url);
        contender(name, move |n| {
            parallel(threads, n, || {
                let (client, url) = (client.clone(), Arc::clone(&url));
                let body = bridge.run(move || async move {
                    let resp = client.get(&*url).send().await.expect("GET");
                    resp.bytes().await.expect("body")
                });
                assert_eq!(body.len(), HTTP_BODY.len());
            })
        })
    };
    let blocking = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("blocking client");
    let blocking_url = Arc::clone(&url);
    let (name, suffix, base) = if threads == 1 {
        ("http_get_1_thread", "", "reqwest_blocking")
    } else {
        ("http_get_8_threads", "_x8", "reqwest_blocking_x8")
    };
    Group::new(
        name,
        format!(
            "HTTP/1.1 GET with keep-alive, local axum server in a child process, {threads} calling thread(s) \
             sharing one client; wall time per GET (aggregate)"
        ),
    )
    .base(base)
    .add(via_bridge(
        format!("bridge_tokio_new_reqwest{suffix}"),
        Bridge::new(Tokio::new()),
    ))
    .add(via_bridge(
        format!("bridge_tokio_mt1_reqwest{suffix}"),
        Bridge::new(Tokio::from_runtime(multi_thread(1))),
    ))
    .add(contender(format!("reqwest_blocking{suffix}"), move |n| {
        parallel(threads, n, || {
            let body = blocking
                .get(&*blocking_url)
                .send()
                .expect("GET")
                .bytes()
                .expect("body");
            assert_eq!(body.len(), HTTP_BODY.len());
        })
    }))
}

/// One write's size in the writer groups.
const WRITE: usize = 4096;

/// `n` writes of [`WRITE`] bytes, then a flush.
fn writes(n: u64, w: &mut impl Write) -> Duration {
    let chunk = [0x5au8; WRITE];
    let t = Instant::now();
    for _ in 0..n {
        w.write_all(&chunk).expect("write");
    }
    w.flush().expect("flush");
    t.elapsed()
}

fn tcp_writer(addr: SocketAddr) -> Group {
    let bridge = Bridge::new(Tokio::new());
    let mut std_stream = connect_std(addr);
    let mut buffered = BufWriter::with_capacity(64 * 1024, connect_std(addr));
    let s = bridge.run(move || connect_tokio(addr));
    let mut writer = bridge.writer(move || s.compat_write());
    let s = bridge.run(move || connect_tokio(addr));
    let mut io = bridge.io(s.compat());
    let mt = multi_thread(1);
    let mut sync_io =
        SyncIoBridge::new_with_handle(mt.block_on(connect_tokio(addr)), mt.handle().clone());
    Group::new(
        "tcp_write_4k",
        format!(
            "blocking writes of {WRITE} B into a kept loopback socket (discard server in a child process), \
             a flush at the end of each measurement; per write"
        ),
    )
    .base("std_tcpstream")
    .base("std_bufwriter_64k")
    .bytes(WRITE as u64)
    .add(contender("bridge_writer_tokio_new", move |n| {
        writes(n, &mut writer)
    }))
    .add(contender("bridge_io_tokio_new", move |n| writes(n, &mut io)))
    .add(contender("std_tcpstream", move |n| {
        writes(n, &mut std_stream)
    }))
    .add(contender("std_bufwriter_64k", move |n| {
        writes(n, &mut buffered)
    }))
    .add(contender("sync_io_bridge_mt1", move |n| {
        writes(n, &mut sync_io)
    }))
    .keep(mt)
    .keep(bridge)
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A contender writing into a fresh file at `file` per measurement, through
/// what `open` makes of it, then `close` of that: the create is not timed,
/// the rest is.
fn into_file<W: Write>(
    name: &str,
    file: PathBuf,
    open: impl Fn(std::fs::File) -> W + 'static,
    close: impl Fn(W) + 'static,
) -> Contender {
    contender(name, move |n| {
        let f = std::fs::File::create(&file).expect("create file");
        let t = Instant::now();
        let mut w = open(f);
        writes(n, &mut w);
        close(w);
        t.elapsed()
    })
}

fn file_writer() -> Group {
    let dir = std::env::temp_dir().join(format!("executor-bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let bridge = Bridge::new(Tokio::new());
    let mt = multi_thread(1);
    let handle = mt.handle().clone();
    let (b1, b2) = (bridge.clone(), bridge.clone());
    Group::new(
        "file_write_4k",
        format!(
            "blocking writes of {WRITE} B into a fresh file per measurement (writes and close/flush timed, \
             the open not); per write"
        ),
    )
    .base("std_file")
    .bytes(WRITE as u64)
    .add(into_file(
        "bridge_writer_tokio_fs",
        dir.join("writer.bin"),
        move |f| b1.writer(move || tokio::fs::File::from_std(f).compat_write()),
        |mut w| w.close().expect("close"),
    ))
    .add(into_file(
        "bridge_io_tokio_fs",
        dir.join("io.bin"),
        move |f| b2.io(tokio::fs::File::from_std(f).compat()),
        drop,
    ))
    .add(into_file("std_file", dir.join("std.bin"), |f| f, drop))
    .add(into_file(
        "sync_io_bridge_tokio_fs",
        dir.join("sync.bin"),
        move |f| SyncIoBridge::new_with_handle(tokio::fs::File::from_std(f), handle.clone()),
        drop,
    ))
    .keep(mt)
    .keep(bridge)
    .keep(Scratch(dir))
}

fn main() {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        server_main(&kind);
    }
    let mut c = criterion(SETTINGS).configure_from_args();
    if selected("tcp_rtt_64b") {
        let echo = Server::start("echo");
        run_group(&mut c, "tcp_rtt_64b_plain", || rtt_plain(echo.addr));
        run_group(&mut c, "tcp_rtt_64b_in_current_thread", || {
            rtt_in_runtime(echo.addr)
        });
    }
    if selected("http_get") {
        let http = Server::start("http");
        run_group(&mut c, "http_get_1_thread", || http_get(http.addr, 1));
        run_group(&mut c, "http_get_8_threads", || http_get(http.addr, 8));
    }
    if selected("tcp_write_4k") {
        let discard = Server::start("discard");
        run_group(&mut c, "tcp_write_4k", || tcp_writer(discard.addr));
    }
    run_group(&mut c, "file_write_4k", file_writer);
    print_report("io");
    c.final_summary();
}
