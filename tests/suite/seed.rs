//! The seed article ("[Python]非同期処理テクニックその1",
//! /work/shared/seed-article.txt): its `run_async` is `Bridge::run`, its
//! `run_async_stream` is `Bridge::iter` / `iter_direct`, and its test files
//! (`test_error.py`, `test_basic.py`, `test_streaming.py`,
//! `test_executor_submit.py`) and claims are checks here, on every adapter
//! (asyncio's role), each sleep on the adapter's own timer.
//!
//! Not ported: `test_without_lambda` (`run_async(None)` raising `ValueError`:
//! in Rust a missing factory, or a future passed instead of one, does not
//! compile, a `compile_fail` doctest on `Bridge::run`) and
//! `test_sync_stream_with_async_for` (`async for` over a plain generator, a
//! `TypeError`: in Rust a type error at compile time).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::Bridge;
use futures_lite::{stream, Stream, StreamExt};

use crate::common::{eventually, message, per_runtime, threads_named, TestRuntime, LIMIT};
use crate::contexts::{ms, Place, Sleep};

/// `invoke_async(message)`: waits (the article: `asyncio.sleep(1)`), then
/// answers.
async fn invoke_async(sleep: Sleep, message: &str) -> String {
    sleep(ms(50)).await;
    format!("処理完了: {message}")
}

const WORDS: [&str; 4] = ["Pythonの", "非同期処理は", "強力な", "機能です。"];

/// `invoke_async_stream(message)`: an LLM-like reply, word by word, one word
/// every `gap`.
fn invoke_async_stream(
    sleep: Sleep,
    gap: Duration,
) -> impl Stream<Item = &'static str> + Send + 'static {
    stream::iter(WORDS).then(move |word| async move {
        sleep(gap).await;
        word
    })
}

/// `invoke_sync_stream`: a plain generator.
fn invoke_sync_stream() -> impl Iterator<Item = &'static str> {
    ["[開始]", "[処理中]", "[完了]"].into_iter()
}

// ===== test_error.py =====

/// `test_direct_call`: calling an async function only makes a coroutine;
/// nothing runs until it is driven. The bridge takes a factory (the
/// article's lambda) and calls it where and when the call runs, once.
fn test_direct_call_runs_nothing<R: TestRuntime>() {
    let ran = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let future = async move {
        r.store(true, Ordering::SeqCst);
        "done"
    };
    assert!(
        !ran.load(Ordering::SeqCst),
        "a future ran before anyone awaited it"
    );
    let b = Bridge::new(R::make());
    let m = Arc::clone(&made);
    let factory = move || {
        m.fetch_add(1, Ordering::SeqCst);
        future
    };
    assert_eq!(made.load(Ordering::SeqCst), 0);
    assert_eq!(b.run(factory), "done");
    assert!(ran.load(Ordering::SeqCst));
    assert_eq!(
        made.load(Ordering::SeqCst),
        1,
        "the factory is called once, by the call"
    );
    // A stream as well: `iter_direct` makes it at the first `next`; neither
    // iterator polls it before a `next`.
    for piped in [false, true] {
        let made = Arc::new(AtomicUsize::new(0));
        let polled = Arc::new(AtomicBool::new(false));
        let (m, p) = (Arc::clone(&made), Arc::clone(&polled));
        let make = move || {
            m.fetch_add(1, Ordering::SeqCst);
            stream::poll_fn(move |_| {
                p.store(true, Ordering::SeqCst);
                std::task::Poll::Ready(Some(1u32))
            })
        };
        let mut it = if piped {
            b.iter(make)
        } else {
            b.iter_direct(make)
        };
        if !piped {
            assert_eq!(
                made.load(Ordering::SeqCst),
                0,
                "iter_direct made its stream before the first next"
            );
        }
        thread::sleep(ms(50));
        assert!(
            !polled.load(Ordering::SeqCst),
            "piped: {piped}: polled before anyone asked"
        );
        assert_eq!(it.next(), Some(1));
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }
}

// ===== test_basic.py =====

fn test_with_lambda<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    assert_eq!(
        b.run(|| invoke_async(R::sleep, "こんにちは")),
        "処理完了: こんにちは"
    );
}

fn test_multiple_async<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let result = b.run(|| async {
        let result1 = invoke_async(R::sleep, "処理1").await;
        let result2 = invoke_async(R::sleep, "処理2").await;
        format!("{result1} | {result2}")
    });
    assert_eq!(result, "処理完了: 処理1 | 処理完了: 処理2");
}

/// Sync code calling again and again: each call its own answer.
fn several_calls_in_sequence_from_sync_code<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let results: Vec<String> = ["a", "b", "c"]
        .into_iter()
        .map(|m| b.run(move || invoke_async(R::sleep, m)))
        .collect();
    assert_eq!(results, ["処理完了: a", "処理完了: b", "処理完了: c"]);
}

/// `asyncio.gather`: the three run at the same time. Each waits, on the
/// runtime's timer, until all three have started: in sequence, the first
/// would wait forever. Results come in the order asked.
fn gather_runs_the_calls_concurrently<R: TestRuntime>() {
    async fn task(sleep: Sleep, started: &AtomicUsize, name: &str) -> String {
        started.fetch_add(1, Ordering::SeqCst);
        while started.load(Ordering::SeqCst) < 3 {
            sleep(ms(1)).await;
        }
        invoke_async(sleep, name).await
    }
    let b = Bridge::new(R::make());
    let results = b.run(|| async {
        let started = AtomicUsize::new(0);
        let (r1, r2, r3) = futures::join!(
            task(R::sleep, &started, "タスク1"),
            task(R::sleep, &started, "タスク2"),
            task(R::sleep, &started, "タスク3")
        );
        vec![r1, r2, r3]
    });
    assert_eq!(
        results,
        [
            "処理完了: タスク1",
            "処理完了: タスク2",
            "処理完了: タスク3"
        ]
    );
    // The list form: `asyncio.gather(*tasks)`.
    let users = b.run(|| async {
        let tasks = (1..=5).map(|id| async move {
            R::sleep(ms(5)).await;
            format!("ユーザー{id}のデータ")
        });
        futures::future::join_all(tasks).await
    });
    assert_eq!(
        users,
        (1..=5)
            .map(|id| format!("ユーザー{id}のデータ"))
            .collect::<Vec<_>>()
    );
}

/// `return_exceptions=True`: each result on its own, an error among them.
fn gather_with_errors_keeps_the_other_results<R: TestRuntime>() {
    async fn fetch(sleep: Sleep, api: &str) -> Result<String, String> {
        sleep(ms(10)).await;
        if api == "API2" {
            Err(format!("{api} failed"))
        } else {
            Ok(format!("{api} ok"))
        }
    }
    let b = Bridge::new(R::make());
    let results = b.run(|| async {
        let (a, b, c) = futures::join!(
            fetch(R::sleep, "API1"),
            fetch(R::sleep, "API2"),
            fetch(R::sleep, "API3")
        );
        vec![a, b, c]
    });
    assert_eq!(
        results,
        [
            Ok("API1 ok".into()),
            Err("API2 failed".into()),
            Ok("API3 ok".into())
        ]
    );
}

per_runtime!(
    test_direct_call_runs_nothing,
    test_with_lambda,
    test_multiple_async,
    several_calls_in_sequence_from_sync_code,
    gather_runs_the_calls_concurrently,
    gather_with_errors_keeps_the_other_results
);

// ===== test_streaming.py =====

/// The whole stream consumed inside one call (`async for` in `run_async`).
fn test_async_streaming<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let (shown, result) = b.run(|| async {
        let mut shown = String::from("🤖 AI: ");
        let mut words = std::pin::pin!(invoke_async_stream(R::sleep, ms(5)));
        while let Some(word) = words.next().await {
            shown.push_str(word);
        }
        (shown, "完了")
    });
    assert_eq!(shown, "🤖 AI: Pythonの非同期処理は強力な機能です。");
    assert_eq!(result, "完了");
}

fn test_sync_stream_with_for<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let progress = b.run(|| async {
        let mut progress = Vec::new();
        for chunk in invoke_sync_stream() {
            R::sleep(ms(1)).await;
            progress.push(format!("⏳ {chunk}"));
        }
        progress
    });
    assert_eq!(progress, ["⏳ [開始]", "⏳ [処理中]", "⏳ [完了]"]);
}

/// A reply whose word `n + 1` is made only once the consumer has received
/// word `n`: a bridge that waited for the whole reply (or a batch) would
/// never deliver anything.
fn acknowledged_reply(
    sleep: Sleep,
    acks: async_channel::Receiver<()>,
) -> impl Stream<Item = &'static str> + Send + 'static {
    stream::unfold((0usize, acks), move |(n, acks)| async move {
        if n == WORDS.len() {
            return None;
        }
        if n > 0 {
            acks.recv().await.ok()?;
        }
        sleep(ms(5)).await;
        Some((WORDS[n], (n + 1, acks)))
    })
}

/// `test_frontend_streaming`: each chunk reaches the sync side as soon as it
/// exists, with `iter` and with `iter_direct`; none before it was made.
fn test_frontend_streaming<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    for direct in [false, true] {
        let (ack, acks) = async_channel::unbounded();
        let make = move || acknowledged_reply(R::sleep, acks);
        let chunks = if direct {
            b.iter_direct(make)
        } else {
            b.iter(make)
        };
        let mut got = Vec::new();
        for chunk in chunks {
            got.push(chunk);
            let _ = ack.send_blocking(());
        }
        assert_eq!(got, WORDS, "direct: {direct}");
        // And timed: chunk `n` cannot arrive before `n + 1` gaps.
        let gap = ms(40);
        let start = Instant::now();
        let make = move || invoke_async_stream(R::sleep, gap);
        let chunks = if direct {
            b.iter_direct(make)
        } else {
            b.iter(make)
        };
        let arrivals: Vec<(&str, Duration)> = chunks.map(|c| (c, start.elapsed())).collect();
        for (n, (word, at)) in arrivals.iter().enumerate() {
            let made = gap * (n as u32 + 1);
            assert!(
                *at >= made,
                "direct: {direct}: {word} arrived at {at:?}, before it was made at {made:?}"
            );
        }
        assert_eq!(arrivals.iter().map(|(w, _)| *w).collect::<Vec<_>>(), WORDS);
    }
}

/// `run_async` gives nothing until the whole reply is made;
/// `run_async_stream` gives the first word while the rest is not made yet
/// (the stream is polled only as the consumer asks).
fn test_comparison_blocking_vs_streaming<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let made = Arc::new(AtomicUsize::new(0));
    let counted = |made: Arc<AtomicUsize>| {
        invoke_async_stream(R::sleep, ms(20)).map(move |w| {
            made.fetch_add(1, Ordering::SeqCst);
            w
        })
    };
    let m = Arc::clone(&made);
    let reply: Vec<&str> = b.run(move || counted(m).collect());
    assert_eq!(reply, WORDS);
    assert_eq!(
        made.load(Ordering::SeqCst),
        4,
        "run returned before the whole reply was made"
    );
    for direct in [false, true] {
        let made = Arc::new(AtomicUsize::new(0));
        let m = Arc::clone(&made);
        let make = move || counted(m);
        let mut words = if direct {
            b.iter_direct(make)
        } else {
            b.iter(make)
        };
        assert_eq!(words.next(), Some("Pythonの"));
        thread::sleep(ms(100));
        assert_eq!(
            made.load(Ordering::SeqCst),
            1,
            "direct: {direct}: the stream ran ahead of the consumer"
        );
        assert_eq!(words.collect::<Vec<_>>(), WORDS[1..]);
    }
}

/// The article's recommended pattern (its FastAPI / Flask examples): a
/// synchronous handler returns `run_async_stream(lambda: get_openai_stream())`
/// as a streaming response. Here a blocking HTTP handler writes each chunk of
/// an SSE stream, made by a stream that first "connects" asynchronously, as
/// it comes; the client reads the first event before the rest exists.
fn sse_streaming_response_from_a_sync_handler<R: TestRuntime>() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let b = Bridge::new(R::make());
    let (ack, acks) = async_channel::unbounded::<()>();
    let server = thread::spawn(move || -> std::io::Result<()> {
        let (conn, _) = listener.accept()?;
        let mut request = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        while request.read_line(&mut line)? > 2 {
            line.clear();
        }
        let mut conn = conn;
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
        )?;
        // `get_openai_stream`: an awaited "create" call, then the chunks.
        let events = b.iter(move || {
            stream::once_future(async move {
                R::sleep(ms(5)).await;
                acknowledged_reply(R::sleep, acks)
            })
            .flatten()
            .map(|content| format!("data: {content}\n\n"))
        });
        for event in events {
            conn.write_all(event.as_bytes())?;
            conn.flush()?;
        }
        Ok(())
    });
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(LIMIT)))
        .expect("timeout");
    conn.write_all(b"GET /chat?prompt=hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        response.read_line(&mut line).expect("head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let mut events = Vec::new();
    let mut line = String::new();
    while response.read_line(&mut line).expect("an event") > 0 {
        if let Some(data) = line.strip_prefix("data: ") {
            events.push(data.trim_end().to_owned());
            // The next word exists only once this one has arrived.
            let _ = ack.send_blocking(());
        }
        line.clear();
    }
    let mut rest = String::new();
    response.read_to_string(&mut rest).expect("the end");
    server
        .join()
        .expect("the handler")
        .expect("the handler's IO");
    assert_eq!(events, WORDS);
}

per_runtime!(
    test_async_streaming,
    test_sync_stream_with_for,
    test_frontend_streaming,
    test_comparison_blocking_vs_streaming,
    sse_streaming_response_from_a_sync_handler
);

// ===== test_executor_submit.py =====

/// `test1_basic_submit`: a call made on another thread; the caller goes on
/// with other work meanwhile (the call needs that work to finish), and gets
/// the result when it asks (`future.result()` is `join`).
fn test1_a_call_on_another_thread_while_the_caller_works<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let (tx, rx) = async_channel::bounded::<&str>(1);
    let future = thread::spawn(move || {
        b.run(move || async move {
            let other_work = rx.recv().await.unwrap_or("none");
            R::sleep(ms(20)).await;
            format!("タスクA 完了 ({other_work})")
        })
    });
    tx.send_blocking("他の処理").unwrap();
    assert_eq!(future.join().unwrap(), "タスクA 完了 (他の処理)");
}

/// `test2_multiple_tasks` / `test3_sequential_vs_parallel`: calls from
/// several threads run in parallel: each waits until all three have
/// started (one after the other, the first would wait forever).
fn test2_and_3_calls_from_several_threads_run_in_parallel<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    let started = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = ["タスクA", "タスクB", "タスクC"]
        .into_iter()
        .map(|name| {
            let (b, started) = (b.clone(), Arc::clone(&started));
            thread::spawn(move || {
                b.run(move || async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    while started.load(Ordering::SeqCst) < 3 {
                        R::sleep(ms(1)).await;
                    }
                    R::sleep(ms(20)).await;
                    name
                })
            })
        })
        .collect();
    let results: Vec<&str> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, ["タスクA", "タスクB", "タスクC"]);
}

/// `test4_with_arguments`: arguments travel in the closure.
fn test4_with_arguments<R: TestRuntime>() {
    async fn calculate(sleep: Sleep, operation: &str, a: i64, b: i64) -> i64 {
        sleep(ms(1)).await;
        match operation {
            "add" => a + b,
            "mul" => a * b,
            other => panic!("unknown operation {other}"),
        }
    }
    let b = Bridge::new(R::make());
    let (op, x, y) = ("add", 10, 20);
    let sum = b.run(move || calculate(R::sleep, op, x, y));
    let product = b.run(|| calculate(R::sleep, "mul", 10, 20));
    assert_eq!((sum, product), (30, 200));
}

/// `test5_exception_handling`: an error value and a panic on another thread
/// both come back to the caller, the panic as an error value or as a panic.
fn test5_errors_from_another_thread_come_back<R: TestRuntime>() {
    #[derive(Debug, PartialEq)]
    struct TaskError(&'static str);
    let b = Bridge::new(R::make());
    let b2 = b.clone();
    let value_err = thread::spawn(move || {
        b2.run(|| async {
            R::sleep(ms(1)).await;
            Err::<u32, _>(TaskError("タスクでエラー"))
        })
    })
    .join()
    .unwrap();
    assert_eq!(value_err, Err(TaskError("タスクでエラー")));
    let b3 = b.clone();
    let panic_err = thread::spawn(move || {
        b3.try_run(|| async {
            R::sleep(ms(1)).await;
            panic!("タスクでエラー")
        })
        .unwrap_err()
        .to_string()
    })
    .join()
    .unwrap();
    assert_eq!(panic_err, "the bridged future panicked: タスクでエラー");
    let payload = thread::spawn(move || {
        b.run(|| async {
            R::sleep(ms(1)).await;
            panic!("タスクでエラー")
        })
    })
    .join()
    .unwrap_err();
    assert_eq!(message(&*payload).as_deref(), Some("タスクでエラー"));
}

per_runtime!(
    test1_a_call_on_another_thread_while_the_caller_works,
    test2_and_3_calls_from_several_threads_run_in_parallel,
    test4_with_arguments,
    test5_errors_from_another_thread_come_back
);

// ===== The article's claims =====

/// "既存のイベントループがあっても動作する": where `asyncio.run` fails
/// (inside a running event loop), the bridge works: `run_async` and
/// `run_async_stream` from every calling context, a running tokio runtime's
/// body and tasks among them.
fn works_where_an_event_loop_is_already_running<R: TestRuntime>() {
    let b = Bridge::new(R::make());
    for place in Place::all() {
        let (result, words) = place.run(&b, |b| {
            let result = b.run(|| invoke_async(R::sleep, "ループ内"));
            let words: Vec<&str> = b.iter(|| invoke_async_stream(R::sleep, ms(1))).collect();
            (result, words)
        });
        assert_eq!(result, "処理完了: ループ内", "{place:?}");
        assert_eq!(words, WORDS, "{place:?}");
    }
}

/// The problem the article starts from: starting an event loop inside a
/// running one fails (tokio: "Cannot start a runtime from within a
/// runtime", as `asyncio.run` raises `RuntimeError`); the bridge called
/// right there works.
fn the_naive_nested_event_loop_fails_where_the_bridge_works<R: TestRuntime>() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let b = Bridge::new(R::make());
    let (naive, bridged) = rt.block_on(async move {
        let naive = std::panic::catch_unwind(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(async { 1 })
        })
        .map_err(|p| message(&*p).unwrap_or_default());
        (naive, b.run(|| invoke_async(R::sleep, "ネスト")))
    });
    let text = naive.expect_err("a runtime started inside a runtime");
    assert!(
        text.starts_with("Cannot start a runtime from within a runtime"),
        "{text}"
    );
    assert_eq!(bridged, "処理完了: ネスト");
}

/// ThreadPoolExecutor's "thread reuse" and `with`'s "automatic cleanup":
/// calls that need a loop thread reuse one, and dropping the bridge ends its
/// threads.
fn loop_threads_are_reused_and_cleaned_up<R: TestRuntime>() {
    let name = format!("sd-re-{}", &R::NAME[..2]);
    let b = Bridge::builder(R::make()).thread_name(&name).build();
    for i in 0..20u32 {
        let out = b.run_timeout(Duration::from_secs(LIMIT), move || async move {
            R::sleep(ms(1)).await;
            i
        });
        assert_eq!(out.unwrap(), i);
    }
    assert_eq!(b.threads(), 1, "20 calls in a row need one loop thread");
    assert_eq!(threads_named(&format!("{name}-")), 1);
    drop(b);
    assert!(
        eventually(Duration::from_secs(LIMIT / 2), || threads_named(&format!(
            "{name}-"
        )) == 0),
        "loop threads outlived the bridge"
    );
}

/// `max_workers`: `Builder::max_threads` bounds how many calls run on loop
/// threads at once; the calls beyond wait their turn and all complete. Each
/// call waits until another runs beside it (or no other is left), so exactly
/// two run at once at some point.
fn max_threads_bounds_the_calls_running_at_once<R: TestRuntime>() {
    const CALLS: usize = 6;
    let b = Bridge::builder(R::make()).max_threads(2).build();
    let running = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CALLS));
    let handles: Vec<_> = (0..CALLS)
        .map(|i| {
            let (b, barrier) = (b.clone(), Arc::clone(&barrier));
            let (running, finished, most) = (
                Arc::clone(&running),
                Arc::clone(&finished),
                Arc::clone(&most),
            );
            thread::spawn(move || {
                barrier.wait();
                b.run_timeout(Duration::from_secs(LIMIT), move || async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    while running.load(Ordering::SeqCst) < 2
                        && running.load(Ordering::SeqCst) + finished.load(Ordering::SeqCst) < CALLS
                    {
                        R::sleep(ms(1)).await;
                    }
                    R::sleep(ms(10)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    finished.fetch_add(1, Ordering::SeqCst);
                    i
                })
            })
        })
        .collect();
    let outs: Vec<usize> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(outs, (0..CALLS).collect::<Vec<_>>());
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "calls running at once with max_threads(2)"
    );
}

per_runtime!(
    works_where_an_event_loop_is_already_running,
    the_naive_nested_event_loop_fails_where_the_bridge_works,
    loop_threads_are_reused_and_cleaned_up,
    max_threads_bounds_the_calls_running_at_once
);
