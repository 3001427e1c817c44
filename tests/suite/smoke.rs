//! A first look at every context, every adapter: `run` and both iterators.

use std::time::Duration;

use executor_bridge::Bridge;
use futures_lite::StreamExt;

use crate::common::{per_runtime, Ctx, TestRuntime};

fn every_context_runs<R: TestRuntime>() {
    let bridge = Bridge::new(R::make());
    for ctx in Ctx::all() {
        let out = ctx.run(&bridge, |b| {
            let a = b.run(|| async {
                R::sleep(Duration::from_millis(2)).await;
                1
            });
            let n: u32 = b
                .iter_direct(|| {
                    futures_lite::stream::iter(1..=3).then(|x| async move {
                        R::sleep(Duration::from_millis(1)).await;
                        x
                    })
                })
                .sum();
            let m: u32 = b
                .iter(|| {
                    futures_lite::stream::iter(1..=3).then(|x| async move {
                        R::sleep(Duration::from_millis(1)).await;
                        x
                    })
                })
                .sum();
            (a, n, m)
        });
        assert_eq!(out, (1, 6, 6), "{ctx:?}");
    }
}

per_runtime!(every_context_runs);
