//! Helpers shared by the integration tests: a watchdog that turns a hang into
//! a failure, and thread counting.
#![allow(dead_code)]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` on a fresh thread and fails the test if it has not returned after
/// `secs` seconds. A panic inside `f` is resumed here with its payload.
#[track_caller]
pub fn watchdog<T, F>(secs: u64, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(());
            out
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join().expect("join") {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: the test hung for more than {secs} s")
        }
    }
}

/// Names of this process's threads, as the kernel reports them (at most 15
/// bytes each).
pub fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            if let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) {
                names.push(name.trim_end().to_owned());
            }
        }
    }
    names
}

/// Number of threads of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    thread_names().iter().filter(|n| n.starts_with(prefix)).count()
}

/// Number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// Polls `cond` every millisecond until it holds or `limit` passes; returns
/// whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}
