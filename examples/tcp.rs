//! cargo run --example tcp --features smol,async-std
//!
//! Blocking code speaking TCP through smol's and async-std's networking, one
//! generic program for both runtimes: a line-echo server bound through the
//! bridge and run as a task of the runtime, and a blocking client whose
//! connection, opened by one call, serves every later call from any thread as
//! a plain `std::io::BufRead + Write` ([`Bridge::io`]).
//!
//! `tests/suite/realworld.rs` includes this file as a module, so its parts
//! are `pub`.

use std::future::Future;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use executor_bridge::{BlockingIo, Bridge, Runtime};
use futures_lite::{AsyncRead, AsyncWrite};

/// The networking the demo needs from a runtime: all the code below is
/// written once against it.
pub trait Net: Runtime + Clone {
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;
    /// A TCP connection (its clones share the socket).
    type Stream: AsyncRead + AsyncWrite + Clone + Unpin + Send + 'static;

    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
    fn accept(listener: &Self::Listener) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Runs `task` in the background, detached.
    fn spawn(task: impl Future<Output = ()> + Send + 'static);
}

#[cfg(feature = "smol")]
impl Net for executor_bridge::Smol {
    type Listener = smol::net::TcpListener;
    type Stream = smol::net::TcpStream;

    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        smol::net::TcpListener::bind(addr)
    }
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
    async fn accept(listener: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(listener.accept().await?.0)
    }
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        smol::net::TcpStream::connect(addr)
    }
    fn spawn(task: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(task).detach();
    }
}

#[cfg(feature = "async-std")]
impl Net for executor_bridge::AsyncStd {
    type Listener = async_std::net::TcpListener;
    type Stream = async_std::net::TcpStream;

    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        async_std::net::TcpListener::bind(addr)
    }
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
    async fn accept(listener: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(listener.accept().await?.0)
    }
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        async_std::net::TcpStream::connect(addr)
    }
    fn spawn(task: impl Future<Output = ()> + Send + 'static) {
        drop(async_std::task::spawn(task)); // dropping the handle detaches the task
    }
}

/// A line-echo server on 127.0.0.1, running as a task of the runtime. Stops
/// accepting when dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _stop: async_channel::Sender<()>,
}

impl EchoServer {
    /// Binds 127.0.0.1:0 (one bridged call) and starts accepting.
    pub fn start<R: Net>(bridge: &Bridge<R>) -> io::Result<EchoServer> {
        let listener = bridge.run(|| R::bind(SocketAddr::from(([127, 0, 0, 1], 0))))?;
        let addr = R::local_addr(&listener)?;
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let counter = connections.clone();
        // The listener, bound by the call above, keeps working in a task: it
        // belongs to the runtime's reactor, not to the call.
        R::spawn(async move {
            let accept = async {
                while let Ok(stream) = R::accept(&listener).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    R::spawn(async move {
                        let _ = futures_lite::io::copy(stream.clone(), &mut stream.clone()).await;
                    });
                }
            };
            // Ends when `_stop` is dropped.
            futures_lite::future::or(accept, async { _ = stopped.recv().await }).await;
        });
        Ok(EchoServer {
            addr,
            connections,
            _stop: stop,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A blocking line-echo client over one persistent connection.
pub struct EchoClient<R: Net> {
    conn: BufReader<BlockingIo<R::Stream>>,
}

impl<R: Net> EchoClient<R> {
    /// Opens the connection (one bridged call).
    pub fn connect(bridge: &Bridge<R>, addr: SocketAddr) -> io::Result<Self> {
        let stream = bridge.run(move || R::connect(addr))?;
        // Each read and write on it is one bridged operation, nothing read
        // ahead: a `BufReader` on top buffers the lines.
        Ok(EchoClient {
            conn: BufReader::new(bridge.io(stream)),
        })
    }

    /// Sends `line` and returns the echoed line, over the same connection
    /// every time.
    pub fn echo(&mut self, line: &str) -> io::Result<String> {
        self.conn
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())?;
        let mut reply = String::new();
        if self.conn.read_line(&mut reply)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        reply.pop(); // the '\n'
        Ok(reply)
    }
}

/// The whole demo, for any runtime with [`Net`].
pub fn demo<R: Net>(name: &'static str, bridge: Bridge<R>) -> io::Result<()> {
    let server = EchoServer::start(&bridge)?;
    println!("{name}: echo server on {}", server.addr());

    let mut client = EchoClient::connect(&bridge, server.addr())?;
    for line in ["hello", "from", "sync code"] {
        println!("{name}: echo {:?}", client.echo(line)?);
    }
    // The connection keeps working from another thread...
    let mut client = thread::spawn(move || {
        println!(
            "{name}: echo {:?} (another thread)",
            client.echo("still here")?
        );
        Ok::<_, io::Error>(client)
    })
    .join()
    .expect("the client thread panicked")?;
    // ...and from inside the runtime's own `block_on`.
    let reply = bridge
        .runtime()
        .block_on(async { client.echo("inside block_on") })?;
    println!("{name}: echo {reply:?} (inside the runtime's block_on)");

    println!(
        "{name}: the server accepted {} connection(s)",
        server.connections()
    );
    Ok(())
}

fn main() -> io::Result<()> {
    #[cfg(feature = "smol")]
    demo("smol", Bridge::new(executor_bridge::Smol))?;
    #[cfg(feature = "async-std")]
    demo("async-std", Bridge::new(executor_bridge::AsyncStd))?; // legacy: discontinued upstream
    Ok(())
}
