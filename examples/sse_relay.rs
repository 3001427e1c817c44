//! cargo run --example sse_relay --features tokio
//!
//! The classic "stream an LLM's answer to the browser" endpoint, with a
//! synchronous web server in the middle.
//!
//! - **upstream**: an async axum server that "generates" a reply token by
//!   token (one every 50 ms) as a chunked body, like a model API does;
//! - **relay**: a *synchronous* tiny_http server. Its handler asks the
//!   upstream with reqwest and walks the body (`bytes_stream()`) through
//!   [`Bridge::iter_direct`], a blocking iterator that polls the stream
//!   itself, on the handler's thread, relaying each chunk to its own client
//!   as a Server-Sent Event (`data: ...\n\n`) the moment it arrives;
//! - **client**: a raw `std::net::TcpStream` reading the events.
//!
//! When the client goes away, the relay's next write fails and the handler
//! drops its iterator, and with it the reqwest body: the upstream connection
//! closes and the upstream stops generating. A quiet upstream yields a
//! heartbeat item now and then (a tokio timeout inside the stream), which the
//! relay sends as an SSE comment: that also finds clients that left.
//!
//! The relay writes the response itself (`Request::into_writer`, chunked
//! framing, a flush per event) rather than handing tiny_http a `Read`: for a
//! body of unknown length tiny_http's chunked encoder buffers 8 KiB before it
//! sends anything, which would hold short events back.
//!
//! `tests/suite/realworld.rs` includes this file as a module, so its parts
//! are `pub`.

use std::convert::Infallible;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use executor_bridge::{Bridge, Tokio};
use futures::{StreamExt, TryStreamExt};

// ---------------------------------------------------------------------------
// The upstream: an async token generator.
// ---------------------------------------------------------------------------

/// What the upstream did, for the demo's output and the tests.
#[derive(Debug, Default)]
pub struct UpstreamLog {
    prompts: Mutex<Vec<String>>,
    produced: Mutex<Vec<Instant>>,
    completed: AtomicUsize,
    cancelled: AtomicUsize,
}

impl UpstreamLog {
    /// The prompts received, in order.
    pub fn prompts(&self) -> Vec<String> {
        self.prompts.lock().unwrap().clone()
    }

    /// When each token was produced (handed to the HTTP body), in order.
    pub fn produced(&self) -> Vec<Instant> {
        self.produced.lock().unwrap().clone()
    }

    /// Generations that produced every token.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    /// Generations dropped before their last token: their client went away.
    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// One generation in progress; its drop tells how it ended.
struct Generation {
    log: Arc<UpstreamLog>,
    tokens: Arc<[String]>,
    interval: Duration,
    next: usize,
    finished: bool,
}

impl Drop for Generation {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.log.completed
        } else {
            &self.log.cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// The async upstream on 127.0.0.1, with a runtime of its own on its own
/// thread. `POST /generate` (body: the prompt) streams the reply. Stops when
/// dropped.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    log: Arc<UpstreamLog>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Starts an upstream that answers every prompt with `tokens`, one every
    /// `interval`.
    pub fn start(tokens: Vec<String>, interval: Duration) -> io::Result<Upstream> {
        let log = Arc::new(UpstreamLog::default());
        let tokens: Arc<[String]> = tokens.into();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let app_log = log.clone();
        let thread = thread::Builder::new()
            .name("upstream".into())
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
                    let app = Router::new().route(
                        "/generate",
                        post(move |prompt: String| {
                            let (log, tokens) = (app_log.clone(), tokens.clone());
                            async move { generate(log, tokens, interval, prompt) }
                        }),
                    );
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        let addr = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the upstream thread died"))??;
        Ok(Upstream {
            addr,
            log,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:{port}/generate`.
    pub fn url(&self) -> String {
        format!("http://{}/generate", self.addr)
    }

    /// What the upstream did so far.
    pub fn log(&self) -> &UpstreamLog {
        &self.log
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The streaming body: a token every `interval`.
fn generate(
    log: Arc<UpstreamLog>,
    tokens: Arc<[String]>,
    interval: Duration,
    prompt: String,
) -> Body {
    log.prompts.lock().unwrap().push(prompt);
    let generation = Generation {
        log,
        tokens,
        interval,
        next: 0,
        finished: false,
    };
    let stream = futures::stream::unfold(generation, |mut g| async move {
        if g.next == g.tokens.len() {
            g.finished = true;
            drop(g); // counts as completed
            return None;
        }
        tokio::time::sleep(g.interval).await; // "thinking"
        let token = g.tokens[g.next].clone();
        g.next += 1;
        g.log.produced.lock().unwrap().push(Instant::now());
        Some((Ok::<_, Infallible>(token), g))
    });
    Body::from_stream(stream)
}

// ---------------------------------------------------------------------------
// The relay: a synchronous tiny_http server, bridged to reqwest.
// ---------------------------------------------------------------------------

/// How the relay's streams ended.
#[derive(Debug, Default)]
pub struct RelayStats {
    started: AtomicUsize,
    completed: AtomicUsize,
    disconnected: AtomicUsize,
    upstream_failed: AtomicUsize,
}

impl RelayStats {
    /// Streams started (requests to `/chat`).
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    /// Streams relayed to the end.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }
    /// Streams whose client went away; their upstream stream was dropped.
    pub fn disconnected(&self) -> usize {
        self.disconnected.load(Ordering::SeqCst)
    }
    /// Streams whose upstream failed.
    pub fn upstream_failed(&self) -> usize {
        self.upstream_failed.load(Ordering::SeqCst)
    }
}

/// How one relayed stream ended.
enum Outcome {
    Completed,
    Disconnected,
    UpstreamFailed,
}

struct RelayCtx {
    bridge: Bridge<Tokio>,
    /// Created once; its pool lives on the bridge's runtime.
    client: reqwest::Client,
    upstream: String,
    heartbeat: Duration,
    stats: Arc<RelayStats>,
}

/// The synchronous relay on 127.0.0.1. `POST /chat` (body: the prompt)
/// answers `text/event-stream`: one `data:` event per upstream chunk, then
/// `event: done`. Stops accepting when dropped; streams in flight finish.
pub struct Relay {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stats: Arc<RelayStats>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Relay {
    /// Starts a relay for `upstream` (a URL) on `bridge`, with a `: keep-alive`
    /// comment after 15 s without a token.
    pub fn start(upstream: String, bridge: Bridge<Tokio>) -> io::Result<Relay> {
        Relay::with_heartbeat(upstream, bridge, Duration::from_secs(15))
    }

    /// Like [`Relay::start`] with another heartbeat interval. The heartbeat
    /// also finds clients that left while the upstream was silent.
    pub fn with_heartbeat(
        upstream: String,
        bridge: Bridge<Tokio>,
        heartbeat: Duration,
    ) -> io::Result<Relay> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(io::Error::other)?;
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(io::Error::other)?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("not an IP listener"))?;
        let stats = Arc::new(RelayStats::default());
        let ctx = Arc::new(RelayCtx {
            bridge,
            client,
            upstream,
            heartbeat,
            stats: stats.clone(),
        });
        let accepting = server.clone();
        let thread = thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || {
                for request in accepting.incoming_requests() {
                    let ctx = ctx.clone();
                    // One thread per stream, as a synchronous server does.
                    let _ = thread::Builder::new()
                        .name("relay-handler".into())
                        .spawn(move || handle(request, &ctx));
                }
            })?;
        Ok(Relay {
            addr,
            server,
            stats,
            thread: Some(thread),
        })
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How its streams ended so far.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(mut request: tiny_http::Request, ctx: &RelayCtx) {
    if *request.method() != tiny_http::Method::Post || request.url() != "/chat" {
        let _ =
            request.respond(tiny_http::Response::from_string("not found").with_status_code(404));
        return;
    }
    let mut prompt = String::new();
    if request
        .as_reader()
        .take(64 * 1024)
        .read_to_string(&mut prompt)
        .is_err()
    {
        let _ =
            request.respond(tiny_http::Response::from_string("bad prompt").with_status_code(400));
        return;
    }
    ctx.stats.started.fetch_add(1, Ordering::SeqCst);
    let counter = match relay(request, prompt, ctx) {
        Outcome::Completed => &ctx.stats.completed,
        Outcome::Disconnected => &ctx.stats.disconnected,
        Outcome::UpstreamFailed => &ctx.stats.upstream_failed,
    };
    counter.fetch_add(1, Ordering::SeqCst);
}

/// What the relay's iterator yields.
enum Piece {
    /// Bytes of the upstream's body.
    Chunk(Vec<u8>),
    /// The upstream failed (to answer, or mid-body).
    Failed(String),
    /// Nothing for a heartbeat interval.
    Quiet,
}

/// The upstream's reply to `prompt` as a stream of [`Piece`]s, a
/// [`Piece::Quiet`] after each `heartbeat` without a chunk.
fn upstream_pieces(
    client: reqwest::Client,
    url: String,
    prompt: String,
    heartbeat: Duration,
) -> impl futures::Stream<Item = Piece> + Send {
    let answer = async move {
        let response = client.post(url).body(prompt).send().await?;
        Ok(response.error_for_status()?.bytes_stream())
    };
    let body = Box::pin(futures::stream::once(answer).try_flatten());
    futures::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        let piece = match tokio::time::timeout(heartbeat, body.next()).await {
            Err(_elapsed) => Piece::Quiet,
            Ok(Some(Ok(chunk))) => Piece::Chunk(chunk.to_vec()),
            Ok(Some(Err(e))) => return Some((Piece::Failed(e.to_string()), None)),
            Ok(None) => return None,
        };
        Some((piece, Some(body)))
    })
}

/// Relays one stream. Returning drops the iterator, which cancels the
/// upstream request if it is still going.
fn relay(request: tiny_http::Request, prompt: String, ctx: &RelayCtx) -> Outcome {
    let (client, url, heartbeat) = (ctx.client.clone(), ctx.upstream.clone(), ctx.heartbeat);
    let mut pieces = ctx
        .bridge
        .iter_direct(move || upstream_pieces(client, url, prompt, heartbeat))
        .peekable();

    // Nothing is sent before the upstream answered: an upstream that fails
    // at once becomes a plain 502.
    while let Some(Piece::Quiet) = pieces.peek() {
        pieces.next();
    }
    if let Some(Piece::Failed(e)) = pieces.peek() {
        let msg = format!("upstream failed: {e}");
        let _ = request.respond(tiny_http::Response::from_string(msg).with_status_code(502));
        return Outcome::UpstreamFailed;
    }

    let mut out = SseWriter::new(request.into_writer());
    if out.head().is_err() {
        return Outcome::Disconnected;
    }
    let mut text = Utf8Carry::default();
    for piece in pieces {
        let sent = match piece {
            Piece::Chunk(chunk) => match text.push(&chunk) {
                t if t.is_empty() => Ok(()),
                t => out.event(None, &t),
            },
            Piece::Quiet => out.comment("keep-alive"),
            Piece::Failed(e) => {
                let _ = out.event(Some("error"), &e);
                let _ = out.finish();
                return Outcome::UpstreamFailed;
            }
        };
        if sent.is_err() {
            // The client left: dropping the iterator (on return) cancels the
            // upstream request.
            return Outcome::Disconnected;
        }
    }
    let _ = out.event(Some("done"), "[DONE]");
    match out.finish() {
        Ok(()) => Outcome::Completed,
        Err(_) => Outcome::Disconnected,
    }
}

/// A `text/event-stream` response written by hand: chunked framing, one
/// flush per event.
struct SseWriter {
    out: Box<dyn Write + Send>,
}

impl SseWriter {
    fn new(out: Box<dyn Write + Send>) -> Self {
        SseWriter { out }
    }

    fn head(&mut self) -> io::Result<()> {
        self.out.write_all(
            b"HTTP/1.1 200 OK\r\n\
              Content-Type: text/event-stream\r\n\
              Cache-Control: no-cache\r\n\
              Transfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n",
        )?;
        self.out.flush()
    }

    fn event(&mut self, event: Option<&str>, data: &str) -> io::Result<()> {
        self.chunk(sse_event(event, data).as_bytes())
    }

    fn comment(&mut self, text: &str) -> io::Result<()> {
        self.chunk(format!(": {text}\n\n").as_bytes())
    }

    fn chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        write!(self.out, "{:x}\r\n", bytes.len())?;
        self.out.write_all(bytes)?;
        self.out.write_all(b"\r\n")?;
        self.out.flush()
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()
    }
}

/// One Server-Sent Event: an optional `event:` line, one `data:` line per
/// line of `data`, a blank line.
pub fn sse_event(event: Option<&str>, data: &str) -> String {
    let mut s = String::new();
    if let Some(event) = event {
        s.push_str("event: ");
        s.push_str(event);
        s.push('\n');
    }
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line.strip_suffix('\r').unwrap_or(line));
        s.push('\n');
    }
    s.push('\n');
    s
}

/// Turns byte chunks into text without splitting a UTF-8 character that
/// straddles two chunks.
#[derive(Debug, Default)]
pub struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    /// The text completed by `bytes`.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.0.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.0) {
            Ok(_) => self.0.len(),
            // An incomplete character at the end: keep it for the next chunk.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Invalid bytes: pass everything on, replaced.
            Err(_) => self.0.len(),
        };
        let rest = self.0.split_off(complete);
        let text = String::from_utf8_lossy(&self.0).into_owned();
        self.0 = rest;
        text
    }
}

// ---------------------------------------------------------------------------
// A minimal blocking SSE client over a raw TcpStream.
// ---------------------------------------------------------------------------

/// One event as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// `POST /chat` on the relay, read as a stream of events.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    pending: String,
    ended: bool,
}

impl EventStream {
    /// Sends the request and reads the response head; fails unless it is a
    /// chunked `200 OK`.
    pub fn open(relay: SocketAddr, prompt: &str) -> io::Result<EventStream> {
        let mut stream = TcpStream::connect(relay)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(
            stream,
            "POST /chat HTTP/1.1\r\nHost: {relay}\r\nAccept: text/event-stream\r\n\
             Content-Length: {}\r\n\r\n{prompt}",
            prompt.len()
        )?;
        stream.flush()?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(io::Error::other(format!(
                "relay answered {}",
                status.trim_end()
            )));
        }
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            chunked |= line.eq_ignore_ascii_case("transfer-encoding: chunked");
        }
        if !chunked {
            return Err(io::Error::other("expected a chunked response"));
        }
        Ok(EventStream {
            reader,
            pending: String::new(),
            ended: false,
        })
    }

    /// The next event (comments skipped), `None` at the end of the response.
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Ok(Some(event));
                }
                continue;
            }
            if self.ended || !self.read_chunk()? {
                self.ended = true;
                return Ok(None);
            }
        }
    }

    /// Reads one chunk of the body into `pending`; false at the last chunk.
    fn read_chunk(&mut self) -> io::Result<bool> {
        let mut size = String::new();
        if self.reader.read_line(&mut size)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = usize::from_str_radix(size.trim_end(), 16).map_err(io::Error::other)?;
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data)?;
        if size == 0 {
            return Ok(false);
        }
        data.truncate(size);
        self.pending.push_str(&String::from_utf8_lossy(&data));
        Ok(true)
    }

    /// Hangs up, as a closed browser tab does.
    pub fn disconnect(self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
    }
}

/// Parses one event block; `None` for a block of comments only.
fn parse_event(block: &str) -> Option<Event> {
    let mut event = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {} // comments (empty field) and unknown fields
        }
    }
    data.map(|data| Event { event, data })
}

// ---------------------------------------------------------------------------
// The demo.
// ---------------------------------------------------------------------------

/// A canned reply, token by token.
pub fn reply_tokens() -> Vec<String> {
    "Sure! Streaming keeps the first word on screen while the rest is still being written."
        .split_inclusive(' ')
        .map(str::to_owned)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = Upstream::start(reply_tokens(), Duration::from_millis(50))?;
    let relay = Relay::start(upstream.url(), Bridge::new(Tokio::new()))?;
    println!(
        "upstream {} -> relay http://{}/chat",
        upstream.url(),
        relay.addr()
    );

    // A client that reads everything, printing each event as it arrives.
    let start = Instant::now();
    let mut events = EventStream::open(relay.addr(), "Why stream?")?;
    let mut reply = String::new();
    while let Some(ev) = events.next_event()? {
        let ms = start.elapsed().as_millis();
        match ev.event.as_deref() {
            None => {
                println!("{ms:>5} ms  data: {:?}", ev.data);
                reply.push_str(&ev.data);
            }
            Some(kind) => println!("{ms:>5} ms  event: {kind} {:?}", ev.data),
        }
    }
    println!("reply: {reply}");

    // A client that hangs up after three events: the upstream stops.
    let mut events = EventStream::open(relay.addr(), "Never mind.")?;
    for _ in 0..3 {
        events.next_event()?;
    }
    events.disconnect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.log().cancelled() == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    println!(
        "after the hang-up: upstream generations completed {}, cancelled {}; \
         {} of {} tokens produced in all",
        upstream.log().completed(),
        upstream.log().cancelled(),
        upstream.log().produced().len(),
        2 * reply_tokens().len(),
    );
    println!("relay: {:?}", relay.stats());
    Ok(())
}
