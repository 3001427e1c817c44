//! cargo run --example tour --all-features
//!
//! A short tour of executor-bridge, printing what happens: blocking code
//! calling async code from a plain thread, from inside tokio runtimes and
//! from inside a bridged future; live streams; a timeout; a panic carried
//! back; a blocking writer and a blocking sink; and the four adapters.

use std::io::{Read, Write};
use std::panic;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use executor_bridge::{AsyncStd, Bridge, Pollster, Smol, Tokio};
use futures_lite::{stream, Stream, StreamExt};
use tokio_util::compat::TokioAsyncWriteCompatExt;

/// The name of the thread this runs on.
fn here() -> String {
    thread::current().name().unwrap_or("unnamed").to_owned()
}

/// A stand-in for a streaming LLM reply: one word every 40 ms.
fn llm_reply() -> impl Stream<Item = &'static str> + Send {
    stream::iter("Air scatters blue light more than red.".split(' ')).then(|word| async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        word
    })
}

fn main() {
    let tour = Instant::now();
    let bridge = Bridge::new(Tokio::new());

    println!("1. Calling async code from blocking code");
    let t = Instant::now();
    let ran_on = bridge.run(|| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        here()
    });
    println!(
        "   plain thread:          a 20 ms tokio timer took {:?}; ran on {ran_on}, driving the runtime",
        t.elapsed()
    );

    // What `#[tokio::main(flavor = "current_thread")]` or `#[tokio::test]` code sees.
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let b = bridge.clone();
    let ran_on = current_thread.block_on(async move {
        b.run(|| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            // tokio's `yield_now` hands its wake-up to the current scheduler:
            // on the caller's (blocked) one it would never come.
            tokio::task::yield_now().await;
            here()
        })
    });
    println!(
        "   current_thread body:   no \"runtime within a runtime\" panic, no hang; ran on {ran_on}"
    );

    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("app-worker")
        .enable_all()
        .build()
        .unwrap();
    let b = bridge.clone();
    let (ran_on, child) = app.block_on(async move {
        tokio::spawn(async move {
            // A task awaiting a task it just spawned: a naive block_on hangs here.
            let child = tokio::spawn(async { "child done" });
            b.run(move || async move { (here(), child.await.unwrap()) })
        })
        .await
        .unwrap()
    });
    println!(
        "   multi_thread task:     awaited its own child ({child:?}); ran on {ran_on}, handed off"
    );

    let b = bridge.clone();
    let inner = bridge.run(move || async move {
        // Blocking code called from inside a bridged future calls again.
        b.run(|| async {
            tokio::task::yield_now().await;
            here()
        })
    });
    println!("   nested:                a call inside a bridged future ran on {inner}");

    println!();
    println!("2. Streams as iterators, live");
    let t = Instant::now();
    print!("   iter_direct:          ");
    for word in bridge.iter_direct(llm_reply) {
        print!(" {word}({} ms)", t.elapsed().as_millis());
        std::io::stdout().flush().unwrap();
    }
    println!();
    let squares: Vec<String> = bridge
        .iter(|| {
            let unit = Rc::new("²"); // !Send: this stream lives on a loop thread
            stream::iter(1..=4).map(move |n| format!("{n}{unit}"))
        })
        .collect();
    println!("   iter (a !Send stream): {}", squares.join(" "));

    println!();
    println!("3. A deadline and a panic");
    let t = Instant::now();
    let err = bridge
        .run_timeout(Duration::from_millis(100), || {
            tokio::time::sleep(Duration::from_secs(60))
        })
        .unwrap_err();
    println!(
        "   run_timeout:           {err} after {:?}, the future dropped",
        t.elapsed()
    );
    let report = panic::take_hook();
    panic::set_hook(Box::new(|_| {})); // silence this one, expected, panic
    let err = bridge
        .try_run(|| async {
            let user_id = 0;
            if user_id == 0 {
                panic!("no such user: {user_id}");
            }
            user_id
        })
        .unwrap_err();
    panic::set_hook(report);
    println!("   try_run:               {err}");
    let payload = err.into_panic();
    println!(
        "                          the payload came back intact: {:?}",
        payload.downcast_ref::<String>().unwrap()
    );

    println!();
    println!("4. Blocking IO into async sinks");
    let path = std::env::temp_dir().join(format!("tour-{}.txt", std::process::id()));
    let p = path.clone();
    let file = bridge.run(|| tokio::fs::File::create(p)).unwrap();
    let mut out = bridge.writer(move || file.compat_write());
    for i in 1..=10_000 {
        writeln!(out, "line {i}").unwrap(); // buffered, written behind on a loop thread
    }
    out.close().unwrap(); // the file's own error, if it had one
    let mut text = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    println!(
        "   writer:                {} bytes into a tokio::fs::File, last {:?}",
        text.len(),
        text.lines().last().unwrap()
    );
    let sink = bridge.sink(4, |mut rows| async move {
        // An async consumer: a database, a websocket, a Kafka producer.
        let mut stored = 0;
        while let Some(row) = rows.next().await {
            tokio::time::sleep(Duration::from_millis(1)).await;
            stored += row;
        }
        stored
    });
    for row in 1..=100 {
        sink.send(row).unwrap(); // blocks while 4 rows wait
    }
    println!(
        "   sink:                  the consumer returned {}",
        sink.close()
    );

    println!();
    println!("5. The adapters");
    let t = Instant::now();
    let n = Bridge::new(Smol).run(|| async {
        smol::Timer::after(Duration::from_millis(10)).await;
        smol::spawn(async { 21 * 2 }).await
    });
    println!(
        "   Smol:                  a timer, then a task returned {n} ({:?})",
        t.elapsed()
    );
    let greeting = Bridge::new(AsyncStd).run(|| async {
        async_std::task::sleep(Duration::from_millis(10)).await;
        async_std::task::spawn(async { "hello" }).await
    });
    println!("   AsyncStd (legacy):     a sleep, then a task returned {greeting:?}");
    let (tx, rx) = async_channel::bounded(1);
    thread::spawn(move || tx.send_blocking("from another thread"));
    let got = Bridge::new(Pollster).run(move || async move { rx.recv().await.unwrap() });
    println!("   Pollster (no runtime): awaited a message {got:?}");
    let t = Instant::now();
    let n = bridge.run(|| async { tokio::spawn(async { 7 }).await.unwrap() });
    println!(
        "   Tokio:                 a task returned {n} ({:?})",
        t.elapsed()
    );

    println!();
    println!("Tour finished in {:?}.", tour.elapsed());
}
