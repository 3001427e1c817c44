//! cargo run --example http_client --features tokio
//!
//! A blocking HTTP client over reqwest, written the way a library author
//! would write one: a sync facade whose methods can be called from plain
//! `main`, from a `#[tokio::main]` (current_thread or multi_thread) body, or
//! from a task, without "Cannot start a runtime from within a runtime" and
//! without a runtime per call.
//!
//! The `reqwest::Client` is created once and kept: its connection pool lives
//! on the bridge's tokio runtime, which persists across calls, so a
//! connection opened by one call (from any calling context) is reused by the
//! next. The example starts a small axum server on 127.0.0.1:0 that counts the
//! TCP connections it accepts, and shows that every call went over one.
//!
//! `tests/http_client.rs` includes this file as a module, so the client and
//! the server are `pub`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use executor_bridge::{Bridge, Tokio};

// ---------------------------------------------------------------------------
// The blocking client: what a library would publish.
// ---------------------------------------------------------------------------

/// Why a request failed.
#[derive(Debug)]
pub enum Error {
    /// The request could not be sent or its body not read (connection
    /// refused, timeout, malformed response).
    Http(reqwest::Error),
    /// The server answered with a non-success status; the body is kept.
    Status(u16, String),
    /// The bridge could not run the request (a panic inside it, or no thread
    /// or runtime could be started).
    Bridge(executor_bridge::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Http(e) => write!(f, "http error: {e}"),
            Error::Status(code, body) => write!(f, "server answered {code}: {body}"),
            Error::Bridge(e) => write!(f, "bridge error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Http(e) => Some(e),
            Error::Status(..) => None,
            Error::Bridge(e) => Some(e),
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Http(e)
    }
}

impl From<executor_bridge::Error> for Error {
    fn from(e: executor_bridge::Error) -> Self {
        Error::Bridge(e)
    }
}

/// A blocking HTTP client. Cheap to clone; clones share the bridge and the
/// connection pool. Usable from any thread and any calling context.
#[derive(Clone, Debug)]
pub struct Client {
    bridge: Bridge<Tokio>,
    inner: reqwest::Client,
}

impl Client {
    /// A client on the process-wide tokio bridge.
    pub fn new() -> Result<Self, Error> {
        Client::with_bridge(executor_bridge::tokio::bridge().clone())
    }

    /// A client on a bridge of your own (its own runtime, thread names...).
    pub fn with_bridge(bridge: Bridge<Tokio>) -> Result<Self, Error> {
        let inner = reqwest::Client::builder()
            // Loopback demo: never consult HTTP_PROXY and friends.
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Client { bridge, inner })
    }

    /// GET `url` and return its body as text.
    pub fn get_text(&self, url: &str) -> Result<String, Error> {
        let request = self.inner.get(url);
        self.call(move || async move { read_text(request.send().await?).await })
    }

    /// POST `json` (already serialized) to `url` and return the answer's body.
    pub fn post_json(&self, url: &str, json: impl Into<String>) -> Result<String, Error> {
        let request = self
            .inner
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(json.into());
        self.call(move || async move { read_text(request.send().await?).await })
    }

    /// Runs one request on the bridge; a panic inside it comes back as
    /// [`Error::Bridge`] instead of unwinding through the caller.
    fn call<M, F>(&self, make: M) -> Result<String, Error>
    where
        M: FnOnce() -> F + Send + 'static,
        F: std::future::Future<Output = Result<String, Error>> + 'static,
    {
        self.bridge.try_run(make)?
    }
}

async fn read_text(response: reqwest::Response) -> Result<String, Error> {
    let status = response.status();
    let body = response.text().await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(Error::Status(status.as_u16(), body))
    }
}

// ---------------------------------------------------------------------------
// A local axum server for the demo (and the tests), on a runtime it owns.
// ---------------------------------------------------------------------------

/// What the server saw.
#[derive(Debug, Default)]
struct Stats {
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// The client's address (so: which connection) of every request, in
    /// order.
    peers: Mutex<Vec<SocketAddr>>,
}

impl Stats {
    fn hit(&self, peer: SocketAddr) {
        self.peers.lock().unwrap().push(peer);
    }
}

/// An axum server on 127.0.0.1 with a runtime of its own on its own thread.
/// Stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the server on 127.0.0.1:0. Routes:
    /// - `GET /hello` → `hello from axum`
    /// - `POST /echo` → `{content-type} {body}`
    /// - anything else → 404 `no such page`
    pub fn start() -> std::io::Result<Server> {
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let seen = stats.clone();
        let thread = thread::Builder::new()
            .name("axum-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(e))),
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    let _ = ready_tx.send(listener.local_addr());
                    let counter = seen.clone();
                    let listener = listener.tap_io(move |_| {
                        counter.connections.fetch_add(1, Ordering::SeqCst);
                    });
                    let app = router(seen).into_make_service_with_connect_info::<SocketAddr>();
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here cancels the connection tasks.
            })?;
        let addr = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the server thread died"))??;
        Ok(Server {
            addr,
            stats,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Requests answered so far (all routes).
    pub fn requests(&self) -> usize {
        self.stats.peers.lock().unwrap().len()
    }

    /// For each request answered so far, in order, the client's address: two
    /// requests with the same address came over the same TCP connection.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.stats.peers.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(stats: Arc<Stats>) -> Router {
    let (s1, s2, s3) = (stats.clone(), stats.clone(), stats);
    Router::new()
        .route(
            "/hello",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    s1.hit(peer);
                    "hello from axum"
                },
            ),
        )
        .route(
            "/echo",
            post(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                      headers: HeaderMap,
                      body: String| async move {
                    s2.hit(peer);
                    let kind = headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    format!("{kind} {body}")
                },
            ),
        )
        .fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                s3.hit(peer);
                (StatusCode::NOT_FOUND, "no such page")
            },
        )
}

// ---------------------------------------------------------------------------
// The demo.
// ---------------------------------------------------------------------------

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start()?;
    let client = Client::new()?;

    // 1. Plain blocking code.
    println!(
        "plain main:      {}",
        client.get_text(&server.url("/hello"))?
    );
    println!(
        "plain main POST: {}",
        client.post_json(&server.url("/echo"), r#"{"ping":1}"#)?
    );
    match client.get_text(&server.url("/nope")) {
        Err(Error::Status(code, body)) => println!("plain main 404:  {code} {body}"),
        other => println!("plain main 404:  unexpected {other:?}"),
    }

    // 2. Inside a `#[tokio::main(flavor = "current_thread")]` body: the call
    //    hops to a loop thread, the caller's runtime is not blocked on itself.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let c = client.clone();
    let url = server.url("/hello");
    let text = rt.block_on(async move { c.get_text(&url) })?;
    println!("current_thread:  {text}");
    drop(rt); // the pooled connection does not belong to it: it survives

    // 3. Inside a task on a `#[tokio::main]` (multi_thread) runtime: the
    //    worker is handed off, its other tasks keep running.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let c = client.clone();
    let url = server.url("/echo");
    let text = rt.block_on(async move {
        tokio::spawn(async move { c.post_json(&url, r#"{"from":"a task"}"#) }).await
    })??;
    println!("multi_thread:    {text}");
    drop(rt);

    // 4. And plain code again, after both runtimes are gone.
    println!(
        "plain again:     {}",
        client.get_text(&server.url("/hello"))?
    );

    println!(
        "the server answered {} requests over {} TCP connection(s)",
        server.requests(),
        server.connections()
    );
    Ok(())
}
