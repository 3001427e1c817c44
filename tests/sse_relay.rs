//! The synchronous SSE relay of `examples/sse_relay.rs`: a tiny_http handler
//! walking a reqwest body through `Bridge::iter`. Events reach the client
//! while the upstream is still generating, and a client that hangs up
//! cancels the upstream generation.
#![cfg(feature = "tokio")]

#[path = "common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../examples/sse_relay.rs"]
mod sse_relay;

use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, watchdog};
use executor_bridge::{Bridge, Tokio};
use sse_relay::{sse_event, Event, EventStream, Relay, Upstream, Utf8Carry};

fn tokens(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tok{i} ")).collect()
}

fn bridge() -> Bridge<Tokio> {
    Bridge::new(Tokio::new())
}

/// Splits a `text/event-stream` body into events (data lines only), for the
/// reqwest client below.
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
fn events_arrive_while_the_upstream_is_still_generating() {
    watchdog(60, || {
        let words = tokens(10);
        let upstream = Upstream::start(words.clone(), Duration::from_millis(50)).unwrap();
        let relay = Relay::start(upstream.url(), bridge()).unwrap();

        // A real HTTP client (reqwest, on a runtime of the test's own) reads
        // the relay's chunked `text/event-stream` and notes when each event
        // arrived.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("http://{}/chat", relay.addr());
        let received: Vec<(Instant, Event)> = rt.block_on(async move {
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
        // upstream produced its last token (in fact after about one token).
        let first_at = received[0].0;
        let produced_before_first = produced.iter().filter(|t| **t <= first_at).count();
        assert!(
            first_at < *produced.last().unwrap(),
            "the first event arrived after the upstream's last token: \
             {produced_before_first} of {} tokens had been produced",
            produced.len()
        );
        assert!(
            produced_before_first < words.len() / 2,
            "{produced_before_first} of {} tokens produced before the first event",
            words.len()
        );
        // Not one batch at the end either: at least half the tokens came as
        // events of their own.
        assert!(
            received.len() > words.len() / 2,
            "{} events",
            received.len()
        );
        assert_eq!(relay.stats().completed(), 1);
    });
}

#[test]
fn a_client_hanging_up_cancels_the_upstream() {
    watchdog(60, || {
        let total = 100; // 5 s of tokens: far more than the test waits
        let upstream = Upstream::start(tokens(total), Duration::from_millis(50)).unwrap();
        let relay = Relay::start(upstream.url(), bridge()).unwrap();

        let mut events = EventStream::open(relay.addr(), "long story").unwrap();
        for i in 0..3 {
            let ev = events.next_event().unwrap().unwrap();
            assert!(ev.data.starts_with(&format!("tok{i}")), "{ev:?}");
        }
        let hung_up = Instant::now();
        events.disconnect();

        // The relay's next write fails and its handler drops the
        // BlockingIter; the stream is dropped on its loop thread, the reqwest
        // body with it, the upstream connection closes, and the upstream's
        // token stream is dropped unfinished.
        assert!(
            eventually(Duration::from_secs(3), || relay.stats().disconnected() == 1),
            "the relay did not notice the hang-up: {:?}",
            relay.stats()
        );
        assert!(
            eventually(Duration::from_secs(3), || upstream.log().cancelled() == 1),
            "the upstream kept generating: {} tokens",
            upstream.log().produced().len()
        );
        let cancelled_after = hung_up.elapsed();
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
        assert!(cancelled_after < Duration::from_secs(3));
    });
}

#[test]
fn a_hang_up_during_a_silent_upstream_is_found_by_the_heartbeat() {
    watchdog(60, || {
        // One token a second; a heartbeat comment every 50 ms.
        let upstream = Upstream::start(tokens(10), Duration::from_secs(1)).unwrap();
        let relay =
            Relay::with_heartbeat(upstream.url(), bridge(), Duration::from_millis(50)).unwrap();

        let mut events = EventStream::open(relay.addr(), "slow").unwrap();
        let first = events.next_event().unwrap().unwrap();
        assert_eq!(first.data, "tok0 ");
        events.disconnect();

        // Found by a heartbeat write long before the next token is due; the
        // BlockingIter is dropped while its stream waits.
        assert!(
            eventually(Duration::from_millis(800), || relay.stats().disconnected()
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
fn concurrent_streams_each_get_their_whole_reply() {
    watchdog(60, || {
        let words = tokens(8);
        let upstream = Upstream::start(words.clone(), Duration::from_millis(20)).unwrap();
        let relay = Relay::start(upstream.url(), bridge()).unwrap();
        let addr = relay.addr();
        let clients: Vec<_> = (0..3)
            .map(|i| {
                thread::spawn(move || {
                    let mut events = EventStream::open(addr, &format!("prompt {i}")).unwrap();
                    let mut text = String::new();
                    let mut done = false;
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
        let mut prompts = upstream.log().prompts();
        prompts.sort();
        assert_eq!(prompts, ["prompt 0", "prompt 1", "prompt 2"]);
        assert_eq!(upstream.log().completed(), 3);
        assert!(eventually(Duration::from_secs(2), || relay
            .stats()
            .completed()
            == 3));
    });
}

#[test]
fn an_unreachable_upstream_is_a_502() {
    watchdog(60, || {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let relay = Relay::start(format!("http://127.0.0.1:{port}/generate"), bridge()).unwrap();
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
