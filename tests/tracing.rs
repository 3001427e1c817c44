//! With the `tracing` feature, a bridged future runs inside the caller's
//! current span, on whichever thread it runs: inline, after a hop to a loop
//! thread (nested calls, `run_timeout`, `iter`, calls from a tokio
//! current_thread runtime) or after a hand-off on a tokio worker.
//!
//! A global subscriber (a registry plus a small layer) records, for every
//! event, its message, the thread it was emitted on, and the names of the
//! spans in its scope. Each test uses its own span names and messages, so the
//! tests can run in parallel.
#![cfg(feature = "tracing")]

#[path = "common/mod.rs"]
mod common;

use std::fmt;
use std::sync::{Mutex, Once};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use common::watchdog;
use executor_bridge::{Bridge, Pollster};
use futures::{StreamExt, TryStreamExt};
use tracing::field::{Field, Visit};
use tracing::{info, info_span, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Clone, Debug)]
struct Record {
    message: String,
    thread: String,
    /// Names of the spans in the event's scope, root first.
    spans: Vec<String>,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

struct Recorder;

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
        let thread = thread::current().name().unwrap_or("<unnamed>").to_owned();
        RECORDS.lock().unwrap().push(Record {
            message: message.0,
            thread,
            spans,
        });
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Recorder);
        tracing::subscriber::set_global_default(subscriber).expect("install the subscriber");
    });
}

/// The one record with this message.
#[track_caller]
fn record(message: &str) -> Record {
    let records = RECORDS.lock().unwrap();
    let found: Vec<_> = records.iter().filter(|r| r.message == message).collect();
    assert_eq!(found.len(), 1, "records of {message:?}: {found:?}");
    found[0].clone()
}

#[track_caller]
fn assert_in(message: &str, spans: &[&str]) -> Record {
    let r = record(message);
    assert_eq!(
        r.spans, spans,
        "{message:?} was emitted outside the caller's span: {r:?}"
    );
    r
}

/// A bridge whose loop threads are recognisable.
fn bridge(name: &str) -> Bridge<Pollster> {
    Bridge::builder(Pollster).thread_name(name).build()
}

/// Pending once (waking itself), then ready: forces the runtime's `block_on`
/// instead of the ready-at-once fast path.
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

fn this_thread() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

#[test]
fn inline_calls_run_in_the_callers_span() {
    install();
    watchdog(30, || {
        let bridge = bridge("tr-inline");
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
        for msg in [
            "inline ready",
            "inline after a pending poll",
            "inline try_run",
        ] {
            let r = assert_in(msg, &["inline_caller"]);
            assert_eq!(r.thread, this_thread());
        }
    });
}

#[test]
fn a_nested_call_hops_and_keeps_the_whole_span_stack() {
    install();
    watchdog(30, || {
        let bridge = bridge("tr-nested");
        let inner_bridge = bridge.clone();
        let span = info_span!("nested_outer");
        let _entered = span.enter();
        bridge.run(move || async move {
            info!("nested: outer future");
            let inner = info_span!("nested_inner");
            let _entered = inner.enter();
            // A nested call always hops to a loop thread.
            inner_bridge.run(|| async {
                yield_once().await;
                info!("nested: inner future");
            });
        });
        assert_in("nested: outer future", &["nested_outer"]);
        let r = assert_in("nested: inner future", &["nested_outer", "nested_inner"]);
        assert!(r.thread.starts_with("tr-nested"), "{r:?}");
    });
}

#[test]
fn run_timeout_runs_the_factory_the_future_and_its_cancellation_in_the_span() {
    install();
    watchdog(30, || {
        let bridge = bridge("tr-timeout");
        let span = info_span!("timeout_caller");
        let _entered = span.enter();

        let out = bridge.run_timeout(Duration::from_secs(10), || {
            info!("timeout: factory");
            async {
                yield_once().await;
                info!("timeout: future");
                5
            }
        });
        assert_eq!(out.unwrap(), 5);

        struct LogOnDrop;
        impl Drop for LogOnDrop {
            fn drop(&mut self) {
                info!("timeout: cancelled future dropped");
            }
        }
        let err = bridge
            .run_timeout(Duration::from_millis(20), || async {
                let _guard = LogOnDrop;
                std::future::pending::<()>().await
            })
            .unwrap_err();
        assert!(err.is_timeout());

        for msg in [
            "timeout: factory",
            "timeout: future",
            "timeout: cancelled future dropped",
        ] {
            let r = assert_in(msg, &["timeout_caller"]);
            assert!(r.thread.starts_with("tr-timeout"), "{r:?}");
        }
    });
}

#[test]
fn iter_runs_the_stream_in_the_span_of_its_creator() {
    install();
    watchdog(30, || {
        let bridge = bridge("tr-iter");
        let it = {
            let span = info_span!("iter_caller");
            let _entered = span.enter();
            bridge.iter(|| {
                info!("iter: factory");
                futures::stream::iter(0..3).then(|i| async move {
                    yield_once().await;
                    info!("iter: item {i}");
                    i
                })
            })
        };
        // Consumed outside the span: the stream still runs in it.
        info!("iter: consumer");
        assert_eq!(it.collect::<Vec<_>>(), [0, 1, 2]);

        assert_in("iter: consumer", &[]);
        for msg in [
            "iter: factory",
            "iter: item 0",
            "iter: item 1",
            "iter: item 2",
        ] {
            let r = assert_in(msg, &["iter_caller"]);
            assert!(r.thread.starts_with("tr-iter"), "{r:?}");
        }

        // try_iter as well.
        let span = info_span!("try_iter_caller");
        let _entered = span.enter();
        let n = bridge
            .try_iter(|| {
                futures::stream::once(async {
                    info!("try_iter: item");
                    1
                })
            })
            .unwrap()
            .count();
        assert_eq!(n, 1);
        assert_in("try_iter: item", &["try_iter_caller"]);
    });
}

#[test]
fn reader_runs_its_source_in_the_span_of_its_creator() {
    install();
    watchdog(30, || {
        use std::io::Read;
        let bridge = bridge("tr-reader");
        let mut reader = {
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
        };
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "abcd");
        for msg in ["reader: factory", "reader: chunk ab", "reader: chunk cd"] {
            let r = assert_in(msg, &["reader_caller"]);
            assert!(r.thread.starts_with("tr-reader"), "{r:?}");
        }
    });
}

#[test]
fn a_nested_run_scoped_hops_to_a_scoped_thread_in_the_span() {
    install();
    watchdog(30, || {
        let bridge = bridge("tr-scoped");
        let inner_bridge = bridge.clone();
        let span = info_span!("scoped_caller");
        let _entered = span.enter();
        bridge.run(move || async move {
            let borrowed = String::from("borrowed");
            let len = inner_bridge.run_scoped(|| async {
                yield_once().await;
                info!("run_scoped: nested future");
                borrowed.len()
            });
            assert_eq!(len, 8);
        });
        let r = assert_in("run_scoped: nested future", &["scoped_caller"]);
        assert!(r.thread.starts_with("tr-scoped"), "{r:?}");
    });
}

#[test]
fn a_loop_thread_does_not_keep_the_previous_callers_span() {
    install();
    watchdog(30, || {
        // One loop thread, so both calls run on it.
        let bridge = Bridge::builder(Pollster)
            .thread_name("tr-leak")
            .max_threads(1)
            .build();
        {
            let span = info_span!("leak_first_caller");
            let _entered = span.enter();
            bridge
                .run_timeout(Duration::from_secs(10), || async { info!("leak: first") })
                .unwrap();
        }
        bridge
            .run_timeout(Duration::from_secs(10), || async { info!("leak: second") })
            .unwrap();
        let first = assert_in("leak: first", &["leak_first_caller"]);
        let second = assert_in("leak: second", &[]);
        assert_eq!(first.thread, second.thread);
    });
}

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use std::time::Duration;

    use executor_bridge::{Bridge, Tokio};
    use tracing::{info, info_span, Instrument};

    use super::{assert_in, install, watchdog};

    fn bridge(name: &str) -> Bridge<Tokio> {
        Bridge::builder(Tokio::new()).thread_name(name).build()
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_call_from_a_current_thread_runtime_hops_in_the_span() {
        install();
        watchdog(30, || {
            let bridge = bridge("tr-tokio-hop");
            let b = bridge.clone();
            current_thread().block_on(async move {
                let span = info_span!("hop_caller");
                let _entered = span.enter();
                b.run(|| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    info!("tokio hop: future");
                });
            });
            let r = assert_in("tokio hop: future", &["hop_caller"]);
            assert!(r.thread.starts_with("tr-tokio-hop"), "{r:?}");
        });
    }

    #[test]
    fn an_instrumented_async_caller_is_the_span() {
        install();
        watchdog(30, || {
            let bridge = bridge("tr-tokio-instr");
            let b = bridge.clone();
            // `#[instrument] async fn handler() { blocking_facade() }`
            current_thread().block_on(
                async move {
                    tokio::task::yield_now().await;
                    b.run(|| async {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        info!("instrumented: future");
                    });
                }
                .instrument(info_span!("instrumented_caller")),
            );
            let r = assert_in("instrumented: future", &["instrumented_caller"]);
            assert!(r.thread.starts_with("tr-tokio-instr"), "{r:?}");
        });
    }

    #[test]
    fn a_hand_off_on_a_multi_thread_worker_keeps_the_span() {
        install();
        watchdog(30, || {
            let bridge = bridge("tr-tokio-handoff");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tr-user-worker")
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::spawn(async move {
                    let span = info_span!("handoff_caller");
                    let _entered = span.enter();
                    bridge.run(|| async {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        info!("tokio hand-off: future");
                    });
                })
                .await
                .unwrap();
            });
            let r = assert_in("tokio hand-off: future", &["handoff_caller"]);
            // Ran right there, on the worker that was handed off.
            assert!(r.thread.starts_with("tr-user-worker"), "{r:?}");
        });
    }

    #[test]
    fn run_timeout_and_iter_from_a_current_thread_runtime() {
        install();
        watchdog(30, || {
            let bridge = bridge("tr-tokio-misc");
            let b = bridge.clone();
            let items = current_thread().block_on(async move {
                let span = info_span!("tokio_misc_caller");
                let _entered = span.enter();
                b.run_timeout(Duration::from_secs(10), || async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    info!("tokio misc: run_timeout");
                })
                .unwrap();
                b.iter(|| {
                    futures::StreamExt::then(futures::stream::iter(0..2), |i| async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        info!("tokio misc: item {i}");
                        i
                    })
                })
                .collect::<Vec<_>>()
            });
            assert_eq!(items, [0, 1]);
            for msg in [
                "tokio misc: run_timeout",
                "tokio misc: item 0",
                "tokio misc: item 1",
            ] {
                let r = assert_in(msg, &["tokio_misc_caller"]);
                assert!(r.thread.starts_with("tr-tokio-misc"), "{r:?}");
            }
        });
    }

    #[test]
    fn the_process_wide_shortcut_keeps_the_span() {
        install();
        watchdog(30, || {
            current_thread().block_on(async {
                let span = info_span!("shortcut_caller");
                let _entered = span.enter();
                executor_bridge::tokio::run(|| async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    info!("shortcut: future");
                });
            });
            let r = assert_in("shortcut: future", &["shortcut_caller"]);
            assert!(r.thread.starts_with("bridge-tokio"), "{r:?}");
        });
    }
}

/// The other adapters: `run_timeout` and `iter` always run on a loop thread.
macro_rules! other_runtime {
    ($feature:literal, $name:ident, $runtime:expr, $sleep:path) => {
        #[cfg(feature = $feature)]
        mod $name {
            use std::time::Duration;

            use executor_bridge::Bridge;
            use futures::StreamExt;
            use tracing::{info, info_span};

            use super::{assert_in, install, watchdog};

            #[test]
            fn run_timeout_and_iter_keep_the_span() {
                install();
                watchdog(30, || {
                    let bridge = Bridge::builder($runtime)
                        .thread_name(concat!("tr-", $feature))
                        .build();
                    let span = info_span!(concat!($feature, "_caller"));
                    let _entered = span.enter();
                    bridge
                        .run_timeout(Duration::from_secs(10), || async {
                            $sleep(Duration::from_millis(2)).await;
                            info!(concat!($feature, ": run_timeout"));
                        })
                        .unwrap();
                    let n = bridge
                        .iter(|| {
                            futures::stream::iter(0..1).then(|i| async move {
                                $sleep(Duration::from_millis(2)).await;
                                info!(concat!($feature, ": item"));
                                i
                            })
                        })
                        .count();
                    assert_eq!(n, 1);
                    for msg in [
                        concat!($feature, ": run_timeout"),
                        concat!($feature, ": item"),
                    ] {
                        let r = assert_in(msg, &[concat!($feature, "_caller")]);
                        assert!(r.thread.starts_with(concat!("tr-", $feature)), "{r:?}");
                    }
                });
            }
        }
    };
}

other_runtime!(
    "smol",
    smol_runtime,
    executor_bridge::Smol::new(),
    smol::Timer::after
);
other_runtime!(
    "async-std",
    async_std_runtime,
    executor_bridge::AsyncStd,
    async_std::task::sleep
);
