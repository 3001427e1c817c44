//! The blocking reqwest facade of `examples/http_client.rs` against a local
//! axum server: every calling context works, and all of them share the one
//! connection pool that lives on the bridge's persistent runtime.
#![cfg(feature = "tokio")]

#[path = "common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../examples/http_client.rs"]
mod http_client;

use std::thread;
use std::time::Duration;

use common::watchdog;
use executor_bridge::{Bridge, Tokio};
use http_client::{Client, Error, Server};

/// Calls per calling context: bounded, sequential.
const CALLS: usize = 10;

fn client() -> Client {
    // A bridge (and so a tokio runtime and a pool) of each test's own, so the
    // connection counts of parallel tests cannot mix.
    Client::with_bridge(Bridge::new(Tokio::new())).expect("build the client")
}

/// Gives hyper a moment to put the connection of the previous call back in
/// the pool: it does that in a task of its own after the body is read, and a
/// call racing it would open a second connection (hyper's behaviour, not the
/// bridge's).
fn settle() {
    thread::sleep(Duration::from_millis(5));
}

#[test]
fn every_calling_context_reuses_one_connection() {
    watchdog(60, || {
        let server = Server::start().unwrap();
        let client = client();
        let hello = server.url("/hello");

        // A plain thread (the watchdog's): inline.
        for _ in 0..CALLS {
            assert_eq!(client.get_text(&hello).unwrap(), "hello from axum");
            settle();
        }
        let plain = server.peers();

        // Inside a current_thread runtime (`#[tokio::main(flavor =
        // "current_thread")]`, `#[tokio::test]`): the call hops.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (c, url) = (client.clone(), hello.clone());
        rt.block_on(async move {
            for _ in 0..CALLS {
                assert_eq!(c.get_text(&url).unwrap(), "hello from axum");
                // The caller's runtime still runs between calls.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        drop(rt);
        let current_thread = server.peers()[CALLS..].to_vec();

        // On a multi_thread worker (a task of `#[tokio::main]`): hand-off.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (c, url) = (client.clone(), server.url("/echo"));
        rt.block_on(async move {
            tokio::spawn(async move {
                for i in 0..CALLS {
                    let body = format!(r#"{{"n":{i}}}"#);
                    let answer = c.post_json(&url, body.clone()).unwrap();
                    assert_eq!(answer, format!("application/json {body}"));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap();
        });
        drop(rt);
        let multi_thread = server.peers()[2 * CALLS..].to_vec();

        // Back on the plain thread, both caller runtimes gone.
        assert_eq!(client.get_text(&hello).unwrap(), "hello from axum");
        let last = *server.peers().last().unwrap();

        assert_eq!(server.requests(), 3 * CALLS + 1);
        // The connection opened by plain code served the calls made from the
        // caller runtimes, and still serves after they were dropped.
        assert!(plain.contains(&current_thread[0]), "{:?}", server.peers());
        assert!(plain.contains(&multi_thread[0]), "{:?}", server.peers());
        assert!(plain.contains(&last), "{:?}", server.peers());
        assert_eq!(
            server.connections(),
            1,
            "every call, from every context, should reuse the one pooled connection: {:?}",
            server.peers()
        );
    });
}

#[test]
fn the_pool_outlives_the_runtime_of_the_first_caller() {
    watchdog(60, || {
        let server = Server::start().unwrap();
        let url = server.url("/hello");
        // The client is created and first used inside a current_thread
        // runtime, which is then dropped: with a naive "block_on on the
        // caller's runtime" facade, the connection's task would die with it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let u = url.clone();
        let client = rt.block_on(async move {
            let client = client();
            assert_eq!(client.get_text(&u).unwrap(), "hello from axum");
            client
        });
        drop(rt);

        // Used from other threads afterwards, one after the other.
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
        // The connection opened from inside the dropped runtime still works.
        assert_eq!(peers[1], peers[0], "{peers:?}");
        assert_eq!(server.connections(), 1, "{peers:?}");
    });
}

#[test]
fn concurrent_callers_share_the_pool() {
    watchdog(60, || {
        let server = Server::start().unwrap();
        let client = client();
        let url = server.url("/hello");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, u) = (client.clone(), url.clone());
                thread::spawn(move || {
                    for _ in 0..5 {
                        assert_eq!(c.get_text(&u).unwrap(), "hello from axum");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(server.requests(), 20);
        // Idle connections are reused. (Not "at most one per caller": when
        // no connection is idle, hyper starts a new one and races it against
        // one coming back to the pool, and keeps the loser too.)
        let conns = server.connections();
        assert!(conns < 20, "{conns} connections for 20 calls");
    });
}

#[test]
fn errors_come_back_as_values() {
    watchdog(60, || {
        let server = Server::start().unwrap();
        let client = client();

        match client.get_text(&server.url("/missing")) {
            Err(Error::Status(404, body)) => assert_eq!(body, "no such page"),
            other => panic!("expected a 404, got {other:?}"),
        }

        // A port nobody listens on (bound, then released): connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        match client.get_text(&format!("http://127.0.0.1:{port}/")) {
            Err(Error::Http(e)) => assert!(e.is_connect(), "{e:?}"),
            other => panic!("expected a connect error, got {other:?}"),
        }

        // The client is still fine afterwards.
        assert_eq!(
            client.get_text(&server.url("/hello")).unwrap(),
            "hello from axum"
        );
    });
}
