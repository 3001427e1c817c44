//! Heap allocations per call (and per item), counted by a wrapping global
//! allocator over every thread of the process, for each place a call can
//! run: inline on a plain thread (a ready and a pending future), the
//! hand-off from a tokio worker task, a call from inside a tokio
//! current_thread runtime (parked, the runtime's own threads driving it),
//! `run_timeout` (always a hop to a loop thread), and per item of `iter`
//! (default pull, and `stream_capacity(256)`) and `iter_direct`.
//!
//! Each row prints the bridge's count, the count of what the same call costs
//! without the bridge (the runtime's own `block_on`, `block_in_place` +
//! `Handle::block_on` for a worker task, `futures_lite::stream::block_on`
//! per item), and the difference: what the bridge adds. The targets are the
//! project's: nothing extra where the call runs on the caller's thread, at
//! most 2 extra for a hop.
//!
//! ```text
//! cargo bench --all-features --bench allocs
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use executor_bridge::{BlockingIter, Bridge, Pollster, Runtime, Tokio};
use futures_lite::stream;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is
// added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Wakes itself and returns `Pending` `left` times, then is ready.
struct Yield {
    left: u8,
}

impl Future for Yield {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.left == 0 {
            return Poll::Ready(1);
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn fut(yields: u8) -> Yield {
    Yield {
        left: black_box(yields),
    }
}

/// Allocations per call of `f`, after a warm-up, over `calls` calls (every
/// thread counts: a hop allocates on the caller and on the loop thread).
fn per_call(calls: u64, mut f: impl FnMut() -> u64) -> f64 {
    for _ in 0..calls / 10 + 100 {
        black_box(f());
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    for _ in 0..calls {
        black_box(f());
    }
    (ALLOCS.load(Ordering::SeqCst) - before) as f64 / calls as f64
}

/// Allocations per item of the iterator `make` returns, over `items` items
/// after the first (its start-up) and a warm-up.
fn per_item<I: Iterator<Item = u64>>(items: u64, make: impl FnOnce() -> I) -> f64 {
    let mut it = make();
    for _ in 0..items / 10 + 100 {
        black_box(it.next().expect("an item"));
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    for _ in 0..items {
        black_box(it.next().expect("an item"));
    }
    let n = ALLOCS.load(Ordering::SeqCst) - before;
    drop(it);
    n as f64 / items as f64
}

struct Row {
    place: &'static str,
    bridge: String,
    future: &'static str,
    count: f64,
    own_name: &'static str,
    own: f64,
    /// The most extra allocations the project allows here, if it says.
    target: Option<f64>,
}

/// A ready stream of as many `u64` as anyone asks for.
fn endless() -> impl futures_lite::Stream<Item = u64> + Send + 'static {
    stream::iter(0..u64::MAX)
}

fn iter_rows<R: Runtime + Clone>(rows: &mut Vec<Row>, name: &str, bridge: &Bridge<R>, items: u64) {
    let own = per_item(items, || futures_lite::stream::block_on(endless()));
    let mut row = |place, it: &dyn Fn() -> BlockingIter<u64>| {
        rows.push(Row {
            place,
            bridge: name.to_owned(),
            future: "ready items",
            count: per_item(items, it),
            own_name: "futures_lite block_on",
            own,
            target: None,
        })
    };
    row("per item: iter_direct", &|| bridge.iter_direct(endless));
    row("per item: iter (default pull)", &|| bridge.iter(endless));
    // The same runtime (clones share it), capacity 256.
    let cap256 = Bridge::builder(bridge.runtime().clone())
        .stream_capacity(256)
        .build();
    row("per item: iter, capacity 256", &|| cap256.iter(endless));
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 20 } else { 1 };
    let inline = 20_000 / scale;
    let hop = 5_000 / scale;
    let items = 100_000 / scale;

    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("current_thread runtime")
    };
    let multi_thread = |workers| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("multi_thread runtime")
    };
    let pollster_bridge = Bridge::new(Pollster);
    let tokio_new = Bridge::new(Tokio::new());
    let tokio_mt = Bridge::new(Tokio::from_runtime(multi_thread(1)));
    let mt_handle = tokio_mt.runtime().handle().expect("runtime").clone();
    let own_ct = current_thread();
    let caller_ct = current_thread();
    let app = multi_thread(2);
    let app_bridge = Bridge::new(Tokio::from_handle(app.handle().clone()));

    let mut rows = Vec::new();
    for (future, yields) in [("ready", 0u8), ("yield_once", 1)] {
        let pollster_own = per_call(inline, || pollster::block_on(fut(yields)));
        let ct_own = per_call(inline, || own_ct.block_on(fut(yields)));
        let mt_own = per_call(inline, || mt_handle.block_on(fut(yields)));
        type Own = (&'static str, f64);
        let owns: [(&str, &Bridge<Pollster>, Own); 1] = [(
            "Pollster",
            &pollster_bridge,
            ("pollster::block_on", pollster_own),
        )];
        let tokio_owns: [(&str, &Bridge<Tokio>, Own); 2] = [
            ("Tokio::new()", &tokio_new, ("ct.block_on", ct_own)),
            ("Tokio mt 1 worker", &tokio_mt, ("handle.block_on", mt_own)),
        ];

        // Inline on a plain thread, and from inside a current_thread runtime.
        macro_rules! inline_and_park {
            ($list:expr) => {
                for (name, bridge, (own_name, own)) in $list {
                    rows.push(Row {
                        place: "inline (plain thread)",
                        bridge: name.to_owned(),
                        future,
                        count: per_call(inline, || bridge.run(move || fut(yields))),
                        own_name,
                        own,
                        target: Some(0.0),
                    });
                    rows.push(Row {
                        place: "park (in current_thread rt)",
                        bridge: name.to_owned(),
                        future,
                        count: caller_ct.block_on(async {
                            per_call(inline, || bridge.run(move || fut(yields)))
                        }),
                        own_name,
                        own,
                        target: Some(0.0),
                    });
                    rows.push(Row {
                        place: "run_timeout (hop)",
                        bridge: name.to_owned(),
                        future,
                        count: per_call(hop, || {
                            bridge
                                .run_timeout(Duration::from_secs(60), move || fut(yields))
                                .expect("in time")
                        }),
                        own_name,
                        own,
                        target: Some(2.0),
                    });
                }
            };
        }
        inline_and_park!(owns);
        inline_and_park!(tokio_owns);

        // From a task on a tokio multi_thread worker: the hand-off.
        let (bridge, own) = {
            let b = app_bridge.clone();
            let p = pollster_bridge.clone();
            let h = app.handle().clone();
            app.block_on(app.spawn(async move {
                let bridge = per_call(inline / 4, || b.run(move || fut(yields)));
                let pollster = per_call(inline / 4, || p.run(move || fut(yields)));
                let own = per_call(inline / 4, || {
                    tokio::task::block_in_place(|| h.block_on(fut(yields)))
                });
                let pollster_own = per_call(inline / 4, || {
                    tokio::task::block_in_place(|| pollster::block_on(fut(yields)))
                });
                ((bridge, pollster), (own, pollster_own))
            }))
            .expect("worker task")
        };
        rows.push(Row {
            place: "hand-off (tokio worker task)",
            bridge: "Tokio::from_handle".into(),
            future,
            count: bridge.0,
            own_name: "block_in_place+block_on",
            own: own.0,
            target: Some(0.0),
        });
        rows.push(Row {
            place: "hand-off (tokio worker task)",
            bridge: "Pollster".into(),
            future,
            count: bridge.1,
            own_name: "block_in_place+pollster",
            own: own.1,
            target: Some(0.0),
        });
    }
    iter_rows(&mut rows, "Pollster", &pollster_bridge, items);
    iter_rows(&mut rows, "Tokio::new()", &tokio_new, items);

    println!();
    println!(
        "heap allocations per call / per item, all threads of the process; extra = bridge minus \
         the same work without the bridge"
    );
    println!(
        "{:<30} {:<19} {:<11} {:>7}  {:<24} {:>6} {:>7} {:>7}  result",
        "placement", "bridge", "future", "bridge", "without (own)", "own", "extra", "target"
    );
    let mut missed = 0;
    for r in &rows {
        let extra = r.count - r.own;
        let (target, result) = match r.target {
            Some(t) if extra <= t + 0.01 => (format!("<= {t}"), "ok"),
            Some(t) => {
                missed += 1;
                (format!("<= {t}"), "MISS")
            }
            None => ("-".to_owned(), "-"),
        };
        println!(
            "{:<30} {:<19} {:<11} {:>7.2}  {:<24} {:>6.2} {:>7.2} {:>7}  {}",
            r.place, r.bridge, r.future, r.count, r.own_name, r.own, extra, target, result
        );
    }
    println!(
        "(own for inline, park and run_timeout = the runtime's own block_on on a plain thread; \
         hand-off = block_in_place(|| the runtime's block_on(f)) in the same worker task; per item = \
         futures_lite::stream::block_on of the same stream)"
    );
    println!("{missed} target(s) missed");
}
