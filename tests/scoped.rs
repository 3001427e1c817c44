//! `Bridge::run_scoped`: the closure, its future and the output borrow from
//! the caller's stack, from every calling context: inline on a plain thread,
//! on a fresh scoped thread from inside a current_thread runtime or a nested
//! call, handed off on a multi_thread worker; panics resume with their
//! payload; a thread that cannot start is an error.

#[macro_use]
mod common;

use std::any::Any;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::rc::Rc;
use std::thread;

use common::ctx::{contexts, in_ctx, Ctx};
use common::{threads_named, watchdog};
use executor_bridge::{Bridge, Pollster, Runtime};

#[derive(Debug, PartialEq)]
struct Payload(usize);

/// Whether calls from `ctx` hop (and so run on a scoped thread).
fn hops(ctx: Ctx) -> bool {
    match ctx {
        Ctx::Plain => false,
        Ctx::Nested => true,
        #[cfg(feature = "tokio")]
        Ctx::CurrentThread => true,
        #[cfg(feature = "tokio")]
        Ctx::Worker => false,
    }
}

fn borrows<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let name = format!("sc-{tag}");
    let b = Bridge::builder(mk()).thread_name(&name).build();
    for ctx in contexts() {
        let b = b.clone();
        let name = name.clone();
        in_ctx(ctx, move || {
            let caller = thread::current().id();
            let words: Vec<&str> = "borrowed not moved".split(' ').collect();
            let mut counter = 0usize;
            // A local Vec read, a `&mut` counter written, the output borrowed.
            let (longest, ran_on) = b.run_scoped(|| async {
                counter += 1;
                let shared = Rc::new(words.len()); // !Send, held across an await
                futures_lite::future::yield_now().await;
                counter += *shared;
                let longest: &str = words.iter().max_by_key(|w| w.len()).unwrap();
                (longest, thread::current())
            });
            assert_eq!(longest, "borrowed");
            assert_eq!(counter, 4);
            if hops(ctx) {
                assert_eq!(ran_on.name(), Some(&*format!("{name}-scoped")), "{ctx:?}");
            } else {
                assert_eq!(ran_on.id(), caller, "{ctx:?}: expected inline");
            }

            // Nested: run_scoped inside run_scoped inside run_scoped, each
            // level writing the same borrowed counter.
            let mut log = Vec::new();
            let inner = &b;
            let depth = b.run_scoped(|| async {
                log.push(1);
                inner.run_scoped(|| async {
                    log.push(2);
                    inner.run_scoped(|| async {
                        log.push(3);
                        3
                    })
                })
            });
            assert_eq!((depth, log), (3, vec![1, 2, 3]), "{ctx:?}");

            // try_run_scoped gives the output back too.
            let total: usize = b
                .try_run_scoped(|| async { words.iter().map(|w| w.len()).sum() })
                .unwrap();
            assert_eq!(total, 16);
        });
    }
    assert!(
        common::eventually(std::time::Duration::from_secs(10), || threads_named(
            &format!("sc-{tag}-scoped")
        ) == 0),
        "scoped threads left"
    );
}
per_adapter!(borrows, 60);

fn panics_resume_with_their_payload<R: Runtime>(mk: impl Fn() -> R, tag: &str) {
    let b = Bridge::builder(mk())
        .thread_name(format!("sc-p-{tag}"))
        .build();
    for ctx in contexts() {
        let b = b.clone();
        in_ctx(ctx, move || {
            let mut touched = 0usize;
            let caught: Box<dyn Any + Send> = catch_unwind(AssertUnwindSafe(|| {
                b.run_scoped(|| async {
                    touched += 1;
                    futures_lite::future::yield_now().await;
                    panic_any(Payload(touched))
                })
            }))
            .unwrap_err();
            assert_eq!(
                caught.downcast_ref::<Payload>(),
                Some(&Payload(1)),
                "{ctx:?}"
            );

            // The factory itself panicking.
            let caught = catch_unwind(AssertUnwindSafe(|| {
                b.run_scoped(|| -> std::future::Ready<()> { panic!("factory {}", touched) })
            }))
            .unwrap_err();
            assert_eq!(
                caught.downcast_ref::<String>().map(String::as_str),
                Some("factory 1")
            );

            let err = b
                .try_run_scoped(|| async { panic_any(Payload(touched + 1)) })
                .unwrap_err();
            assert!(err.is_panic(), "{ctx:?}: {err:?}");
            assert_eq!(
                err.into_panic().downcast_ref::<Payload>(),
                Some(&Payload(2))
            );

            // Still usable.
            let words = ["ok"];
            assert_eq!(b.run_scoped(|| async { words[0] }), "ok");
        });
    }
}
per_adapter!(panics_resume_with_their_payload, 60);

/// A scoped thread that cannot start: an error from `try_run_scoped`, the
/// documented panic from `run_scoped`, only where a thread is needed.
#[test]
fn a_scoped_thread_that_cannot_start_is_an_error() {
    watchdog(60, || {
        let bad = Bridge::builder(Pollster)
            .thread_name("sc-bad")
            .stack_size(usize::MAX / 2)
            .build();
        let local = 5;
        // Inline: no thread needed.
        assert_eq!(bad.run_scoped(|| async { local }), 5);
        let err = in_ctx(Ctx::Nested, move || {
            let local = 6;
            bad.try_run_scoped(|| async { local }).unwrap_err()
        });
        assert!(err.is_spawn() && !err.is_panic(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("failed to start a loop thread: "),
            "{err}"
        );
    });
}

#[test]
#[should_panic(expected = "executor-bridge: failed to start a loop thread: ")]
fn run_scoped_panics_when_its_thread_cannot_start() {
    let bad = Bridge::builder(Pollster).stack_size(usize::MAX / 2).build();
    in_ctx(Ctx::Nested, move || {
        let local = 7;
        bad.run_scoped(|| async { local })
    });
}

/// A tokio future borrowing the caller's data, from inside a current_thread
/// runtime (the case `run` can only serve with `'static` data).
#[cfg(feature = "tokio")]
#[test]
fn tokio_io_on_borrowed_data_from_a_current_thread_runtime() {
    watchdog(60, || {
        let b = Bridge::builder(executor_bridge::Tokio::new())
            .thread_name("sc-tokio")
            .build();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let request = b"ping".to_vec();
                let mut reply = Vec::new();
                b.run_scoped(|| async {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let addr = listener.local_addr().unwrap();
                    let server = async {
                        let (mut s, _) = listener.accept().await.unwrap();
                        let mut buf = [0; 4];
                        s.read_exact(&mut buf).await.unwrap();
                        s.write_all(&buf).await.unwrap();
                    };
                    let client = async {
                        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                        c.write_all(&request).await.unwrap();
                        c.read_to_end(&mut reply).await.unwrap();
                    };
                    tokio::join!(server, client);
                });
                assert_eq!(reply, b"ping");
            });
    });
}
