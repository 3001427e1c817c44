//! cargo run --example async_std_tcp --features async-std
//!
//! Synchronous code speaking TCP through `async_std::net` (async-std is
//! discontinued upstream; this is for code that still uses it): a line-echo
//! server bound and spawned through the bridge, and a blocking client whose
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

use async_std::io::prelude::{BufReadExt, WriteExt};
use async_std::io::BufReader;
use async_std::net::{TcpListener, TcpStream};
use async_std::task::JoinHandle;
use executor_bridge::{AsyncStd, Bridge};

/// A line-echo server on 127.0.0.1, running as an async-std task. Stops
/// accepting when dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    bridge: Bridge<AsyncStd>,
    task: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Binds 127.0.0.1:0 (through `bridge`) and starts accepting.
    pub fn start(bridge: &Bridge<AsyncStd>) -> io::Result<EchoServer> {
        let listener = bridge.run(|| TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        // The listener, bound in the call above, is used by a task: its
        // registration belongs to async-std's global reactor, not to a call.
        let task = async_std::task::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                async_std::task::spawn(async move {
                    let (mut reader, mut writer) = (stream.clone(), stream);
                    let _ = async_std::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        Ok(EchoServer {
            addr,
            connections,
            bridge: bridge.clone(),
            task: Some(task),
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

impl Drop for EchoServer {
    fn drop(&mut self) {
        // Dropping an async-std JoinHandle detaches the task: cancel it.
        if let Some(task) = self.task.take() {
            self.bridge.run(move || task.cancel());
        }
    }
}

/// A blocking line-echo client over one persistent `async_std::net::TcpStream`.
#[derive(Debug)]
pub struct EchoClient {
    bridge: Bridge<AsyncStd>,
    /// `None` only while a call is in flight (or after one panicked).
    conn: Option<BufReader<TcpStream>>,
}

impl EchoClient {
    /// Opens the connection (one bridged call).
    pub fn connect(bridge: Bridge<AsyncStd>, addr: SocketAddr) -> io::Result<EchoClient> {
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
    let bridge = Bridge::new(AsyncStd);
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

    // ...and from inside async-std's own block_on.
    let reply = async_std::task::block_on(async { client.echo("inside task::block_on") })?;
    println!("echo (inside block_on): {reply}");

    println!(
        "the server accepted {} connection(s); the client is still on {}",
        server.connections(),
        client.local_addr()?
    );
    Ok(())
}
