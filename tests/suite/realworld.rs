//! The examples as real programs, end to end: the blocking reqwest client of
//! `examples/http_client.rs` against a local axum server (one pooled
//! connection from every calling context, an upload written by blocking
//! code), the synchronous SSE relay of `examples/sse_relay.rs` (live events,
//! a hang-up cancels the upstream), and the generic TCP echo of
//! `examples/tcp.rs` over smol and async-std.

#[cfg(feature = "tokio")]
#[allow(dead_code)]
#[path = "../../examples/http_client.rs"]
pub(crate) mod http_client;

#[cfg(feature = "tokio")]
#[allow(dead_code)]
#[path = "../../examples/sse_relay.rs"]
mod sse_relay;

#[cfg(any(feature = "smol", feature = "async-std"))]
#[allow(dead_code)]
#[path = "../../examples/tcp.rs"]
mod tcp;

#[cfg(feature = "tokio")]
mod http {
    use std::io::Write;
    use std::thread;
    use std::time::Duration;

    use executor_bridge::{Bridge, Tokio};

    use super::http_client::{fnv1a, Client, Error, Server, FNV_START};
    use crate::common::{current_thread, watchdog, Ctx, LIMIT};

    /// A bridge (so a runtime and a pool) of the test's own, so that the
    /// connection counts of parallel tests cannot mix.
    fn client() -> (Bridge<Tokio>, Client) {
        let bridge = Bridge::new(Tokio::new());
        let client = Client::with_bridge(bridge.clone()).expect("build the client");
        (bridge, client)
    }

    /// Gives hyper a moment to put the previous call's connection back in
    /// its pool: it does that in a task after the body is read, and a call
    /// racing it opens a second connection (hyper's behaviour, not the
    /// bridge's).
    fn settle() {
        thread::sleep(Duration::from_millis(5));
    }

    /// Uploads `lines` generated lines; returns the server's answer and
    /// what it should be.
    fn upload_lines(client: &Client, url: &str, lines: usize) -> (String, String) {
        let mut upload = client.upload(url);
        let (mut len, mut hash) = (0, FNV_START);
        for i in 0..lines {
            let line = format!("{i:08} the quick brown fox\n");
            len += line.len();
            hash = fnv1a(hash, line.as_bytes());
            upload.write_all(line.as_bytes()).expect("write the body");
        }
        let answer = upload.finish().expect("finish the upload");
        (answer, format!("{len} bytes, fnv1a {hash:016x}"))
    }

    #[test]
    fn one_connection_serves_every_calling_context() {
        watchdog(LIMIT, || {
            let server = Server::start().unwrap();
            let (bridge, client) = client();
            let (hello, echo, upload) = (
                server.url("/hello"),
                server.url("/echo"),
                server.url("/upload"),
            );
            let contexts = Ctx::all();
            for &ctx in &contexts {
                let (c, hello, echo, upload) =
                    (client.clone(), hello.clone(), echo.clone(), upload.clone());
                ctx.run(&bridge, move |_| {
                    assert_eq!(c.get_text(&hello).unwrap(), "hello from axum", "{ctx:?}");
                    settle();
                    let body = format!(r#"{{"ctx":"{ctx:?}"}}"#);
                    let answer = c.post_json(&echo, body.clone()).unwrap();
                    assert_eq!(answer, format!("application/json {body}"), "{ctx:?}");
                    settle();
                    let (got, want) = upload_lines(&c, &upload, 2_000);
                    assert_eq!(got, want, "{ctx:?}");
                    settle();
                });
            }
            assert_eq!(server.requests(), 3 * contexts.len());
            assert_eq!(server.uploads(), contexts.len());
            assert_eq!(server.broken_uploads(), 0);
            let peers = server.peers();
            assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
            assert_eq!(
                server.connections(),
                1,
                "every call, from every context, should reuse the pooled connection: {peers:?}"
            );
        });
    }

    #[test]
    fn the_pool_outlives_the_runtime_of_the_first_caller() {
        watchdog(LIMIT, || {
            let server = Server::start().unwrap();
            let url = server.url("/hello");
            // Made and first used inside a current_thread runtime that is then
            // dropped: with a facade that block_on's the caller's runtime, the
            // connection's task would die with it.
            let u = url.clone();
            let client = current_thread().block_on(async move {
                let (_, client) = client();
                assert_eq!(client.get_text(&u).unwrap(), "hello from axum");
                client
            });
            for _ in 0..3 {
                settle();
                let (c, u) = (client.clone(), url.clone());
                let text = thread::spawn(move || c.get_text(&u).unwrap())
                    .join()
                    .unwrap();
                assert_eq!(text, "hello from axum");
            }
            let peers = server.peers();
            assert_eq!(peers.len(), 4);
            assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
            assert_eq!(server.connections(), 1, "{peers:?}");
        });
    }

    #[test]
    fn concurrent_callers_share_the_pool() {
        watchdog(LIMIT, || {
            let server = Server::start().unwrap();
            let (_, client) = client();
            let (hello, upload) = (server.url("/hello"), server.url("/upload"));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (c, hello, upload) = (client.clone(), hello.clone(), upload.clone());
                    thread::spawn(move || {
                        for _ in 0..5 {
                            assert_eq!(c.get_text(&hello).unwrap(), "hello from axum");
                        }
                        let (got, want) = upload_lines(&c, &upload, 1_000);
                        assert_eq!(got, want);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(server.requests(), 24);
            assert_eq!(server.uploads(), 4);
            // Idle connections are reused. (Not "at most one per caller": with
            // none idle, hyper starts a new one and races it against one
            // coming back to the pool, and keeps the loser too.)
            let conns = server.connections();
            assert!(conns < 24, "{conns} connections for 24 calls");
        });
    }

    #[test]
    fn errors_come_back_as_values() {
        watchdog(LIMIT, || {
            let server = Server::start().unwrap();
            let (_, client) = client();
            match client.get_text(&server.url("/missing")) {
                Err(Error::Status(404, body)) => assert_eq!(body, "no such page"),
                other => panic!("expected a 404, got {other:?}"),
            }
            // A port nobody listens on (bound, then released).
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            match client.get_text(&format!("http://127.0.0.1:{port}/")) {
                Err(Error::Http(e)) => assert!(e.is_connect(), "{e:?}"),
                other => panic!("expected a connect error, got {other:?}"),
            }
            // An upload to nowhere: the failure is the request's, not a write's.
            let mut upload = client.upload(&format!("http://127.0.0.1:{port}/upload"));
            let _ = upload.write_all(b"nobody reads this");
            match upload.finish() {
                Err(Error::Http(e)) => assert!(e.is_connect(), "{e:?}"),
                other => panic!("expected a connect error, got {other:?}"),
            }
            // Still fine afterwards.
            assert_eq!(
                client.get_text(&server.url("/hello")).unwrap(),
                "hello from axum"
            );
        });
    }

    #[test]
    fn an_upload_refused_by_the_server_reports_its_status() {
        watchdog(LIMIT, || {
            let server = Server::start().unwrap();
            let (_, client) = client();
            let mut upload = client.upload(&server.url("/no-uploads-here"));
            upload.write_all(b"a short body").unwrap();
            match upload.finish() {
                Err(Error::Status(404, body)) => assert_eq!(body, "no such page"),
                other => panic!("expected a 404, got {other:?}"),
            }
        });
    }
}

#[cfg(feature = "tokio")]
mod sse {
    use std::thread;
    use std::time::{Duration, Instant};

    use executor_bridge::{Bridge, Tokio};

    use super::sse_relay::{sse_event, Event, EventStream, Relay, Upstream, Utf8Carry};
    use crate::common::{current_thread, eventually, multi_thread, watchdog, LIMIT};

    fn tokens(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tok{i} ")).collect()
    }

    fn bridge() -> Bridge<Tokio> {
        Bridge::new(Tokio::new())
    }

    /// Splits a `text/event-stream` body into events (data lines only).
    fn take_events(buf: &mut String) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            if !data.is_empty() {
                events.push(Event {
                    event,
                    data: data.join("\n"),
                });
            }
        }
        events
    }

    #[test]
    fn the_first_event_arrives_before_the_upstream_produced_its_last_token() {
        watchdog(LIMIT, || {
            let words = tokens(10);
            let upstream = Upstream::start(words.clone(), Duration::from_millis(50)).unwrap();
            let relay = Relay::start(upstream.url(), bridge()).unwrap();

            // A real HTTP client (reqwest, on a runtime of the test's own)
            // notes when each event arrived.
            let url = format!("http://{}/chat", relay.addr());
            let received: Vec<(Instant, Event)> = current_thread().block_on(async move {
                let client = reqwest::Client::builder().no_proxy().build().unwrap();
                let mut response = client.post(url).body("hi there").send().await.unwrap();
                assert_eq!(response.status(), 200);
                let content_type = response.headers()["content-type"].to_str().unwrap();
                assert_eq!(content_type, "text/event-stream");
                let (mut buf, mut received) = (String::new(), Vec::new());
                while let Some(chunk) = response.chunk().await.unwrap() {
                    buf.push_str(std::str::from_utf8(&chunk).unwrap());
                    let now = Instant::now();
                    received.extend(take_events(&mut buf).into_iter().map(|e| (now, e)));
                }
                assert!(buf.is_empty(), "a partial event at the end: {buf:?}");
                received
            });

            let produced = upstream.log().produced();
            assert_eq!(produced.len(), words.len());
            assert_eq!(upstream.log().prompts(), ["hi there"]);
            assert_eq!(upstream.log().completed(), 1);
            let (last_at, last) = received.last().unwrap();
            assert_eq!(last.event.as_deref(), Some("done"));
            assert!(*last_at >= *produced.last().unwrap());
            let text: String = received[..received.len() - 1]
                .iter()
                .map(|(_, e)| {
                    assert_eq!(e.event, None);
                    e.data.as_str()
                })
                .collect();
            assert_eq!(text, words.concat());

            // Live: the first event was in the client's hands before the
            // upstream produced its last token (in fact after about one).
            let first_at = received[0].0;
            let before_first = produced.iter().filter(|t| **t <= first_at).count();
            assert!(
                first_at < *produced.last().unwrap(),
                "the first event arrived after the last token ({before_first} produced)"
            );
            assert!(
                before_first < words.len() / 2,
                "{before_first} of {} tokens produced before the first event",
                words.len()
            );
            // Not one batch at the end either.
            assert!(
                received.len() > words.len() / 2,
                "{} events",
                received.len()
            );
            assert!(eventually(Duration::from_secs(2), || relay
                .stats()
                .completed()
                == 1));
        });
    }

    #[test]
    fn a_client_hanging_up_cancels_the_upstream() {
        watchdog(LIMIT, || {
            let total = 100; // 5 s of tokens: far more than the test waits
            let upstream = Upstream::start(tokens(total), Duration::from_millis(50)).unwrap();
            let relay = Relay::start(upstream.url(), bridge()).unwrap();

            let mut events = EventStream::open(relay.addr(), "long story").unwrap();
            for i in 0..3 {
                let ev = events.next_event().unwrap().unwrap();
                assert!(ev.data.starts_with(&format!("tok{i}")), "{ev:?}");
            }
            events.disconnect();

            // The relay's next write fails, its handler drops the iterator and
            // with it the reqwest body; the upstream connection closes and the
            // upstream's generation is dropped unfinished.
            assert!(
                eventually(Duration::from_secs(5), || relay.stats().disconnected() == 1),
                "the relay did not notice the hang-up: {:?}",
                relay.stats()
            );
            assert!(
                eventually(Duration::from_secs(5), || upstream.log().cancelled() == 1),
                "the upstream kept generating: {} tokens",
                upstream.log().produced().len()
            );
            let produced = upstream.log().produced().len();
            thread::sleep(Duration::from_millis(200));
            assert_eq!(
                upstream.log().produced().len(),
                produced,
                "tokens produced after the cancellation"
            );
            assert!(produced < total / 2, "{produced} tokens produced");
            assert_eq!(upstream.log().completed(), 0);
            assert_eq!(relay.stats().completed(), 0);
        });
    }

    #[test]
    fn a_hang_up_during_a_quiet_upstream_is_found_by_the_heartbeat() {
        watchdog(LIMIT, || {
            // A token a second; a heartbeat every 50 ms.
            let upstream = Upstream::start(tokens(10), Duration::from_secs(1)).unwrap();
            let relay =
                Relay::with_heartbeat(upstream.url(), bridge(), Duration::from_millis(50)).unwrap();
            let mut events = EventStream::open(relay.addr(), "slow").unwrap();
            let first = events.next_event().unwrap().unwrap();
            assert_eq!(first.data, "tok0 ");
            events.disconnect();

            // Found by a heartbeat long before the next token is due.
            assert!(
                eventually(Duration::from_millis(900), || relay.stats().disconnected()
                    == 1),
                "{:?}",
                relay.stats()
            );
            assert!(
                eventually(Duration::from_secs(5), || upstream.log().cancelled() == 1),
                "the upstream kept generating: {} tokens",
                upstream.log().produced().len()
            );
            assert!(upstream.log().produced().len() <= 3);
        });
    }

    #[test]
    fn concurrent_clients_each_get_their_whole_reply() {
        watchdog(LIMIT, || {
            let words = tokens(8);
            let upstream = Upstream::start(words.clone(), Duration::from_millis(20)).unwrap();
            // Relays on both kinds of tokio runtime.
            let app = multi_thread();
            for bridge in [
                bridge(),
                Bridge::new(Tokio::from_handle(app.handle().clone())),
            ] {
                let relay = Relay::start(upstream.url(), bridge).unwrap();
                let addr = relay.addr();
                let clients: Vec<_> = (0..3)
                    .map(|i| {
                        thread::spawn(move || {
                            let mut events =
                                EventStream::open(addr, &format!("prompt {i}")).unwrap();
                            let (mut text, mut done) = (String::new(), false);
                            while let Some(ev) = events.next_event().unwrap() {
                                match ev.event.as_deref() {
                                    None => text.push_str(&ev.data),
                                    Some("done") => done = true,
                                    Some(other) => panic!("unexpected event {other}"),
                                }
                            }
                            assert!(done);
                            text
                        })
                    })
                    .collect();
                for c in clients {
                    assert_eq!(c.join().unwrap(), words.concat());
                }
                assert!(eventually(Duration::from_secs(2), || relay
                    .stats()
                    .completed()
                    == 3));
            }
            let mut prompts = upstream.log().prompts();
            prompts.sort();
            assert_eq!(
                prompts,
                ["prompt 0", "prompt 0", "prompt 1", "prompt 1", "prompt 2", "prompt 2"]
            );
            assert_eq!(upstream.log().completed(), 6);
        });
    }

    #[test]
    fn a_dead_upstream_is_a_502() {
        watchdog(LIMIT, || {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let relay =
                Relay::start(format!("http://127.0.0.1:{port}/generate"), bridge()).unwrap();
            let err = EventStream::open(relay.addr(), "anyone?").err().unwrap();
            assert!(err.to_string().contains("502"), "{err}");
            assert!(eventually(Duration::from_secs(2), || relay
                .stats()
                .upstream_failed()
                == 1));
        });
    }

    #[test]
    fn event_framing() {
        assert_eq!(sse_event(None, " world"), "data:  world\n\n");
        assert_eq!(
            sse_event(Some("error"), "two\nlines"),
            "event: error\ndata: two\ndata: lines\n\n"
        );
        // A character split across two chunks is not mangled.
        let mut carry = Utf8Carry::default();
        let bytes = "héllo".as_bytes();
        assert_eq!(carry.push(&bytes[..2]), "h");
        assert_eq!(carry.push(&bytes[2..]), "éllo");
    }
}

/// The TCP checks, generic over the runtime: `tcp_tests!(module, Runtime)`
/// makes one test per check.
#[cfg(any(feature = "smol", feature = "async-std"))]
macro_rules! tcp_tests {
    ($module:ident, $rt:ty, $($check:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $check() {
                    $crate::common::watchdog($crate::common::LIMIT, super::$check::<$rt>);
                }
            )*
        }
    };
}

#[cfg(any(feature = "smol", feature = "async-std"))]
mod net {
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::thread;
    use std::time::Duration;

    use executor_bridge::Bridge;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    use super::tcp::{EchoClient, EchoServer, Net};
    use crate::common::{eventually, Ctx, TestRuntime};

    fn localhost() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    fn echo_round_trip<R: Net + TestRuntime>() {
        let bridge = Bridge::new(R::make());
        let server = EchoServer::start(&bridge).unwrap();
        let mut client = EchoClient::connect(&bridge, server.addr()).unwrap();
        assert_eq!(client.echo("hello").unwrap(), "hello");
        assert_eq!(client.echo("").unwrap(), "");
        let long = "x".repeat(100_000);
        assert_eq!(client.echo(&long).unwrap(), long);
        assert_eq!(server.connections(), 1);
    }

    fn one_connection_serves_calls_from_every_thread_and_context<R: Net + TestRuntime>() {
        let bridge = Bridge::new(R::make());
        let server = EchoServer::start(&bridge).unwrap();
        let mut client = EchoClient::connect(&bridge, server.addr()).unwrap();
        for i in 0..5 {
            let line = format!("line {i}");
            assert_eq!(client.echo(&line).unwrap(), line);
        }
        for i in 0..3 {
            client = thread::spawn(move || {
                let line = format!("thread {i}");
                assert_eq!(client.echo(&line).unwrap(), line);
                client
            })
            .join()
            .unwrap();
        }
        for ctx in Ctx::all() {
            client = ctx.run(&bridge, move |_| {
                for i in 0..2 {
                    let line = format!("{ctx:?} {i}");
                    assert_eq!(client.echo(&line).unwrap(), line);
                }
                client
            });
        }
        assert_eq!(server.connections(), 1);
    }

    fn a_stream_connected_in_one_call_writes_and_reads_in_others<R: Net + TestRuntime>() {
        let bridge = Bridge::new(R::make());
        let server = EchoServer::start(&bridge).unwrap();
        let addr = server.addr();
        // Call 1, on another thread: connect.
        let b = bridge.clone();
        let stream = thread::spawn(move || b.run(move || R::connect(addr)))
            .join()
            .unwrap()
            .unwrap();
        // Call 2, on yet another thread: write.
        let (b, mut s) = (bridge.clone(), stream.clone());
        thread::spawn(move || b.run(move || async move { s.write_all(b"ping\n").await }))
            .join()
            .unwrap()
            .unwrap();
        // Call 3, here: read the echo.
        let mut s = stream;
        let echoed = bridge.run(move || async move {
            let mut buf = [0; 5];
            s.read_exact(&mut buf).await.map(|()| buf)
        });
        assert_eq!(&echoed.unwrap(), b"ping\n");
        assert_eq!(server.connections(), 1);
    }

    fn a_listener_bound_in_one_call_accepts_in_the_next<R: Net + TestRuntime>() {
        let bridge = Bridge::new(R::make());
        let listener = bridge.run(|| R::bind(localhost())).unwrap();
        let addr = R::local_addr(&listener).unwrap();
        let peer = thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"hi").unwrap();
            let mut buf = [0; 3];
            s.read_exact(&mut buf).unwrap();
            buf
        });
        // The listener moves into the call and back out with the connection.
        let (listener, conn) = bridge.run(move || async move {
            let conn = R::accept(&listener).await;
            (listener, conn)
        });
        let mut c = conn.unwrap();
        let got = bridge.run(move || async move {
            let mut buf = [0; 2];
            c.read_exact(&mut buf).await?;
            c.write_all(b"yo!").await?;
            Ok::<_, std::io::Error>(buf)
        });
        assert_eq!(&got.unwrap(), b"hi");
        assert_eq!(&peer.join().unwrap(), b"yo!");
        drop(listener);
    }

    fn the_server_stops_accepting_when_dropped<R: Net + TestRuntime>() {
        let bridge = Bridge::new(R::make());
        let server = EchoServer::start(&bridge).unwrap();
        let addr = server.addr();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        drop(server);
        assert!(
            eventually(Duration::from_secs(10), || std::net::TcpStream::connect(
                addr
            )
            .is_err()),
            "the listener outlived its server"
        );
    }

    #[cfg(feature = "smol")]
    tcp_tests!(
        smol,
        executor_bridge::Smol,
        echo_round_trip,
        one_connection_serves_calls_from_every_thread_and_context,
        a_stream_connected_in_one_call_writes_and_reads_in_others,
        a_listener_bound_in_one_call_accepts_in_the_next,
        the_server_stops_accepting_when_dropped,
    );

    #[cfg(feature = "async-std")]
    tcp_tests!(
        async_std,
        executor_bridge::AsyncStd,
        echo_round_trip,
        one_connection_serves_calls_from_every_thread_and_context,
        a_stream_connected_in_one_call_writes_and_reads_in_others,
        a_listener_bound_in_one_call_accepts_in_the_next,
        the_server_stops_accepting_when_dropped,
    );
}
