//! Heap allocations per call, counted by a wrapping global allocator.
//!
//! For each path, the bridge's count minus the count of the runtime's own
//! `block_on` for the same future (what the bridge cannot avoid). Targets:
//! 0 extra per inline call, at most 2 extra per hop.
//!
//! ```text
//! cargo bench --features tokio --bench allocs
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use executor_bridge::{Bridge, Pollster, Tokio};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

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

struct Row {
    path: &'static str,
    runtime: &'static str,
    future: &'static str,
    bridge: f64,
    own: f64,
    target: f64,
}

fn main() {
    const INLINE: u64 = 20_000;
    const HOP: u64 = 5_000;
    let pollster_bridge = Bridge::new(Pollster);
    let tokio_bridge = Bridge::new(Tokio::new());
    let handle = tokio_bridge.runtime().handle().expect("runtime").clone();
    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current_thread runtime");
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("multi_thread runtime");
    let app_bridge = Bridge::new(Tokio::from_handle(app.handle().clone()));

    let mut rows = Vec::new();
    for (future, yields) in [("ready", 0u8), ("yield_once", 1)] {
        let pollster_own = per_call(INLINE, || pollster::block_on(fut(yields)));
        let tokio_own = per_call(INLINE, || handle.block_on(fut(yields)));
        rows.push(Row {
            path: "inline (plain thread)",
            runtime: "Pollster",
            future,
            bridge: per_call(INLINE, || pollster_bridge.run(move || fut(yields))),
            own: pollster_own,
            target: 0.0,
        });
        rows.push(Row {
            path: "inline (plain thread)",
            runtime: "Tokio",
            future,
            bridge: per_call(INLINE, || tokio_bridge.run(move || fut(yields))),
            own: tokio_own,
            target: 0.0,
        });
        let (bridge, own) = {
            let b = app_bridge.clone();
            let h = app.handle().clone();
            app.block_on(app.spawn(async move {
                let bridge = per_call(INLINE / 4, || b.run(move || fut(yields)));
                let own = per_call(INLINE / 4, || {
                    tokio::task::block_in_place(|| h.block_on(fut(yields)))
                });
                (bridge, own)
            }))
            .expect("worker task")
        };
        rows.push(Row {
            path: "hand-off (tokio worker task)",
            runtime: "Tokio",
            future,
            bridge,
            own,
            target: 0.0,
        });
        rows.push(Row {
            path: "hop (in current_thread rt)",
            runtime: "Pollster",
            future,
            bridge: ct
                .block_on(async { per_call(HOP, || pollster_bridge.run(move || fut(yields))) }),
            own: pollster_own,
            target: 2.0,
        });
        rows.push(Row {
            path: "hop (in current_thread rt)",
            runtime: "Tokio",
            future,
            bridge: ct.block_on(async { per_call(HOP, || tokio_bridge.run(move || fut(yields))) }),
            own: tokio_own,
            target: 2.0,
        });
    }

    println!();
    println!("heap allocations per call (all threads), bridge minus the runtime's own block_on");
    println!(
        "{:<30} {:<9} {:<11} {:>7} {:>11} {:>7} {:>7}  result",
        "path", "runtime", "future", "bridge", "rt's own", "extra", "target"
    );
    let mut missed = 0;
    for r in &rows {
        let extra = r.bridge - r.own;
        let ok = extra <= r.target + 0.01;
        missed += usize::from(!ok);
        println!(
            "{:<30} {:<9} {:<11} {:>7.2} {:>11.2} {:>7.2} {:>7}  {}",
            r.path,
            r.runtime,
            r.future,
            r.bridge,
            r.own,
            extra,
            format!("<= {}", r.target),
            if ok { "ok" } else { "MISS" }
        );
    }
    println!(
        "(rt's own: inline and hop = the adapter's block_on on a plain thread; \
         hand-off = block_in_place(|| handle.block_on(f)) in the same worker task)"
    );
    println!("{missed} target(s) missed");
}
