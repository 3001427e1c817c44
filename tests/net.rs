//! Sync code doing TCP through `smol::net` and `async_std::net` via the
//! bridge (the clients of `examples/smol_tcp.rs` and
//! `examples/async_std_tcp.rs`): an echo round trip, and sockets created in
//! one call that keep working in the next calls, from other threads and from
//! inside other runtimes. Every server is on 127.0.0.1:0.
#![allow(dead_code)]

#[path = "common/mod.rs"]
mod common;

#[cfg(feature = "smol")]
#[path = "../examples/smol_tcp.rs"]
mod smol_tcp;

#[cfg(feature = "async-std")]
#[path = "../examples/async_std_tcp.rs"]
mod async_std_tcp;

/// The same tests for each runtime: `$example` is the example module,
/// `$bridge` a fresh bridge, `$net` the runtime's `net` module.
macro_rules! net_tests {
    ($feature:literal, $name:ident, $example:ident, $bridge:expr, $net:path) => {
        #[cfg(feature = $feature)]
        mod $name {
            use std::io::{Read, Write};
            use std::thread;

            use futures::{AsyncReadExt, AsyncWriteExt};
            use $net::{TcpListener, TcpStream};

            use super::common::watchdog;
            use super::$example::{EchoClient, EchoServer};

            #[test]
            fn echo_round_trip() {
                watchdog(30, || {
                    let bridge = $bridge;
                    let server = EchoServer::start(&bridge).unwrap();
                    let mut client = EchoClient::connect(bridge, server.addr()).unwrap();
                    assert_eq!(client.echo("hello").unwrap(), "hello");
                    assert_eq!(client.echo("").unwrap(), "");
                    let long = "x".repeat(100_000);
                    assert_eq!(client.echo(&long).unwrap(), long);
                });
            }

            #[test]
            fn a_client_connection_outlives_the_call_that_opened_it() {
                watchdog(30, || {
                    let bridge = $bridge;
                    let server = EchoServer::start(&bridge).unwrap();
                    let mut client = EchoClient::connect(bridge, server.addr()).unwrap();
                    let local = client.local_addr().unwrap();
                    for i in 0..5 {
                        let line = format!("line {i}");
                        assert_eq!(client.echo(&line).unwrap(), line);
                    }
                    // From other threads, one after the other.
                    for i in 0..3 {
                        client = thread::spawn(move || {
                            let line = format!("thread {i}");
                            assert_eq!(client.echo(&line).unwrap(), line);
                            client
                        })
                        .join()
                        .unwrap();
                    }
                    assert_eq!(client.local_addr().unwrap(), local);
                    assert_eq!(server.connections(), 1);
                });
            }

            #[test]
            fn a_stream_connected_in_one_call_writes_and_reads_in_others() {
                watchdog(30, || {
                    let bridge = $bridge;
                    let server = EchoServer::start(&bridge).unwrap();
                    let addr = server.addr();
                    // Call 1, on another thread: connect.
                    let b = bridge.clone();
                    let stream = thread::spawn(move || b.run(move || TcpStream::connect(addr)))
                        .join()
                        .unwrap()
                        .unwrap();
                    // Call 2, on another thread again: write.
                    let (b, mut s) = (bridge.clone(), stream.clone());
                    thread::spawn(move || {
                        b.run(move || async move { s.write_all(b"ping\n").await })
                    })
                    .join()
                    .unwrap()
                    .unwrap();
                    // Call 3, here: read the echo.
                    let mut s = stream.clone();
                    let echoed = bridge.run(move || async move {
                        let mut buf = [0; 5];
                        s.read_exact(&mut buf).await.map(|()| buf)
                    });
                    assert_eq!(&echoed.unwrap(), b"ping\n");
                    assert_eq!(server.connections(), 1);
                });
            }

            #[test]
            fn a_listener_bound_in_one_call_accepts_in_the_next() {
                watchdog(30, || {
                    let bridge = $bridge;
                    let listener = bridge.run(|| TcpListener::bind("127.0.0.1:0")).unwrap();
                    let addr = listener.local_addr().unwrap();
                    // A plain std client.
                    let peer = thread::spawn(move || {
                        let mut s = std::net::TcpStream::connect(addr).unwrap();
                        s.write_all(b"hi").unwrap();
                        let mut buf = [0; 3];
                        s.read_exact(&mut buf).unwrap();
                        buf
                    });
                    let (mut conn, _) = bridge
                        .run(move || async move { listener.accept().await })
                        .unwrap();
                    let got = bridge.run(move || async move {
                        let mut buf = [0; 2];
                        conn.read_exact(&mut buf).await?;
                        conn.write_all(b"yo!").await?;
                        Ok::<_, std::io::Error>(buf)
                    });
                    assert_eq!(&got.unwrap(), b"hi");
                    assert_eq!(&peer.join().unwrap(), b"yo!");
                });
            }

            /// From inside a tokio current_thread runtime (`#[tokio::test]`),
            /// a call hops to a loop thread; the connection does not care.
            #[cfg(feature = "tokio")]
            #[test]
            fn the_client_works_from_inside_a_tokio_runtime() {
                watchdog(30, || {
                    let bridge = $bridge;
                    let server = EchoServer::start(&bridge).unwrap();
                    let mut client = EchoClient::connect(bridge, server.addr()).unwrap();
                    assert_eq!(client.echo("outside").unwrap(), "outside");
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let client = rt.block_on(async move {
                        for i in 0..3 {
                            let line = format!("inside {i}");
                            assert_eq!(client.echo(&line).unwrap(), line);
                            tokio::task::yield_now().await;
                        }
                        client
                    });
                    drop(rt);
                    let mut client = client;
                    assert_eq!(client.echo("outside again").unwrap(), "outside again");
                    assert_eq!(server.connections(), 1);
                });
            }
        }
    };
}

net_tests!(
    "smol",
    smol,
    smol_tcp,
    executor_bridge::Bridge::new(executor_bridge::Smol::new()),
    smol::net
);

net_tests!(
    "async-std",
    async_std,
    async_std_tcp,
    executor_bridge::Bridge::new(executor_bridge::AsyncStd),
    async_std::net
);
