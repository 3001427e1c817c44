//! With the `tracing` feature, a bridged future runs under the caller's
//! subscriber and inside the caller's current span, on whichever thread it
//! runs: on the caller's thread, after a hop to a loop thread (`run_timeout`,
//! `iter`, `next_timeout`, nested calls of a runtime that hops), or parked in
//! a tokio runtime.
//!
//! Each test records with a subscriber of its own, set for its thread only
//! (`tracing::subscriber::with_default`, as tests usually do): an event that
//! reaches it was carried there by the bridge.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use executor_bridge::{Bridge, Pollster};
use futures::{StreamExt, TryStreamExt};
use tracing::field::{Field, Visit};
use tracing::{info, info_span, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::common::{per_runtime, watchdog, TestRuntime, LIMIT};
use crate::pool::{tagged, this_thread, Hopping, LONG};

#[derive(Clone, Debug)]
struct Record {
    message: String,
    thread: String,
    /// Names of the spans in the event's scope, root first.
    spans: Vec<String>,
}

/// What one subscriber recorded.
#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<Record>>>);

struct Recorder(Records);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let spans = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().map(|s| s.name().to_owned()).collect())
            .unwrap_or_default();
        self.0 .0.lock().unwrap().push(Record {
            message: message.0,
            thread: this_thread(),
            spans,
        });
    }
}

/// A fresh recording subscriber.
fn recorder() -> (impl Subscriber + Send + Sync + 'static, Records) {
    let records = Records::default();
    (
        tracing_subscriber::registry().with(Recorder(records.clone())),
        records,
    )
}

impl Records {
    /// The one record with this message.
    #[track_caller]
    fn one(&self, message: &str) -> Record {
        let records = self.0.lock().unwrap();
        let found: Vec<_> = records.iter().filter(|r| r.message == message).collect();
        assert_eq!(
            found.len(),
            1,
            "records of {message:?}: {found:?}; all: {records:?}"
        );
        found[0].clone()
    }

    /// The one record with this message, which had `spans` in scope.
    #[track_caller]
    fn assert_in(&self, message: &str, spans: &[&str]) -> Record {
        let r = self.one(message);
        assert_eq!(
            r.spans, spans,
            "{message:?} was emitted outside the caller's span: {r:?}"
        );
        r
    }

    #[track_caller]
    fn assert_none(&self, message: &str) {
        let records = self.0.lock().unwrap();
        let found: Vec<_> = records.iter().filter(|r| r.message == message).collect();
        assert!(
            found.is_empty(),
            "{message:?} reached a subscriber it was not emitted under: {found:?}"
        );
    }
}

/// Pending once (waking itself), then ready: forces a real wait instead of
/// the ready-at-first-poll path.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

#[test]
fn calls_on_the_callers_thread_run_in_its_span() {
    watchdog(LIMIT, || {
        let (sub, records) = recorder();
        let bridge = Bridge::builder(Pollster).thread_name("spInline").build();
        tracing::subscriber::with_default(sub, || {
            let span = info_span!("inline_caller");
            let _entered = span.enter();
            bridge.run(|| async { info!("inline ready") });
            bridge.run(|| async {
                yield_once().await;
                info!("inline after a pending poll");
            });
            let n = bridge
                .try_run(|| async {
                    yield_once().await;
                    info!("inline try_run");
                    1
                })
                .unwrap();
            assert_eq!(n, 1);
            let items: Vec<u32> = bridge
                .iter_direct(|| {
                    futures::stream::iter(0..2u32).then(|i| async move {
                        yield_once().await;
                        info!("inline iter_direct {i}");
                        i
                    })
                })
                .collect();
            assert_eq!(items, [0, 1]);
        });
        for msg in [
            "inline ready",
            "inline after a pending poll",
            "inline try_run",
            "inline iter_direct 0",
            "inline iter_direct 1",
        ] {
            let r = records.assert_in(msg, &["inline_caller"]);
            assert_eq!(r.thread, this_thread());
        }
    });
}

/// Every way a call leaves the caller's thread, for each adapter.
fn hops_carry_the_subscriber_and_the_span<R: TestRuntime>() {
    let name = tagged::<R>("spHop");
    let (sub, records) = recorder();
    let bridge = Bridge::builder(R::make()).thread_name(&name).build();
    let hopping = Bridge::builder(Hopping(R::make()))
        .thread_name(&name)
        .build();
    tracing::subscriber::with_default(sub, || {
        let span = info_span!("hop_caller");
        let _entered = span.enter();

        // run_timeout: the factory, the future, and its cancellation.
        let out = bridge.run_timeout(LONG, || {
            info!("run_timeout: factory");
            async {
                R::sleep(Duration::from_millis(1)).await;
                info!("run_timeout: future");
                5
            }
        });
        assert_eq!(out.unwrap(), 5);
        struct LogOnDrop;
        impl Drop for LogOnDrop {
            fn drop(&mut self) {
                info!("run_timeout: cancelled future dropped");
            }
        }
        let err = bridge
            .run_timeout(Duration::from_millis(20), || async {
                let _guard = LogOnDrop;
                std::future::pending::<()>().await
            })
            .unwrap_err();
        assert!(err.is_timeout());

        // Nested calls, the whole span stack: they hop.
        let (inner, inner_hopping) = (bridge.clone(), hopping.clone());
        bridge.run(move || async move {
            let nested = info_span!("nested_inner");
            let _entered = nested.enter();
            inner.run(|| async {
                R::sleep(Duration::from_millis(1)).await;
                info!("nested: run");
            });
            inner
                .run_timeout(LONG, || async {
                    R::sleep(Duration::from_millis(1)).await;
                    info!("nested: run_timeout");
                })
                .unwrap();
            let hop = inner_hopping.clone();
            inner_hopping.run(move || async move {
                hop.run(|| async {
                    R::sleep(Duration::from_millis(1)).await;
                    info!("nested: hop");
                })
            });
        });

        // iter_direct's next_timeout waits for the item here, with a timer.
        let mut direct = bridge.iter_direct(|| {
            futures::stream::once(async {
                R::sleep(Duration::from_millis(1)).await;
                info!("iter_direct: next_timeout");
                1
            })
        });
        assert_eq!(direct.next_timeout(LONG).unwrap(), Some(1));
    });

    // iter: the span of the iterator's creator, wherever it is consumed.
    let (sub2, records2) = recorder();
    let it = tracing::subscriber::with_default(sub2, || {
        let span = info_span!("iter_creator");
        let _entered = span.enter();
        bridge.iter(|| {
            info!("iter: factory");
            futures::stream::iter(0..3).then(|i| async move {
                R::sleep(Duration::from_millis(1)).await;
                info!("iter: item {i}");
                i
            })
        })
    });
    // Consumed later, on another thread, with no subscriber there.
    let items = std::thread::spawn(move || it.collect::<Vec<_>>())
        .join()
        .unwrap();
    assert_eq!(items, [0, 1, 2]);

    for msg in [
        "run_timeout: factory",
        "run_timeout: future",
        "run_timeout: cancelled future dropped",
    ] {
        let r = records.assert_in(msg, &["hop_caller"]);
        assert!(r.thread.starts_with(&name), "{r:?}");
    }
    let r = records.assert_in("iter_direct: next_timeout", &["hop_caller"]);
    assert!(!r.thread.starts_with(&name), "{r:?}");
    for msg in ["nested: run", "nested: run_timeout", "nested: hop"] {
        let r = records.assert_in(msg, &["hop_caller", "nested_inner"]);
        assert!(r.thread.starts_with(&name), "{r:?}");
    }
    for msg in [
        "iter: factory",
        "iter: item 0",
        "iter: item 1",
        "iter: item 2",
    ] {
        let r = records2.assert_in(msg, &["iter_creator"]);
        assert!(r.thread.starts_with(&name), "{r:?}");
        records.assert_none(msg);
    }
}

per_runtime!(hops_carry_the_subscriber_and_the_span);

#[test]
fn reader_runs_its_source_in_the_span_of_its_creator() {
    watchdog(LIMIT, || {
        use std::io::Read;
        let (sub, records) = recorder();
        let bridge = Bridge::builder(Pollster).thread_name("spReader").build();
        let mut reader = tracing::subscriber::with_default(sub, || {
            let span = info_span!("reader_caller");
            let _entered = span.enter();
            bridge.reader(|| {
                info!("reader: factory");
                futures::stream::iter(["ab", "cd"])
                    .map(|chunk| {
                        info!("reader: chunk {chunk}");
                        Ok::<_, std::io::Error>(chunk.as_bytes())
                    })
                    .into_async_read()
            })
        });
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "abcd");
        for msg in ["reader: factory", "reader: chunk ab", "reader: chunk cd"] {
            let r = records.assert_in(msg, &["reader_caller"]);
            assert!(r.thread.starts_with("spReader"), "{r:?}");
        }
    });
}

#[test]
fn a_nested_run_scoped_that_hops_keeps_the_span() {
    watchdog(LIMIT, || {
        let (sub, records) = recorder();
        let bridge = Bridge::builder(Hopping(Pollster))
            .thread_name("spScoped")
            .build();
        let inner = bridge.clone();
        tracing::subscriber::with_default(sub, || {
            let span = info_span!("scoped_caller");
            let _entered = span.enter();
            bridge.run(move || async move {
                let borrowed = String::from("borrowed");
                let len = inner.run_scoped(|| async {
                    yield_once().await;
                    info!("run_scoped: nested future");
                    borrowed.len()
                });
                assert_eq!(len, 8);
            });
        });
        let r = records.assert_in("run_scoped: nested future", &["scoped_caller"]);
        assert!(r.thread.starts_with("spScoped"), "{r:?}");
    });
}

#[test]
fn a_loop_thread_keeps_neither_the_previous_callers_span_nor_its_subscriber() {
    watchdog(LIMIT, || {
        // One loop thread, so every call runs on it.
        let bridge = Bridge::builder(Pollster)
            .thread_name("spLeak")
            .max_threads(1)
            .build();
        let (first, records1) = recorder();
        let (second, records2) = recorder();
        tracing::subscriber::with_default(first, || {
            let span = info_span!("leak_first_caller");
            let _entered = span.enter();
            bridge
                .run_timeout(LONG, || async { info!("leak: first") })
                .unwrap();
            let _ = bridge
                .iter(|| futures::stream::once(async { info!("leak: first iter") }))
                .count();
        });
        tracing::subscriber::with_default(second, || {
            bridge
                .run_timeout(LONG, || async { info!("leak: second") })
                .unwrap();
        });
        bridge
            .run_timeout(LONG, || async { info!("leak: third") })
            .unwrap();
        let a = records1.assert_in("leak: first", &["leak_first_caller"]);
        records1.assert_in("leak: first iter", &["leak_first_caller"]);
        let b = records2.assert_in("leak: second", &[]);
        assert_eq!(a.thread, b.thread);
        for msg in ["leak: second", "leak: third"] {
            records1.assert_none(msg);
        }
        records2.assert_none("leak: third");
    });
}

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use std::sync::LazyLock;
    use std::time::Duration;

    use executor_bridge::{Bridge, Tokio};
    use futures::StreamExt;
    use tracing::{info, info_span, Dispatch, Instrument};

    use super::recorder;
    use crate::common::{current_thread, join, watchdog, LIMIT};
    use crate::pool::{Hopping, LONG};

    fn bridge(name: &str) -> Bridge<Tokio> {
        Bridge::builder(Tokio::new()).thread_name(name).build()
    }

    fn nap() -> tokio::time::Sleep {
        tokio::time::sleep(Duration::from_millis(2))
    }

    #[test]
    fn calls_from_a_current_thread_runtime_keep_the_span() {
        watchdog(LIMIT, || {
            let (sub, records) = recorder();
            let bridge = bridge("spTokCt");
            let hopping = Bridge::builder(Hopping(Tokio::new()))
                .thread_name("spTokHop")
                .build();
            tracing::subscriber::with_default(sub, || {
                current_thread().block_on(async {
                    let span = info_span!("ct_caller");
                    let _entered = span.enter();
                    bridge.run(|| async {
                        nap().await;
                        info!("ct: parked");
                    });
                    hopping.run(|| async {
                        nap().await;
                        info!("ct: hop");
                    });
                    bridge
                        .run_timeout(LONG, || async {
                            nap().await;
                            info!("ct: run_timeout");
                        })
                        .unwrap();
                    let items: Vec<u32> = bridge
                        .iter(|| {
                            futures::stream::iter(0..2u32).then(|i| async move {
                                nap().await;
                                info!("ct: iter {i}");
                                i
                            })
                        })
                        .collect();
                    assert_eq!(items, [0, 1]);
                    let items: Vec<u32> = bridge
                        .iter_direct(|| {
                            futures::stream::iter(0..2u32).then(|i| async move {
                                nap().await;
                                info!("ct: iter_direct {i}");
                                i
                            })
                        })
                        .collect();
                    assert_eq!(items, [0, 1]);
                })
            });
            for msg in [
                "ct: parked",
                "ct: hop",
                "ct: run_timeout",
                "ct: iter 0",
                "ct: iter 1",
                "ct: iter_direct 0",
                "ct: iter_direct 1",
            ] {
                records.assert_in(msg, &["ct_caller"]);
            }
            assert!(records.one("ct: hop").thread.starts_with("spTokHop"));
            assert!(records.one("ct: run_timeout").thread.starts_with("spTokCt"));
        });
    }

    #[test]
    fn an_instrumented_async_caller_is_the_span() {
        watchdog(LIMIT, || {
            let (sub, records) = recorder();
            let bridge = bridge("spTokInst");
            // `#[instrument] async fn handler() { blocking_facade() }`
            tracing::subscriber::with_default(sub, || {
                current_thread().block_on(
                    async {
                        tokio::task::yield_now().await;
                        bridge.run(|| async {
                            nap().await;
                            info!("instrumented: run");
                        });
                        bridge
                            .run_timeout(LONG, || async {
                                nap().await;
                                info!("instrumented: run_timeout");
                            })
                            .unwrap();
                    }
                    .instrument(info_span!("instrumented_caller")),
                )
            });
            records.assert_in("instrumented: run", &["instrumented_caller"]);
            records.assert_in("instrumented: run_timeout", &["instrumented_caller"]);
        });
    }

    #[test]
    fn a_hand_off_on_a_multi_thread_worker_keeps_the_span() {
        watchdog(LIMIT, || {
            let (sub, records) = recorder();
            let dispatch = Dispatch::new(sub);
            let bridge = bridge("spTokHand");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("spUserWorker")
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                join(
                    tokio::spawn(async move {
                        // The subscriber of the task's thread, set there.
                        tracing::dispatcher::with_default(&dispatch, || {
                            let span = info_span!("handoff_caller");
                            let _entered = span.enter();
                            bridge.run(|| async {
                                nap().await;
                                info!("hand-off: run");
                            });
                            bridge
                                .run_timeout(LONG, || async {
                                    nap().await;
                                    info!("hand-off: run_timeout");
                                })
                                .unwrap();
                        })
                    })
                    .await,
                )
            });
            let r = records.assert_in("hand-off: run", &["handoff_caller"]);
            assert!(r.thread.starts_with("spUserWorker"), "{r:?}");
            let r = records.assert_in("hand-off: run_timeout", &["handoff_caller"]);
            assert!(r.thread.starts_with("spTokHand"), "{r:?}");
        });
    }

    #[test]
    fn a_process_wide_bridge_keeps_the_span() {
        static BRIDGE: LazyLock<Bridge<Tokio>> = LazyLock::new(Bridge::default);
        watchdog(LIMIT, || {
            let (sub, records) = recorder();
            tracing::subscriber::with_default(sub, || {
                let span = info_span!("static_caller");
                let _entered = span.enter();
                BRIDGE.run(|| async {
                    nap().await;
                    info!("static: run");
                });
                current_thread().block_on(async {
                    BRIDGE
                        .run_timeout(LONG, || async {
                            nap().await;
                            info!("static: run_timeout");
                        })
                        .unwrap();
                });
            });
            records.assert_in("static: run", &["static_caller"]);
            records.assert_in("static: run_timeout", &["static_caller"]);
        });
    }
}
