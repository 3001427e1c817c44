//! cargo run --example smol_tcp --features smol
//!
//! Synchronous code speaking TCP through `smol::net`: a line-echo server
//! bound and spawned through the bridge, and a blocking client whose
//! connection, opened in one call, is reused by every later call, from any
//! thread.
//!
//! A connection that is not `Clone` (here a `BufReader<TcpStream>`, whose
//! buffer must survive between calls) moves into each call's `'static`
//! closure and comes back out with the answer.
//!
//! `tests/net.rs` includes this file as a module, so its parts are `pub`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use executor_bridge::{Bridge, Smol};
use smol::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use smol::net::{TcpListener, TcpStream};

/// A line-echo server on 127.0.0.1, running as a task on smol's global
/// executor. Stops accepting when dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _task: smol::Task<()>,
}

impl EchoServer {
    /// Binds 127.0.0.1:0 (through `bridge`) and starts accepting.
    pub fn start(bridge: &Bridge<Smol>) -> io::Result<EchoServer> {
        let listener = bridge.run(|| TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        // The listener, bound in the call above, is used by a task: it is
        // registered with async-io's global reactor, not with a call.
        let task = smol::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                smol::spawn(async move {
                    let (reader, mut writer) = (stream.clone(), stream);
                    let _ = smol::io::copy(reader, &mut writer).await;
                })
                .detach();
            }
        });
        Ok(EchoServer {
            addr,
            connections,
            _task: task,
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

/// A blocking line-echo client over one persistent `smol::net::TcpStream`.
#[derive(Debug)]
pub struct EchoClient {
    bridge: Bridge<Smol>,
    /// `None` only while a call is in flight (or after one panicked).
    conn: Option<BufReader<TcpStream>>,
}

impl EchoClient {
    /// Opens the connection (one bridged call).
    pub fn connect(bridge: Bridge<Smol>, addr: SocketAddr) -> io::Result<EchoClient> {
        let stream = bridge.run(move || TcpStream::connect(addr))?;
        stream.set_nodelay(true)?;
        Ok(EchoClient {
            bridge,
            conn: Some(BufReader::new(stream)),
        })
    }

    /// Sends `line` and returns the echoed line, over the same connection
    /// every time.
    pub fn echo(&mut self, line: &str) -> io::Result<String> {
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| io::Error::other("the connection was lost by an earlier call"))?;
        let msg = format!("{line}\n");
        let (conn, reply) = self.bridge.run(move || async move {
            let reply = async {
                conn.get_mut().write_all(msg.as_bytes()).await?;
                let mut reply = String::new();
                if conn.read_line(&mut reply).await? == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
                reply.pop(); // the '\n'
                Ok(reply)
            }
            .await;
            (conn, reply)
        });
        self.conn = Some(conn);
        reply
    }

    /// The local address of the connection: the same across calls.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.conn {
            Some(conn) => conn.get_ref().local_addr(),
            None => Err(io::Error::other("no connection")),
        }
    }
}

fn main() -> io::Result<()> {
    let bridge = Bridge::new(Smol::new());
    let server = EchoServer::start(&bridge)?;
    println!("echo server on {}", server.addr());

    let mut client = EchoClient::connect(bridge.clone(), server.addr())?;
    println!("connected from {}", client.local_addr()?);
    for line in ["hello", "from", "sync code"] {
        println!("echo: {}", client.echo(line)?);
    }

    // The connection keeps working from another thread...
    let mut client = std::thread::spawn(move || -> io::Result<EchoClient> {
        println!("echo (other thread): {}", client.echo("still here")?);
        Ok(client)
    })
    .join()
    .expect("the client thread panicked")?;

    // ...and from inside smol's own block_on.
    let reply = smol::block_on(async { client.echo("inside smol::block_on") })?;
    println!("echo (inside block_on): {reply}");

    println!(
        "the server accepted {} connection(s); the client is still on {}",
        server.connections(),
        client.local_addr()?
    );
    Ok(())
}
