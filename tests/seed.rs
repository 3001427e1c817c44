//! Rust counterparts of the seed article's Python tests ("[Python]非同期処理
//! テクニックその1": `test_error.py`, `test_basic.py`, `test_streaming.py`,
//! `test_executor_submit.py`), with `run` for `run_async` and `iter` for
//! `run_async_stream`. With the "tokio" feature they run on `Tokio` (the
//! analogue of asyncio), otherwise on `Pollster` with a runtime-free timer.
//!
//! Not ported: `test_without_lambda` (passing a future instead of a closure
//! is a compile error, a `compile_fail` doctest on `Bridge::run`) and
//! `test_sync_stream_with_async_for` (a type error in Rust).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::suite::LIMIT;
use common::watchdog;
use executor_bridge::Bridge;
use futures_lite::{stream, Stream, StreamExt};

#[cfg(feature = "tokio")]
type Rt = executor_bridge::Tokio;
#[cfg(not(feature = "tokio"))]
type Rt = executor_bridge::Pollster;

fn bridge() -> Bridge<Rt> {
    Bridge::new(Rt::default())
}

/// `asyncio.sleep`.
async fn sleep(d: Duration) {
    #[cfg(feature = "tokio")]
    tokio::time::sleep(d).await;
    #[cfg(not(feature = "tokio"))]
    common::suite::thread_sleep(d).await;
}

/// `invoke_async(message)`: waits, then answers (the article waits 1 s).
async fn invoke_async(message: &str) -> String {
    sleep(Duration::from_millis(100)).await;
    format!("処理完了: {message}")
}

/// `invoke_async_stream(message)`: an LLM-like reply, word by word, one word
/// every `gap`.
fn invoke_async_stream(gap: Duration) -> impl Stream<Item = &'static str> {
    stream::iter(["Pythonの", "非同期処理は", "強力な", "機能です。"]).then(
        move |word| async move {
            sleep(gap).await;
            word
        },
    )
}

/// `invoke_sync_stream`: a plain generator.
fn invoke_sync_stream() -> impl Iterator<Item = &'static str> {
    ["[開始]", "[処理中]", "[完了]"].into_iter()
}

// test_error.py

#[test]
fn test_direct_call_runs_nothing() {
    // Calling an async fn only makes a future; nothing runs until the
    // bridge drives it.
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let invoke = move || {
        let r = Arc::clone(&r);
        async move {
            r.store(true, Ordering::SeqCst);
            "done"
        }
    };
    let future = invoke();
    assert!(
        !ran.load(Ordering::SeqCst),
        "a future ran before anyone awaited it"
    );
    drop(future);
    assert!(!ran.load(Ordering::SeqCst));
    let b = bridge();
    assert_eq!(watchdog(LIMIT, move || b.run(invoke)), "done");
    assert!(ran.load(Ordering::SeqCst));
}

// test_basic.py

#[test]
fn test_with_lambda() {
    let b = bridge();
    let result = watchdog(LIMIT, move || b.run(|| invoke_async("こんにちは")));
    assert_eq!(result, "処理完了: こんにちは");
}

#[test]
fn test_multiple_async() {
    let b = bridge();
    let result = watchdog(LIMIT, move || {
        b.run(|| async {
            let result1 = invoke_async("処理1").await;
            let result2 = invoke_async("処理2").await;
            format!("{result1} | {result2}")
        })
    });
    assert_eq!(result, "処理完了: 処理1 | 処理完了: 処理2");
}

#[test]
fn several_calls_in_sequence_from_sync_code() {
    let b = bridge();
    let results = watchdog(LIMIT, move || {
        ["a", "b", "c"]
            .into_iter()
            .map(|m| b.run(move || invoke_async(m)))
            .collect::<Vec<_>>()
    });
    assert_eq!(results, ["処理完了: a", "処理完了: b", "処理完了: c"]);
}

#[test]
fn gather_runs_the_calls_concurrently() {
    let b = bridge();
    let (results, elapsed) = watchdog(LIMIT, move || {
        let start = Instant::now();
        let results = b.run(|| async {
            let (r1, r2, r3) = futures::join!(
                invoke_async("タスク1"),
                invoke_async("タスク2"),
                invoke_async("タスク3")
            );
            vec![r1, r2, r3]
        });
        (results, start.elapsed())
    });
    assert_eq!(
        results,
        [
            "処理完了: タスク1",
            "処理完了: タスク2",
            "処理完了: タスク3"
        ]
    );
    // In sequence: 300 ms.
    assert!(elapsed < Duration::from_millis(280), "{elapsed:?}");
}

#[test]
fn gather_with_errors_keeps_the_other_results() {
    // `return_exceptions=True`: each result on its own.
    async fn fetch(api: &str) -> Result<String, String> {
        sleep(Duration::from_millis(10)).await;
        if api == "API2" {
            Err(format!("{api} failed"))
        } else {
            Ok(format!("{api} ok"))
        }
    }
    let b = bridge();
    let results = watchdog(LIMIT, move || {
        b.run(|| async {
            let (a, b, c) = futures::join!(fetch("API1"), fetch("API2"), fetch("API3"));
            vec![a, b, c]
        })
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

// test_streaming.py

#[test]
fn test_async_streaming() {
    // The whole stream consumed inside one call.
    let b = bridge();
    let (shown, result) = watchdog(LIMIT, move || {
        b.run(|| async {
            let mut shown = String::from("🤖 AI: ");
            let mut words = std::pin::pin!(invoke_async_stream(Duration::from_millis(5)));
            while let Some(word) = words.next().await {
                shown.push_str(word);
            }
            (shown, "完了")
        })
    });
    assert_eq!(shown, "🤖 AI: Pythonの非同期処理は強力な機能です。");
    assert_eq!(result, "完了");
}

#[test]
fn test_sync_stream_with_for() {
    let b = bridge();
    let progress = watchdog(LIMIT, move || {
        b.run(|| async {
            let mut progress = Vec::new();
            for chunk in invoke_sync_stream() {
                sleep(Duration::from_millis(1)).await;
                progress.push(format!("⏳ {chunk}"));
            }
            progress
        })
    });
    assert_eq!(progress, ["⏳ [開始]", "⏳ [処理中]", "⏳ [完了]"]);
}

#[test]
fn test_frontend_streaming() {
    // Each chunk reaches the sync side as soon as it exists.
    let gap = Duration::from_millis(100);
    let b = bridge();
    let chunks = watchdog(LIMIT, move || {
        let start = Instant::now();
        b.iter(move || invoke_async_stream(gap))
            .map(|chunk| (chunk, start.elapsed()))
            .collect::<Vec<_>>()
    });
    let words: Vec<&str> = chunks.iter().map(|(w, _)| *w).collect();
    assert_eq!(words, ["Pythonの", "非同期処理は", "強力な", "機能です。"]);
    // Each chunk arrives after the producer made it, not all at the end.
    for (n, (word, at)) in chunks.iter().enumerate() {
        let made = gap * (n as u32 + 1);
        assert!(
            *at >= made,
            "{word} arrived at {at:?}, before it was made at {made:?}"
        );
    }
    let (_, first) = chunks[0];
    let (_, last) = chunks[3];
    assert!(first < last, "the first chunk came with the last");
}

#[test]
fn test_comparison_blocking_vs_streaming() {
    let gap = Duration::from_millis(150);
    let b = bridge();
    let (blocking, first_chunk) = watchdog(LIMIT, move || {
        // run_async: nothing until the whole reply is done.
        let start = Instant::now();
        let reply: Vec<&str> = b.run(move || invoke_async_stream(gap).collect());
        let blocking = start.elapsed();
        assert_eq!(reply.len(), 4);
        // run_async_stream: the first word after one gap.
        let start = Instant::now();
        let mut words = b.iter(move || invoke_async_stream(gap));
        assert_eq!(words.next(), Some("Pythonの"));
        (blocking, start.elapsed())
    });
    assert!(blocking >= gap * 4, "{blocking:?}");
    assert!(
        first_chunk < blocking / 2,
        "first chunk after {first_chunk:?}, the whole reply after {blocking:?}"
    );
}

// test_executor_submit.py

#[test]
fn test1_a_call_on_another_thread_returns_at_once_and_joins_later() {
    let b = bridge();
    watchdog(LIMIT, move || {
        let start = Instant::now();
        let future = thread::spawn(move || {
            b.run(|| async {
                sleep(Duration::from_millis(200)).await;
                "タスクA 完了"
            })
        });
        // submit() returns at once; the caller does other work.
        assert!(start.elapsed() < Duration::from_millis(150));
        assert_eq!(future.join().unwrap(), "タスクA 完了");
        assert!(start.elapsed() >= Duration::from_millis(200));
    });
}

#[test]
fn test2_and_3_calls_from_several_threads_run_in_parallel() {
    let b = bridge();
    let (results, elapsed) = watchdog(LIMIT, move || {
        let start = Instant::now();
        let handles: Vec<_> = [("タスクA", 200), ("タスクB", 200), ("タスクC", 200)]
            .into_iter()
            .map(|(name, ms)| {
                let b = b.clone();
                thread::spawn(move || {
                    b.run(move || async move {
                        sleep(Duration::from_millis(ms)).await;
                        name
                    })
                })
            })
            .collect();
        let results: Vec<&str> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (results, start.elapsed())
    });
    assert_eq!(results, ["タスクA", "タスクB", "タスクC"]);
    // One after the other: 600 ms.
    assert!(elapsed < Duration::from_millis(550), "{elapsed:?}");
}

#[test]
fn test4_with_arguments() {
    async fn calculate(operation: &str, a: i64, b: i64) -> i64 {
        sleep(Duration::from_millis(1)).await;
        match operation {
            "add" => a + b,
            "mul" => a * b,
            _ => unreachable!(),
        }
    }
    let b = bridge();
    let (sum, product) = watchdog(LIMIT, move || {
        let (op, x, y) = ("add", 10, 20);
        let sum = b.run(move || calculate(op, x, y));
        let product = b.run(|| calculate("mul", 10, 20));
        (sum, product)
    });
    assert_eq!((sum, product), (30, 200));
}

#[test]
fn test5_errors_from_another_thread_come_back() {
    #[derive(Debug, PartialEq)]
    struct TaskError(&'static str);
    let b = bridge();
    let (value_err, panic_err, panic_payload) = watchdog(LIMIT, move || {
        let b2 = b.clone();
        // An error value, returned on another thread, then carried back.
        let value_err = thread::spawn(move || {
            b2.run(|| async {
                sleep(Duration::from_millis(1)).await;
                Err::<u32, _>(TaskError("タスクでエラー"))
            })
        })
        .join()
        .unwrap();
        // A panic on the bridge's side, as an error value and as a panic.
        let b3 = b.clone();
        let panic_err = thread::spawn(move || {
            b3.try_run(|| async {
                sleep(Duration::from_millis(1)).await;
                panic!("タスクでエラー")
            })
            .unwrap_err()
            .to_string()
        })
        .join()
        .unwrap();
        let panic_payload = thread::spawn(move || {
            b.run(|| async {
                sleep(Duration::from_millis(1)).await;
                panic!("タスクでエラー")
            })
        })
        .join()
        .unwrap_err();
        (
            value_err,
            panic_err,
            common::suite::message(&*panic_payload),
        )
    });
    assert_eq!(value_err, Err(TaskError("タスクでエラー")));
    assert_eq!(panic_err, "the bridged future panicked: タスクでエラー");
    assert_eq!(panic_payload.as_deref(), Some("タスクでエラー"));
}
