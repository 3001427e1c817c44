//! cargo run --example tour --all-features
//!
//! A short tour of executor-bridge: blocking code calling async code on every
//! runtime, from inside tokio runtimes, a live stream, a timeout and a panic.

use std::panic;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{AsyncStd, Bridge, Pollster, Smol, Tokio};
use futures_lite::{stream, Stream, StreamExt};

/// The name of the thread the caller (or a future) runs on.
fn here() -> String {
    thread::current().name().unwrap_or("unnamed").to_owned()
}

/// A stand-in for a streaming LLM reply: one word at a time, as it is produced.
fn llm_reply(prompt: &str) -> impl Stream<Item = String> {
    let reply = match prompt {
        "Why is the sky blue?" => "Air molecules scatter blue sunlight more than red light.",
        _ => "I don't know.",
    };
    let words: Vec<String> = reply.split(' ').map(str::to_owned).collect();
    stream::iter(words).then(|word| async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        word
    })
}

/// Reports, when dropped, the thread it was dropped on.
struct Goodbye(mpsc::Sender<String>);

impl Drop for Goodbye {
    fn drop(&mut self) {
        let _ = self.0.send(here());
    }
}

fn main() {
    let tour = Instant::now();
    let tokio = Bridge::new(Tokio::new());

    println!("1. A plain `fn main` calls async code on each runtime");
    let t = Instant::now();
    let slept = tokio.run(move || async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        format!(
            "tokio timer fired after {:?}; the future ran inline on thread {}",
            t.elapsed(),
            here()
        )
    });
    println!("   Tokio:    {slept}");

    let smol = Bridge::new(Smol::new());
    let spawned = smol.run(|| async {
        smol::Timer::after(Duration::from_millis(10)).await;
        smol::spawn(async { 21 * 2 }).await
    });
    println!("   Smol:     a timer, then a spawned task returned {spawned}");

    let async_std = Bridge::new(AsyncStd); // legacy: async-std is discontinued in favour of smol
    let spawned = async_std.run(|| async {
        async_std::task::sleep(Duration::from_millis(10)).await;
        async_std::task::spawn(async { "hello" }).await
    });
    println!("   AsyncStd: a sleep, then a spawned task returned {spawned:?} (legacy)");

    let pollster = Bridge::new(Pollster);
    let (tx, rx) = async_channel::bounded(1);
    thread::spawn(move || tx.send_blocking("a message from another thread"));
    let got = pollster.run(move || async move { rx.recv().await.unwrap() });
    println!("   Pollster: no runtime at all, awaited {got:?}");

    println!();
    println!("2. Calls from code that is itself running on tokio");
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran_on = current_thread.block_on(async {
        // What `#[tokio::main(flavor = "current_thread")]` or `#[tokio::test]` code sees.
        tokio.run(|| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            here()
        })
    });
    println!(
        "   from a current_thread runtime's block_on (thread {}):",
        here()
    );
    println!("     the call hopped to the bridge's loop thread {ran_on}");

    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bridge = tokio.clone();
    let (caller, child, ran_on) = app.block_on(async move {
        tokio::spawn(async move {
            // A worker task awaiting a task it just spawned: a naive block_on would hang here.
            let child = tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                "child task done"
            });
            let caller = here();
            let (child, ran_on) = bridge.run(move || async move { (child.await.unwrap(), here()) });
            (caller, child, ran_on)
        })
        .await
        .unwrap()
    });
    println!(
        "   from a task on a multi_thread worker (thread {caller}) awaiting its own child task:"
    );
    println!(
        "     the worker's queue was handed off, the call ran right there on {ran_on}: {child:?}"
    );

    println!();
    println!("3. A live stream, printed word by word as it arrives");
    let t = Instant::now();
    println!("   > Why is the sky blue?");
    for word in tokio.iter(|| llm_reply("Why is the sky blue?")) {
        println!("   [{:>3} ms] {word}", t.elapsed().as_millis());
    }
    let (dropped, dropped_on) = mpsc::channel();
    let mut endless = tokio.iter(move || {
        let goodbye = Goodbye(dropped);
        stream::unfold((0u64, goodbye), |(n, goodbye)| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Some((n, (n + 1, goodbye)))
        })
    });
    let first: Vec<u64> = endless.by_ref().take(3).collect();
    println!("   an endless stream: took {first:?}, then dropped the iterator");
    drop(endless);
    let thread = dropped_on.recv_timeout(Duration::from_secs(5)).unwrap();
    println!("   the stream was dropped (its destructor ran) on its loop thread {thread}");

    println!();
    println!("4. A timeout");
    let (dropped, dropped_on) = mpsc::channel();
    let t = Instant::now();
    let err = tokio
        .run_timeout(Duration::from_millis(200), move || async move {
            let _goodbye = Goodbye(dropped);
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
        .unwrap_err();
    println!(
        "   run_timeout returned after {:?}: {err} (is_timeout: {})",
        t.elapsed(),
        err.is_timeout()
    );
    // run_timeout returns only after the cancelled future's destructor ran.
    let thread = dropped_on.try_recv().unwrap();
    println!("   the slow future had already been dropped, on thread {thread}");

    println!();
    println!("5. A panic, caught");
    // Silence the default "thread panicked at" report for this one, expected, panic.
    let report = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = tokio.try_run(|| async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let user_id: u32 = 0;
        if user_id == 0 {
            panic!("no such user: {user_id}");
        }
        user_id
    });
    panic::set_hook(report);
    let err = result.unwrap_err();
    println!("   try_run returned: {err} (is_panic: {})", err.is_panic());
    let payload = err.into_panic();
    println!(
        "   the payload came back intact: {:?}",
        payload.downcast_ref::<String>().unwrap()
    );
    let still = tokio.run(|| async { "still works" });
    println!("   and the bridge {still}");

    println!();
    println!("Tour finished in {:?}.", tour.elapsed());
}
